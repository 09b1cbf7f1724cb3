"""What a keypoint prior's size costs EFT per exemplar: the same exemplars fitted with
each prior, with the default engine and the ``open-prior`` recipe (or others), timed in
one run.

    python scripts/bench_prior_cost.py --priors keypoint-prior-v2,keypoint-prior-v9
    python scripts/bench_prior_cost.py --priors keypoint-prior-v9 \
        --recipes "open-prior|lr=2e-5,max_iters=10|scope=head"

``--recipes`` (``|``-separated, each a preset's name or ``key=value`` overrides over
``open-prior``) times each prior with each recipe.  The rows are timed in turns
(``--rounds`` times each, interleaved), so a shared machine's noise falls on all of them
alike; the report gives each one's median milliseconds per exemplar and its ratio to the
first row, measured in the same run.
Writes ``scripts/results/<--out>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from eft.body import BodyModel
from eft.fitting import exemplar_batch, fit
from eft.fitting.config import EFT_PRESETS, EFTConfig, eft_preset
from eft.models.registry import load_regressor, regressor_path
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eft_formats import parse_overrides  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_recipe(text: str) -> EFTConfig:
    """A preset's name (``"open-prior"``, ``"open-prior-v2"``, ...) or ``"key=value,..."``
    overrides over ``open-prior`` (any :class:`EFTConfig` key; ``0`` / ``1`` for a
    switch), as an :class:`EFTConfig`."""
    if text.strip() in EFT_PRESETS:
        return eft_preset(text.strip())
    overrides = parse_overrides([part.strip() for part in text.split(",")])
    defaults = EFTConfig()
    for key, value in overrides.items():
        if not hasattr(defaults, key):
            raise SystemExit(f"unknown recipe key {key!r}; known: "
                             f"{sorted(f.name for f in dataclasses.fields(EFTConfig))}")
        if isinstance(getattr(defaults, key), bool):
            overrides[key] = bool(value)
    return eft_preset("open-prior", **overrides)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", default="keypoint-prior-v2,keypoint-prior-v8,keypoint-prior-v9",
                    help="comma-separated prior names or .pt files; the first is the baseline")
    ap.add_argument("--n", type=int, default=256, help="exemplars (synthetic, val clips)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipes", default="open-prior",
                    help="'|'-separated recipes: a preset's name or key=value,... overrides "
                         "over open-prior (lr, max_iters, scope, with_ankles)")
    ap.add_argument("--out", default="bench_prior_cost")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    body = BodyModel.load()
    poses = load_pose_bank().val().poses
    exemplars = list(generate(poses, args.n, args.seed, body=body).exemplars())
    targets = exemplar_batch(exemplars)
    recipes = {r.strip(): parse_recipe(r) for r in args.recipes.split("|") if r.strip()}
    names = [p.strip() for p in args.priors.split(",") if p.strip()]
    models = {p: load_regressor(p) for p in names}
    params = {p: sum(t.numel() for t in m.parameters()) for p, m in models.items()}
    cells = [(p, r) for p in names for r in recipes]
    times: dict[tuple[str, str], list[float]] = {c: [] for c in cells}
    iters: dict[tuple[str, str], float] = {}
    fit(models[names[0]], body, exemplar_batch(exemplars[:8]), recipes[cells[0][1]],
        progress=False)  # warm-up
    for _ in range(args.rounds):
        for p, r in cells:
            t0 = time.perf_counter()
            fits = fit(models[p], body, targets, recipes[r], batch_size=args.batch_size,
                       progress=False)
            times[p, r].append(time.perf_counter() - t0)
            iters[p, r] = statistics.mean(f.quality.iterations for f in fits)
    base = statistics.median(times[cells[0]])
    rows = []
    for p, r in cells:
        med = statistics.median(times[p, r])
        rows.append({"prior": p, "recipe": r, "file": regressor_path(p).name,
                     "parameters": params[p], "ms_per_exemplar": 1000 * med / args.n,
                     "ratio": med / base, "mean_iterations": iters[p, r],
                     "seconds": times[p, r]})
    command = "python scripts/bench_prior_cost.py --priors " + args.priors
    if args.recipes != "open-prior":
        command += f' --recipes "{args.recipes}"'
    result = {"command": command,
              "n": args.n, "batch_size": args.batch_size, "rounds": args.rounds,
              "threads": args.threads, "machine": f"{platform.processor() or platform.machine()}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch": torch.__version__, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# {args.out}: EFT cost per exemplar by prior size", "",
             f"Command: `{result['command']}`; {args.n} synthetic val exemplars, batch "
             f"{args.batch_size}, {args.threads} thread(s), median of "
             f"{args.rounds} interleaved rounds, {result['date']}.", "",
             "| prior | recipe | parameters | ms / exemplar | ratio to first | mean iterations |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['prior']} | {r['recipe']} | {r['parameters']:,} | "
                     f"{r['ms_per_exemplar']:.1f} | {r['ratio']:.2f} | "
                     f"{r['mean_iterations']:.1f} |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
