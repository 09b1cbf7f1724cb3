"""eft.review: annotators accept, reject or flag fits in a browser.

* ``eft review ANNOTATIONS --images ROOT`` (:mod:`eft.review.cli`) serves the app
  (:func:`eft.review.app.create_app`, FastAPI; needs the ``review`` extra).
* :class:`ReviewDB` - decisions in SQLite (WAL), one append-only row per action.
* :func:`latest_decisions` - ``{fit_id: "accept" | "reject" | "flag"}`` for
  ``eft export --review-db`` and training filters (``AnnotationSet.filter(decisions=)``);
  :func:`accepted_ids` - the fits an annotator accepted (the trainer's ``accepted_ids``).

Importing this package needs neither FastAPI nor the renderer.
"""

from .db import (
    DECISIONS,
    STATUS_DECISIONS,
    STATUSES,
    DecisionRecord,
    FitStatus,
    ReviewDB,
    accepted_ids,
    latest_decisions,
)
from .errors import ReviewError

__all__ = [
    "DECISIONS",
    "STATUS_DECISIONS",
    "STATUSES",
    "DecisionRecord",
    "FitStatus",
    "ReviewDB",
    "ReviewError",
    "accepted_ids",
    "latest_decisions",
]
