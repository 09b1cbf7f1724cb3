"""Person-centred square crops (SPIN's ``center``/``scale`` convention).

A crop is given by ``center`` (..., 2) in original image pixels and ``scale`` (...,):
it covers a square of side ``200 * scale`` image pixels centred on ``center`` and is
resampled to ``res x res`` crop pixels.  An optional rotation ``rot`` (degrees)
rotates the crop *content* about the crop centre, counter-clockwise as displayed
(image y axis pointing down), which is SPIN's ``get_transform(..., rot)``.  SPIN's
integer rounding and ``+1`` in ``transform`` are deliberately not reproduced, so the
maps here are exact inverses of each other.

Crop pixels relate to the normalised crop coordinates of ``cameras.py`` through
``crop_px_to_norm(x, res) = 2 * x / res - 1``; for ``rot = 0``,
``crop_px_to_norm(image_to_crop(x, c, s, res), res) == cameras.image_to_crop_norm(x, c, s)``.

Functions are torch-only, batched over leading dimensions, differentiable, and keep
the dtype of the point tensor (float64 inputs stay float64).
"""

from __future__ import annotations

import math

import torch

from ._common import as_tensor_like, check_last_dims, check_points

__all__ = [
    "bbox_to_center_scale",
    "image_to_crop",
    "crop_to_image",
    "crop_px_to_norm",
    "norm_to_crop_px",
]


def bbox_to_center_scale(
    bbox_xywh: torch.Tensor, rescale: float = 1.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Box ``(x, y, w, h)`` (top-left corner and size, pixels) -> ``(center, scale)``.

    Shapes: ``bbox_xywh`` (..., 4) -> ``center`` (..., 2), ``scale`` (...,) with
    ``center = (x + w / 2, y + h / 2)`` and ``scale = rescale * max(w, h) / 200``.
    """
    check_last_dims("bbox_xywh", bbox_xywh, 4)
    xy, wh = bbox_xywh[..., :2], bbox_xywh[..., 2:]
    center = xy + 0.5 * wh
    scale = rescale * wh.amax(dim=-1) / 200.0
    return center, scale


def _rotate_about_crop_centre(x: torch.Tensor, rot, res, sign: float) -> torch.Tensor:
    """Rotate crop-pixel points (..., N, 2) about ``(res/2, res/2)``.

    ``sign = +1`` applies the forward crop rotation, ``-1`` its inverse.
    """
    rad = as_tensor_like(rot, x) * (sign * math.pi / 180.0)
    cos, sin = torch.cos(rad)[..., None], torch.sin(rad)[..., None]
    half = 0.5 * as_tensor_like(res, x)[..., None, None]
    p = x - half
    px, py = p[..., 0], p[..., 1]
    # Content rotated counter-clockwise on screen (y down) = matrix [[c, s], [-s, c]].
    out = torch.stack((cos * px + sin * py, -sin * px + cos * py), dim=-1)
    return out + half


def _is_zero(rot) -> bool:
    return rot is None or (not isinstance(rot, torch.Tensor) and rot == 0)


def image_to_crop(
    points_px: torch.Tensor, center: torch.Tensor, scale, res=224, rot=0.0
) -> torch.Tensor:
    """Original image pixels -> crop pixels.

    Shapes: ``points_px`` (..., N, 2); ``center`` (..., 2); ``scale``, ``res``, ``rot``
    (degrees) scalar or (...,) -> (..., N, 2).

    ``x_crop = (x - center) * res / (200 * scale) + res / 2``, then rotated by ``rot``
    about the crop centre.
    """
    check_points("points_px", points_px, 2)
    check_last_dims("center", center, 2)
    scale = as_tensor_like(scale, points_px)[..., None, None]
    res_t = as_tensor_like(res, points_px)[..., None, None]
    centre = center.to(points_px.dtype)[..., None, :]
    x = (points_px - centre) * (res_t / (200.0 * scale)) + 0.5 * res_t
    if _is_zero(rot):
        return x
    return _rotate_about_crop_centre(x, rot, res, 1.0)


def crop_to_image(
    points_crop: torch.Tensor, center: torch.Tensor, scale, res=224, rot=0.0
) -> torch.Tensor:
    """Crop pixels -> original image pixels (inverse of :func:`image_to_crop`).

    Shapes: ``points_crop`` (..., N, 2); ``center`` (..., 2); ``scale``, ``res``, ``rot``
    (degrees) scalar or (...,) -> (..., N, 2).
    """
    check_points("points_crop", points_crop, 2)
    check_last_dims("center", center, 2)
    x = points_crop
    if not _is_zero(rot):
        x = _rotate_about_crop_centre(x, rot, res, -1.0)
    scale = as_tensor_like(scale, x)[..., None, None]
    res_t = as_tensor_like(res, x)[..., None, None]
    centre = center.to(x.dtype)[..., None, :]
    return (x - 0.5 * res_t) * (200.0 * scale / res_t) + centre


def crop_px_to_norm(x: torch.Tensor, res=224) -> torch.Tensor:
    """Crop pixels -> normalised crop coordinates ``2 * x / res - 1`` (elementwise).

    Shapes: ``x`` (...) any; ``res`` scalar or broadcastable -> same as ``x``.
    """
    return 2.0 * x / as_tensor_like(res, x) - 1.0


def norm_to_crop_px(x: torch.Tensor, res=224) -> torch.Tensor:
    """Normalised crop coordinates -> crop pixels ``(x + 1) * res / 2`` (elementwise).

    Shapes: ``x`` (...) any; ``res`` scalar or broadcastable -> same as ``x``.
    """
    return (x + 1.0) * (0.5 * as_tensor_like(res, x))
