"""SPIN-style npz (what SPIN's and EFT's training code load): ``imgname`` (relative to
the dataset's image root, folders kept: ``train2014/x.jpg``), ``center``, ``scale``,
``part``, ``openpose``, ``pose``, ``shape``, ``has_smpl``, ``S`` and ``annotIds`` (the
annotation ids EFT's ``BaseDataset`` reads; -1 where none), plus ``eft_*`` keys SPIN
ignores (fit ids, camera, provenance).  Lossy: no quality, no 3D keypoints of the
OpenPose slots, no exemplar metadata beyond the image name and annotation id.  A row
with ``has_smpl`` 0 (a failed fit, written as zeros) reads back as a fit with NaN
parameters, not accepted, flagged ``non_finite``.  No
pickled objects: it loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ._io import (
    FileHeader,
    atomic_path,
    check_schema_version,
    fsync_file,
    provenance_from_json,
    reading,
)
from .columns import Columns, _object_array, aa_to_rotmat, unknown_quality, weak_to_cam_t
from .errors import AnnotationError
from .provenance import Provenance
from .record import FORMAT_NAME, SCHEMA_VERSION

__all__ = ["write_spin_npz", "read_spin_npz", "SPIN_KEYS"]

#: Keys SPIN's dataset class reads.
SPIN_KEYS = ("imgname", "center", "scale", "part", "openpose", "pose", "shape", "has_smpl",
             "S")


def _str_array(values) -> np.ndarray:
    values = [str(v) for v in values]
    width = max((len(v) for v in values), default=1) or 1
    return np.array(values, dtype=f"<U{width}")


def write_spin_npz(columns: Columns, provenance: Provenance, path: str | os.PathLike,
                   missing: frozenset[str] = frozenset(), *, keypoints3d: bool = True,
                   imgname_prefix: str = "") -> Path:
    """Write a SPIN npz (atomically).

    Args:
        keypoints3d: write ``S`` (N, 24, 4): the fit's own 3D keypoints of the 24 GT
            slots (metres, crop camera axes) with confidence 1.  A SPIN trainer then also
            applies its 3D keypoint loss to them; pass False to leave ``S`` out.
        imgname_prefix: prepended to each image name (e.g. ``"train2014/"``).
    """
    c = columns
    n = len(c)
    pose = c.pose_aa.astype(np.float64)
    shape = c.betas.astype(np.float64)
    finite = np.asarray(np.isfinite(pose).all(axis=1) & np.isfinite(shape).all(axis=1))
    pose[~finite] = 0.0
    shape[~finite] = 0.0
    names = [imgname_prefix + name for name in c.image_names()]
    arrays: dict[str, np.ndarray] = {
        "imgname": _str_array(names),
        "center": np.asarray(c.center, np.float64),
        "scale": np.asarray(c.scale, np.float64),
        "part": np.asarray(c.keypoints2d[:, 25:], np.float64),
        "openpose": np.asarray(c.keypoints2d[:, :25], np.float64),
        "pose": pose,
        "shape": shape,
        "has_smpl": finite.astype(np.float64),
    }
    lost = set(missing) | {"quality", "keypoints3d_openpose", "exemplar_meta"}
    if keypoints3d and "keypoints3d" not in missing:
        s3 = np.asarray(c.keypoints3d[:, 25:], np.float64)
        conf = np.asarray(np.isfinite(s3).all(axis=2)).astype(np.float64)[..., None]
        arrays["S"] = np.concatenate([np.nan_to_num(s3), conf], axis=2)
    else:
        lost.add("keypoints3d")
    arrays.update({
        "eft_format": np.array(FORMAT_NAME),
        "eft_schema_version": np.array(SCHEMA_VERSION, np.int64),
        "eft_provenance": np.array(json.dumps(provenance.to_dict(), ensure_ascii=False)),
        "eft_missing": np.array(json.dumps(sorted(lost))),
        "eft_fit_id": _str_array(c.fit_id) if n else np.zeros(0, "<U1"),
        "eft_cam": np.asarray(c.cam_weak, np.float32),
        "annotIds": c.annot_ids(),
    })
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        fsync_file(tmp)
    return Path(path)


def _get(npz, key: str, shape: tuple[int, ...], dtype, path) -> np.ndarray:
    arr = np.asarray(npz[key])
    n = arr.shape[0] if arr.ndim else -1
    if arr.shape != (n, *shape) or arr.ndim == 0:
        raise AnnotationError(f"{path}: '{key}' must have shape (N, {', '.join(map(str, shape))})"
                              f" got {arr.shape}".replace(", )", ")"))
    return arr.astype(dtype, copy=False)


def read_spin_npz(path: str | os.PathLike) -> tuple[FileHeader, Columns]:
    """Read a SPIN npz (ours, or any SPIN/EFT training file with SMPL parameters)."""
    path = Path(path)
    with reading(path, "SPIN npz"), np.load(path, allow_pickle=False) as npz:
        keys = set(npz.files)
        ours = "eft_schema_version" in keys
        version = check_schema_version(npz["eft_schema_version"], path) if ours else None
        for key in ("imgname", "center", "scale", "part"):
            if key not in keys:
                raise AnnotationError(f"{path}: not a SPIN npz (no '{key}')")
        if "pose" not in keys or "shape" not in keys:
            raise AnnotationError(f"{path}: SPIN npz without 'pose'/'shape' holds no fits")
        imgname = np.asarray(npz["imgname"]).astype(str)
        n = imgname.shape[0]
        center = _get(npz, "center", (2,), np.float64, path)
        scale = _get(npz, "scale", (), np.float64, path)
        part = _get(npz, "part", (24, 3), np.float64, path)
        openpose = (_get(npz, "openpose", (25, 3), np.float64, path) if "openpose" in keys
                    else np.zeros((n, 25, 3)))
        pose = _get(npz, "pose", (72,), np.float32, path)
        betas = _get(npz, "shape", (10,), np.float32, path)
        has_smpl = (_get(npz, "has_smpl", (), np.float64, path) > 0 if "has_smpl" in keys
                    else np.ones(n, bool))
        s3 = _get(npz, "S", (24, 4), np.float32, path) if "S" in keys else None
        cam = _get(npz, "eft_cam", (3,), np.float32, path) if "eft_cam" in keys else None
        ids = (np.asarray(npz["eft_fit_id"]).astype(str).tolist() if "eft_fit_id" in keys
               else [f"{path.stem}/{i}" for i in range(n)])
        annot_key = next((k for k in ("annotIds", "eft_annot_id") if k in keys), None)
        annot = (np.asarray(npz[annot_key]).astype(np.int64).reshape(-1) if annot_key
                 else np.full(n, -1, np.int64))
        provenance = provenance_from_json(
            str(npz["eft_provenance"]) if "eft_provenance" in keys else None, path)
        missing = set(json.loads(str(npz["eft_missing"]))) if "eft_missing" in keys else set()
        for name, arr in (("center", center), ("scale", scale), ("part", part),
                          ("openpose", openpose), ("pose", pose), ("shape", betas),
                          ("has_smpl", has_smpl),
                          ("eft_fit_id", ids), (annot_key or "annotIds", annot)):
            if len(arr) != n:
                raise AnnotationError(f"{path}: '{name}' has {len(arr)} rows, imgname {n}")
    missing |= {"quality", "exemplar_meta"}
    if not ours:
        missing.add("provenance")
    kp2d = np.concatenate([openpose, part], axis=1)
    kp3d = np.full((n, 49, 3), np.nan, np.float32)
    if s3 is not None:
        kp3d[:, 25:] = np.where(s3[..., 3:] > 0, s3[..., :3], np.nan)
        missing.add("keypoints3d_openpose")
    else:
        missing.add("keypoints3d")
    if cam is None:
        cam = np.full((n, 3), np.nan, np.float32)
        missing.add("cam")
    # has_smpl 0: no fit (ours write a failed fit's zeros so); its zeros are no rest pose
    pose, betas = pose.copy(), betas.copy()
    pose[~has_smpl] = np.nan
    betas[~has_smpl] = np.nan
    rotmat = aa_to_rotmat(pose)
    quality = unknown_quality(kp2d, betas)
    quality["accepted"][~has_smpl] = False
    for row in np.flatnonzero(~has_smpl).tolist():
        quality["flags"][row] = ("non_finite",)
    dataset = provenance.dataset
    metas = []
    for i in range(n):
        meta = {"imageName": imgname[i].replace("\\", "/")}
        if annot[i] >= 0:
            meta["annotId"] = int(annot[i])
        if dataset:
            meta["dataset"] = dataset
        metas.append(meta)
    columns = Columns(
        fit_id=_object_array(ids), rotmat=rotmat, pose_aa=pose, betas=betas, cam_weak=cam,
        cam_t=weak_to_cam_t(cam, provenance.focal_length, provenance.img_res),
        keypoints3d=kp3d, center=center, scale=scale, keypoints2d=kp2d,
        quality=quality, image_path=_object_array(imgname.tolist()),
        source=_object_array(["spin49"] * n), image_size=np.full((n, 2), -1, np.int64),
        meta=_object_array(metas))
    header = FileHeader(provenance=provenance, missing=frozenset(missing),
                        schema_version=version, count=n, format="spin-npz")
    return header, columns
