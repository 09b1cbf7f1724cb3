"""The review app's routes: the page and its files (:data:`pages`), the JSON API
(:data:`api`, under ``/api``) and the images under the image root (:data:`images`).

Handlers find the server's :class:`~eft.review.state.ReviewState` on
``request.app.state.review`` (the :data:`State` dependency); see :mod:`eft.review.app`
for the endpoint table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from .db import DECISIONS, STATUSES, check_annotator
from .errors import ReviewError
from .middleware import NotFound, error_response
from .paths import locate_image, relative_to_root, resolve_under_root
from .state import ReviewState

__all__ = ["pages", "api", "images", "DecisionIn", "UndoIn", "MAX_PAGE", "STATIC_DIR",
           "review_state", "image_problem"]

STATIC_DIR = Path(__file__).with_name("static")
_STATIC_FILES = {"app.js": "text/javascript; charset=utf-8",
                 "app.css": "text/css; charset=utf-8"}
MAX_PAGE = 500
_HISTORY_IN_FIT = 50
_PREFETCH = 3  # overlays the page loads ahead


class DecisionIn(BaseModel):
    """Body of ``POST /api/decisions``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    fit_id: str = Field(min_length=1, max_length=512)
    decision: Literal["accept", "reject", "flag", "note"]
    note: str = Field(default="", max_length=2000)
    annotator: str | None = Field(default=None, min_length=1, max_length=64)


class UndoIn(BaseModel):
    """Body of ``POST /api/undo``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    annotator: str | None = Field(default=None, min_length=1, max_length=64)
    fit_id: str | None = Field(default=None, min_length=1, max_length=512)


def review_state(request: Request) -> ReviewState:
    """The app's shared state (dependency)."""
    return request.app.state.review


State = Annotated[ReviewState, Depends(review_state)]
Sort = Annotated[str, Query(max_length=16)]
Status = Annotated[str, Query(max_length=16)]
Dataset = Annotated[str, Query(max_length=200)]
Flag = Annotated[str, Query(max_length=64)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
FitId = Annotated[str, Query(min_length=1, max_length=512)]
OptFitId = Annotated[str | None, Query(min_length=1, max_length=512)]

pages = APIRouter()
api = APIRouter(prefix="/api")
images = APIRouter()


# -- helpers -------------------------------------------------------------------------------

def _row_of(state: ReviewState, fit_id: str) -> int:
    try:
        return state.catalog.find(fit_id)
    except KeyError:
        raise NotFound(f"no fit with id {fit_id[:80]!r}") from None


def _annotator_of(state: ReviewState, name: str | None) -> str:
    return check_annotator(name if name is not None else state.config.annotator)


def _image_url(state: ReviewState, i: int) -> str | None:
    path, name = state.catalog.image_ref(i)
    found = locate_image(state.image_root, path, name)
    if found is None:
        return None
    rel = relative_to_root(state.image_root, found)
    return None if rel is None else "/images/" + "/".join(
        quote(part, safe="") for part in rel.split("/"))


def image_problem(state: ReviewState, i: int) -> str | None:
    """``"missing"`` (not found under the image root), ``"unreadable"`` (found, but
    Pillow cannot read it) or None; remembered per fit in ``state.image_problems``."""
    problems = state.image_problems
    if i not in problems:
        path, name = state.catalog.image_ref(i)
        problem = None
        if locate_image(state.image_root, path, name) is None:
            problem = "missing"
        elif state.overlays.image(i) is None:  # decoded whole: truncated files too
            problem = "unreadable"
        problems[i] = problem
    return problems[i]


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type=_STATIC_FILES.get(
        name, "text/html; charset=utf-8"))


def _get(router: APIRouter, path: str, **kwargs):
    """``router.get``, also answering HEAD (the headers alone, as ``curl -I`` asks)."""
    return router.api_route(path, methods=["GET", "HEAD"], **kwargs)


# -- pages ---------------------------------------------------------------------------------

@_get(pages, "/", include_in_schema=False)
def index():
    return _page("index.html")


@_get(pages, "/static/{name}", include_in_schema=False)
def static(name: str):
    if name not in _STATIC_FILES:
        return error_response(404, "not found")
    return _page(name)


@_get(images, "/images/{path:path}")
def image(path: str, state: State):
    try:
        found = resolve_under_root(state.image_root, path)
    except ReviewError as exc:
        status = 404 if str(exc) == "image not found" else 400
        return error_response(status, str(exc))
    return FileResponse(found, headers={"Cache-Control": "private, max-age=3600"})


# -- API -----------------------------------------------------------------------------------

