"""COCO ``person_keypoints`` files, and every file in COCO's layout (CrowdPose, AI
Challenger, PoseTrack, mmpose's H36M and MPI-INF-3DHP files...).

The keypoints are read **by the names** the category lists (``categories[].keypoints``),
never by their count: the names select the keypoint format
(:func:`eft.body.joints.format_from_names`), in whatever order the file has them; names
no known format has are a one-line error naming them.  ``keypoint_format`` is needed
only for a file without keypoint names (it must agree with the names when there are).

One exemplar per annotated person, id ``"<dataset>/<annotation id>"``, in id order.
Crop: SPIN's, from the annotation's ``bbox`` (``scale = 1.2 * max(w, h) / 200``).  COCO
visibility ``v in {0, 1, 2}`` becomes confidence 1 for ``v > 0`` (SPIN), or is kept with
``binarize=False``.  A bad record never stops the file; it is skipped with a reason:
``iscrowd`` groups; ``bad_annotation`` (not an object, no id, an ``image_id`` or
``category_id`` that is not a number or string, keypoints or bbox of the wrong length
or not numbers - numeric strings included -, no keypoint names in the file);
``duplicate_id`` (an annotation id seen before in the file: the first is kept);
``missing_image`` (its ``image_id`` has no entry in ``images``; malformed ``images``
entries - not an object, or an ``id`` that is not a number or string - are left out and
named in the detail); ``no_keypoints``; ``bad_keypoints`` (non-finite or absurd
coordinates, or all at one point); ``too_few_keypoints`` (fewer GT keypoints than
``min_keypoints``, EFT's ">= 6"); ``bad_bbox`` (a box of zero size, non-finite or
absurd - beyond :data:`~eft.data.readers.base.MAX_ABS_KEYPOINT_PX` -, or the crop made
from it).  An image ``width`` / ``height`` that is not a usable size is left out (the
size is then read from the image file where needed).  A malformed ``categories`` entry
or an unknown ``keypoint_format`` is a :class:`ReaderError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eft.body import joints as J
from eft.data.exemplar import Exemplar
from eft.geometry.crops import bbox_to_center_scale

from .base import (
    ReaderError,
    ReadResult,
    Skipped,
    box_problems,
    crop_problems,
    image_size_or_none,
    keypoint_format_problem,
    keypoint_skip_reasons,
)

__all__ = ["read_coco"]


def _is_key(value: Any) -> bool:
    """Whether ``value`` can be a COCO id (image, category): a number or a string."""
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _load(path: Path) -> dict:
    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    try:
        with open(path, "rb") as fh:
            doc = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{path}: not a valid JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise ReaderError(f"{path}: not a COCO annotation file (no 'annotations' list)")
    return doc


def _formats(path: Path, doc: dict, keypoint_format: str | None,
             ) -> tuple[dict, J.KeypointFormat | None]:
    """``({category id: format}, format for annotations of no named category)``."""
    entries = doc.get("categories") or []
    if not isinstance(entries, list):
        raise ReaderError(f"{path}: 'categories' is a {type(entries).__name__}, not a list "
                          "of categories")
    cats = []
    for i, c in enumerate(entries):
        if not (isinstance(c, dict) and isinstance(c.get("keypoints"), list)
                and c.get("keypoints")):
            continue
        if c.get("id") is not None and not _is_key(c.get("id")):
            raise ReaderError(f"{path}: categories[{i}] has id {c.get('id')!r}, not a number "
                              "or string; fix that category's id")
        cats.append(c)
    given = None
    if keypoint_format is not None and keypoint_format != "":
        problem = keypoint_format_problem(keypoint_format)
        if problem is not None:
            raise ReaderError(f"{path}: {problem}")
        given = J.get_format(keypoint_format)
    by_cat = {}
    for c in cats:
        try:
            fmt = J.format_from_names(c["keypoints"],
                                      f"category {c.get('name', c.get('id'))!r}")
        except ValueError as exc:
            if given is not None and len(c["keypoints"]) == given.num_joints:
                fmt = given  # names this eft does not know: the caller's format decides
            else:
                raise ReaderError(f"{path}: {exc}") from None
        if given is not None and fmt is not given and (
                fmt.spin_indices != given.spin_indices):
            raise ReaderError(
                f"{path}: keypoint_format {given.name!r} disagrees with the names of "
                f"category {c.get('name', c.get('id'))!r} (they are {fmt.name!r}, in the "
                "file's order); leave keypoint_format out to read them by name")
        by_cat[c.get("id")] = fmt
    return by_cat, (given if not cats else None)


def _numbers(value: Any, n: int, what: str) -> np.ndarray:
    """``value`` (a JSON list of n numbers) as (n,) float64, else ValueError saying what
    is wrong (numeric strings such as ``"12.5"`` are not numbers; ``null`` reads as
    NaN)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{what} is a {type(value).__name__}, not a list of numbers")
    if len(value) != n:
        raise ValueError(f"{what} has {len(value)} values, expected {n}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # ragged nesting
        raise ValueError(f"{what} is nested, expected {n} numbers") from None
    if arr.dtype.kind == "O" and arr.shape == (n,):  # nulls, ints too big for int64, ...
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                   for v in value):
            raise ValueError(f"{what} holds values that are not numbers")
        # JSON null (NaN as JavaScript writes it) stays NaN, as it always read: harmless
        # on an unlabelled joint, bad_keypoints on a labelled one
        arr = np.array([np.nan if v is None else v for v in value], dtype=np.float64)
    elif arr.dtype.kind not in "iuf":
        raise ValueError(f"{what} holds values that are not numbers")
    if arr.shape != (n,):
        raise ValueError(f"{what} is nested, expected {n} numbers")
    return arr.astype(np.float64, copy=False)


