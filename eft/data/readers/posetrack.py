"""PoseTrack annotations: the 2018 COCO-like JSON (one file per video) and the 2017
``annolist`` JSON.

**2018** (``{"images": [...], "annotations": [...], "categories": [...]}``): images carry
``file_name`` (e.g. ``images/val/000342_mpii_test/000000.jpg``, relative to the dataset
root), ``id``, ``vid_id``, ``frame_id``; annotations carry ``id``, ``image_id``,
``track_id``, ``bbox`` ``[x, y, w, h]``, ``bbox_head`` and ``keypoints`` (17 x [x, y, v]
in the ``posetrack17`` order: nose, head_bottom, head_top, ears, then COCO's limbs;
the ears are never annotated).  Id ``"posetrack/<annotation id>"`` - PoseTrack's ids
are unique over the whole dataset, so ids are stable however the files are grouped.

**2017** (``{"annolist": [{"image": [{"name": ...}], "annorect": [{"track_id": [t],
"annopoints": [{"point": [{"id": [k], "x": [..], "y": [..], "is_visible": [..]}]}]}]}]}``,
every value wrapped in a list): 15 joints with PoseTrack-2017 ids (0-11 the LSP limbs,
12 neck = head_bottom, 13 nose, 14 head_top), placed by name into ``posetrack17``.  Id
``"posetrack/<file stem>/<frame index>/<track id>"`` (the rect index when a person has
no track id).

``path`` is one JSON file or a folder, read recursively in sorted order.  Images:
``image_root / file_name``; by default ``image_root`` is the nearest folder at or above
the JSON's folder that contains the first component of ``file_name`` (``images/``),
else the JSON's folder.  Crop: SPIN's box crop from ``bbox`` (``scale = 1.2 * max(w, h) /
200``), or from the keypoint box when there is no usable ``bbox`` (and always for 2017)
- ``meta["crop_from"]`` says which.  Visibility ``v > 0`` becomes confidence 1.  Frames
marked ``is_labeled: false`` have no people.  Skipped, with a reason: ``no_keypoints``,
``too_few_keypoints``, ``bad_keypoints``, ``bad_bbox`` (no crop, or an absurd box or
crop: beyond :data:`~eft.data.readers.base.MAX_ABS_KEYPOINT_PX`), ``bad_annotation`` and
``duplicate_id`` (an id already read from another file).  An image ``width`` /
``height`` that is not a usable size is left out.
"""

from __future__ import annotations

import json
import os
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
    image_size_or_none,
    keypoint_box_center_scale,
)

__all__ = ["read_posetrack", "POSETRACK2017_JOINTS"]

_FMT = "posetrack17"
_NJ = 17

# PoseTrack 2017 joint id -> posetrack17 joint name (poseval's Joint table).
POSETRACK2017_JOINTS: dict[int, str] = {
    0: "right_ankle", 1: "right_knee", 2: "right_hip", 3: "left_hip", 4: "left_knee",
    5: "left_ankle", 6: "right_wrist", 7: "right_elbow", 8: "right_shoulder",
    9: "left_shoulder", 10: "left_elbow", 11: "left_wrist", 12: "head_bottom", 13: "nose",
    14: "head_top",
}
_SLOT = {name: J.POSETRACK17_NAMES.index(name) for name in POSETRACK2017_JOINTS.values()}


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise ReaderError(f"{path}: no .json files in this folder")
        return files
    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file or folder")
    return [path]


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{path}: not a valid JSON file ({exc})") from None
    if not isinstance(data, dict) or not ("annotations" in data or "annolist" in data):
        raise ReaderError(f"{path}: not a PoseTrack file (no 'annotations' or 'annolist')")
    return data


def _guess_root(json_path: Path, file_name: str | None) -> Path:
    parts = PurePosixPath(file_name).parts if file_name else ()
    first = parts[0] if parts else None
    if first and len(parts) > 1:
        for cand in (json_path.parent, *json_path.parent.parents):
            if (cand / first).is_dir():
                return cand
    return json_path.parent


def _unwrap(v: Any) -> Any:
    """PoseTrack 2017 wraps every value in a one-element list."""
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


