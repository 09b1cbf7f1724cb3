"""The fits under review: loaded once, as columns, with their orderings and filters.

Everything per request is vectorised over the columns (numpy), so listing, filtering and
finding the neighbours of a fit stay in the milliseconds on a 10k-fit file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eft._files import file_sha256
from eft.annotations import read_columns
from eft.annotations.columns import QUALITY_NUMBERS, Columns
from eft.annotations.decisions import columns_digests
from eft.annotations.provenance import Provenance
from eft.fitting.config import FLAGS

from .db import STATUSES, FitStatus
from .errors import ReviewError

__all__ = ["SORTS", "FLAG_FILTERS", "Catalog"]

#: Queue orderings: ``quality`` = worst first (fits the automatic rules rejected first,
#: then the largest reprojection error as a fraction of the box, then the largest final
#: 2D loss; fits without quality numbers last within each group), ``id`` (string order),
#: ``file`` (file order).
SORTS: tuple[str, ...] = ("quality", "id", "file")
#: Flag filters besides a flag's own name: ``any`` flag, ``none``.
FLAG_FILTERS: tuple[str, ...] = ("any", "none")

_STATUS_CODE = {name: code for code, name in enumerate(STATUSES)}


def _num(value) -> float | int | bool | None:
    """A JSON-safe Python number (NaN and inf become None)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass
