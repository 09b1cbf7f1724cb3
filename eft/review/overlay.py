"""Overlay panels, rendered server-side with :mod:`eft.render` (no OpenGL) and cached.

A panel is ``[crop with mesh overlay | crop with annotated vs projected keypoints and
their residual lines | side view]``.  Annotation files hold no vertices, so the mesh is
posed from the fit's ``rotmat`` and ``betas`` with the body model (``--model``, else
``$EFT_BODY_MODEL``, else the embedded open model).

Panels are PNG files in the cache folder, named by a hash of (annotation file sha256,
fit id, image root, body model hash, panel size, drawing version): a changed file, image
root or body model never shows a stale panel.  Renders are serialised (one at a time: the
CPU is shared with the web server), and a panel asked for twice at once is drawn once.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from eft.body import BodyModel
from eft.data.images import ImageError, load_image
from eft.render import FitView, RenderError, display_crop, fit_panel, label

from .catalog import Catalog
from .errors import ReviewError
from .paths import locate_image

__all__ = ["OverlayCache", "DRAWING_VERSION"]

#: Bump when the panel's look changes, to invalidate cached files.
DRAWING_VERSION = 3
_MAX_IMAGE_PIXELS = 80_000_000


class OverlayCache:
    """PNG panels of the catalog's fits, cached in ``cache_dir``.

    Args:
        catalog: the fits.
        image_root: resolved image root (images are read from inside it only).
        cache_dir: folder of cached PNGs (created).
        model: body model path or None (``$EFT_BODY_MODEL``, else the open model).
        size: side of each of the three tiles, px (panel: size x (3 size + 8)).
    """

    def __init__(self, catalog: Catalog, image_root: Path, cache_dir: str | os.PathLike,
                 model: str | os.PathLike | None = None, size: int = 320) -> None:
        if not 64 <= int(size) <= 1024:
            raise ReviewError(f"overlay size must be 64..1024 px, got {size}")
        self.catalog = catalog
        self.image_root = image_root
        self.cache_dir = Path(cache_dir).expanduser()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReviewError(f"cannot create overlay cache {self.cache_dir}: "
                              f"{exc.strerror}") from None
        self.model = model
        self.size = int(size)
        self._body = None
        self._body_lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        self.renders = 0  # panels drawn (not served from the cache) since start
        self._image_lock = threading.Lock()
        self._last_image: tuple[int, np.ndarray | None] | None = None

    # -- body model ----------------------------------------------------------------------

    @property
    def body(self):
        """The body model, loaded on first use."""
        with self._body_lock:
            if self._body is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._body = BodyModel.load(self.model)
            return self._body

    def body_note(self) -> str | None:
        """A warning when the file's fits were made with another body model."""
        info = getattr(self.catalog.provenance, "body_model", None) or {}
        body = self.body
        want = info.get("sha256")
        if want and want != body.content_hash:
            return (f"fits were made with body model {info.get('name')!r}, overlays use "
                    f"{body.name!r} (pass --model to use the same one)")
        return None

    # -- cache ---------------------------------------------------------------------------

    def key(self, i: int) -> str:
        """Cache key of fit ``i``'s panel (hex)."""
        parts = (self.catalog.file_hash, self.catalog.ids[i], str(self.image_root),
                 self.body.content_hash, str(self.size), str(DRAWING_VERSION))
        return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()

    def path(self, i: int) -> Path:
        return self.cache_dir / f"{self.key(i)}.png"

    def _lock_for(self, key: str) -> threading.Lock:
        with self._key_locks_guard:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(self, i: int) -> Path:
        """The cached PNG of fit ``i``, rendered first when missing."""
        key = self.key(i)
        out = self.cache_dir / f"{key}.png"
        if out.is_file():
            return out
        with self._lock_for(key):
            if out.is_file():
                return out
            png = self.render_png(i)
            tmp = out.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(png)
            os.replace(tmp, out)
        return out

    # -- drawing -------------------------------------------------------------------------

    def image(self, i: int) -> np.ndarray | None:
        """Fit ``i``'s image as (H, W, 3) uint8 (:func:`~eft.data.images.load_image`:
        EXIF orientation applied), or None when not under the image root, over
        ``_MAX_IMAGE_PIXELS`` or unreadable (truncated included).  The last image read is
        kept, so the fit view's readability check and its panel decode it once."""
        with self._image_lock:
            if self._last_image is not None and self._last_image[0] == i:
                return self._last_image[1]
        image = self._read_image(i)
        if image is not None:
            image.setflags(write=False)  # shared by the callers: nobody draws on it
        with self._image_lock:
            self._last_image = (i, image)
        return image

    def _read_image(self, i: int) -> np.ndarray | None:
        from PIL import Image

        path, name = self.catalog.image_ref(i)
        found = locate_image(self.image_root, path, name)
        if found is None:
            return None
        try:
            with Image.open(found) as im:  # the size alone, before decoding anything
                if im.width * im.height > _MAX_IMAGE_PIXELS:
                    return None
            # decoded whole (a truncated file is unreadable, not grey) and turned by its
            # EXIF orientation, as the fitting read it
            return load_image(found)
        except (OSError, ValueError, Image.DecompressionBombError, ImageError):
            return None

    def render_png(self, i: int) -> bytes:
        """Draw fit ``i``'s panel and encode it as PNG."""
        import torch
        from PIL import Image

        ann = self.catalog.annotation(i)
        fit, ex = ann.fit, ann.exemplar
        image = self.image(i)
        with self._render_lock, torch.no_grad():
            body = self.body
            try:
                if not (np.isfinite(fit.rotmat).all() and np.isfinite(fit.betas).all()
                        and np.isfinite(fit.cam_weak).all()):
                    raise RenderError("the fit has non-finite parameters")
                out = body(torch.as_tensor(np.asarray(fit.rotmat), dtype=torch.float32)[None],
                           betas=torch.as_tensor(np.asarray(fit.betas),
                                                 dtype=torch.float32)[None])
                kp3d = np.asarray(fit.keypoints3d, np.float64)
                if not np.isfinite(kp3d).all():  # file without fitted keypoints: recompute
                    kp3d = out.keypoints[0].double().numpy()
                view = FitView.create(out.vertices[0], fit.cam_weak, fit.center, fit.scale,
                                      kp3d)
                kp2d = np.asarray(ex.keypoints, np.float64).copy()
                kp2d[~np.isfinite(kp2d).all(axis=1)] = 0.0
                panel = fit_panel(image, view, body.faces, kp2d, size=self.size,
                                  separate_keypoints=True)
            except (RenderError, ValueError) as exc:
                crop = display_crop(image, ex.center, ex.scale, self.size)
                panel = label(crop, f"cannot draw this fit: {exc}"[:120])
            self.renders += 1
        buf = io.BytesIO()
        Image.fromarray(panel).save(buf, format="PNG", compress_level=6)
        return buf.getvalue()
