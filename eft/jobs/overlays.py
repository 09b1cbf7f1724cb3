"""Overlay PNGs of fits: the crop with the fitted mesh and annotated-vs-fitted
keypoints, next to a side view (``eft.render``, no OpenGL)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from eft.body import BodyModel
from eft.data.exemplar import Exemplar
from eft.data.images import ImageError, load_image
from eft.fitting.records import Fit
from eft.render import render_fit_panel, save_png

__all__ = ["write_overlays", "overlay_name", "overlay_choice"]

log = logging.getLogger("eft.jobs")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def overlay_name(exemplar_id: str) -> str:
    """A file name for an exemplar id (``coco/123`` -> ``coco_123.png``)."""
    return _UNSAFE.sub("_", exemplar_id).strip("_") + ".png"


def overlay_choice(fits: Sequence[Fit], count: int) -> list[int]:
    """Which fits to draw, in order: the fits the quality rules rejected, worst first, then
    the worst accepted ones; up to ``count`` of each.  Worst = largest reprojection error
    as a fraction of the box, then largest final 2D loss (NaN last), as in the review
    queue."""
    import math

    def badness(k: int) -> tuple:
        q = fits[k].quality
        frac, loss = float(q.reproj_frac_bbox), float(q.loss_2d_final)
        return (math.isnan(frac), -frac if not math.isnan(frac) else 0.0,
                -loss if not math.isnan(loss) else 0.0, fits[k].exemplar_id)

    rejected = sorted((k for k, f in enumerate(fits) if not f.quality.accepted), key=badness)
    accepted = sorted((k for k, f in enumerate(fits) if f.quality.accepted), key=badness)
    return rejected[:count] + accepted[:count]


def write_overlays(folder: Path, body_spec: str, fits: Sequence[Fit],
                   exemplars: Sequence[Exemplar], count: int, size: int = 256) -> list[Path]:
    """Draw the fits :func:`overlay_choice` picks (up to ``count`` rejected, worst first,
    then up to ``count`` worst accepted) whose exemplar has a readable image; returns the
    PNG paths.  Unreadable images are skipped with a warning."""
    if count <= 0:
        return []
    import torch

    body = BodyModel.load(None if body_spec == "default" else body_spec)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for k in overlay_choice(fits, count):
        fit, ex = fits[k], exemplars[k]
        if ex.image_path is None:
            continue
        try:
            image = load_image(ex.image_path)
        except ImageError as exc:
            log.warning("overlay of %s skipped: %s", ex.id, exc)
            continue
        with torch.no_grad():
            panel = render_fit_panel(image, fit, body.faces, ex.keypoints, body=body,
                                     size=size)
        path = folder / overlay_name(ex.id)
        save_png(panel, path)
        written.append(path)
    if written:
        log.info("wrote %d overlay(s) to %s: rejected fits first, then the worst accepted",
                 len(written), folder)
    return written
