"""Reading and writing annotation sets in any of the :data:`FORMATS`."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._io import FileHeader, reading
from .columns import Columns
from .errors import AnnotationError
from .model import AnnotationSet

__all__ = ["FORMATS", "SUFFIXES", "detect_format", "read_annotations", "write_annotations",
           "read_columns", "iter_columns", "write_columns"]

#: Every format, by the name ``--format`` takes.
FORMATS: tuple[str, ...] = ("eft-json", "spin-npz", "h5", "humandata")
#: Suffix -> format used when none is given (``.npz`` files are sniffed when read).
SUFFIXES: dict[str, str] = {".json": "eft-json", ".npz": "spin-npz", ".h5": "h5",
                            ".hdf5": "h5"}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise AnnotationError(f"unknown annotation format {format!r}; choose one of "
                              f"{', '.join(FORMATS)}")
    return format


def detect_format(path: str | os.PathLike, *, for_writing: bool = False) -> str:
    """The format of ``path``: from the suffix, and for reading ``.npz`` / unknown
    suffixes from the content (HumanData has ``smpl`` and ``__temporal_len__``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if for_writing:
        if suffix not in SUFFIXES:
            raise AnnotationError(f"{path}: cannot tell the format from the suffix "
                                  f"'{suffix}'; pass --format ({', '.join(FORMATS)})")
        return SUFFIXES[suffix]
    if suffix in (".json", ".h5", ".hdf5"):
        return SUFFIXES[suffix]
    with reading(path, "annotation"):
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head == _HDF5_MAGIC:
            return "h5"
        if head[:2] == b"PK":
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
            if {"smpl.npy", "__temporal_len__.npy"} & names:
                return "humandata"
            return "spin-npz"
        if head.lstrip()[:1] in (b"{", b"["):
            return "eft-json"
    raise AnnotationError(f"{path}: not an annotation file this eft reads "
                          f"({', '.join(FORMATS)})")


def read_columns(path: str | os.PathLike, format: str | None = None,
                 ) -> tuple[FileHeader, Columns]:
    """``(header, columns)`` of a file (see :func:`read_annotations`)."""
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"{path}: no such file")
    fmt = _check_format(format) if format else detect_format(path)
    if fmt == "eft-json":
        from .eft_json import read_eft_json as reader
    elif fmt == "spin-npz":
        from .spin_npz import read_spin_npz as reader
    elif fmt == "h5":
        from .h5 import read_h5 as reader
    else:
        from .humandata import read_humandata as reader
    return reader(path)


def read_annotations(path: str | os.PathLike, format: str | None = None) -> AnnotationSet:
    """Read an annotation file into an :class:`AnnotationSet`.

    ``format`` is one of :data:`FORMATS`; by default it comes from the suffix
    (``.json``, ``.h5`` / ``.hdf5``) or, for ``.npz``, from the content (SPIN npz or
    HumanData).  Fields a lossy format cannot hold are reconstructed where possible and
    listed in ``missing``.  Raises :class:`AnnotationError` (one line) for a missing,
    corrupt, truncated or newer-schema file.
    """
    header, columns = read_columns(path, format)
    return AnnotationSet(columns.to_annotations(), header.provenance,
                         missing=header.missing, source_format=header.format)


def iter_columns(path: str | os.PathLike, format: str | None = None,
                 batch_rows: int = 8192) -> tuple[FileHeader, Iterator[Columns]]:
    """``(header, batches)``: HDF5 files are read ``batch_rows`` at a time (memory
    bounded); other formats are read whole and yielded in batches."""
    path = Path(path)
    fmt = _check_format(format) if format else detect_format(path)
    if fmt == "h5":
        from .h5 import H5Reader

        reader = H5Reader(path)

        def batches() -> Iterator[Columns]:
            try:
                yield from reader.iter_columns(batch_rows)
            finally:
                reader.close()

        return reader.header, batches()
    header, columns = read_columns(path, fmt)

    def whole() -> Iterator[Columns]:
        for lo in range(0, len(columns), batch_rows):
            yield columns.take(slice(lo, lo + batch_rows))

    return header, whole()


def write_columns(columns: Columns, provenance, path: str | os.PathLike,
                  format: str | None = None, *, missing=frozenset(),
                  **options: Any) -> Path:
    fmt = _check_format(format) if format else detect_format(path, for_writing=True)
    missing = frozenset(missing)
    if fmt == "eft-json":
        from .eft_json import write_eft_json

        if options:
            raise AnnotationError(f"eft-json takes no options, got {sorted(options)}")
        return write_eft_json(columns, provenance, path, missing)
    if fmt == "spin-npz":
        from .spin_npz import write_spin_npz

        return write_spin_npz(columns, provenance, path, missing, **options)
    if fmt == "h5":
        from .h5 import write_h5

        return write_h5(columns, provenance, path, missing, **options)
    from .humandata import write_humandata

    return write_humandata(columns, provenance, path, missing, **options)


def write_annotations(aset: AnnotationSet, path: str | os.PathLike,
                      format: str | None = None, **options: Any) -> Path:
    """Write ``aset`` to ``path`` atomically (temporary file, then rename).

    ``format`` is one of :data:`FORMATS`; by default from the suffix (``.json``
    eft-json, ``.npz`` spin-npz, ``.h5`` / ``.hdf5`` h5).  ``options``: spin-npz
    ``keypoints3d`` (write ``S``), ``imgname_prefix``; humandata ``keypoints3d``; h5
    ``chunk_rows``, ``compression``, ``compression_opts``.
    """
    if not isinstance(aset, AnnotationSet):
        raise TypeError(f"expected an AnnotationSet, got {type(aset).__name__}")
    return write_columns(aset.columns(), aset.provenance, path, format,
                         missing=aset.missing, **options)
