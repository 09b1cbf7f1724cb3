"""Pose-error metrics and similarity (Procrustes) alignment.

Units are those of the inputs (pass metres and multiply by 1000 for millimetres).
All functions are batched over leading dimensions ``...`` and keep the input dtype.

Masks: ``valid`` (..., N) may be bool or numeric (nonzero = valid).  Invalid joints
are excluded with ``torch.where``, so NaN/inf placeholders at invalid joints do not
leak into the values.  **A batch element without any valid joint yields NaN** in
:func:`mpjpe`, :func:`pa_mpjpe`, :func:`pck` and :func:`reprojection_error_px`
(use ``torch.nanmean`` to average over a batch).
"""

from __future__ import annotations

import torch

from ._common import as_tensor_like, check_points

__all__ = [
    "procrustes_params",
    "procrustes_align",
    "mpjpe",
    "pa_mpjpe",
    "pck",
    "reprojection_error_px",
]


def _weights(valid, like: torch.Tensor) -> torch.Tensor:
    """(..., N) weights in ``like``'s dtype from a bool/numeric mask (all ones if None).

    ``like`` has shape (..., N).
    """
    if valid is None:
        return torch.ones_like(like)
    return torch.as_tensor(valid, device=like.device).to(like.dtype)


def _mask(valid, like: torch.Tensor) -> torch.Tensor:
    """0/1 mask (nonzero = valid) broadcast to ``like`` (..., N)."""
    mask = (_weights(valid, like) != 0).to(like.dtype)
    return torch.broadcast_to(mask, torch.broadcast_shapes(mask.shape, like.shape))


def procrustes_params(
    pred: torch.Tensor, gt: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform mapping ``pred`` onto ``gt`` (weighted Umeyama).

    Shapes: ``pred``, ``gt`` (..., N, 3); ``weights`` (..., N) non-negative or ``None``
    -> ``(scale (...), R (..., 3, 3), t (..., 3))`` minimising
    ``sum_i w_i |scale * R @ pred_i + t - gt_i|^2`` over scale >= 0, proper rotations
    ``R`` (``det R = +1``; a reflection is never returned) and translations ``t``.

    Joints with zero weight do not influence the transform.  At least one positive
    weight is required (else NaN).  A degenerate ``pred`` (all points equal) gives
    ``scale = 0``.  Gradients flow through ``torch.linalg.svd`` and are undefined when
    the weighted cross-covariance has repeated singular values (e.g. collinear points).

    The fit minimises squared error, so it never increases the sum of squared
    errors; the *mean* Euclidean error (MPJPE) can still rise when one joint is an
    outlier, i.e. ``pa_mpjpe <= mpjpe`` is typical but not guaranteed.
    """
    check_points("pred", pred, 3)
    check_points("gt", gt, 3)
    gt = gt.to(pred.dtype)
    w = _weights(weights, pred[..., 0])
    w = torch.broadcast_to(w, torch.broadcast_shapes(w.shape, pred.shape[:-1], gt.shape[:-1]))
    w_sum = w.sum(-1, keepdim=True)  # (..., 1)
    wn = (w / w_sum)[..., None]  # (..., N, 1), sums to 1
    pred_z = torch.where(wn > 0, pred, torch.zeros_like(pred))
    gt_z = torch.where(wn > 0, gt, torch.zeros_like(gt))
    mu_p = (wn * pred_z).sum(-2)  # (..., 3)
    mu_g = (wn * gt_z).sum(-2)
    xp = pred_z - mu_p[..., None, :]
    yg = gt_z - mu_g[..., None, :]
    var_p = (wn * xp * xp).sum((-2, -1))  # (...)
    cov = (yg * wn).transpose(-1, -2) @ xp  # (..., 3, 3) = sum_i w_i y_i x_i^T
    u, sv, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))  # -1: reflection, fix it
    ones = torch.ones_like(d)
    diag = torch.stack((ones, ones, d), dim=-1)  # (..., 3)
    rot = (u * diag[..., None, :]) @ vh
    scale = (sv * diag).sum(-1) / var_p.clamp_min(torch.finfo(pred.dtype).tiny)
    t = mu_g - scale[..., None] * (rot @ mu_p[..., None])[..., 0]
    return scale, rot, t


def procrustes_align(
    pred: torch.Tensor, gt: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``pred`` after the optimal similarity transform onto ``gt``.

    Shapes: ``pred``, ``gt`` (..., N, 3); ``weights`` (..., N) or ``None`` -> (..., N, 3).
    See :func:`procrustes_params`; every joint (also zero-weight ones) is transformed.
    """
    scale, rot, t = procrustes_params(pred, gt, weights)
    return scale[..., None, None] * (pred @ rot.transpose(-1, -2)) + t[..., None, :]


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean over the last dim; NaN where all weights are zero."""
    values = torch.where(weights > 0, values, torch.zeros_like(values))
    return (values * weights).sum(-1) / weights.sum(-1)


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, valid=None) -> torch.Tensor:
    """Mean per-joint position error (mean Euclidean distance over valid joints).

    Shapes: ``pred``, ``gt`` (..., N, D); ``valid`` (..., N) or ``None`` -> (...).
    NaN for a batch element without valid joints.
    """
    err = torch.linalg.vector_norm(pred - gt.to(pred.dtype), dim=-1)
    mask = _mask(valid, err)
    return _masked_mean(err.expand_as(mask), mask)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor, valid=None) -> torch.Tensor:
    """MPJPE after Procrustes alignment of ``pred`` onto ``gt`` (using only valid joints).

    Shapes: ``pred``, ``gt`` (..., N, 3); ``valid`` (..., N) or ``None`` -> (...).
    """
    mask = None if valid is None else _mask(valid, pred[..., 0])
    return mpjpe(procrustes_align(pred, gt, mask), gt, mask)


def pck(pred: torch.Tensor, gt: torch.Tensor, threshold, valid=None) -> torch.Tensor:
    """Percentage of correct keypoints, as a fraction in ``[0, 1]``.

    Shapes: ``pred``, ``gt`` (..., N, 2 or 3); ``threshold`` scalar or (...,);
    ``valid`` (..., N) or ``None`` -> (...).

    A valid joint is correct when its Euclidean error is ``<= threshold`` (inclusive).
    NaN for a batch element without valid joints.  Piecewise constant, so its gradient
    is zero.
    """
    err = torch.linalg.vector_norm(pred - gt.to(pred.dtype), dim=-1)
    thr = as_tensor_like(threshold, err)[..., None]
    hit = (err <= thr).to(err.dtype)
    hit, mask = torch.broadcast_tensors(hit, _mask(valid, err))
    return _masked_mean(hit, mask)


def reprojection_error_px(
    pred_px: torch.Tensor, gt_px: torch.Tensor, conf: torch.Tensor
) -> torch.Tensor:
    """Confidence-weighted mean 2D distance ``sum_i c_i |p_i - g_i| / sum_i c_i``.

    Shapes: ``pred_px``, ``gt_px`` (..., N, 2); ``conf`` (..., N) -> (...).

    Joints with ``conf <= 0`` are ignored (negative confidences count as 0).  NaN for a
    batch element whose confidences are all zero.
    """
    check_points("pred_px", pred_px, 2)
    check_points("gt_px", gt_px, 2)
    err = torch.linalg.vector_norm(pred_px - gt_px.to(pred_px.dtype), dim=-1)
    w = as_tensor_like(conf, err).clamp_min(0.0)
    err, w = torch.broadcast_tensors(err, w)
    return _masked_mean(err, w)
