"""Benchmark the embedded keypoint prior on a fixed synthetic val set of unseen clips.

    python scripts/bench_prior.py [--n 2000] [--checkpoint default]

Writes scripts/results/bench_prior.json and bench_prior.md: MPJPE / PA-MPJPE (mm) on 14
LSP-style joints and on all 24, for the prior and for the mean pose (the floor).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from eft.body import BodyModel
from eft.data.pose_bank import load_pose_bank
from eft.models import load_regressor
from eft.train.prior import (
    PRIOR_VAL_SEED,
    TensorSet,
    evaluate_mean_pose,
    evaluate_prior,
    make_prior_set,
    metrics_table,
)

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--seed", type=int, default=PRIOR_VAL_SEED)
    ap.add_argument("--out", default=str(RESULTS / "bench_prior.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    body = BodyModel.load()
    val = TensorSet.from_synthetic(
        make_prior_set(load_pose_bank().val().poses, args.n, args.seed, body))
    model = load_regressor(args.checkpoint)
    prior, floor = evaluate_prior(model, body, val), evaluate_mean_pose(model, body, val)
    result = {
        "prior": prior, "mean_pose": floor, "n": args.n, "seed": args.seed,
        "checkpoint": args.checkpoint, "val_set": "synthetic, pose-bank val clips (unseen)",
        "seconds": round(time.perf_counter() - t0, 1), "machine": platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": "python scripts/bench_prior.py",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    table = metrics_table({"prior": prior, "mean pose (floor)": floor})
    md = (f"# bench_prior\n\n`python scripts/bench_prior.py` — {args.n} synthetic exemplars "
          f"from pose-bank val clips (seed {args.seed}), errors in mm.\n\n{table}\n")
    out.with_suffix(".md").write_text(md)
    print(table)


if __name__ == "__main__":
    main()
