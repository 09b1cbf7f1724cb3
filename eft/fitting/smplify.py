"""SMPLify baseline (SPIN style): fit the body's parameters directly to 2D keypoints.

The optimisation-based counterpart of Exemplar Fine-Tuning.  Instead of fine-tuning a
regressor's weights, the SMPL parameters themselves are optimised per exemplar, in
SPIN's two stages (``nkolot/SPIN``, ``smplify/smplify.py``):

1. **Camera** (``camera_iters``, 100): the camera and the global orientation, body pose
   and shape fixed.  Loss: squared reprojection error (crop pixels) of the torso
   joints (GT hips and shoulders, :attr:`SmplifyConfig.camera_joints`; when an exemplar
   has none of them annotated, all the joints of stage 2) plus
   ``depth_loss_weight**2 * (t_z - t_z0)**2``, which keeps the camera depth near the
   initial one.
2. **Body** (``body_iters``, 100): body pose, global orientation, betas and (unless
   ``body_stage_camera=False``, SPIN's choice) the camera.  Loss::

       sum_j  w_j^2 sum_xy GMoF(112 * (x_j - x_hat_j), sigma)          (pixels)
       + pose_prior_weight^2  * pose_prior(theta)
       + shape_prior_weight^2 * |beta|^2
       + angle_prior_weight^2 * sum exp(+-theta_bend)^2                 (elbows, knees)

with SPIN's weights (4.78, 5, 15.2, depth 100, GMoF sigma 100 px; SPIN squares every
weight, and so do we).  Optimising the camera in stage 2 too fitted better on synthetic
exemplars (64 from validation poses, COCO-17 with annotation noise, mean-pose start:
81 % vs 66 % accepted, PA-MPJPE 109 vs 113 mm).
``GMoF(r) = sigma^2 r^2 / (sigma^2 + r^2)`` (Geman-McClure).
``w_j`` are EFT's joint weights (:func:`eft.fitting.losses.loss_weights`: confidence x
slot weight, OpenPose slots 0, GT slots 1, GT hips and MPII pelvis off unless
``with_hips``; keypoints the body model lacks off).  SMPLify squares the confidence,
so with detector confidences the weighting differs from EFT's ``L2D`` (which does not).
Both stages use Adam, lr 1e-2, torch defaults otherwise, and run their full number of
iterations (no early stop).

Camera.  SPIN optimises a perspective translation ``t`` (f = 5000 px on the 224 px
crop); here the optimised camera is the project's weak-perspective ``[s, tx, ty]``
(a point lands at ``s * X[:2] + t`` in crop-normalised coordinates), the camera EFT's
``L2D`` and every :class:`~eft.fitting.records.Fit` use, so the final 2D loss is computed
exactly as for EFT.  The depth term uses the equivalent perspective depth
``t_z = 2 f / (224 s)`` (metres, as in SPIN).  Residuals in crop-normalised units are
multiplied by ``img_res / 2 = 112`` to give the crop pixels SMPLify's ``sigma`` refers
to.  Each :class:`Fit` carries both camera forms (``cam_weak`` and ``cam_t``).

Angle prior (SMPLify's ``angle_prior``, on SMPL's axes): ``exp(+theta_y)`` for the left
elbow, ``exp(-theta_y)`` for the right elbow, ``exp(-theta_x)`` for both knees, each
squared: large when the joint bends the anatomically wrong way (hyper-extension).  The
signs hold for the open body model (checked in ``tests/test_smplify.py`` by posing it:
a positive x rotation of a knee moves the ankle behind the knee; a negative y rotation
of the left elbow, positive of the right, moves the wrist in front of the elbow).

Pose parametrisation: axis-angle (as SMPLify); with a :class:`GMMPosePrior` the prior
is evaluated on the axis-angle body pose directly, any other prior callable
(``rotmats (B, 24, 3, 3) -> nll (B,)``) on the rotation matrices.

Initialisation (SPIN style): the regressor's prediction when ``init`` is given,
including its camera (the depth anchor of stage 1).  Without it: upright and facing the
camera (global orientation ``diag(1, -1, -1)``), betas 0, the body pose
:attr:`SmplifyConfig.init_body_pose` (the GMM pose prior's mean by default), and a camera
that matches the spread and centroid of the annotated torso joints (SMPLify's
similar-triangles guess; all annotated joints when no torso joint is).  SMPLify's
original also tries the body turned by 180 degrees; this baseline does not, so people
seen from the back can end in the mirrored local minimum from the mean-pose start.

Batching: every exemplar has its own parameters and the losses are summed, and Adam
acts element-wise, so the B fits are independent (a batch gives each exemplar the
result of fitting it alone up to float rounding) and deterministic.

Quality: the same :class:`~eft.fitting.records.FitQuality` as EFT (:func:`assess`):
``loss_2d_init`` / ``loss_2d_final`` are EFT's ``L2D`` of the initial and of the final
parameters, ``iterations`` the Adam steps taken (``camera_iters + body_iters``; 0 for
skipped exemplars), ``converged`` = final ``L2D`` below ``converge_loss_2d`` (EFT's
stopping threshold; SMPLify itself never stops early), ``pose_nll`` the GMM pose
prior's NLL of the final pose.  The acceptance rules are EFT's by default; note that
``"high_initial_loss"`` judges the *initial* parameters, which from a mean-pose start
are usually far off (pass ``rules=QualityRules(max_initial_loss_2d=math.inf)`` to
ignore it).  Degenerate exemplars (fewer than ``rules.min_valid_keypoints`` annotated
GT keypoints) are not fitted: they keep the initial parameters and get the flags
``"skipped"`` and ``"too_few_keypoints"``.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from eft.body.fast import KeypointLBS
from eft.body.joints import SMPL24_NAMES, SPIN49_INDEX
from eft.body.model import BodyModel
from eft.errors import EftError
from eft.geometry.cameras import (
    FOCAL_LENGTH,
    weak_perspective_project,
    weak_to_perspective_translation,
)
from eft.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle
from eft.models.ief import DEFAULT_CAM
from eft.models.output import RegressorOutput

from .config import EFTConfig, QualityRules
from .losses import count_valid_gt, eft_loss, loss_weights, sanitize_keypoints
from .pose_prior import GMMPosePrior, load_default_pose_prior
from .quality import PosePrior, assess, pose_nll
from .records import Fit, crops_and_ids

__all__ = [
    "ANGLE_PRIOR_TERMS",
    "SmplifyConfig",
    "gmof",
    "angle_prior",
    "camera_fitting_loss",
    "body_fitting_loss",
    "smplify",
]

#: SMPLify's bend penalty: (SMPL joint, axis 0/1/2 = x/y/z, sign); the term is
#: ``exp(sign * theta[joint, axis])**2``, so ``sign * theta > 0`` is the wrong way.
ANGLE_PRIOR_TERMS: tuple[tuple[str, int, float], ...] = (
    ("left_elbow", 1, 1.0),
    ("right_elbow", 1, -1.0),
    ("left_knee", 0, -1.0),
    ("right_knee", 0, -1.0),
)
_ANGLE_INDEX = [3 * (SMPL24_NAMES.index(j) - 1) + a for j, a, _ in ANGLE_PRIOR_TERMS]
_ANGLE_SIGN = [s for _, _, s in ANGLE_PRIOR_TERMS]
_UPRIGHT_AA = (math.pi, 0.0, 0.0)  # diag(1, -1, -1): upright in the image, facing the camera


@dataclass(frozen=True)
class SmplifyConfig:
    """Settings of the SMPLify baseline; defaults are SPIN's (module docstring).

    Attributes:
        lr: Adam learning rate of both stages (1e-2).
        camera_iters: stage-1 iterations (camera + global orientation), 100.
        body_iters: stage-2 iterations (body), 100.
        adam_betas: Adam's betas (torch defaults).
        pose_prior_weight: 4.78 (squared in the loss).
        shape_prior_weight: 5 (squared).
        angle_prior_weight: 15.2 (squared).
        depth_loss_weight: 100 (squared), stage 1.
        joint_loss_weight: 1 (squared), reprojection term of stage 2.
        sigma_px: GMoF scale in crop pixels (100).
        img_res: crop side in pixels (224): crop-normalised residuals are multiplied by
            ``img_res / 2``.
        focal_length: focal length (px on the crop) of the perspective camera the depth
            term and ``Fit.cam_t`` refer to (5000).
        camera_joints: SPIN-49 names of the joints stage 1 fits (GT hips, shoulders;
            their OpenPose twins are added with ``openpose_weight``).
        body_stage_camera: also optimise the camera in stage 2 (SPIN keeps it fixed).
        init_body_pose: body pose without an ``init``: ``"prior_mean"`` (the mixture
            mean of a :class:`GMMPosePrior`, the rest pose for other priors) or
            ``"rest"``.
        with_hips, openpose_weight, gt_weight: EFT's joint weights
            (:class:`~eft.fitting.config.EFTConfig`); also used for ``L2D``.
        converge_loss_2d: ``FitQuality.converged`` when the final ``L2D`` is below this
            (EFT's stopping threshold 1e-4).
        rules: acceptance rules (EFT's ``IsValid`` by default).
    """

    lr: float = 1e-2
    camera_iters: int = 100
    body_iters: int = 100
    adam_betas: tuple[float, float] = (0.9, 0.999)
    pose_prior_weight: float = 4.78
    shape_prior_weight: float = 5.0
    angle_prior_weight: float = 15.2
    depth_loss_weight: float = 100.0
    joint_loss_weight: float = 1.0
    sigma_px: float = 100.0
    img_res: int = 224
    focal_length: float = FOCAL_LENGTH
    camera_joints: tuple[str, ...] = ("Right Hip", "Left Hip", "Right Shoulder",
                                      "Left Shoulder")
    body_stage_camera: bool = True
    init_body_pose: Literal["prior_mean", "rest"] = "prior_mean"
    with_hips: bool = False
    openpose_weight: float = 0.0
    gt_weight: float = 1.0
    converge_loss_2d: float = 1e-4
    rules: QualityRules = field(default_factory=QualityRules)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        object.__setattr__(self, "camera_joints", tuple(self.camera_joints))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("camera_iters", "body_iters"):
            v = getattr(self, name)
            if int(v) != v or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        for name in ("pose_prior_weight", "shape_prior_weight", "angle_prior_weight",
                     "depth_loss_weight", "joint_loss_weight", "converge_loss_2d"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.sigma_px > 0 or not self.focal_length > 0 or not self.img_res > 0:
            raise ValueError("sigma_px, focal_length and img_res must be > 0")
        unknown = [j for j in self.camera_joints if j not in SPIN49_INDEX]
        if unknown:
            raise ValueError(f"unknown camera joint(s) {unknown}")
        if self.init_body_pose not in ("prior_mean", "rest"):
            raise ValueError(f"init_body_pose must be 'prior_mean' or 'rest', "
                             f"got {self.init_body_pose!r}")
        if not isinstance(self.rules, QualityRules):
            raise TypeError(f"rules must be a QualityRules, got {type(self.rules).__name__}")

    @property
    def iterations(self) -> int:
        return int(self.camera_iters + self.body_iters)

    def eft_config(self) -> EFTConfig:
        """The :class:`EFTConfig` whose joint weights and ``L2D`` this fit shares."""
        return EFTConfig(with_hips=self.with_hips, openpose_weight=self.openpose_weight,
                         gt_weight=self.gt_weight, rules=self.rules,
                         focal_length=self.focal_length, img_res=self.img_res)

    def replace(self, **changes) -> SmplifyConfig:
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------
# Loss terms (batched, one value per exemplar)
# ---------------------------------------------------------------------------

def gmof(residual: Tensor, sigma: float) -> Tensor:
    """Geman-McClure ``sigma^2 r^2 / (sigma^2 + r^2)``, element-wise."""
    sq = residual ** 2
    return (sigma ** 2) * sq / (sigma ** 2 + sq)


def angle_prior(body_pose: Tensor) -> Tensor:
    """(B, 69) axis-angle body pose -> (B,) SMPLify's elbow / knee bend penalty
    ``sum exp(sign * theta)^2`` over :data:`ANGLE_PRIOR_TERMS` (unweighted)."""
    sign = torch.tensor(_ANGLE_SIGN, dtype=body_pose.dtype, device=body_pose.device)
    return (torch.exp(body_pose[:, _ANGLE_INDEX] * sign) ** 2).sum(dim=1)


def _depth(cam: Tensor, config: SmplifyConfig) -> Tensor:
    return 2.0 * config.focal_length / (config.img_res * cam[:, 0])


def camera_fitting_loss(pred2d: Tensor, target: Tensor, weights: Tensor, cam: Tensor,
                        depth0: Tensor, config: SmplifyConfig) -> Tensor:
    """Stage-1 loss (B,): ``sum_j w_j^2 |px error|^2 + depth_w^2 (t_z - t_z0)^2``.

    ``pred2d`` (B, 49, 2) and ``target`` (B, 49, 3) crop-normalised, ``weights`` (B, 49),
    ``cam`` (B, 3) weak perspective, ``depth0`` (B,) the anchor depth in metres."""
    px = 0.5 * config.img_res
    sq = ((px * (pred2d - target[..., :2])) ** 2).sum(-1)
    reproj = (weights ** 2 * sq).sum(-1)
    depth = (config.depth_loss_weight ** 2) * (_depth(cam, config) - depth0) ** 2
    return reproj + depth


def body_fitting_loss(pred2d: Tensor, target: Tensor, weights: Tensor, body_pose: Tensor,
                      betas: Tensor, prior_nll: Tensor, config: SmplifyConfig) -> Tensor:
    """Stage-2 loss (B,): GMoF reprojection (pixels) + pose, shape and angle priors
    (``body_pose`` (B, 69) axis-angle, ``prior_nll`` (B,) already evaluated)."""
    px = 0.5 * config.img_res
    rho = gmof(px * (pred2d - target[..., :2]), config.sigma_px).sum(-1)
    reproj = (config.joint_loss_weight ** 2) * (weights ** 2 * rho).sum(-1)
    return (reproj
            + (config.pose_prior_weight ** 2) * prior_nll
            + (config.shape_prior_weight ** 2) * (betas ** 2).sum(-1)
            + (config.angle_prior_weight ** 2) * angle_prior(body_pose))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

_FAST_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _keypoint_lbs(body: BodyModel | KeypointLBS) -> KeypointLBS:
    if isinstance(body, KeypointLBS):
        return body
    fast = _FAST_CACHE.get(body)
    if fast is None:
        fast = KeypointLBS(body).to(body.smpl.shapedirs.device)
        _FAST_CACHE[body] = fast
    return fast


_OPENPOSE_TWIN = {"Right Hip": "OP RHip", "Left Hip": "OP LHip",
                  "Right Shoulder": "OP RShoulder", "Left Shoulder": "OP LShoulder",
                  "Right Knee": "OP RKnee", "Left Knee": "OP LKnee",
                  "Right Ankle": "OP RAnkle", "Left Ankle": "OP LAnkle",
                  "Right Elbow": "OP RElbow", "Left Elbow": "OP LElbow",
                  "Right Wrist": "OP RWrist", "Left Wrist": "OP LWrist"}


def _camera_weights(target: Tensor, stage2: Tensor, fast: KeypointLBS,
                    config: SmplifyConfig) -> Tensor:
    """(B, 49) stage-1 weights: the torso joints, or the stage-2 weights where an
    exemplar has no torso joint."""
    slot = torch.zeros(target.shape[1], dtype=target.dtype, device=target.device)
    for name in config.camera_joints:
        slot[SPIN49_INDEX[name]] = config.gt_weight
        twin = _OPENPOSE_TWIN.get(name)
        if twin is not None:
            slot[SPIN49_INDEX[twin]] = config.openpose_weight
    slot = slot * (fast.kp_total > 0.5).to(slot)
    w = target[..., 2] * slot
    has = w.sum(dim=1, keepdim=True) > 0
    return torch.where(has, w, stage2)


def _guess_camera(kp3d: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """(B, 3) weak camera matching the weighted centroid and RMS spread of the target."""
    w = weights.clamp_min(0)
    total = w.sum(dim=1, keepdim=True)
    safe = total.clamp_min(1e-12)
    x, X = target[..., :2], kp3d[..., :2]
    xbar = (w[..., None] * x).sum(1) / safe
    Xbar = (w[..., None] * X).sum(1) / safe
    spread_x = (w * ((x - xbar[:, None]) ** 2).sum(-1)).sum(1)
    spread_X = (w * ((X - Xbar[:, None]) ** 2).sum(-1)).sum(1)
    ok = (total[:, 0] > 0) & (spread_x > 1e-12) & (spread_X > 1e-12)
    s = torch.where(ok, (spread_x / spread_X.clamp_min(1e-12)).sqrt(),
                    torch.full_like(spread_x, DEFAULT_CAM[0]))
    t = torch.where(total > 0, xbar - s[:, None] * Xbar, torch.zeros_like(xbar))
    return torch.cat((s[:, None], t), dim=1)


def _initial_state(init: RegressorOutput | None, targets: Tensor, weights2: Tensor,
                   fast: KeypointLBS, prior: PosePrior, config: SmplifyConfig,
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """(aa (B, 24, 3), betas (B, 10), cam (B, 3)) to start from."""
    batch, dtype, device = targets.shape[0], targets.dtype, targets.device
    if init is not None:
        if init.rotmat.shape[0] != batch:
            raise EftError(f"init has {init.rotmat.shape[0]} rows for {batch} targets")
        rot = init.rotmat.detach().to(device, dtype)
        aa = rotmat_to_axis_angle(rot).reshape(batch, 24, 3)
        betas = init.betas.detach().to(device, dtype)[:, :fast.num_betas]
        if betas.shape[1] < fast.num_betas:
            betas = torch.nn.functional.pad(betas, (0, fast.num_betas - betas.shape[1]))
        return aa, betas, init.cam.detach().to(device, dtype)
    aa = torch.zeros(batch, 24, 3, dtype=dtype, device=device)
    aa[:, 0] = torch.tensor(_UPRIGHT_AA, dtype=dtype, device=device)
    if config.init_body_pose == "prior_mean" and isinstance(prior, GMMPosePrior):
        aa[:, 1:] = prior.mean_body_pose().to(device, dtype).reshape(23, 3)
    betas = torch.zeros(batch, fast.num_betas, dtype=dtype, device=device)
    with torch.no_grad():
        kp3d, _ = fast(axis_angle_to_rotmat(aa), betas)
    w1 = _camera_weights(targets, weights2, fast, config)
    cam = _guess_camera(kp3d.to(dtype), targets, w1)
    return aa, betas, cam


def _prior_nll(prior: PosePrior, aa: Tensor, rot: Tensor) -> Tensor:
    if isinstance(prior, GMMPosePrior):
        return prior.nll(aa[:, 1:].reshape(aa.shape[0], 69)).to(aa.dtype)
    return torch.as_tensor(prior(rot)).to(aa.dtype).reshape(aa.shape[0])


def _fit_rows(fast: KeypointLBS, targets: Tensor, weights2: Tensor, aa: Tensor,
              betas: Tensor, cam: Tensor, prior: PosePrior, config: SmplifyConfig,
              ) -> tuple[Tensor, Tensor, Tensor]:
    """Both stages for a batch of exemplars; returns the final (aa, betas, cam)."""
    batch = targets.shape[0]
    weights1 = _camera_weights(targets, weights2, fast, config)
    depth0 = _depth(cam, config).detach()

    # Stage 1: camera + global orientation.  The root rotation turns the whole body
    # about the root joint, so the keypoints with an identity root are computed once:
    # kp(R0) = R0 (kp(I) - j0) + j0 (exact, pose correctives depend on joints 1..23).
    with torch.no_grad():
        rest_root = aa.clone()
        rest_root[:, 0] = 0.0
        kp_i, joints_i = fast(axis_angle_to_rotmat(rest_root), betas)
        j0 = joints_i[:, :1]
        local = kp_i - j0
    orient = aa[:, 0].clone().requires_grad_(True)
    cam = cam.clone().requires_grad_(True)
    if config.camera_iters > 0:
        opt = torch.optim.Adam([orient, cam], lr=config.lr, betas=config.adam_betas)
        for _ in range(config.camera_iters):
            r0 = axis_angle_to_rotmat(orient)
            kp = torch.einsum("bij,bkj->bki", r0, local) + j0
            pred2d = weak_perspective_project(kp, cam)
            loss = camera_fitting_loss(pred2d, targets, weights1, cam, depth0, config)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()

    # Stage 2: body pose, global orientation, betas (and camera).
    orient = orient.detach().clone().requires_grad_(True)
    body = aa[:, 1:].detach().clone().requires_grad_(True)
    betas = betas.detach().clone().requires_grad_(True)
    cam = cam.detach().clone().requires_grad_(config.body_stage_camera)
    if config.body_iters > 0:
        params = [orient, body, betas] + ([cam] if config.body_stage_camera else [])
        opt = torch.optim.Adam(params, lr=config.lr, betas=config.adam_betas)
        for _ in range(config.body_iters):
            full = torch.cat((orient[:, None], body), dim=1)
            rot = axis_angle_to_rotmat(full)
            kp, _ = fast(rot, betas)
            pred2d = weak_perspective_project(kp, cam)
            nll = _prior_nll(prior, full, rot)
            loss = body_fitting_loss(pred2d, targets, weights2, body.reshape(batch, 69),
                                     betas, nll, config)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
    final = torch.cat((orient[:, None], body), dim=1).detach()
    return final, betas.detach(), cam.detach()


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def smplify(
    body: BodyModel | KeypointLBS,
    targets: Tensor,
    init: RegressorOutput | None = None,
    config: SmplifyConfig | None = None,
    pose_prior: PosePrior | None = None,
    centers: Tensor | np.ndarray | None = None,
    scales: Tensor | np.ndarray | None = None,
    exemplar_ids: Sequence[str] | None = None,
    *,
    batch_size: int | None = None,
    with_vertices: bool = False,
    progress: bool = False,
) -> list[Fit]:
    """Fit B exemplars with the SMPLify baseline (module docstring).

    Args:
        body: the body model (or its :class:`~eft.body.fast.KeypointLBS`).
        targets: (B, 49, 3) SPIN-49 keypoints ``[x, y, conf]``, crop-normalised
            (e.g. from :func:`~eft.fitting.engine.exemplar_batch`); non-finite or
            ``conf <= 0`` entries are missing.
        init: the regressor's prediction for the B crops (SPIN style), or None for the
            mean-pose start.
        config: :class:`SmplifyConfig` (SPIN's defaults).
        pose_prior: ``rotmats (B, 24, 3, 3) -> nll (B,)``, used in the loss and for
            ``FitQuality.pose_nll``; None = :func:`load_default_pose_prior`.
        centers: (B, 2) bbox centres and ``scales`` (B,) bbox side / 200, image px
            (default: the 224 px crop is the image).
        exemplar_ids: B ids (default ``"0"``, ``"1"`` ...).
        batch_size: exemplars optimised together (memory only; None = all).
        with_vertices: also pose the mesh (``Fit.vertices``; needs a BodyModel).
        progress: show a tqdm bar over chunks.

    Returns:
        One :class:`~eft.fitting.records.Fit` per exemplar, in order.
    """
    config = config or SmplifyConfig()
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    fast = _keypoint_lbs(body)
    device, dtype = fast.c.device, fast.c.dtype
    prior = load_default_pose_prior() if pose_prior is None else pose_prior
    if isinstance(prior, GMMPosePrior):
        prior = prior.to(device)
    targets = torch.as_tensor(targets)
    if targets.dim() != 3 or tuple(targets.shape[1:]) != (49, 3):
        raise EftError(f"targets must have shape (B, 49, 3), got {tuple(targets.shape)}")
    batch = targets.shape[0]
    targets = sanitize_keypoints(targets.to(device, dtype))
    eft_cfg = config.eft_config()
    weights2 = loss_weights(targets, eft_cfg, fast)
    n_valid = count_valid_gt(targets, fast).cpu()
    skipped = n_valid < config.rules.min_valid_keypoints
    centers, scales, ids = crops_and_ids(batch, centers, scales, exemplar_ids)

    aa0, betas0, cam0 = _initial_state(init, targets, weights2, fast, prior, config)
    aa, betas, cam = aa0.clone(), betas0.clone(), cam0.clone()
    todo = torch.nonzero(~skipped).flatten().to(device)
    chunk = int(batch_size) if batch_size is not None else max(int(todo.numel()), 1)
    starts = range(0, int(todo.numel()), chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="SMPLify", unit="chunk")
    for start in starts:
        rows = todo[start:start + chunk]
        a, b, c = _fit_rows(fast, targets[rows], weights2[rows], aa0[rows], betas0[rows],
                            cam0[rows], prior, config)
        aa[rows], betas[rows], cam[rows] = a, b, c
    iterations = torch.where(skipped, 0, config.iterations)

    with torch.no_grad():
        rot0 = axis_angle_to_rotmat(aa0)
        rot = axis_angle_to_rotmat(aa)
        _, l2d_init = eft_loss(RegressorOutput(rot0, betas0, cam0), targets, eft_cfg, fast)
        final = RegressorOutput(rot, betas, cam)
        _, l2d_final = eft_loss(final, targets, eft_cfg, fast)
        kp3d, _ = fast(rot, betas)
        pred2d = weak_perspective_project(kp3d, cam)
        finite = (torch.isfinite(aa).flatten(1).all(1) & torch.isfinite(betas).all(1)
                  & torch.isfinite(cam).all(1) & torch.isfinite(l2d_final)
                  & torch.isfinite(l2d_init)).cpu()
        nll = pose_nll(prior, rot)
        qualities = assess(
            config.rules, loss_2d_init=l2d_init.double().cpu(),
            loss_2d_final=l2d_final.double().cpu(), iterations=iterations,
            converged=(l2d_final < config.converge_loss_2d).cpu() & ~skipped,
            betas=betas, pred2d=pred2d, target=targets, centers=centers.to(device),
            scales=scales.to(device), n_valid_keypoints=n_valid, finite=finite,
            skipped=skipped, nll=nll, keypoint_valid=fast.kp_total > 0.5)
        pose_aa = rotmat_to_axis_angle(rot).reshape(batch, 72)
        cam_t = weak_to_perspective_translation(cam, config.focal_length, config.img_res)
        vertices = None
        if with_vertices:
            if not isinstance(body, BodyModel):
                raise EftError("with_vertices=True needs a BodyModel, not a KeypointLBS")
            vertices = body(rot, betas).vertices

    def np32(t: Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy()

    rot_np, aa_np, betas_np, cam_np, ct_np, kp_np = map(
        np32, (rot, pose_aa, betas, cam, cam_t, kp3d))
    verts = None if vertices is None else np32(vertices)
    return [
        Fit(exemplar_id=ids[i], rotmat=rot_np[i], pose_aa=aa_np[i], betas=betas_np[i],
            cam_weak=cam_np[i], cam_t=ct_np[i], keypoints3d=kp_np[i],
            center=centers[i].numpy().copy(), scale=float(scales[i]), quality=q,
            vertices=None if verts is None else verts[i])
        for i, q in enumerate(qualities)
    ]
