"""Review decisions in SQLite (WAL mode): one append-only row per action.

Table ``decisions`` (nothing is ever updated or deleted, so the full history stays):

========== =================================================================
id         INTEGER, increasing; the order of actions ("latest" = highest id)
fit_id     the fit's (= its exemplar's) id in the annotation file
annotator  who acted
created    ISO 8601 UTC time with microseconds
decision   ``accept`` | ``reject`` | ``flag`` | ``note`` | ``undo``
note       free text ('' when none)
undoes     for ``undo`` rows: the id of the row withdrawn (unique), else NULL
file_sha256  sha256 of the annotation file the fit was judged in (NULL: not recorded)
fit_digest   :func:`eft.annotations.decisions.fit_digests` of the fit judged: its pose,
           betas and camera (NULL: not recorded, rows from before schema 2)
========== =================================================================

Semantics:

* ``accept``, ``reject`` and ``flag`` set a fit's status; ``note`` only records a note.
* ``undo`` withdraws the annotator's own latest row that is neither an undo nor already
  withdrawn (optionally restricted to one fit).  Undoing repeatedly walks back through
  that annotator's actions; an undo itself is never undone (act again instead).
* A fit's status is its latest status row that is not withdrawn, whoever wrote it
  (latest decision wins), among the rows that judged *this* fit: same id and same fit
  digest (:meth:`ReviewDB.statuses` with ``digests``).  A file re-fitted, or another file
  whose ids happen to coincide, starts unreviewed.  No such row means ``unreviewed``.
* Schema 1 databases (no ``file_sha256`` / ``fit_digest``) are migrated in place when
  opened; their old rows stay unbound (they judged a fit nobody can name any more).

Several annotators (threads, or processes on the same machine) can write at once: every
write is a single transaction and SQLite serialises them; WAL lets readers go on while
one writes, and the busy timeout makes writers wait rather than fail.  (SQLite's WAL
mode needs the database on a local disk, not a network share.)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from eft.annotations.decisions import LATEST_STATUS_IDS_SQL, read_review_db
from eft.annotations.errors import AnnotationError

from .errors import ReviewError

__all__ = [
    "STATUS_DECISIONS",
    "DECISIONS",
    "STATUSES",
    "STATUS_OF",
    "DecisionRecord",
    "FitStatus",
    "ReviewDB",
    "latest_decisions",
    "accepted_ids",
    "check_annotator",
    "check_fit_id",
    "check_note",
]

#: Decisions that set a fit's status.
STATUS_DECISIONS: tuple[str, ...] = ("accept", "reject", "flag")
#: Everything an annotator can post (``undo`` has its own call).
DECISIONS: tuple[str, ...] = STATUS_DECISIONS + ("note",)
#: A fit's review status.
STATUSES: tuple[str, ...] = ("unreviewed", "accepted", "rejected", "flagged")
#: Status set by each status decision.
STATUS_OF: dict[str, str] = {"accept": "accepted", "reject": "rejected", "flag": "flagged"}

SCHEMA_VERSION = 2
_APPLICATION = "eft-review"
MAX_FIT_ID = 512
MAX_NOTE = 2000
_ANNOTATOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+\- ]{0,63}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fit_id TEXT NOT NULL CHECK (length(fit_id) BETWEEN 1 AND {MAX_FIT_ID}),
    annotator TEXT NOT NULL CHECK (length(annotator) BETWEEN 1 AND 64),
    created TEXT NOT NULL,
    decision TEXT NOT NULL
        CHECK (decision IN ('accept', 'reject', 'flag', 'note', 'undo')),
    note TEXT NOT NULL DEFAULT '' CHECK (length(note) <= {MAX_NOTE}),
    undoes INTEGER UNIQUE REFERENCES decisions(id),
    file_sha256 TEXT,
    fit_digest TEXT,
    CHECK ((decision = 'undo') = (undoes IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS decisions_by_fit ON decisions(fit_id, id);
CREATE INDEX IF NOT EXISTS decisions_by_annotator ON decisions(annotator, id);
"""
_MIGRATE_1_TO_2 = """
ALTER TABLE decisions ADD COLUMN file_sha256 TEXT;
ALTER TABLE decisions ADD COLUMN fit_digest TEXT;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
"""

