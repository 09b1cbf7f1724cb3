"""Annotators' decisions, bound to the exact fits they judged.

The review app (:mod:`eft.review.db`) owns the SQLite database ``eft review`` writes;
this module reads it (read-only, so a running server is not disturbed), reads hand-made
JSON decision files, and matches decisions to the fits of an annotation file for
``eft export --review-db`` and the trainer's ``decisions:``.

Every decision the review app records carries the fit id, the sha256 of the annotation
file it was made on, and :func:`fit_digests` of the fit's own values (pose, betas,
camera).  :class:`BoundDecisions` applies a decision only to a fit with the same id *and*
the same values; decisions on other files' fits that share an id, or on fits that a
re-run changed, are ignored and counted.  ``any_file=True`` restores id-only matching
(the latest decision per id, whatever it judged).

Decisions that record no fit (rows of a database written before decisions were bound;
JSON ``{fit_id: decision}`` files) cannot be checked: database rows are ignored unless
``any_file``; JSON files are taken by id (the user wrote ids on purpose), and the report
says so.  A JSON list may bind its entries: ``[{"id", "decision", "fit_digest"}, ...]``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AnnotationError

__all__ = ["LATEST_STATUS_IDS_SQL", "DIGEST_VERSION", "ReviewDecision", "BoundDecisions",
           "fit_digest", "fit_digests", "columns_digests", "is_review_db", "read_review_db",
           "load_bound_decisions", "ACCEPT_DECISIONS", "REJECT_DECISIONS"]

#: Review decisions that keep a fit whatever its automatic verdict.
ACCEPT_DECISIONS = frozenset({"accept", "accepted", "keep", "good"})
#: Review decisions that drop a fit.
REJECT_DECISIONS = frozenset({"reject", "rejected", "drop", "bad"})

#: Row ids of the latest status decision (accept / reject / flag) of every judged fit
#: (fit id + fit digest; rows without a digest group together per id) that no ``undo``
#: row withdrew.  Needs the ``fit_digest`` column (review database schema >= 2).
LATEST_STATUS_IDS_SQL = """
SELECT MAX(s.id) FROM decisions s
WHERE s.decision IN ('accept', 'reject', 'flag')
  AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = s.id)
