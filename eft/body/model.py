"""One body-model interface for the open default model and users' SMPL files.

Both are SMPL-layout models run through ``smplx``'s linear blend skinning.  On
top of it ``BodyModel`` adds SPIN's 49 keypoints (see ``keypoint_map``), a
validity mask for them and the H36M-17 evaluation joints.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import smplx
import torch
from smplx.utils import Struct
from torch import Tensor, nn

from eft._files import file_sha256
from eft.body.joints import (
    COCO23_NAMES,
    H36M17_NAMES,
    SPIN49_NAMES,
    SPIN_EXTRA9_NAMES,
    VERTEX_LANDMARK_NAMES,
)
from eft.body.keypoint_map import ANATOMICAL_SOURCES, SPIN_SOURCES, build_keypoint_map
from eft.body.smpl_import import SmplImportError, load_smpl_pkl, validate_smpl_fields
from eft.errors import EftError
from eft.geometry.rotations import axis_angle_to_rotmat

OPEN_MODEL_NAME = "eft-open-body-v1"
ENV_BODY_MODEL = "EFT_BODY_MODEL"

# Surface landmarks on SMPL's 6890-vertex topology (smplx's SMPL-H table, face and feet).
SMPL_VERTEX_IDS: dict[str, int] = {
    "nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583,
    "LBigToe": 3216, "LSmallToe": 3226, "LHeel": 3387,
    "RBigToe": 6617, "RSmallToe": 6624, "RHeel": 6787,
}
SMPL_NUM_VERTICES = 6890
_SMPL_FIELDS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                "kintree_table", "f")
_SMPL_FILE_NAMES = {
    "neutral": ("SMPL_NEUTRAL", "basicModel_neutral_lbs_10_207_0_v1.0.0"),
    "male": ("SMPL_MALE", "basicmodel_m_lbs_10_207_0_v1.0.0"),
    "female": ("SMPL_FEMALE", "basicModel_f_lbs_10_207_0_v1.0.0"),
}


class BodyModelError(EftError):
    """A body-model file is missing, unreadable or incomplete."""


class BodyModelWarning(UserWarning):
    """The model loaded, but some keypoints are unavailable."""


@dataclass(frozen=True)
class BodyOutput:
    """Posed body.

    Attributes:
        vertices: (B, V, 3) posed mesh.
        joints: (B, 24, 3) SMPL skeleton joints.
        keypoints: (B, 49, 3) SPIN-49 keypoints; rows where ``keypoint_valid`` is
            False are zeros.
        keypoint_valid: (49,) bool, which keypoints this model defines.
    """

    vertices: Tensor
    joints: Tensor
    keypoints: Tensor
    keypoint_valid: Tensor


def default_model_path() -> Path:
    """Path of the open body model shipped inside the package."""
    return Path(str(resources.files("eft.body") / "assets" / "open_body_model.npz"))


def _find_in_dir(folder: Path, gender: str) -> Path:
    stems = _SMPL_FILE_NAMES.get(gender.lower())
    if stems is None:
        raise BodyModelError(f"unknown gender '{gender}': use neutral, male or female")
    for sub in (folder, folder / "smpl"):
        for stem in stems:
            for ext in (".npz", ".pkl"):
                cand = sub / f"{stem}{ext}"
                if cand.is_file():
                    return cand
    raise BodyModelError(
        f"no {stems[0]}.pkl/.npz in {folder} (also looked in {folder / 'smpl'})")


def resolve_model_path(path: str | os.PathLike | None = None, gender: str = "neutral") -> Path:
    """Pick the model file: ``path``, else ``$EFT_BODY_MODEL``, else the open model.

    ``path`` may be a file (.npz / .pkl), a folder holding ``SMPL_<GENDER>.pkl``
    or ``.npz``, or the word ``open``.
    """
    if path is None:
        path = os.environ.get(ENV_BODY_MODEL) or None
    if path is None or str(path) == "open":
        return default_model_path()
    p = Path(path).expanduser()
    if p.is_dir():
        return _find_in_dir(p, gender)
    if not p.is_file():
        raise BodyModelError(f"body model file not found: {p}")
    return p


def _read_fields(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a model file: an ``.npz`` (a zip archive, whatever its suffix) as
    stored, else a SMPL pickle (:func:`~eft.body.smpl_import.load_smpl_pkl`)."""
    with open(path, "rb") as fh:
        is_zip = fh.read(2) == b"PK"
    if not is_zip:
        try:
            return load_smpl_pkl(path)
        except SmplImportError as exc:
            text = str(exc)
            if path.suffix.lower() == ".npz":
                raise BodyModelError(f"{path} is not a readable .npz body model (not a zip "
                                     f"archive; read as a SMPL pickle: {text})") from None
            raise BodyModelError(text if str(path) in text else f"{path}: {text}") from None
        except MemoryError:
            raise BodyModelError(f"{path}: a field of this pickle asks for more memory "
                                 "than a body model needs") from None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # numpy raises several types for a bad file
        reason = str(exc).split(". ")[0] if "allow_pickle" in str(exc) else str(exc)
        raise BodyModelError(f"{path} is not a readable .npz body model ({reason})") from None


