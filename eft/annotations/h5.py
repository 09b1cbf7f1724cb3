"""HDF5 annotation files: chunked, gzip-compressed columns, appendable while streaming.

Layout (``annotations/SCHEMA.md`` has every field)::

    /                 attrs: format, schema_version, provenance (JSON), missing (JSON),
                             flag_names (JSON), writer, count, camera_convention (JSON)
    /fits/            fit_id, rotmat, pose_aa, betas, cam_weak, cam_t, keypoints3d,
                      center, scale
    /quality/         loss_2d_init, ..., accepted, flags (bit mask over flag_names)
    /exemplars/       keypoints2d, image_name, image_path, annot_id, dataset, source,
                      image_size, meta (JSON)

Every dataset has the fits along axis 0, chunks of ``chunk_rows`` rows and unlimited
length, and describes itself in attributes: ``unit``, ``description`` and, where they
apply, ``columns`` (JSON: what each last-axis column is, e.g. ``x, y, confidence``),
``joint_order`` + ``joint_names`` (JSON) and ``camera``.  :class:`H5Writer` writes
whole chunks and buffers less than one chunk plus the last batch, so writing N fits
takes memory independent of N; :class:`H5Reader` reads any row range.  Strings are
fixed-width UTF-8 (zero-padded; they compress to almost nothing): HDF5's variable-length
strings keep memory in the library that grows with every string written.  A string
longer than its dataset's width widens the dataset (rows copied a chunk at a time).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from eft import __version__
from eft._files import locked_temporary
from eft.body import joints as J
from eft.fitting.config import FLAGS

from ._io import (
    FileHeader,
    check_schema_version,
    fsync_file,
    output_folder,
    provenance_from_json,
    reading,
)
from .columns import (
    QUALITY_BOOL,
    QUALITY_FLOAT,
    QUALITY_INT,
    Columns,
    _object_array,
    meta_rest,
)
from .errors import AnnotationError
from .provenance import CAMERA_CONVENTION, Provenance
from .record import FORMAT_NAME, SCHEMA_VERSION

__all__ = ["H5Writer", "H5Reader", "write_h5", "read_h5", "DEFAULT_CHUNK_ROWS"]

DEFAULT_CHUNK_ROWS = 1024
#: Starting width in bytes of each string dataset (doubled as long as a string needs).
_MIN_WIDTH = {"fit_id": 32, "image_name": 32, "image_path": 64, "dataset": 16,
              "source": 16, "meta": 64}
_META_KEYS = ("annotId", "imageName", "dataset")

#: name -> (group, per-row shape, numpy dtype or "str")
_LAYOUT: dict[str, tuple[str, tuple[int, ...], Any]] = {
    "fit_id": ("fits", (), "str"),
    "rotmat": ("fits", (24, 3, 3), np.float32),
    "pose_aa": ("fits", (72,), np.float32),
    "betas": ("fits", (10,), np.float32),
    "cam_weak": ("fits", (3,), np.float32),
    "cam_t": ("fits", (3,), np.float32),
    "keypoints3d": ("fits", (49, 3), np.float32),
    "center": ("fits", (2,), np.float64),
    "scale": ("fits", (), np.float64),
    **{k: ("quality", (), np.float64) for k in QUALITY_FLOAT},
    **{k: ("quality", (), np.int32) for k in QUALITY_INT},
    **{k: ("quality", (), np.uint8) for k in QUALITY_BOOL},
    "flags": ("quality", (), np.uint32),
    "keypoints2d": ("exemplars", (49, 3), np.float32),
    "image_name": ("exemplars", (), "str"),
    "image_path": ("exemplars", (), "str"),
    "annot_id": ("exemplars", (), np.int64),
    "dataset": ("exemplars", (), "str"),
    "source": ("exemplars", (), "str"),
    "image_size": ("exemplars", (2,), np.int32),
    "meta": ("exemplars", (), "str"),
}


_SPIN49 = "SPIN-49: 25 OpenPose slots then 24 ground-truth slots (joint_names)"
_CAM = "eft-weak-perspective (root attribute camera_convention)"
#: Attributes of every dataset: ``unit``, ``description`` and, where rows hold joints or
#: columns, ``joint_names`` / ``columns`` (JSON lists) so the file explains itself.
_DESCRIBE: dict[str, dict[str, Any]] = {
    "fit_id": {"unit": "", "description": "unique fit id (= exemplar id); never renumbered"},
    "rotmat": {"unit": "rotation matrix", "joint_order": "SMPL-24",
               "description": "SMPL pose: per-joint rotation matrices relative to the "
                              "parent (joint 0: global orientation in the crop camera "
                              "frame)"},
    "pose_aa": {"unit": "radians (axis-angle)", "joint_order": "SMPL-24",
                "description": "SMPL pose as 24 x 3 axis-angle, flattened to 72"},
    "betas": {"unit": "", "description": "SMPL shape coefficients (10)"},
    "cam_weak": {"unit": "crop-normalised", "columns": ["s", "tx", "ty"],
                 "camera": _CAM,
                 "description": "weak-perspective camera: x_norm = s * X[:2] + [tx, ty]; "
                                "x_img = center + 100 * scale * x_norm"},
    "cam_t": {"unit": "metres", "columns": ["tx", "ty", "tz"], "camera": _CAM,
              "description": "perspective translation equivalent to cam_weak: "
                             "[tx/s, ty/s, 2 * focal_length / (img_res * s)]"},
    "keypoints3d": {"unit": "metres", "joint_order": _SPIN49, "columns": ["x", "y", "z"],
                    "camera": _CAM,
                    "description": "fitted 3D keypoints in the crop camera axes (x right, "
                                   "y down, z away); NaN where the body has none"},
    "center": {"unit": "pixels (image)", "columns": ["x", "y"],
               "description": "crop centre (SPIN's bbox center)"},
    "scale": {"unit": "pixels / 200", "description": "crop side = 200 * scale px (SPIN)"},
    "loss_2d_init": {"unit": "crop-normalised squared error",
                     "description": "EFT 2D keypoint loss before fine-tuning"},
    "loss_2d_final": {"unit": "crop-normalised squared error",
                      "description": "EFT 2D keypoint loss of the kept parameters"},
    "reproj_px": {"unit": "pixels (image)",
                  "description": "mean reprojection error of the annotated keypoints"},
    "reproj_frac_bbox": {"unit": "fraction of the crop side",
                         "description": "reproj_px / (200 * scale)"},
    "max_abs_beta": {"unit": "", "description": "max |betas|"},
    "pose_nll": {"unit": "nats", "description": "negative log-likelihood of the pose "
                                                "under the GMM pose prior; NaN when not "
                                                "scored"},
    "iterations": {"unit": "steps", "description": "forward passes run"},
    "n_valid_keypoints": {"unit": "keypoints",
                          "description": "annotated ground-truth keypoints (SPIN slots "
                                         "25..48)"},
    "converged": {"unit": "bool (0/1)", "description": "stopped below the loss threshold"},
    "accepted": {"unit": "bool (0/1)", "description": "passed the quality rules"},
    "flags": {"unit": "bit mask",
              "description": "quality flags: bit i set = flag_names[i] (root attribute)"},
    "keypoints2d": {"unit": "pixels (image)", "joint_order": _SPIN49,
                    "columns": ["x", "y", "confidence"],
                    "description": "the 2D keypoints fitted to; confidence 0 = not "
                                   "annotated (x, y then meaningless)"},
    "image_name": {"unit": "", "description": "image path relative to the dataset's "
                                              "image root (folders kept)"},
    "image_path": {"unit": "", "description": "image path as the reader resolved it"},
    "annot_id": {"unit": "", "description": "annotation id in the source dataset; -1 none"},
    "dataset": {"unit": "", "description": "source dataset name"},
    "source": {"unit": "", "description": "keypoint format of the source annotation"},
    "image_size": {"unit": "pixels", "columns": ["width", "height"],
                   "description": "image size; -1 when unknown"},
    "meta": {"unit": "", "description": "other exemplar metadata (JSON object)"},
}
assert set(_DESCRIBE) == set(_LAYOUT)


def _dataset_attrs(name: str) -> dict[str, str]:
    """The attributes of dataset ``name`` (strings; lists as JSON)."""
    d = dict(_DESCRIBE[name])
    order = d.pop("joint_order", None)
    out = {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in d.items()}
    if order is not None:
        names = J.SMPL24_NAMES if order == "SMPL-24" else J.SPIN49_NAMES
        out["joint_order"] = order
        out["joint_names"] = json.dumps(list(names))
    return out


def _h5py():
    import h5py

    return h5py


class H5Writer:
    """Stream annotations into an HDF5 file.

    ``append`` as many batches as you like; ``close`` (or leaving the ``with`` block)
    writes the last rows and renames the temporary file onto ``path``.  If the block
    raises, the temporary file is deleted and ``path`` is left untouched.

    Args:
        path: the ``.h5`` file to produce.
        provenance: recorded in the root attributes.
        chunk_rows: rows per HDF5 chunk; whole chunks are written as soon as they are
            complete, so fewer than ``chunk_rows`` rows stay buffered between appends.
        compression: ``"gzip"`` (portable, default), ``"lzf"`` or None.
        compression_opts: gzip level (default 4).
        missing: what the source of these annotations lacked (see ``MISSABLE``).
    """

    def __init__(self, path: str | os.PathLike, provenance: Provenance, *,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, compression: str | None = "gzip",
                 compression_opts: int | None = 4,
                 missing: frozenset[str] = frozenset()) -> None:
        h5py = _h5py()
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.path = Path(path).expanduser()
        self.provenance = provenance
        self.missing = frozenset(missing)
        self.chunk_rows = int(chunk_rows)
        self.count = 0
        self._flag_names: list[str] = list(FLAGS)
        self._pending: list[Columns] = []
        self._pending_rows = 0
        self._closed = False
        output_folder(self.path)
        # HDF5 itself holds an flock on the file while it is open; a later write of
        # `path` removes the temporary only once nobody holds it (we were killed)
        self._tmp, fd = locked_temporary(self.path)
        os.close(fd)
        try:
            # No chunk cache: whole chunks are written once, and HDF5's cache grows with
            # every chunk passing through it (h5py issue #382).
            self._file = h5py.File(self._tmp, "w", rdcc_nbytes=0)
            self._kw: dict[str, Any] = {}
            if compression:
                self._kw["compression"] = compression
                if compression == "gzip" and compression_opts is not None:
                    self._kw["compression_opts"] = int(compression_opts)
                self._kw["shuffle"] = True
            self._datasets = {}
            for name, (group, shape, dtype) in _LAYOUT.items():
                self._datasets[name] = self._create(group, name, shape, dtype,
                                                    _MIN_WIDTH.get(name, 0))
            self._write_attrs()
        except BaseException:
            self._abort()
            raise

    # -- public -----------------------------------------------------------------------

    def append(self, annotations: Sequence) -> None:
        """Add annotations (a sequence of :class:`~eft.annotations.Annotation`)."""
        self.append_columns(Columns.from_annotations(list(annotations)))

    def append_columns(self, columns: Columns) -> None:
        """Add rows already in column form."""
        if self._closed:
            raise AnnotationError(f"{self.path}: writer is closed")
        if len(columns) == 0:
            return
        self._pending.append(columns)
        self._pending_rows += len(columns)
        if self._pending_rows >= self.chunk_rows:
            self._flush(whole_chunks=True)

    def close(self) -> Path:
        """Write what is buffered, finish the file and move it onto ``path``."""
        if self._closed:
            return self.path
        try:
            self._flush()
            self._write_attrs()
            self._file.close()
            fsync_file(self._tmp)
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self._abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the file being written; ``path`` is left as it was."""
        self._abort()

    def __enter__(self) -> H5Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    # -- internals --------------------------------------------------------------------

    def _abort(self) -> None:
        self._closed = True
        try:
            f = getattr(self, "_file", None)
            if f is not None and f.id.valid:
                f.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def _create(self, group: str, name: str, shape: tuple[int, ...], dtype: Any,
                width: int):
        h5py = _h5py()
        h5dtype = h5py.string_dtype("utf-8", width) if dtype == "str" else dtype
        return self._file.require_group(group).create_dataset(
            name, shape=(0, *shape), maxshape=(None, *shape),
            chunks=(self.chunk_rows, *shape), dtype=h5dtype, **self._kw)

    def _widen(self, name: str, need: int) -> None:
        """Replace string dataset ``name`` by a wider copy (rows copied chunk-wise)."""
        group, shape, dtype = _LAYOUT[name]
        old = self._datasets[name]
        width = old.dtype.itemsize
        while width < need:
            width *= 2
        new = self._create(group, f"{name}.widening", shape, dtype, width)
        n = old.shape[0]
        new.resize(n, axis=0)
        for lo in range(0, n, self.chunk_rows):
            new[lo:lo + self.chunk_rows] = old[lo:lo + self.chunk_rows]
        grp = self._file[group]
        del grp[name]
        grp.move(f"{name}.widening", name)
        self._datasets[name] = grp[name]

    def _write_attrs(self) -> None:
        attrs = self._file.attrs
        attrs["format"] = FORMAT_NAME
        attrs["schema_version"] = SCHEMA_VERSION
        attrs["provenance"] = json.dumps(self.provenance.to_dict(), ensure_ascii=False)
        attrs["missing"] = json.dumps(sorted(self.missing))
        attrs["flag_names"] = json.dumps(self._flag_names)
        attrs["writer"] = f"eft {__version__}"
        attrs["count"] = self.count
        attrs["camera_convention"] = json.dumps(
            {**CAMERA_CONVENTION, "focal_length": self.provenance.focal_length,
             "img_res": self.provenance.img_res})
        for name, dset in self._datasets.items():
            for key, value in _dataset_attrs(name).items():
                dset.attrs[key] = value

    def _flag_bits(self, flags: np.ndarray) -> np.ndarray:
        out = np.zeros(len(flags), np.uint32)
        index = {f: i for i, f in enumerate(self._flag_names)}
        for row, names in enumerate(flags):
            bits = 0
            for name in names:
                if name not in index:
                    if len(self._flag_names) >= 32:
                        raise AnnotationError(f"{self.path}: more than 32 distinct flags")
                    index[name] = len(self._flag_names)
                    self._flag_names.append(name)
                bits |= 1 << index[name]
            out[row] = bits
        return out

    def _flush(self, whole_chunks: bool = False) -> None:
        """Write the buffered rows: all of them, or (``whole_chunks``) as many whole
        chunks as there are, keeping the rest buffered (each chunk is written once)."""
        if not self._pending:
            return
        c = Columns.concat(self._pending)
        n = len(c) - len(c) % self.chunk_rows if whole_chunks else len(c)
        rest = c.take(slice(n, None))
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)
        if n:
            self._write(c.take(slice(0, n)) if n < len(c) else c)

    def _write(self, c: Columns) -> None:
        n = len(c)
        metas = [m if isinstance(m, dict) else {} for m in c.meta]
        annot = c.annot_ids()
        values: dict[str, np.ndarray] = {
            "fit_id": c.fit_id.astype(str).astype(object),
            "rotmat": c.rotmat, "pose_aa": c.pose_aa, "betas": c.betas,
            "cam_weak": c.cam_weak, "cam_t": c.cam_t, "keypoints3d": c.keypoints3d,
            "center": c.center, "scale": c.scale,
            **{k: c.quality[k] for k in QUALITY_FLOAT + QUALITY_INT + QUALITY_BOOL},
            "flags": self._flag_bits(c.quality["flags"]),
            "keypoints2d": c.keypoints2d,
            "image_name": _object_array(c.image_names()),
            "image_path": _object_array(["" if p is None else str(p) for p in c.image_path]),
            "annot_id": annot,
            "dataset": _object_array([str(m.get("dataset") or "") for m in metas]),
            "source": _object_array([str(s) for s in c.source]),
            "image_size": c.image_size,
            "meta": _object_array([
                json.dumps(meta_rest(m, int(a), _META_KEYS), ensure_ascii=False,
                           default=_json_default) for m, a in zip(metas, annot, strict=True)]),
        }
        lo = self.count
        for name in _LAYOUT:
            if _LAYOUT[name][2] == "str":
                encoded = [str(v).encode("utf-8") for v in values[name]]
                need = max((len(b) for b in encoded), default=0)
                if need > self._datasets[name].dtype.itemsize:
                    self._widen(name, need)
                values[name] = np.array(encoded, dtype=self._datasets[name].dtype)
            else:
                values[name] = np.asarray(values[name]).astype(_LAYOUT[name][2], copy=False)
            ds = self._datasets[name]
            ds.resize(lo + n, axis=0)
            ds[lo:lo + n] = values[name]
        self.count += n


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    return str(obj)


