"""``eft inspect FILE --png OUT.png``: a contact sheet of an annotation file.

One row per quality measure with its N worst fits (the image crop with the fitted mesh
and annotated-vs-fitted keypoints, labelled with the value), then histograms of the
final 2D loss, the reprojection error, max |beta| and the pose NLL (accepted and rejected
fits stacked, the rule's threshold dashed).  :func:`inspect_report` is the same content
for machines (``--json``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from eft.body import BodyModel
from eft.data.images import ImageError, load_image
from eft.render import RenderError, display_crop, grid, label, render_fit_panel, save_png
from eft.render.charts import histogram_chart, histogram_counts

from .columns import Columns
from .errors import AnnotationError

__all__ = ["MEASURES", "worst_rows", "inspect_report", "contact_sheet"]

#: Quality measures of the sheet: ``(column, title, log-scale histogram)``; larger is worse.
MEASURES: tuple[tuple[str, str, bool], ...] = (
    ("loss_2d_final", "final 2D loss", True),
    ("reproj_px", "reprojection error (px)", False),
    ("max_abs_beta", "max |beta|", False),
    ("pose_nll", "pose NLL (nats)", False),
)
_RULE_OF = {"loss_2d_final": "max_loss_2d", "max_abs_beta": "max_abs_beta",
            "pose_nll": "max_pose_nll"}


def worst_rows(columns: Columns, key: str, count: int) -> list[int]:
    """Rows of the ``count`` largest finite values of quality ``key`` (ties by row)."""
    v = np.asarray(columns.quality[key], np.float64)
    rows = np.flatnonzero(np.isfinite(v))
    order = rows[np.lexsort((rows, -v[rows]))]
    return [int(r) for r in order[:count]]


def _thresholds(provenance) -> dict[str, float]:
    """The acceptance thresholds the file's fits were judged by, when recorded."""
    cfg = getattr(provenance, "config", None) or {}
    values = cfg.get("values") if isinstance(cfg, dict) else None
    rules: dict = {}
    if isinstance(values, dict):
        eft = values.get("eft")
        eft = eft if isinstance(eft, dict) else values
        found = eft.get("rules")
        rules = found if isinstance(found, dict) else {}
    out = {}
    for key, rule in _RULE_OF.items():
        v = rules.get(rule)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[key] = float(v)
    return out


def inspect_report(header, columns: Columns, worst: int = 4, bins: int = 24) -> dict:
    """JSON-ready: counts, rejection reasons, per measure the worst fits and a histogram
    (``edges``, counts of ``accepted`` and ``rejected`` fits, ``n_nan``)."""
    q = columns.quality
    acc = np.asarray(q["accepted"], bool)
    reasons: dict[str, int] = {}
    for ok, flags in zip(acc, q["flags"], strict=True):
        if not ok:
            for f in flags or ("(no flag)",):
                reasons[f] = reasons.get(f, 0) + 1
    out = {"format": header.format, "fits": len(columns), "accepted": int(acc.sum()),
           "rejected": int((~acc).sum()),
           "rejected_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
           "missing": sorted(header.missing), "measures": {}}
    if "quality" in header.missing:
        return out
    thresholds = _thresholds(header.provenance)
    for key, title, log in MEASURES:
        v = np.asarray(q[key], np.float64)
        edges, _, n_nan = histogram_counts(v, bins, log=log)
        lo, hi = float(edges[0]), float(edges[-1])
        out["measures"][key] = {
            "title": title, "log_bins": log, "threshold": thresholds.get(key),
            "worst": [{"id": str(columns.fit_id[r]), "value": float(v[r]),
                       "accepted": bool(acc[r])} for r in worst_rows(columns, key, worst)],
            "histogram": {
                "edges": [float(e) for e in edges],
                "accepted": histogram_counts(v[acc], bins, log=log, lo=lo, hi=hi)[1].tolist(),
                "rejected": histogram_counts(v[~acc], bins, log=log, lo=lo, hi=hi)[1].tolist(),
                "n_nan": n_nan},
        }
    return out


