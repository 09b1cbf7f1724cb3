"""Small charts drawn with Pillow alone (no matplotlib): a histogram and a bar chart, as
(H, W, 3) uint8 images that :func:`~eft.render.draw.grid` can place beside fit tiles.

Used by ``eft inspect --png`` (quality histograms) and ``eft eval`` (per-joint errors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import RenderError

__all__ = ["histogram_chart", "bar_chart", "histogram_counts", "CHART_COLORS"]

#: Bar colours: first series (e.g. accepted fits), second series (rejected fits).
CHART_COLORS: tuple[tuple[int, int, int], ...] = ((70, 120, 200), (215, 80, 60))
_AXIS = (60, 60, 60)
_GRID = (225, 225, 228)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    a = abs(v)
    return f"{v:.2e}" if a < 1e-2 or a >= 1e5 else f"{v:.3g}"


def histogram_counts(values: np.ndarray, bins: int = 24, *, log: bool = False,
                     lo: float | None = None, hi: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """``(edges (bins+1,), counts (bins,), n_nan)`` of the finite ``values``; ``log``:
    bins even in log10 (values <= 0 go to the first bin).  Values outside ``[lo, hi]`` are
    clipped into the outer bins."""
    v = np.asarray(values, np.float64).ravel()
    n_nan = int((~np.isfinite(v)).sum())
    v = v[np.isfinite(v)]
    if log:
        pos = v[v > 0]
        lo_v = lo if lo is not None else (float(pos.min()) if pos.size else 1e-6)
        hi_v = hi if hi is not None else (float(pos.max()) if pos.size else 1.0)
        lo_v, hi_v = max(lo_v, 1e-12), max(hi_v, lo_v * 10)
        edges = np.logspace(math.log10(lo_v), math.log10(hi_v), bins + 1)
    else:
        lo_v = lo if lo is not None else (float(v.min()) if v.size else 0.0)
        hi_v = hi if hi is not None else (float(v.max()) if v.size else 1.0)
        if hi_v <= lo_v:
            hi_v = lo_v + 1.0
        edges = np.linspace(lo_v, hi_v, bins + 1)
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)[:bins]
    return edges, counts, n_nan


def _frame(size: tuple[int, int], title: str):
    w, h = size
    pil = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(pil)
    draw.text((8, 4), title, fill=(20, 20, 20), font=_font(14))
    return pil, draw


def histogram_chart(series: Sequence[np.ndarray], *, title: str, bins: int = 24,
                    log: bool = False, names: Sequence[str] = (),
                    marker: float | None = None, size: tuple[int, int] = (360, 220)
                    ) -> np.ndarray:
    """Stacked histogram of one or more value arrays on shared bins -> (H, W, 3) uint8.

    ``names``: legend labels per series; ``marker``: a dashed vertical line (e.g. a
    rejection threshold); ``log``: log-spaced bins and axis.  NaN / inf are counted in
    the title as ``n/a``.
    """
    if not series:
        raise RenderError("histogram_chart needs at least one series")
    allv = np.concatenate([np.asarray(s, np.float64).ravel() for s in series])
    edges, _, n_nan = histogram_counts(allv, bins, log=log)
    stacks = [histogram_counts(s, bins, log=log, lo=float(edges[0]), hi=float(edges[-1]))[1]
              for s in series]
    total = np.sum(stacks, axis=0)
    top = max(int(total.max()) if total.size else 0, 1)
    w, h = size
    pil, draw = _frame(size, title + (f"  ({n_nan} n/a)" if n_nan else ""))
    small = _font(11)
    x0, x1, y0, y1 = 40, w - 10, 26, h - 30  # plot box
    for frac in (0.5, 1.0):
        y = y1 - frac * (y1 - y0)
        draw.line([(x0, y), (x1, y)], fill=_GRID)
        draw.text((4, y - 6), f"{frac * top:g}", fill=_AXIS, font=small)
    bw = (x1 - x0) / bins
    base = np.zeros(bins)
    for k, counts in enumerate(stacks):
        color = CHART_COLORS[k % len(CHART_COLORS)]
        for b in range(bins):
            if counts[b] == 0:
                continue
            ya = y1 - (base[b] + counts[b]) / top * (y1 - y0)
            yb = y1 - base[b] / top * (y1 - y0)
            draw.rectangle([x0 + b * bw + 1, ya, x0 + (b + 1) * bw - 1, yb], fill=color)
        base = base + counts
    draw.line([(x0, y1), (x1, y1)], fill=_AXIS)
    draw.line([(x0, y0), (x0, y1)], fill=_AXIS)
    for k, pos in enumerate((0, bins // 2, bins)):
        text = _fmt(float(edges[pos]))
        tw = draw.textlength(text, font=small)
        x = x0 + pos * bw - (0 if k == 0 else tw if k == 2 else tw / 2)
        draw.text((x, y1 + 4), text, fill=_AXIS, font=small)
    if log:
        draw.text((x0 + 4, y1 + 16), "log scale", fill=(120, 120, 120), font=small)
    if marker is not None and math.isfinite(marker) and edges[0] <= marker <= edges[-1]:
        if log:
            t = (math.log10(marker) - math.log10(edges[0])) / (
                math.log10(edges[-1]) - math.log10(edges[0]))
        else:
            t = (marker - edges[0]) / (edges[-1] - edges[0])
        xm = x0 + t * (x1 - x0)
        for y in range(int(y0), int(y1), 6):
            draw.line([(xm, y), (xm, min(y + 3, y1))], fill=(20, 20, 20), width=2)
    lx = x1
    for k, name in reversed(list(enumerate(names))):
        tw = draw.textlength(name, font=small)
        lx -= tw + 16
        draw.rectangle([lx, 8, lx + 9, 17], fill=CHART_COLORS[k % len(CHART_COLORS)])
        draw.text((lx + 12, 6), name, fill=_AXIS, font=small)
        lx -= 6
    return np.asarray(pil).copy()


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str,
              unit: str = "", size: tuple[int, int] | None = None) -> np.ndarray:
    """Horizontal bars, one per label, with the value written at the end
    -> (H, W, 3) uint8 (height grows with the number of bars)."""
    vals = np.asarray(values, np.float64)
    if len(labels) != len(vals) or not len(vals):
        raise RenderError(f"bar_chart needs one value per label, got {len(labels)} labels "
                          f"and {len(vals)} values")
    row = 18
    w, h = size or (520, 34 + row * len(vals) + 8)
    pil, draw = _frame((w, h), title)
    small = _font(12)
    left = int(max(draw.textlength(str(s), font=small) for s in labels)) + 14
    right = w - 70
    top = float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
    top = top if top > 0 else 1.0
    for k, (name, v) in enumerate(zip(labels, vals, strict=True)):
        y = 30 + k * row
        draw.text((6, y + 2), str(name), fill=_AXIS, font=small)
        if math.isfinite(v):
            x = left + max(v, 0.0) / top * (right - left)
            draw.rectangle([left, y + 3, x, y + row - 3], fill=CHART_COLORS[0])
            draw.text((x + 4, y + 2), f"{v:.1f}{unit}", fill=_AXIS, font=small)
        else:
            draw.text((left + 4, y + 2), "n/a", fill=_AXIS, font=small)
    draw.line([(left, 28), (left, 30 + row * len(vals))], fill=_AXIS)
    return np.asarray(pil).copy()