GROUP BY s.fit_id, s.fit_digest
"""

_LATEST_BY_ID_SQL = LATEST_STATUS_IDS_SQL.replace(", s.fit_digest", "")

#: Part of every digest: bump when the hashed values change.
DIGEST_VERSION = "eft-fit-digest-v1"
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _canonical(values: np.ndarray) -> np.ndarray:
    """float32, -0.0 -> 0.0 and one NaN bit pattern, so equal values hash equally."""
    v = np.asarray(values, np.float32) + np.float32(0.0)
    v[np.isnan(v)] = np.float32("nan")
    return v


def fit_digests(rotmat: np.ndarray, betas: np.ndarray, cam_weak: np.ndarray) -> list[str]:
    """Digest of each fit's own values: sha256 (hex) of its float32 pose rotations
    (N, 24, 3, 3), betas (N, B) and weak-perspective camera (N, 3).

    Equal values give equal digests (whatever file or format they were read from, as long
    as it stored them at float32 precision or better); any changed value gives another.
    """
    n = len(rotmat)
    if n == 0:
        return []
    parts = [_canonical(np.asarray(x).reshape(n, -1)) for x in (rotmat, betas, cam_weak)]
    shapes = ",".join(str(p.shape[1]) for p in parts)
    head = f"{DIGEST_VERSION}:{shapes}:".encode()
    rows = np.ascontiguousarray(np.concatenate(parts, axis=1).astype("<f4"))
    return [hashlib.sha256(head + rows[i].tobytes()).hexdigest() for i in range(n)]


def fit_digest(fit) -> str:
    """:func:`fit_digests` of one :class:`~eft.fitting.records.Fit`."""
    return fit_digests(np.asarray(fit.rotmat)[None], np.asarray(fit.betas)[None],
                       np.asarray(fit.cam_weak)[None])[0]


def columns_digests(columns) -> list[str]:
    """:func:`fit_digests` of every row of a :class:`~eft.annotations.columns.Columns`."""
    return fit_digests(columns.rotmat, columns.betas, columns.cam_weak)


@dataclass(frozen=True)
class ReviewDecision:
    """One fit's current decision.

    Attributes:
        fit_id: the fit's id.
        decision: ``accept`` / ``reject`` / ``flag`` (JSON files: any value
            :class:`~eft.annotations.filters.Selection` understands).
        fit_digest: :func:`fit_digests` of the fit judged; None when not recorded.
        file_sha256: sha256 of the annotation file it was judged in; None when unknown.
        row: order of the decision (higher = later).
    """

    fit_id: str
    decision: str
    fit_digest: str | None = None
    file_sha256: str | None = None
    row: int = 0


def is_review_db(path: str | os.PathLike) -> bool:
    """True when ``path`` is an SQLite file (by its header)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def read_review_db(path: str | os.PathLike) -> list[ReviewDecision]:
    """The current decision of every judged fit in a review database: per fit id and fit
    digest, the latest accept / reject / flag that no undo withdrew.  Databases written
    before decisions were bound (schema 1) give rows without digest.  Opened read-only."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such review database")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            cols = {r[1] for r in con.execute("PRAGMA table_info(decisions)")}
            if not cols:
                raise sqlite3.DatabaseError("no decisions table")
            if "fit_digest" in cols:
                rows = con.execute(
                    "SELECT fit_id, decision, fit_digest, file_sha256, id FROM decisions "
                    f"WHERE id IN ({LATEST_STATUS_IDS_SQL}) ORDER BY id").fetchall()
            else:
                rows = con.execute(
                    "SELECT fit_id, decision, NULL, NULL, id FROM decisions "
                    f"WHERE id IN ({_LATEST_BY_ID_SQL}) ORDER BY id").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise AnnotationError(f"{path}: not an eft review database ({exc})") from None
    return [ReviewDecision(str(f), str(d), g, s, int(i)) for f, d, g, s, i in rows]


def _read_json(path: Path) -> list[ReviewDecision]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read decisions ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: decisions are not valid JSON ({exc})") from None
    if isinstance(data, Mapping) and isinstance(data.get("decisions"), (Mapping, list)):
        data = data["decisions"]
    out: list[ReviewDecision] = []
    if isinstance(data, list):
        try:
            for k, d in enumerate(data):
                out.append(ReviewDecision(str(d["id"]), str(d["decision"]),
                                          d.get("fit_digest"), d.get("file_sha256"), k))
        except (KeyError, TypeError, AttributeError):
            raise AnnotationError(f"{path}: decision list entries need 'id' and "
                                  "'decision'") from None
    elif isinstance(data, Mapping):
        out = [ReviewDecision(str(k), str(v), None, None, n)
               for n, (k, v) in enumerate(data.items())
               if not (isinstance(v, float) and math.isnan(v))]
    else:
        raise AnnotationError(f"{path}: decisions must be an object id -> decision")
    known = ACCEPT_DECISIONS | REJECT_DECISIONS | {"flag", "flagged", "note", ""}
    bad = sorted({d.decision for d in out if d.decision.lower() not in known})
    if bad:
        raise AnnotationError(f"{path}: not a decisions file (unknown decision(s) "
                              f"{', '.join(repr(b[:20]) for b in bad[:3])})")
    return out


@dataclass
class BoundDecisions:
    """Decisions matched to the fits they judged (see the module docstring).

    Call :meth:`resolve` on every batch of fits, then :meth:`report` for the one-line
    tally.

    Attributes:
        decisions: the current decisions.
        any_file: match by fit id alone (the latest decision per id).
        source: where they came from (for the report).
        by_id: JSON id -> decision files: decisions without digest match by id.
    """

    decisions: list[ReviewDecision]
    any_file: bool = False
    source: str = "decisions"
    by_id: bool = False
    _bound: dict[tuple[str, str], ReviewDecision] = field(default_factory=dict, repr=False)
    _loose: dict[str, ReviewDecision] = field(default_factory=dict, repr=False)
    _used: set[int] = field(default_factory=set, repr=False)
    fits_seen: int = 0
    fits_decided: int = 0

    def __post_init__(self) -> None:
        for d in sorted(self.decisions, key=lambda d: d.row):
            if d.fit_digest is not None:
                self._bound[(d.fit_id, d.fit_digest)] = d
            if self.any_file or (self.by_id and d.fit_digest is None):
                self._loose[d.fit_id] = d  # latest wins

    def latest_by_id(self) -> dict[str, str]:
        """``{fit_id: decision}``: the latest decision per id, whatever fit it judged."""
        latest: dict[str, ReviewDecision] = {}
        for d in sorted(self.decisions, key=lambda d: d.row):
            latest[d.fit_id] = d
        return {k: d.decision for k, d in latest.items()}

    def resolve(self, fit_ids: Iterable[str], digests: Iterable[str]) -> dict[str, str]:
        """``{fit_id: decision}`` for the fits (ids and :func:`fit_digests`, in order) that
        a decision applies to; counts them for :meth:`report`."""
        out: dict[str, str] = {}
        for fid, dig in zip(fit_ids, digests, strict=True):
            fid = str(fid)
            self.fits_seen += 1
            d = self._loose.get(fid) if self.any_file else (
                self._bound.get((fid, dig)) or self._loose.get(fid))
            if d is None:
                continue
            self._used.add(id(d))
            self.fits_decided += 1
            if d.decision.strip().lower() not in ("", "note"):
                out[fid] = d.decision
        return out

    def resolve_columns(self, columns) -> dict[str, str]:
        """:meth:`resolve` on the rows of a :class:`~eft.annotations.columns.Columns`."""
        return self.resolve(columns.fit_id, columns_digests(columns))

    def counts(self) -> dict[str, int]:
        """``matched`` decisions applied, ``ignored`` (other or changed fits),
        ``unbound`` (no fit recorded, ignored), ``unreviewed`` fits, ``fits``."""
        pool = list(self._loose.values()) if self.any_file else self.decisions
        matched = sum(1 for d in pool if id(d) in self._used)
        unbound = 0 if (self.any_file or self.by_id) else sum(
            1 for d in pool if id(d) not in self._used and d.fit_digest is None)
        ignored = len(pool) - matched - unbound
        return {"matched": matched, "ignored": ignored, "unbound": unbound,
                "unreviewed": self.fits_seen - self.fits_decided, "fits": self.fits_seen}

    def report(self) -> str:
        """One line: decisions matched, ignored (other or changed fits), fits unreviewed."""
        c = self.counts()
        how = ("by fit id alone (--decisions-any-file)" if self.any_file else
               "by fit id (this file records no fits)" if self.by_id else
               "to the exact fits judged")
        line = (f"review decisions from {self.source}: {c['matched']} matched {how}, "
                f"{c['ignored']} ignored (other or changed fits)")
        if c["unbound"]:
            line += (f", {c['unbound']} ignored (made before decisions recorded their fit; "
                     "--decisions-any-file uses them)")
        return line + f", {c['unreviewed']} of {c['fits']} fits unreviewed"


def load_bound_decisions(path: str | os.PathLike, *, any_file: bool = False
                         ) -> BoundDecisions:
    """Decisions from ``eft review``'s database, or a JSON file (``{fit_id: decision}``,
    ``{"decisions": ...}``, or a list of ``{"id", "decision", "fit_digest"?}``), ready to
    :meth:`~BoundDecisions.resolve`."""
    path = Path(path).expanduser()
    if is_review_db(path):
        return BoundDecisions(read_review_db(path), any_file=any_file, source=path.name)
    rows = _read_json(path)
    return BoundDecisions(rows, any_file=any_file, source=path.name,
                          by_id=all(d.fit_digest is None for d in rows))
