"""Camera models and conversions (EFT/SPIN conventions).

Coordinate frames
-----------------
* **Normalised crop coordinates**: a square crop of ``img_res`` pixels (224 by
  default) mapped to ``[-1, 1]``; ``x_norm = 2 * x_crop_px / img_res - 1``.  The crop
  covers ``200 * scale`` original-image pixels around ``center`` (see ``crops.py``).
* **Weak perspective camera** ``cam = [s, tx, ty]`` (..., 3): a 3D point ``X``
  projects to ``s * X[:2] + [tx, ty]`` in normalised crop coordinates, i.e. the
  translation is applied *after* scaling (EFT's ``weakProjection``).  Note that SPIN
  and HMR apply it *before* scaling (``s * (X[:2] + t)``); with this module's
  convention SPIN's ``t`` corresponds to ``t * s`` here.
* **Perspective camera**: camera at the origin looking down +Z, image x right and y
  down (same axes as the crop), ``x_px = focal * (X + t)[:2] / (X + t)[2] + c``.

With ``focal = 5000`` and ``img_res = 224`` a weak perspective camera is equivalent to
a perspective camera placed at ``weak_to_perspective_translation(cam)`` for points
whose depth extent is negligible against ``tz = 2 * focal / (img_res * s)``; points
with ``Z = 0`` (in the body frame) project identically under both.

Every function is batched over leading dimensions ``...``, differentiable, and
returns the dtype of its main tensor input.  Python numbers are accepted where a
shape says "scalar".  Division by ``s`` or by depth is unguarded: ``s = 0`` or
points at/behind the camera plane give inf/NaN.
"""

from __future__ import annotations

import torch

from ._common import as_tensor_like, check_last_dims, check_points

#: Focal length (pixels) of the perspective camera equivalent to a weak perspective
#: crop camera (SPIN/EFT convention, on the ``img_res = 224`` crop).  The one default
#: every module uses; change it here only.
FOCAL_LENGTH = 5000.0

__all__ = [
    "FOCAL_LENGTH",
    "weak_perspective_project",
    "weak_to_perspective_translation",
    "perspective_translation_to_weak",
    "perspective_project",
    "crop_norm_to_image",
    "image_to_crop_norm",
    "crop_cam_to_full_image_translation",
]


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Weak perspective projection into normalised crop coordinates.

    Shapes: ``points`` (..., N, 3), ``cam`` (..., 3) as ``[s, tx, ty]`` -> (..., N, 2).

    ``x = s * X[..., :2] + [tx, ty]``.
    """
    check_points("points", points, 3)
    check_last_dims("cam", cam, 3)
    cam = cam.to(points.dtype)
    return cam[..., None, :1] * points[..., :2] + cam[..., None, 1:3]


def weak_to_perspective_translation(
    cam: torch.Tensor, focal=FOCAL_LENGTH, img_res=224
) -> torch.Tensor:
    """Perspective camera translation equivalent to a weak perspective camera.

    Shapes: ``cam`` (..., 3) as ``[s, tx, ty]``; ``focal``, ``img_res`` scalar or (...,)
    -> (..., 3) ``[tx / s, ty / s, 2 * focal / (img_res * s)]``.

    The resulting camera uses principal point ``(img_res / 2, img_res / 2)`` in crop
    pixels.
    """
    check_last_dims("cam", cam, 3)
    focal = as_tensor_like(focal, cam)
    img_res = as_tensor_like(img_res, cam)
    s, tx, ty = cam.unbind(-1)
    tz = 2.0 * focal / (img_res * s)
    return torch.stack(torch.broadcast_tensors(tx / s, ty / s, tz), dim=-1)


def perspective_translation_to_weak(
    translation: torch.Tensor, focal=FOCAL_LENGTH, img_res=224
) -> torch.Tensor:
    """Inverse of :func:`weak_to_perspective_translation`.

    Shapes: ``translation`` (..., 3); ``focal``, ``img_res`` scalar or (...,)
    -> (..., 3) ``[s, tx, ty]`` with ``s = 2 * focal / (img_res * tz)``, ``tx = s * t_x``,
    ``ty = s * t_y``.
    """
    check_last_dims("translation", translation, 3)
    focal = as_tensor_like(focal, translation)
    img_res = as_tensor_like(img_res, translation)
    t_x, t_y, t_z = translation.unbind(-1)
    s = 2.0 * focal / (img_res * t_z)
    return torch.stack(torch.broadcast_tensors(s, s * t_x, s * t_y), dim=-1)


def perspective_project(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal=FOCAL_LENGTH,
    principal_point: torch.Tensor | None = None,
    *,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pinhole projection to pixels.

    Shapes: ``points`` (..., N, 3); ``translation`` (..., 3); ``focal`` scalar or (...,);
    ``principal_point`` (..., 2) or ``None`` (= (0, 0), i.e. offsets from the
    principal point); ``rotation`` (..., 3, 3) or ``None`` (identity) -> (..., N, 2).

    ``P = R X + t``; ``x_px = focal * P[:2] / P[2] + principal_point``.
    """
    check_last_dims("translation", translation, 3)
    check_points("points", points, 3)
    if rotation is not None:
        check_last_dims("rotation", rotation, 3, 3)
        points = points @ rotation.to(points.dtype).transpose(-1, -2)
    cam_points = points + translation.to(points.dtype)[..., None, :]
    focal = as_tensor_like(focal, points)
    uv = focal[..., None, None] * cam_points[..., :2] / cam_points[..., 2:3]
    if principal_point is not None:
        check_last_dims("principal_point", principal_point, 2)
        uv = uv + principal_point.to(points.dtype)[..., None, :]
    return uv


