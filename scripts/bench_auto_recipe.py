"""``eft.preset: auto`` (the default of ``eft fit`` with a shipped prior): which recipe its
pilot picks for labels of every quality, and what that pick is worth.

    python scripts/bench_auto_recipe.py [--n 256] [--n-real 1000]

The pilot (``eft.fitting.auto``, ``eft.jobs.recipe``) fits up to 256 of a job's people
with ``open-prior`` and picks ``open-prior-exact`` when their median reprojection error
is below ``EXACT_LABELS_BELOW`` of the box side, else ``open-prior``; a second pilot fit
with ``open-prior-exact`` can overrule that (``EXACT_CAMERA_BELOW``) and decides on the
image-camera refinement (``PERSPECTIVE_LABELS_BELOW``).  Measured here, with the job's
own functions (``pilot_sample``, ``choose_from_pilot``, ``with_perspective_check``):

- **synthetic people** from the pose bank's val clips (``PRIOR_VAL_SEED``), COCO-17 and
  H36M-17 labels: exact (motion-capture-like), 0.25 / 0.5 / 0.75 / 1.0 times the
  annotation noise with nothing missing, and the annotated val set (noise, missing
  joints, truncation, dropped limbs); and exact H36M-17 labels of a skeleton unlike
  the body model's (``studio_offsets``, 1-3 times), as a studio set's may be; and the
  same seen by studio cameras (:data:`STUDIO_CAMERA`, :data:`STUDIO_ROWS`; also with
  the limb joints moved along the limbs, :func:`limb_offsets`); and people all lying or
  all bent over (:data:`ORIENTATIONS`), exact and at half the noise.  Per set:
  the pilot's medians (the third, from the second pilot fit with ``open-prior-exact``
  through the image camera: whether the labels are exact whatever the first read, and
  whether ``open-prior-exact`` keeps its refinement under that camera) and pick, and
  PA-MPJPE-14 (mm) of ``open-prior``, ``open-prior-exact``, the latter without that
  refinement, the pick and SMPLify;
- **real labels**, COCO val2017 and MPII's Tompson val split: the pilot's median and
  pick over each whole set, and the held-out-joint error (``eft.fitting.heldout``;
  ``n-real`` people with all limbs labelled, one limb hidden) of each recipe.

Writes ``scripts/results/bench_auto_recipe.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch
from bench_eft_formats import errors, restrict, true_joints14, write_results
from tune_eft import DATA, REAL, held_out_people

from eft.body import BodyModel
from eft.body.joints import SPIN49_INDEX
from eft.data.readers import read_dataset
from eft.fitting import exemplar_batch, fit_method, fits_to_tensors
from eft.fitting.auto import (
    AUTO_CHOICES,
    EXACT_CAMERA_BELOW,
    EXACT_LABELS_BELOW,
    EXACT_LIMBS_BELOW,
    MEASURED_TORSO_WEIGHT,
    PERSPECTIVE_LABELS_BELOW,
    PresetChoice,
    auto_config,
    run_pilots,
)
from eft.fitting.config import eft_preset
from eft.fitting.heldout import held_out_errors
from eft.jobs.recipe import pilot_sample
from eft.models import load_regressor
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.evaluate import pose_joints
from eft.train.prior import PRIOR_VAL_SEED, V2_SYNTHETIC, make_prior_v2_sets

CONDITIONS = ("exact", "0.25", "0.5", "0.75", "1.0", "annotated")
FORMATS = ("coco17", "h36m17_spin")
#: Exact H36M-17 labels whose skeleton differs from the body model's, as a studio
#: set's may: these multiples of :func:`studio_offsets`.
OFFSETS = (1, 2, 3)


def studio_offsets(e, k: float):
    """``e`` with its torso slots moved as a studio skeleton might place them, ``k``
    times, in the image: along the torso (pelvis to thorax, ``u``) the H36M head +10 %,
    jaw +6 %, spine +5 % and the thorax -5 %, and each hip 15 % of the hip width
    outward and 5 % of ``u`` down."""
    kp = np.asarray(e.keypoints, dtype=np.float64).copy()
    rhip, lhip = SPIN49_INDEX["Right Hip"], SPIN49_INDEX["Left Hip"]
    right, left = kp[rhip, :2].copy(), kp[lhip, :2].copy()
    u = kp[SPIN49_INDEX["Thorax (MPII)"], :2] - (right + left) / 2
    w = right - left
    for name, share in (("Head (H36M)", 0.10), ("Jaw (H36M)", 0.06), ("Spine (H36M)", 0.05),
                        ("Thorax (MPII)", -0.05)):
        kp[SPIN49_INDEX[name], :2] += k * share * u
    kp[rhip, :2] += k * (0.15 * w - 0.05 * u)
    kp[lhip, :2] += k * (-0.15 * w - 0.05 * u)
    return dataclasses.replace(e, keypoints=kp)
#: ``open-prior-exact`` without its refinement under the image camera.
NO_CAMERA = "open-prior-exact, no camera"
METHODS = (*AUTO_CHOICES, NO_CAMERA, "smplify")
#: A studio's cameras, as Human3.6M's: 1,000 px square images, focal about 1,145 px,
#: people 3.5-6.5 m away.
STUDIO_CAMERA = {"image_sizes": ((1000, 1000),), "focal_range": (1140.0, 1150.0),
                 "distance_range": (3.5, 6.5), "person_fraction_range": (0.3, 0.5)}
#: Studio-camera rows: (labels, torso offsets multiple, limb offset in cm), H36M-17.
STUDIO_ROWS = (("exact", 0, 0), ("exact", 1, 0), ("exact", 2, 0), ("exact", 3, 0),
               ("exact", 0, 3), ("exact", 1, 3), ("0.25", 0, 0), ("0.5", 0, 0))
#: Sets of people all lying or all bending forward (photo cameras), with the labels of
#: :data:`ORIENTATION_LABELS`: the poses ``open-prior``'s light pilot fit reproduces
#: worst, exact labels included.
ORIENTATIONS = {"photo, lying": {"lying_fraction": 1.0, "bending_fraction": 0.0},
                "photo, bent over": {"lying_fraction": 0.0, "bending_fraction": 1.0}}
ORIENTATION_LABELS = ("exact", "0.5")
#: (parent, joint) of the limb joints :func:`limb_offsets` moves.
LIMB_BONES = (("Right Shoulder", "Right Elbow"), ("Right Elbow", "Right Wrist"),
              ("Left Shoulder", "Left Elbow"), ("Left Elbow", "Left Wrist"),
              ("Right Hip", "Right Knee"), ("Right Knee", "Right Ankle"),
              ("Left Hip", "Left Knee"), ("Left Knee", "Left Ankle"))


def limb_offsets(val, people: list, cm: float) -> list:
    """``people`` (the exemplars of synthetic set ``val``, in order) with each elbow,
    wrist, knee and ankle label moved ``cm`` centimetres along its bone in 3D, away
    from the parent joint, and projected by the person's camera: a skeleton whose limb
    joints sit elsewhere along the limbs than the body model's."""
    out = []
    for i, e in enumerate(people):
        k3 = np.asarray(val.keypoints3d[i], dtype=np.float64)
        kp = np.asarray(e.keypoints, dtype=np.float64).copy()
        for parent, joint in LIMB_BONES:
            a, b = SPIN49_INDEX[parent], SPIN49_INDEX[joint]
            bone = k3[b] - k3[a]
            x = k3[b] + cm / 100.0 * bone / np.linalg.norm(bone)
            if kp[b, 2] > 0:
                kp[b, :2] = val.focal[i] * x[:2] / x[2] + val.principal_point[i]
        out.append(dataclasses.replace(e, keypoints=kp))
    return out


