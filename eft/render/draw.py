"""2D drawing on uint8 RGB images (numpy in, numpy out): overlays, keypoints, skeletons.

Images are ``(H, W, 3)`` uint8 RGB numpy arrays; every function returns a new array.
Keypoint coordinates are image pixels with pixel centres at integer coordinates (a
keypoint at ``(x, y)`` lies in pixel ``(row round(y), column round(x))``).  Drawing
uses Pillow's ``ImageDraw``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from eft.body.joints import NUM_SPIN_JOINTS, SPIN49_INDEX, get_format
from eft.render.errors import RenderError

__all__ = [
    "ANNOTATED_COLOR",
    "FITTED_COLOR",
    "RESIDUAL_COLOR",
    "SPIN49_EDGES",
    "as_image",
    "overlay",
    "skeleton_edges",
    "draw_keypoints",
    "draw_keypoint_comparison",
    "label",
    "hstack",
    "grid",
    "save_png",
]

ANNOTATED_COLOR: tuple[int, int, int] = (40, 220, 60)
FITTED_COLOR: tuple[int, int, int] = (255, 60, 200)
RESIDUAL_COLOR: tuple[int, int, int] = (255, 230, 0)
#: Outline under residual lines (dark: they stay readable on light images).
RESIDUAL_OUTLINE: tuple[int, int, int] = (25, 25, 25)

_GT_EDGES = (
    ("Right Ankle", "Right Knee"), ("Right Knee", "Right Hip"),
    ("Left Ankle", "Left Knee"), ("Left Knee", "Left Hip"),
    ("Right Wrist", "Right Elbow"), ("Right Elbow", "Right Shoulder"),
    ("Left Wrist", "Left Elbow"), ("Left Elbow", "Left Shoulder"),
    ("Right Hip", "Left Hip"), ("Right Shoulder", "Left Shoulder"),
    ("Right Hip", "Right Shoulder"), ("Left Hip", "Left Shoulder"),
    ("Pelvis (MPII)", "Spine (H36M)"), ("Spine (H36M)", "Thorax (MPII)"),
    ("Thorax (MPII)", "Neck (LSP)"), ("Neck (LSP)", "Jaw (H36M)"),
    ("Jaw (H36M)", "Head (H36M)"), ("Head (H36M)", "Top of Head (LSP)"),
    ("Nose", "Left Eye"), ("Left Eye", "Left Ear"),
    ("Nose", "Right Eye"), ("Right Eye", "Right Ear"),
)
_OP_EDGES = tuple(("OP " + a, "OP " + b) for a, b in (
    ("Neck", "Nose"), ("Neck", "RShoulder"), ("RShoulder", "RElbow"), ("RElbow", "RWrist"),
    ("Neck", "LShoulder"), ("LShoulder", "LElbow"), ("LElbow", "LWrist"),
    ("Neck", "MidHip"), ("MidHip", "RHip"), ("RHip", "RKnee"), ("RKnee", "RAnkle"),
    ("MidHip", "LHip"), ("LHip", "LKnee"), ("LKnee", "LAnkle"),
    ("Nose", "REye"), ("REye", "REar"), ("Nose", "LEye"), ("LEye", "LEar"),
    ("LAnkle", "LBigToe"), ("LBigToe", "LSmallToe"), ("LAnkle", "LHeel"),
    ("RAnkle", "RBigToe"), ("RBigToe", "RSmallToe"), ("RAnkle", "RHeel"),
))
#: Bones between SPIN-49 keypoints (index pairs), by joint name: BODY_25's bones among
#: the OpenPose joints, limbs, torso, spine and face among the 24 ground-truth joints.
SPIN49_EDGES: tuple[tuple[int, int], ...] = tuple(
    (SPIN49_INDEX[a], SPIN49_INDEX[b]) for a, b in _OP_EDGES + _GT_EDGES)


def skeleton_edges(fmt: str = "spin49") -> tuple[tuple[int, int], ...]:
    """Bones of a keypoint format (``"spin49"`` or a name in ``eft.body.joints``), as
    index pairs into that format's joint order: the SPIN-49 bones whose two ends the
    format has."""
    if fmt.lower() == "spin49":
        return SPIN49_EDGES
    try:
        f = get_format(fmt)
    except KeyError as exc:
        raise RenderError(str(exc.args[0])) from None
    where = {s: i for i, s in enumerate(f.spin_indices)}
    return tuple((where[a], where[b]) for a, b in SPIN49_EDGES if a in where and b in where)


def as_image(image) -> np.ndarray:
    """numpy/PIL image -> (H, W, 3) uint8 RGB (grey is repeated, alpha dropped)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise RenderError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.dtype != np.uint8:
        raise RenderError(f"image must be uint8, got {a.dtype}")
    return np.ascontiguousarray(a[..., :3])


