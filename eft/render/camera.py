"""Cameras for the renderer: the weak-perspective crop camera and a pinhole camera.

Both map body-frame vertices (B, V, 3) to screen vertices (B, V, 3) = pixel ``x, y``
(pixel centres at integer coordinates, see :mod:`eft.render.raster`) and a depth that
grows away from the viewer, and give the vertices in the camera frame (x right, y down,
looking down +z) for lighting.  The formulas are those of
:mod:`eft.geometry.cameras` (EFT/SPIN conventions, ``annotations/SCHEMA.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from eft.geometry.cameras import crop_norm_to_image, perspective_project, weak_perspective_project
from eft.render.errors import RenderError

__all__ = [
    "WeakPerspectiveCamera",
    "PerspectiveCamera",
    "as_vertices",
    "framing_camera",
]


def as_vertices(vertices, dtype=torch.float32) -> torch.Tensor:
    """numpy/torch (V, 3) or (B, V, 3) -> float torch (B, V, 3)."""
    v = torch.as_tensor(np.asarray(vertices) if not torch.is_tensor(vertices) else vertices)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[-1] != 3:
        raise RenderError(f"vertices must have shape (V, 3) or (B, V, 3), got {tuple(v.shape)}")
    return v.detach().to(dtype if not v.is_floating_point() else v.dtype)


def _batched(value, batch: int, tail: tuple[int, ...], name: str, like: torch.Tensor):
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.shape == tail:
        t = t.expand(batch, *tail)
    if tuple(t.shape) not in ((batch, *tail), (1, *tail)):
        raise RenderError(f"{name} must have shape {tail} or ({batch}, *{tail}), "
                          f"got {tuple(t.shape)}")
    return t.expand(batch, *tail)


@dataclass(frozen=True)
class WeakPerspectiveCamera:
    """EFT's crop camera: ``x_px = center + 100 * scale * (s * X[:2] + [tx, ty])``.

    Attributes (numpy or torch; one camera, or one per batch item):
        cam: (3,) or (B, 3) ``[s, tx, ty]``.
        center: (2,) or (B, 2) image position of the crop centre, pixels.
        scale: scalar or (B,) crop side / 200 px.

    Depth is the body-frame ``Z`` (the crop camera frame of a fit: x right, y down,
    looking down +z).  :meth:`crop` gives the camera of a ``size`` px crop.
    """

    cam: object
    center: object = (0.0, 0.0)
    scale: object = 1.0
    perspective = False

    @classmethod
    def crop(cls, cam, size: int) -> WeakPerspectiveCamera:
        """Camera drawing into a ``size x size`` crop (``eft.geometry.crops.image_to_crop``
        of the image camera; the normalised crop ``[-1, 1]`` spans ``[0, size]``)."""
        return cls(cam, (size / 2.0, size / 2.0), size / 200.0)

    def _params(self, like: torch.Tensor):
        b = like.shape[0]
        cam = _batched(self.cam, b, (3,), "cam", like)
        center = _batched(self.center, b, (2,), "center", like)
        scale = _batched(self.scale, b, (), "scale", like)
        return cam, center, scale

    def project(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) body frame -> (B, V, 3) pixel x, y and depth Z."""
        cam, center, scale = self._params(vertices)
        xy = crop_norm_to_image(weak_perspective_project(vertices, cam), center, scale)
        return torch.cat((xy, vertices[..., 2:3]), dim=-1)

    def to_camera_frame(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, V, 3); the body frame is the camera frame (orthographic)."""
        return vertices

    def view_direction(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) camera-frame points -> (B, N, 3) unit directions from the eye."""
        forward = torch.tensor([0.0, 0.0, 1.0], dtype=points.dtype, device=points.device)
        return forward.expand_as(points)


@dataclass(frozen=True)
class PerspectiveCamera:
    """Pinhole camera: ``P = R X + t``, ``x_px = focal * P[:2] / P[2] + principal_point``.

    Attributes (numpy or torch; one camera, or one per batch item):
        focal: scalar or (B,) focal length, pixels.
        principal_point: (2,) or (B, 2) pixels.
        translation: (3,) or (B, 3).
        rotation: (3, 3) or (B, 3, 3), or None for the identity.

    Depth is ``P[2]``; faces with a vertex at ``P[2] <= 0`` are not drawn.
    """

    focal: object
    principal_point: object
    translation: object
    rotation: object = None
    perspective = True

    def to_camera_frame(self, vertices: torch.Tensor) -> torch.Tensor:
        b = vertices.shape[0]
        t = _batched(self.translation, b, (3,), "translation", vertices)
        if self.rotation is not None:
            r = _batched(self.rotation, b, (3, 3), "rotation", vertices)
            vertices = vertices @ r.transpose(-1, -2)
        return vertices + t[:, None, :]

    def project(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, V, 3) pixel x, y and camera depth."""
        b = vertices.shape[0]
        pp = _batched(self.principal_point, b, (2,), "principal_point", vertices)
        focal = _batched(self.focal, b, (), "focal", vertices)
        p = self.to_camera_frame(vertices)
        xy = perspective_project(p, torch.zeros(b, 3, dtype=p.dtype, device=p.device), focal, pp)
        return torch.cat((xy, p[..., 2:3]), dim=-1)

    def view_direction(self, points: torch.Tensor) -> torch.Tensor:
        return points / points.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def framing_camera(vertices, size: tuple[int, int], margin: float = 0.08,
                   extent: float | None = None) -> WeakPerspectiveCamera:
    """Orthographic camera that centres camera-frame ``vertices`` and fits them in ``size``.

    Shapes: ``vertices`` (V, 3) or (B, V, 3); ``size`` = ``(H, W)`` -> a camera with one
    entry per batch item.  ``extent``: the body-frame length that spans the image's
    shorter side less the margins (default: each item's largest x/y extent), so several
    views can share a scale.
    """
    v = as_vertices(vertices, torch.float64)
    lo, hi = v.amin(dim=1), v.amax(dim=1)  # (B, 3)
    mid = 0.5 * (lo + hi)
    ext = (hi - lo)[:, :2].amax(dim=1) if extent is None else torch.full_like(lo[:, 0], extent)
    h, w = size
    px_per_unit = (1.0 - 2.0 * margin) * min(h, w) / ext.clamp_min(1e-12)
    cam = torch.stack((torch.ones_like(ext), -mid[:, 0], -mid[:, 1]), dim=1)
    center = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=v.dtype).expand(v.shape[0], 2)
    return WeakPerspectiveCamera(cam, center, px_per_unit / 100.0)