def method_config(m: str):
    """The :class:`EFTConfig` of method ``m`` (None for SMPLify)."""
    if m == "smplify":
        return None
    if m == NO_CAMERA:
        return eft_preset(AUTO_CHOICES[1], perspective_steps=0)
    return eft_preset(m)


def pilot(model, body, people: list) -> tuple[str, PresetChoice]:
    """The recipe ``eft.preset: auto`` picks for a job of ``people`` (``open-prior``,
    ``open-prior-exact``, or ``open-prior-exact`` without its perspective refinement:
    :data:`NO_CAMERA`) and the pilot's :class:`PresetChoice` (both pilots, as
    ``eft.fitting.auto.run_pilots`` runs them for a job)."""
    sample = pilot_sample(people)
    batch = exemplar_batch(sample)
    c = run_pilots(sample, lambda cfg, ppl: (fit_method("eft", model, body, batch, cfg), sample))
    if c.preset != AUTO_CHOICES[1]:
        return c.preset, c
    return (c.preset if c.perspective else NO_CAMERA), c


def synthetic_set(poses, body, cond: str, n: int, camera: str = "photo"):
    """``n`` val people labelled as ``cond`` says, seen by ``camera``: ``"photo"`` (the
    synthetic default: 640-1280 px images, focal 500-2500 px, 2-12 m), ``"studio"``
    (:data:`STUDIO_CAMERA`), or ``"photo, lying"`` / ``"photo, bent over"`` (every person
    lying, or bending forward, :data:`ORIENTATIONS`)."""
    if cond == "annotated":
        return make_prior_v2_sets(poses, n, 0, PRIOR_VAL_SEED, body)[0]
    cfg = dataclasses.replace(V2_SYNTHETIC.clean(),
                              noise_scale=0.0 if cond == "exact" else float(cond))
    if camera == "studio":
        cfg = dataclasses.replace(cfg, **STUDIO_CAMERA)
    elif camera in ORIENTATIONS:
        cfg = dataclasses.replace(cfg, **ORIENTATIONS[camera])
    return generate(poses, n, PRIOR_VAL_SEED, cfg, body=body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="synthetic people per set")
    ap.add_argument("--n-real", type=int, default=1000, help="held-out people per real set")
    ap.add_argument("--out", default="bench_auto_recipe")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body, model = BodyModel.load(), load_regressor("default")
    poses = load_pose_bank().val().poses
    synth = []
    sets = [(cond, "photo") for cond in CONDITIONS] + [
        (cond, "studio") for cond in dict.fromkeys(row[0] for row in STUDIO_ROWS)] + [
        (cond, orient) for orient in ORIENTATIONS for cond in ORIENTATION_LABELS]
    for cond, camera in sets:
        val = synthetic_set(poses, body, cond, args.n, camera)
        gt14 = true_joints14(val, body)
        if camera == "studio":
            base = restrict(list(val.exemplars()), "h36m17_spin")
            runs = []
            for c, k, cm in STUDIO_ROWS:
                if c != cond:
                    continue
                ppl = limb_offsets(val, base, cm) if cm else base
                ppl = [studio_offsets(e, k) for e in ppl] if k else ppl
                runs.append(("h36m17_spin" + (f", studio offsets x{k}" if k else "")
                             + (f", limb joints +{cm} cm" if cm else ""), ppl))
        else:
            runs = [(fmt, restrict(list(val.exemplars()), fmt)) for fmt in FORMATS]
            if cond == "exact" and camera == "photo":
                base = runs[1][1]
                runs += [(f"h36m17_spin, studio offsets x{k}",
                          [studio_offsets(e, k) for e in base]) for k in OFFSETS]
        for fmt, people in runs:
            pick, choice = pilot(model, body, people)
            pa = {}
            for m in METHODS:
                fits = fit_method("smplify" if m == "smplify" else "eft", model, body,
                                  exemplar_batch(people), method_config(m))
                pa[m] = errors(pose_joints(body, *fits_to_tensors(fits))[0], gt14)["pa_mpjpe_mm"]
            job = auto_config(choice)  # the pick as the job runs it (offsets, torso weight)
            if job == method_config(pick):
                pa["auto"] = pa[pick]
            else:
                fits = fit_method("eft", model, body, exemplar_batch(people), job)
                pa["auto"] = errors(pose_joints(body, *fits_to_tensors(fits))[0],
                                    gt14)["pa_mpjpe_mm"]
            d = pa["auto"] - pa["smplify"]
            row = {"labels": cond, "camera": camera, "format": fmt,
                   "pilot_median": choice.reproj_median,
                   "pilot_limb_median": choice.limb_median,
                   "perspective_median": choice.perspective_median, "pick": pick,
                   **{f"pa_{m}": float(pa[m].mean()) for m in METHODS},
                   "pa_auto": float(pa["auto"].mean()),
                   "auto_minus_smplify": float(d.mean()),
                   "auto_minus_smplify_se": float(d.std(ddof=1) / np.sqrt(len(d)))}
            synth.append(row)
            print(row, flush=True)
    real = []
    held = held_out_people(args.n_real, 0)
    for name, (kind, rel) in REAL.items():
        pick, choice = pilot(model, body, read_dataset(kind, DATA / rel).exemplars)
        people = held[name]
        row = {"set": name, "pilot_median": choice.reproj_median,
               "pilot_limb_median": choice.limb_median,
               "perspective_median": choice.perspective_median, "pick": pick}
        for m in dict.fromkeys((*AUTO_CHOICES, pick)):
            fits = fit_method("eft", model, body,
                              exemplar_batch([h.exemplar for h in people]), method_config(m))
            row[f"heldout_{m}"] = held_out_errors(people, fits).summary().mean
        row["heldout_auto"] = row[f"heldout_{pick}"]
        real.append(row)
        print(row, flush=True)
    out = {"command": f"python scripts/bench_auto_recipe.py --n {args.n} --n-real {args.n_real}",
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()}, 1 torch thread",
           "threshold": EXACT_LABELS_BELOW, "limb_threshold": EXACT_LIMBS_BELOW,
           "perspective_threshold": PERSPECTIVE_LABELS_BELOW,
           "camera_threshold": EXACT_CAMERA_BELOW,
           "n": args.n, "n_real": args.n_real,
           "seconds": round(time.perf_counter() - t0, 1), "synthetic": synth, "real": real}
    write_results(out, args.out, markdown(out))


