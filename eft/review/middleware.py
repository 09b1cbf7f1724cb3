"""The review server's guards and error replies: who may call it (loopback or a token,
an expected ``Host`` header), JSON-only same-origin writes, security headers on every
response, and one ``{"error": "..."}`` JSON shape for every failure.

:func:`install` puts both on a FastAPI app; :func:`check_host` validates the settings
before a server starts.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ReviewError

__all__ = ["TOKEN_COOKIE", "MIN_TOKEN_LENGTH", "CSP", "NotFound", "is_loopback",
           "check_host", "error_response", "RequestGuard", "install"]

TOKEN_COOKIE = "eft_review_token"
MIN_TOKEN_LENGTH = 16
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class NotFound(Exception):
    """An id that is not in the annotation file (HTTP 404)."""


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


#: Largest request body a write may send (a decision with its note is well under 4 KiB).
MAX_BODY_BYTES = 64 * 1024


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with HTTP ``status``, never cached."""
    return JSONResponse({"error": message}, status_code=status,
                        headers={"Cache-Control": "no-store"})


async def _review_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, str(exc))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for e in exc.errors()[:3]:
        if e.get("type") == "json_invalid":
            parts.append("the request body is not valid JSON")
            continue
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return error_response(422, "; ".join(parts))


class RequestGuard:
    """HTTP middleware: Host check, token (header, cookie, or ``/?token=`` once, which
    sets the cookie), JSON-only same-origin writes, then security headers and
    ``no-store`` on API responses.

    ``hosts``: accepted ``Host`` names, None for any; ``token``: None for none.
    """

    def __init__(self, token: str | None, hosts: frozenset[str] | None) -> None:
        self.token = token
        self.hosts = hosts

    def token_ok(self, request: Request) -> bool:
        """Whether the request carries the token (always true without one)."""
        if not self.token:
            return True
        auth = request.headers.get("authorization", "")
        sent = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(
            TOKEN_COOKIE, "")
        return bool(sent) and hmac.compare_digest(sent.encode(), self.token.encode())

    def refusal(self, request: Request, host: str):
        """The response that stops ``request`` here, or None to let it through."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.hosts is not None and name not in self.hosts:
            return error_response(400, "unexpected Host header")
        token = self.token
        if token and not self.token_ok(request):
            given = request.query_params.get("token")
            if (given and request.method == "GET" and request.url.path == "/"
                    and hmac.compare_digest(given.encode(), token.encode())):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                resp = RedirectResponse("/" + (f"?{urlencode(rest)}" if rest else ""), 303)
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
                return resp
            return error_response(401, "this server needs its token: open the URL it "
                                       "printed, or send 'Authorization: Bearer TOKEN'")
        if request.method == "POST":  # the API's only writes; other methods: 405
            length = request.headers.get("content-length")
            if length is None:  # a chunked body could be any size
                return error_response(411, "send Content-Length")
            try:
                size = int(length)
            except ValueError:
                return error_response(400, "bad Content-Length")
            if size > MAX_BODY_BYTES:
                return error_response(413, f"request body over {MAX_BODY_BYTES} bytes")
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return error_response(415, "send JSON (Content-Type: application/json)")
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc.lower() != host:
                return error_response(403, "cross-origin request refused")
            if origin == "null":
                return error_response(403, "cross-origin request refused")
        return None

    async def __call__(self, request: Request, call_next):
        host = (request.headers.get("host") or "").lower()
        refused = self.refusal(request, host)
        if refused is not None:
            return refused
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.url.path.startswith("/api/") and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response


def install(app: FastAPI, token: str | None, hosts: frozenset[str] | None) -> None:
    """Add the error handlers and the :class:`RequestGuard` middleware to ``app``."""
    app.add_exception_handler(ReviewError, _review_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFound, _not_found)
    app.middleware("http")(RequestGuard(token, hosts))
