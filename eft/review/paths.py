"""Files under the image root, and nothing else.

:func:`resolve_under_root` is the single gate every served image and every image read for
an overlay goes through.  It refuses, with a :class:`ReviewError`:

* empty paths, NUL or other control characters, backslashes;
* absolute paths (``/x``, ``C:...``) and any ``..`` component;
* a ``%`` anywhere: the web server has already decoded the URL once, so what is left
  would be a second encoding layer (``%252e%252e`` -> ``%2e%2e``);
* file types other than images;
* a path whose real location (symbolic links followed) lies outside the root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from .errors import ReviewError

__all__ = ["IMAGE_SUFFIXES", "check_image_root", "resolve_under_root", "relative_to_root",
           "locate_image"]

#: File types served and read as images.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif",
                            ".tiff"})
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\%]")
_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_PATH = 1024


def check_image_root(root: str | os.PathLike) -> Path:
    """The image root as an absolute, resolved folder (ReviewError if it is not one)."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ReviewError(f"image root {path} is not a folder")
    return path.resolve()


def resolve_under_root(root: Path, relpath: str) -> Path:
    """``root / relpath`` when it is an existing image file inside ``root`` (``root``
    already resolved, :func:`check_image_root`); ReviewError otherwise."""
    if not isinstance(relpath, str) or not relpath or len(relpath) > MAX_PATH:
        raise ReviewError("bad image path")
    if _BAD_CHARS.search(relpath):
        raise ReviewError("bad image path: control characters, backslashes and '%' are "
                          "not allowed")
    if relpath.startswith("/") or _DRIVE.match(relpath):
        raise ReviewError("bad image path: absolute paths are not allowed")
    parts = PurePosixPath(relpath).parts
    if any(p == ".." for p in parts) or any(p == ".." for p in relpath.split("/")):
        raise ReviewError("bad image path: '..' is not allowed")
    if PurePosixPath(relpath).suffix.lower() not in IMAGE_SUFFIXES:
        raise ReviewError("bad image path: not an image file type")
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ReviewError("image not found") from None
    if not real.is_relative_to(root) or not real.is_file():
        raise ReviewError("image not found")
    return real


def relative_to_root(root: Path, path: str | os.PathLike) -> str | None:
    """``path`` (absolute or relative to ``root``) as a POSIX path relative to ``root``,
    when it resolves to a file inside ``root``; else None."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = root / p
    try:
        real = p.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not real.is_file():
        return None
    return real.relative_to(root).as_posix()


def locate_image(root: Path, image_path: str | None, image_name: str | None = None
                 ) -> Path | None:
    """Where an exemplar's image is, inside ``root`` only: its ``image_path`` (absolute
    and inside the root, or relative to the root), else a file of the same base name (or
    ``image_name``) directly in the root.  None when not found (or outside the root)."""
    candidates: list[str] = []
    if image_path:
        candidates.append(str(image_path))
    for name in (image_path, image_name):
        if name:
            base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
            if base:
                candidates.append(base)
    for cand in candidates:
        rel = relative_to_root(root, cand) if Path(cand).is_absolute() else cand
        if rel is None:
            continue
        try:
            return resolve_under_root(root, rel)
        except ReviewError:
            continue
    return None
