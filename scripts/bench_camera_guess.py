"""``open-prior-exact`` when the image size is unknown: the camera guessed from the crop.

    python scripts/bench_camera_guess.py [--n 256]

The refinement under the image's own camera (``eft.fitting.perspective``) needs a focal
length and a principal point.  Readers give the image size when the annotation file or
the image's header has it; without one, :func:`~eft.fitting.perspective.image_camera`
guesses ``FOCAL_PER_CROP_SIDE`` crop sides (``200 * scale`` px) and the crop centre.
Measured on synthetic val people (``PRIOR_VAL_SEED``) with H36M-17 labels, seen by the
synthetic photo cameras (640-1280 px images, focal 500-2500 px) and by studio cameras
(``bench_auto_recipe.STUDIO_CAMERA``), exact and at a quarter / half of COCO's
annotation noise: PA-MPJPE-14 (mm) of ``open-prior-exact`` with the image size known
(focal = image diagonal, principal point = image centre), with it unknown (the guess),
of the blend alone (no refinement) and of SMPLify; what ``eft.preset: auto`` picks
either way (its pilot, with the camera median of ``with_perspective_check``); and, on
exact labels, the guess at other multiples of the crop side.

Writes ``scripts/results/bench_camera_guess.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch
from bench_auto_recipe import NO_CAMERA, method_config, pilot, synthetic_set
from bench_eft_formats import errors, restrict, true_joints14, write_results

from eft.body import BodyModel
from eft.fitting import exemplar_batch, fit_method, fits_to_tensors
from eft.fitting.perspective import FOCAL_PER_CROP_SIDE
from eft.models import load_regressor
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.evaluate import pose_joints

EXACT = "open-prior-exact"
#: Other focal guesses tried on exact labels, in crop sides.
MULTIPLES = (1.5, 2.0, 3.0, 4.0)


def without_size(people: list) -> list:
    return [dataclasses.replace(e, image_size=None) for e in people]


def with_guess(people: list, k: float) -> list:
    """``people`` without an image size, told a focal of ``k`` crop sides and the crop
    centre as their own camera."""
    return [dataclasses.replace(e, image_size=None,
                                meta={**(e.meta or {}), "focal": k * 200.0 * float(e.scale),
                                      "principal_point": tuple(float(v) for v in e.center)})
            for e in people]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="synthetic people per set")
    ap.add_argument("--out", default="bench_camera_guess")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body, model = BodyModel.load(), load_regressor("default")
    poses = load_pose_bank().val().poses
    rows = []
    for camera in ("studio", "photo"):
        for cond in ("exact", "0.25", "0.5"):
            val = synthetic_set(poses, body, cond, args.n, camera)
            gt14 = true_joints14(val, body)
            people = restrict(list(val.exemplars()), "h36m17_spin")
            ratio = np.array([val.focal[i] / (200.0 * e.scale) for i, e in enumerate(people)])

            def pa(ppl: list, m: str, gt14=gt14) -> float:
                fits = fit_method("smplify" if m == "smplify" else "eft", model, body,
                                  exemplar_batch(ppl), method_config(m))
                return float(errors(pose_joints(body, *fits_to_tensors(fits))[0],
                                    gt14)["pa_mpjpe_mm"].mean())

            row = {"camera": camera, "labels": cond,
                   "focal_per_crop_side_p10_p50_p90": [round(float(v), 2) for v in
                                                       np.percentile(ratio, [10, 50, 90])]}
            for tag, ppl in (("sized", people), ("unsized", without_size(people))):
                pick, c = pilot(model, body, ppl)
                row[f"pick_{tag}"] = pick
                row[f"camera_median_{tag}"] = c.perspective_median
                row[f"pa_exact_{tag}"] = pa(ppl, EXACT)
            row["pa_no_camera"] = pa(people, NO_CAMERA)
            row["pa_smplify"] = pa(people, "smplify")
            if cond == "exact":
                row["pa_guess_multiples"] = {str(k): pa(with_guess(people, k), EXACT)
                                             for k in MULTIPLES}
            rows.append(row)
            print(row, flush=True)
    out = {"command": f"python scripts/bench_camera_guess.py --n {args.n}",
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()}, 1 torch thread",
           "focal_per_crop_side": FOCAL_PER_CROP_SIDE, "n": args.n,
           "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    write_results(out, args.out, markdown(out))


def _f(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"


def markdown(r: dict) -> str:
    lines = [
        "# open-prior-exact without the image size (camera guessed from the crop)", "",
        f"`{r['command']}` ({r['date']}, {r['machine']}, {r['seconds']:.0f} s). "
        f"{r['n']} synthetic val people per row, H36M-17 labels; PA-MPJPE-14 in mm. "
        f"The guess: a focal length of {r['focal_per_crop_side']} crop sides "
        "(`200 * scale` px) and the crop centre as principal point. `sized`: the image "
        "size known (focal = image diagonal, principal point = image centre). The pick "
        "is `eft.preset: auto`'s, with its camera median (`-`: the first pilot already "
        "picked `open-prior`).", "",
        "| camera | labels | true focal / crop side (p10 / p50 / p90) | pick, sized | "
        "pick, unsized | camera median sized / unsized | exact, sized | exact, unsized "
        "(guess) | blend alone | SMPLify |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        p = x["focal_per_crop_side_p10_p50_p90"]
        lines.append(
            f"| {x['camera']} | {x['labels']} | {p[0]} / {p[1]} / {p[2]} | {x['pick_sized']} "
            f"| {x['pick_unsized']} | {_f(x['camera_median_sized'])} / "
            f"{_f(x['camera_median_unsized'])} | {x['pa_exact_sized']:.1f} | "
            f"{x['pa_exact_unsized']:.1f} | {x['pa_no_camera']:.1f} | {x['pa_smplify']:.1f} |")
    lines += ["", "Exact labels, the guess at other multiples of the crop side "
              "(PA-MPJPE-14, mm):", "",
              "| camera | " + " | ".join(f"{k}" for k in MULTIPLES) + " | "
              f"{r['focal_per_crop_side']} (default) |",
              "|---|" + "---|" * (len(MULTIPLES) + 1)]
    for x in r["rows"]:
        if "pa_guess_multiples" in x:
            g = x["pa_guess_multiples"]
            lines.append(f"| {x['camera']} | " + " | ".join(f"{g[str(k)]:.1f}" for k in MULTIPLES)
                         + f" | {x['pa_exact_unsized']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