def overlay(image, rgba, opacity: float = 0.85) -> np.ndarray:
    """Composite a straight-alpha RGBA render over an image.

    Shapes: ``image`` (H, W, 3) uint8; ``rgba`` (H, W, 4) uint8 (e.g.
    ``RenderOutput.rgba()``) -> (H, W, 3) uint8,
    ``out = image * (1 - a) + rgb * a`` with ``a = opacity * alpha / 255``.
    """
    img = as_image(image).astype(np.float32)
    rgba = np.asarray(rgba)
    if rgba.shape != img.shape[:2] + (4,):
        raise RenderError(f"rgba must have shape {img.shape[:2] + (4,)}, got {rgba.shape}")
    if not 0.0 <= opacity <= 1.0:
        raise RenderError(f"opacity must lie in [0, 1], got {opacity}")
    a = rgba[..., 3:4].astype(np.float32) * (opacity / 255.0)
    out = img * (1.0 - a) + rgba[..., :3].astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _points(keypoints, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2|3) -> xy (K, 2) float64, present (K,) bool (conf > 0 and finite)."""
    k = np.asarray(keypoints, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] not in (2, 3):
        raise RenderError(f"{name} must have shape (K, 2) or (K, 3), got {k.shape}")
    present = np.isfinite(k[:, :2]).all(axis=1)
    if k.shape[1] == 3:
        present &= k[:, 2] > 0
    return k[:, :2], np.asarray(present, dtype=bool)


def _edges_for(count: int, edges) -> tuple[tuple[int, int], ...]:
    if edges is None:
        return SPIN49_EDGES if count == NUM_SPIN_JOINTS else ()
    if isinstance(edges, str):
        return skeleton_edges(edges)
    return tuple((int(a), int(b)) for a, b in edges)


def _draw_bones(draw: ImageDraw.ImageDraw, xy, present, edges, color, width) -> None:
    for a, b in edges:
        if present[a] and present[b]:
            draw.line([tuple(xy[a]), tuple(xy[b])], fill=color, width=width)


def _draw_marks(draw: ImageDraw.ImageDraw, xy, present, color, radius, width,
                marker: str = "dot") -> None:
    for i in np.flatnonzero(present):
        x, y = xy[i]
        if marker == "cross":
            draw.line([(x - radius, y - radius), (x + radius, y + radius)], fill=color,
                      width=width)
            draw.line([(x - radius, y + radius), (x + radius, y - radius)], fill=color,
                      width=width)
        else:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)


def draw_keypoints(image, keypoints, *, edges=None, color=ANNOTATED_COLOR, radius: float = 3,
                   width: int = 2, marker: str = "dot") -> np.ndarray:
    """Draw keypoints and their skeleton.

    Shapes: ``image`` (H, W, 3) uint8; ``keypoints`` (K, 2) or (K, 3) pixels (+ confidence;
    joints with confidence <= 0 or non-finite are skipped) -> (H, W, 3) uint8.
    ``edges``: index pairs, a format name (see :func:`skeleton_edges`), or ``None`` for
    the SPIN-49 skeleton when K = 49 (no bones otherwise).  ``marker``: ``"dot"`` (a
    disc of ``radius``) or ``"cross"``.
    """
    if marker not in ("dot", "cross"):
        raise RenderError(f"marker must be 'dot' or 'cross', got {marker!r}")
    xy, present = _points(keypoints, "keypoints")
    pil = Image.fromarray(as_image(image))
    draw = ImageDraw.Draw(pil)
    _draw_bones(draw, xy, present, _edges_for(len(xy), edges), tuple(color), width)
    _draw_marks(draw, xy, present, tuple(color), radius, width, marker)
    return np.asarray(pil).copy()


def draw_keypoint_comparison(image, annotated, fitted, *, edges=None,
                             annotated_color=ANNOTATED_COLOR, fitted_color=FITTED_COLOR,
                             residual_color=RESIDUAL_COLOR, radius: float = 3,
                             width: int = 2) -> np.ndarray:
    """Annotated against fitted keypoints, joined by residual lines.

    Shapes: ``image`` (H, W, 3) uint8; ``annotated`` (K, 3) pixels + confidence;
    ``fitted`` (K, 2) or (K, 3) pixels (e.g. projected fit keypoints) -> (H, W, 3) uint8.
    Only the annotated joints (confidence > 0) are drawn, in both sets: bones (fitted,
    then annotated), residual lines from each annotated joint to its fitted position,
    (colour over a dark outline), then the joints (fitted, then annotated on top).  ``edges`` as in
    :func:`draw_keypoints`.
    """
    a_xy, a_ok = _points(annotated, "annotated keypoints")
    f_xy, f_ok = _points(fitted, "fitted keypoints")
    if len(a_xy) != len(f_xy):
        raise RenderError(f"annotated and fitted keypoints differ in count: "
                          f"{len(a_xy)} vs {len(f_xy)}")
    both = a_ok & f_ok
    e = _edges_for(len(a_xy), edges)
    pil = Image.fromarray(as_image(image))
    draw = ImageDraw.Draw(pil)
    _draw_bones(draw, f_xy, both, e, tuple(fitted_color), width)
    _draw_bones(draw, a_xy, a_ok, e, tuple(annotated_color), width)
    # Residuals: the colour over a dark outline, so they read on light and dark images.
    lw = max(2, width)
    for i in np.flatnonzero(both):
        draw.line([tuple(a_xy[i]), tuple(f_xy[i])], fill=RESIDUAL_OUTLINE, width=lw + 2)
    for i in np.flatnonzero(both):
        draw.line([tuple(a_xy[i]), tuple(f_xy[i])], fill=tuple(residual_color), width=lw)
    _draw_marks(draw, f_xy, both, tuple(fitted_color), radius, width)
    _draw_marks(draw, a_xy, a_ok, tuple(annotated_color), radius, width)
    return np.asarray(pil).copy()


def label(image, text: str, *, color=(20, 20, 20), background=(255, 255, 255),
          size: int = 14) -> np.ndarray:
    """Write ``text`` in the top-left corner on a small plate; (H, W, 3) -> (H, W, 3)."""
    pil = Image.fromarray(as_image(image))
    draw = ImageDraw.Draw(pil)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    box = draw.textbbox((4, 3), text, font=font)
    draw.rectangle([box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2], fill=tuple(background))
    draw.text((4, 3), text, fill=tuple(color), font=font)
    return np.asarray(pil).copy()


def hstack(images, gap: int = 4, fill=(255, 255, 255)) -> np.ndarray:
    """Images side by side (top-aligned, padded to the tallest) with ``gap`` px between."""
    ims = [as_image(i) for i in images]
    if not ims:
        raise RenderError("hstack needs at least one image")
    h = max(i.shape[0] for i in ims)
    w = sum(i.shape[1] for i in ims) + gap * (len(ims) - 1)
    out = np.empty((h, w, 3), np.uint8)
    out[:] = np.asarray(fill, np.uint8)
    x = 0
    for im in ims:
        out[: im.shape[0], x: x + im.shape[1]] = im
        x += im.shape[1] + gap
    return out


def grid(rows, gap: int = 4, fill=(255, 255, 255)) -> np.ndarray:
    """A list of rows (lists of images) stacked: each row :func:`hstack`-ed."""
    lines = [hstack(r, gap, fill) for r in rows]
    w = max(line.shape[1] for line in lines)
    h = sum(line.shape[0] for line in lines) + gap * (len(lines) - 1)
    out = np.empty((h, w, 3), np.uint8)
    out[:] = np.asarray(fill, np.uint8)
    y = 0
    for line in lines:
        out[y: y + line.shape[0], : line.shape[1]] = line
        y += line.shape[0] + gap
    return out


def save_png(image, path) -> Path:
    """Write an (H, W, 3) uint8 image as PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(as_image(image)).save(path, format="PNG")
    return path
