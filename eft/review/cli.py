"""``eft review``: serve the review app (needs the ``review`` extra)."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from .errors import ReviewError

__all__ = ["register", "default_annotator"]


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
    from .app import ReviewConfig, create_app, token_from_env

    token = token_from_env(args.token)
    db = Path(args.db) if args.db else Path(args.annotations).with_suffix(".review.sqlite")
    config = ReviewConfig(
        annotations=Path(args.annotations), images=Path(args.images), db=db,
        annotator=args.annotator or default_annotator(), host=args.host, port=args.port,
        token=token, cache_dir=Path(args.cache) if args.cache else None, model=args.model,
        overlay_size=args.overlay_size)
    app = create_app(config)
    state = app.state.review
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/"
    print(f"eft review: {len(state.catalog)} fits from {config.annotations}, decisions in "
          f"{config.db}, overlays cached in {state.overlays.cache_dir}")
    print(f"open {url}" + (f"?token={token}" if token else ""))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                access_log=False)
    return 0


def register(subparsers) -> None:
    """Add ``eft review``."""
    p = subparsers.add_parser(
        "review", help="review fits in a browser: accept, reject, flag (decisions in SQLite)",
        description="Serve the review app: a queue of fits (worst first), each with its "
                    "mesh overlay, keypoint residuals and side view; keyboard: a accept, "
                    "r reject, f flag, n note, j/k next/previous, u undo.")
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