def read_coco(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    dataset: str = "coco",
    keypoint_format: str | None = None,
    min_keypoints: int = 6,
    binarize: bool = True,
    rescale: float = 1.2,
) -> ReadResult:
    """Read a COCO-layout keypoint file.

    Args:
        path: the ``person_keypoints_*.json`` (or CrowdPose) file.
        image_root: folder of the images (``image_path = image_root / file_name``);
            default: the JSON's folder.
        dataset: id prefix and provenance name.
        keypoint_format: a :data:`eft.body.joints.KEYPOINT_FORMATS` name, for a file
            whose categories do not name their keypoints (or name ones this eft does not
            know); by default the format comes from the category's keypoint names.
        min_keypoints: fewest annotated GT keypoints (SPIN-49 slots 25..48) to keep.
        binarize: COCO visibility -> confidence 1 where ``v > 0``.
        rescale: crop side / longer box side.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    doc = _load(path)
    by_cat, fallback = _formats(path, doc, keypoint_format)
    images: dict = {}
    entries = doc.get("images") or []
    if not isinstance(entries, list):
        raise ReaderError(f"{path}: 'images' is a {type(entries).__name__}, not a list of "
                          "images")
    malformed: list[str] = []  # "images[i]: why", the entries left out
    for i, img in enumerate(entries):
        if not isinstance(img, dict):
            malformed.append(f"images[{i}] is not an object")
        elif not _is_key(img.get("id")):
            malformed.append(f"images[{i}] has id {img.get('id')!r}, not a number or string")
        else:
            images.setdefault(img["id"], img)
    no_image = "" if not malformed else (
        f"; {len(malformed)} malformed 'images' entries were left out ({malformed[0]}"
        + (", ..." if len(malformed) > 1 else "") + ")")
    # Three passes, so that the per-person numpy/torch work runs once over all people
    # (147k people of COCO 2017 train): record checks, batched keypoints/skip
    # reasons/crops, then the exemplars and skips in annotation-id order.
    records, seen, early = [], set(), []
    for i, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            early.append((f"{dataset}/#{i}", Skipped(f"{dataset}/#{i}", "bad_annotation",
                                                     "not an object")))
            continue
        ann_id = ann.get("id")
        cat = ann.get("category_id")
        if by_cat and cat is not None and not _is_key(cat):
            where = f"{dataset}/{ann_id}" if _is_key(ann_id) else f"{dataset}/#{i}"
            early.append((where, Skipped(where, "bad_annotation",
                                         f"category_id {cat!r} is not a number or string")))
            continue
        if by_cat and cat not in by_cat:
            continue  # another category (not people with these keypoints)
        if isinstance(ann_id, bool) or not isinstance(ann_id, (int, str)) or ann_id == "":
            early.append((f"{dataset}/#{i}", Skipped(f"{dataset}/#{i}", "bad_annotation",
                                                     f"id {ann_id!r}")))
            continue
        eid = f"{dataset}/{ann_id}"
        if ann_id in seen:
            early.append((eid, Skipped(eid, "duplicate_id", f"annotation {i} of the file")))
            continue
        seen.add(ann_id)
        records.append((ann_id, i, eid, ann))
    records.sort(key=lambda r: (isinstance(r[0], str), r[0]))
    kept: list = []
    raws: list = []
    fmts: list[J.KeypointFormat] = []
    for ann_id, _, eid, ann in records:
        fmt = by_cat.get(ann.get("category_id"), fallback) if by_cat else fallback
        skip = None
        if fmt is None:
            skip = Skipped(eid, "bad_annotation", "the file has no category naming its "
                           "keypoints; give keypoint_format")
        elif ann.get("iscrowd", 0):
            skip = Skipped(eid, "iscrowd")
        elif ann.get("image_id") is not None and not _is_key(ann.get("image_id")):
            skip = Skipped(eid, "bad_annotation",
                           f"image_id {ann.get('image_id')!r} is not a number or string")
        elif ann.get("image_id") not in images:
            skip = Skipped(eid, "missing_image", f"image_id {ann.get('image_id')!r} has no "
                           f"entry in 'images'{no_image}")
        else:
            try:
                raw = _numbers(ann.get("keypoints"), 3 * fmt.num_joints, "keypoints")
                box = _numbers(ann.get("bbox"), 4, "bbox")
            except ValueError as exc:
                skip = Skipped(eid, "bad_annotation", str(exc))
        kept.append((ann_id, eid, ann, skip))
        if skip is None:
            assert fmt is not None  # skipped above otherwise
            raws.append((raw, box))
            fmts.append(fmt)
    kps49 = np.zeros((len(raws), 49, 3))
    for cat_fmt in {id(f): f for f in fmts}.values():  # one format per category
        rows = [k for k, f in enumerate(fmts) if f is cat_fmt]
        kp = np.stack([raws[k][0] for k in rows]).reshape(-1, cat_fmt.num_joints, 3)
        kps49[rows] = J.to_spin49(kp, cat_fmt, binarize_visibility=binarize)
    reasons = keypoint_skip_reasons(kps49, min_keypoints)
    boxes = np.array([b for _, b in raws]).reshape(-1, 4)
    box_why = box_problems(boxes)
    good_box = np.array([w is None for w in box_why], dtype=bool)
    centers, scales = (t.numpy() for t in bbox_to_center_scale(
        torch.from_numpy(np.where(good_box[:, None], boxes, 1.0)), rescale))
    crop_why = crop_problems(centers, scales)
    paths: dict[str, str] = {}
    out = ReadResult(skipped=[s for _, s in early])
    k = -1
    for ann_id, eid, ann, skip in kept:
        if skip is not None:
            out.skipped.append(skip)
            continue
        k += 1
        reason = reasons[k]
        if reason is not None:
            out.skipped.append(Skipped(eid, *reason))
            continue
        why = box_why[k] or crop_why[k]
        if why is not None:
            out.skipped.append(Skipped(eid, "bad_bbox", why))
            continue
        img = images[ann["image_id"]]
        name = img.get("file_name") if isinstance(img.get("file_name"), str) else None
        if name and name not in paths:
            paths[name] = str(root / name)
        size = image_size_or_none(img.get("width"), img.get("height"))
        meta = {"annotId": ann_id, "imageId": ann["image_id"], "imageName": name,
                "dataset": dataset}
        out.exemplars.append(Exemplar(
            id=eid, image_path=paths[name] if name else None,
            center=centers[k].copy(), scale=float(scales[k]), keypoints=kps49[k].copy(),
            source=fmts[k].name, image_size=size, meta=meta,
        ))
    return out
