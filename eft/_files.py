"""Small file helpers shared by every layer (no project imports)."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import logging
import os
import re
import tempfile
import time
from pathlib import Path

__all__ = ["file_sha256", "locked_temporary", "remove_stale_temporaries", "STALE_AFTER_S",
           "blocking_file"]

log = logging.getLogger("eft")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def blocking_file(folder: str | os.PathLike) -> Path | None:
    """What stands in the way of making ``folder``: the nearest of it and its parents
    that exists, when that is not a folder (a file); None when the folder can be made
    (or exists)."""
    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


#: How old (seconds since the last write) a temporary must be before another run may
#: remove it; guards the moment between its creation and its writer's lock.
STALE_AFTER_S = 5.0


def _tmp_pattern(name: str) -> re.Pattern:
    # tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp"): 8 characters of [a-z0-9_]
    return re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp$")


def locked_temporary(dst: str | os.PathLike) -> tuple[Path, int]:
    """``(path, fd)``: a new empty temporary ``.NAME.XXXXXXXX.tmp`` beside ``dst``, held
    with an exclusive ``flock`` on ``fd`` until the caller closes ``fd``.  Stale
    temporaries of ``dst`` (their writer died: nobody holds their lock) are removed
    first (:func:`remove_stale_temporaries`)."""
    dst = Path(dst)
    remove_stale_temporaries(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # pragma: no cover - file systems without flock: no lock, still works
        pass
    return Path(tmp), fd


def remove_stale_temporaries(dst: str | os.PathLike) -> int:
    """Delete the temporaries of ``dst`` (``.NAME.XXXXXXXX.tmp`` in its folder) that a
    killed writer left behind: older than :data:`STALE_AFTER_S` and not locked by a
    live writer (the kernel drops a dead process's ``flock``).  Returns how many."""
    dst = Path(dst)
    folder = dst.parent
    if not folder.is_dir():
        return 0
    pattern = _tmp_pattern(dst.name)
    removed = 0
    now = time.time()
    for p in folder.glob(f".{glob.escape(dst.name)}.*.tmp"):
        if not pattern.match(p.name):
            continue
        try:
            if now - p.stat().st_mtime < STALE_AFTER_S:
                continue
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live writer holds it
        try:
            p.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d stale temporary file(s) of %s left by an interrupted write",
                 removed, dst)
    return removed
