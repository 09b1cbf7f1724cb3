"""Shared file plumbing: atomic writes, schema-version checks, one-line read errors."""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eft._files import blocking_file, locked_temporary

from .errors import AnnotationError
from .provenance import Provenance
from .record import SCHEMA_VERSION

__all__ = ["atomic_path", "output_folder", "reading", "check_schema_version", "FileHeader",
           "one_line", "gc_paused"]


def one_line(text: Any, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def output_folder(path: str | os.PathLike) -> Path:
    """Make the folder of the file ``path`` is to be written to, and return it; one-line
    errors when ``path`` is a folder or a file stands where a folder of it is wanted
    (before anything is written)."""
    dst = Path(path).expanduser()
    if dst.is_dir():
        raise AnnotationError(f"{dst}: is a folder; give the name of a file to write")
    blocked = blocking_file(dst.parent)
    if blocked is not None:
        raise AnnotationError(f"{blocked}: is a file, not a folder (cannot write {dst} in "
                              "it)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    return dst.parent


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` when the block
    succeeds, delete it when it fails.  Readers never see a half-written file.  The
    temporary is locked while written, so the next write of ``path`` removes it if this
    process is killed (:func:`eft._files.locked_temporary`)."""
    dst = Path(path).expanduser()
    output_folder(dst)
    tmp_path, fd = locked_temporary(dst)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, dst)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small objects (JSON
    lists, records): it otherwise rescans them over and over (2-3x slower)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


#: Any failure inside a reader's ``reading`` block means "this file is damaged or not
#: what it claims" (json, numpy, zipfile/zlib, pickle and h5py each raise their own
#: types, some of them plain ``Exception`` subclasses); all become one AnnotationError.
_READ_ERRORS: tuple[type[BaseException], ...] = (Exception,)


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn any low-level failure while reading ``path`` into one AnnotationError line."""
    try:
        yield
    except AnnotationError:
        raise
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AnnotationError(f"{path}: is a directory, not a {what} file") from None
    except _READ_ERRORS as exc:
        reason = one_line(f"{type(exc).__name__}: {exc}")
        raise AnnotationError(
            f"{path}: corrupt, truncated or not a {what} file ({reason})") from None


def check_schema_version(value: Any, path: str | os.PathLike) -> int:
    """The file's schema version as int; refuse one newer than this code."""
    try:
        version = int(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{path}: bad schema_version {value!r}") from None
    if version > SCHEMA_VERSION:
        raise AnnotationError(
            f"{path}: written with annotation schema version {version}, newer than this "
            f"eft reads (up to {SCHEMA_VERSION}); upgrade eft to read it")
    if version < 1:
        raise AnnotationError(f"{path}: bad schema_version {value!r}")
    return version


@dataclass
class FileHeader:
    """What a file says about itself, apart from the fits."""

    provenance: Provenance
    missing: frozenset[str] = field(default_factory=frozenset)
    schema_version: int | None = None
    count: int = 0
    format: str = ""


def provenance_from_json(text: Any, path: str | os.PathLike) -> Provenance:
    if text is None:
        return Provenance.unknown("file carries no provenance")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    data = json.loads(text) if isinstance(text, str) else text
    return Provenance.from_dict(data)
