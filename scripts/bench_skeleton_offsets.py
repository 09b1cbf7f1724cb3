"""What measuring the labels' skeleton offsets is worth on exact labels whose skeleton
defines its joints unlike the body model (a studio set's may).

    python scripts/bench_skeleton_offsets.py            # 256 people per set, ~8 min

For each set of synthetic val people (exact H36M-17 labels, or a quarter or half of
COCO's annotation noise; studio or photo cameras; everyday poses, or everyone lying or
bent over, the poses the fitter reproduces worst, where offsets the skeleton does not
have could be read), the labels come from a studio skeleton of its own, in 3D: each
true body's torso slots moved 1-3 times :data:`STUDIO_SKELETON` (H36M head +10 %, jaw
+6 %, spine +5 %, thorax -5 % of the torso; hips 15 % of the hip width outward and 5 %
of the torso down; the axes of ``eft.fitting.calibrate``) and/or every elbow, wrist,
knee and ankle 3 cm further along its bone, then drawn by the person's camera.  That
skeleton's joints are also the set's 3D truth, as a studio's motion capture gives both.
Then, as ``eft fit`` with ``eft.preset: auto`` runs it:

1. the two pilots pick the recipe; the second one (``open-prior-exact``) also measures
   the skeleton offsets from its own fits (no 3D truth);
2. every person is fitted by the picked recipe as the job runs it (the offsets taken
   out, ``EFTConfig.skeleton_offsets``; the written keypoints put back in the labels'
   skeleton, ``label_skeleton_keypoints``; where the camera refinement is kept, the
   torso weighing ``MEASURED_TORSO_WEIGHT``), and, for comparison, by the picked recipe
   as named by hand (the job before 2026-12-07) and by SMPLify.

Two scores, PA-MPJPE-14 in mm:
- *body*: the fitted body's joints (``pose_joints``) against the true body's: how well
  the body itself is recovered;
- *by name*: the 3D keypoints a job writes, on the 14 slots a studio set is compared
  on by name (limbs, hips, ``Thorax (MPII)`` as the neck, ``Head (H36M)``), against the
  labels' skeleton's own joints; also for the same fits' body keypoints.

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
from bench_auto_recipe import LIMB_BONES, method_config, pilot, synthetic_set
from bench_eft_formats import errors, restrict, true_joints14, write_results

from eft.body import BodyModel
from eft.body.joints import SPIN49_INDEX
from eft.fitting import exemplar_batch, fit_method, fits_to_tensors
from eft.fitting.auto import auto_config
from eft.fitting.calibrate import offset_vectors
from eft.geometry.metrics import procrustes_align
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
#: The studio skeleton at multiple 1: rows (slot, a, b, c, d) along the torso-up, hip,
#: forward and bone axes (``EFTConfig.skeleton_offsets``'s form).
STUDIO_SKELETON = (("Head (H36M)", 0.10, 0.0, 0.0, 0.0), ("Jaw (H36M)", 0.06, 0.0, 0.0, 0.0),
                   ("Spine (H36M)", 0.05, 0.0, 0.0, 0.0),
                   ("Thorax (MPII)", -0.05, 0.0, 0.0, 0.0),
                   ("Right Hip", -0.05, 0.15, 0.0, 0.0), ("Left Hip", -0.05, -0.15, 0.0, 0.0))
#: SPIN-49 slots of the 14 joints a studio set's truth is compared on by name.
BY_NAME_14 = ("Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee",
              "Left Ankle", "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder",
              "Left Elbow", "Left Wrist", "Thorax (MPII)", "Head (H36M)")
_NAMED = [SPIN49_INDEX[n] for n in BY_NAME_14]


def studio_skeleton(val, people: list, k: float, cm: float) -> tuple[list, np.ndarray]:
    """``people`` (the exemplars of synthetic set ``val``, in order) labelled by a
    skeleton with ``k`` times :data:`STUDIO_SKELETON` and its limb joints ``cm`` further
    along their bones, and that skeleton's true keypoints (N, 49, 3), camera frame."""
    k3 = torch.as_tensor(np.asarray(val.keypoints3d), dtype=torch.float64)
    moved = k3.clone()
    if k:
        rows = tuple((r[0], *(k * v for v in r[1:])) for r in STUDIO_SKELETON)
        moved[:, [SPIN49_INDEX[r[0]] for r in rows]] += offset_vectors(k3, rows)
    for parent, joint in LIMB_BONES if cm else ():
        a, b = SPIN49_INDEX[parent], SPIN49_INDEX[joint]
        bone = k3[:, b] - k3[:, a]
        moved[:, b] += cm / 100.0 * bone / bone.norm(dim=-1, keepdim=True)
    truth, k3 = moved.numpy(), k3.numpy()
    out = []
    for i, e in enumerate(people):  # each label moved by its joint's move in the image
        kp = np.asarray(e.keypoints, dtype=np.float64).copy()
        shift = val.focal[i] * (truth[i, :, :2] / truth[i, :, 2:] - k3[i, :, :2] / k3[i, :, 2:])
        kp[:, :2] = np.where(kp[:, 2:] > 0, kp[:, :2] + shift, kp[:, :2])
        out.append(dataclasses.replace(e, keypoints=kp))
    return out, truth


