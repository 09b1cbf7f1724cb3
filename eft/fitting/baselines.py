"""The trivial baseline: the regressor's mean pose, placed on the keypoints by a camera.

:func:`mean_pose_fits` answers "how far does one fixed body get": every person gets the
regressor's IEF starting point (the buffers ``init_pose`` (1, 144) 6D and
``init_shape`` (1, 10), i.e. the mean parameters the IEF loop starts from), and only
the weak-perspective camera ``[s, tx, ty]`` is fitted, in closed form, by weighted
least squares on the annotated keypoints (:func:`fit_weak_camera`)::

    min_{s, t}  sum_j w_j |s X_j + t - x_j|^2
    t = xbar - s Xbar,   s = sum_j w_j (X_j - Xbar).(x_j - xbar) / sum_j w_j |X_j - Xbar|^2

with ``X_j`` the mean body's keypoint (x, y), ``x_j`` the crop-normalised target and
``bar`` the ``w``-weighted means.  The weights are EFT's joint weights
(:func:`~eft.fitting.losses.loss_weights`: confidence x slot weight, OpenPose slots
off, GT hips and MPII pelvis off unless ``with_hips``, keypoints the body lacks off;
the GT ankles count).  ``s`` is the unconstrained optimum: it is negative only when
the keypoints are better matched by the body turned upside down in the image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from eft.body.fast import KeypointLBS
from eft.body.model import BodyModel
from eft.errors import EftError
from eft.geometry.cameras import weak_to_perspective_translation
from eft.geometry.rotations import rot6d_to_rotmat, rotmat_to_axis_angle
from eft.models.ief import DEFAULT_CAM
from eft.models.output import RegressorOutput

from .config import EFTConfig
from .losses import count_valid_gt, eft_loss, loss_weights, project, sanitize_keypoints
from .quality import PosePrior, assess, pose_nll
from .records import Fit, FitTargets

__all__ = ["fit_weak_camera", "mean_output", "mean_pose_fits"]


def fit_weak_camera(points: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Closed-form weighted least-squares weak camera, (B, 3) ``[s, tx, ty]``.

    Args:
        points: (B, K, 2+) body keypoints (only x, y are used).
        target: (B, K, 2+) crop-normalised targets (only x, y are used), finite.
        weights: (B, K) non-negative weights.

    Rows with no weight or no spread of the body points get ``DEFAULT_CAM`` (s = 0.9,
    centred) when the weight is 0, else that scale with the centroid-matching ``t``.
    """
    w = weights.clamp_min(0).to(torch.float64)
    X = points[..., :2].to(torch.float64)
    x = target[..., :2].to(torch.float64)
    total = w.sum(dim=1, keepdim=True)
    safe = total.clamp_min(1e-12)
    Xbar = (w[..., None] * X).sum(1) / safe
    xbar = (w[..., None] * x).sum(1) / safe
    dX, dx = X - Xbar[:, None], x - xbar[:, None]
    num = (w * (dX * dx).sum(-1)).sum(1)
    den = (w * (dX * dX).sum(-1)).sum(1)
    ok = (total[:, 0] > 0) & (den > 1e-12)
    s = torch.where(ok, num / den.clamp_min(1e-12), torch.full_like(num, DEFAULT_CAM[0]))
    t = torch.where(total > 0, xbar - s[:, None] * Xbar,
                    torch.tensor(DEFAULT_CAM[1:], dtype=torch.float64).expand_as(xbar))
    return torch.cat((s[:, None], t), dim=1).to(points.dtype)


