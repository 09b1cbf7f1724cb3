"""Refining a fit under the image's own perspective camera (exact 2D labels).

EFT and SMPLify both fit through a weak-perspective camera on the person's crop, which
cannot tell a limb pointing toward the camera from the same limb pointing away: both
project alike.  A real camera is not weak: the nearer part of a body is drawn larger.
With labels that carry no annotation noise (2D projected from motion capture, as a
studio set's is) that difference is measurable, and it fixes most of the depth choices
the weak camera leaves open.  :func:`perspective_refine` starts from a fit, places it
in front of a pinhole camera with the image's focal length and principal point (the
translation by linear least squares), then moves every joint rotation, the betas and
the translation to reproduce the labels through that camera, with a small penalty on
leaving the starting rotations.

The camera comes from the image: its focal length, when the data gives it, else the
image diagonal in pixels (:func:`default_focal`); the principal point is the image
centre.  For people whose image size is unknown the camera is guessed from the crop
(:data:`FOCAL_PER_CROP_SIDE`).

All coordinates here are the crop-normalised ones of
:class:`~eft.fitting.records.FitTargets`: the crop is the ``200 * scale`` px square
around ``center``, so an image camera ``(f, p)`` reads ``f_n = 2 f / side`` and
``p_n = 2 (p - center) / side`` there (:func:`crop_camera`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from eft.body.fast import KeypointLBS
from eft.body.joints import SKELETON_FREE_SLOTS
from eft.data.exemplar import Exemplar
from eft.geometry.cameras import perspective_project
from eft.geometry.rotations import axis_angle_to_rotmat

from .losses import NUM_OPENPOSE

__all__ = ["FOCAL_PER_CROP_SIDE", "crop_camera", "default_focal", "image_camera",
           "perspective_refine", "perspective_residual", "refine_weights"]


def default_focal(width: float, height: float) -> float:
    """Focal length (px) assumed for an image of ``width`` x ``height`` px whose camera
    is not given: the image diagonal (a 53 degree diagonal field of view).  On
    synthetic studio cameras (focal 1,145 px, 1,000 px images) this guess costs 0.03 mm
    PA-MPJPE-14 against the true focal; 0.8 or 1.25 times the truth cost 2.0 / 0.1 mm."""
    return math.hypot(float(width), float(height))


#: Focal length assumed for a person whose image size is unknown, in crop sides
#: (``200 * scale`` px, 1.2 times the box's long side), with the principal point at
#: the crop centre.  The true ratio is 2.0-2.8 for synthetic studio cameras and
#: 1.2-5.4 for the synthetic photo ones (10th-90th percentiles); on 128 exact H36M-17
#: labels each this guess scores 36.4 / 44.3 mm PA-MPJPE-14 against 36.3 / 43.5 with
#: the image size known and 45.9 / 50.3 without the refinement (1.5 and 4.0 crop sides
#: score 40.1 / 46.8 and 37.5 / 45.2).
FOCAL_PER_CROP_SIDE = 2.5


def image_camera(exemplar: Exemplar) -> tuple[float, tuple[float, float]]:
    """(focal px, principal point (x, y) px) of the exemplar's image: ``meta["focal"]``
    and ``meta["principal_point"]`` when the data gives them, else the image diagonal
    (:func:`default_focal`) and the image centre; without an image size,
    :data:`FOCAL_PER_CROP_SIDE` crop sides and the crop centre (a guess that keeps
    almost all of the refinement's gain: perspective is a matter of the person's depth
    against their size, and the principal point only turns the whole body, which
    Procrustes-aligned errors ignore)."""
    meta = exemplar.meta or {}
    size = exemplar.image_size
    focal = meta.get("focal")
    if focal is None:
        focal = (default_focal(*size) if size is not None
                 else FOCAL_PER_CROP_SIDE * 200.0 * float(exemplar.scale))
    pp = meta.get("principal_point")
    if pp is None:
        pp = ((0.5 * size[0], 0.5 * size[1]) if size is not None
              else tuple(float(v) for v in np.asarray(exemplar.center, dtype=np.float64)))
    return float(focal), (float(pp[0]), float(pp[1]))


def crop_camera(focal: Tensor, principal_point: Tensor, centers: Tensor, scales: Tensor
                ) -> tuple[Tensor, Tensor]:
    """Image camera -> crop-normalised camera.

    Shapes: ``focal`` (B,) px, ``principal_point`` (B, 2) px, ``centers`` (B, 2) px,
    ``scales`` (B,) (crop side / 200 px) -> (``f_n`` (B,), ``p_n`` (B, 2))."""
    half = 100.0 * scales
    return focal / half, (principal_point - centers) / half[:, None]


def _translation(points: Tensor, target: Tensor, weights: Tensor, focal: Tensor,
                 centre: Tensor) -> Tensor:
    """(B, 3) translation ``t`` minimising ``sum_k w_k |(f (X_k + t)_xy - (u_k - c)
    (X_k + t)_z)|^2``, the pinhole equations made linear, per person.

    Shapes: ``points`` (B, K, 3), ``target`` (B, K, 2), ``weights`` (B, K),
    ``focal`` (B,), ``centre`` (B, 2)."""
    batch, k = points.shape[:2]
    a = points.new_zeros(batch, k, 2, 3)
    r = points.new_zeros(batch, k, 2)
    for axis in range(2):
        uc = target[..., axis] - centre[:, None, axis]
        a[..., axis, axis] = focal[:, None]
        a[..., axis, 2] = -uc
        r[..., axis] = uc * points[..., 2] - focal[:, None] * points[..., axis]
    sw = weights.sqrt()
    a = (a * sw[..., None, None]).reshape(batch, -1, 3)
    r = (r * sw[..., None]).reshape(batch, -1, 1)
    normal = a.transpose(1, 2) @ a + 1e-9 * torch.eye(3, dtype=a.dtype, device=a.device)
    return torch.linalg.solve(normal, a.transpose(1, 2) @ r)[..., 0]


def refine_weights(targets: Tensor, fast: KeypointLBS, openpose_weight: float = 0.0,
                   torso_weight: float = 1.0) -> Tensor:
    """(B, 49, 3) sanitised crop targets -> (B, 49) weights of the refinement: the
    confidence of every labelled slot the body model defines, times 1 on the slots every
    skeleton places alike (:data:`~eft.body.joints.SKELETON_FREE_SLOTS`), times
    ``torso_weight`` on the other ground-truth slots (hips, pelvis, spine, neck, head,
    which studio skeletons define unlike the body model) and ``openpose_weight`` on the
    OpenPose slots."""
    slot = torch.full((targets.shape[1],), float(torso_weight), dtype=targets.dtype,
                      device=targets.device)
    slot[list(SKELETON_FREE_SLOTS)] = 1.0
    slot[:NUM_OPENPOSE] = float(openpose_weight)
    slot = slot * (fast.kp_total > 0.5).to(slot)
    return targets[..., 2].clamp_min(0) * slot


def perspective_residual(points: Tensor, targets: Tensor, focal: Tensor, centre: Tensor
                         ) -> Tensor:
    """(B,) how closely bodies drawn through a pinhole camera reproduce labels on the
    slots every skeleton places alike: each body's keypoints ``points`` (B, 49, 3, body
    frame) are placed by the least-squares translation on those slots, and the mean
    distance there is returned as a share of the crop side (NaN without such a slot).
    ``targets`` (B, 49, 3), ``focal`` (B,) and ``centre`` (B, 2) crop-normalised."""
    conf = torch.nan_to_num(targets[..., 2], nan=0.0).clamp_min(0)
    weights = torch.zeros_like(conf)
    weights[:, list(SKELETON_FREE_SLOTS)] = conf[:, list(SKELETON_FREE_SLOTS)]
    uv = torch.nan_to_num(targets[..., :2])
    t = _translation(points, uv, weights, focal, centre)
    dist = (perspective_project(points, t, focal, centre) - uv).norm(dim=-1)
    total = weights.sum(1)
    out = 0.5 * (dist * weights).sum(1) / total.clamp_min(1e-12)
    return torch.where(total > 0, out, torch.full_like(out, float("nan")))


def perspective_refine(fast: KeypointLBS, rotmat: Tensor, betas: Tensor, targets: Tensor,
                       focal: Tensor, centre: Tensor, *, steps: int = 150,
                       pose_weight: float = 3e-3, shape_weight: float = 1e-3,
                       lr: float = 0.01, openpose_weight: float = 0.0,
                       torso_weight: float = 1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Refine fits to reproduce ``targets`` through a pinhole camera.

    Args:
        fast: the body's keypoint path.
        rotmat: (B, 24, 3, 3) starting rotations; ``betas`` (B, nb).
        targets: (B, 49, 3) crop-normalised keypoints + confidence (sanitised: missing
            slots have confidence 0).
        focal: (B,) and ``centre`` (B, 2): the camera in crop-normalised units
            (:func:`crop_camera`).
        steps: Adam steps (lr ``lr``) over per-joint axis-angle offsets from ``rotmat``,
            the betas and the translation.
        pose_weight: weight of the offsets' squared norm (radians^2, summed over
            joints); ``shape_weight`` of the betas' squared change.  The reprojection
            term is the weighted sum of squared crop-normalised distances
            (:func:`refine_weights` with ``openpose_weight`` and ``torso_weight``).

    Returns ``(rotmat (B, 24, 3, 3), betas (B, nb), transl (B, 3), keypoints (B, 49,
    3))``: ``transl`` places the body in front of the camera; ``keypoints`` are the
    refined body's, in its own frame (add ``transl`` for the camera's).
    """
    weights = refine_weights(targets, fast, openpose_weight, torso_weight)
    uv = targets[..., :2]
    rot0, b0 = rotmat.detach(), betas.detach()
    with torch.no_grad():
        points, _ = fast(rot0, b0)
        t0 = _translation(points, uv, weights, focal, centre)
    delta = torch.zeros(rot0.shape[0], rot0.shape[1], 3, dtype=rot0.dtype,
                        device=rot0.device, requires_grad=True)
    shape = b0.clone().requires_grad_(True)
    transl = t0.clone().requires_grad_(True)
    opt = torch.optim.Adam([delta, shape, transl], lr=lr)
    for _ in range(int(steps)):
        with torch.enable_grad():
            rot = rot0 @ axis_angle_to_rotmat(delta)
            points, _ = fast(rot, shape)
            proj = perspective_project(points, transl, focal, centre)
            reproj = (((proj - uv) ** 2).sum(-1) * weights).sum(1)
            loss = (reproj + pose_weight * (delta ** 2).sum((1, 2))
                    + shape_weight * ((shape - b0) ** 2).sum(1))
            opt.zero_grad()
            loss.sum().backward()
        opt.step()
    with torch.no_grad():
        rot = rot0 @ axis_angle_to_rotmat(delta)
        points, _ = fast(rot, shape)
    return rot.detach(), shape.detach(), transl.detach(), points
