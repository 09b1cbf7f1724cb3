"""The review web app (FastAPI): a JSON API, the page, its script, and images.

Endpoints (JSON unless said otherwise; every query and body value is validated, bad ones
get 400/404/422 with ``{"error": "..."}``):

=====================================  ===============================================
``GET /``                              the page (``static/index.html``)
``GET /static/app.js``, ``app.css``    its script and style
``GET /api/info``                      file, provenance, counts, filter choices
``GET /api/fits``                      one page of the queue: ``sort``, ``status``,
                                       ``dataset``, ``flag``, ``offset``, ``limit``
``GET /api/fit?id=``                   one fit: quality, status, history, neighbours
                                       in the queue given by the same filters
``GET /api/overlay?id=``               its overlay panel (PNG, cached)
``GET /api/history``                   decision rows, paginated (``id`` for one fit)
``GET /api/progress``                  counts per status
``POST /api/decisions``                ``{"fit_id", "decision", "note", "annotator"}``
``POST /api/undo``                     ``{"annotator", "fit_id"?}``
``GET /images/{path}``                 an image file under the image root
=====================================  ===============================================

Security: see :func:`check_host` (loopback by default, a token otherwise), the
middleware in :func:`create_app` (token, Host header, JSON-only writes with a same-origin
check, no-sniff / frame / CSP headers) and :mod:`eft.review.paths` (image root only).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .catalog import Catalog
from .db import DECISIONS, STATUSES, ReviewDB, check_annotator
from .errors import ReviewError
from .overlay import OverlayCache
from .paths import check_image_root, locate_image, relative_to_root, resolve_under_root

__all__ = ["ReviewConfig", "ReviewState", "create_app", "check_host", "is_loopback",
           "TOKEN_COOKIE", "MIN_TOKEN_LENGTH"]

STATIC_DIR = Path(__file__).with_name("static")
_STATIC_FILES = {"app.js": "text/javascript; charset=utf-8",
                 "app.css": "text/css; charset=utf-8"}
TOKEN_COOKIE = "eft_review_token"
MIN_TOKEN_LENGTH = 16
MAX_PAGE = 500
_HISTORY_IN_FIT = 50
_PREFETCH = 3  # overlays the page loads ahead
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


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


Sort = Annotated[str, Query(max_length=16)]
Status = Annotated[str, Query(max_length=16)]
Dataset = Annotated[str, Query(max_length=200)]
Flag = Annotated[str, Query(max_length=64)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
FitId = Annotated[str, Query(min_length=1, max_length=512)]
OptFitId = Annotated[str | None, Query(min_length=1, max_length=512)]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str | None) -> None:
    """ReviewError unless ``host`` is loopback or a token of at least 16 characters is
    set."""
    if not host or any(c.isspace() for c in host):
        raise ReviewError(f"bad --host {host!r}")
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or any(
            not (c.isascii() and c.isprintable()) or c.isspace() for c in token)):
        raise ReviewError(f"--token must be at least {MIN_TOKEN_LENGTH} printable ASCII "
                          "characters without spaces")
    if not is_loopback(host) and not token:
        raise ReviewError(f"--host {host} is reachable from other machines: it needs "
                          "--token (or $EFT_REVIEW_TOKEN); e.g. python -c \"import secrets; "
                          "print(secrets.token_urlsafe())\"")


@dataclass(frozen=True)
class ReviewConfig:
    """Settings of one review server.

    Attributes:
        annotations: the annotation file.
        images: image root; only files inside it are read or served.
        db: the review database (created when missing).
        annotator: default annotator name (the page lets each browser set its own).
        host, port: where the server listens (``host`` is checked by :func:`check_host`).
        token: required on every request when set (``Authorization: Bearer``, the
            ``token`` query parameter once, then a cookie).
        cache_dir: overlay cache folder (default: ``<db>.overlays`` beside the database).
        model: body model for the overlays (default ``$EFT_BODY_MODEL`` / open model).
        overlay_size: tile side in px.
        allowed_hosts: accepted ``Host`` header names; default: any for a token-protected
            server, else ``localhost``, ``127.0.0.1``, ``[::1]`` and ``host``.
    """

    annotations: Path
    images: Path
    db: Path
    annotator: str = "annotator"
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    cache_dir: Path | None = None
    model: str | None = None
    overlay_size: int = 320
    allowed_hosts: tuple[str, ...] | None = None


@dataclass
class ReviewState:
    """What the handlers share: settings, fits, database, overlays."""

    config: ReviewConfig
    catalog: Catalog
    db: ReviewDB
    overlays: OverlayCache
    image_root: Path
    hosts: frozenset[str] | None = field(default=None)


def _host_names(config: ReviewConfig) -> frozenset[str] | None:
    if config.allowed_hosts is not None:
        return frozenset(h.lower() for h in config.allowed_hosts)
    if config.token:
        return None
    names = {"localhost", "127.0.0.1", "[::1]", config.host.lower()}
    if ":" in config.host and not config.host.startswith("["):
        names.add(f"[{config.host.lower()}]")
    return frozenset(names)


def build_state(config: ReviewConfig, catalog: Catalog | None = None) -> ReviewState:
    """Validate the settings, load the fits, open the database and the overlay cache."""
    check_host(config.host, config.token)
    if not 0 <= int(config.port) <= 65535:
        raise ReviewError(f"bad --port {config.port}")
    check_annotator(config.annotator)
    root = check_image_root(config.images)
    if catalog is None:
        catalog = Catalog.load(config.annotations)
    db = ReviewDB(config.db)
    cache = config.cache_dir or Path(f"{Path(config.db).expanduser()}.overlays")
    overlays = OverlayCache(catalog, root, cache, config.model, config.overlay_size)
    return ReviewState(config, catalog, db, overlays, root, _host_names(config))


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type=_STATIC_FILES.get(
        name, "text/html; charset=utf-8"))


def create_app(config: ReviewConfig, catalog: Catalog | None = None):
    """The FastAPI app for ``config`` (``catalog``: already loaded fits, optional)."""
    state = build_state(config, catalog)
    app = FastAPI(title="eft review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state
    cat, db = state.catalog, state.db

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status,
                            headers={"Cache-Control": "no-store"})

    @app.exception_handler(ReviewError)
    async def _review_error(request: Request, exc: ReviewError):
        return error(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:3]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error(422, "; ".join(parts))

    # -- middleware: token, Host, write origin, headers ----------------------------------

    token = config.token
    hosts = state.hosts

    def token_ok(request: Request) -> bool:
        if not token:
            return True
        auth = request.headers.get("authorization", "")
        sent = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(
            TOKEN_COOKIE, "")
        return bool(sent) and hmac.compare_digest(sent.encode(), token.encode())

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = (request.headers.get("host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if hosts is not None and name not in hosts:
            return error(400, "unexpected Host header")
        if token and not token_ok(request):
            given = request.query_params.get("token")
            if (given and request.method == "GET" and request.url.path == "/"
                    and hmac.compare_digest(given.encode(), token.encode())):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                resp = RedirectResponse("/" + (f"?{urlencode(rest)}" if rest else ""), 303)
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
                return resp
            return error(401, "this server needs its token: open the URL it printed, or "
                              "send 'Authorization: Bearer TOKEN'")
        if request.method not in ("GET", "HEAD"):
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return error(415, "send JSON (Content-Type: application/json)")
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc.lower() != host:
                return error(403, "cross-origin request refused")
            if origin == "null":
                return error(403, "cross-origin request refused")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", _CSP)
        if request.url.path.startswith("/api/") and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    # -- helpers -------------------------------------------------------------------------

    def row_of(fit_id: str) -> int:
        try:
            return cat.find(fit_id)
        except KeyError:
            raise _NotFound(f"no fit with id {fit_id[:80]!r}") from None

    @app.exception_handler(_NotFound)
    async def _not_found(request: Request, exc: _NotFound):
        return error(404, str(exc))

    def annotator_of(name: str | None) -> str:
        return check_annotator(name if name is not None else config.annotator)

    def image_url(i: int) -> str | None:
        path, name = cat.image_ref(i)
        found = locate_image(state.image_root, path, name)
        if found is None:
            return None
        rel = relative_to_root(state.image_root, found)
        return None if rel is None else "/images/" + "/".join(
            _quote(part) for part in rel.split("/"))


    problems: dict[int, str | None] = {}

    def image_problem(i: int) -> str | None:
        """``"missing"`` (not found under the image root), ``"unreadable"`` (found, but
        Pillow cannot read it) or None; remembered per fit."""
        if i not in problems:
            from PIL import Image

            path, name = cat.image_ref(i)
            found = locate_image(state.image_root, path, name)
            problem = None
            if found is None:
                problem = "missing"
            else:
                try:
                    with Image.open(found) as im:
                        im.verify()
                except Exception:  # noqa: BLE001 - any failure means: cannot be shown
                    problem = "unreadable"
            problems[i] = problem
        return problems[i]

    # -- pages ---------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index():
        return _page("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in _STATIC_FILES:
            return error(404, "not found")
        return _page(name)

    # -- API -----------------------------------------------------------------------------

    @app.get("/api/info")
    def info():
        prov = cat.provenance
        codes = cat.status_codes(db.statuses(cat.digests))
        return {
            "annotations": cat.path.name if cat.path else None,
            "file_sha256": cat.file_hash,
            "count": len(cat),
            "missing": sorted(cat.missing),
            "provenance": prov.to_dict() if hasattr(prov, "to_dict") else None,
            "body_note": state.overlays.body_note(),
            "default_annotator": config.annotator,
            "datasets": list(cat.dataset_names),
            "flags": list(cat.flag_names),
            "statuses": list(STATUSES),
            "decisions": list(DECISIONS),
            "sorts": ["quality", "id", "file"],
            "progress": cat.progress(codes),
            "stale_decisions": db.stale_count(cat.digests),
            "page_limit": MAX_PAGE,
        }

    @app.get("/api/progress")
    def progress():
        return cat.progress(cat.status_codes(db.statuses(cat.digests)))

    @app.get("/api/fits")
    def fits(sort: Sort = "quality", status: Status = "all", dataset: Dataset = "",
             flag: Flag = "", offset: Offset = 0, limit: Limit = 50):
        cat.check_filters(sort, status, dataset, flag)
        statuses = db.statuses(cat.digests)
        codes = cat.status_codes(statuses)
        rows = cat.ordered(sort, cat.mask(codes, status, dataset, flag))
        page = rows[offset:offset + limit]
        return {"total": int(rows.size), "offset": offset, "limit": limit,
                "sort": sort, "items": [cat.summary(int(i), statuses.get(cat.ids[i]))
                                        for i in page],
                "progress": cat.progress(codes)}

    @app.get("/api/fit")
    def fit(id: FitId, sort: Sort = "quality", status: Status = "all",
            dataset: Dataset = "", flag: Flag = ""):
        i = row_of(id)
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
            "image_url": image_url(i),
            "overlay_url": "/api/overlay?" + urlencode({"id": id}),
            "history": [{**r.to_dict(), "withdrawn": r.id in gone,
                         "other_fit": r.fit_digest != digest} for r in rows],
            "prev": None if prev is None else cat.ids[prev],
            "next": None if nxt is None else cat.ids[nxt],
            "upcoming": ["/api/overlay?" + urlencode({"id": cat.ids[k]}) for k in upcoming],
            "image_problem": image_problem(i),
            "position": cat.position(i, sort, mask),
            "matching": int(mask.sum()),
            "in_queue": bool(mask[i]),
        })
        return out

    @app.get("/api/overlay")
    def overlay(id: FitId):
        i = row_of(id)
        path = state.overlays.get(i)
        return FileResponse(path, media_type="image/png",
                            headers={"Cache-Control": "private, max-age=86400",
                                     "ETag": f'"{path.stem}"'})

    @app.get("/api/history")
    def history(id: OptFitId = None,
                offset: Offset = 0, limit: Limit = 100):
        if id is not None:
            row_of(id)
        rows = db.history(id, offset=offset, limit=limit)
        gone = db.withdrawn([r.id for r in rows])
        return {"offset": offset, "limit": limit, "total": db.count() if id is None else None,
                "items": [{**r.to_dict(), "withdrawn": r.id in gone} for r in rows]}

    @app.post("/api/decisions")
    def decide(body: DecisionIn):
        row_of(body.fit_id)
        rec = db.record(body.fit_id, body.decision, annotator_of(body.annotator), body.note,
                        file_sha256=cat.file_sha256, fit_digest=cat.digests[body.fit_id])
        st = db.status(body.fit_id, cat.digests[body.fit_id])
        return {"row": rec.to_dict(), "status": st.status if st else "unreviewed"}

    @app.post("/api/undo")
    def undo(body: UndoIn):
        if body.fit_id is not None:
            row_of(body.fit_id)
        rec = db.undo(annotator_of(body.annotator), body.fit_id,
                      file_sha256=cat.file_sha256)
        if rec is None:
            return {"row": None, "fit_id": None, "status": None}
        st = db.status(rec.fit_id, cat.digests.get(rec.fit_id))
        return {"row": rec.to_dict(), "fit_id": rec.fit_id,
                "status": st.status if st else "unreviewed"}

    @app.get("/images/{path:path}")
    def image(path: str):
        try:
            found = resolve_under_root(state.image_root, path)
        except ReviewError as exc:
            status = 404 if str(exc) == "image not found" else 400
            return error(status, str(exc))
        return FileResponse(found, headers={"Cache-Control": "private, max-age=3600"})

    return app


class _NotFound(Exception):
    """An id that is not in the annotation file (HTTP 404)."""


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def token_from_env(token: str | None) -> str | None:
    """``token``, else ``$EFT_REVIEW_TOKEN``, else None."""
    return token or os.environ.get("EFT_REVIEW_TOKEN") or None
