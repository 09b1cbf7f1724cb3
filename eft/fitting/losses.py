"""EFT's per-exemplar loss, as a pure function of the regressor's output and the target.

Every function here is batched over exemplars and returns one value per exemplar, so a
batch of independent fits can stop each exemplar on its own; nothing mixes exemplars
(no mean over the batch).  The functions contain no data-dependent Python branching,
so they run unchanged under :func:`torch.func.vmap`.

Targets are (B, 49, 3) SPIN-49 keypoints ``[x, y, conf]`` in crop-normalised ``[-1, 1]``
coordinates; they must be finite (see :func:`sanitize_keypoints`).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from eft.body.fast import KeypointLBS
from eft.body.joints import SPIN49_INDEX
from eft.geometry.cameras import weak_perspective_project
from eft.models.output import RegressorOutput

from .config import EFTConfig
from .pose_prior import GMMPosePrior, load_default_pose_prior

__all__ = [
    "NUM_OPENPOSE",
    "keypoint_loss_2d",
    "R_ANKLE",
    "R_KNEE",
    "R_HIP",
    "L_HIP",
    "L_KNEE",
    "L_ANKLE",
    "PELVIS_MPII",
    "sanitize_keypoints",
    "count_valid_gt",
    "loss_weights",
    "project",
    "leg_orientation_loss",
    "eft_loss",
    "pose_prior_nll",
]

NUM_OPENPOSE = 25
R_ANKLE = SPIN49_INDEX["Right Ankle"]  # 25
R_KNEE = SPIN49_INDEX["Right Knee"]  # 26
R_HIP = SPIN49_INDEX["Right Hip"]  # 27
L_HIP = SPIN49_INDEX["Left Hip"]  # 28
L_KNEE = SPIN49_INDEX["Left Knee"]  # 29
L_ANKLE = SPIN49_INDEX["Left Ankle"]  # 30
PELVIS_MPII = SPIN49_INDEX["Pelvis (MPII)"]  # 39


def sanitize_keypoints(keypoints: Tensor) -> Tensor:
    """(B, K, 3) -> (B, K, 3) finite copy: a joint with a non-finite x, y or conf, or with
    ``conf <= 0``, becomes ``[0, 0, 0]`` (missing).  Negative confidences count as 0."""
    finite = torch.isfinite(keypoints).all(dim=-1, keepdim=True)
    present = finite & (torch.nan_to_num(keypoints[..., 2:3], nan=0.0) > 0)
    return torch.where(present, keypoints, torch.zeros_like(keypoints))


def count_valid_gt(keypoints: Tensor, fast: KeypointLBS | None = None) -> Tensor:
    """(B, 49, 3) -> (B,) int: GT slots (25..48) that are finite with ``conf > 0`` (and,
    with ``fast``, that the body model defines)."""
    kp = sanitize_keypoints(keypoints)
    present = kp[:, NUM_OPENPOSE:, 2] > 0
    if fast is not None:
        present = present & (fast.kp_total[NUM_OPENPOSE:] > 0.5).to(present.device)
    return present.sum(dim=1)


def loss_weights(target: Tensor, config: EFTConfig, fast: KeypointLBS | None = None) -> Tensor:
    """(B, 49, 3) target -> (B, 49) per-joint weights of the 2D term *before* the ankles
    are removed: confidence x (OpenPose / GT weight), hips and MPII pelvis zeroed unless
    ``config.with_hips``, keypoints the body model does not define zeroed."""
    conf = target[..., 2]
    slot = torch.full((conf.shape[-1],), float(config.gt_weight), dtype=conf.dtype,
                      device=conf.device)
    slot[:NUM_OPENPOSE] = float(config.openpose_weight)
    if not config.with_hips:
        slot[[R_HIP, L_HIP, PELVIS_MPII]] = 0.0
    if fast is not None:
        slot = slot * (fast.kp_total > 0.5).to(slot)
    return conf * slot


def project(output: RegressorOutput, fast: KeypointLBS) -> tuple[Tensor, Tensor]:
    """Keypoints of the predicted bodies: (B, 49, 3) model frame and (B, 49, 2) projected
    to crop-normalised coordinates with the predicted weak-perspective camera."""
    kp3d, _ = fast(output.rotmat, output.betas)
    return kp3d, weak_perspective_project(kp3d, output.cam.to(kp3d.dtype))


def _unit(v: Tensor) -> tuple[Tensor, Tensor]:
    length = torch.linalg.vector_norm(v, dim=-1)
    return v / length.clamp_min(1e-12)[..., None], length


def leg_orientation_loss(pred2d: Tensor, target: Tensor, min_length: float) -> Tensor:
    """EFT's shank-orientation term, (B,): for each leg, ``(1 - cos)`` between the
    predicted and the GT 2D shank direction (ankle - knee) times ``conf(ankle) *
    conf(knee)``, counted only when the GT shank is longer than ``min_length``; summed
    over both legs."""
    total = pred2d.new_zeros(pred2d.shape[0])
    for ankle, knee in ((R_ANKLE, R_KNEE), (L_ANKLE, L_KNEE)):
        gt_dir, gt_len = _unit(target[:, ankle, :2] - target[:, knee, :2])
        pred_dir, _ = _unit(pred2d[:, ankle] - pred2d[:, knee])
        validity = target[:, ankle, 2] * target[:, knee, 2]
        term = validity * (1.0 - (gt_dir * pred_dir).sum(dim=-1))
        total = total + torch.where(gt_len > min_length, term, torch.zeros_like(term))
    return total


def keypoint_loss_2d(pred2d: Tensor, target: Tensor, config: EFTConfig,
                     fast: KeypointLBS | None = None) -> Tensor:
    """EFT's ``L2D`` (B,) of projected keypoints ``pred2d`` (B, 49, 2) against ``target``
    (B, 49, 3), both crop-normalised: the mean over the 49 x 2 coordinates of
    :func:`loss_weights` x squared error, GT ankles left out unless
    ``config.with_ankles``."""
    sq = (pred2d - target[..., :2]) ** 2  # (B, 49, 2)
    return (_l2d_weights(target, config, fast)[..., None] * sq).mean(dim=(1, 2))


def _l2d_weights(target: Tensor, config: EFTConfig, fast: KeypointLBS | None) -> Tensor:
    """(B, 49) weights of ``L2D``: :func:`loss_weights`, the GT ankles zeroed unless
    ``config.with_ankles``."""
    weights = loss_weights(target, config, fast)
    if not config.with_ankles:
        ankles = torch.ones(weights.shape[-1], dtype=weights.dtype, device=weights.device)
        ankles[[R_ANKLE, L_ANKLE]] = 0.0
        weights = weights * ankles
    return weights


def _fitted_loss_2d(pred2d: Tensor, target: Tensor, config: EFTConfig, fast: KeypointLBS,
                    loss_2d: Tensor) -> Tensor:
    """(B,) the 2D term the fit minimises: ``loss_2d`` itself, or with
    ``config.robust_2d`` each joint's squared distance through Geman-McClure, scaled as
    ``L2D`` (a sum over joints divided by the 49 x 2 coordinates)."""
    rho = float(config.robust_2d)
    if rho <= 0:
        return loss_2d
    d2 = ((pred2d - target[..., :2]) ** 2).sum(dim=-1)  # (B, 49)
    gm = rho * rho * d2 / (d2 + rho * rho)
    return (_l2d_weights(target, config, fast) * gm).sum(dim=1) / (2.0 * d2.shape[-1])


_GMM_BY_DEVICE: dict[tuple[str, torch.dtype], GMMPosePrior] = {}


def pose_prior_nll(rotmat: Tensor) -> Tensor:
    """(B,) body-pose NLL (nats) of rotations (B, 24, 3, 3) under the shipped GMM pose
    prior, on the rotations' device and dtype (a copy per device is kept)."""
    key = (str(rotmat.device), rotmat.dtype)
    if key not in _GMM_BY_DEVICE:
        gmm = copy.deepcopy(load_default_pose_prior())
        _GMM_BY_DEVICE[key] = gmm.to(device=rotmat.device, dtype=rotmat.dtype)
    return _GMM_BY_DEVICE[key](rotmat)


