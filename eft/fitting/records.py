"""What EFT fits (:class:`FitTargets`) and returns per exemplar: the fitted body
(:class:`Fit`) and how good it is (:class:`FitQuality`).  A fit's fields are plain numpy
arrays, float32 unless said otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from eft.errors import EftError

__all__ = ["FitQuality", "Fit", "FitTargets"]


@dataclass(frozen=True)
class FitQuality:
    """Diagnostics of one fit, all from the forward pass whose parameters were kept.

    Attributes:
        loss_2d_init: EFT's 2D keypoint loss of the regressor before fine-tuning.
        loss_2d_final: the same loss at the stopping step (the kept parameters).
        reproj_px: mean distance in image pixels between the projected keypoints and the
            annotated GT keypoints (SPIN-49 slots 25..48 with confidence > 0, hips
            included); NaN when there are none.
        reproj_frac_bbox: ``reproj_px`` divided by the bbox side ``200 * scale``.
        iterations: forward passes run (1..max_iters); the kept parameters had
            ``iterations - 1`` Adam updates.  0 for skipped exemplars.
        converged: the 2D loss fell below the stopping threshold (EFT's early stop).
        max_abs_beta: ``max|beta|`` of the kept shape.
        pose_nll: negative log-likelihood of the kept pose under the GMM pose prior
            (:mod:`eft.fitting.pose_prior`); NaN when no pose prior was given.
        n_valid_keypoints: annotated (finite, confidence > 0) GT keypoints, slots 25..48.
        accepted: no flag in the rules' ``reject_flags``.
        flags: the rules broken, from :data:`eft.fitting.config.FLAGS`.
    """

    loss_2d_init: float
    loss_2d_final: float
    reproj_px: float
    reproj_frac_bbox: float
    iterations: int
    converged: bool
    max_abs_beta: float
    pose_nll: float
    n_valid_keypoints: int
    accepted: bool
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Fit:
    """One fitted exemplar.

    Attributes:
        exemplar_id: the exemplar's id.
        rotmat: (24, 3, 3) SMPL joint rotations, global orientation first (camera frame
            of the crop: x right, y down).
        pose_aa: (72,) the same rotations as axis-angle.
        betas: (10,) shape coefficients.
        cam_weak: (3,) weak-perspective camera ``[s, tx, ty]``: a body point ``X``
            lands at ``s * X[:2] + [tx, ty]`` in crop-normalised ``[-1, 1]``
            coordinates, i.e. at ``center + 100 * scale * (s * X[:2] + t)`` image px.
        cam_t: (3,) equivalent perspective translation ``[tx/s, ty/s, 2 f / (224 s)]``
            for focal ``f = 5000`` px on the 224 px crop (SPIN/EFT convention).
        keypoints3d: (49, 3) SPIN-49 keypoints of the fitted body, in the body model's
            frame (no camera translation), metres.
        vertices: (V, 3) posed mesh in the same frame, or None when not requested.
        center: (2,) bbox centre in image pixels.
        scale: bbox side / 200 px.
        quality: :class:`FitQuality`.
        params: the fine-tuned regressor's parameters at the stopping step (name ->
            array, the model's full set of parameters) when the fit was asked to keep
            them, else None.
    """

    exemplar_id: str
    rotmat: np.ndarray
    pose_aa: np.ndarray
    betas: np.ndarray
    cam_weak: np.ndarray
    cam_t: np.ndarray
    keypoints3d: np.ndarray
    center: np.ndarray
    scale: float
    quality: FitQuality
    vertices: np.ndarray | None = None
    params: dict[str, np.ndarray] | None = None

    @property
    def accepted(self) -> bool:
        return self.quality.accepted

    @property
    def flags(self) -> tuple[str, ...]:
        return self.quality.flags


#: Without a bbox, the 224 px crop is the image: centre (112, 112), scale 224 / 200.
DEFAULT_CENTER = (112.0, 112.0)
DEFAULT_SCALE = 224.0 / 200.0


def crops_and_ids(batch: int, centers: Tensor | np.ndarray | None = None,
                  scales: Tensor | np.ndarray | None = None,
                  exemplar_ids: Sequence[str] | None = None,
                  ) -> tuple[Tensor, Tensor, list[str]]:
    """The crop and id of each of ``batch`` exemplars, defaults filled in.

    Returns ``(centers (B, 2) float64 tensor, scales (B,) float64 tensor, ids [str])``;
    raises :class:`~eft.errors.EftError` when the number of ids is not ``batch``."""
    if centers is None:
        centers = torch.tensor(DEFAULT_CENTER, dtype=torch.float64).expand(batch, 2)
    if scales is None:
        scales = torch.full((batch,), DEFAULT_SCALE, dtype=torch.float64)
    centers = torch.as_tensor(centers, dtype=torch.float64).reshape(batch, 2)
    scales = torch.as_tensor(scales, dtype=torch.float64).reshape(batch)
    ids = [str(i) for i in range(batch)] if exemplar_ids is None else [
        str(i) for i in exemplar_ids]
    if len(ids) != batch:
        raise EftError(f"{len(ids)} exemplar ids for {batch} targets")
    return centers, scales, ids


@dataclass(frozen=True)
class FitTargets:
    """What B exemplars are fitted to, the input of every fitting path.

    Attributes:
        keypoints: (B, 49, 3) SPIN-49 keypoints in crop-normalised ``[-1, 1]``
            coordinates + confidence (``conf <= 0`` or non-finite: missing).
        inputs: (B, ...) model inputs of an image regressor, e.g. (B, 3, 224, 224)
            normalised crops; ``None`` for a keypoint regressor, which reads
            ``keypoints``.
        ids: B exemplar ids (default ``"0"``, ``"1"`` ...).
        centers: (B, 2) float64 bbox centres and ``scales`` (B,) float64 bbox side / 200,
            image px: the crop is the ``200 * scale`` px square around the centre, used
            for the pixel errors (default: the 224 px crop is the image).
        focals: (B,) float64 focal lengths of the images' cameras in px, and
            ``principal_points`` (B, 2) float64 px; NaN (the default) where unknown.
            Only ``EFTConfig.perspective_steps`` reads them.

    Defaults are filled in on construction; a wrong shape or count raises
    :class:`~eft.errors.EftError`.
    """

    keypoints: Tensor
    inputs: Tensor | None = None
    ids: Sequence[str] | None = None
    centers: Tensor | np.ndarray | None = None
    scales: Tensor | np.ndarray | None = None
    focals: Tensor | np.ndarray | None = None
    principal_points: Tensor | np.ndarray | None = None

    def __post_init__(self) -> None:
        kp = torch.as_tensor(self.keypoints)
        if kp.dim() != 3 or tuple(kp.shape[1:]) != (49, 3):
            raise EftError(f"targets must have shape (B, 49, 3), got {tuple(kp.shape)}")
        batch = kp.shape[0]
        if self.inputs is not None:
            inputs = torch.as_tensor(self.inputs)
            if inputs.shape[0] != batch:
                raise EftError(f"{inputs.shape[0]} inputs for {batch} targets")
            object.__setattr__(self, "inputs", inputs)
        centers, scales, ids = crops_and_ids(batch, self.centers, self.scales, self.ids)
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "ids", tuple(ids))
        object.__setattr__(self, "centers", centers)
        object.__setattr__(self, "scales", scales)
        focals = (torch.full((batch,), float("nan"), dtype=torch.float64)
                  if self.focals is None else torch.as_tensor(self.focals, dtype=torch.float64))
        pps = (torch.full((batch, 2), float("nan"), dtype=torch.float64)
               if self.principal_points is None
               else torch.as_tensor(self.principal_points, dtype=torch.float64))
        if tuple(focals.shape) != (batch,) or tuple(pps.shape) != (batch, 2):
            raise EftError(f"focals must be ({batch},) and principal_points ({batch}, 2), "
                           f"got {tuple(focals.shape)} and {tuple(pps.shape)}")
        object.__setattr__(self, "focals", focals)
        object.__setattr__(self, "principal_points", pps)

    @property
    def batch(self) -> int:
        """B."""
        return int(self.keypoints.shape[0])

    @property
    def id_list(self) -> list[str]:
        """The B ids."""
        return list(self.ids or ())

    @property
    def center_tensor(self) -> Tensor:
        """(B, 2) float64 centres."""
        return torch.as_tensor(self.centers)

    @property
    def scale_tensor(self) -> Tensor:
        """(B,) float64 scales."""
        return torch.as_tensor(self.scales)

    def select(self, rows: slice | Sequence[int] | Tensor) -> FitTargets:
        """The targets of ``rows`` (a slice or indices), crops and ids with them."""
        index = torch.arange(self.batch)[rows] if isinstance(rows, slice) else (
            torch.as_tensor(rows, dtype=torch.long).reshape(-1))
        ids = self.id_list
        return FitTargets(
            keypoints=self.keypoints[index],
            inputs=None if self.inputs is None else self.inputs[index],
            ids=[ids[i] for i in index.tolist()],
            centers=self.center_tensor[index], scales=self.scale_tensor[index],
            focals=torch.as_tensor(self.focals)[index],
            principal_points=torch.as_tensor(self.principal_points)[index])