def mean_output(model: nn.Module, batch: int) -> RegressorOutput:
    """The regressor's IEF starting point for ``batch`` rows: rotations of
    ``model.init_pose`` (6D), betas ``model.init_shape``, camera ``model.init_cam``."""
    starts = []
    for name in ("init_pose", "init_shape", "init_cam"):
        value = getattr(model, name, None)
        if not isinstance(value, Tensor):
            raise EftError(f"a {type(model).__name__} has no {name} (not an IEF regressor)")
        starts.append(value.detach().reshape(1, -1).expand(batch, -1))
    pose6d, betas, cam = starts
    rotmat = rot6d_to_rotmat(pose6d.reshape(batch, 24, 6))
    return RegressorOutput(rotmat=rotmat, betas=betas, cam=cam, pose6d=pose6d)


def mean_pose_fits(model: nn.Module, body: BodyModel | KeypointLBS, targets: FitTargets,
                   config: EFTConfig | None = None, *,
                   pose_prior: PosePrior | None = None) -> list[Fit]:
    """The mean-pose baseline (module docstring) as :class:`Fit` s.

    Args:
        model: an IEF regressor (its ``init_pose`` / ``init_shape`` are used).
        body: body model or its :class:`KeypointLBS`.
        targets: :class:`FitTargets` (its keypoints (B, 49, 3), ids and crops; no
            model inputs are needed).
        config: joint weights of the camera fit and of ``L2D`` and the acceptance rules
            (:class:`EFTConfig`, default EFT's).
        pose_prior: scores ``quality.pose_nll`` (None: not scored, NaN).

    Quality: ``loss_2d_init == loss_2d_final`` = EFT's ``L2D`` of the mean body with
    the fitted camera, ``iterations`` 0, ``converged`` = ``L2D < stop_loss_2d``; the
    acceptance rules are applied as for EFT (people with too few keypoints are flagged,
    still placed).
    """
    config = config or EFTConfig()
    fast = body if isinstance(body, KeypointLBS) else KeypointLBS(body)
    dtype = fast.c.dtype
    centers, scales, ids = targets.center_tensor, targets.scale_tensor, targets.id_list
    keypoints = sanitize_keypoints(targets.keypoints.to(dtype))
    batch = targets.batch
    with torch.no_grad():
        start = mean_output(model, batch)
        rot, betas = start.rotmat.to(dtype), start.betas.to(dtype)
        kp3d, _ = fast(rot, betas)
        cam = fit_weak_camera(kp3d, keypoints, loss_weights(keypoints, config, fast))
        out = RegressorOutput(rotmat=rot, betas=betas, cam=cam)
        _, l2d = eft_loss(out, keypoints, config, fast)
        kp3d, pred2d = project(out, fast)
        n_valid = count_valid_gt(keypoints, fast)
        skipped = n_valid < config.rules.min_valid_keypoints
        finite = (torch.isfinite(cam).all(1) & torch.isfinite(l2d))
        qualities = assess(
            config.rules, loss_2d_init=l2d.double(), loss_2d_final=l2d.double(),
            iterations=torch.zeros(batch, dtype=torch.long),
            converged=(l2d < config.stop_loss_2d) & ~skipped, betas=betas, pred2d=pred2d,
            target=keypoints, centers=centers, scales=scales, n_valid_keypoints=n_valid,
            finite=finite, skipped=torch.zeros(batch, dtype=torch.bool),
            nll=None if pose_prior is None else pose_nll(pose_prior, rot),
            keypoint_valid=fast.kp_total > 0.5)
        pose_aa = rotmat_to_axis_angle(rot).reshape(batch, 72)
        cam_t = weak_to_perspective_translation(cam, config.focal_length, config.img_res)

    def np32(t: Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy()

    rot_np, aa_np, betas_np, cam_np, ct_np, kp_np = map(
        np32, (rot, pose_aa, betas, cam, cam_t, kp3d))
    return [
        Fit(exemplar_id=ids[i], rotmat=rot_np[i], pose_aa=aa_np[i], betas=betas_np[i],
            cam_weak=cam_np[i], cam_t=ct_np[i], keypoints3d=kp_np[i],
            center=centers[i].numpy().copy(), scale=float(scales[i]), quality=q)
        for i, q in enumerate(qualities)
    ]
