"""Reading a job's datasets into exemplars (through ``eft.data.readers``).

Besides the readers' kinds, ``kind: synthetic`` makes exemplars from the pose bank's
validation poses (``eft.synthetic.exemplars``; options ``n``, ``seed``, ``annotate`` and any
:class:`~eft.synthetic.exemplars.SyntheticConfig` field), without images: a quick way to
try a job, and what the tests and benchmarks use.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from eft import config_loader as loader
from eft.data.exemplar import Exemplar
from eft.data.readers import ReadResult, Skipped, read_dataset
from eft.synthetic.exemplars import SyntheticConfig, generate
from eft.synthetic.pose_bank import load_pose_bank

from .config import DatasetConfig, JobConfigError

__all__ = ["Sources", "read_sources", "read_one"]

log = logging.getLogger("eft.jobs")


@dataclass
class Sources:
    """Every exemplar of a job's datasets (in reader order) and the people skipped."""

    exemplars: list[Exemplar] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    per_dataset: list[tuple[str, int, int]] = field(default_factory=list)

    def groups(self) -> list[list[Exemplar]]:
        """The exemplars of each dataset (``per_dataset``'s order: the job's)."""
        out, start = [], 0
        for _, n, _ in self.per_dataset:
            out.append(self.exemplars[start:start + n])
            start += n
        return out


def _synthetic(ds: DatasetConfig) -> ReadResult:
    opts = dict(ds.options)
    n = opts.pop("n", 64)
    seed = opts.pop("seed", 0)
    split = opts.pop("poses", "val")
    if split not in ("train", "val", "all"):
        raise JobConfigError(f"dataset {ds.label}: synthetic options: poses must be train, "
                             f"val or all, got {split!r}")
    where = f"dataset {ds.label}: synthetic options"
    try:
        n = loader.coerce(n, int, "n")
        seed = loader.coerce(seed, int, "seed")
        for key, value, low in (("n", n, 1), ("seed", seed, 0)):
            if value < low:
                raise loader.ConfigKeyError(key, f"must be an integer >= {low}, got {value!r}")
        cfg = loader.build(SyntheticConfig, opts)
    except loader.ConfigKeyError as exc:
        raise JobConfigError(f"{where}: {exc}") from None
    bank = load_pose_bank()
    poses = {"train": bank.train, "val": bank.val, "all": lambda: bank}[split]().poses
    sset = generate(poses, n, seed, cfg)
    exemplars = list(sset.exemplars())
    if ds.name:
        exemplars = [_renamed(e, ds.name) for e in exemplars]
    return ReadResult(exemplars=exemplars)


def _renamed(e: Exemplar, prefix: str) -> Exemplar:
    return dataclasses.replace(e, id=f"{prefix}/{e.id.split('/', 1)[-1]}",
                               meta={**e.meta, "dataset": prefix})


def read_one(ds: DatasetConfig) -> ReadResult:
    """Read one dataset entry of a job config (``eft.data.readers.read_dataset``)."""
    if ds.kind == "synthetic":
        return _synthetic(ds)

    if ds.path is None:  # DatasetConfig refuses this for every reader kind
        raise JobConfigError(f"dataset {ds.name or ds.kind}: path: required for kind "
                             f"{ds.kind!r}")
    options = dict(ds.options)
    if ds.name is not None:
        options.setdefault("dataset", ds.name)
    return read_dataset(ds.kind, ds.path, ds.image_root, **options)


def read_sources(datasets: tuple[DatasetConfig, ...]) -> Sources:
    """Read every dataset; an id repeated within one dataset is skipped as
    ``duplicate_id`` (the first is kept), across datasets it is an error (give them
    different ``name`` s)."""
    out = Sources()
    seen: dict[str, int] = {}
    for i, ds in enumerate(datasets):
        result = read_one(ds)
        kept = []
        for e in result.exemplars:
            if e.id in seen and seen[e.id] == i:  # twice in one file: skip the repeat
                result.skipped.append(Skipped(e.id, "duplicate_id",
                                              "the same id earlier in this dataset"))
                continue
            if e.id in seen:
                raise JobConfigError(
                    f"exemplar id {e.id!r} appears twice (datasets[{seen[e.id]}] and "
                    f"datasets[{i}]); give the datasets different names")
            seen[e.id] = i
            kept.append(e)
        result.exemplars = kept
        out.exemplars.extend(result.exemplars)
        out.skipped.extend(result.skipped)
        label = ds.label
        out.per_dataset.append((label, len(result.exemplars), len(result.skipped)))
        log.info("read %s (%s): %d exemplars, %d skipped", label, ds.kind,
                 len(result.exemplars), len(result.skipped))
    return out
