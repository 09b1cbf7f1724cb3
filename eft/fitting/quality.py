"""Fit quality: reprojection error, acceptance flags (EFT's filters) and the verdict.

Everything is computed from the outputs of the forward pass whose parameters were kept
(the stopping step).  :func:`quality_flags` is the single place where the
:class:`~eft.fitting.config.QualityRules` are applied; :func:`apply_rules` re-judges an
existing :class:`~eft.fitting.records.FitQuality` under other rules without refitting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from eft.geometry.cameras import crop_norm_to_image

from .config import QualityRules
from .losses import NUM_OPENPOSE
from .records import Fit, FitQuality

__all__ = [
    "PosePrior",
    "reprojection_px",
    "pose_nll",
    "quality_flags",
    "assess",
    "apply_rules",
    "rejudge",
]

#: A pose prior (the GMM pose prior, :class:`~eft.fitting.pose_prior.GMMPosePrior`, or any
#: such callable): rotations (B, 24, 3, 3) -> negative log-likelihood (B,).
PosePrior = Callable[[Tensor], Tensor]


def reprojection_px(
    pred2d: Tensor, target: Tensor, centers: Tensor, scales: Tensor,
    valid: Tensor | None = None,
) -> Tensor:
    """Mean image-pixel distance over the annotated GT keypoints, (B,).

    Args:
        pred2d: (B, 49, 2) projected keypoints, crop-normalised.
        target: (B, 49, 3) crop-normalised target keypoints + confidence (finite).
        centers: (B, 2) bbox centres, image px.   scales: (B,) bbox side / 200.
        valid: (49,) bool, keypoints the body model defines (default: all).

    Slots 25..48 with ``conf > 0`` count, each with weight 1; NaN where there are none.
    """
    pred_px = crop_norm_to_image(pred2d, centers, scales)
    gt_px = crop_norm_to_image(target[..., :2].to(pred2d.dtype), centers, scales)
    use = target[..., 2] > 0
    use[:, :NUM_OPENPOSE] = False
    if valid is not None:
        use = use & valid.to(use.device)
    dist = torch.linalg.vector_norm(pred_px - gt_px, dim=-1)
    count = use.sum(dim=1)
    total = torch.where(use, dist, torch.zeros_like(dist)).sum(dim=1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def pose_nll(prior: PosePrior | None, rotmat: Tensor) -> Tensor:
    """(B,) ``prior(rotmat)`` as float64 without gradients; NaN without a prior."""
    if prior is None:
        return torch.full((rotmat.shape[0],), math.nan, dtype=torch.float64)
    with torch.no_grad():
        nll = torch.as_tensor(prior(rotmat)).detach().to("cpu", torch.float64).reshape(-1)
    if nll.shape[0] != rotmat.shape[0]:
        raise ValueError(f"pose prior returned {nll.shape[0]} values for {rotmat.shape[0]} poses")
    return nll


def quality_flags(
    rules: QualityRules,
    *,
    loss_2d_init: float,
    loss_2d_final: float,
    max_abs_beta: float,
    n_valid_keypoints: int,
    pose_nll: float = math.nan,
    finite: bool = True,
    skipped: bool = False,
) -> tuple[str, ...]:
    """The flags a fit with these numbers gets under ``rules``, in
    :data:`~eft.fitting.config.FLAGS` order.  NaN losses / betas never pass a threshold
    (they raise ``"non_finite"`` too)."""
    flags = []
    if not loss_2d_final <= rules.max_loss_2d:
        flags.append("not_converged")
    if not max_abs_beta <= rules.max_abs_beta:
        flags.append("extreme_shape")
    if rules.max_pose_nll is not None and not math.isnan(pose_nll) and (
            pose_nll > rules.max_pose_nll):
        flags.append("implausible_pose")
    if n_valid_keypoints < rules.min_valid_keypoints:
        flags.append("too_few_keypoints")
    if not loss_2d_init <= rules.max_initial_loss_2d:
        flags.append("high_initial_loss")
    numbers = (loss_2d_init, loss_2d_final, max_abs_beta)
    if not finite or not all(math.isfinite(v) for v in numbers):
        flags.append("non_finite")
    if skipped:
        flags.append("skipped")
    return tuple(flags)


def assess(
    rules: QualityRules,
    *,
    loss_2d_init: Sequence[float] | Tensor,
    loss_2d_final: Sequence[float] | Tensor,
    iterations: Sequence[int] | Tensor,
    converged: Sequence[bool] | Tensor,
    betas: Tensor,
    pred2d: Tensor,
    target: Tensor,
    centers: Tensor,
    scales: Tensor,
    n_valid_keypoints: Sequence[int] | Tensor,
    finite: Sequence[bool] | Tensor,
    skipped: Sequence[bool] | Tensor,
    nll: Tensor | None = None,
    keypoint_valid: Tensor | None = None,
) -> list[FitQuality]:
    """One :class:`FitQuality` per exemplar (B of them).

    ``betas`` (B, 10), ``pred2d`` (B, 49, 2) and ``target`` (B, 49, 3) are those of the
    stopping step; ``centers`` (B, 2), ``scales`` (B,); ``nll`` (B,) or None;
    ``finite`` says whether the exemplar's input and kept outputs were finite.
    """
    px = reprojection_px(pred2d.detach(), target, centers, scales,
                         keypoint_valid).double().cpu().numpy()
    side = 200.0 * torch.as_tensor(scales).double().cpu().numpy()
    max_beta = betas.detach().abs().amax(dim=1).double().cpu().numpy()
    nll_np = (np.full(len(px), np.nan) if nll is None
              else torch.as_tensor(nll).double().cpu().numpy())
    out = []
    for i in range(len(px)):
        init = float(loss_2d_init[i])
        final = float(loss_2d_final[i])
        n_valid = int(n_valid_keypoints[i])
        flags = quality_flags(
            rules, loss_2d_init=init, loss_2d_final=final, max_abs_beta=float(max_beta[i]),
            n_valid_keypoints=n_valid, pose_nll=float(nll_np[i]), finite=bool(finite[i]),
            skipped=bool(skipped[i]))
        out.append(FitQuality(
            loss_2d_init=init,
            loss_2d_final=final,
            reproj_px=float(px[i]),
            reproj_frac_bbox=float(px[i] / side[i]),
            iterations=int(iterations[i]),
            converged=bool(converged[i]),
            max_abs_beta=float(max_beta[i]),
            pose_nll=float(nll_np[i]),
            n_valid_keypoints=n_valid,
            accepted=not any(f in rules.reject_flags for f in flags),
            flags=flags,
        ))
    return out


#: Quality flag of a fit whose stored quality could not be read (a value of the wrong
#: type in an annotation file): its measures are NaN and it is not accepted, under any
#: rules (:func:`apply_rules` keeps it).  The other fits of the file keep their quality.
MALFORMED_QUALITY = "malformed_quality"


def apply_rules(quality: FitQuality, rules: QualityRules) -> FitQuality:
    """``quality`` judged again under ``rules`` (no refitting).  Whether the exemplar was
    skipped and whether its results were finite are kept from the original flags, and so
    is :data:`MALFORMED_QUALITY` (such a fit is never accepted)."""
    flags = quality_flags(
        rules,
        loss_2d_init=quality.loss_2d_init,
        loss_2d_final=quality.loss_2d_final,
        max_abs_beta=quality.max_abs_beta,
        n_valid_keypoints=quality.n_valid_keypoints,
        pose_nll=quality.pose_nll,
        finite="non_finite" not in quality.flags,
        skipped="skipped" in quality.flags,
    )
    accepted = not any(f in rules.reject_flags for f in flags)
    if MALFORMED_QUALITY in quality.flags:
        flags, accepted = (*flags, MALFORMED_QUALITY), False
    return dataclasses.replace(quality, flags=tuple(flags), accepted=accepted)


def rejudge(fits: Sequence[Fit], rules: QualityRules) -> list[Fit]:
    """Fits with their quality re-judged under ``rules`` (see :func:`apply_rules`)."""
    return [dataclasses.replace(f, quality=apply_rules(f.quality, rules)) for f in fits]
