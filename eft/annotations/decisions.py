"""Reading annotators' decisions from a review database (the SQLite file ``eft review``
writes), for ``eft export --review-db`` and for trainers.

The review app (:mod:`eft.review.db`) owns the database and writes it; this module only
reads the current decision of every fit, with the same query the app uses, so that the
export layer needs nothing from the app.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import AnnotationError

__all__ = ["LATEST_STATUS_IDS_SQL", "is_review_db", "read_review_db"]

#: Row ids of the latest status decision (accept / reject / flag) of every fit that no
#: ``undo`` row withdrew.
LATEST_STATUS_IDS_SQL = """
SELECT MAX(s.id) FROM decisions s
WHERE s.decision IN ('accept', 'reject', 'flag')
  AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = s.id)
GROUP BY s.fit_id
"""

_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_review_db(path: str | os.PathLike) -> bool:
    """True when ``path`` is an SQLite file (by its header)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def read_review_db(path: str | os.PathLike) -> dict[str, str]:
    """``{fit_id: "accept" | "reject" | "flag"}``: every reviewed fit's latest decision
    (undone ones do not count; fits never decided are absent).  The database is opened
    read-only, so a running review server is not disturbed."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such review database")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute(
                "SELECT fit_id, decision FROM decisions "
                f"WHERE id IN ({LATEST_STATUS_IDS_SQL})").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise AnnotationError(f"{path}: not an eft review database ({exc})") from None
    return {str(fit_id): str(decision) for fit_id, decision in rows}
