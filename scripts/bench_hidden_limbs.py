"""Does a prior place a hidden limb, or hedge? How fits draw the limb they were not shown.

    python scripts/bench_hidden_limbs.py                        # v7 and the default
    python scripts/bench_hidden_limbs.py --priors keypoint-prior-v6,default --methods regressor

``bench_real2d`` scores where a fit puts a hidden elbow and wrist (or knee and ankle).
A prior can lower that error without knowing more about the pose, by hedging: drawing
the unseen limb shorter in the image (pointing it along the view axis), which pulls the
hidden joints towards the middle of where they might be. This benchmark measures that
directly, on the held-out people of ``tune_eft.py`` (``--n`` per set, ``--seed``;
bench_real2d's protocol): every person is fitted twice, with its limb hidden (the held-out protocol,
:func:`eft.fitting.heldout.make_held_out`) and with every label shown (same crop), and
for the hidden limb's two bones (:data:`eft.fitting.heldout.LIMB_SEGMENTS`) it reports
(:func:`eft.fitting.heldout.limb_shape`):

* ``length``: the bone's projected length over its labelled length (median), hidden and
  seen; 1 is the label's own length. The seen fit's ratio says how the body model draws
  that bone when it has the joints; the hidden fit's ratio below it is the hedge.
* ``in-plane``: ``|v_xy| / |v|`` of the 3D bone (mean), hidden and seen.
* paired over the same people: the mean of ``hidden - seen`` of the length ratio (± its
  standard error over people).

Writes ``scripts/results/<--out>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from eft.body import BodyModel
from eft.fitting import exemplar_batch, fit_method
from eft.fitting.config import eft_preset
from eft.fitting.heldout import limb_shape
from eft.models import load_regressor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_eft import ROOT, held_out_people  # noqa: E402


def measure(model, body, people, method: str) -> dict:
    cfg = eft_preset("open-prior") if method == "eft" else None
    shown = [dataclasses.replace(h.exemplar, keypoints=h.labels) for h in people]
    hid = limb_shape(people, fit_method(method, model, body,
                                        exemplar_batch([h.exemplar for h in people]), cfg))
    seen = limb_shape(people, fit_method(method, model, body, exemplar_batch(shown), cfg))
    diff = np.nanmean(hid.length_ratio - seen.length_ratio, axis=1)  # per person
    diff = diff[np.isfinite(diff)]
    return {
        "length_hidden": float(np.nanmedian(hid.length_ratio)),
        "length_seen": float(np.nanmedian(seen.length_ratio)),
        "in_plane_hidden": float(np.nanmean(hid.in_plane)),
        "in_plane_seen": float(np.nanmean(seen.in_plane)),
        "length_hidden_minus_seen": float(diff.mean()),
        "length_hidden_minus_seen_se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
        "people": len(people),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", default="keypoint-prior-v7,default")
    ap.add_argument("--methods", default="regressor,eft")
    ap.add_argument("--n", type=int, default=1000, help="people per val set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench_hidden_limbs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body = BodyModel.load()
    held = held_out_people(args.n, args.seed)
    rows = {}
    for prior in args.priors.split(","):
        model = load_regressor(prior)
        for method in args.methods.split(","):
            for name, people in held.items():
                rows[f"{prior} | {method} | {name}"] = r = measure(model, body, people, method)
                print(prior, method, name, json.dumps({k: round(v, 4) for k, v in r.items()}),
                      flush=True)
    out = {"priors": args.priors, "methods": args.methods, "n": args.n, "seed": args.seed,
           "seconds": round(time.perf_counter() - t0, 1), "threads": 1,
           "machine": platform.processor() or platform.machine(), "rows": rows}
    res = ROOT / "scripts" / "results"
    (res / f"{args.out}.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [f"# {args.out}: how fits draw the limb they were not shown", "",
             f"Command: `python scripts/bench_hidden_limbs.py --priors {args.priors} "
             f"--methods {args.methods} --n {args.n} --out {args.out}`; "
             f"{out['seconds']:.0f} s on 1 thread.", "",
             "Each person fitted with one limb hidden (bench_real2d's protocol) and with "
             "every label shown (same crop). For the hidden limb's two bones: projected "
             "length / labelled length (median), and |v_xy| / |v| of the 3D bone (mean); "
             "paired: mean over people of the length ratio hidden minus seen (± se). "
             "A hedge draws the unseen limb shorter than the seen one.", "",
             "| prior | method | set | length hidden | length seen | hidden - seen (paired) "
             "| in-plane hidden | in-plane seen |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in rows.items():
        prior, method, name = key.split(" | ")
        lines.append(f"| {prior} | {method} | {name} | {r['length_hidden']:.3f} | "
                     f"{r['length_seen']:.3f} | {r['length_hidden_minus_seen']:+.3f} ± "
                     f"{r['length_hidden_minus_seen_se']:.3f} | {r['in_plane_hidden']:.3f} | "
                     f"{r['in_plane_seen']:.3f} |")
    (res / f"{args.out}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
