"""What a keypoint prior's size costs EFT per exemplar: the same exemplars fitted with
each prior, with the default engine and the ``open-prior`` recipe, timed in one run.

    python scripts/bench_prior_cost.py --priors keypoint-prior-v2,keypoint-prior-v9

The priors are timed in turns (``--rounds`` times each, interleaved), so a shared
machine's noise falls on all of them alike; the report gives each one's median
milliseconds per exemplar and its ratio to the first prior, measured in the same run.
Writes ``scripts/results/<--out>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from eft.body import BodyModel
from eft.fitting import exemplar_batch, fit
from eft.fitting.config import eft_preset
from eft.models.registry import load_regressor, regressor_path
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", default="keypoint-prior-v2,keypoint-prior-v8,keypoint-prior-v9",
                    help="comma-separated prior names or .pt files; the first is the baseline")
    ap.add_argument("--n", type=int, default=256, help="exemplars (synthetic, val clips)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench_prior_cost")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    body = BodyModel.load()
    poses = load_pose_bank().val().poses
    exemplars = list(generate(poses, args.n, args.seed, body=body).exemplars())
    targets = exemplar_batch(exemplars)
    cfg = eft_preset("open-prior")
    names = [p.strip() for p in args.priors.split(",") if p.strip()]
    models = {p: load_regressor(p) for p in names}
    params = {p: sum(t.numel() for t in m.parameters()) for p, m in models.items()}
    times: dict[str, list[float]] = {p: [] for p in names}
    iters: dict[str, float] = {}
    fit(models[names[0]], body, exemplar_batch(exemplars[:8]), cfg, progress=False)  # warm-up
    for _ in range(args.rounds):
        for p in names:
            t0 = time.perf_counter()
            fits = fit(models[p], body, targets, cfg, batch_size=args.batch_size,
                       progress=False)
            times[p].append(time.perf_counter() - t0)
            iters[p] = statistics.mean(f.quality.iterations for f in fits)
    base = statistics.median(times[names[0]])
    rows = []
    for p in names:
        med = statistics.median(times[p])
        rows.append({"prior": p, "file": regressor_path(p).name, "parameters": params[p],
                     "ms_per_exemplar": 1000 * med / args.n, "ratio": med / base,
                     "mean_iterations": iters[p], "seconds": times[p]})
    result = {"command": "python scripts/bench_prior_cost.py --priors " + args.priors,
              "n": args.n, "batch_size": args.batch_size, "rounds": args.rounds,
              "threads": args.threads, "machine": f"{platform.processor() or platform.machine()}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch": torch.__version__, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# {args.out}: EFT cost per exemplar by prior size", "",
             f"Command: `{result['command']}`; {args.n} synthetic val exemplars, batch "
             f"{args.batch_size}, `open-prior` recipe, {args.threads} thread(s), median of "
             f"{args.rounds} interleaved rounds, {result['date']}.", "",
             "| prior | parameters | ms / exemplar | ratio to first | mean iterations |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['prior']} | {r['parameters']:,} | {r['ms_per_exemplar']:.1f} | "
                     f"{r['ratio']:.2f} | {r['mean_iterations']:.1f} |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
