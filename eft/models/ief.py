"""SPIN's iterative-error-feedback (IEF) head and the mean parameters it starts from.

The head concatenates image (or keypoint) features with the current estimate
``[pose 144 (6D), betas 10, cam 3]`` and refines it ``n_iter`` times::

    x = drop2(fc2(drop1(fc1([features, pose, shape, cam]))))   # no ReLU in between
    pose, shape, cam = decpose(x) + pose, decshape(x) + shape, deccam(x) + cam

starting from the buffers ``init_pose`` (1, 144), ``init_shape`` (1, 10) and
``init_cam`` (1, 3).  The decoders ``dec*`` get xavier-uniform weights with gain
0.01, as in SPIN, so a fresh head stays close to the mean.

One implementation of the loop lives in :class:`IEFMixin`; it registers the layers
*on the module that uses it*, so a regressor built on it (``HMR``,
``KeypointRegressor``) has SPIN's key names (``fc1.weight``, ``decpose.bias``,
``init_pose`` ...) at the top level of its ``state_dict``.  :class:`IEFHead` is the
stand-alone head.

Mean parameters are a dict ``{"pose": (144,), "shape": (10,), "cam": (3,)}`` of float32
arrays: from SPIN's ``smpl_mean_params.npz`` (:func:`load_mean_params`), from a bank
of poses (:func:`mean_params_from_poses`) or :func:`default_mean_params`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from eft.errors import EftError
from eft.geometry.rotations import (
    axis_angle_to_rotmat,
    nearest_rotation,
    rot6d_to_rotmat,
    rotmat_to_rot6d,
)

from .output import RegressorOutput

__all__ = [
    "NUM_JOINTS",
    "POSE6D_DIM",
    "SHAPE_DIM",
    "CAM_DIM",
    "DEFAULT_CAM",
    "MeanParamsLike",
    "IEFHead",
    "IEFMixin",
    "default_mean_params",
    "load_mean_params",
    "mean_params_from_poses",
    "coerce_mean_params",
]

NUM_JOINTS = 24
POSE6D_DIM = NUM_JOINTS * 6  # 144
SHAPE_DIM = 10
CAM_DIM = 3
STATE_DIM = POSE6D_DIM + SHAPE_DIM + CAM_DIM  # 157
DEFAULT_CAM = (0.9, 0.0, 0.0)

#: What the ``mean_params`` arguments accept: ``None`` (the default), a path to an npz
#: file, or a mapping with keys ``pose``/``shape``/``cam`` (numpy arrays, tensors, lists).
MeanParamsLike = Mapping[str, Any] | str | os.PathLike | None


def default_mean_params() -> dict[str, np.ndarray]:
    """Mean parameters used when none are given.

    * pose: the SMPL rest pose, except that the global orientation is a rotation of pi
      about the x axis, ``diag(1, -1, -1)``.  SMPL's rest body stands upright along +y
      facing +z; image coordinates have y pointing down and the camera looks along +z,
      so this flip makes the body stand upright in the image and face the camera.
      SPIN's released mean pose has (approximately) the same global orientation.
    * shape: zeros (the mean body).
    * cam: ``[0.9, 0, 0]`` (body fills ~90 % of the crop, centred).
    """
    rot = np.tile(np.eye(3, dtype=np.float64), (NUM_JOINTS, 1, 1))
    rot[0] = np.diag([1.0, -1.0, -1.0])
    pose = rot[:, :, :2].reshape(POSE6D_DIM)  # SPIN 6D: first two columns, row-major
    return {
        "pose": pose.astype(np.float32),
        "shape": np.zeros(SHAPE_DIM, dtype=np.float32),
        "cam": np.asarray(DEFAULT_CAM, dtype=np.float32),
    }


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EftError(f"mean parameter {name!r} is not numeric: {exc}") from exc
    if not np.all(np.isfinite(arr)):
        raise EftError(f"mean parameter {name!r} contains NaN or infinite values")
    return arr


def _pose_to_6d(pose: np.ndarray) -> np.ndarray:
    """Accept 6D (144,) / (24, 6), axis-angle (72,) / (24, 3) or rotmats (24, 3, 3)."""
    if pose.shape in ((POSE6D_DIM,), (NUM_JOINTS, 6), (1, POSE6D_DIM)):
        return pose.reshape(POSE6D_DIM)
    if pose.shape in ((NUM_JOINTS * 3,), (NUM_JOINTS, 3), (1, NUM_JOINTS * 3)):
        rot = axis_angle_to_rotmat(torch.from_numpy(pose.reshape(NUM_JOINTS, 3)))
        return rotmat_to_rot6d(rot).numpy().reshape(POSE6D_DIM)
    if pose.shape == (NUM_JOINTS, 3, 3):
        return rotmat_to_rot6d(torch.from_numpy(pose)).numpy().reshape(POSE6D_DIM)
    raise EftError(
        "mean pose must be 6D (144,), axis-angle (72,) or rotation matrices (24, 3, 3); "
        f"got shape {pose.shape}"
    )


def coerce_mean_params(mean_params: MeanParamsLike) -> dict[str, np.ndarray]:
    """Normalise any accepted ``mean_params`` value to float32 arrays (144,), (10,), (3,).

    A mapping may omit ``shape`` (zeros) and ``cam`` (``[0.9, 0, 0]``), but not ``pose``.
    Raises :class:`EftError` for missing keys, wrong shapes or non-finite values.
    """
    if mean_params is None:
        return default_mean_params()
    if isinstance(mean_params, (str, os.PathLike)):
        return load_mean_params(mean_params)
    if not isinstance(mean_params, Mapping):
        raise EftError(
            "mean_params must be None, a path to an npz file or a mapping with keys "
            f"'pose', 'shape', 'cam'; got {type(mean_params).__name__}"
        )
    if "pose" not in mean_params:
        raise EftError("mean_params has no 'pose' entry")
    defaults = default_mean_params()
    pose = _pose_to_6d(_to_numpy("pose", mean_params["pose"]))
    out = {"pose": pose.astype(np.float32)}
    for key, size in (("shape", SHAPE_DIM), ("cam", CAM_DIM)):
        if key not in mean_params or mean_params[key] is None:
            out[key] = defaults[key]
            continue
        arr = _to_numpy(key, mean_params[key])
        if arr.size != size:
            raise EftError(f"mean parameter {key!r} must have {size} values, got {arr.shape}")
        out[key] = arr.reshape(size).astype(np.float32)
    # Gram-Schmidt needs two independent columns per joint.
    cols = out["pose"].astype(np.float64).reshape(NUM_JOINTS, 3, 2)
    if np.any(np.abs(np.cross(cols[..., 0], cols[..., 1])).sum(-1) < 1e-6):
        raise EftError("mean pose has a degenerate 6D entry (columns zero or parallel)")
    return out


def load_mean_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read SPIN's ``smpl_mean_params.npz`` (keys ``pose`` (144,) 6D, ``shape``, ``cam``).

    Returns float32 arrays ``{"pose": (144,), "shape": (10,), "cam": (3,)}``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise EftError(f"mean parameter file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {key: np.array(data[key]) for key in data.files}
    except (OSError, ValueError) as exc:
        raise EftError(f"cannot read mean parameters from {path}: {exc}") from exc
    missing = [key for key in ("pose", "shape", "cam") if key not in raw]
    if missing:
        raise EftError(f"{path} lacks mean parameter(s) {missing}; found {sorted(raw)}")
    try:
        return coerce_mean_params(raw)
    except EftError as exc:
        raise EftError(f"{path}: {exc}") from exc


def mean_params_from_poses(
    rotmats: Tensor | np.ndarray,
    betas: Tensor | np.ndarray | None = None,
    *,
    cams: Tensor | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Mean parameters of a bank of N poses.

    Shapes: ``rotmats`` (N, 24, 3, 3); ``betas`` (N, 10) or None (zeros); ``cams``
    (N, 3) or None (``[0.9, 0, 0]``).

    Each joint's mean rotation is the chordal L2 mean: the arithmetic mean of the N
    matrices projected back onto SO(3) with an SVD (``U diag(1, 1, det(U V^T)) V^T``).
    """
    rot = torch.as_tensor(_to_numpy("rotmats", rotmats))
    if rot.dim() != 4 or tuple(rot.shape[1:]) != (NUM_JOINTS, 3, 3) or rot.shape[0] == 0:
        raise EftError(f"rotmats must have shape (N, 24, 3, 3) with N >= 1, got {tuple(rot.shape)}")
    proj = nearest_rotation(rot.mean(dim=0))
    params: dict[str, Any] = {"pose": rotmat_to_rot6d(proj).reshape(POSE6D_DIM).numpy()}
    for key, value, size in (("shape", betas, SHAPE_DIM), ("cam", cams, CAM_DIM)):
        if value is None:
            continue
        arr = _to_numpy(key, value)
        if arr.ndim != 2 or arr.shape[1] != size or arr.shape[0] != rot.shape[0]:
            raise EftError(
                f"{'betas' if key == 'shape' else 'cams'} must have shape "
                f"({rot.shape[0]}, {size}), got {arr.shape}"
            )
        params[key] = arr.mean(axis=0)
    return coerce_mean_params(params)