_LATEST_BY_ID_SQL = LATEST_STATUS_IDS_SQL.replace(", s.fit_digest", "")
_COLUMNS = "id, fit_id, annotator, created, decision, note, undoes, file_sha256, fit_digest"
_HEX64 = re.compile(r"[0-9a-f]{64}")

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def check_annotator(name: object) -> str:
    """The annotator name, validated: 1-64 characters, letters, digits, ``_.@+-`` and
    spaces, starting with a letter or digit."""
    if not isinstance(name, str) or not _ANNOTATOR_RE.fullmatch(name):
        raise ReviewError(
            f"bad annotator name {str(name)[:80]!r}: use 1-64 letters, digits, spaces or "
            "_.@+- (starting with a letter or digit)")
    return name


def check_fit_id(fit_id: object) -> str:
    """A fit id as stored: a non-empty string of at most 512 characters, no control
    characters."""
    if (not isinstance(fit_id, str) or not 1 <= len(fit_id) <= MAX_FIT_ID
            or _CONTROL_RE.search(fit_id)):
        raise ReviewError(f"bad fit id {str(fit_id)[:80]!r}")
    return fit_id


def check_note(note: object) -> str:
    """A note: a string of at most 2000 characters; newlines and tabs allowed, other
    control characters not."""
    if note is None:
        return ""
    if not isinstance(note, str) or len(note) > MAX_NOTE or _CONTROL_RE.search(note):
        raise ReviewError(f"bad note: text of at most {MAX_NOTE} characters, no control "
                          "characters")
    return note


