"""mmhuman3d HumanData npz (``HumanData.fromfile`` loads it).

What is written mirrors mmhuman3d's own EFT converter: ``image_path`` (relative to the
dataset's image root, folders kept), ``bbox_xywh`` (the square crop, confidence 1),
``config="eft"``, ``smpl`` (``global_orient`` (N, 3), ``body_pose`` (N, 23, 3),
``betas`` (N, 10), axis-angle), ``keypoints2d`` compressed by ``keypoints2d_mask`` in
mmhuman3d's 190-keypoint ``human_data`` convention, plus ``keypoints3d`` (the fit's own,
optional), ``__data_len__`` (mmhuman3d >= 0.6's name of ``__temporal_len__``) and a
``misc`` dict with our extras (fit ids, camera, annotation ids, provenance).  Lossy: no
quality, no exemplar metadata.

``smpl`` and ``misc`` must be dicts for ``HumanData.fromfile``, and an npz can hold a
dict only pickled.  Their pickles name no NumPy module that moved between versions:
every array is rebuilt through ``numpy.ndarray`` and ``numpy.dtype`` alone (NumPy's own
pickles name ``numpy._core.multiarray._reconstruct``, which NumPy < 1.26 cannot import:
``No module named 'numpy._core'``).  Every other key is a plain array or string that
loads with ``allow_pickle=False``.  :func:`read_humandata` unpickles with an allow-list
(numpy arrays and plain containers only), never running code from the file.

Reading also takes mmhuman3d's 2021 layout (``keypoints2d`` in its 144-keypoint
``smplx`` convention with a ``mask``, no ``__temporal_len__``); keypoints are mapped to
SPIN-49 by name.  A HumanData file without ``smpl`` holds no fits: reading it as an
annotation file is an error that says so.
"""

from __future__ import annotations

import copyreg
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from eft.data.readers.humandata import (
    HUMAN_DATA_NAMES,
    SMPLX_144_NAMES,
    SPIN49_HUMAN_DATA,
    SPIN49_TO_HUMAN_DATA,
    convention_names,
    keypoints_to_spin49,
    mask_of,
)

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

__all__ = ["write_humandata", "read_humandata", "HUMAN_DATA_NAMES", "SPIN49_TO_HUMAN_DATA",
           "SPIN49_HUMAN_DATA",
           "SMPLX_144_NAMES", "load_npz_safely", "portable_pickle", "is_humandata_layout"]


_ORDER = np.argsort(SPIN49_TO_HUMAN_DATA)  # SPIN slots in ascending HUMAN_DATA index


