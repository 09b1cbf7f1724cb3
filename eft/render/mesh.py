"""Shaded mesh rendering on top of :func:`eft.render.raster.rasterize`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from eft.render.camera import PerspectiveCamera, WeakPerspectiveCamera, as_vertices
from eft.render.errors import RenderError
from eft.render.raster import rasterize

__all__ = [
    "DEFAULT_COLOR",
    "DEFAULT_LIGHT",
    "SHADINGS",
    "RenderOutput",
    "face_normals",
    "vertex_normals",
    "render_mesh",
]

SHADINGS: tuple[str, ...] = ("flat", "lambert", "smooth")
#: Light blue-grey mesh colour (RGB in [0, 1]).
DEFAULT_COLOR: tuple[float, float, float] = (0.62, 0.72, 0.90)
#: Direction *towards* the light in the camera frame (x right, y down, looking down +z):
#: from the viewer's side, above and slightly to the left.
DEFAULT_LIGHT: tuple[float, float, float] = (-0.3, -0.5, -1.0)


@dataclass(frozen=True)
class RenderOutput:
    """Rendered images.

    Attributes:
        rgb: (B, H, W, 3) float in [0, 1], the surface colour (not premultiplied;
            0 where empty).
        alpha: (B, H, W) float coverage in [0, 1] (fractional at edges when
            supersampled).
        depth: (B, H, W) depth of the nearest surface (minimum over subsamples),
            ``inf`` where empty.
        face: (B, H, W) int64 visible face, -1 where empty; ``None`` when supersampled.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    face: torch.Tensor | None

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool: pixels the mesh touches."""
        return self.alpha > 0

    def rgba(self, index: int = 0) -> np.ndarray:
        """(H, W, 4) uint8 straight-alpha RGBA of batch item ``index``."""
        out = torch.cat((self.rgb[index], self.alpha[index, ..., None]), dim=-1)
        return (out.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()

    def image(self, index: int = 0, background=(1.0, 1.0, 1.0)) -> np.ndarray:
        """(H, W, 3) uint8: batch item ``index`` over a plain ``background`` (RGB in [0, 1])."""
        a = self.alpha[index, ..., None]
        bg = torch.as_tensor(background, dtype=self.rgb.dtype, device=self.rgb.device)
        out = self.rgb[index] * a + bg * (1.0 - a)
        return (out.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normals ``(v1 - v0) x (v2 - v0)``; shapes (B, V, 3), (F, 3) -> (B, F, 3)."""
    tri = vertices[:, faces]
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-20)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals; shapes (B, V, 3), (F, 3) -> (B, V, 3)."""
    tri = vertices[:, faces]
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    out = torch.zeros_like(vertices)
    for k in range(3):
        out.index_add_(1, faces[:, k], n)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-20)


def _base_color(color, bsz: int, nverts: int, like: torch.Tensor) -> torch.Tensor:
    """(3,) | (V, 3) | (B, V, 3) -> (B, V, 3) or (B, 1, 3)."""
    c = torch.as_tensor(np.asarray(color) if not torch.is_tensor(color) else color,
                        dtype=like.dtype, device=like.device)
    if c.shape == (3,):
        return c.expand(bsz, 1, 3)
    if c.shape == (nverts, 3):
        return c.expand(bsz, nverts, 3)
    if c.shape == (bsz, nverts, 3):
        return c
    raise RenderError(f"color must be RGB (3,), per vertex ({nverts}, 3) or "
                      f"({bsz}, {nverts}, 3), got {tuple(c.shape)}")


def render_mesh(
    vertices,
    faces,
    camera: WeakPerspectiveCamera | PerspectiveCamera,
    size: tuple[int, int],
    *,
    color=DEFAULT_COLOR,
    shading: str = "smooth",
    light=DEFAULT_LIGHT,
    ambient: float = 0.35,
    supersample: int = 1,
) -> RenderOutput:
    """Render a batch of meshes (one topology) with a z-buffer.

    Shapes: ``vertices`` (V, 3) or (B, V, 3) numpy/torch in the camera's body frame;
    ``faces`` (F, 3) int; ``size`` = ``(H, W)``; ``color`` RGB (3,), (V, 3) or (B, V, 3)
    in [0, 1] -> :class:`RenderOutput` of (B, H, W).

    ``shading``: ``"flat"`` (the colour, unlit), ``"lambert"`` (one Lambert shade per
    face: ``ambient + (1 - ambient) * max(0, n . l)``) or ``"smooth"`` (the same with
    interpolated vertex normals).  Normals are turned towards the viewer, so either
    winding works.  ``light``: (3,) direction towards the light in the camera frame.
    ``supersample``: render ``k x k`` samples per pixel and average (anti-aliasing,
    ``k**2`` times the work).
    """
    if shading not in SHADINGS:
        raise RenderError(f"shading must be one of {SHADINGS}, got {shading!r}")
    if int(supersample) < 1:
        raise RenderError(f"supersample must be >= 1, got {supersample!r}")
    k = int(supersample)
    lvec = torch.as_tensor(light, dtype=torch.float64)
    if lvec.shape != (3,) or not bool(lvec.norm() > 0):
        raise RenderError(f"light must be a non-zero (3,) direction, got {light!r}")
    v = as_vertices(vertices)
    faces_t = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces)
    faces_t = faces_t.long().to(v.device)
    bsz, nverts = v.shape[:2]
    h, w = (int(s) for s in size)
    screen = camera.project(v)
    if k > 1:  # sample (m + 0.5) / k - 0.5 of each pixel: x' = k x + (k - 1) / 2
        screen = torch.cat((screen[..., :2] * k + (k - 1) / 2.0, screen[..., 2:]), dim=-1)
    frags = rasterize(screen, faces_t, (h * k, w * k), perspective=camera.perspective)

    base = _base_color(color, bsz, nverts, v)
    rgb = torch.zeros(bsz * h * k * w * k, 3, dtype=v.dtype, device=v.device)
    hit = torch.nonzero(frags.face.reshape(-1) >= 0).squeeze(1)
    if hit.numel():
        bidx = hit // (h * k * w * k)
        fidx = frags.face.reshape(-1)[hit]
        bary = frags.bary.reshape(-1, 3)[hit].to(v.dtype)
        corner = faces_t[fidx]  # (N, 3)
        if base.shape[1] == 1:
            col = base[bidx, 0]
        else:
            col = (base[bidx[:, None], corner] * bary[..., None]).sum(dim=1)
        if shading != "flat":
            shade = _lambert(v, faces_t, camera, bidx, fidx, corner, bary, shading, light,
                             ambient)
            col = col * shade[:, None]
        rgb[hit] = col.clamp(0, 1)
    rgb = rgb.view(bsz, h * k, w * k, 3)
    cover = frags.mask.to(v.dtype)
    depth = frags.depth.to(v.dtype)
    if k > 1:
        cover4 = F.avg_pool2d(cover[:, None], k)
        summed = F.avg_pool2d((rgb * cover[..., None]).permute(0, 3, 1, 2), k)
        rgb = (summed / cover4.clamp_min(1e-12)).permute(0, 2, 3, 1)
        cover = cover4[:, 0]
        depth = -F.max_pool2d(-depth[:, None], k)[:, 0]
        return RenderOutput(rgb.contiguous(), cover, depth, None)
    return RenderOutput(rgb, cover, depth, frags.face)


def _lambert(v, faces, camera, bidx, fidx, corner, bary, shading, light, ambient):
    """Per-pixel Lambert factor (N,) for the hit pixels (batch ``bidx``, face ``fidx``)."""
    p = camera.to_camera_frame(v)
    fn = face_normals(p, faces)  # (B, F, 3)
    centroid = p[:, faces].mean(dim=2)
    towards = (fn * camera.view_direction(centroid)).sum(-1) > 0  # normal points away
    sign = 1.0 - 2.0 * towards.to(v.dtype)  # (B, F): flips normals to face the viewer
    if shading == "lambert":
        n = fn[bidx, fidx]
    else:
        vn = vertex_normals(p, faces)
        n = (vn[bidx[:, None], corner] * bary[..., None]).sum(dim=1)
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    n = n * sign[bidx, fidx][:, None]
    lvec = torch.as_tensor(light, dtype=v.dtype, device=v.device)
    lvec = lvec / lvec.norm()
    return ambient + (1.0 - ambient) * (n @ lvec).clamp_min(0)
