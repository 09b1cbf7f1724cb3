"""COCO ``person_keypoints`` files (and files in the same layout: CrowdPose), through
pycocotools.

One exemplar per annotated person, id ``"<dataset>/<annotation id>"``.  Crop: SPIN's,
from the annotation's ``bbox`` (``scale = 1.2 * max(w, h) / 200``).  COCO visibility
``v in {0, 1, 2}`` becomes confidence 1 for ``v > 0`` (SPIN), or is kept with
``binarize=False``.  Skipped, with a reason: ``iscrowd`` groups, people with no
keypoints (``no_keypoints``), non-finite annotated keypoints (``bad_keypoints``),
fewer GT keypoints than ``min_keypoints`` (``too_few_keypoints``, EFT's ">= 6") and
boxes of zero size (``bad_bbox``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from eft.body import joints as J
from eft.data.exemplar import Exemplar
from eft.geometry.crops import bbox_to_center_scale

from .base import ReaderError, ReadResult, Skipped, keypoint_skip_reasons

__all__ = ["read_coco"]

_FORMAT_BY_COUNT = {17: "coco17", 14: "crowdpose14"}


def _load(path: Path):
    from pycocotools.coco import COCO

    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints timings
            return COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{path}: not a valid JSON file ({exc})") from None
    except (KeyError, TypeError, AssertionError) as exc:
        raise ReaderError(f"{path}: not a COCO annotation file ({exc!r})") from None


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
        keypoint_format: ``"coco17"`` / ``"crowdpose14"`` / any
            :data:`eft.body.joints.KEYPOINT_FORMATS` name; default from the number of
            keypoints in the person category.
        min_keypoints: fewest annotated GT keypoints (SPIN-49 slots 25..48) to keep.
        binarize: COCO visibility -> confidence 1 where ``v > 0``.
        rescale: crop side / longer box side.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    coco = _load(path)
    cats = coco.loadCats(coco.getCatIds())
    cat = next((c for c in cats if c.get("keypoints")), None)
    if cat is None:
        raise ReaderError(f"{path}: no category with keypoints (not a person_keypoints file)")
    fmt = keypoint_format or _FORMAT_BY_COUNT.get(len(cat["keypoints"]))
    if fmt is None:
        raise ReaderError(f"{path}: {len(cat['keypoints'])} keypoints per person; "
                          "pass keypoint_format")
    nk = J.get_format(fmt).num_joints
    # Three passes, so that the per-person numpy/torch work runs once over all people
    # (147k people of COCO 2017 train): file checks, batched keypoints/skip
    # reasons/crops, then the exemplars and skips in annotation-id order.
    anns, early, raws = [], [], []
    for ann_id in sorted(coco.getAnnIds(catIds=[cat["id"]], iscrowd=None)):
        ann = coco.anns[ann_id]
        eid = f"{dataset}/{ann_id}"
        anns.append((eid, ann_id, ann))
        if ann.get("iscrowd", 0):
            early.append(Skipped(eid, "iscrowd"))
            continue
        raw = np.asarray(ann.get("keypoints") or [], dtype=np.float64)
        if raw.size != 3 * nk:
            early.append(Skipped(eid, "bad_annotation",
                                 f"{raw.size} keypoint values, expected {3 * nk}"))
            continue
        early.append(None)
        raws.append(raw)
    kps49 = J.to_spin49(np.stack(raws).reshape(-1, nk, 3) if raws else np.zeros((0, nk, 3)),
                        fmt, binarize_visibility=binarize).astype(np.float64)
    reasons = keypoint_skip_reasons(kps49, min_keypoints)
    boxes = np.zeros((len(raws), 4))
    good_box = np.zeros(len(raws), dtype=bool)
    k = 0
    for (_, _, ann), skip in zip(anns, early, strict=True):
        if skip is None:
            try:
                boxes[k] = np.asarray(ann.get("bbox", (0, 0, 0, 0)), dtype=np.float64)
                good_box[k] = boxes[k, 2] > 0 and boxes[k, 3] > 0
            except (TypeError, ValueError):
                pass
            k += 1
    centers, scales = (t.numpy() for t in bbox_to_center_scale(torch.from_numpy(boxes),
                                                               rescale))
    paths: dict[str, str] = {}
    out = ReadResult()
    k = -1
    for (eid, ann_id, ann), skip in zip(anns, early, strict=True):
        if skip is not None:
            out.skipped.append(skip)
            continue
        k += 1
        if reasons[k] is not None:
            out.skipped.append(Skipped(eid, *reasons[k]))
            continue
        if not good_box[k]:
            out.skipped.append(Skipped(eid, "bad_bbox", f"bbox {ann.get('bbox')}"))
            continue
        img = coco.imgs.get(ann["image_id"], {})
        name = img.get("file_name")
        if name and name not in paths:
            paths[name] = str(root / name)
        size = (int(img["width"]), int(img["height"])) if "width" in img else None
        out.exemplars.append(Exemplar(
            id=eid,
            image_path=paths[name] if name else None,
            center=centers[k].copy(), scale=float(scales[k]), keypoints=kps49[k].copy(),
            source=fmt, image_size=size,
            meta={"annotId": int(ann_id), "imageId": int(ann["image_id"]),
                  "imageName": name, "dataset": dataset},
        ))
    return out
