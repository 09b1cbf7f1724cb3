"""Reading and writing annotation sets in any of the :data:`FORMATS`."""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._io import FileHeader, reading
from .columns import Columns
from .eft_json import read_eft_json, write_eft_json
from .errors import AnnotationError
from .formats import FORMATS
from .h5 import H5Reader, read_h5, write_h5
from .humandata import is_humandata_layout, read_humandata, write_humandata
from .model import AnnotationSet
from .spin_npz import read_spin_npz, write_spin_npz

__all__ = ["FORMATS", "SUFFIXES", "DUPLICATES", "suffix_format", "detect_format",
           "check_unique_ids", "read_annotations", "write_annotations",
           "read_columns", "iter_columns", "write_columns"]

#: Suffix -> format used when none is given: for writing, and for reading a file whose
#: content does not tell (files are sniffed first: HDF5 signature, zip archive, JSON).
#: Compound suffixes (``x.humandata.npz``) are matched first.
SUFFIXES: dict[str, str] = {".humandata.npz": "humandata", ".spin.npz": "spin-npz",
                            ".json": "eft-json", ".npz": "spin-npz", ".h5": "h5",
                            ".hdf5": "h5"}
#: What :func:`read_columns` does with a fit id that appears more than once: refuse the
#: file (``error``), keep the first row of each id (``dedupe``) or keep every row
#: (``keep``, for ``validate``, which reports them).  Ids are never renumbered.
DUPLICATES: tuple[str, ...] = ("error", "dedupe", "keep")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise AnnotationError(f"unknown annotation format {format!r}; choose one of "
                              f"{', '.join(FORMATS)}")
    return format


def suffix_format(path: str | os.PathLike) -> str | None:
    """The format :data:`SUFFIXES` gives the name of ``path`` (longest suffix first:
    ``out.humandata.npz`` is humandata), or None."""
    name = Path(path).name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return SUFFIXES[suffix]
    return None