class H5Reader:
    """Read an eft HDF5 annotation file, all at once or in row ranges.

    Use as a context manager or call :meth:`close`.  :attr:`header` holds the
    provenance, what the file lacks and its row count.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        h5py = _h5py()
        self.path = Path(path)
        with reading(self.path, "eft HDF5"):
            if not self.path.exists():
                raise FileNotFoundError(self.path)
            self._file = h5py.File(self.path, "r")
        try:
            with reading(self.path, "eft HDF5"):
                attrs = self._file.attrs
                if attrs.get("format") != FORMAT_NAME:
                    raise AnnotationError(f"{self.path}: not an eft HDF5 annotation file "
                                          f"(format attribute {attrs.get('format')!r})")
                version = check_schema_version(attrs.get("schema_version"), self.path)
                self.flag_names = list(json.loads(cast(str, _text(attrs.get("flag_names", "[]")))))
                missing = frozenset(json.loads(cast(str, _text(attrs.get("missing", "[]")))))
                provenance = provenance_from_json(_text(attrs.get("provenance")), self.path)
                lengths = set()
                for name, (group, shape, _) in _LAYOUT.items():
                    key = f"{group}/{name}"
                    if key not in self._file:
                        raise AnnotationError(f"{self.path}: missing dataset '{key}'")
                    ds = self._file[key]
                    if ds.shape[1:] != shape:
                        raise AnnotationError(f"{self.path}: '{key}' has per-row shape "
                                              f"{ds.shape[1:]}, expected {shape}")
                    lengths.add(ds.shape[0])
                if len(lengths) != 1:
                    raise AnnotationError(f"{self.path}: datasets have different lengths "
                                          f"{sorted(lengths)} (truncated?)")
                count = lengths.pop()
            self.header = FileHeader(provenance=provenance, missing=missing,
                                     schema_version=version, count=count, format="h5")
        except BaseException:
            self._file.close()
            raise

    def __len__(self) -> int:
        return self.header.count

    def __enter__(self) -> H5Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def read(self, start: int = 0, stop: int | None = None) -> Columns:
        """Rows ``start:stop`` as :class:`Columns`."""
        stop = len(self) if stop is None else min(stop, len(self))
        start = max(0, min(start, stop))
        with reading(self.path, "eft HDF5"):
            raw = {name: self._file[f"{group}/{name}"][start:stop]
                   for name, (group, _, _) in _LAYOUT.items()}
            return self._columns(raw)

    def iter_columns(self, batch_rows: int = 8 * DEFAULT_CHUNK_ROWS) -> Iterator[Columns]:
        """Successive row batches (memory bounded by ``batch_rows``)."""
        for lo in range(0, len(self), batch_rows):
            yield self.read(lo, lo + batch_rows)

    def _columns(self, raw: dict[str, np.ndarray]) -> Columns:
        def strings(a: np.ndarray) -> list[str]:
            return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in a]

        n = raw["fit_id"].shape[0]
        flags = []
        for bits in raw["flags"]:
            bits = int(bits)
            flags.append(tuple(name for i, name in enumerate(self.flag_names)
                               if bits >> i & 1))
        quality = {k: raw[k].astype(np.float64) for k in QUALITY_FLOAT}
        quality.update({k: raw[k].astype(np.int64) for k in QUALITY_INT})
        quality.update({k: raw[k].astype(bool) for k in QUALITY_BOOL})
        quality["flags"] = _object_array(flags)
        names, datasets, annot = strings(raw["image_name"]), strings(raw["dataset"]), raw[
            "annot_id"]
        metas = []
        for i, text in enumerate(strings(raw["meta"])):
            meta = json.loads(text) if text else {}
            if annot[i] >= 0:
                meta["annotId"] = int(annot[i])
            if names[i]:
                meta["imageName"] = names[i]
            if datasets[i]:
                meta["dataset"] = datasets[i]
            metas.append(meta)
        return Columns(
            fit_id=_object_array(strings(raw["fit_id"])),
            rotmat=raw["rotmat"], pose_aa=raw["pose_aa"], betas=raw["betas"],
            cam_weak=raw["cam_weak"], cam_t=raw["cam_t"], keypoints3d=raw["keypoints3d"],
            center=raw["center"], scale=raw["scale"],
            keypoints2d=raw["keypoints2d"].astype(np.float64),
            quality=quality,
            image_path=_object_array([p or None for p in strings(raw["image_path"])]),
            source=_object_array(strings(raw["source"])),
            image_size=raw["image_size"].astype(np.int64).reshape(n, 2),
            meta=_object_array(metas))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def write_h5(columns: Columns, provenance: Provenance, path: str | os.PathLike,
             missing: frozenset[str] = frozenset(), **options: Any) -> Path:
    """Write ``columns`` to an HDF5 file (atomically); ``options`` go to :class:`H5Writer`."""
    with H5Writer(path, provenance, missing=missing, **options) as writer:
        for lo in range(0, len(columns), writer.chunk_rows):
            writer.append_columns(columns.take(slice(lo, lo + writer.chunk_rows)))
    return Path(path)


def read_h5(path: str | os.PathLike) -> tuple[FileHeader, Columns]:
    with H5Reader(path) as reader:
        return reader.header, reader.read()
