"""What one review server is: its settings (:class:`ReviewConfig`) and what its
handlers share (:class:`ReviewState`, built by :func:`build_state`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog
from .db import ReviewDB, check_annotator
from .errors import ReviewError
from .middleware import check_host
from .overlay import OverlayCache
from .paths import check_image_root

__all__ = ["ReviewConfig", "ReviewState", "build_state"]


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
    """What the handlers share: settings, fits, database, overlays.

    ``image_problems`` remembers, per catalogue row, why its image cannot be shown
    (see :func:`eft.review.routes.image_problem`)."""

    config: ReviewConfig
    catalog: Catalog
    db: ReviewDB
    overlays: OverlayCache
    image_root: Path
    hosts: frozenset[str] | None = field(default=None)
    image_problems: dict[int, str | None] = field(default_factory=dict)


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
    overlays.body  # noqa: B018 - a bad --model is an error now, not a 500 on first use
    return ReviewState(config, catalog, db, overlays, root, _host_names(config))
