"""What measuring the labels' skeleton offsets is worth on exact labels whose skeleton
defines its joints unlike the body model (a studio set's may).

    python scripts/bench_skeleton_offsets.py            # 256 people per set, ~10 min

For each set of synthetic val people (exact H36M-17 labels, or a quarter or half of
COCO's annotation noise; studio or photo cameras; everyday poses, or everyone lying or
bent over, the poses the fitter reproduces worst, where offsets the skeleton does not
have could be read), the labels' skeleton is moved from the body
model's as ``bench_auto_recipe`` moves it: the torso slots 1-3 times
(``studio_offsets``: H36M head +10 %, jaw +6 %, spine +5 %, thorax -5 % of the torso,
hips 15 % of the hip width outward and 5 % down) and/or every elbow, wrist, knee and
ankle 3 cm further along its bone (``limb_offsets``).  Then, as ``eft fit`` with
``eft.preset: auto`` runs it:

1. the two pilots pick the recipe; the second one (``open-prior-exact``) also measures
   the skeleton offsets from its own fits (no 3D truth);
2. every person is fitted by the picked recipe with the offsets taken out
   (``EFTConfig.skeleton_offsets``), and, for comparison, without them (the recipe as it
   was before) and by SMPLify.

PA-MPJPE-14 (mm) against the true bodies' joints (the body model's definition).
Writes ``scripts/results/bench_skeleton_offsets.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch
from bench_auto_recipe import limb_offsets, pilot, studio_offsets, synthetic_set
from bench_eft_formats import errors, restrict, true_joints14, write_results

from eft.body import BodyModel
from eft.fitting import exemplar_batch, fit_method, fits_to_tensors
from eft.fitting.auto import auto_config
from eft.models import load_regressor
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.evaluate import pose_joints

#: (labels, cameras, torso offsets multiple, limb offset in cm)
SETS = (("exact", "studio", 0, 0), ("exact", "studio", 1, 0), ("exact", "studio", 2, 0),
        ("exact", "studio", 3, 0), ("exact", "studio", 0, 3), ("exact", "studio", 1, 3),
        ("exact", "photo", 0, 0), ("exact", "photo", 1, 0), ("exact", "photo", 2, 0),
        ("exact", "photo", 3, 0), ("0.25", "studio", 0, 0), ("0.25", "studio", 1, 0),
        ("0.25", "studio", 3, 0), ("0.5", "studio", 0, 0),
        ("exact", "photo, lying", 0, 0), ("exact", "photo, bent over", 0, 0),
        ("0.5", "photo, lying", 0, 0), ("0.5", "photo, bent over", 0, 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="synthetic people per set")
    ap.add_argument("--out", default="bench_skeleton_offsets")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body, model = BodyModel.load(), load_regressor("default")
    poses = load_pose_bank().val().poses
    rows = []
    cache: dict = {}
    for cond, camera, k, cm in SETS:
        if (cond, camera) not in cache:
            val = synthetic_set(poses, body, cond, args.n, camera)
            cache[(cond, camera)] = (val, true_joints14(val, body),
                                     restrict(list(val.exemplars()), "h36m17_spin"))
        val, gt14, base = cache[(cond, camera)]
        people = limb_offsets(val, base, cm) if cm else base
        people = [studio_offsets(e, k) for e in people] if k else people
        t = time.perf_counter()
        pick, choice = pilot(model, body, people)
        batch = exemplar_batch(people)
        with_offsets = auto_config(choice)
        without = auto_config(dataclasses.replace(choice, skeleton_offsets=()))
        pa = {}
        for name, cfg in (("auto", with_offsets), ("auto without offsets", without)):
            if name == "auto without offsets" and cfg == with_offsets:
                pa[name] = pa["auto"]
                continue
            fits = fit_method("eft", model, body, batch, cfg)
            pa[name] = errors(pose_joints(body, *fits_to_tensors(fits))[0], gt14)["pa_mpjpe_mm"]
        fits = fit_method("smplify", model, body, batch, None)
        pa["smplify"] = errors(pose_joints(body, *fits_to_tensors(fits))[0], gt14)["pa_mpjpe_mm"]
        gain = pa["auto"] - pa["auto without offsets"]
        row = {"labels": cond, "camera": camera, "torso_offsets": k, "limb_cm": cm,
               "pick": pick, "slots": [r[0] for r in choice.skeleton_offsets],
               "offsets": [list(r) for r in choice.skeleton_offsets],
               **{f"pa_{m.replace(' ', '_')}": float(v.mean()) for m, v in pa.items()},
               "gain": float(gain.mean()),
               "gain_se": float(gain.std(ddof=1) / np.sqrt(len(gain))),
               "auto_vs_smplify_pct": float(100 * (pa["auto"].mean() / pa["smplify"].mean()
                                                   - 1)),
               "seconds": round(time.perf_counter() - t, 1)}
        rows.append(row)
        print({k2: v for k2, v in row.items() if k2 != "offsets"}, flush=True)
    out = {"command": "python scripts/bench_skeleton_offsets.py"
           + ("" if args.n == 256 else f" --n {args.n}")
           + ("" if args.out == "bench_skeleton_offsets" else f" --out {args.out}"),
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()}, 1 torch thread", "n": args.n,
           "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    write_results(out, args.out, markdown(out))


def markdown(r: dict) -> str:
    lines = ["# bench_skeleton_offsets: the labels' skeleton, measured and taken out", "",
             f"Command: `{r['command']}` ({r['date']}, {r['machine']}, "
             f"{r['seconds'] / 60:.0f} min). {r['n']} synthetic val people per set, "
             "H36M-17 labels; PA-MPJPE-14 in mm against the body model's joints, lower is "
             "better. *auto*: the recipe `eft.preset: auto` picks, with the skeleton "
             "offsets its pilot measured taken out of the labels (today's job); *without*: "
             "the same recipe without them; gain ± standard error over people, paired.", "",
             "| labels | cameras | torso offsets | limb joints | recipe | slots measured | "
             "**auto** | without | SMPLify | gain | auto vs SMPLify |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        lines.append(
            f"| {x['labels']} | {x['camera']} | x{x['torso_offsets']} | "
            f"+{x['limb_cm']} cm | {x['pick']} | {len(x['slots'])} | "
            f"**{x['pa_auto']:.1f}** | {x['pa_auto_without_offsets']:.1f} | "
            f"{x['pa_smplify']:.1f} | {x['gain']:+.1f} ± {x['gain_se']:.1f} | "
            f"{x['auto_vs_smplify_pct']:+.0f} % |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
