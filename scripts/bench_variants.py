"""Seated, kneeling and bent-over people: are they fitted upright (the "reclined" failure)?

    python scripts/bench_variants.py [--priors keypoint-prior-v1,default] [--n 256]

The issue found seated people in real photos coming out reclined by ~45 degrees in the
side view (prior v1). This benchmark measures that failure in 3D on synthetic people
whose truth is known: people posed from the pose bank's *val* clips and turned into
seated, kneeling and bent-over variants (:mod:`eft.synthetic.pose_variants`), labelled
in COCO-17 either exactly (projected, every joint present: a studio set's kind) or as
annotators do (the v2 generator's noise, missing joints and truncation), each fitted by
the regressor alone, SMPLify from it and EFT (``open-prior``). Per prior, labels,
variant kind and method:

- ``pa_mpjpe_mm``: PA-MPJPE-14;
- ``hip_angle_err_deg``: mean signed error of the angle at the hips between the torso
  (hips' midpoint to neck) and the thighs (to the knees' midpoint), in degrees; positive
  = more open than the truth, i.e. leaning back out of the seat, the "reclined" failure
  (a standing body is at 180);
- ``torso_pitch_err_deg``: mean signed error of the torso's tilt toward the camera
  (the angle of hips-to-neck from image-up toward the camera, camera frame).

Writes ``scripts/results/bench_variants.json`` and ``.md`` (one torch thread).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from eft.body import BodyModel
from eft.body.joints import LSP14_NAMES
from eft.fitting import exemplar_batch, fit_method, fits_to_tensors
from eft.fitting.config import eft_preset
from eft.geometry.metrics import procrustes_align
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import load_regressor
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank
from eft.synthetic.pose_variants import VARIANT_KINDS, pose_variants
from eft.train.evaluate import pose_joints
from eft.train.prior import PRIOR_VAL_SEED, V2_SYNTHETIC

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eft_formats import (  # noqa: E402
    add_recipe_args,
    parse_overrides,
    recipe_command,
    restrict,
    write_results,
)

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("regressor", "smplify", "eft")
LABELS = {"exact": V2_SYNTHETIC.clean(), "annotated": V2_SYNTHETIC}
_J = {name: LSP14_NAMES.index(name) for name in (
    "right_hip", "left_hip", "right_knee", "left_knee", "neck")}


def body_angles(j14: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 14, 3) LSP joints (camera frame, y down, z away) -> (hip angle, torso pitch),
    both (N,) degrees: the angle between hips-to-neck and hips-to-knees (the midpoints of
    the two sides), and the tilt of hips-to-neck from image-up toward the camera."""
    hips = (j14[:, _J["right_hip"]] + j14[:, _J["left_hip"]]) / 2
    knees = (j14[:, _J["right_knee"]] + j14[:, _J["left_knee"]]) / 2
    torso, thigh = j14[:, _J["neck"]] - hips, knees - hips
    cos = (torso * thigh).sum(-1) / (torso.norm(dim=-1) * thigh.norm(dim=-1))
    hip = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
    pitch = torch.rad2deg(torch.atan2(-torso[:, 2], -torso[:, 1]))
    return hip, pitch


def people(base: np.ndarray, kind: str, labels: str, n: int, body
           ) -> tuple[list, torch.Tensor]:
    """``n`` people of variant ``kind`` made from the poses ``base`` (N, 72), labelled in
    COCO-17 (``labels``), and their true LSP-14 joints (N, 14, 3)."""
    k = VARIANT_KINDS.index(kind)
    varied = pose_variants(base, n, PRIOR_VAL_SEED + 1 + k, kind)
    s = generate(varied, n, PRIOR_VAL_SEED + 101 + k, LABELS[labels], body=body)
    rot = axis_angle_to_rotmat(torch.as_tensor(s.pose, dtype=torch.float32).reshape(-1, 24, 3))
    gt14, _ = pose_joints(body, rot, torch.as_tensor(s.betas, dtype=torch.float32))
    return restrict(list(s.exemplars()), "coco17"), gt14


