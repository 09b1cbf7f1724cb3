"""Jobs that mix exact studio labels with annotated photos: what ``eft.preset: auto``
makes of them with one recipe per job and with each dataset's own recipe
(``recipe_per_dataset``, the default).

    python scripts/bench_mixed_jobs.py [--n 256] [--exact 32,128,224]

Each job is a real ``eft fit`` job (``eft.jobs.run_job``, one process) of two synthetic
datasets from the pose bank's val clips: ``studio``, exact H36M-17 labels (no noise,
nothing missing) seen by studio cameras (``bench_auto_recipe.STUDIO_CAMERA``), and
``photos``, annotated COCO-17 labels (the v2 prior's synthetic annotation model: noise,
missing joints, truncation, dropped limbs; photo cameras).  For each share of exact
people it runs the job twice, with ``recipe_per_dataset`` false (one recipe, from the
pooled pilot: how jobs ran before 2026-12-07) and true, and reports the recipe each
part was fitted with and each part's PA-MPJPE-14 (mm) against the true bodies.

Writes ``scripts/results/bench_mixed_jobs.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from bench_auto_recipe import STUDIO_CAMERA
from bench_eft_formats import errors, true_joints14, write_results

from eft.annotations import read_annotations
from eft.body import BodyModel
from eft.jobs import config_from_dict, run_job
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.evaluate import pose_joints
from eft.train.prior import PRIOR_VAL_SEED, V2_SYNTHETIC

#: The two kinds of labels: (dataset name, seed, synthetic config).
STUDIO = ("studio", PRIOR_VAL_SEED, dataclasses.replace(
    V2_SYNTHETIC.clean(), annotate="h36m17_spin", **STUDIO_CAMERA))
PHOTOS = ("photos", PRIOR_VAL_SEED + 1, dataclasses.replace(V2_SYNTHETIC, annotate="coco17"))


def dataset(kind: tuple, n: int) -> dict:
    name, seed, cfg = kind
    return {"kind": "synthetic", "name": name,
            "options": {"n": n, "seed": seed, "poses": "val", **cfg.to_dict()}}


def truth(kind: tuple, n: int, poses, body) -> dict[str, torch.Tensor]:
    """{id as the job names it: (14, 3) true joints} of a dataset's people."""
    name, seed, cfg = kind
    sset = generate(poses, n, seed, cfg, body=body)
    ids = [f"{name}/{e.id.split('/', 1)[-1]}" for e in sset.exemplars()]
    return dict(zip(ids, true_joints14(sset, body), strict=True))


def run(n_exact: int, n: int, per_dataset: bool, out: Path) -> dict:
    """One job; {part: (recipe, ids)} and the result."""
    cfg = config_from_dict({
        "datasets": [dataset(STUDIO, n_exact), dataset(PHOTOS, n - n_exact)],
        "output": {"dir": str(out), "formats": ["h5"]}, "devices": ["cpu"],
        "threads": torch.get_num_threads(), "recipe_per_dataset": per_dataset})
    t0 = time.perf_counter()
    result = run_job(cfg, progress=False)
    return {"result": result, "seconds": time.perf_counter() - t0}


def score(result, gt: dict[str, torch.Tensor], body) -> dict[str, float]:
    """Mean PA-MPJPE-14 (mm) of each dataset's people."""
    records = read_annotations(result.summary.outputs["h5"])
    rot = torch.as_tensor(np.stack([r.fit.rotmat for r in records]), dtype=torch.float32)
    betas = torch.as_tensor(np.stack([r.fit.betas for r in records]), dtype=torch.float32)
    pred = pose_joints(body, rot, betas)[0]
    ids = [r.exemplar.id for r in records]
    err = errors(pred, torch.stack([gt[i] for i in ids]))["pa_mpjpe_mm"]
    out = {}
    for part in (STUDIO[0], PHOTOS[0]):
        rows = [k for k, i in enumerate(ids) if i.startswith(part + "/")]
        out[part] = round(float(err[rows].mean()), 2) if rows else None
    return out


def recipes(result) -> dict[str, str]:
    """The recipe each dataset was fitted with."""
    auto = result.summary.recipe_auto
    own = auto.get("datasets") or {}
    return {part: own[part]["recipe"] if part in own else auto["recipe"]
            for part in (STUDIO[0], PHOTOS[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="people per job")
    ap.add_argument("--exact", default="32,128,224", help="exact people per job")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_mixed_jobs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    body = BodyModel.load()
    poses = load_pose_bank().val().poses
    shares = [int(k) for k in args.exact.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in shares:
            gt = {**truth(STUDIO, k, poses, body), **truth(PHOTOS, args.n - k, poses, body)}
            row: dict = {"exact": k, "annotated": args.n - k}
            for per_dataset in (False, True):
                got = run(k, args.n, per_dataset, Path(tmp) / f"{k}-{per_dataset}")
                key = "own" if per_dataset else "one"
                row[key] = {"recipes": recipes(got["result"]),
                            "pa_mpjpe_mm": score(got["result"], gt, body),
                            "seconds": round(got["seconds"], 1)}
                print(k, key, row[key], flush=True)
            rows.append(row)
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": platform.platform(), "threads": args.threads, "n": args.n,
           "command": f"python scripts/bench_mixed_jobs.py --n {args.n} --exact {args.exact}",
           "rows": rows}
    write_results(out, args.out, markdown(out))


def markdown(r: dict) -> str:
    lines = [
        "# Jobs mixing exact studio labels and annotated photos",
        "",
        f"`{r['command']}` ({r['date']}, {r['machine']}, {r['threads']} threads).",
        "",
        "Each job: one `eft fit` of two synthetic datasets, `studio` (exact H36M-17 labels, "
        "studio cameras) and `photos` (annotated COCO-17 labels), `eft.preset: auto`; "
        "PA-MPJPE-14 (mm) of each dataset's fits against the true bodies.",
        "",
        "| exact / annotated | one recipe per job (studio, photos) | studio mm | photos mm "
        "| each dataset its own (default) | studio mm | photos mm | time one / own (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        one, own = row["one"], row["own"]
        lines.append(
            f"| {row['exact']} / {row['annotated']} | {one['recipes']['studio']}, "
            f"{one['recipes']['photos']} | {one['pa_mpjpe_mm']['studio']} | "
            f"{one['pa_mpjpe_mm']['photos']} | {own['recipes']['studio']}, "
            f"{own['recipes']['photos']} | {own['pa_mpjpe_mm']['studio']} | "
            f"{own['pa_mpjpe_mm']['photos']} | {one['seconds']} / {own['seconds']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