def eft_loss(
    output: RegressorOutput,
    target: Tensor,
    config: EFTConfig,
    fast: KeypointLBS,
) -> tuple[Tensor, Tensor]:
    """EFT's loss per exemplar.

    Args:
        output: the regressor's prediction for B exemplars.
        target: (B, 49, 3) crop-normalised keypoints + confidence, finite.
        config: weights and switches (:class:`EFTConfig`).
        fast: :class:`~eft.body.fast.KeypointLBS` of the body model.

    Returns:
        ``(loss (B,), loss_2d (B,))``: ``loss = loss_scale * (w_2d * L2D + w_betas *
        mean(beta^2) + w_cam * exp(-k s)^2 + w_leg * L_legOri + w_pose_prior *
        NLL_GMM(pose))`` and ``L2D = mean over the 49 x 2 coordinates of conf * (pred -
        gt)^2`` (the quantity EFT's stopping threshold and filters refer to).  GT ankles
        are excluded from ``L2D`` (they enter through the leg-orientation term) unless
        ``config.with_ankles``.
    """
    _, pred2d = project(output, fast)
    target = target.to(pred2d.dtype)
    leg = leg_orientation_loss(pred2d, target, config.leg_min_length)
    loss_2d = keypoint_loss_2d(pred2d, target, config, fast)
    betas = output.betas.to(pred2d.dtype)
    s = output.cam[:, 0].to(pred2d.dtype)
    loss = (
        config.w_keypoints_2d * _fitted_loss_2d(pred2d, target, config, fast, loss_2d)
        + config.w_betas * (betas ** 2).mean(dim=1)
        + config.w_cam * torch.exp(-config.cam_scale_k * s) ** 2
        + config.w_leg_orientation * leg
    )
    if config.w_pose_prior > 0:
        loss = loss + config.w_pose_prior * pose_prior_nll(output.rotmat).to(loss.dtype)
    return config.loss_scale * loss, loss_2d
