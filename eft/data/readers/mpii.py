"""MPII Human Pose: the official ``mpii_human_pose_v1_u12_1.mat`` and the common JSON form.

**JSON form** (HRNet / mmpose ``train.json``, ``valid.json``): a list of people,
``{"image": "005808361.jpg", "center": [x, y], "scale": s, "joints": 16 x [x, y],
"joints_vis": 16 x 0/1}``.  Entries of one image are numbered in file order: id
``"mpii/<image stem>/<k>"``.

**Official .mat** (needs scipy: ``pip install eft[datasets]``): ``RELEASE.annolist(i)``
has ``image.name`` and the people ``annorect(j)`` with the head box ``x1, y1, x2, y2``,
``objpos.x/y``, ``scale`` and ``annopoints.point(k)`` with ``id`` (0..15, MPII order),
``x``, ``y``, ``is_visible``; ``RELEASE.img_train(i)`` is 1 for training images and
``RELEASE.single_person{i}`` lists (1-based) the well separated people.  Id
``"mpii/<image stem>/<j>"``, ``j`` the 0-based ``annorect`` index (so ids from the JSON
form and from the .mat need not agree).

Both forms are MATLAB 1-based: with ``one_based=True`` (default) one pixel is taken off
the keypoints and the centre, giving 0-based pixel coordinates (pixel centres at
integers, as everywhere in ``eft``); ``one_based=False`` keeps the numbers as written
(SPIN's ``mpii_train.npz`` does, a 1 px shift).

Every annotated joint gets confidence 1, occluded ones too (``is_visible`` /
``joints_vis`` only say whether the point is visible; SPIN and EFT fit all annotated
points); the visibility flags are kept in ``meta["is_visible"]`` for the .mat form.

Crop (``crop``): ``"given"`` (default) uses the file's ``center`` / ``objpos`` and
``scale`` as they are, like SPIN and EFT (MPII's ``scale`` is person height / 200 px,
so the crop side ``200 * scale`` is about the person's height); people without a usable
centre/scale fall back to the keypoint box (``meta["crop_from"] = "keypoints"``).
``"keypoints"`` always uses the box of the annotated keypoints times ``rescale``.

Skipped, with a reason: ``no_keypoints``, ``too_few_keypoints`` (< ``min_keypoints``,
counted over SPIN-49's GT slots), ``bad_keypoints`` (NaN), ``bad_bbox`` (no usable crop),
``bad_annotation`` (malformed entry).
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from eft.body import joints as J
from eft.data.exemplar import Exemplar

from . import _matlab as M
from .base import ReaderError, ReadResult, Skipped, keypoint_box_center_scale

__all__ = ["read_mpii"]

_FMT = "mpii16"
_NJ = 16
_CROPS = ("given", "keypoints")
_SPLITS = ("train", "test", "all")


def read_mpii(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    dataset: str = "mpii",
    min_keypoints: int = 6,
    crop: str = "given",
    rescale: float = 1.2,
    one_based: bool = True,
    split: str = "train",
    single_person_only: bool = False,
) -> ReadResult:
    """Read MPII annotations (``.json`` common form or the official ``.mat``).

    Args:
        path: the ``.json`` or ``.mat`` file.
        image_root: folder of the images; default: the JSON's folder, or for the .mat
            ``<its folder>/../images`` when that exists, else its folder.
        dataset: id prefix and provenance name.
        min_keypoints: fewest annotated GT keypoints to keep a person (EFT: 6).
        crop: ``"given"`` (file centre/scale, SPIN) or ``"keypoints"`` (keypoint box).
        rescale: crop side / longer keypoint-box side, for ``crop="keypoints"`` and the
            fallback.
        one_based: the file's coordinates are MATLAB 1-based (subtract 1).
        split: .mat only - ``"train"`` (``img_train == 1``), ``"test"`` or ``"all"``.
        single_person_only: .mat only - keep only the people in ``single_person``.
    """
    path = Path(path)
    if crop not in _CROPS:
        raise ReaderError(f"mpii: crop must be one of {_CROPS}, got {crop!r}")
    if split not in _SPLITS:
        raise ReaderError(f"mpii: split must be one of {_SPLITS}, got {split!r}")
    opts = dict(dataset=dataset, min_keypoints=min_keypoints, crop=crop, rescale=rescale,
                offset=1.0 if one_based else 0.0)
    suffix = path.suffix.lower()
    if suffix == ".json":
        root = Path(image_root) if image_root is not None else path.parent
        return _read_json(path, root, **opts)
    if suffix == ".mat":
        if image_root is not None:
            root = Path(image_root)
        else:
            guess = path.parent.parent / "images"
            root = guess if guess.is_dir() else path.parent
        return _read_mat(path, root, split=split, single_person_only=single_person_only,
                         **opts)
    raise ReaderError(f"{path}: MPII annotations must be a .json or .mat file")


def _person(out: ReadResult, eid: str, raw16: np.ndarray, image_path: str, name: str,
            center: Any, scale: Any, meta: dict, *, dataset: str, min_keypoints: int,
            crop: str, rescale: float, offset: float) -> None:
    """Append one person (raw16: (16, 3) file coordinates, confidence) or its skip."""
    kps = raw16.copy()
    kps[:, :2] -= offset
    kps[~(kps[:, 2] > 0), :2] = 0.0  # missing joints (MPII writes -1, -1) -> zeros
    kps49 = J.to_spin49(kps, _FMT)
    if out.skip_unusable(eid, kps49, min_keypoints):
        return
    crop_from = "keypoints"
    cs = None
    if crop == "given" and center is not None and scale is not None:
        c = np.asarray(center, dtype=np.float64).reshape(-1)
        s = float(scale)
        if c.shape == (2,) and np.all(np.isfinite(c)) and np.isfinite(s) and s > 0 \
                and np.all(c >= 0):  # MPII writes -1 for "no centre"
            cs, crop_from = (c - offset, s), "given"
    if cs is None:
        cs = keypoint_box_center_scale(kps49, rescale)
    if cs is None:
        out.skipped.append(Skipped(eid, "bad_bbox", "no centre/scale and no keypoint box"))
        return
    out.exemplars.append(Exemplar(
        id=eid, image_path=image_path, center=np.asarray(cs[0], dtype=np.float64),
        scale=float(cs[1]), keypoints=kps49.astype(np.float64), source=_FMT,
        meta={"imageName": name, "dataset": dataset, "crop_from": crop_from, **meta},
    ))


def _read_json(path: Path, root: Path, **opts) -> ReadResult:
    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{path}: not a valid JSON file ({exc})") from None
    if not isinstance(entries, list) or (entries and not isinstance(entries[0], dict)):
        raise ReaderError(f"{path}: not an MPII JSON file (expected a list of people with "
                          "image, center, scale, joints, joints_vis)")
    dataset = opts["dataset"]
    out = ReadResult()
    per_image: dict[str, int] = {}
    for i, entry in enumerate(entries):
        name = entry.get("image") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            out.skipped.append(Skipped(f"{dataset}/#{i}", "bad_annotation", "no image name"))
            continue
        stem = PurePosixPath(name).stem
        k = per_image.get(name, 0)
        per_image[name] = k + 1
        eid = f"{dataset}/{stem}/{k}"
        try:
            xy = np.asarray(entry["joints"], dtype=np.float64).reshape(_NJ, 2)
            vis = np.asarray(entry.get("joints_vis", [1] * _NJ), dtype=np.float64).reshape(_NJ)
        except (KeyError, TypeError, ValueError) as exc:
            out.skipped.append(Skipped(eid, "bad_annotation", f"joints: {exc!r}"))
            continue
        raw = np.concatenate([xy, (vis > 0)[:, None].astype(np.float64)], axis=1)
        _person(out, eid, raw, str(root / name), name, entry.get("center"),
                entry.get("scale"), {"index": i}, **opts)
    return out


def _points(rect: Any) -> tuple[np.ndarray, list[int]] | None:
    """(16, 3) [x, y, annotated] and the 16 is_visible flags of one annorect; None when
    it has no annopoints."""
    ap = M.field(rect, "annopoints")
    if ap is None:
        return None
    pts = M.as_list(M.field(ap, "point"))
    if not pts:
        return None
    raw = np.zeros((_NJ, 3))
    visible = [0] * _NJ
    for p in pts:
        jid, x, y = M.scalar(M.field(p, "id")), M.scalar(M.field(p, "x")), \
            M.scalar(M.field(p, "y"))
        if jid is None or x is None or y is None or not 0 <= jid < _NJ:
            continue
        j = int(jid)
        raw[j] = (x, y, 1.0)
        v = M.scalar(M.field(p, "is_visible"))
        visible[j] = int(v) if v is not None else 1
    return raw, visible


def _read_mat(path: Path, root: Path, *, split: str, single_person_only: bool,
              **opts) -> ReadResult:
    mat = M.load_mat(path)
    release = mat.get("RELEASE")
    annolist = M.as_list(M.field(release, "annolist")) if release is not None else []
    if not annolist:
        raise ReaderError(f"{path}: no RELEASE.annolist (not the official MPII .mat)")
    train = M.as_list(M.field(release, "img_train"))
    if len(train) != len(annolist):
        raise ReaderError(f"{path}: RELEASE.img_train has {len(train)} entries for "
                          f"{len(annolist)} images")
    single = M.as_list(M.field(release, "single_person"))
    dataset = opts["dataset"]
    out = ReadResult()
    for i, item in enumerate(annolist):
        is_train = int(M.scalar(train[i]) or 0) == 1
        if (split == "train" and not is_train) or (split == "test" and is_train):
            continue
        image = M.field(item, "image")
        name = M.field(image, "name") if image is not None else None
        if not isinstance(name, str):
            out.skipped.append(Skipped(f"{dataset}/#{i}", "bad_annotation", "no image name"))
            continue
        stem = PurePosixPath(name).stem
        singles = {int(s) - 1 for s in (M.as_list(single[i]) if i < len(single) else [])
                   if M.scalar(s) is not None}
        for j, rect in enumerate(M.as_list(M.field(item, "annorect"))):
            if single_person_only and j not in singles:
                continue
            eid = f"{dataset}/{stem}/{j}"
            pts = _points(rect)
            if pts is None:
                out.skipped.append(Skipped(eid, "no_keypoints"))
                continue
            raw, visible = pts
            objpos = M.field(rect, "objpos")
            center = None
            if objpos is not None:
                ox, oy = M.scalar(M.field(objpos, "x")), M.scalar(M.field(objpos, "y"))
                center = None if ox is None or oy is None else (ox, oy)
            meta: dict[str, Any] = {"imageIndex": i, "rectIndex": j, "is_visible": visible,
                                    "train": is_train, "single_person": j in singles}
            head = [M.scalar(M.field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
            if all(h is not None for h in head):
                meta["head_box"] = [h - opts["offset"] for h in head]
            _person(out, eid, raw, str(root / name), name, center,
                    M.scalar(M.field(rect, "scale")), meta, **opts)
    return out