@dataclass(frozen=True)
class DecisionRecord:
    """One row of the ``decisions`` table (see the module docstring)."""

    id: int
    fit_id: str
    annotator: str
    created: str
    decision: str
    note: str = ""
    undoes: int | None = None
    file_sha256: str | None = None
    fit_digest: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FitStatus:
    """A fit's current status: the latest non-withdrawn status row.

    Attributes:
        status: one of :data:`STATUSES` other than ``unreviewed``.
        decision: the row's decision (``accept`` / ``reject`` / ``flag``).
        annotator, created: who set it, and when.
        row_id: the row's id.
        fit_digest: the digest of the fit it judged (None: not recorded).
    """

    status: str
    decision: str
    annotator: str
    created: str
    row_id: int
    fit_digest: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class ReviewDB:
    """The review database at ``path``: created (WAL mode) when missing and ``create``.

    Safe to share between threads: every call opens its own connection.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise ReviewError(f"{self.path}: is a directory, not a review database")
        if not self.path.exists():
            if not create:
                raise ReviewError(f"{self.path}: no such review database")
            if not self.path.parent.is_dir():
                raise ReviewError(f"{self.path}: folder {self.path.parent} does not exist")
        try:
            with self._connect() as con:
                self._init(con, create)
        except sqlite3.DatabaseError as exc:
            raise ReviewError(f"{self.path}: not a usable review database ({exc})") from None

    # -- connections ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            yield con
        finally:
            con.close()

    def _init(self, con: sqlite3.Connection, create: bool) -> None:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "decisions" not in tables:
            if tables - {"sqlite_sequence"}:
                raise ReviewError(f"{self.path}: an SQLite file, but not a review database")
            if not create:
                raise ReviewError(f"{self.path}: not a review database (no decisions table)")
        if create:  # readers (create=False) never write
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ReviewError(f"{self.path}: cannot use WAL mode here ({mode})")
            con.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('application', ?)",
                        (_APPLICATION,))
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),))
        version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if version is None:
            raise ReviewError(f"{self.path}: not a review database (no schema version)")
        if int(version[0]) > SCHEMA_VERSION:
            raise ReviewError(f"{self.path}: review database schema {version[0]} is newer "
                              f"than this eft reads ({SCHEMA_VERSION}); upgrade eft")
        if int(version[0]) < 2:
            self._migrate_1_to_2(con)
        cols = [r[1] for r in con.execute("PRAGMA table_info(decisions)")]
        if cols != [c.strip() for c in _COLUMNS.split(",")]:
            raise ReviewError(f"{self.path}: unexpected decisions columns {cols}")

    def _migrate_1_to_2(self, con: sqlite3.Connection) -> None:
        """Add ``file_sha256`` and ``fit_digest`` (NULL for the existing rows)."""
        con.execute("BEGIN IMMEDIATE")
        try:
            cols = [r[1] for r in con.execute("PRAGMA table_info(decisions)")]
            if "fit_digest" not in cols:  # another process may have migrated meanwhile
                for stmt in _MIGRATE_1_TO_2.strip().split(";\n"):
                    con.execute(stmt.rstrip(";"))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # -- writing -------------------------------------------------------------------------

    def record(self, fit_id: str, decision: str, annotator: str,
               note: str | None = "", *, file_sha256: str | None = None,
               fit_digest: str | None = None) -> DecisionRecord:
        """Append one decision (one of :data:`DECISIONS`) and return its row.
        ``file_sha256`` and ``fit_digest`` (64 hex digits each) say what was judged:
        the review app always gives both."""
        fit_id = check_fit_id(fit_id)
        for name, value in (("file_sha256", file_sha256), ("fit_digest", fit_digest)):
            if value is not None and not (isinstance(value, str) and _HEX64.fullmatch(value)):
                raise ReviewError(f"bad {name} {str(value)[:80]!r}: 64 hex digits")
        annotator = check_annotator(annotator)
        note = check_note(note)
        if decision not in DECISIONS:
            raise ReviewError(f"bad decision {str(decision)[:40]!r}: one of "
                              f"{', '.join(DECISIONS)}")
        if decision == "note" and not note.strip():
            raise ReviewError("a note decision needs a non-empty note")
        created = _now()
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO decisions (fit_id, annotator, created, decision, note, "
                "file_sha256, fit_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (fit_id, annotator, created, decision, note, file_sha256, fit_digest))
            row_id = int(cur.lastrowid or 0)  # an INSERT always sets it
        return DecisionRecord(row_id, fit_id, annotator, created, decision, note, None,
                              file_sha256, fit_digest)

    def undo(self, annotator: str, fit_id: str | None = None, *,
             file_sha256: str | None = None) -> DecisionRecord | None:
        """Withdraw ``annotator``'s latest row that is not an undo and not yet withdrawn
        (only among ``fit_id``'s rows when given, and rows made in the file
        ``file_sha256`` when given).  Returns the new ``undo`` row (its ``fit_id`` is the
        fit affected), or None when there is nothing to undo."""
        annotator = check_annotator(annotator)
        if fit_id is not None:
            fit_id = check_fit_id(fit_id)
        where = "s.annotator = ? AND s.decision != 'undo'"
        args: tuple = (annotator,)
        if fit_id is not None:
            where += " AND s.fit_id = ?"
            args += (fit_id,)
        if file_sha256 is not None:
            where += " AND s.file_sha256 = ?"
            args += (file_sha256,)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                target = con.execute(
                    "SELECT id, fit_id, decision, file_sha256, fit_digest FROM decisions s "
                    f"WHERE {where} AND NOT "
                    "EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = s.id) "
                    "ORDER BY s.id DESC LIMIT 1", args).fetchone()
                if target is None:
                    con.execute("COMMIT")
                    return None
                created = _now()
                note = f"undo {target[2]} #{target[0]}"
                cur = con.execute(
                    "INSERT INTO decisions (fit_id, annotator, created, decision, note, undoes,"
                    " file_sha256, fit_digest) VALUES (?, ?, ?, 'undo', ?, ?, ?, ?)",
                    (target[1], annotator, created, note, target[0], target[3], target[4]))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return DecisionRecord(int(cur.lastrowid or 0), target[1], annotator, created, "undo", note,
                              int(target[0]), target[3], target[4])

    # -- reading -------------------------------------------------------------------------

    def statuses(self, digests: Mapping[str, str] | None = None) -> dict[str, FitStatus]:
        """Every reviewed fit's current :class:`FitStatus`, by fit id.

        ``digests`` (fit id -> :func:`~eft.annotations.decisions.fit_digests`): only rows
        that judged exactly these fits count (others, and rows without a digest, are
        ignored).  None: the latest row per fit id, whatever fit it judged."""
        with self._connect() as con:
            if digests is None:
                rows = con.execute(
                    "SELECT id, fit_id, decision, annotator, created, fit_digest FROM "
                    f"decisions WHERE id IN ({_LATEST_BY_ID_SQL})").fetchall()
            else:
                rows = con.execute(
                    "SELECT id, fit_id, decision, annotator, created, fit_digest FROM "
                    f"decisions WHERE id IN ({LATEST_STATUS_IDS_SQL}) AND fit_digest "
                    "IS NOT NULL").fetchall()
                rows = [r for r in rows if digests.get(r[1]) == r[5]]
        return {r[1]: FitStatus(STATUS_OF[r[2]], r[2], r[3], r[4], int(r[0]), r[5])
                for r in rows}

    def stale_count(self, digests: Mapping[str, str]) -> int:
        """Current decisions on these fit ids that judged another fit (other values, or
        no digest recorded): they do not count for the fits in ``digests``."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT fit_id, fit_digest FROM decisions "
                f"WHERE id IN ({LATEST_STATUS_IDS_SQL})").fetchall()
        return sum(1 for fid, dig in rows if fid in digests and digests[fid] != dig)

    def status(self, fit_id: str, digest: str | None = None) -> FitStatus | None:
        """One fit's current status (only rows that judged the fit with this ``digest``
        when given), or None when unreviewed."""
        where = "s.fit_id = ?"
        args: tuple[str, ...] = (fit_id,)
        if digest is not None:
            where, args = where + " AND s.fit_digest = ?", (fit_id, digest)
        with self._connect() as con:
            r = con.execute(
                "SELECT id, fit_id, decision, annotator, created, fit_digest FROM decisions s "
                f"WHERE {where} AND s.decision IN ('accept', 'reject', 'flag') AND NOT "
                "EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = s.id) "
                "ORDER BY s.id DESC LIMIT 1", args).fetchone()
        return None if r is None else FitStatus(STATUS_OF[r[2]], r[2], r[3], r[4], int(r[0]),
                                                r[5])

    def history(self, fit_id: str | None = None, *, offset: int = 0,
                limit: int | None = None, newest_first: bool = False) -> list[DecisionRecord]:
        """Rows in id order (all fits, or one), ``limit`` rows from ``offset``."""
        sql = f"SELECT {_COLUMNS} FROM decisions"
        args: tuple = ()
        if fit_id is not None:
            sql += " WHERE fit_id = ?"
            args = (fit_id,)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        sql += " LIMIT ? OFFSET ?"
        args += (-1 if limit is None else int(limit), int(offset))
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        return [DecisionRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5],
                               None if r[6] is None else int(r[6]), r[7], r[8]) for r in rows]

    def withdrawn(self, row_ids: list[int]) -> set[int]:
        """Which of these row ids an undo row withdrew."""
        if not row_ids:
            return set()
        marks = ",".join("?" * len(row_ids))
        with self._connect() as con:
            rows = con.execute(
                f"SELECT undoes FROM decisions WHERE undoes IN ({marks})", row_ids).fetchall()
        return {int(r[0]) for r in rows}

    def count(self) -> int:
        """Rows in the table (every action, undos included)."""
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def latest_decisions(db_path: str | os.PathLike) -> dict[str, str]:
    """The latest decision of every reviewed fit id, **whatever fit it judged**:
    ``{fit_id: "accept" | "reject" | "flag"}`` (undone decisions do not count; fits never
    decided are absent).  To apply decisions only to the fits they judged, use
    :func:`eft.annotations.decisions.load_bound_decisions`.

    Raises :class:`ReviewError` when ``db_path`` is not an existing review database.
    """
    try:
        rows = read_review_db(db_path)
    except AnnotationError as exc:
        raise ReviewError(str(exc)) from None
    latest: dict[str, str] = {}
    for r in rows:  # in row order: the latest wins
        latest[r.fit_id] = r.decision
    return latest


def accepted_ids(db_path: str | os.PathLike) -> set[str]:
    """Ids of the fits whose latest decision is ``accept`` (the trainer's
    ``accepted_ids`` hook: keep only what an annotator accepted; by id alone)."""
    return {k for k, v in latest_decisions(db_path).items() if v == "accept"}
