"""Splitting a job: shards (``--shard i/N``) and chunks.

* A **shard** is the set of exemplars whose stable id hashes to ``i`` modulo ``N``
  (sha1 of the id, not its position), so every shard of an array job sees the same split
  whatever order or subset the readers return, and the N shards partition the dataset.
* A **chunk** is a fixed slice of a shard's ids sorted by id: the unit of work given to a
  worker and committed as one part file.  Fixed chunks keep every exemplar in the same
  batch on a resumed run, so the fits are bit-for-bit those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .config import JobConfigError

__all__ = ["Shard", "parse_shard", "shard_of", "select_shard", "plan_chunks"]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise JobConfigError(
                f"shard {self.index}/{self.count}: expected i/N with 0 <= i < N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def folder(self) -> str:
        """Sub-folder of the output dir this shard writes to."""
        width = max(3, len(str(self.count - 1)))
        return f"shard-{self.index:0{width}d}-of-{self.count:0{width}d}"

    def contains(self, exemplar_id: str) -> bool:
        return shard_of(exemplar_id, self.count) == self.index


_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> Shard:
    """``"3/8"`` -> ``Shard(3, 8)`` (0-based index, as SLURM's ``$SLURM_ARRAY_TASK_ID``
    with ``--array=0-7``)."""
    m = _SHARD_RE.match(text)
    if not m:
        raise JobConfigError(f"--shard {text!r}: expected i/N, e.g. 0/4 (0-based)")
    return Shard(int(m.group(1)), int(m.group(2)))


def shard_of(exemplar_id: str, count: int) -> int:
    """The shard (of ``count``) that owns ``exemplar_id``: sha1(id) mod count."""
    digest = hashlib.sha1(exemplar_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(ids: Iterable[str], shard: Shard | None) -> list[str]:
    """The ids of ``shard`` (all of them for None), sorted."""
    ids = sorted(ids)
    if shard is None or shard.count == 1:
        return ids
    return [i for i in ids if shard_of(i, shard.count) == shard.index]


def plan_chunks(ids: Sequence[str], chunk_size: int) -> list[tuple[str, ...]]:
    """Consecutive slices of ``chunk_size`` of the sorted ``ids``."""
    ids = sorted(ids)
    return [tuple(ids[s:s + chunk_size]) for s in range(0, len(ids), chunk_size)]
