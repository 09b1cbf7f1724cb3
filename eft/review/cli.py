"""``eft review``: serve the review app (needs the ``review`` extra)."""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import socket
from pathlib import Path

from .errors import ReviewError

__all__ = ["register", "default_annotator", "listen_socket"]


def default_annotator() -> str:
    """``$USER`` (letters, digits and ``_.@+-`` kept), else ``annotator``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    name = "".join(c for c in name if c.isascii() and (c.isalnum() or c in "_.@+-"))[:64]
    return name if name and name[0].isalnum() else "annotator"


def _review(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise ReviewError("eft review needs the 'review' extra: "
                          "pip install 'eft[review]'") from None
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .app import ReviewConfig, check_host, create_app, token_from_env

    token = token_from_env(args.token)
    check_host(args.host, token)
    db = Path(args.db) if args.db else Path(args.annotations).with_suffix(".review.sqlite")
    config = ReviewConfig(
        annotations=Path(args.annotations), images=Path(args.images), db=db,
        annotator=args.annotator or default_annotator(), host=args.host, port=args.port,
        token=token, cache_dir=Path(args.cache) if args.cache else None, model=args.model,
        overlay_size=args.overlay_size)
    sock = listen_socket(args.host, args.port)  # before anything is created or printed
    try:
        app = create_app(config)
        state = app.state.review
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{sock.getsockname()[1]}/"
        print(f"eft review: {len(state.catalog)} fits from {config.annotations}, decisions "
              f"in {config.db}, overlays cached in {state.overlays.cache_dir}")
        print(f"open {url}" + (f"?token={token}" if token else ""), flush=True)
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                               log_level="warning", access_log=False))
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``(host, port)``, for the server to listen on; ReviewError (one
    line, with a ``--port`` hint) when the port is taken or the address unusable."""
    if not 0 <= int(port) <= 65535:
        raise ReviewError(f"bad --port {port}: 0-65535")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ReviewError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ReviewError(f"port {port} on {host} is already in use (another eft review?);"
                              f" choose another with --port, e.g. --port {port + 1}") from None
        raise ReviewError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another "
                          "--host or --port") from None
    return sock


def register(subparsers) -> None:
    """Add ``eft review``."""
    p = subparsers.add_parser(
        "review", help="review fits in a browser: accept, reject, flag (decisions in SQLite)",
        description="Serve the review app: a queue of fits (worst first), each with its "
                    "mesh overlay, keypoint residuals and side view; keyboard: a accept, "
                    "r reject, f flag, n note, j/k next/previous, u undo (once the "
                    "overlay shows); c in the queue continues where you left off. "
                    "Decisions are bound to the exact fits judged.")
    p.add_argument("annotations", help="annotation file (any format eft reads)")
    p.add_argument("--images", required=True,
                   help="image root: images are read and served from inside it only")
    p.add_argument("--db", default=None,
                   help="review database, created when missing "
                        "(default: ANNOTATIONS with suffix .review.sqlite)")
    p.add_argument("--annotator", default=None,
                   help="default annotator name (default: $USER); the page can change it")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", default=None,
                   help="access token (default: $EFT_REVIEW_TOKEN); required off loopback")
    p.add_argument("--cache", default=None,
                   help="overlay cache folder (default: DB path + '.overlays')")
    p.add_argument("--model", default=os.environ.get("EFT_BODY_MODEL"),
                   help="body model for the overlays (default: $EFT_BODY_MODEL, else the "
                        "embedded open model)")
    p.add_argument("--overlay-size", type=int, default=320,
                   help="overlay tile size in px (default 320)")
    p.set_defaults(func=_review)