class IEFMixin:
    """Adds SPIN's IEF layers and loop to an ``nn.Module`` (call :meth:`_init_ief`).

    Registers, on the host module: ``fc1``, ``drop1``, ``fc2``, ``drop2``, ``decpose``,
    ``decshape``, ``deccam`` and the buffers ``init_pose``, ``init_shape``, ``init_cam``.
    """

    n_iter: int
    ief_hidden: int
    # layers and buffers registered by _init_ief, declared for type checkers
    fc1: nn.Linear
    drop1: nn.Dropout
    fc2: nn.Linear
    drop2: nn.Dropout
    decpose: nn.Linear
    decshape: nn.Linear
    deccam: nn.Linear
    init_pose: Tensor
    init_shape: Tensor
    init_cam: Tensor

    def _init_ief(
        self,
        in_features: int,
        hidden: int = 1024,
        n_iter: int = 3,
        dropout: float = 0.5,
        mean_params: MeanParamsLike = None,
    ) -> None:
        if not isinstance(self, nn.Module):
            raise TypeError("IEFMixin must be mixed into an nn.Module")
        if int(n_iter) < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_iter = int(n_iter)
        self.ief_hidden = int(hidden)
        self.fc1 = nn.Linear(int(in_features) + STATE_DIM, hidden)
        self.drop1 = nn.Dropout(p=float(dropout))
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(p=float(dropout))
        self.decpose = nn.Linear(hidden, POSE6D_DIM)
        self.decshape = nn.Linear(hidden, SHAPE_DIM)
        self.deccam = nn.Linear(hidden, CAM_DIM)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        params = coerce_mean_params(mean_params)
        self.register_buffer("init_pose", torch.from_numpy(params["pose"]).reshape(1, -1))
        self.register_buffer("init_shape", torch.from_numpy(params["shape"]).reshape(1, -1))
        self.register_buffer("init_cam", torch.from_numpy(params["cam"]).reshape(1, -1))

    @property
    def ief_in_features(self) -> int:
        return self.fc1.in_features - STATE_DIM

    def set_mean_params(self, mean_params: MeanParamsLike) -> None:
        """Overwrite the ``init_*`` buffers (e.g. with a pose bank's mean)."""
        params = coerce_mean_params(mean_params)
        with torch.no_grad():
            for key, buf in (("pose", self.init_pose), ("shape", self.init_shape),
                             ("cam", self.init_cam)):
                buf.copy_(torch.from_numpy(params[key]).reshape(1, -1))

    def mean_params(self) -> dict[str, np.ndarray]:
        """The current ``init_*`` buffers as float32 arrays (144,), (10,), (3,)."""
        return {
            "pose": self.init_pose.detach().cpu().float().numpy().reshape(-1).copy(),
            "shape": self.init_shape.detach().cpu().float().numpy().reshape(-1).copy(),
            "cam": self.init_cam.detach().cpu().float().numpy().reshape(-1).copy(),
        }

    def iterate(self, features: Tensor, n_iter: int | None = None) -> RegressorOutput:
        """Run the IEF loop on ``features`` (B, in_features) -> :class:`RegressorOutput`."""
        if features.dim() != 2 or features.shape[1] != self.ief_in_features:
            raise ValueError(
                f"features must have shape (B, {self.ief_in_features}), "
                f"got {tuple(features.shape)}"
            )
        steps = self.n_iter if n_iter is None else int(n_iter)
        batch = features.shape[0]
        pose = self.init_pose.to(features.dtype).expand(batch, -1)
        shape = self.init_shape.to(features.dtype).expand(batch, -1)
        cam = self.init_cam.to(features.dtype).expand(batch, -1)
        for _ in range(steps):
            x = torch.cat((features, pose, shape, cam), dim=1)
            x = self.drop2(self.fc2(self.drop1(self.fc1(x))))
            pose = self.decpose(x) + pose
            shape = self.decshape(x) + shape
            cam = self.deccam(x) + cam
        rotmat = rot6d_to_rotmat(pose.reshape(batch, NUM_JOINTS, 6))
        return RegressorOutput(rotmat=rotmat, betas=shape, cam=cam, pose6d=pose)


class IEFHead(IEFMixin, nn.Module):
    """Stand-alone SPIN IEF head: (B, in_features) features -> :class:`RegressorOutput`.

    ``fc1 = Linear(in_features + 157, hidden)``, ``fc2 = Linear(hidden, hidden)``,
    decoders to 144 / 10 / 3, dropout ``dropout`` after each FC, no ReLU.  With
    ``in_features=2048`` and ``hidden=1024`` it has SPIN's 3,469,469 parameters.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int = 1024,
        n_iter: int = 3,
        dropout: float = 0.5,
        mean_params: MeanParamsLike = None,
    ) -> None:
        nn.Module.__init__(self)
        self._init_ief(in_features, hidden, n_iter, dropout, mean_params)

    def forward(self, features: Tensor, n_iter: int | None = None) -> RegressorOutput:
        return self.iterate(features, n_iter)