def by_name(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) PA-MPJPE (mm) of keypoints ``points`` (N, 49, 3) on :data:`BY_NAME_14`."""
    pred = torch.as_tensor(points[:, _NAMED], dtype=torch.float64)
    gt = torch.as_tensor(truth[:, _NAMED], dtype=torch.float64)
    return ((procrustes_align(pred, gt) - gt).norm(dim=-1).mean(1) * 1000).numpy()


@torch.no_grad()
def body_keypoints(body, fits) -> np.ndarray:
    """(N, 49, 3) the body model's own keypoints of ``fits``."""
    return body(*fits_to_tensors(fits)).keypoints.double().numpy()


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
        people, truth = studio_skeleton(val, base, k, cm)
        t = time.perf_counter()
        pick, choice = pilot(model, body, people)
        batch = exemplar_batch(people)
        with_offsets = auto_config(choice)
        without = method_config(pick)  # the pick as the recipe ran it before 2026-12-07
        pa, named = {}, {}
        for name, cfg in (("auto", with_offsets), ("auto without offsets", without),
                          ("smplify", None)):
            if name == "auto without offsets" and cfg == with_offsets:
                pa[name], named[name] = pa["auto"], named["auto"]
                named["auto, body keypoints"] = named["auto"]
                continue
            fits = fit_method("smplify" if cfg is None else "eft", model, body, batch, cfg)
            pa[name] = errors(pose_joints(body, *fits_to_tensors(fits))[0], gt14)["pa_mpjpe_mm"]
            named[name] = by_name(np.stack([f.keypoints3d for f in fits]), truth)
            if name == "auto":
                named["auto, body keypoints"] = by_name(body_keypoints(body, fits), truth)
        gain = pa["auto"] - pa["auto without offsets"]
        named_gain = named["auto"] - named["auto without offsets"]
        row = {"labels": cond, "camera": camera, "torso_offsets": k, "limb_cm": cm,
               "pick": pick, "slots": [r[0] for r in choice.skeleton_offsets],
               "offsets": [list(r) for r in choice.skeleton_offsets],
               **{f"pa_{m.replace(' ', '_')}": float(v.mean()) for m, v in pa.items()},
               **{f"named_{m.replace(', ', '_').replace(' ', '_')}": float(v.mean())
                  for m, v in named.items()},
               "gain": float(gain.mean()),
               "gain_se": float(gain.std(ddof=1) / np.sqrt(len(gain))),
               "named_gain": float(named_gain.mean()),
               "named_gain_se": float(named_gain.std(ddof=1) / np.sqrt(len(named_gain))),
               "auto_vs_smplify_pct": float(100 * (pa["auto"].mean() / pa["smplify"].mean()
                                                   - 1)),
               "named_auto_vs_smplify_pct": float(100 * (named["auto"].mean()
                                                         / named["smplify"].mean() - 1)),
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
             "H36M-17 labels drawn from a studio skeleton of their own (3D; its joints are "
             "also the truth). PA-MPJPE-14 in mm, lower is better. *auto*: the recipe "
             "`eft.preset: auto` picks, with the skeleton offsets its pilot measured taken "
             "out of the labels and the written keypoints put back in the labels' "
             "skeleton, the torso weighing 1 in the camera refinement (today's job); "
             "*without*: the picked recipe as named by hand (no offsets, torso 0.1: the job "
             "before 2026-12-07); gain ± "
             "standard error over people, paired.", "",
             "**By name**: the 3D keypoints a job writes, on the 14 slots a studio set is "
             "compared on (limbs, hips, `Thorax (MPII)`, `Head (H36M)`), against the labels' "
             "skeleton's joints. *auto, body keypoints*: the same fits' body-model "
             "keypoints (`label_skeleton_keypoints: false`).", "",
             "| labels | cameras | torso offsets | limb joints | recipe | slots measured | "
             "**auto** | auto, body keypoints | without | SMPLify | gain | auto vs SMPLify |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        lines.append(
            f"| {x['labels']} | {x['camera']} | x{x['torso_offsets']} | "
            f"+{x['limb_cm']} cm | {x['pick']} | {len(x['slots'])} | "
            f"**{x['named_auto']:.1f}** | {x['named_auto_body_keypoints']:.1f} | "
            f"{x['named_auto_without_offsets']:.1f} | {x['named_smplify']:.1f} | "
            f"{x['named_gain']:+.1f} ± {x['named_gain_se']:.1f} | "
            f"{x['named_auto_vs_smplify_pct']:+.0f} % |")
    lines += ["", "**Body**: the fitted body's joints against the true body's (the body "
              "model's definition).", "",
              "| labels | cameras | torso offsets | limb joints | **auto** | without | "
              "SMPLify | gain | auto vs SMPLify |", "|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        lines.append(
            f"| {x['labels']} | {x['camera']} | x{x['torso_offsets']} | "
            f"+{x['limb_cm']} cm | **{x['pa_auto']:.1f}** | "
            f"{x['pa_auto_without_offsets']:.1f} | {x['pa_smplify']:.1f} | "
            f"{x['gain']:+.1f} ± {x['gain_se']:.1f} | {x['auto_vs_smplify_pct']:+.0f} % |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
