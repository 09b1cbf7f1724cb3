"""Image loading (Pillow) and the regressor's person crops.

:func:`load_image` returns every image as ``(H, W, 3) uint8`` RGB, whatever the file:

* EXIF orientation is applied first (``ImageOps.exif_transpose``), so the array is the
  image as a viewer shows it - annotations of such images are made on that view;
* grayscale (``L``, ``1``) is repeated into three channels; palette images (``P``) are
  expanded; ``CMYK`` and ``YCbCr`` are converted by Pillow (no colour management);
* an alpha channel (``RGBA``, ``LA``, ``PA``, palette transparency) is composited onto
  ``background`` - black by default, the colour crops are padded with - or dropped
  (``background=None``);
* 16-bit images (``I;16*``, 16-bit PNG's ``I``) are scaled by 255/65535; 32-bit float
  (``F``) is read as [0, 1] when its maximum is <= 1, else as [0, 255];
* a missing, truncated or undecodable file raises :class:`ImageError` with one line
  (Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone: if a caller sets it,
  truncated files load with their missing part grey).

:func:`crop_image` cuts SPIN's crop (a square of side ``200 * scale`` around ``center``,
optionally rotated) resampled to ``res x res`` with the geometry of
:func:`eft.geometry.crops.image_to_crop`: pixel centres sit at integer coordinates in
both the image and the crop, and image point ``p`` appears at crop pixel
``image_to_crop(p)``.  Outside the image the crop is zero.  :func:`normalize_crop` turns
a crop into HMR's input tensor.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from eft.errors import EftError
from eft.geometry.crops import crop_to_image

__all__ = ["ImageError", "load_image", "image_file_size", "crop_image", "normalize_crop",
           "IMAGENET_MEAN",
           "IMAGENET_STD"]

log = logging.getLogger(__name__)

#: The per-channel RGB mean and standard deviation (of [0, 1] values) that
#: :func:`normalize_crop` removes: ImageNet's, which HMR's ResNet-50 was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageError(EftError):
    """An image that cannot be read: missing, truncated, corrupt or of an unusable mode."""


def image_file_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(W, H)`` in pixels from the image file's header, as :func:`load_image` would
    return it (EXIF orientations 5-8 swap the two), or None when the file is missing or
    not an image.  Only the header is read."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with Image.open(p) as im:
            w, h = int(im.size[0]), int(im.size[1])
            try:
                turned = int(im.getexif().get(0x0112, 1)) in (5, 6, 7, 8)
            except Exception:  # a broken EXIF block: the pixels are still as stored
                turned = False
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return (h, w) if turned else (w, h)


def _to_rgb_array(img: Image.Image, background: tuple[int, int, int] | None) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.float64)
        a = np.clip(a, 0, 65535) * (255.0 / 65535.0)
        g = np.rint(a).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        g = np.rint(np.clip(a, 0, 255)).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        if background is None:
            return np.asarray(rgba.convert("RGB"))
        a = np.asarray(rgba).astype(np.float32)
        alpha = a[..., 3:4] / 255.0
        bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
        out = a[..., :3] * alpha + bg * (1.0 - alpha)
        return np.rint(out).astype(np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def load_image(path: str | os.PathLike,
               background: tuple[int, int, int] | None = (0, 0, 0)) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB (see the module docstring).

    Args:
        path: the image file.
        background: RGB colour an alpha channel is composited onto; None drops alpha.

    Raises:
        ImageError: missing, truncated, corrupt or unsupported file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                img: Image.Image = opened
                try:
                    img = ImageOps.exif_transpose(opened)
                except Exception as exc:  # noqa: BLE001 - a broken EXIF block only
                    log.warning("%s: EXIF orientation ignored (%s)", path, exc)
                arr = _to_rgb_array(img, background)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in msg.lower():
            msg = "truncated image file (" + msg + ")"
        raise ImageError(f"{path}: cannot read image: {msg}") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ImageError(f"{path}: decoded to shape {arr.shape}, not (H, W, 3)")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _box_reduce(sub: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks of an (h, w, C) array (edges padded by replication to a
    multiple of k) -> (ceil(h / k), ceil(w / k), C)."""
    h, w, c = sub.shape
    ph, pw = (-h) % k, (-w) % k
    if ph or pw:
        sub = np.pad(sub, ((0, ph), (0, pw), (0, 0)), mode="edge")
    if sub.dtype == np.uint8 and c in (1, 3):  # Pillow's C box filter: fast, exact blocks
        pil = Image.fromarray(np.ascontiguousarray(sub[..., 0] if c == 1 else sub))
        return np.asarray(pil.reduce(k)).reshape(sub.shape[0] // k, sub.shape[1] // k, c)
    t = torch.from_numpy(np.ascontiguousarray(sub, dtype=np.float32)).permute(2, 0, 1)
    return F.avg_pool2d(t[None], k)[0].permute(1, 2, 0).numpy()


def crop_image(image: np.ndarray, center, scale: float, res: int = 224,
               rot: float = 0.0, antialias: bool = True) -> np.ndarray:
    """SPIN's person crop of an image: the regressor's input (picture tiles for people
    are :func:`eft.render.display_crop`).

    Crop pixel ``u`` (pixel centres at integers) shows image point
    ``crop_to_image(u, center, scale, res, rot)``, bilinearly interpolated; points
    outside the image are 0.  When the crop shrinks the image by a factor ``f >= 2``
    and ``antialias`` is set, the image is first box-filtered by ``floor(f)`` so small
    details are averaged rather than aliased (the geometry is unchanged).

    Args:
        image: (H, W, 3) or (H, W) uint8 or float array.
        center: (2,) crop centre, image px.
        scale: crop side / 200 px.
        res: output side, px (224 for HMR).
        rot: rotation of the crop content, degrees (as in ``image_to_crop``).
        antialias: box-filter before strong downsampling.

    Returns:
        (res, res, 3) (or (res, res)) array, uint8 for uint8 input, else float32.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"image must be (H, W) or (H, W, C), got {img.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    gray = img.ndim == 2
    if gray:
        img = img[..., None]
    H, W, C = img.shape
    center_t = torch.as_tensor(np.asarray(center, dtype=np.float64).reshape(2))
    # image coordinates of every crop pixel centre
    u = torch.arange(res, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), dim=-1).reshape(-1, 2)
    pts = crop_to_image(grid, center_t, float(scale), res, rot).reshape(res, res, 2)

    # cut the part of the image the crop can touch (plus a margin for interpolation)
    step = 200.0 * float(scale) / res
    k = int(math.floor(step)) if antialias and step >= 2.0 else 1
    lo = torch.floor(pts.reshape(-1, 2).amin(0)).to(torch.int64) - 2 * k
    hi = torch.ceil(pts.reshape(-1, 2).amax(0)).to(torch.int64) + 2 * k
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]) + 1, W), min(int(hi[1]) + 1, H)
    out_dtype = np.uint8 if img.dtype == np.uint8 else np.float32
    if x1 <= x0 or y1 <= y0:  # the crop misses the image entirely
        z = np.zeros((res, res, C), dtype=out_dtype)
        return z[..., 0] if gray else z
    # coordinates relative to the region; pixel centre (x0, y0) -> 0
    px = pts[..., 0] - x0
    py = pts[..., 1] - y0
    sub = img[y0:y1, x0:x1]
    if k > 1:
        sub = _box_reduce(sub, k)
        # new pixel j covers old pixels jk .. jk + k - 1: its centre is at jk + (k - 1) / 2
        px = (px - (k - 1) / 2.0) / k
        py = (py - (k - 1) / 2.0) / k
    region = torch.from_numpy(np.ascontiguousarray(sub, dtype=np.float32))
    region = region.permute(2, 0, 1)[None]  # (1, C, h, w)
    h, w = region.shape[-2:]
    gx = 2.0 * px / max(w - 1, 1) - 1.0 if w > 1 else torch.zeros_like(px)
    gy = 2.0 * py / max(h - 1, 1) - 1.0 if h > 1 else torch.zeros_like(py)
    g = torch.stack((gx, gy), dim=-1)[None].to(torch.float32)
    sampled = F.grid_sample(region, g, mode="bilinear", padding_mode="border",
                            align_corners=True)[0]
    # the image covers its pixels' squares: points beyond half a pixel outside are zero
    inside = ((pts[..., 0] >= -0.5) & (pts[..., 0] <= W - 0.5)
              & (pts[..., 1] >= -0.5) & (pts[..., 1] <= H - 0.5)).to(torch.float32)
    sampled = sampled * inside[None]
    out = sampled.permute(1, 2, 0).numpy()
    if out_dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    else:
        out = out.astype(np.float32)
    return out[..., 0] if gray else out


def normalize_crop(crop: np.ndarray) -> torch.Tensor:
    """HMR's input from a crop: ``(res, res, 3)`` RGB (uint8 0..255, or float 0..1) ->
    ``(3, res, res)`` float32 tensor, ``(rgb - IMAGENET_MEAN) / IMAGENET_STD``."""
    a = np.asarray(crop)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"crop must be (res, res, 3) RGB, got {a.shape}")
    t = torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32)
    if a.dtype == np.uint8:
        t = t / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)
    return ((t - mean) / std).permute(2, 0, 1).contiguous()