@_get(api, "/info")
def info(state: State):
    cat, db = state.catalog, state.db
    prov = cat.provenance
    codes = cat.status_codes(db.statuses(cat.digests))
    return {
        "annotations": cat.path.name if cat.path else None,
        "file_sha256": cat.file_hash,
        "count": len(cat),
        "missing": sorted(cat.missing),
        "provenance": prov.to_dict() if hasattr(prov, "to_dict") else None,
        "body_note": state.overlays.body_note(),
        "default_annotator": state.config.annotator,
        "datasets": list(cat.dataset_names),
        "flags": list(cat.flag_names),
        "statuses": list(STATUSES),
        "decisions": list(DECISIONS),
        "sorts": ["quality", "id", "file"],
        "progress": cat.progress(codes),
        "stale_decisions": db.stale_count(cat.digests),
        "page_limit": MAX_PAGE,
    }


@_get(api, "/progress")
def progress(state: State):
    cat = state.catalog
    return cat.progress(cat.status_codes(state.db.statuses(cat.digests)))


@_get(api, "/fits")
def fits(state: State, sort: Sort = "quality", status: Status = "all", dataset: Dataset = "",
         flag: Flag = "", offset: Offset = 0, limit: Limit = 50):
    cat = state.catalog
    cat.check_filters(sort, status, dataset, flag)
    statuses = state.db.statuses(cat.digests)
    codes = cat.status_codes(statuses)
    rows = cat.ordered(sort, cat.mask(codes, status, dataset, flag))
    page = rows[offset:offset + limit]
    return {"total": int(rows.size), "offset": offset, "limit": limit,
            "sort": sort, "items": [cat.summary(int(i), statuses.get(cat.ids[i]))
                                    for i in page],
            "progress": cat.progress(codes)}


@_get(api, "/fit")
def fit(state: State, id: FitId, sort: Sort = "quality", status: Status = "all",
        dataset: Dataset = "", flag: Flag = ""):
    cat, db = state.catalog, state.db
    i = _row_of(state, id)
    cat.check_filters(sort, status, dataset, flag)
    statuses = db.statuses(cat.digests)
    codes = cat.status_codes(statuses)
    mask = cat.mask(codes, status, dataset, flag)
    prev, nxt = cat.neighbours(i, sort, mask)
    upcoming = cat.upcoming(i, sort, mask, _PREFETCH)
    rows = db.history(id, newest_first=True, limit=_HISTORY_IN_FIT)
    gone = db.withdrawn([r.id for r in rows])
    digest = cat.digests[id]
    out = cat.summary(i, statuses.get(id))
    out.update({
        "exemplar": cat.detail(i),
        "image_url": _image_url(state, i),
        "overlay_url": "/api/overlay?" + urlencode({"id": id}),
        "history": [{**r.to_dict(), "withdrawn": r.id in gone,
                     "other_fit": r.fit_digest != digest} for r in rows],
        "prev": None if prev is None else cat.ids[prev],
        "next": None if nxt is None else cat.ids[nxt],
        "upcoming": ["/api/overlay?" + urlencode({"id": cat.ids[k]}) for k in upcoming],
        "image_problem": image_problem(state, i),
        "position": cat.position(i, sort, mask),
        "matching": int(mask.sum()),
        "in_queue": bool(mask[i]),
    })
    return out


@_get(api, "/overlay")
def overlay(state: State, id: FitId):
    i = _row_of(state, id)
    path = state.overlays.get(i)
    return FileResponse(path, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=86400",
                                 "ETag": f'"{path.stem}"'})


@_get(api, "/history")
def history(state: State, id: OptFitId = None, offset: Offset = 0, limit: Limit = 100):
    db = state.db
    if id is not None:
        _row_of(state, id)
    rows = db.history(id, offset=offset, limit=limit)
    gone = db.withdrawn([r.id for r in rows])
    return {"offset": offset, "limit": limit, "total": db.count() if id is None else None,
            "items": [{**r.to_dict(), "withdrawn": r.id in gone} for r in rows]}


@api.post("/decisions")
def decide(state: State, body: DecisionIn):
    cat, db = state.catalog, state.db
    _row_of(state, body.fit_id)
    rec = db.record(body.fit_id, body.decision, _annotator_of(state, body.annotator),
                    body.note, file_sha256=cat.file_sha256,
                    fit_digest=cat.digests[body.fit_id])
    st = db.status(body.fit_id, cat.digests[body.fit_id])
    return {"row": rec.to_dict(), "status": st.status if st else "unreviewed"}


@api.post("/undo")
def undo(state: State, body: UndoIn):
    cat, db = state.catalog, state.db
    if body.fit_id is not None:
        _row_of(state, body.fit_id)
    rec = db.undo(_annotator_of(state, body.annotator), body.fit_id,
                  file_sha256=cat.file_sha256)
    if rec is None:
        return {"row": None, "fit_id": None, "status": None}
    st = db.status(rec.fit_id, cat.digests.get(rec.fit_id))
    return {"row": rec.to_dict(), "fit_id": rec.fit_id,
            "status": st.status if st else "unreviewed"}
