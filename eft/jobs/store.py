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

Part files are ``.npz`` archives (no pickles) holding, per fitted exemplar, the
:class:`~eft.fitting.Fit` (without vertices and fine-tuned weights) and its
:class:`~eft.data.exemplar.Exemplar`, plus the chunk's failures.
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

import numpy as np

from eft._files import file_sha256
from eft.data.exemplar import Exemplar
from eft.errors import EftError
from eft.fitting.records import Fit, FitQuality

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

_FIT_ARRAYS = ("rotmat", "pose_aa", "betas", "cam_weak", "cam_t", "keypoints3d", "center")
_QUALITY_FLOATS = ("loss_2d_init", "loss_2d_final", "reproj_px", "reproj_frac_bbox",
                   "max_abs_beta", "pose_nll")
_QUALITY_INTS = ("iterations", "n_valid_keypoints")
_QUALITY_BOOLS = ("converged", "accepted")


@dataclass
class Part:
    """The content of one part file.

    Attributes:
        chunk: index of the chunk it commits.
        config_hash: the job's config hash.
        fits, exemplars: the fitted exemplars, in the same order.
        failures: the chunk's exemplars that could not be fitted.
        seconds: time spent fitting the chunk.
        device: where it ran.
    """

    chunk: int
    config_hash: str
    fits: list[Fit] = field(default_factory=list)
    exemplars: list[Exemplar] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"

    @property
    def ids(self) -> list[str]:
        return [f.exemplar_id for f in self.fits] + [f.id for f in self.failures]


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
    n = len(part.fits)
    if len(part.exemplars) != n:
        raise ValueError(f"{n} fits but {len(part.exemplars)} exemplars")
    arrays: dict[str, np.ndarray] = {}
    for name in _FIT_ARRAYS:
        shape = {"rotmat": (24, 3, 3), "pose_aa": (72,), "betas": (10,), "cam_weak": (3,),
                 "cam_t": (3,), "keypoints3d": (49, 3), "center": (2,)}[name]
        dtype = np.float64 if name == "center" else np.float32
        arrays[f"fit_{name}"] = (np.stack([np.asarray(getattr(f, name), dtype=dtype)
                                           for f in part.fits]) if n
                                 else np.zeros((0, *shape), dtype))
    arrays["fit_scale"] = np.array([f.scale for f in part.fits], dtype=np.float64)
    for name in _QUALITY_FLOATS:
        arrays[f"q_{name}"] = np.array([getattr(f.quality, name) for f in part.fits],
                                       dtype=np.float64)
    for name in _QUALITY_INTS:
        arrays[f"q_{name}"] = np.array([getattr(f.quality, name) for f in part.fits],
                                       dtype=np.int64)
    for name in _QUALITY_BOOLS:
        arrays[f"q_{name}"] = np.array([getattr(f.quality, name) for f in part.fits],
                                       dtype=bool)
    ex = part.exemplars
    arrays["ex_center"] = (np.stack([np.asarray(e.center, np.float64) for e in ex]) if n
                           else np.zeros((0, 2)))
    arrays["ex_scale"] = np.array([e.scale for e in ex], dtype=np.float64)
    arrays["ex_keypoints"] = (np.stack([np.asarray(e.keypoints, np.float64) for e in ex])
                              if n else np.zeros((0, 49, 3)))
    rows = [{"id": e.id, "fit_id": f.exemplar_id, "image_path": e.image_path,
             "source": e.source, "image_size": list(e.image_size) if e.image_size else None,
             "meta": e.meta, "flags": list(f.quality.flags)}
            for e, f in zip(ex, part.fits, strict=True)]
    header = {"format": PART_FORMAT, "version": VERSION, "chunk": part.chunk,
              "config_hash": part.config_hash, "seconds": part.seconds,
              "device": part.device, "rows": rows,
              "failures": [asdict(f) for f in part.failures]}
    arrays["header_json"] = np.array(json.dumps(header, default=_json_default))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_part(path: str | os.PathLike, part: Part) -> None:
    """Commit ``part`` atomically at ``path``."""
    atomic_write_bytes(path, encode_part(part))


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
    fits, exemplars = [], []
    for i, row in enumerate(header["rows"]):
        quality = FitQuality(
            **{k: float(data[f"q_{k}"][i]) for k in _QUALITY_FLOATS},
            **{k: int(data[f"q_{k}"][i]) for k in _QUALITY_INTS},
            **{k: bool(data[f"q_{k}"][i]) for k in _QUALITY_BOOLS},
            flags=tuple(row["flags"]))
        fits.append(Fit(exemplar_id=row["fit_id"],
                        **{k: data[f"fit_{k}"][i].copy() for k in _FIT_ARRAYS},
                        scale=float(data["fit_scale"][i]), quality=quality))
        size = row["image_size"]
        exemplars.append(Exemplar(
            id=row["id"], image_path=row["image_path"], center=data["ex_center"][i].copy(),
            scale=float(data["ex_scale"][i]), keypoints=data["ex_keypoints"][i].copy(),
            source=row["source"], image_size=tuple(size) if size else None,
            meta=row["meta"]))
    return Part(chunk=int(header["chunk"]), config_hash=header["config_hash"], fits=fits,
                exemplars=exemplars, failures=[Failure(**f) for f in header["failures"]],
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
        identity: body model and regressor names and content hashes.
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
    def from_dict(cls, d: dict, where: str = "manifest") -> Manifest:
        if d.get("format") != MANIFEST_FORMAT:
            raise JobStoreError(f"{where}: not an eft job manifest")
        if d.get("version") != VERSION:
            raise JobStoreError(f"{where}: manifest version {d.get('version')} "
                                f"(this eft reads {VERSION})")
        d = {k: v for k, v in d.items() if k not in ("format", "version")}
        d["parts"] = [PartInfo(**p) for p in d.get("parts", [])]
        return cls(**d)

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
    process dies, so a killed job never leaves a stale lock)."""
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK, "a+")  # noqa: SIM115 - held for the context
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobStoreError(f"{folder}: another eft job is writing this output "
                                "folder") from None
        yield
    finally:
        fh.close()
