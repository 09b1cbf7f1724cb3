"""``eft inspect``: counts, text histograms of quality, acceptance by reason, provenance."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._io import FileHeader
from .columns import Columns
from .record import MISSABLE

__all__ = ["Summary", "summarize", "text_histogram"]

_BAR = 40


def text_histogram(values: np.ndarray, edges: Sequence[float], label: str,
                   fmt: str = "{:g}") -> list[str]:
    """Lines ``[lo, hi)  count  ####`` for ``values`` binned by ``edges`` (the last bin
    is open above); NaN values are counted separately."""
    values = np.asarray(values, np.float64)
    nan = int(np.isnan(values).sum())
    v = values[~np.isnan(values)]
    edges = list(edges)
    counts = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else math.inf
        counts.append(int(((v >= lo) & (v < hi)).sum()))
    below = int((v < edges[0]).sum())
    top = max([below, *counts, 1])
    lines = [f"{label}:"]
    rows = []
    if below:
        rows.append((f"< {fmt.format(edges[0])}", below))
    for i, lo in enumerate(edges):
        upper = edges[i + 1] if i + 1 < len(edges) else None
        name = (f"[{fmt.format(lo)}, {fmt.format(upper)})" if upper is not None
                else f">= {fmt.format(lo)}")
        rows.append((name, counts[i]))
    width = max(len(r[0]) for r in rows)
    for name, count in rows:
        bar = "#" * (round(_BAR * count / top) if count else 0)
        lines.append(f"  {name:<{width}}  {count:>8}  {bar}")
    if nan:
        lines.append(f"  {'n/a':<{width}}  {nan:>8}")
    return lines


@dataclass
class Summary:
    """Counts and quality values gathered over a file's batches."""

    header: FileHeader
    count: int = 0
    accepted: int = 0
    datasets: Counter = field(default_factory=Counter)
    reject_reasons: Counter = field(default_factory=Counter)
    flags_all: Counter = field(default_factory=Counter)
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, c: Columns) -> None:
        n = len(c)
        self.count += n
        q = c.quality
        self.accepted += int(q["accepted"].sum())
        for m in c.meta:
            self.datasets[str((m or {}).get("dataset") or "?")] += 1
        for acc, flags in zip(q["accepted"], q["flags"], strict=True):
            for f in flags:
                self.flags_all[f] += 1
            if not acc:
                for f in flags or ("(no flag)",):
                    self.reject_reasons[f] += 1
        for k in ("loss_2d_final", "reproj_px", "iterations", "max_abs_beta"):
            self.values.setdefault(k, []).append(np.asarray(q[k], np.float64))

    def _col(self, key: str) -> np.ndarray:
        parts = self.values.get(key) or [np.zeros(0)]
        return np.concatenate(parts)

    def lines(self) -> list[str]:
        h = self.header
        out = [f"format: {h.format}   schema version: {h.schema_version or 'none (foreign file)'}"
               f"   fits: {self.count}"]
        if h.missing:
            out.append("not in this file: " + "; ".join(
                f"{k} ({MISSABLE.get(k, k)})" for k in sorted(h.missing)))
        out.append("datasets: " + ", ".join(f"{k} {v}" for k, v in self.datasets.most_common()))
        if "quality" in h.missing:
            out.append("quality: not stored in this format")
        else:
            rej = self.count - self.accepted
            pct = 100.0 * self.accepted / self.count if self.count else 0.0
            out.append(f"accepted: {self.accepted} ({pct:.1f}%)   rejected: {rej}")
            if self.reject_reasons:
                out.append("rejected by reason (a fit may have several): " + ", ".join(
                    f"{k} {v}" for k, v in self.reject_reasons.most_common()))
            if self.flags_all:
                out.append("flags over all fits: " + ", ".join(
                    f"{k} {v}" for k, v in self.flags_all.most_common()))
            out += text_histogram(self._col("loss_2d_final"),
                                  [0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
                                  "final 2D loss (EFT units)")
            out += text_histogram(self._col("reproj_px"), [0, 2, 5, 10, 20, 40, 80],
                                  "mean reprojection error (px)")
            out += text_histogram(self._col("iterations"), [0, 1, 5, 10, 15, 20, 21],
                                  "iterations")
            out += text_histogram(self._col("max_abs_beta"), [0, 0.5, 1, 2, 3],
                                  "max |beta|")
        out.append("provenance:")
        out += ["  " + line for line in _provenance_lines(h.provenance)]
        return out


def _provenance_lines(p) -> list[str]:
    lines = [f"created: {p.created}   eft version: {p.eft_version}"]
    bm = p.body_model or {}
    lines.append(f"body model: {bm.get('name', 'unknown')}  sha256 {bm.get('sha256') or '?'}")
    rg = p.regressor or {}
    lines.append(f"regressor: {rg.get('name', 'unknown')}  sha256 {rg.get('sha256') or '?'}"
                 + (f" (of the {rg['hash_of']})" if rg.get("hash_of") else ""))
    lines.append(f"dataset: {p.dataset or '?'}   split: {p.split or '?'}")
    lines.append(f"camera: {p.camera.get('name')}  focal {p.camera.get('focal_length')}  "
                 f"crop {p.camera.get('img_res')} px")
    if p.config:
        lines.append(f"config ({p.config.get('type') or 'dict'}): "
                     + json.dumps(p.config.get("values"), separators=(",", ":")))
    else:
        lines.append("config: not recorded")
    if p.extra:
        lines.append("extra: " + json.dumps(p.extra, separators=(",", ":"), default=str))
    return lines


def summarize(header: FileHeader, batches: Iterable[Columns]) -> Summary:
    s = Summary(header)
    for c in batches:
        s.add(c)
    return s
