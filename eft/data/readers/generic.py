"""A simple generic keypoint file, JSON or CSV, for data in no other supported format.

One record per person:

==================  ========  ==========================================================
field               required  meaning
==================  ========  ==========================================================
``image``           yes       image path, relative to ``image_root`` (default: the
                              file's folder) or absolute
``person_id``       no        unique id of the person; default ``<image stem>/<k>``, k
                              counting the image's people in file order (images
                              whose stem another image shares, e.g. seqA/img_0.jpg
                              and seqB/img_0.jpg, use the path without suffix)
``keypoint_format`` yes*      a name from :data:`eft.body.joints.KEYPOINT_FORMATS`
                              (``coco17``, ``mpii16``, ``lsp14``, ``posetrack17``,
                              ``crowdpose14``, ``openpose25``, ``openpose18``,
                              ``coco23``, ``aic14``, ``mpi_inf_3dhp17``,
                              ``h36m17_std`` (Human3.6M / mmpose order, index 1 =
                              right hip), ``h36m17_spin`` (SPIN's regressor order,
                              index 1 = left hip)) or ``spin49``
``keypoints``       yes       flat list ``x0 y0 c0 x1 y1 c1 ...`` (3K numbers) or
                              ``x0 y0 x1 y1 ...`` (2K, confidence 1), image pixels
                              (pixel centres at integers); confidence 0 = missing,
                              values are clipped to [0, 1] (so COCO's v = 2 reads as 1)
``bbox``            no        ``[x, y, w, h]`` person box (top-left corner, size);
                              default: the box of the keypoints
``image_size``      no        ``[width, height]`` of the image in pixels; default: read
                              from the image file's header when the file exists
``focal``           no        the camera's focal length in pixels (principal point at
                              the image centre); default: the image diagonal
==================  ========  ==========================================================

Boxes, image sizes and focal lengths are bounded like keypoints: a box side or corner
beyond :data:`~eft.data.readers.base.MAX_ABS_KEYPOINT_PX` (or a crop side ``200 * scale``
beyond it or under 1 px) is ``bad_bbox``, an image size or focal length outside
[1, MAX_ABS_KEYPOINT_PX] px is ``bad_annotation``.

The image size and focal length are used only by ``open-prior-exact``'s refinement
under each image's camera (``eft.fitting.perspective``), for exact labels; without an
image size that refinement leaves the person's fit as it is.

\\* or given once for the whole file (JSON top-level ``keypoint_format``, or the
``keypoint_format=`` option); a file-wide format that is not a known name is a
:class:`ReaderError` naming the known formats, a record's own one skips the record.

JSON: ``{"keypoint_format": "coco17", "people": [{"image": "a.jpg", "person_id": "a-0",
"keypoints": [...], "bbox": [x, y, w, h]}, ...]}`` or just the list of people.

CSV: a header row naming the columns above (any order; ``person_id`` and ``bbox``
optional), one person per row; ``keypoints`` and ``bbox`` cells hold the numbers
separated by spaces (commas, semicolons and brackets are also accepted inside a quoted
cell)::

    image,person_id,keypoint_format,keypoints,bbox
    img/a.jpg,a-0,lsp14,"10 20 1 12 40 1 ...",5 10 100 200

Id ``"<dataset>/<person_id>"`` (dataset default ``"generic"``).  Crop: SPIN's,
``scale = rescale * max(w, h) / 200`` around the box centre.  Skipped, with a reason:
``bad_annotation`` (missing field, unknown format, wrong number of values),
``duplicate_id``, ``bad_keypoints``, ``no_keypoints``, ``too_few_keypoints`` (EFT's
``min_keypoints = 6`` GT keypoints), ``bad_bbox``.  ``openpose25`` / ``openpose18``
keypoints fill SPIN-49's ``OP *`` slots and, as the OpenPose reader's default does, are
copied into the GT slots of the same body points (:func:`eft.body.joints.copy_openpose_to_gt`),
which EFT's loss weighs.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from eft.body import joints as J
from eft.data.exemplar import Exemplar

from .base import (
    ReaderError,
    ReadResult,
    Skipped,
    box_center_scale,
    box_problems,
    cached_image_size,
    camera_problem,
    keypoint_box_center_scale,
    keypoint_format_problem,
)

__all__ = ["read_generic", "GENERIC_FIELDS"]

GENERIC_FIELDS: tuple[str, ...] = ("image", "person_id", "keypoint_format", "keypoints", "bbox",
                                   "image_size", "focal")
_SPLIT = re.compile(r"[\s,;\[\]()]+")
_EXTRA_FORMATS = ("spin49",)


def _numbers(value: Any) -> np.ndarray:
    """A flat float array from a list or a string of numbers; ValueError otherwise."""
    if value is None:
        return np.zeros(0)
    if isinstance(value, str):
        parts = [p for p in _SPLIT.split(value.strip()) if p]
        return np.array([float(p) for p in parts], dtype=np.float64)
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _records(path: Path, keypoint_format: str | None) -> tuple[list[dict], str | None]:
    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReaderError(f"{path}: not a valid JSON file ({exc})") from None
        if isinstance(data, dict):
            top = data.get("keypoint_format")
            if keypoint_format is None and top is not None and top != "":
                problem = keypoint_format_problem(top, _EXTRA_FORMATS)
                if problem is not None:
                    raise ReaderError(f"{path}: top-level {problem}")
                keypoint_format = top
            data = data.get("people")
        if not isinstance(data, list):
            raise ReaderError(f"{path}: expected a list of people or "
                              "{\"people\": [...]} (see eft.data.readers.generic)")
        return data, keypoint_format
    if suffix == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                header = reader.fieldnames or []
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ReaderError(f"{path}: not a readable CSV file ({exc})") from None
        header = [h.strip() for h in header if h]
        missing = [c for c in ("image", "keypoints") if c not in header]
        if missing:
            raise ReaderError(f"{path}: CSV header lacks column(s) {missing}; "
                              f"expected {', '.join(GENERIC_FIELDS)}")
        rows = [{(k or "").strip(): (v.strip() if isinstance(v, str) else v)
                 for k, v in r.items()} for r in rows]
        for r in rows:
            for k in ("person_id", "bbox", "keypoint_format", "image_size", "focal"):
                if r.get(k) == "":
                    r[k] = None
        return rows, keypoint_format
    raise ReaderError(f"{path}: generic keypoints must be a .json or .csv file")


def _camera(rec: dict) -> tuple[tuple[int, int] | None, float | None]:
    """The record's ``image_size`` (W, H) and ``focal`` (px), each None when absent;
    ValueError when present and not numbers within [1, MAX_ABS_KEYPOINT_PX] px
    (:func:`~eft.data.readers.base.camera_problem`)."""
    size = _numbers(rec.get("image_size"))
    focal = _numbers(rec.get("focal"))
    problem = camera_problem(size if size.size else None, focal if focal.size else None)
    if problem is not None:
        raise ValueError(problem)
    return ((int(round(size[0])), int(round(size[1]))) if size.size else None,
            float(focal[0]) if focal.size else None)


def _to_spin49(fmt: str, values: np.ndarray) -> np.ndarray:
    """(49, 3) SPIN-49 from a flat list in format ``fmt``; ValueError on a bad size."""
    k = 49 if fmt == "spin49" else J.get_format(fmt).num_joints
    if values.size == 3 * k:
        kps = values.reshape(k, 3).copy()
    elif values.size == 2 * k:
        kps = np.concatenate([values.reshape(k, 2), np.ones((k, 1))], axis=1)
    else:
        raise ValueError(f"{values.size} keypoint values; {fmt} needs {3 * k} (x, y, c) "
                         f"or {2 * k} (x, y)")
    kps[:, 2] = np.clip(kps[:, 2], 0.0, 1.0)  # NaN stays NaN -> bad_keypoints
    return kps if fmt == "spin49" else J.to_spin49(kps, fmt)


def read_generic(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    dataset: str = "generic",
    keypoint_format: str | None = None,
    min_keypoints: int = 6,
    rescale: float = 1.2,
) -> ReadResult:
    """Read a generic keypoint ``.json`` or ``.csv`` (layout in the module docstring).

    Args:
        path: the file.
        image_root: folder that ``image`` paths are relative to; default its folder.
        dataset: id prefix and provenance name.
        keypoint_format: format of records that name none.
        min_keypoints: fewest annotated keypoints to keep a person (EFT: 6).
        rescale: crop side / longer box side.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    if keypoint_format is not None and keypoint_format != "":
        problem = keypoint_format_problem(keypoint_format, _EXTRA_FORMATS)
        if problem is not None:
            raise ReaderError(f"{path}: option {problem}")
    else:
        keypoint_format = None
    records, default_fmt = _records(path, keypoint_format)
    out = ReadResult()
    seen: set[str] = set()
    per_image: dict[str, int] = {}
    sizes: dict[Path, tuple[int, int] | None] = {}
    # stems that name several images (3DPW-style seqA/image_00000.jpg, seqB/...): those
    # images' default ids keep their folders; every other id stays <stem>/<k>
    images_by_stem: dict[str, set[str]] = {}
    for rec in records:
        if isinstance(rec, dict) and isinstance(rec.get("image"), str):
            images_by_stem.setdefault(PurePosixPath(rec["image"]).stem, set()).add(
                rec["image"])
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str) \
                or not rec["image"]:
            out.skipped.append(Skipped(f"{dataset}/#{i}", "bad_annotation", "no image"))
            continue
        image = rec["image"]
        k = per_image.get(image, 0)
        per_image[image] = k + 1
        pid = rec.get("person_id")
        if pid is None:
            ipath = PurePosixPath(image)
            shared = len(images_by_stem.get(ipath.stem, ())) > 1
            name = ipath.with_suffix("").as_posix().lstrip("/") if shared else ipath.stem
            pid = f"{name}/{k}"
        else:
            pid = str(pid)
        eid = f"{dataset}/{pid}"
        if eid in seen:
            out.skipped.append(Skipped(eid, "duplicate_id", f"record {i}"))
            continue
        seen.add(eid)
        own = rec.get("keypoint_format")
        if own is not None and own != "":
            problem = keypoint_format_problem(own, _EXTRA_FORMATS)
            if problem is not None:
                out.skipped.append(Skipped(eid, "bad_annotation", problem))
                continue
        fmt = str(own or default_fmt or "").lower()
        if not fmt:
            out.skipped.append(Skipped(eid, "bad_annotation", "no keypoint_format"))
            continue
        try:
            kps49 = _to_spin49(fmt, _numbers(rec.get("keypoints")))
            box = _numbers(rec.get("bbox"))
            size, focal = _camera(rec)
        except (TypeError, ValueError) as exc:
            out.skipped.append(Skipped(eid, "bad_annotation", str(exc)))
            continue
        if fmt.startswith("openpose"):  # as the OpenPose reader does: EFT's loss weighs
            J.copy_openpose_to_gt(kps49)  # the GT slots only
        if out.skip_unusable(eid, kps49, min_keypoints):
            continue
        cs = None
        if box.size:
            why = (f"bbox has {box.size} values, expected 4 (x, y, w, h)" if box.size != 4
                   else box_problems(box)[0])
            if why is not None:
                out.skipped.append(Skipped(eid, "bad_bbox", why))
                continue
            cs = box_center_scale(box[0], box[1], box[2], box[3], rescale=rescale)
        else:
            cs = keypoint_box_center_scale(kps49, rescale)
            if cs is None:
                out.skipped.append(Skipped(eid, "bad_bbox", "no bbox and no keypoint box"))
                continue
        if out.skip_bad_crop(eid, cs[0], cs[1]):
            continue
        img = Path(image)
        full = img if img.is_absolute() else root / img
        meta = {"imageName": img.name if img.is_absolute() else img.as_posix(),
                "personId": pid, "record": i, "dataset": dataset}
        if focal is not None:
            meta["focal"] = focal
        out.exemplars.append(Exemplar(
            id=eid, image_path=str(full), center=cs[0], scale=cs[1],
            keypoints=kps49.astype(np.float64), source=fmt,
            image_size=size if size is not None else cached_image_size(full, sizes), meta=meta,
        ))
    return out