class Catalog:
    """The annotation file's fits as columns (see ``eft.annotations.Columns``).

    Attributes:
        path: the annotation file (None when built in memory).
        file_hash: sha256 of its bytes (keys the overlay cache; recorded with every
            decision).
        provenance: the file's :class:`~eft.annotations.Provenance`.
        missing: fields the file could not hold.
        columns: the fits, N rows.
        datasets: (N,) object, str: ``meta["dataset"]``, else the provenance's dataset,
            else ``""``.
    """

    path: Path | None
    file_hash: str
    provenance: Provenance
    missing: frozenset[str]
    columns: Columns
    datasets: np.ndarray

    def __post_init__(self) -> None:
        ids = [str(x) for x in self.columns.fit_id]
        self.ids: list[str] = ids
        self.index: dict[str, int] = {fid: i for i, fid in enumerate(ids)}
        #: fit id -> digest of the fit's values: decisions are bound to it.
        self.digests: dict[str, str] = dict(zip(ids, columns_digests(self.columns),
                                                strict=True))
        if len(self.index) != len(ids):
            seen: set[str] = set()
            for dup in ids:  # the first id met a second time
                if dup in seen:
                    break
                seen.add(dup)
            raise ReviewError(f"{self.path}: fit id {dup!r} occurs more than once")
        n = len(ids)
        q = self.columns.quality
        self.flags: list[tuple[str, ...]] = [tuple(f) for f in q["flags"]]
        self.flag_names: tuple[str, ...] = tuple(sorted({f for fl in self.flags for f in fl}))
        self.dataset_names: tuple[str, ...] = tuple(sorted(set(self.datasets.tolist())))
        self._has_flag = {name: np.array([name in fl for fl in self.flags], bool)
                          for name in self.flag_names}
        self._any_flag = np.array([bool(fl) for fl in self.flags], bool)
        frac = np.asarray(q["reproj_frac_bbox"], np.float64)
        loss = np.asarray(q["loss_2d_final"], np.float64)
        id_rank = np.empty(n, np.int64)
        id_rank[np.argsort(np.array(ids, dtype=object), kind="stable")] = np.arange(n)
        accepted = np.asarray(q["accepted"], bool)
        # np.lexsort: last key is primary.  NaN -> +inf after negation, i.e. last.
        worst = np.lexsort((id_rank, np.nan_to_num(-loss, nan=np.inf),
                            np.nan_to_num(-frac, nan=np.inf), accepted))
        self._orders = {"file": np.arange(n), "id": np.argsort(id_rank), "quality": worst}
        self._ranks = {}
        for name, order in self._orders.items():
            rank = np.empty(n, np.int64)
            rank[order] = np.arange(n)
            self._ranks[name] = rank

    # -- building ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike) -> Catalog:
        """Read an annotation file (any format ``eft.annotations`` reads)."""
        path = Path(path).expanduser()
        header, columns = read_columns(path)
        return cls.build(columns, header.provenance, header.missing, path=path,
                         file_hash=file_sha256(path))

    @classmethod
    def from_set(cls, aset, file_hash: str = "in-memory") -> Catalog:
        """From an in-memory :class:`~eft.annotations.AnnotationSet`."""
        return cls.build(aset.columns(), aset.provenance, aset.missing, path=None,
                         file_hash=file_hash)

    @classmethod
    def build(cls, columns, provenance, missing, *, path, file_hash) -> Catalog:
        default = str(getattr(provenance, "dataset", None) or "")
        datasets = np.empty(len(columns), dtype=object)
        datasets[:] = [str((m.get("dataset") if isinstance(m, Mapping) else None) or default)
                       for m in columns.meta]
        return cls(path, file_hash, provenance, frozenset(missing), columns, datasets)

    def __len__(self) -> int:
        return len(self.ids)

    # -- lookups -------------------------------------------------------------------------

    def find(self, fit_id: str) -> int:
        """Row of ``fit_id`` (KeyError when absent)."""
        return self.index[fit_id]

    def annotation(self, i: int):
        """Row ``i`` as an :class:`~eft.annotations.Annotation` (fit + exemplar)."""
        return self.columns.take(np.array([i])).to_annotations()[0]

    @property
    def file_sha256(self) -> str | None:
        """``file_hash`` when it is a real sha256 (None for an in-memory catalog)."""
        h = self.file_hash
        return h if len(h) == 64 and all(c in "0123456789abcdef" for c in h) else None

    def status_codes(self, statuses: Mapping[str, FitStatus]) -> np.ndarray:
        """(N,) int8 index into :data:`STATUSES` of every fit's status."""
        codes = np.zeros(len(self), np.int8)
        for fid, st in statuses.items():
            i = self.index.get(fid)
            if i is not None:
                codes[i] = _STATUS_CODE[st.status]
        return codes

    def progress(self, codes: np.ndarray) -> dict[str, int]:
        """Fits per status, and the total."""
        counts = np.bincount(codes, minlength=len(STATUSES))
        out = {name: int(counts[k]) for k, name in enumerate(STATUSES)}
        out["total"] = len(self)
        out["reviewed"] = len(self) - out["unreviewed"]
        return out

    # -- filters and orderings -----------------------------------------------------------

    def check_filters(self, sort: str, status: str | None, dataset: str | None,
                      flag: str | None) -> None:
        """ReviewError for a value the queue does not know."""
        if sort not in SORTS:
            raise ReviewError(f"bad sort {sort[:40]!r}: one of {', '.join(SORTS)}")
        if status and status != "all" and status not in STATUSES:
            raise ReviewError(f"bad status {status[:40]!r}: all or one of "
                              f"{', '.join(STATUSES)}")
        if dataset and dataset not in self.dataset_names:
            raise ReviewError(f"unknown dataset {dataset[:80]!r}")
        if flag and flag not in FLAG_FILTERS and flag not in self.flag_names:
            if flag not in FLAGS:
                raise ReviewError(f"bad flag filter {flag[:40]!r}: any, none or a flag name")

    def mask(self, codes: np.ndarray, status: str | None = None, dataset: str | None = None,
             flag: str | None = None) -> np.ndarray:
        """(N,) bool: fits matching every given filter (None / ``""`` / ``all``: no
        filter)."""
        keep = np.ones(len(self), bool)
        if status and status != "all":
            keep &= codes == _STATUS_CODE[status]
        if dataset:
            keep &= self.datasets == dataset
        if flag == "any":
            keep &= self._any_flag
        elif flag == "none":
            keep &= ~self._any_flag
        elif flag:
            keep &= self._has_flag.get(flag, np.zeros(len(self), bool))
        return keep

    def ordered(self, sort: str, mask: np.ndarray) -> np.ndarray:
        """Rows matching ``mask``, in ``sort`` order."""
        order = self._orders[sort]
        return order[mask[order]]

    def neighbours(self, i: int, sort: str, mask: np.ndarray) -> tuple[int | None, int | None]:
        """``(previous, next)`` rows matching ``mask`` around row ``i`` in ``sort`` order
        (``i`` itself need not match, e.g. after it was just decided)."""
        order = self._orders[sort]
        pos = int(self._ranks[sort][i])
        before = np.flatnonzero(mask[order[:pos]])
        after = np.flatnonzero(mask[order[pos + 1:]])
        prev = int(order[before[-1]]) if before.size else None
        nxt = int(order[pos + 1 + after[0]]) if after.size else None
        return prev, nxt

    def upcoming(self, i: int, sort: str, mask: np.ndarray, count: int = 3) -> list[int]:
        """Up to ``count`` rows matching ``mask`` after row ``i`` in ``sort`` order (what
        the page prefetches)."""
        order = self._orders[sort]
        after = order[int(self._ranks[sort][i]) + 1:]
        return [int(r) for r in after[mask[after]][:count]]

    def position(self, i: int, sort: str, mask: np.ndarray) -> int:
        """How many rows matching ``mask`` come before row ``i`` in ``sort`` order."""
        order = self._orders[sort]
        return int(mask[order[: int(self._ranks[sort][i])]].sum())

    # -- summaries -----------------------------------------------------------------------

    def summary(self, i: int, status: FitStatus | None) -> dict:
        """The queue row of fit ``i`` (JSON-safe)."""
        q = self.columns.quality
        row = {"id": self.ids[i], "index": int(i), "dataset": self.datasets[i],
               "image_name": self._image_name(i),
               "quality": {k: _num(q[k][i]) for k in QUALITY_NUMBERS},
               "flags": list(self.flags[i]),
               "status": status.status if status else "unreviewed",
               "decided_by": status.annotator if status else None,
               "decided_at": status.created if status else None}
        return row

    def _image_name(self, i: int) -> str:
        meta = self.columns.meta[i]
        name = meta.get("imageName") if isinstance(meta, Mapping) else None
        path = self.columns.image_path[i]
        if not name and path:
            name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
        return str(name or "")

    def image_ref(self, i: int) -> tuple[str | None, str]:
        """``(image_path, image_name)`` as stored for fit ``i``."""
        path = self.columns.image_path[i]
        return (None if path is None else str(path)), self._image_name(i)

    def detail(self, i: int) -> dict:
        """Exemplar facts of fit ``i`` (JSON-safe), for the fit view."""
        c = self.columns
        kp = np.asarray(c.keypoints2d[i])
        meta = c.meta[i] if isinstance(c.meta[i], Mapping) else {}
        size = c.image_size[i]
        return {
            "source": str(c.source[i]),
            "center": [_num(v) for v in np.asarray(c.center[i])],
            "scale": _num(c.scale[i]),
            "image_size": None if size[0] < 0 else [int(size[0]), int(size[1])],
            "annotated_keypoints": int((kp[:, 2] > 0).sum()),
            "betas": [_num(v) for v in np.asarray(c.betas[i])],
            "cam_weak": [_num(v) for v in np.asarray(c.cam_weak[i])],
            "meta": {str(k): (_num(v) if isinstance(v, float) else v)
                     for k, v in meta.items()
                     if isinstance(v, (str, int, float, bool)) or v is None},
        }
