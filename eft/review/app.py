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

The app is assembled here from three parts: :mod:`eft.review.state` (settings and what
the handlers share), :mod:`eft.review.middleware` (error replies and the request guard)
and :mod:`eft.review.routes` (the routers).

Security: see :func:`check_host` (loopback by default, a token otherwise), the
:class:`~eft.review.middleware.RequestGuard` middleware (token, Host header, JSON-only
writes with a same-origin check, no-sniff / frame / CSP headers) and
:mod:`eft.review.paths` (image root only).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from . import middleware, routes
from .catalog import Catalog
from .middleware import MIN_TOKEN_LENGTH, TOKEN_COOKIE, check_host, is_loopback
from .state import ReviewConfig, ReviewState, build_state

__all__ = ["ReviewConfig", "ReviewState", "create_app", "check_host", "is_loopback",
           "TOKEN_COOKIE", "MIN_TOKEN_LENGTH", "build_state", "token_from_env"]


def create_app(config: ReviewConfig, catalog: Catalog | None = None) -> FastAPI:
    """The FastAPI app for ``config`` (``catalog``: already loaded fits, optional);
    its :class:`ReviewState` is ``app.state.review``."""
    state = build_state(config, catalog)
    app = FastAPI(title="eft review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state
    middleware.install(app, config.token, state.hosts)
    app.include_router(routes.pages)
    app.include_router(routes.api)
    app.include_router(routes.images)
    return app


def token_from_env(token: str | None) -> str | None:
    """``token``, else ``$EFT_REVIEW_TOKEN``, else None."""
    return token or os.environ.get("EFT_REVIEW_TOKEN") or None