def markdown(r: dict) -> str:
    a, b = AUTO_CHOICES
    lines = [
        "# bench_auto_recipe: the recipe `eft.preset: auto` picks, and what it is worth", "",
        f"Command: `{r['command']}` ({r['date']}, {r['machine']}, "
        f"{r['seconds'] / 60:.1f} min).", "",
        f"The pilot fits up to 256 of a job's people with `{a}` and picks `{b}` when their "
        f"median reprojection error is below {r['threshold']} of the box side, or its "
        f"median over the limbs, shoulders and face below {r['limb_threshold']}. "
        f"Then it fits the pilot with `{b}`, measures how closely those fits reproduce the "
        "limbs, shoulders and face through the image's camera (`camera` column), picks "
        f"`{b}` whatever the first fit read when that median is below "
        f"{r['camera_threshold']}, and keeps `{b}`'s refinement under the camera only "
        f"below {r['perspective_threshold']}; else it runs `{NO_CAMERA}`. The `{b}` "
        "columns are the recipe as named by hand; *auto* is the pick as the job runs it: "
        f"where it keeps the camera, the pilot has measured the labels' skeleton, so the "
        f"torso weighs {MEASURED_TORSO_WEIGHT:g} in the refinement instead of the "
        "preset's 0.1, and offsets it found over 1 cm are taken out of the labels. "
        f"Synthetic: {r['n']} people from the pose bank's val clips per row, PA-MPJPE-14 "
        "in mm (lower is better); `auto - SMPLify` is paired, ± standard error. Cameras: "
        "`photo` is the synthetic default (640-1280 px images, focal 500-2500 px, people "
        "2-12 m away), `studio` a Human3.6M-like one (1,000 px, focal 1,145 px, 3.5-6.5 "
        "m).", "",
        f"| labels | camera | format | pilot median (all / limbs / camera) | pick | {a} | "
        f"{b} | {NO_CAMERA} | auto | SMPLify | auto - SMPLify |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["synthetic"]:
        cam = x["perspective_median"]
        lines.append(
            f"| {x['labels']} | {x['camera']} | {x['format']} | {x['pilot_median']:.4f} / "
            f"{x['pilot_limb_median']:.4f} / {'-' if cam != cam else f'{cam:.4f}'} | "
            f"{x['pick']} | {x[f'pa_{a}']:.1f} | {x[f'pa_{b}']:.1f} | "
            f"{x[f'pa_{NO_CAMERA}']:.1f} | **{x['pa_auto']:.1f}** | "
            f"{x['pa_smplify']:.1f} | {x['auto_minus_smplify']:+.1f} ± "
            f"{x['auto_minus_smplify_se']:.1f} |")
    lines += ["", f"Real labels: the pilot over each whole val set, and the mean hidden-joint "
              f"error / keypoint box of {r['n_real']} held-out-limb people (lower is better).",
              "", f"| set | pilot median (all / limbs / camera) | pick | {a} | {b} | auto |",
              "|---|---|---|---|---|---|"]
    for x in r["real"]:
        lines.append(f"| {x['set']} | {x['pilot_median']:.4f} / {x['pilot_limb_median']:.4f}"
                     f" / {x['perspective_median']:.4f} | {x['pick']} | "
                     f"{x[f'heldout_{a}']:.4f} | {x[f'heldout_{b}']:.4f} | "
                     f"**{x['heldout_auto']:.4f}** |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
