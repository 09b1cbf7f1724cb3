"""Ready-made views of a fit: crop with mesh overlay, keypoints, side view, panel.

Each view is one call.  The core functions take a :class:`FitView` built from plain
arrays; :func:`render_fit_panel` and :meth:`FitView.from_fit` accept any object with a
fit's attributes (``vertices``, ``cam_weak``, ``center``, ``scale``, ``keypoints3d``,
e.g. ``eft.fitting.records.Fit``) without importing the fitting layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from eft.geometry.cameras import crop_norm_to_image, weak_perspective_project
from eft.geometry.crops import image_to_crop
from eft.render.camera import WeakPerspectiveCamera
from eft.render.draw import as_image, draw_keypoint_comparison, hstack, label, overlay
from eft.render.errors import RenderError
from eft.render.mesh import DEFAULT_COLOR, render_mesh

__all__ = [
    "FitView",
    "display_crop",
    "rotate_about_vertical",
    "crop_overlay",
    "crop_keypoints",
    "side_camera",
    "side_view",
    "fit_panel",
    "render_fit_panel",
]

_GREY = (128, 128, 128)


def _arr(x, shape: tuple[int | None, ...], name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)
    bad = a.ndim != len(shape) or any(
        s is not None and s != d for s, d in zip(shape, a.shape, strict=True))
    if bad:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise RenderError(f"{name} must have shape {want}, got {a.shape}")
    return a


@dataclass(frozen=True)
class FitView:
    """What the views need from a fit (numpy, float64).

    Attributes:
        vertices: (V, 3) posed mesh in the crop camera frame (x right, y down, metres).
        cam: (3,) weak-perspective camera ``[s, tx, ty]``.
        center: (2,) crop centre in image pixels.
        scale: crop side / 200 px.
        keypoints3d: (K, 3) keypoints in the same frame as ``vertices`` (SPIN-49 for a
            fit), or None.
    """

    vertices: np.ndarray
    cam: np.ndarray
    center: np.ndarray
    scale: float
    keypoints3d: np.ndarray | None = None

    @classmethod
    def create(cls, vertices, cam, center, scale, keypoints3d=None) -> FitView:
        """Validate and convert plain arrays (numpy or torch)."""
        kp = None if keypoints3d is None else _arr(keypoints3d, (None, 3), "keypoints3d")
        scale = float(np.asarray(scale))
        if not scale > 0:
            raise RenderError(f"scale must be > 0, got {scale}")
        return cls(_arr(vertices, (None, 3), "vertices"), _arr(cam, (3,), "cam"),
                   _arr(center, (2,), "center"), scale, kp)

    @classmethod
    def from_fit(cls, fit, body=None) -> FitView:
        """From a fit-like object (``vertices``, ``cam_weak``, ``center``, ``scale``,
        ``keypoints3d``).  A fit without vertices is posed with ``body`` (a
        ``BodyModel``) from its ``rotmat`` and ``betas``."""
        verts = getattr(fit, "vertices", None)
        if verts is None:
            if body is None:
                raise RenderError("fit has no vertices: fit with vertices, or pass body=")
            with torch.no_grad():
                rot = torch.as_tensor(np.asarray(fit.rotmat), dtype=torch.float32)[None]
                betas = torch.as_tensor(np.asarray(fit.betas), dtype=torch.float32)[None]
                verts = body(rot, betas=betas).vertices[0]
        return cls.create(verts, fit.cam_weak, fit.center, fit.scale,
                          getattr(fit, "keypoints3d", None))

    def projected_keypoints(self) -> np.ndarray:
        """(K, 2) ``keypoints3d`` in image pixels,
        ``center + 100 * scale * (s * X[:2] + t)``."""
        if self.keypoints3d is None:
            raise RenderError("this fit view has no keypoints3d")
        x = weak_perspective_project(torch.from_numpy(self.keypoints3d),
                                     torch.from_numpy(self.cam))
        return crop_norm_to_image(x, torch.from_numpy(self.center), self.scale).numpy()

    def to_crop(self, points_px, size: int) -> np.ndarray:
        """(K, 2|3) image pixels -> crop pixels of a ``size`` px crop (extra columns kept)."""
        p = np.array(points_px, dtype=np.float64)
        xy = image_to_crop(torch.from_numpy(p[:, :2]), torch.from_numpy(self.center),
                           self.scale, res=size)
        p[:, :2] = xy.numpy()
        return p


def display_crop(image, center, scale: float, size: int, fill=_GREY) -> np.ndarray:
    """A picture tile: the square of side ``200 * scale`` px around ``center``, resized
    to ``size``, padded with ``fill`` (grey) - for overlays and contact sheets.  The
    regressor's input crop (rotation, zero padding, float images) is
    :func:`eft.data.images.crop_image`.

    Shapes: ``image`` (H, W, 3) uint8 or None (a plain ``fill`` crop); ``center`` (2,)
    -> (size, size, 3) uint8.  Crop pixel ``x_c`` shows image point
    ``center + (x_c - size / 2) * 200 * scale / size`` (the inverse of
    ``eft.geometry.crops.image_to_crop``), bilinear, box-filtered first when shrinking;
    outside the image is ``fill``.
    """
    out_fill = np.asarray(fill, np.uint8)
    if image is None:
        return np.broadcast_to(out_fill, (size, size, 3)).copy()
    img = as_image(image)
    cx, cy = (float(v) for v in np.asarray(center, dtype=np.float64))
    k = 200.0 * float(scale) / size  # image px per crop px
    if not (k > 0 and math.isfinite(k) and math.isfinite(cx) and math.isfinite(cy)):
        raise RenderError(f"bad crop: center {(cx, cy)}, scale {scale}")
    # Integer box around the crop (Image.crop pads outside the image), then shrink by an
    # integer factor with a box filter so the final bilinear resampling does not alias.
    half = 0.5 * size * k + 2.0
    x0, y0 = math.floor(cx - half), math.floor(cy - half)
    x1, y1 = math.ceil(cx + half) + 1, math.ceil(cy + half) + 1
    rgba = Image.fromarray(np.dstack((img, np.full(img.shape[:2], 255, np.uint8))), "RGBA")
    region = rgba.crop((x0, y0, x1, y1))
    red = max(1, int(k))
    if red > 1:
        region = region.reduce(red)
    # In PIL's coordinates (pixel centres at +0.5) of the reduced region, output pixel
    # centre u maps to a * u + b with a = k / red.
    a = k / red
    bx = (cx - x0 + 0.5 - k * (0.5 + size / 2.0)) / red
    by = (cy - y0 + 0.5 - k * (0.5 + size / 2.0)) / red
    out = region.transform((size, size), Image.Transform.AFFINE, (a, 0.0, bx, 0.0, a, by),
                           resample=Image.Resampling.BILINEAR)
    arr = np.asarray(out).astype(np.float32)
    alpha = arr[..., 3:4] / 255.0
    comp = arr[..., :3] * alpha + out_fill.astype(np.float32) * (1.0 - alpha)
    return np.clip(comp + 0.5, 0, 255).astype(np.uint8)


def rotate_about_vertical(vertices, degrees: float = 90.0, centre=None) -> np.ndarray:
    """Rotate (V, 3) vertices by ``degrees`` about the vertical (y) axis through
    ``centre`` (default: the bounding-box centre); x -> z for +90."""
    v = _arr(vertices, (None, 3), "vertices")
    c = 0.5 * (v.min(0) + v.max(0)) if centre is None else np.asarray(centre, np.float64)
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), 0.0, -math.sin(t)],
                    [0.0, 1.0, 0.0],
                    [math.sin(t), 0.0, math.cos(t)]])
    return (v - c) @ rot.T + c


def crop_overlay(image, view: FitView, faces, size: int = 448, *, opacity: float = 0.85,
                 color=DEFAULT_COLOR, supersample: int = 2) -> np.ndarray:
    """The image crop of the fit with its mesh overlaid: (size, size, 3) uint8."""
    crop = display_crop(image, view.center, view.scale, size)
    r = render_mesh(view.vertices, faces, WeakPerspectiveCamera.crop(view.cam, size),
                    (size, size), color=color, supersample=supersample)
    return overlay(crop, r.rgba(), opacity)


def crop_keypoints(image, view: FitView, keypoints2d, size: int = 448, *,
                   fitted2d=None, edges=None) -> np.ndarray:
    """The image crop with annotated keypoints against the fit's projected keypoints.

    Shapes: ``keypoints2d`` (K, 3) annotated image pixels + confidence; ``fitted2d``
    (K, 2) image pixels (default: ``view.projected_keypoints()``) -> (size, size, 3)
    uint8.
    """
    crop = display_crop(image, view.center, view.scale, size)
    return _draw_comparison(crop, view, keypoints2d, size, fitted2d, edges)


def _draw_comparison(crop, view, keypoints2d, size, fitted2d, edges) -> np.ndarray:
    fitted = view.projected_keypoints() if fitted2d is None else fitted2d
    ann = view.to_crop(_arr(keypoints2d, (None, 3), "keypoints2d"), size)
    fit = view.to_crop(_arr(fitted, (None, None), "fitted keypoints"), size)
    return draw_keypoint_comparison(crop, ann, fit, edges=edges,
                                    radius=max(2.0, size / 160), width=max(1, size // 224))


def side_camera(vertices, cam, margin: float = 0.04) -> np.ndarray:
    """Weak camera (3,) that shows (V, 3) ``vertices`` whole in the crop: the scale of
    ``cam`` (reduced if the mesh would not fit within ``margin`` of the crop edge), the
    mesh centred horizontally, its height kept where it lies inside the crop (else
    centred)."""
    v = _arr(vertices, (None, 3), "vertices")
    s, _, ty = (float(c) for c in _arr(cam, (3,), "cam"))
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    mid = 0.5 * (lo + hi)
    room = 2.0 * (1.0 - margin)
    s_new = min(abs(s), room / max(float((hi - lo).max()), 1e-12)) * (1.0 if s >= 0 else -1.0)
    y_lo, y_hi = sorted((s_new * lo[1] + ty, s_new * hi[1] + ty))
    inside = s_new == s and y_lo >= margin - 1.0 and y_hi <= 1.0 - margin
    return np.array([s_new, -s_new * mid[0], ty if inside else -s_new * mid[1]])


def side_view(view: FitView, faces, size: int = 448, *, degrees: float = 90.0,
              background=(1.0, 1.0, 1.0), color=DEFAULT_COLOR,
              supersample: int = 2) -> np.ndarray:
    """The mesh turned ``degrees`` about the vertical axis through its centre on a plain
    ``background``, with the fit's camera scale (smaller if it would not fit) and
    centred horizontally (:func:`side_camera`): (size, size, 3) uint8."""
    verts = rotate_about_vertical(view.vertices, degrees)
    cam = WeakPerspectiveCamera.crop(side_camera(verts, view.cam), size)
    r = render_mesh(verts, faces, cam, (size, size), color=color, supersample=supersample)
    return r.image(background=background)


def fit_panel(image, view: FitView, faces, keypoints2d=None, *, size: int = 448,
              fitted2d=None, separate_keypoints: bool = False, titles: bool = True,
              opacity: float = 0.85, supersample: int = 2) -> np.ndarray:
    """``[crop with mesh (+ keypoints) | side view]`` side by side: (size, 2*size+4, 3).

    With ``keypoints2d`` (K, 3) image px, annotated against projected keypoints (and
    residual lines) are drawn on the overlay, or in a tile of their own between the two
    with ``separate_keypoints=True``.
    """
    crop = display_crop(image, view.center, view.scale, size)
    r = render_mesh(view.vertices, faces, WeakPerspectiveCamera.crop(view.cam, size),
                    (size, size), supersample=supersample)
    front = overlay(crop, r.rgba(), opacity)
    tiles = [front]
    if keypoints2d is not None:
        if separate_keypoints:
            tiles.append(_draw_comparison(crop, view, keypoints2d, size, fitted2d, None))
        else:
            tiles[0] = _draw_comparison(front, view, keypoints2d, size, fitted2d, None)
    tiles.append(side_view(view, faces, size, supersample=supersample))
    if titles:
        names = ["fit"] + (["keypoints"] if len(tiles) == 3 else []) + ["side"]
        tiles = [label(t, n) for t, n in zip(tiles, names, strict=True)]
    return hstack(tiles)


def render_fit_panel(image, fit, faces, keypoints2d=None, *, body=None,
                     **kwargs) -> np.ndarray:
    """:func:`fit_panel` for a fit-like object (e.g. ``eft.fitting.records.Fit``);
    ``body`` poses fits saved without vertices.  ``faces``: (F, 3), e.g.
    ``body.faces``."""
    return fit_panel(image, FitView.from_fit(fit, body), faces, keypoints2d, **kwargs)