def image_roots(header, images: str | os.PathLike | None = None,
                source: str | os.PathLike | None = None) -> list[Path]:
    """Folders to look up relative image paths under, in order: ``images``, the
    annotation file's own folder (``source``), the folder its job ran in, and the
    working folder.  A job writes image paths relative to the folder it ran in; that
    folder is ``source``'s minus the job's relative ``output.dir`` (from the file's
    provenance), where the file still sits there."""
    roots = [Path(images).expanduser()] if images else []
    if source is not None:
        folder = Path(source).expanduser().resolve().parent
        roots.append(folder)
        if folder.name.startswith("shard-"):  # a shard's output: OUT/shard-III-of-NNN
            folder = folder.parent
        job = (getattr(header.provenance, "extra", None) or {}).get("job") or {}
        out = ((job.get("config") or {}).get("output") or {}).get("dir")
        out_dir = Path(out) if isinstance(out, str) and out else None
        parts = out_dir.parts if out_dir is not None else ()
        if (out_dir is not None and not out_dir.is_absolute() and ".." not in parts
                and folder.parts[-len(parts):] == parts):
            roots.append(Path(*folder.parts[:-len(parts)]))
    roots.append(Path.cwd())
    return roots


def _image_for(columns: Columns, row: int, roots: list[Path]):
    path = columns.image_path[row]
    if not path:
        return None
    p = Path(str(path))
    candidates = [p] if p.is_absolute() else [r / p for r in roots]
    name = str((columns.meta[row] or {}).get("imageName") or "") if isinstance(
        columns.meta[row], dict) else ""
    if name:
        candidates += [r / name for r in roots]
    for c in candidates:
        if c.is_file():
            try:
                return load_image(c)
            except ImageError:
                return None
    return None


def _tile(columns: Columns, row: int, body, roots: list[Path], size: int, text: str):
    import torch

    ann = columns.take(np.array([row])).to_annotations()[0]
    image = _image_for(columns, row, roots)
    try:
        with torch.no_grad():
            panel = render_fit_panel(image, ann.fit, body.faces, ann.exemplar.keypoints,
                                     body=body, size=size, titles=False)
        tile = panel[:, :size]  # the crop with mesh and keypoints (not the side view)
    except (RenderError, ValueError) as exc:
        tile = label(display_crop(image, ann.exemplar.center, ann.exemplar.scale, size),
                     f"cannot draw: {exc}"[:60])
    if image is None:
        tile = label(tile, "image not found", color=(255, 255, 255), background=(160, 20, 20))
    plate = np.full((34, size, 3), 255, np.uint8)
    plate = label(plate, text, size=12)
    return np.concatenate([tile, plate], axis=0)


def contact_sheet(header, columns: Columns, png: str | os.PathLike, *, worst: int = 4,
                  images: str | os.PathLike | None = None, model=None, tile: int = 180,
                  source: str | os.PathLike | None = None) -> dict:
    """Draw the sheet to ``png`` and return :func:`inspect_report`.  Relative image paths
    are looked up under ``images``, else beside ``source`` (the annotation file), else in
    the working folder."""
    import warnings

    if "quality" in header.missing:
        raise AnnotationError("this file holds no fit quality (its format cannot): no "
                              "contact sheet by quality")
    report = inspect_report(header, columns, worst)
    roots = image_roots(header, images, source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = BodyModel.load(model)
    acc = np.asarray(columns.quality["accepted"], bool)
    rows = []
    for key, title, _ in MEASURES:
        v = np.asarray(columns.quality[key], np.float64)
        head = label(np.full((tile + 34, 150, 3), 255, np.uint8), "worst by", size=12)
        head[40:, :] = label(np.full((tile - 6, 150, 3), 255, np.uint8), title, size=12)
        tiles = [head]
        for r in worst_rows(columns, key, worst):
            verdict = "ok" if acc[r] else "REJ"
            tiles.append(_tile(columns, r, body, roots, tile,
                               f"{v[r]:.3g} {verdict} {str(columns.fit_id[r])[-18:]}"))
        rows.append(tiles)
    charts = []
    for key, title, log in MEASURES:
        v = np.asarray(columns.quality[key], np.float64)
        charts.append(histogram_chart([v[acc], v[~acc]], title=title, log=log,
                                      names=("accepted", "rejected"),
                                      marker=report["measures"][key]["threshold"],
                                      size=(2 * tile + 40, tile + 20)))
    file_name = Path(source).name if source is not None else "annotations"
    heading = label(np.full((28, 600, 3), 255, np.uint8),
                    f"{file_name}: {report['fits']} fits, {report['accepted']} accepted, "
                    f"{report['rejected']} rejected", size=15)
    sheet = grid([[heading], *rows, charts[:2], charts[2:]], gap=6)
    save_png(sheet, png)
    report["png"] = str(png)
    return report