def _number(v: Any) -> float | None:
    v = _unwrap(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_posetrack(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    dataset: str = "posetrack",
    min_keypoints: int = 6,
    rescale: float = 1.2,
) -> ReadResult:
    """Read PoseTrack 2018 or 2017 JSON (a file or a folder of per-video files).

    Args:
        path: a ``.json`` file or a folder of them.
        image_root: the folder ``file_name`` / ``image.name`` is relative to (default:
            found as described in the module docstring).
        dataset: id prefix and provenance name.
        min_keypoints: fewest annotated GT keypoints to keep a person (EFT: 6).
        rescale: crop side / longer box side.
    """
    path = Path(path)
    out = ReadResult()
    seen: set[str] = set()
    for f in _files(path):
        data = _load(f)
        part = (_read_2018(f, data, image_root, dataset, min_keypoints, rescale)
                if "annotations" in data
                else _read_2017(f, data, image_root, dataset, min_keypoints, rescale))
        for e in part.exemplars:
            if e.id in seen:
                out.skipped.append(Skipped(e.id, "duplicate_id", f"again in {f.name}"))
            else:
                seen.add(e.id)
                out.exemplars.append(e)
        out.skipped.extend(part.skipped)
    return out


def _make(out: ReadResult, eid: str, raw17: np.ndarray, bbox: Any, image_path: str | None,
          meta: dict, min_keypoints: int, rescale: float,
          size: tuple[int, int] | None = None) -> None:
    kps49 = J.to_spin49(raw17, _FMT, binarize_visibility=True)
    if out.skip_unusable(eid, kps49, min_keypoints):
        return
    cs, crop_from = None, "bbox"
    try:
        x, y, w, h = (float(v) for v in bbox)
        if w > 0 and h > 0 and np.all(np.isfinite([x, y, w, h])):
            why = box_problems(np.array([x, y, w, h]))[0]
            if why is not None:  # finite but absurd: a corrupt box
                out.skipped.append(Skipped(eid, "bad_bbox", why))
                return
            cs = box_center_scale(x, y, w, h, rescale)
    except (TypeError, ValueError):
        pass
    if cs is None:
        cs, crop_from = keypoint_box_center_scale(kps49, rescale), "keypoints"
    if cs is None:
        out.skipped.append(Skipped(eid, "bad_bbox", f"bbox {bbox} and no keypoint box"))
        return
    if out.skip_bad_crop(eid, cs[0], cs[1]):
        return
    out.exemplars.append(Exemplar(
        id=eid, image_path=image_path, center=cs[0], scale=cs[1],
        keypoints=kps49.astype(np.float64), source=_FMT, image_size=size,
        meta={**meta, "crop_from": crop_from},
    ))


def _read_2018(f: Path, data: dict, image_root, dataset: str, min_keypoints: int,
               rescale: float) -> ReadResult:
    images = {im.get("id"): im for im in data.get("images") or [] if isinstance(im, dict)}
    anns = [a for a in data.get("annotations") or [] if isinstance(a, dict)]
    if image_root is not None:
        root = Path(image_root)
    else:
        first = next(iter(images.values()), {}).get("file_name")
        root = _guess_root(f, first)
    out = ReadResult()

    def key(a: dict):
        aid = a.get("id")
        return (0, aid, "") if isinstance(aid, int) else (1, 0, str(aid))

    for a in sorted(anns, key=key):
        aid = a.get("id")
        img = images.get(a.get("image_id"), {})
        eid = f"{dataset}/{aid}"
        if aid is None:
            eid = f"{dataset}/{img.get('vid_id')}/{img.get('frame_id')}/{a.get('track_id')}"
        try:
            raw = np.asarray(a.get("keypoints") or [], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            out.skipped.append(Skipped(eid, "bad_annotation", f"keypoints: {exc}"))
            continue
        if raw.size == 0:
            out.skipped.append(Skipped(eid, "no_keypoints"))
            continue
        if raw.size != 3 * _NJ:
            out.skipped.append(Skipped(eid, "bad_annotation",
                                       f"{raw.size} keypoint values, expected {3 * _NJ}"))
            continue
        name = img.get("file_name")
        size = image_size_or_none(img.get("width"), img.get("height"))
        meta = {"annotId": aid, "imageId": a.get("image_id"), "trackId": a.get("track_id"),
                "vidId": img.get("vid_id"), "frameId": img.get("frame_id"),
                "imageName": name, "file": f.name, "dataset": dataset}
        _make(out, eid, raw.reshape(_NJ, 3), a.get("bbox"),
              str(root / name) if name else None, meta, min_keypoints, rescale, size)
    return out


def _read_2017(f: Path, data: dict, image_root, dataset: str, min_keypoints: int,
               rescale: float) -> ReadResult:
    annolist = data.get("annolist") or []
    names = []
    for item in annolist:
        image = _unwrap(item.get("image")) if isinstance(item, dict) else None
        names.append(image.get("name") if isinstance(image, dict) else None)
    root = Path(image_root) if image_root is not None else \
        _guess_root(f, next((n for n in names if n), None))
    out = ReadResult()
    for i, item in enumerate(annolist):
        name = names[i]
        if not isinstance(item, dict):
            out.skipped.append(Skipped(f"{dataset}/{f.stem}/{i}", "bad_annotation",
                                       "frame entry is not an object"))
            continue
        rects = item.get("annorect") or []
        if isinstance(rects, dict):
            rects = [rects]
        for j, rect in enumerate(rects):
            track = _number(rect.get("track_id")) if isinstance(rect, dict) else None
            tid = int(track) if track is not None else j
            eid = f"{dataset}/{f.stem}/{i}/{tid}"
            if not isinstance(rect, dict):
                out.skipped.append(Skipped(eid, "bad_annotation", "rect is not an object"))
                continue
            ap = _unwrap(rect.get("annopoints"))
            points = ap.get("point") if isinstance(ap, dict) else None
            if isinstance(points, dict):
                points = [points]
            if not points:
                out.skipped.append(Skipped(eid, "no_keypoints"))
                continue
            raw = np.zeros((_NJ, 3))
            for p in points:
                k, x, y = (_number(p.get(n)) if isinstance(p, dict) else None
                           for n in ("id", "x", "y"))
                if k is None or x is None or y is None or int(k) not in POSETRACK2017_JOINTS:
                    continue
                # annotated = confidence 1 (is_visible only tells occlusion)
                raw[_SLOT[POSETRACK2017_JOINTS[int(k)]]] = (x, y, 1.0)
            meta = {"trackId": track, "frameIndex": i, "rectIndex": j, "imageName": name,
                    "file": f.name, "dataset": dataset}
            _make(out, eid, raw, None, str(root / name) if name else None, meta,
                  min_keypoints, rescale)
    return out
