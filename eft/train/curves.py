"""Training curves from ``log.jsonl`` as a PNG (matplotlib, the ``viz`` extra)."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["read_log", "plot_log", "write_metrics_csv"]


def read_log(path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """``(train_entries, eval_entries)`` of a ``log.jsonl`` (bad lines are skipped)."""
    train: list[dict] = []
    evals: list[dict] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        (evals if entry.get("kind") == "eval" else train).append(entry)
    return train, evals


def write_metrics_csv(log_path: str | os.PathLike, csv_path: str | os.PathLike) -> Path:
    """``log.jsonl`` as a CSV table: one row per entry (``kind`` first, then every key in
    order of first appearance; empty cells where an entry lacks a key).  Written to a
    temporary name and renamed, so a reader never sees half a file."""
    import csv

    entries = []
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    columns: dict[str, None] = {"kind": None, "step": None}
    for e in entries:
        columns.update(dict.fromkeys(e))
    csv_path = Path(csv_path)
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), restval="")
        writer.writeheader()
        for e in entries:
            writer.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                             for k, v in e.items()})
    os.replace(tmp, csv_path)
    return csv_path


def plot_log(log_path: str | os.PathLike, png_path: str | os.PathLike) -> Path:
    """Loss (total and parts, log scale) and evaluation metrics against the step.
    Raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    train, evals = read_log(log_path)
    metrics = sorted({k for e in evals for k, v in e.items()
                      if k.endswith("_mm") and isinstance(v, (int, float))})
    ncols = 2 if metrics else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    steps = [e["step"] for e in train]
    if train:
        ax.plot(steps, [e["loss"] for e in train], lw=0.8, alpha=0.5, label="loss")
        ax.plot(steps, [e["loss_ema"] for e in train], lw=1.5, label="loss (EMA)")
        for part in ("kp2d", "kp3d", "rotmat", "betas", "cam"):
            vals = [e.get(f"loss_{part}", 0.0) for e in train]
            if any(v > 0 for v in vals):
                ax.plot(steps, vals, lw=0.8, ls="--", label=part)
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    if metrics:
        ax = axes[0, 1]
        for m in metrics:
            ax.plot([e["step"] for e in evals if m in e], [e[m] for e in evals if m in e],
                    marker="o", ms=3, label=m)
        ax.set_xlabel("step")
        ax.set_ylabel("mm")
        ax.set_title("evaluation")
        ax.legend(fontsize=7)
    fig.tight_layout()
    png = Path(png_path)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png
