"""A bank of SMPL body poses retargeted from CMU motion capture.

The package ships ``eft/synthetic/assets/pose_bank.npz``, built by
``scripts/build_pose_bank.py`` from the CMU clips in ``shared/data/mocap`` (see
``eft/synthetic/assets/POSE_BANK.md`` for how, and the numbers).  :func:`load_pose_bank`
reads it (or any bank the script wrote) into a :class:`PoseBank`.

Poses are SMPL axis-angle vectors (72 = 24 joints x 3, joint 0 the global orientation,
y up, facing +z at zero rotation) fitted to the mocap with the open body model and
betas 0.  The global orientation is the subject's orientation in the capture; replace
it when only the body articulation is wanted.  Every pose also has its left/right mirror
image (``mirrored``), kept in the same train/val split as its source clip.

The data were obtained from mocap.cs.cmu.edu (free for all uses; may not be resold as
data, even converted); anything derived from the bank must carry
:data:`ACKNOWLEDGEMENT`.  See ``eft/synthetic/assets/LICENSE-pose-bank.md``.

The module also holds the building blocks the build script uses and the tests check:
:func:`pose_distance_deg`, :func:`dedup_poses` and :func:`remove_heading`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from eft.errors import EftError

__all__ = [
    "ACKNOWLEDGEMENT",
    "CMU_TERMS",
    "PoseBank",
    "PoseBankError",
    "default_pose_bank_path",
    "load_pose_bank",
    "remove_heading",
    "pose_distance_deg",
    "dedup_poses",
]

ACKNOWLEDGEMENT = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)
CMU_TERMS = (
    "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu): free for all uses; "
    "the data may not be resold as data, even converted."
)

SPLITS = {"train": 0, "val": 1}
_REQUIRED = ("poses", "clip", "clip_names", "split", "mirrored", "residual_mm", "fps")
NUM_JOINTS = 24


class PoseBankError(EftError):
    """A pose bank file is missing, unreadable or inconsistent."""


def default_pose_bank_path() -> Path:
    """Path of the pose bank shipped inside the package."""
    return Path(str(resources.files("eft.synthetic") / "assets" / "pose_bank.npz"))


@dataclass(frozen=True, eq=False)
class PoseBank:
    """SMPL poses with their provenance.

    Attributes:
        poses: (N, 72) float32 axis-angle, joint 0 the global orientation.
        clip: (N,) int32 index into ``clip_names``.
        clip_names: (C,) str, source clip of each index (path under the mocap root,
            without ``.bvh``).
        split: (N,) uint8, 0 train, 1 val (whole clips; mirrored copies follow their
            source).
        mirrored: (N,) bool, the row is the left/right mirror of another row.
        residual_mm: (N,) float32 mean joint residual of the fit (hip-centre-relative,
            see ``eft.synthetic.mocap.retarget``; mostly limb-length differences between the mocap
            skeleton and the body model).
        fps: frame rate the clips were sampled at before deduplication.
        mirror_of: (N,) int32 row of the pose a mirrored row mirrors, -1 for originals
            (and for mirrored rows whose source is not in this bank, after subsetting).
        frame: (N,) int32 frame of the source clip (at its native rate), -1 if unknown.
        direction_deg: (N,) float32 mean angle between fitted and target bone
            directions (what the retargeting minimises), NaN if unknown.
        meta: everything else in the file (``source``, ``acknowledgement``, build
            settings and statistics).
    """

    poses: np.ndarray
    clip: np.ndarray
    clip_names: tuple[str, ...]
    split: np.ndarray
    mirrored: np.ndarray
    residual_mm: np.ndarray
    fps: float
    mirror_of: np.ndarray | None = None
    frame: np.ndarray | None = None
    direction_deg: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        poses = np.asarray(self.poses, dtype=np.float32)
        if poses.ndim != 2 or poses.shape[1] != 3 * NUM_JOINTS:
            raise PoseBankError(f"pose bank: poses must have shape (N, 72), got {poses.shape}")
        n = poses.shape[0]
        names = tuple(str(c) for c in self.clip_names)

        def column(value, dtype, default):
            arr = np.full(n, default, dtype=dtype) if value is None else np.asarray(value)
            arr = arr.astype(dtype, copy=False).reshape(-1)
            if arr.shape != (n,):
                raise PoseBankError(f"pose bank: per-pose arrays must have {n} entries, "
                                    f"got {arr.shape}")
            arr = arr.copy()
            arr.setflags(write=False)
            return arr

        clip = column(self.clip, np.int32, 0)
        if n and (clip.min() < 0 or clip.max() >= len(names)):
            raise PoseBankError(f"pose bank: clip indices outside 0..{len(names) - 1}")
        split = column(self.split, np.uint8, 0)
        if n and split.max() > 1:
            raise PoseBankError("pose bank: split must be 0 (train) or 1 (val)")
        mirror_of = column(self.mirror_of, np.int32, -1)
        if n and (mirror_of.min() < -1 or mirror_of.max() >= n):
            raise PoseBankError("pose bank: mirror_of indices out of range")
        poses.setflags(write=False)
        object.__setattr__(self, "poses", poses)
        object.__setattr__(self, "clip", clip)
        object.__setattr__(self, "clip_names", names)
        object.__setattr__(self, "split", split)
        object.__setattr__(self, "mirrored", column(self.mirrored, bool, False))
        object.__setattr__(self, "residual_mm", column(self.residual_mm, np.float32, np.nan))
        object.__setattr__(self, "mirror_of", mirror_of)
        object.__setattr__(self, "frame", column(self.frame, np.int32, -1))
        object.__setattr__(self, "direction_deg",
                           column(self.direction_deg, np.float32, np.nan))
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "meta", dict(self.meta))

    def __len__(self) -> int:
        return int(self.poses.shape[0])

    def __repr__(self) -> str:
        return (f"PoseBank({len(self)} poses, {len(np.unique(self.clip))} clips, "
                f"train {int((self.split == 0).sum())}, val {int((self.split == 1).sum())}, "
                f"{int(self.mirrored.sum())} mirrored, {self.fps:g} fps)")

    def subset(self, indices) -> PoseBank:
        """The bank restricted to ``indices`` (int array or boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        new_row = np.full(len(self), -1, dtype=np.int64)
        new_row[idx] = np.arange(len(idx))
        src = np.asarray(self.mirror_of)[idx]
        mirror_of = np.where(src >= 0, new_row[np.maximum(src, 0)], -1)
        return PoseBank(
            poses=self.poses[idx], clip=self.clip[idx], clip_names=self.clip_names,
            split=self.split[idx], mirrored=self.mirrored[idx],
            residual_mm=self.residual_mm[idx], fps=self.fps, mirror_of=mirror_of,
            frame=np.asarray(self.frame)[idx],
            direction_deg=np.asarray(self.direction_deg)[idx], meta=self.meta)

    def train(self) -> PoseBank:
        """Poses of the training clips (and their mirrors)."""
        return self.subset(self.split == SPLITS["train"])

    def val(self) -> PoseBank:
        """Poses of the held-out validation clips (and their mirrors)."""
        return self.subset(self.split == SPLITS["val"])

    def sample(self, n: int, seed: int | None = 0, *, replace: bool | None = None) -> np.ndarray:
        """(n, 72) float32 poses drawn uniformly at random.

        Without replacement when ``n <= len(self)`` (unless ``replace=True``), else with.
        The same ``seed`` gives the same poses.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if len(self) == 0 and n > 0:
            raise PoseBankError("cannot sample from an empty pose bank")
        if replace is None:
            replace = n > len(self)
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(self), size=n, replace=replace)
        return self.poses[idx].copy()


def load_pose_bank(path: str | Path | None = None, split: str | None = None) -> PoseBank:
    """Read a pose bank ``.npz`` (default: the one shipped in the package).

    ``split``: None for all poses, ``"train"`` or ``"val"``.  Raises
    :class:`PoseBankError` (an :class:`~eft.errors.EftError`) if the file is missing,
    unreadable or inconsistent.
    """
    if split not in (None, *SPLITS):
        raise ValueError(f"split must be None, 'train' or 'val', got {split!r}")
    p = default_pose_bank_path() if path is None else Path(path).expanduser()
    if not p.is_file():
        hint = (" (the package was installed without its data files: reinstall it, or "
                "build a bank with scripts/build_pose_bank.py)" if path is None else "")
        raise PoseBankError(f"pose bank not found: {p}{hint}")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile, OSError, ValueError ... for a damaged file
        raise PoseBankError(f"{p} is not a readable pose bank .npz ({exc})") from None
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise PoseBankError(f"{p} is not a pose bank: missing {', '.join(missing)}")
    poses = arrays.pop("poses")
    if not np.isfinite(poses).all():
        raise PoseBankError(f"{p}: poses contain non-finite values")
    meta = {}
    for key in list(arrays):
        if key in ("clip", "clip_names", "split", "mirrored", "residual_mm", "fps",
                   "mirror_of", "frame", "direction_deg"):
            continue
        value = arrays.pop(key)
        meta[key] = value.item() if value.ndim == 0 else value
    if isinstance(meta.get("build"), str):
        try:
            meta["build"] = json.loads(meta["build"])
        except json.JSONDecodeError:
            pass
    try:
        bank = PoseBank(
            poses=poses, clip=arrays["clip"], clip_names=tuple(arrays["clip_names"].tolist()),
            split=arrays["split"], mirrored=arrays["mirrored"],
            residual_mm=arrays["residual_mm"], fps=float(arrays["fps"]),
            mirror_of=arrays.get("mirror_of"), frame=arrays.get("frame"),
            direction_deg=arrays.get("direction_deg"), meta=meta)
    except PoseBankError as exc:
        raise PoseBankError(f"{p}: {exc}") from None
    if split == "train":
        return bank.train()
    if split == "val":
        return bank.val()
    return bank


# ------------------------------------------------------------------- building blocks


def _aa_to_quat(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternions (w, x, y, z)."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half) / angle, with its series for tiny angles
    k = np.where(angle > 1e-8, np.sin(half) / np.maximum(angle, 1e-300), 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half), k * aa], axis=-1)


def _quat_to_aa(q: np.ndarray) -> np.ndarray:
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    k = np.where(s > 1e-12, angle / np.maximum(s, 1e-300), 2.0 / np.maximum(q[..., :1], 1e-12))
    return k * v


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def remove_heading(poses: np.ndarray) -> np.ndarray:
    """Poses (..., 72) with the global orientation's rotation about the vertical (y)
    axis removed, so that the body faces +z (tilt and roll are kept).

    The heading is the direction of the root's forward axis (its +z) projected on the
    ground plane.  For a root lying face up or down that projection is short and the
    heading poorly defined, which only matters for deduplicating such poses.
    """
    poses = np.asarray(poses, dtype=np.float64)
    out = poses.copy()
    q = _aa_to_quat(poses[..., :3])
    w, x, y, z = np.moveaxis(q, -1, 0)
    # forward = R e_z = (2(xz + wy), 2(yz - wx), 1 - 2(x^2 + y^2))
    fx = 2.0 * (x * z + w * y)
    fz = 1.0 - 2.0 * (x * x + y * y)
    heading = np.arctan2(fx, fz)
    undo = np.stack([np.cos(-heading / 2), np.zeros_like(heading), np.sin(-heading / 2),
                     np.zeros_like(heading)], axis=-1)
    out[..., :3] = _quat_to_aa(_quat_mul(undo, q))
    return out


def _joint_quats(poses: np.ndarray, ignore_heading: bool) -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape[-1] != 3 * NUM_JOINTS:
        raise ValueError(f"poses must have shape (..., 72), got {poses.shape}")
    if ignore_heading:
        poses = remove_heading(poses)
    return _aa_to_quat(poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3))


def pose_distance_deg(a: np.ndarray, b: np.ndarray, *, ignore_heading: bool = True) -> np.ndarray:
    """Largest per-joint rotation angle (degrees) between poses ``a`` and ``b`` (..., 72).

    Every joint counts, the global orientation included; with ``ignore_heading`` its
    rotation about the vertical axis is removed from both first (see
    :func:`remove_heading`), so a pose turned to face elsewhere is the same pose.
    """
    qa = _joint_quats(a, ignore_heading)
    qb = _joint_quats(b, ignore_heading)
    dots = np.abs((qa * qb).sum(-1)).min(-1)
    return np.degrees(2.0 * np.arccos(np.clip(dots, 0.0, 1.0)))


def dedup_poses(poses: np.ndarray, threshold_deg: float = 7.5, *,
                ignore_heading: bool = True, groups=None) -> np.ndarray:
    """Indices of poses kept by greedy deduplication, in input order.

    Poses are visited in order; one is dropped when :func:`pose_distance_deg` to some
    already kept pose (of the same group, if ``groups`` (N,) is given; e.g. the clip)
    is below ``threshold_deg``, i.e. every joint is within the threshold of it.
    Exact duplicates are always dropped (also with ``threshold_deg=0``).
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2:
        raise ValueError(f"poses must have shape (N, 72), got {poses.shape}")
    if threshold_deg < 0:
        raise ValueError(f"threshold_deg must be >= 0, got {threshold_deg}")
    n = poses.shape[0]
    quats = _joint_quats(poses, ignore_heading)
    # |<q1, q2>| >= cos(t / 2) for every joint  <=>  every joint within angle t
    limit = np.cos(np.radians(threshold_deg) / 2.0)
    group_ids = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    if group_ids.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {group_ids.shape}")
    keep: list[int] = []
    for g in np.unique(group_ids):
        members = np.flatnonzero(group_ids == g)
        kept = np.zeros((len(members),) + quats.shape[1:])
        count = 0
        for i in members:
            if count:
                dots = np.abs(np.einsum("kjc,jc->kj", kept[:count], quats[i])).min(-1)
                if dots.max() >= limit - 1e-12:
                    continue
            kept[count] = quats[i]
            count += 1
            keep.append(int(i))
    return np.array(sorted(keep), dtype=np.int64)