def write_humandata(columns: Columns, provenance: Provenance, path: str | os.PathLike,
                    missing: frozenset[str] = frozenset(), *,
                    keypoints3d: bool = True) -> Path:
    """Write a HumanData npz (atomically, ``np.savez_compressed`` like ``HumanData.dump``).

    ``keypoints3d``: also write the fit's 3D keypoints (``keypoints3d`` + mask); an
    mmhuman3d trainer then uses them for its 3D keypoint loss.  False leaves them out.
    """
    c = columns
    n = len(c)
    mask = np.zeros(190, np.uint8)
    mask[SPIN49_TO_HUMAN_DATA] = 1
    side = 200.0 * c.scale
    bbox = np.stack([c.center[:, 0] - side / 2, c.center[:, 1] - side / 2, side, side,
                     np.ones(n)], axis=1) if n else np.zeros((0, 5))
    aa = c.pose_aa.reshape(n, 24, 3)
    lost = set(missing) | {"quality", "exemplar_meta"}
    data: dict[str, Any] = {
        "__key_strict__": False,
        "__data_len__": n,
        "__keypoints_compressed__": True,
        "image_path": np.array([str(p) for p in c.image_names()] if n else [], dtype=str),
        "bbox_xywh": bbox.astype(np.float64),
        "config": "eft",
        "keypoints2d": c.keypoints2d[:, _ORDER].astype(np.float32),
        "keypoints2d_mask": mask,
        "keypoints2d_convention": "human_data",
        "smpl": {"global_orient": aa[:, 0].astype(np.float32).copy(),
                 "body_pose": aa[:, 1:].astype(np.float32).copy(),
                 "betas": c.betas.astype(np.float32).copy()},
    }
    if keypoints3d and "keypoints3d" not in missing:
        kp3 = c.keypoints3d.astype(np.float32)
        conf = np.asarray(np.isfinite(kp3).all(axis=2)).astype(np.float32)[..., None]
        data["keypoints3d"] = np.concatenate([np.nan_to_num(kp3), conf], axis=2)[:, _ORDER]
        data["keypoints3d_mask"] = mask.copy()
        data["keypoints3d_convention"] = "human_data"
    else:
        lost.add("keypoints3d")
    data["misc"] = {
        "eft_format": FORMAT_NAME,
        "eft_schema_version": SCHEMA_VERSION,
        "eft_provenance": json.dumps(provenance.to_dict(), ensure_ascii=False),
        "eft_missing": json.dumps(sorted(lost)),
        "eft_fit_id": np.array([str(i) for i in c.fit_id] if n else [], dtype=str),
        "eft_cam": c.cam_weak.astype(np.float32),
        "eft_annot_id": c.annot_ids(),
        "eft_center": c.center.astype(np.float64),
        "eft_scale": c.scale.astype(np.float64),
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            _savez_portable(fh, data)
        fsync_file(tmp)
    return Path(path)


# -- portable writing -----------------------------------------------------------------

class _PortablePickler(pickle.Pickler):
    """Pickles arrays as ``numpy.ndarray.__new__`` + ``__setstate__`` (NEWOBJ), so the
    only globals are ``numpy.ndarray`` and ``numpy.dtype``: NumPy 1.x and 2.x load it."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray:
            return (copyreg.__newobj__,  # type: ignore[attr-defined]
                    (np.ndarray, (0,), "b"), obj.__reduce__()[2])
        return NotImplemented


def _no_numpy_scalars(obj: Any) -> Any:
    """``obj`` with NumPy scalars (inside dicts, lists, tuples) as Python numbers."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _no_numpy_scalars(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_no_numpy_scalars(v) for v in obj)
    return obj


def portable_pickle(obj: Any) -> bytes:
    """Pickle ``obj`` (dicts, lists, strings, numbers, NumPy arrays; NumPy scalars become
    Python numbers) naming no NumPy module but ``numpy`` itself (module docstring)."""
    buf = io.BytesIO()
    _PortablePickler(buf, protocol=3).dump(_no_numpy_scalars(obj))
    return buf.getvalue()


def _savez_portable(fh, data: dict[str, Any]) -> None:
    """``np.savez_compressed(fh, **data)``, but objects (dicts) pickled portably."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in data.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                if isinstance(value, (dict, list)):
                    arr = np.empty((), dtype=object)
                    arr[()] = value
                    np.lib.format.write_array_header_1_0(
                        member, np.lib.format.header_data_from_array_1_0(arr))
                    member.write(portable_pickle(arr))
                else:
                    np.lib.format.write_array(member, np.asanyarray(value),
                                              allow_pickle=False)


# -- safe loading ---------------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the file")


def load_npz_safely(path: str | os.PathLike) -> dict[str, Any]:
    """All arrays of an npz; object arrays (pickled dicts/lists) are unpickled with an
    allow-list of numpy reconstructors.  0-d arrays become their item."""
    out: dict[str, Any] = {}
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            key = member[:-4] if member.endswith(".npy") else member
            with zf.open(member) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    _, _, dtype = np.lib.format.read_array_header_1_0(fp)
                else:
                    _, _, dtype = np.lib.format.read_array_header_2_0(fp)
                value = _SafeUnpickler(fp).load() if dtype.hasobject else None
            if value is None:
                with zf.open(member) as fp:
                    value = np.lib.format.read_array(fp, allow_pickle=False)
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.item()
            out[key] = value
    return out


def _xyz(arr: Any, shape: tuple[int, ...], name: str, path, n: int) -> np.ndarray:
    a = np.asarray(arr, np.float64)
    if a.shape != (n, *shape):
        if a.size != n * int(np.prod(shape)):
            raise AnnotationError(f"{path}: '{name}' does not have {n} rows of shape {shape}")
        a = a.reshape(n, *shape)
    return a


def read_humandata(path: str | os.PathLike) -> tuple[FileHeader, Columns]:
    """Read a HumanData npz with SMPL parameters (ours, or another source's)."""
    path = Path(path)
    with reading(path, "HumanData npz"):
        data = load_npz_safely(path)
        smpl = data.get("smpl")
        if not isinstance(smpl, dict) or "body_pose" not in smpl:
            raise AnnotationError(_no_fits_message(path, data))
        misc = data.get("misc")
        misc = misc if isinstance(misc, dict) else {}
        ours = misc.get("eft_format") == FORMAT_NAME
        version = check_schema_version(misc.get("eft_schema_version"), path) if ours else None
        betas = np.asarray(smpl.get("betas"), np.float32)
        n = betas.shape[0]
        go = _xyz(smpl.get("global_orient"), (3,), "smpl.global_orient", path, n)
        body = _xyz(smpl["body_pose"], (23, 3), "smpl.body_pose", path, n)
        if betas.shape != (n, 10):
            raise AnnotationError(f"{path}: 'smpl.betas' must be (N, 10), got {betas.shape}")
        pose = np.concatenate([go, body.reshape(n, 69)], axis=1).astype(np.float32)
        kp2d = _keypoints(data, "keypoints2d", 3, n, path)
        if kp2d is None:
            kp2d = np.zeros((n, 49, 3))
        missing = set(json.loads(misc["eft_missing"])) if "eft_missing" in misc else set()
        kp3 = _keypoints(data, "keypoints3d", 4, n, path)
        if kp3 is not None:
            kp3d = np.where(kp3[..., 3:] > 0, kp3[..., :3], np.nan).astype(np.float32)
        else:
            kp3d = np.full((n, 49, 3), np.nan, np.float32)
            missing.add("keypoints3d")
        if "eft_center" in misc:
            center = _xyz(misc["eft_center"], (2,), "misc.eft_center", path, n)
            scale = _xyz(misc["eft_scale"], (), "misc.eft_scale", path, n)
        else:
            bbox = _xyz(data.get("bbox_xywh"), (np.asarray(data.get("bbox_xywh")).shape[-1],),
                        "bbox_xywh", path, n)
            center = bbox[:, :2] + bbox[:, 2:4] / 2
            scale = bbox[:, 2:4].max(axis=1) / 200.0
        if "eft_cam" in misc:
            cam = _xyz(misc["eft_cam"], (3,), "misc.eft_cam", path, n).astype(np.float32)
        else:
            cam = np.full((n, 3), np.nan, np.float32)
            missing.add("cam")
        ids = ([str(i) for i in misc["eft_fit_id"]] if "eft_fit_id" in misc
               else [f"{path.stem}/{i}" for i in range(n)])
        annot = (np.asarray(misc["eft_annot_id"], np.int64) if "eft_annot_id" in misc
                 else np.full(n, -1, np.int64))
        provenance = (provenance_from_json(misc.get("eft_provenance"), path) if ours
                      else Provenance.unknown("HumanData file not written by eft"))
        paths = data.get("image_path")
        images = [str(p) for p in (paths if paths is not None else [""] * n)]
        if len(images) != n or len(ids) != n or len(annot) != n:
            raise AnnotationError(f"{path}: image_path / ids do not have {n} rows")
    missing |= {"quality", "exemplar_meta"}
    if not ours:
        missing.add("provenance")
    metas = []
    for i in range(n):
        meta: dict[str, Any] = {"imageName": images[i].replace("\\", "/")}
        if annot[i] >= 0:
            meta["annotId"] = int(annot[i])
        if provenance.dataset:
            meta["dataset"] = provenance.dataset
        metas.append(meta)
    columns = Columns(
        fit_id=_object_array(ids), rotmat=aa_to_rotmat(pose), pose_aa=pose, betas=betas,
        cam_weak=cam, cam_t=weak_to_cam_t(cam, provenance.focal_length, provenance.img_res),
        keypoints3d=kp3d, center=center, scale=scale, keypoints2d=kp2d,
        quality=unknown_quality(kp2d, betas), image_path=_object_array(images),
        source=_object_array(["spin49"] * n), image_size=np.full((n, 2), -1, np.int64),
        meta=_object_array(metas))
    return FileHeader(provenance=provenance, missing=frozenset(missing),
                      schema_version=version, count=n, format="humandata"), columns


_LEN_KEYS = ("__data_len__", "__temporal_len__")


def is_humandata_layout(names: set[str]) -> bool:
    """Whether npz member names (without ``.npy``) look like a HumanData file of any
    mmhuman3d version (2021 files have ``keypoints2d`` + ``mask`` and no length key)."""
    return bool({"smpl", "smplx", *_LEN_KEYS} & names) or (
        "keypoints2d" in names and bool({"mask", "keypoints2d_mask"} & names)
        and "imgname" not in names)


def _no_fits_message(path, data: dict) -> str:
    """What a HumanData file without SMPL parameters holds, in one line."""
    held = []
    for key in ("keypoints2d", "keypoints3d"):
        arr = data.get(key)
        if isinstance(arr, np.ndarray) and arr.ndim == 3:
            held.append(f"{key} ({arr.shape[0]} people x {arr.shape[1]})")
    if isinstance(data.get("bbox_xywh"), np.ndarray):
        held.append("boxes")
    what = ", ".join(held) if held else "no people"
    return (f"{path}: HumanData file without SMPL fits (no 'smpl' dict): it holds {what}; "
            "there is nothing to read as annotations. To fit its people, use it as a "
            "dataset (eft fit, kind: humandata)")


def _keypoints(data: dict, key: str, dims: int, n: int, path) -> np.ndarray | None:
    """SPIN-49 slots of a HumanData keypoint array (compressed or padded), (N, 49, dims);
    slots the file does not have get zeros (confidence 0)."""
    if key not in data:
        return None
    raw = np.asarray(data[key], np.float64)
    if raw.ndim != 3 or raw.shape[0] != n or raw.shape[2] != dims:
        raise AnnotationError(f"{path}: '{key}' must be (N, K, {dims}), got {raw.shape}")
    try:
        names = convention_names(data, key, raw.shape[1])
    except ValueError as exc:
        raise AnnotationError(f"{path}: {exc}") from None
    mask = mask_of(data, key)
    present = mask if mask is not None and mask.size == raw.shape[1] else None
    return keypoints_to_spin49(raw, names, present)