def detect_format(path: str | os.PathLike, *, for_writing: bool = False) -> str:
    """The format of ``path``.  For writing: from the suffix (compound ones such as
    ``.humandata.npz`` included).  For reading: from the content, whatever the suffix
    (the HDF5 signature, a zip archive: HumanData of any mmhuman3d version, else SPIN
    npz, or JSON), else from the suffix (a damaged file then gets its format's error)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if for_writing:
        fmt = suffix_format(path)
        if fmt is None:
            raise AnnotationError(f"{path}: cannot tell the format from the suffix "
                                  f"'{suffix}'; pass --format ({', '.join(FORMATS)})")
        return fmt
    with reading(path, "annotation"):
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head == _HDF5_MAGIC:
            return "h5"
        if head[:2] == b"PK":
            with zipfile.ZipFile(path) as zf:
                names = {n.removesuffix(".npy") for n in zf.namelist()}
            return "humandata" if is_humandata_layout(names) else "spin-npz"
        if head.lstrip()[:1] in (b"{", b"["):
            return "eft-json"
    fmt = suffix_format(path)
    if fmt is not None:
        return fmt
    raise AnnotationError(f"{path}: not an annotation file this eft reads "
                          f"({', '.join(FORMATS)}); if it is one, name its format "
                          "(eft export / inspect / validate: --input-format)")


def check_unique_ids(columns: Columns, path, duplicates: str = "error",
                     ) -> tuple[Columns, list[tuple[str, int]]]:
    """``(columns, dropped)``: ``columns`` when every fit id is unique; else an error
    naming the first repeated id (``duplicates="error"``), the first row of each id
    with ``dropped`` = ``[(id, row), ...]`` of the rows left out (``"dedupe"``), or all
    rows unchanged (``"keep"``)."""
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}")
    first: dict[str, int] = {}
    dropped: list[tuple[str, int]] = []
    for i, fid in enumerate(columns.fit_id.tolist()):
        fid = str(fid)
        if fid in first:
            dropped.append((fid, i))
        else:
            first[fid] = i
    if not dropped or duplicates == "keep":
        return columns, []
    if duplicates == "error":
        fid, row = dropped[0]
        raise AnnotationError(
            f"{path}: fit id {fid!r} appears more than once (rows {first[fid]} and {row}; "
            f"{len(dropped)} repeated row(s) in all); ids are never renumbered: fix the "
            "file, or export with --dedupe to keep the first row of each id")
    keep = np.ones(len(columns), bool)
    keep[[row for _, row in dropped]] = False
    return columns.take(np.flatnonzero(keep)), dropped


def read_columns(path: str | os.PathLike, format: str | None = None, *,
                 duplicates: str = "error", report: list | None = None,
                 ) -> tuple[FileHeader, Columns]:
    """``(header, columns)`` of a file (see :func:`read_annotations`).

    ``duplicates``: see :data:`DUPLICATES`; with ``dedupe`` the ``(id, row)`` of every
    row left out is appended to ``report`` (a list) when given."""
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"{path}: no such file")
    fmt = _check_format(format) if format else detect_format(path)
    reader = {"eft-json": read_eft_json, "spin-npz": read_spin_npz, "h5": read_h5,
              "humandata": read_humandata}[fmt]
    header, columns = reader(path)
    columns, dropped = check_unique_ids(columns, path, duplicates)
    if dropped:
        header = dataclasses.replace(header, count=len(columns))
        if report is not None:
            report.extend(dropped)
    return header, columns


def read_annotations(path: str | os.PathLike, format: str | None = None) -> AnnotationSet:
    """Read an annotation file into an :class:`AnnotationSet`.

    ``format`` is one of :data:`FORMATS`; by default it comes from the content (HDF5,
    SPIN npz or HumanData, JSON), whatever the suffix, else from the suffix
    (:func:`detect_format`).  Fields a lossy format cannot hold are reconstructed where
    possible and listed in ``missing``.  Raises :class:`AnnotationError` (one line) for a missing,
    corrupt, truncated or newer-schema file.
    """
    header, columns = read_columns(path, format)
    return AnnotationSet(columns.to_annotations(), header.provenance,
                         missing=header.missing, source_format=header.format)


def iter_columns(path: str | os.PathLike, format: str | None = None,
                 batch_rows: int = 8192, *, duplicates: str = "error",
                 report: list | None = None) -> tuple[FileHeader, Iterator[Columns]]:
    """``(header, batches)``: HDF5 files are read ``batch_rows`` at a time (memory
    bounded); other formats are read whole and yielded in batches.  Repeated fit ids
    are handled as ``duplicates`` says (:func:`read_columns`), across batches too."""
    path = Path(path)
    fmt = _check_format(format) if format else detect_format(path)
    if fmt == "h5":
        reader = H5Reader(path)

        def batches() -> Iterator[Columns]:
            seen: set[str] = set()
            row = 0
            try:
                for batch in reader.iter_columns(batch_rows):
                    ids = [str(i) for i in batch.fit_id.tolist()]
                    repeated = []
                    for j, fid in enumerate(ids):
                        if fid in seen:
                            repeated.append(j)
                        seen.add(fid)
                    if repeated and duplicates != "keep":
                        j = repeated[0]
                        if duplicates == "error":
                            raise AnnotationError(
                                f"{path}: fit id {ids[j]!r} appears more than once (row "
                                f"{row + j}); ids are never renumbered: fix the file, or "
                                "export with --dedupe to keep the first row of each id")
                        if report is not None:
                            report.extend((ids[j], row + j) for j in repeated)
                        keep = np.ones(len(batch), bool)
                        keep[repeated] = False
                        row += len(batch)
                        batch = batch.take(np.flatnonzero(keep))
                    else:
                        row += len(batch)
                    yield batch
            finally:
                reader.close()

        return reader.header, batches()
    header, columns = read_columns(path, fmt, duplicates=duplicates, report=report)

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
        if options:
            raise AnnotationError(f"eft-json takes no options, got {sorted(options)}")
        return write_eft_json(columns, provenance, path, missing)
    if fmt == "spin-npz":
        return write_spin_npz(columns, provenance, path, missing, **options)
    if fmt == "h5":
        return write_h5(columns, provenance, path, missing, **options)
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
