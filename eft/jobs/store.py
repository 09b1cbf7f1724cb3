"""The output folder of a job: atomic part files, the manifest, and a lock.

Layout of ``output.dir`` (or ``output.dir/shard-i-of-N``)::

    manifest.json      config + config hash, committed parts, failures, summary
    skipped.json       people the readers left out, with reasons
    parts/part-<chunk>-<ids hash>.npz   committed fits of one chunk (+ its failures)
    <name>.json / .h5 / ...             final annotation files (written at the end)
    .lock              held (flock) while a job runs

Every file is written to a temporary name in the same folder, flushed, fsynced and
renamed over its final name (then the folder is fsynced), so a reader - or a job
resumed after ``SIGKILL`` - sees either the old file or the complete new one.  A part
is committed first, then listed in the manifest; a resumed job adopts parts that were
renamed but not yet listed.

Part files are ``.npz`` archives (no pickles) holding the chunk's fits as
:class:`~eft.annotations.Columns` (the fit without vertices and fine-tuned weights, and
its exemplar's keypoints, image and metadata), plus the chunk's failures.  In memory a
:class:`Part` holds those columns, so a job goes from its parts to every output format
without building a :class:`~eft.fitting.Fit` per person.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eft._files import file_sha256
from eft.annotations.columns import QUALITY_NUMBERS, Columns
from eft.data.exemplar import Exemplar
from eft.errors import EftError
from eft.fitting.records import Fit

__all__ = [
    "Failure",
    "Part",
    "PartInfo",
    "Manifest",
    "JobStoreError",
    "atomic_write_bytes",
    "atomic_write_json",
    "write_part",
    "read_part",
    "part_name",
    "job_lock",
    "MANIFEST",
    "PARTS_DIR",
]

MANIFEST = "manifest.json"
SKIPPED = "skipped.json"
SUMMARY = "summary.json"
PARTS_DIR = "parts"
#: Overlay PNGs of a job (``output.overlays``).
OVERLAYS_DIR = "overlays"
LOCK = ".lock"
PART_FORMAT = "eft-job-part"
MANIFEST_FORMAT = "eft-job-manifest"
VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


class JobStoreError(EftError):
    """An output folder that cannot be used (locked, corrupt, another job's)."""


@dataclass(frozen=True)
class Failure:
    """An exemplar the job could not fit.

    Attributes:
        id: exemplar id.
        reason: short machine-readable reason (``missing_image``, ``unreadable_image``,
            ``bad_keypoints``, ``bad_bbox``, ``non_finite_fit``, ``error``).
        detail: human-readable detail.
    """

    id: str
    reason: str
    detail: str = ""


# ---------------------------------------------------------------------------
# Atomic files
# ---------------------------------------------------------------------------

def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it over
    ``path``; on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give files the usual mode
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, allow_nan=False) + "\n").encode())


def remove_temporaries(folder: Path) -> int:
    """Delete ``.*.tmp`` files a killed job left in ``folder``; how many."""
    n = 0
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n


# ---------------------------------------------------------------------------
# Part files
# ---------------------------------------------------------------------------

#: Fit columns stored as ``fit_<name>`` arrays (quality columns as ``q_<name>``).
_FIT_ARRAYS = ("rotmat", "pose_aa", "betas", "cam_weak", "cam_t", "keypoints3d", "center",
               "scale")


@dataclass
class Part:
    """The content of one part file.

    Attributes:
        chunk: index of the chunk it commits.
        config_hash: the job's config hash.
        columns: the fitted exemplars, one row each
            (:class:`~eft.annotations.columns.Columns`).
        failures: the chunk's exemplars that could not be fitted.
        seconds: time spent fitting the chunk.
        device: where it ran.
    """

    chunk: int
    config_hash: str
    columns: Columns = field(default_factory=Columns.empty)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"

    @classmethod
    def from_fits(cls, chunk: int, config_hash: str, fits: Sequence[Fit],
                  exemplars: Sequence[Exemplar], **rest) -> Part:
        """A part of ``fits`` and the exemplars they were fitted to (same order)."""
        return cls(chunk, config_hash, Columns.from_fits(list(fits), list(exemplars)),
                   **rest)

    @property
    def n_fits(self) -> int:
        return len(self.columns)

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.columns.fit_id] + [f.id for f in self.failures]

    @property
    def fits(self) -> list[Fit]:
        """The fits as records (views into :attr:`columns`)."""
        return [a.fit for a in self.columns.to_annotations()]

    @property
    def exemplars(self) -> list[Exemplar]:
        """The exemplars as records (views into :attr:`columns`)."""
        return [a.exemplar for a in self.columns.to_annotations()]