def crop_norm_to_image(
    x_norm: torch.Tensor, center: torch.Tensor, scale
) -> torch.Tensor:
    """Normalised crop coordinates -> original image pixels.

    Shapes: ``x_norm`` (..., N, 2); ``center`` (..., 2); ``scale`` scalar or (...,)
    -> (..., N, 2) ``center + 100 * scale * x_norm`` (the crop side is ``200 * scale``
    pixels).  No rotation; see ``crops.crop_to_image`` for rotated crops.
    """
    check_points("x_norm", x_norm, 2)
    check_last_dims("center", center, 2)
    scale = as_tensor_like(scale, x_norm)
    return center.to(x_norm.dtype)[..., None, :] + 100.0 * scale[..., None, None] * x_norm


def image_to_crop_norm(x_px: torch.Tensor, center: torch.Tensor, scale) -> torch.Tensor:
    """Original image pixels -> normalised crop coordinates (inverse of
    :func:`crop_norm_to_image`).

    Shapes: ``x_px`` (..., N, 2); ``center`` (..., 2); ``scale`` scalar or (...,)
    -> (..., N, 2) ``(x_px - center) / (100 * scale)``.
    """
    check_points("x_px", x_px, 2)
    check_last_dims("center", center, 2)
    scale = as_tensor_like(scale, x_px)
    return (x_px - center.to(x_px.dtype)[..., None, :]) / (100.0 * scale[..., None, None])


def crop_cam_to_full_image_translation(
    cam: torch.Tensor,
    center: torch.Tensor,
    scale,
    img_size: torch.Tensor,
    focal=FOCAL_LENGTH,
) -> torch.Tensor:
    """Perspective translation in the FULL image for a weak perspective crop camera.

    Shapes: ``cam`` (..., 3) ``[s, tx, ty]``; ``center`` (..., 2) bbox centre in image
    pixels; ``scale`` scalar or (...,); ``img_size`` (..., 2) as ``(W, H)``; ``focal``
    scalar or (...,) -> (..., 3).

    With bbox side ``b = 200 * scale`` and the principal point at the image centre
    ``(W / 2, H / 2)``::

        tz = 2 * focal / (b * s)
        tx = tx_c / s + 2 * (cx - W / 2) / (b * s)
        ty = ty_c / s + 2 * (cy - H / 2) / (b * s)

    ``tx_c / s`` (rather than SPIN/CLIFF's ``tx_c``) because this module's weak
    camera applies its translation after scaling.  Then
    ``perspective_project(X, t, focal, (W/2, H/2))`` equals
    ``crop_norm_to_image(weak_perspective_project(X, cam), center, scale)`` exactly
    for points with ``Z = 0`` and approximately (relative error ``|Z| / tz``) otherwise.
    For a crop that is the whole ``img_res`` image this reduces to
    :func:`weak_to_perspective_translation`.
    """
    check_last_dims("cam", cam, 3)
    check_last_dims("center", center, 2)
    check_last_dims("img_size", img_size, 2)
    scale = as_tensor_like(scale, cam)
    focal = as_tensor_like(focal, cam)
    offset = center.to(cam.dtype) - 0.5 * img_size.to(cam.dtype)  # (..., 2)
    s = cam[..., 0]
    bs = 200.0 * scale * s
    tz = 2.0 * focal / bs
    txy = cam[..., 1:3] / s[..., None] + 2.0 * offset / bs[..., None]
    batch = torch.broadcast_shapes(txy.shape[:-1], tz.shape)
    return torch.cat((txy.expand(*batch, 2), tz.expand(batch)[..., None]), dim=-1)