def scores(pred14: torch.Tensor, gt14: torch.Tensor) -> dict[str, float]:
    """The three measures of the module docstring for one method."""
    pa = ((procrustes_align(pred14, gt14) - gt14).norm(dim=-1).mean(1) * 1000)
    (hp, pp), (hg, pg) = body_angles(pred14), body_angles(gt14)
    return {"pa_mpjpe_mm": float(pa.mean()), "hip_angle_err_deg": float((hp - hg).mean()),
            "hip_angle_abs_err_deg": float((hp - hg).abs().mean()),
            "torso_pitch_err_deg": float((pp - pg).mean()),
            "true_hip_angle_deg": float(hg.mean())}


def markdown(r: dict) -> str:
    rows = ["| prior | labels | people | truth: hip angle | regressor: PA / hip angle err | "
            "SMPLify: PA / hip angle err | EFT: PA / hip angle err | EFT torso pitch err |",
            "|---|---|---|---|---|---|---|---|"]
    for spec, per_labels in r["results"].items():
        for labels, per_kind in per_labels.items():
            for kind, row in per_kind.items():
                cells = [f"{row[m]['pa_mpjpe_mm']:.1f} / {row[m]['hip_angle_err_deg']:+.1f}"
                         for m in METHODS]
                rows.append(f"| {spec} | {labels} | {kind} | "
                            f"{row['eft']['true_hip_angle_deg']:.0f} | " + " | ".join(cells)
                            + f" | {row['eft']['torso_pitch_err_deg']:+.1f} |")
    return (f"# bench_variants: seated, kneeling and bent-over people\n\n"
            f"Command: `{r['command']}` ({r['date']}, {r['machine']}, "
            f"{r['seconds'] / 60:.1f} min).\n\n"
            f"{r['n']} people per variant kind from the pose bank's val clips, COCO-17 "
            "labels (exact, or annotated with the v2 generator's noise and missing "
            "joints), fitted from each prior by the regressor alone, SMPLify and EFT "
            f"(`{r.get('preset', 'open-prior')}`"
            + "".join(f", {k}={v}" for k, v in r.get("overrides", {}).items())
            + "). PA-MPJPE-14 in mm; hip angle err: mean signed error in "
            "degrees of the torso-to-thigh angle (positive = more open than the truth, "
            "leaning back out of the pose); torso pitch err: of the torso's tilt toward "
            "the camera.\n\n" + "\n".join(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", default="keypoint-prior-v1,default")
    ap.add_argument("--n", type=int, default=256)
    add_recipe_args(ap)
    ap.add_argument("--labels", default=",".join(LABELS), help="exact, annotated or both")
    ap.add_argument("--out", default="bench_variants")
    args = ap.parse_args()
    overrides = parse_overrides(args.set)
    labels_run = args.labels.split(",")
    unknown = sorted(set(labels_run) - set(LABELS))
    if unknown:
        ap.error(f"unknown --labels {unknown}; known: {list(LABELS)}")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body = BodyModel.load()
    base = np.asarray(load_pose_bank().val().poses, dtype=np.float64).reshape(-1, 72)
    sets = {(labels, kind): people(base, kind, labels, args.n, body)
            for labels in labels_run for kind in VARIANT_KINDS}
    results: dict = {}
    for spec in args.priors.split(","):
        model = load_regressor(spec)
        results[spec] = {labels: {} for labels in labels_run}
        for (labels, kind), (exemplars, gt14) in sets.items():
            row = {}
            for method in METHODS:
                cfg = eft_preset(args.preset, **overrides) if method == "eft" else None
                fitted = fits_to_tensors(fit_method(method, model, body,
                                                    exemplar_batch(exemplars), cfg))
                row[method] = scores(pose_joints(body, *fitted)[0], gt14)
            results[spec][labels][kind] = row
            print(spec, labels, kind, json.dumps(row), flush=True)
    out = {
        "command": f"python scripts/bench_variants.py --priors {args.priors} --n {args.n}"
                   + recipe_command(args)
                   + ("" if labels_run == list(LABELS) else f" --labels {args.labels}"),
        "preset": args.preset, "overrides": overrides,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, 1 torch thread",
        "n": args.n, "seconds": round(time.perf_counter() - t0, 1), "results": results,
    }
    write_results(out, args.out, markdown(out))


if __name__ == "__main__":
    main()