def ids_digest(ids: Sequence[str]) -> str:
    """Short hash of a chunk's sorted ids (part file names)."""
    return hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:10]


def part_name(chunk: int, ids: Sequence[str]) -> str:
    return f"part-{chunk:06d}-{ids_digest(ids)}.npz"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def encode_part(part: Part) -> bytes:
    c = part.columns
    arrays: dict[str, np.ndarray] = {f"fit_{name}": getattr(c, name) for name in _FIT_ARRAYS}
    arrays.update({f"q_{name}": c.quality[name] for name in QUALITY_NUMBERS})
    # the exemplar's box is the fit's (EFT crops at it); kept for older readers
    arrays["ex_center"] = c.center
    arrays["ex_scale"] = c.scale
    arrays["ex_keypoints"] = c.keypoints2d
    rows = [{"id": str(c.fit_id[i]), "fit_id": str(c.fit_id[i]),
             "image_path": c.image_path[i], "source": c.source[i],
             "image_size": None if c.image_size[i][0] < 0 else [int(v) for v in c.image_size[i]],
             "meta": c.meta[i], "flags": list(c.quality["flags"][i])}
            for i in range(len(c))]
    header = {"format": PART_FORMAT, "version": VERSION, "chunk": part.chunk,
              "config_hash": part.config_hash, "seconds": part.seconds,
              "device": part.device, "rows": rows,
              "failures": [asdict(f) for f in part.failures]}
    arrays["header_json"] = np.array(json.dumps(header, default=_json_default))
    buf = io.BytesIO()
    # numpy's stub lets **kwargs fill savez's allow_pickle (a bool); every key here is an
    # array name (fit_*, q_*, ex_*, header_json), never allow_pickle
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def write_part(path: str | os.PathLike, part: Part) -> None:
    """Commit ``part`` atomically at ``path``."""
    atomic_write_bytes(path, encode_part(part))


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def read_part(path: str | os.PathLike) -> Part:
    """Read a part file (a :class:`JobStoreError` when it is not a complete one)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        header = json.loads(str(data["header_json"]))
    except Exception as exc:  # noqa: BLE001 - any damage means "not a part"
        raise JobStoreError(f"{path}: not a readable part file ({exc})") from None
    if header.get("format") != PART_FORMAT:
        raise JobStoreError(f"{path}: not an eft job part file")
    if header.get("version") != VERSION:
        raise JobStoreError(f"{path}: part format version {header.get('version')} "
                            f"(this eft reads {VERSION})")
    rows = header["rows"]
    n = len(rows)
    try:
        quality = {name: data[f"q_{name}"] for name in QUALITY_NUMBERS}
        quality["flags"] = _object_array([tuple(r["flags"]) for r in rows])
        columns = Columns(
            fit_id=_object_array([str(r["fit_id"]) for r in rows]),
            **{name: data[f"fit_{name}"] for name in _FIT_ARRAYS},
            keypoints2d=data["ex_keypoints"], quality=quality,
            image_path=_object_array([r["image_path"] for r in rows]),
            source=_object_array([str(r["source"]) for r in rows]),
            image_size=np.array([r["image_size"] or (-1, -1) for r in rows],
                                np.int64).reshape(n, 2),
            meta=_object_array([dict(r["meta"]) for r in rows]))
        if any(len(v) != n for v in (columns.rotmat, columns.scale, columns.keypoints2d,
                                     *quality.values())):
            raise ValueError("arrays and rows differ in length")
    except (KeyError, ValueError, TypeError) as exc:
        raise JobStoreError(f"{path}: damaged part file ({exc})") from None
    return Part(chunk=int(header["chunk"]), config_hash=header["config_hash"],
                columns=columns, failures=[Failure(**f) for f in header["failures"]],
                seconds=float(header.get("seconds", 0.0)),
                device=str(header.get("device", "cpu")))


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------

@dataclass
class PartInfo:
    """A committed part as the manifest lists it."""

    file: str
    chunk: int
    n_fits: int
    n_failed: int
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"


@dataclass
class Manifest:
    """``manifest.json``: what the output folder holds.

    Attributes:
        config_hash: hash of the settings that decide the fits (and of the body model's
            and regressor's file contents); a run resumes only into the same hash.
        config: every setting of the run that wrote it.
        identity: body model and regressor names and content hashes, and the settings
            of the refit of people lying down where the recipe has one.
        shard: ``"i/N"`` or None.
        parts: committed parts, in commit order.
        n_work: exemplars the job has to fit (after sharding and ``limit``).
        complete: every chunk is committed and the final files are written.
        outputs: format -> final file name.
        output_sha256: format -> sha256 of that final file as written; a final file
            that no longer matches (truncated, edited) is written again.
        summary: the last run's summary (plain dict).
        merged_from: for ``eft merge`` outputs, the merged folders.
    """

    config_hash: str
    config: dict
    identity: dict
    shard: str | None = None
    parts: list[PartInfo] = field(default_factory=list)
    n_work: int = 0
    complete: bool = False
    outputs: dict = field(default_factory=dict)
    output_sha256: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    merged_from: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"format": MANIFEST_FORMAT, "version": VERSION, **d}

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest") -> Manifest:
        """The manifest of ``d`` (``manifest.json``'s content); a :class:`JobStoreError`
        naming ``where`` when it is not one this eft wrote (another format, another
        version, or damaged: fields of the wrong shape)."""
        if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
            raise JobStoreError(f"{where}: not an eft job manifest")
        if d.get("version") != VERSION:
            raise JobStoreError(f"{where}: manifest version {d.get('version')} "
                                f"(this eft reads {VERSION})")
        d = {k: v for k, v in d.items() if k not in ("format", "version")}
        try:
            d["parts"] = [PartInfo(**p) for p in d.get("parts", [])]
            out = cls(**d)
        except TypeError as exc:
            raise JobStoreError(f"{where}: damaged manifest ({exc})") from None
        shapes = {"config": dict, "identity": dict, "outputs": dict, "output_sha256": dict,
                  "summary": dict, "merged_from": list}
        bad = [k for k, t in shapes.items() if not isinstance(getattr(out, k), t)]
        bad += [f"parts[{i}]" for i, p in enumerate(out.parts)
                if not (isinstance(p.file, str) and isinstance(p.chunk, int))]
        if bad:
            raise JobStoreError(f"{where}: damaged manifest ({', '.join(bad)} of the wrong "
                                "type)")
        return out

    def save(self, folder: Path) -> None:
        self.updated = time.time()
        atomic_write_json(folder / MANIFEST, self.to_dict())

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        path = folder / MANIFEST
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise JobStoreError(f"{path}: unreadable manifest ({exc}); move the folder "
                                "away or pass --force to start over") from None
        return cls.from_dict(d, str(path))

    def record_outputs(self, folder: Path) -> None:
        """Store the sha256 of every final file in :attr:`outputs`."""
        self.output_sha256 = {fmt: file_sha256(folder / name)
                              for fmt, name in self.outputs.items()}

    def damaged_outputs(self, folder: Path) -> list[str]:
        """Final files that are missing or differ from what was written (by sha256;
        a file without a recorded hash counts as differing)."""
        bad = []
        for fmt, name in self.outputs.items():
            path = folder / name
            want = self.output_sha256.get(fmt)
            if not path.is_file() or want is None or file_sha256(path) != want:
                bad.append(name)
        return bad

    def add_part(self, info: PartInfo) -> None:
        self.parts = [p for p in self.parts if p.file != info.file] + [info]


# ---------------------------------------------------------------------------
# Lock
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def job_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/.lock`` (released by the kernel when the
    process dies, so a killed job never leaves a stale lock).  A folder this call made
    that holds nothing but the lock when it ends (a job stopped by an error before it
    wrote anything) is removed again."""
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK, "a+")  # noqa: SIM115 - held for the context
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            made = False  # another job's folder
            raise JobStoreError(f"{folder}: another eft job is writing this output "
                                "folder") from None
        yield
    finally:
        fh.close()
        with contextlib.suppress(OSError):
            if made and [p.name for p in folder.iterdir()] == [LOCK]:
                (folder / LOCK).unlink()
                folder.rmdir()