def _checked_vertex_count(fields: dict, name: str) -> int:
    """V of SMPL-layout ``fields``, after :func:`~eft.body.smpl_import.validate_smpl_fields`
    (shapes, finite numbers, faces in range, SMPL's kinematic tree): a model file that
    is broken fails here, naming the field, not in the first forward pass."""
    try:
        return validate_smpl_fields(fields)
    except SmplImportError as exc:
        raise BodyModelError(f"body model '{name}': {exc}") from None


def _checked_regressor(matrix, key: str, rows: int, num_vertices: int,
                       name: str) -> np.ndarray | None:
    """An optional keypoint regressor as ``(rows, V)`` finite numbers, or None."""
    if matrix is None:
        return None
    m = np.asarray(matrix)
    if m.shape != (rows, num_vertices) or not np.issubdtype(m.dtype, np.number):
        raise BodyModelError(f"body model '{name}': {key} must be ({rows}, {num_vertices}) "
                             f"numbers, got shape {m.shape} of {m.dtype}")
    if not np.all(np.isfinite(m)):
        raise BodyModelError(f"body model '{name}': {key} holds NaN or infinite values")
    return m


def _optional_regressor(fields: dict, key: str, path: Path, explicit) -> np.ndarray | None:
    """An extra regressor from the argument, the model file, or a .npy beside it."""
    if explicit is not None:
        if isinstance(explicit, str | os.PathLike):
            return np.load(explicit)
        return np.asarray(explicit)
    if key in fields:
        return np.asarray(fields[key])
    for folder in (path.parent, path.parent.parent):
        cand = folder / f"{key}.npy"
        if cand.is_file():
            return np.load(cand)
    return None


