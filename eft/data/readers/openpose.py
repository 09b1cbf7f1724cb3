"""OpenPose output: a folder of ``<stem>_keypoints.json`` files (``--write_json``).

Each file is one image: ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]}``
with 25 keypoints (BODY_25, 75 numbers) or 18 (the COCO-18 model, 54 numbers); every
person becomes an exemplar, id ``"openpose/<stem>/<person index>"`` (``<stem>`` keeps
sub-folders, e.g. ``clip1/frame_000012``).  The image is ``<image_root>/<stem>.<ext>``
for the first of ``image_extensions`` that exists; a file with no image is skipped
(``no_image``).

Keypoints with confidence below ``conf_threshold`` are dropped (confidence 0); the
others keep OpenPose's confidence (``binarize=True`` makes them 1).  They fill SPIN-49's
``OP *`` slots; since EFT gives those slots weight 0 by default, ``gt_slots=True``
(default) also copies every joint with a ground-truth twin (nose, neck, eyes, ears,
limbs; not MidHip or the feet) into that GT slot, so the default fit uses them (a job
with ``gt_slots: false`` must set ``eft.openpose_weight``, :class:`~eft.jobs.JobConfig`
refuses it otherwise).  The
crop is the keypoint box times ``rescale``.  Skipped with a reason: ``no_image``,
``no_keypoints`` / ``too_few_keypoints`` (fewer than ``min_keypoints`` kept keypoints),
``bad_keypoints``, ``bad_bbox`` (no crop, or an absurd one), ``bad_annotation`` (wrong
number of values); an unreadable JSON file skips its image as ``bad_annotation``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eft.body import joints as J
from eft.data.exemplar import Exemplar

from .base import ReaderError, ReadResult, Skipped, keypoint_box_center_scale

__all__ = ["read_openpose", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp",
                                     ".JPG", ".JPEG", ".PNG")
_SUFFIX = "_keypoints.json"
_FORMAT_BY_COUNT = {25: "openpose25", 18: "openpose18"}

# SPIN-49 index of each OpenPose slot that has a GT twin -> the twin's index.
def _stem(f: Path, folder: Path) -> str:
    rel = f.relative_to(folder).as_posix()
    return rel[: -len(_SUFFIX)]


def _find_image(root: Path, stem: str, exts: Sequence[str]) -> Path | None:
    for ext in exts:
        p = root / (stem + ext)
        if p.is_file():
            return p
    return None


def read_openpose(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    dataset: str = "openpose",
    min_keypoints: int = 6,
    conf_threshold: float = 0.1,
    binarize: bool = False,
    gt_slots: bool = True,
    rescale: float = 1.2,
    image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ReadResult:
    """Read a folder of OpenPose ``*_keypoints.json`` files (searched recursively).

    Args:
        path: the folder (or a single ``*_keypoints.json`` file).
        image_root: folder of the images, same sub-folders as ``path``; default ``path``.
        dataset: id prefix and provenance name.
        min_keypoints: fewest kept keypoints (confidence >= threshold) per person.
        conf_threshold: keypoints below this confidence are dropped.
        binarize: kept keypoints get confidence 1 instead of OpenPose's.
        gt_slots: also write joints into their SPIN GT slots (see module docstring).
        rescale: crop side / longer side of the keypoint box.
        image_extensions: image suffixes tried, in order.
    """
    path = Path(path)
    if path.is_file():
        folder, files = path.parent, [path]
    elif path.is_dir():
        folder = path
        files = sorted(f for f in path.rglob("*" + _SUFFIX) if f.is_file())
        if not files:
            raise ReaderError(f"{path}: no OpenPose *{_SUFFIX} files in this folder")
    else:
        raise ReaderError(f"{path}: no such OpenPose output folder")
    root = Path(image_root) if image_root is not None else folder
    out = ReadResult()
    for f in files:
        stem = _stem(f, folder)
        try:
            people = json.loads(f.read_text()).get("people")
            if not isinstance(people, list):
                raise ValueError("no 'people' list")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, ValueError) as exc:
            out.skipped.append(Skipped(f"{dataset}/{stem}", "bad_annotation",
                                       f"{f.name}: {exc}"))
            continue
        if not people:
            continue
        image = _find_image(root, stem, image_extensions)
        for p, person in enumerate(people):
            eid = f"{dataset}/{stem}/{p}"
            if image is None:
                out.skipped.append(Skipped(eid, "no_image", f"no {stem}.* in {root}"))
                continue
            try:
                values = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
                if values is None:  # (OpenPose < 1.2 wrote "pose_keypoints")
                    raise ValueError("no pose_keypoints_2d")
                raw = np.asarray(values, dtype=np.float64)
            except (AttributeError, TypeError, ValueError) as exc:
                out.skipped.append(Skipped(eid, "bad_annotation", f"pose_keypoints_2d: {exc!r}"))
                continue
            fmt = _FORMAT_BY_COUNT.get(raw.size // 3) if raw.size % 3 == 0 else None
            if fmt is None:
                out.skipped.append(Skipped(eid, "bad_annotation",
                                           f"{raw.size} values; expected 75 (BODY_25) or "
                                           "54 (COCO-18)"))
                continue
            kps = raw.reshape(-1, 3).copy()
            drop = ~(kps[:, 2] >= conf_threshold)  # NaN confidence drops too
            kps[drop] = 0.0
            if binarize:
                kps[~drop, 2] = 1.0
            kps49 = J.to_spin49(kps, fmt)
            if gt_slots:
                J.copy_openpose_to_gt(kps49)
            # count the kept keypoints: GT slots when filled, else the OpenPose slots
            if out.skip_unusable(eid, kps49, min_keypoints, gt=gt_slots):
                continue
            cs = keypoint_box_center_scale(kps49, rescale)
            if cs is None:
                out.skipped.append(Skipped(eid, "bad_bbox", "degenerate keypoint box"))
                continue
            if out.skip_bad_crop(eid, cs[0], cs[1]):
                continue
            out.exemplars.append(Exemplar(
                id=eid, image_path=str(image), center=cs[0], scale=cs[1],
                keypoints=kps49, source=fmt,
                meta={"imageName": _relative_name(image, root), "stem": stem,
                      "personIndex": p,
                      "file": f.name, "dataset": dataset},
            ))
    return out


def _relative_name(image: Path, root: Path) -> str:
    """``image`` relative to the image root, sub-folders kept (``clip1/frame_1.png``)."""
    try:
        return image.relative_to(root).as_posix()
    except ValueError:
        return image.name
