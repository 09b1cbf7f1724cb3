"""Where the prior's synthetic-val error comes from: inputs, pose and shape, measured.

    python scripts/bench_prior_floor.py [--prior default] [--n 2000]

The issue's 60 mm target is the prior alone on the v1 val set (COCO-17 labels with
annotation noise, missing joints, truncation and dropped limbs; pose-bank val clips,
seed ``PRIOR_VAL_SEED``). This benchmark takes the same people and cameras and
switches the annotation model's faults off one group at a time:

- ``val (as kept)``: the v1 val set itself;
- ``no noise``: exact projections, joints still missing as in the val set;
- ``nothing missing``: the val set's noise, every COCO-17 joint present, no truncation;
- ``exact, complete``: neither (motion capture projected, as a studio set's 2D is).

For each input condition the prior is scored alone, under EFT (the default
``open-prior`` recipe) and under SPIN's SMPLify started from it, and the prior's
output is split into its pose and its shape by swapping in the truth for one of them:

- ``prior pose, true shape``: what a perfect shape estimate would buy;
- ``true pose, prior shape`` and ``true pose, mean shape``: the error shape alone makes.

Writes ``scripts/results/bench_prior_floor.json`` and ``.md`` (PA-MPJPE-14 and MPJPE-14,
mm, hips-centred; one torch thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from eft.body import BodyModel
from eft.fitting import exemplar_batch, fit_method, fits_to_tensors
from eft.fitting.config import eft_preset
from eft.models import load_regressor
from eft.synthetic.exemplars import SyntheticConfig
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.augment import crop_inputs
from eft.train.evaluate import evaluate_bodies
from eft.train.prior import PRIOR_VAL_SEED, TensorSet, make_prior_set

RESULTS = Path(__file__).resolve().parent / "results"
_DEFAULT = SyntheticConfig()
#: Input conditions: the v1 val set's annotation model with faults switched off.
CONDITIONS: dict[str, SyntheticConfig] = {
    "val (as kept)": _DEFAULT,
    "no noise": dataclasses.replace(_DEFAULT, noise_scale=0.0),
    "nothing missing": dataclasses.replace(_DEFAULT.clean(), noise_scale=_DEFAULT.noise_scale),
    "exact, complete": _DEFAULT.clean(),
}


@torch.no_grad()
def prior_outputs(model, data: TensorSet) -> tuple[torch.Tensor, torch.Tensor]:
    """The prior's (rotmat (N, 24, 3, 3), betas (N, 10)), each person framed by its box."""
    model.eval()
    out = model(crop_inputs(data.kp_px, data.center, data.scale))
    return out.rotmat, out.betas


def condition_rows(model, body, poses, n: int, seed: int, config: SyntheticConfig,
                   preset: str) -> dict[str, dict[str, float]]:
    """Every row of one input condition (see the module docstring)."""
    synth = make_prior_set(poses, n, seed, body, config=config)
    data = TensorSet.from_synthetic(synth)
    rot, betas = prior_outputs(model, data)
    batch = exemplar_batch(list(synth.exemplars()))
    fitted = fits_to_tensors(fit_method("eft", model, body, batch, eft_preset(preset)))
    smplified = fits_to_tensors(fit_method("smplify", model, body, batch))
    gt_rot, gt_betas = data.rotmat, data.betas

    def score(r: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        m = evaluate_bodies(body, r, b, gt_rot, gt_betas)
        return {"pa_mpjpe_mm": m["pa_mpjpe_mm"], "mpjpe_mm": m["mpjpe_mm"]}

    return {
        "prior alone": score(rot, betas),
        f"EFT ({preset})": score(*fitted),
        "SMPLify (from the prior)": score(*smplified),
        "prior pose, true shape": score(rot, gt_betas),
        "true pose, prior shape": score(gt_rot, betas),
        "true pose, mean shape": score(gt_rot, torch.zeros_like(betas)),
    }


def markdown(r: dict) -> str:
    conds = list(r["results"])
    rows_names = list(r["results"][conds[0]])
    head = "| | " + " | ".join(conds) + " |"
    rows = [head, "|---|" + "---|" * len(conds)]
    for name in rows_names:
        rows.append(f"| {name} | " + " | ".join(
            f"{r['results'][c][name]['pa_mpjpe_mm']:.1f} / {r['results'][c][name]['mpjpe_mm']:.1f}"
            for c in conds) + " |")
    return (f"# bench_prior_floor: where the prior's synthetic-val error comes from\n\n"
            f"Command: `{r['command']}` ({r['date']}, {r['machine']}, "
            f"{r['seconds'] / 60:.1f} min).\n\n"
            f"Prior `{r['prior']}`, {r['n']} people of the v1 val set (pose-bank val clips, "
            f"seed {r['seed']}), the same people and cameras under each input condition "
            "(columns). Cells: PA-MPJPE-14 / MPJPE-14, mm, lower is better. The issue's "
            "60 mm target is the first cell.\n\n" + "\n".join(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="default")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--preset", default="open-prior", help="EFT recipe")
    ap.add_argument("--seed", type=int, default=PRIOR_VAL_SEED)
    ap.add_argument("--out", default="bench_prior_floor")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body = BodyModel.load()
    poses = load_pose_bank().val().poses
    model = load_regressor(args.prior)
    results = {}
    for name, config in CONDITIONS.items():
        results[name] = condition_rows(model, body, poses, args.n, args.seed, config,
                                       args.preset)
        print(name, json.dumps(results[name]), flush=True)
    out = {
        "command": "python scripts/bench_prior_floor.py"
                   + ("" if args.prior == "default" else f" --prior {args.prior}")
                   + ("" if args.n == 2000 else f" --n {args.n}")
                   + ("" if args.preset == "open-prior" else f" --preset {args.preset}")
                   + ("" if args.seed == PRIOR_VAL_SEED else f" --seed {args.seed}")
                   + ("" if args.out == "bench_prior_floor" else f" --out {args.out}"),
        "prior": args.prior, "preset": args.preset, "n": args.n, "seed": args.seed,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, 1 torch thread",
        "seconds": round(time.perf_counter() - t0, 1), "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