class BodyModel(nn.Module):
    """SMPL-layout body model with SPIN-49 keypoints.

    Build it with :meth:`load`.  ``forward(pose, betas, transl)`` accepts the pose
    as rotation matrices (B,24,3,3) or axis-angle (B,24,3) / (B,72).
    """

    # registered buffers and the wrapped smplx layer (typed for mypy; set in __init__)
    smpl: Any
    kp_vertex_weights: Tensor
    kp_joint_weights: Tensor
    keypoint_valid: Tensor
    h36m_regressor: Tensor | None
    path: Path | None

    def __init__(
        self,
        fields: dict[str, np.ndarray],
        *,
        name: str,
        content_hash: str,
        extra_regressor: np.ndarray | None = None,
        h36m_regressor: np.ndarray | None = None,
        num_betas: int = 10,
    ) -> None:
        super().__init__()
        missing = [k for k in _SMPL_FIELDS if k not in fields]
        if missing:
            raise BodyModelError(f"body model '{name}' lacks field(s): {', '.join(missing)}")
        num_vertices = _checked_vertex_count(fields, name)
        extra_regressor = _checked_regressor(extra_regressor, "J_regressor_extra",
                                             len(SPIN_EXTRA9_NAMES), num_vertices, name)
        _checked_regressor(fields.get("J_regressor_coco"), "J_regressor_coco",
                           len(COCO23_NAMES), num_vertices, name)
        self.name = name
        self.content_hash = content_hash
        vertex_ids = self._vertex_ids(fields, num_vertices)
        coco = fields.get("J_regressor_coco")
        struct = Struct(**{k: np.asarray(fields[k]) for k in _SMPL_FIELDS})
        smplx_ids = {k: vertex_ids.get(k, 0) for k in VERTEX_LANDMARK_NAMES}
        # smplx prints a note about the 10-component shape space; keep loading quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            self.smpl = smplx.SMPLLayer(
                model_path="", data_struct=struct, num_betas=num_betas,
                vertex_ids=smplx_ids, use_hands=False, use_feet_keypoints=True)
        table = ANATOMICAL_SOURCES if coco is not None else SPIN_SOURCES
        w_v, w_j, valid, self.missing_keypoints = build_keypoint_map(
            table, num_vertices, vertex_ids, coco, extra_regressor)
        self.register_buffer("kp_vertex_weights", torch.as_tensor(w_v, dtype=torch.float32))
        self.register_buffer("kp_joint_weights", torch.as_tensor(w_j, dtype=torch.float32))
        self.register_buffer("keypoint_valid", torch.as_tensor(valid))
        self.keypoint_source = "anatomical (J_regressor_coco)" if coco is not None else "SPIN"
        h36m_regressor = _checked_regressor(h36m_regressor, "J_regressor_h36m",
                                            len(H36M17_NAMES), num_vertices, name)
        h36m = None if h36m_regressor is None else torch.as_tensor(
            h36m_regressor, dtype=torch.float32)
        self.register_buffer("h36m_regressor", h36m)

    @staticmethod
    def _vertex_ids(fields: dict, num_vertices: int) -> dict[str, int]:
        if "vertex_ids_names" in fields and "vertex_ids" in fields:
            names = [str(n) for n in np.asarray(fields["vertex_ids_names"])]
            ids = np.asarray(fields["vertex_ids"])
            if (ids.shape != (len(names),) or not np.issubdtype(ids.dtype, np.integer)
                    or (ids.size and (ids.min() < 0 or ids.max() >= num_vertices))):
                raise BodyModelError(
                    f"vertex_ids must be {len(names)} integers in [0, {num_vertices}) "
                    f"(one per vertex_ids_names), got shape {ids.shape} of {ids.dtype}")
            return dict(zip(names, (int(i) for i in ids), strict=True))
        if num_vertices == SMPL_NUM_VERTICES:
            return dict(SMPL_VERTEX_IDS)
        return {}

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        *,
        gender: str = "neutral",
        extra_regressor: str | os.PathLike | np.ndarray | None = None,
        h36m_regressor: str | os.PathLike | np.ndarray | None = None,
        num_betas: int = 10,
    ) -> BodyModel:
        """Load a model; with no path (and no ``$EFT_BODY_MODEL``) the open model.

        SPIN's ``J_regressor_extra.npy`` / ``J_regressor_h36m.npy`` are picked up
        from the model file itself, the arguments, or the model's folder (or its
        parent).  Keypoints whose source is missing are masked invalid, and a
        :class:`BodyModelWarning` names them.
        """
        resolved = resolve_model_path(path, gender)
        fields = _read_fields(resolved)
        if "model_name" in fields:
            name = str(np.asarray(fields["model_name"]))
        else:
            name = resolved.stem
        extra = _optional_regressor(fields, "J_regressor_extra", resolved, extra_regressor)
        h36m = _optional_regressor(fields, "J_regressor_h36m", resolved, h36m_regressor)
        try:
            model = cls(fields, name=name, content_hash=file_sha256(resolved),
                        extra_regressor=extra, h36m_regressor=h36m, num_betas=num_betas)
        except BodyModelError as exc:
            raise BodyModelError(f"{resolved}: {exc}") from None
        model.path = resolved
        if model.missing_keypoints:
            warnings.warn(
                f"body model {resolved.name}: {len(model.missing_keypoints)} of 49 keypoints "
                f"unavailable: {'; '.join(model.missing_keypoints)}. Put SPIN's "
                "J_regressor_extra.npy next to the model file to enable them.",
                BodyModelWarning, stacklevel=2)
        return model

    @property
    def num_vertices(self) -> int:
        return int(self.smpl.v_template.shape[0])

    @property
    def faces(self) -> Tensor:
        """(F, 3) int64 triangle indices."""
        return self.smpl.faces_tensor

    @property
    def num_betas(self) -> int:
        return int(self.smpl.num_betas)

    def _rotmats(self, pose: Tensor) -> Tensor:
        if pose.shape[-2:] == (3, 3):
            return pose.reshape(-1, 24, 3, 3)
        if pose.shape[-1] == 72:
            pose = pose.reshape(-1, 24, 3)
        if pose.shape[-2:] != (24, 3):
            raise ValueError(
                f"pose must be (B,24,3,3) rotmats or (B,24,3)/(B,72) axis-angle, "
                f"got {tuple(pose.shape)}")
        return axis_angle_to_rotmat(pose)

    def forward(self, pose: Tensor, betas: Tensor | None = None,
                transl: Tensor | None = None) -> BodyOutput:
        """Pose the body.

        Args:
            pose: (B,24,3,3) rotation matrices, or (B,24,3) / (B,72) axis-angle;
                joint 0 is the global orientation.
            betas: (B, <=num_betas) shape coefficients (zero-padded), default zeros.
            transl: (B, 3) translation added to everything, default zeros.
        """
        rot = self._rotmats(pose)
        batch = rot.shape[0]
        dtype = self.smpl.shapedirs.dtype
        rot = rot.to(dtype)
        if betas is None:
            betas = rot.new_zeros(batch, self.num_betas)
        elif betas.shape[-1] < self.num_betas:
            betas = torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[-1]))
        betas = betas.to(dtype).reshape(batch, self.num_betas)
        out = self.smpl(betas=betas, global_orient=rot[:, :1], body_pose=rot[:, 1:],
                        transl=None if transl is None else transl.to(dtype), pose2rot=False)
        joints = out.joints[:, :24]
        keypoints = (torch.einsum("kv,bvc->bkc", self.kp_vertex_weights, out.vertices)
                     + torch.einsum("kj,bjc->bkc", self.kp_joint_weights, joints))
        return BodyOutput(out.vertices, joints, keypoints, self.keypoint_valid)

    def h36m_joints(self, vertices: Tensor) -> Tensor:
        """(B,V,3) vertices -> (B,17,3) H36M joints (SPIN's J_regressor_h36m order)."""
        if self.h36m_regressor is None:
            raise BodyModelError(
                f"body model '{self.name}' has no H36M regressor: supply SPIN's "
                "J_regressor_h36m.npy next to the model file or as h36m_regressor=")
        return torch.einsum("jv,bvc->bjc", self.h36m_regressor, vertices)


def keypoint_names() -> tuple[str, ...]:
    """Names of the 49 keypoints ``BodyOutput.keypoints`` holds, in order."""
    return SPIN49_NAMES
