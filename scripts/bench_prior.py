"""Benchmark the shipped keypoint priors on fixed synthetic val sets of unseen clips.

    python scripts/bench_prior.py [--n 2000] \
        [--checkpoints keypoint-prior-v1,keypoint-prior-v8,keypoint-prior-v9]

Every prior alone (one forward pass, no EFT), on people posed from the pose bank's 16
*val* clips, which no shipped prior was trained on:

* ``val``: the v1 validation set (default generator: COCO-17 labels with annotation
  noise, missing joints, truncation; seed ``PRIOR_VAL_SEED``), the set the issue's
  60 mm target refers to, kept exactly as it was;
* ``all slots, <format>``: people from the v2 generator (``V2_SYNTHETIC``, every slot
  annotated) with the input restricted to one keypoint format's slots, for every
  format the readers produce: what a dataset of that format gives the prior;
* ``variants``: seated, kneeling and bent-over people (``eft.synthetic.pose_variants``) from
  the same clips, all slots.

Writes scripts/results/bench_prior.json and bench_prior.md: MPJPE / PA-MPJPE (mm) on
14 LSP-style joints (and 24 joints for the v1 set), and the mean pose (the floor).
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
from eft.models import load_regressor
from eft.synthetic.exemplars import annotated_slots
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.data import concat_sets
from eft.train.prior import (
    INPUT_FORMATS,
    PRIOR_VAL_SEED,
    TensorSet,
    evaluate_mean_pose,
    evaluate_prior,
    make_prior_set,
    make_prior_v2_sets,
    metrics_table,
)

RESULTS = Path(__file__).resolve().parent / "results"


def restrict(data: TensorSet, fmt: str) -> TensorSet:
    """``data`` with the input keypoints outside ``fmt``'s slots removed."""
    import dataclasses

    mask = torch.as_tensor(annotated_slots(fmt))[None, :, None]
    return dataclasses.replace(data, kp_px=data.kp_px * mask)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-v2", type=int, default=1000, help="all-slot people (and 300 per "
                                                           "variant kind)")
    ap.add_argument("--checkpoints",
                    default="keypoint-prior-v1,keypoint-prior-v2,keypoint-prior-v3,"
                            "keypoint-prior-v4,keypoint-prior-v5,keypoint-prior-v6,keypoint-prior-v7,"
                            "keypoint-prior-v8,keypoint-prior-v9")
    ap.add_argument("--seed", type=int, default=PRIOR_VAL_SEED)
    ap.add_argument("--out", default=str(RESULTS / "bench_prior.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body = BodyModel.load()
    poses = load_pose_bank().val().poses
    val = TensorSet.from_synthetic(make_prior_set(poses, args.n, args.seed, body))
    v2 = make_prior_v2_sets(poses, args.n_v2, 300, args.seed, body)
    all_slots = TensorSet.from_synthetic(v2[0])
    sets = {"val (v1 set, COCO-17)": val}
    for fmt in INPUT_FORMATS:
        sets[f"all slots, {fmt}"] = restrict(all_slots, fmt)
    sets["variants (seated/kneeling/bending), all"] = concat_sets(
        [TensorSet.from_synthetic(s) for s in v2[1:]])
    results: dict = {}
    for spec in args.checkpoints.split(","):
        model = load_regressor(spec)
        results[spec] = {name: evaluate_prior(model, body, data) for name, data in sets.items()}
        results[spec]["mean pose (floor), v1 set"] = evaluate_mean_pose(model, body, val)
    result = {
        "results": results, "n": args.n, "n_v2": args.n_v2, "seed": args.seed,
        "val_set": "synthetic, pose-bank val clips (unseen)",
        "seconds": round(time.perf_counter() - t0, 1), "machine": platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": "python scripts/bench_prior.py",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    specs = list(results)
    rows = ["| input | " + " | ".join(f"{s} PA-MPJPE-14 / MPJPE-14" for s in specs) + " |",
            "|---|" + "---|" * len(specs)]
    for name in results[specs[0]]:
        rows.append(f"| {name} | " + " | ".join(
            f"{results[s][name]['pa_mpjpe_mm']:.1f} / {results[s][name]['mpjpe_mm']:.1f}"
            for s in specs) + " |")
    v1_tables = "\n\n".join(
        f"`{s}` on the v1 val set:\n\n" + metrics_table(
            {"prior": results[s]["val (v1 set, COCO-17)"],
             "mean pose (floor)": results[s]["mean pose (floor), v1 set"]}) for s in specs)
    md = (f"# bench_prior\n\n`python scripts/bench_prior.py` — {args.n} synthetic people "
          f"from pose-bank val clips (seed {args.seed}, the v1 val set), {args.n_v2} "
          f"all-slot people restricted to each input format, 900 seated/kneeling/bending "
          f"people; each prior alone (no EFT); errors in mm; {result['seconds']:.0f} s."
          f"\n\n" + "\n".join(rows) + "\n\n" + v1_tables + "\n")
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
