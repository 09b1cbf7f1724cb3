"""eft.review: annotators accept, reject or flag fits in a browser.

* ``eft review ANNOTATIONS --images ROOT`` (:mod:`eft.review.cli`) serves the app
  (:func:`eft.review.app.create_app`, FastAPI; needs the ``review`` extra).
* :class:`ReviewDB` - decisions in SQLite (WAL), one append-only row per action.
* :func:`latest_decisions` - ``{fit_id: "accept" | "reject" | "flag"}`` for
  ``eft export --review-db`` and training filters (``AnnotationSet.filter(decisions=)``);
  :func:`accepted_ids` - the fits an annotator accepted (the trainer's ``accepted_ids``).

Importing this package needs neither FastAPI nor the renderer.
"""
from eft._lazy import lazy_exports

_EXPORTS = {
    "DECISIONS": "db",
    "STATUS_DECISIONS": "db",
    "STATUSES": "db",
    "DecisionRecord": "db",
    "FitStatus": "db",
    "ReviewDB": "db",
    "ReviewError": "errors",
    "accepted_ids": "db",
    "latest_decisions": "db",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
