"""eft.render: a headless software renderer in torch (no OpenGL, no display).

* :func:`rasterize` - batched z-buffer triangle rasterisation (``raster.py``).
* :func:`render_mesh` - flat / Lambert / smooth shading, weak-perspective crop camera
  or pinhole camera, optional supersampling (``mesh.py``, ``camera.py``).
* 2D drawing on uint8 RGB arrays: :func:`overlay`, :func:`draw_keypoints`,
  :func:`draw_keypoint_comparison`, :func:`save_png` (``draw.py``, Pillow).
* One-call views of a fit: :func:`crop_overlay`, :func:`crop_keypoints`,
  :func:`side_view`, :func:`fit_panel`, :func:`render_fit_panel` (``views.py``).

Layering: imports only torch, numpy, Pillow, ``eft.geometry`` and ``eft.body``.
"""

from eft.render.camera import PerspectiveCamera, WeakPerspectiveCamera, framing_camera
from eft.render.draw import (
    ANNOTATED_COLOR,
    FITTED_COLOR,
    RESIDUAL_COLOR,
    SPIN49_EDGES,
    draw_keypoint_comparison,
    draw_keypoints,
    grid,
    hstack,
    label,
    overlay,
    save_png,
    skeleton_edges,
)
from eft.render.errors import RenderError
from eft.render.mesh import RenderOutput, face_normals, render_mesh, vertex_normals
from eft.render.raster import Fragments, rasterize
from eft.render.views import (
    FitView,
    crop_keypoints,
    crop_overlay,
    display_crop,
    fit_panel,
    render_fit_panel,
    rotate_about_vertical,
    side_camera,
    side_view,
)

__all__ = [
    "ANNOTATED_COLOR",
    "FITTED_COLOR",
    "RESIDUAL_COLOR",
    "SPIN49_EDGES",
    "FitView",
    "Fragments",
    "PerspectiveCamera",
    "RenderError",
    "RenderOutput",
    "WeakPerspectiveCamera",
    "display_crop",
    "crop_keypoints",
    "crop_overlay",
    "draw_keypoint_comparison",
    "draw_keypoints",
    "face_normals",
    "fit_panel",
    "framing_camera",
    "grid",
    "hstack",
    "label",
    "overlay",
    "rasterize",
    "render_fit_panel",
    "render_mesh",
    "rotate_about_vertical",
    "save_png",
    "side_camera",
    "side_view",
    "skeleton_edges",
    "vertex_normals",
]
