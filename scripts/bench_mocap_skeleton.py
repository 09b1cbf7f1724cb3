"""Studio labels drawn from a real motion-capture skeleton: EFT against SMPLify when
the labels' joints are a capture's own, not the body model's.

    python scripts/bench_mocap_skeleton.py            # 512 frames, ~1 min on one thread

The held-out studio set gives the fitter 2D keypoints projected from motion capture and
compares the fitted joints by name with that capture's 3D joints.
``bench_skeleton_offsets`` draws such a skeleton from the body model itself (offsets on
its joints); here the skeleton is a real capture's. The frames come from the 16 CMU clips
of the pose bank's validation split (no prior was trained on them), read from their BVH
files in ``../shared/data/mocap`` (or ``$EFT_TEST_DATA/mocap``): each subject's own bone
lengths and the capture solver's joint centres, which the pose bank's retargeting to the
body model (and so every synthetic set) smooths away.

Each frame's H36M-17 labels (SPIN's order, ``h36m17_spin``) are the skeleton's joints:
the root as the pelvis, its thigh, shin and foot roots as hips, knees and ankles, its
abdomen as the spine, its neck joint as the thorax, its head joint in the jaw's slot, a
point of the head (CMU-31: the head's end site; DAZ-43: between the eyes) as the head,
and its upper-arm, forearm and hand roots as shoulders, elbows and wrists. A studio
camera (1,000 px images, focal 1,145 px, 3.5-6.5 m away, 0-15 degrees down, any side)
draws them exactly; the crop is the labels' box, as the readers build it.

The same labels are also given as a studio set converted to other formats would give
them (:data:`FORMATS`): COCO-17 (the twelve limb joints; the capture has no eyes or
ears), LSP-14 (with the thorax as the neck and the head point as the head top) and
MPII-16 (with the pelvis and thorax, the head joint as the upper neck, the head point as
the head top). Without H36M's spine and jaw slots ``auto`` reads them as motion capture
only by probing them (``eft.fitting.auto.with_capture_probe``).

Small sets (:data:`SMALL_SETS` sets of one frame of each clip, each piloted as a job
of its own) measure ``auto`` where its pilot has only 16 people.

Every frame is fitted as ``eft fit`` with ``eft.preset: auto`` runs it (its two pilots
on up to 256 of the frames, then the picked recipe), and for comparison by
``open-prior`` and ``open-prior-exact`` named by hand (the latter also without its
refinement under the image camera), SMPLify from the same prior and the regressor alone.
Score: PA-MPJPE over the 14 joints compared by name (limbs, hips, the thorax and the
head), the 3D keypoints each method writes against the capture's own joints; for
``auto`` also its fitted bodies' own keypoints (what a harness that poses the body
itself, without the skeleton offsets the pilot measured, would read).

Writes ``scripts/results/bench_mocap_skeleton.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from bench_auto_recipe import pilot
from bench_eft_formats import write_results
from bench_skeleton_offsets import body_keypoints, by_name
from tune_eft import DATA

from eft.body import BodyModel
from eft.body.joints import H36M17_NAMES, SPIN49_INDEX, get_format, to_spin49
from eft.data.exemplar import Exemplar
from eft.data.readers.base import keypoint_box_center_scale
from eft.fitting import exemplar_batch, fit_method
from eft.fitting.auto import auto_config
from eft.fitting.config import eft_preset
from eft.models import load_regressor
from eft.synthetic.mocap.bvh import forward_kinematics, read_bvh, to_smpl_frame
from eft.synthetic.mocap.skeleton_maps import skeleton_map, smpl_joint_positions
from eft.synthetic.pose_bank import load_pose_bank

#: The studio camera: square image side and focal length (px), distance (m), pitch down
#: (degrees), the pelvis's offset from the image centre (px).
IMAGE, FOCAL, DISTANCE, PITCH, SHIFT = 1000, 1145.0, (3.5, 6.5), (0.0, 15.0), 80.0
#: Per skeleton naming scheme: the point of the head given as H36M's head (one joint,
#: or two averaged).
HEAD_POINT = {"daz43": ("leftEye", "rightEye"), "cmu31_bvh": ("Head_end",),
              "cmu31_anatomical": ("Head_end",), "cmu31_asf": ("head_end",)}
#: H36M-17 name -> SMPL joint whose skeleton source the label is (the rest below).
FROM_SMPL = {"Pelvis": "pelvis", "Left Hip": "left_hip", "Left Knee": "left_knee",
             "Left Ankle": "left_ankle", "Right Hip": "right_hip", "Right Knee": "right_knee",
             "Right Ankle": "right_ankle", "Spine": "spine1", "Thorax": "neck", "Jaw": "head",
             "Left Shoulder": "left_shoulder", "Left Elbow": "left_elbow",
             "Left Wrist": "left_wrist", "Right Shoulder": "right_shoulder",
             "Right Elbow": "right_elbow", "Right Wrist": "right_wrist"}


#: Small sets: this many sets of one frame of each clip, each fitted as a job of its own.
SMALL_SETS = 8
#: Other formats the labels are given in: SPIN-49 slot -> the H36M-17 label's SPIN-49
#: slot it takes, beside every slot the format shares with H36M-17 (the limbs and hips,
#: MPII's pelvis and thorax).
FORMATS: dict[str, dict[str, str]] = {
    "coco17": {},
    "lsp14": {"Neck (LSP)": "Thorax (MPII)", "Top of Head (LSP)": "Head (H36M)"},
    "mpii16": {"Neck (LSP)": "Jaw (H36M)", "Top of Head (LSP)": "Head (H36M)"},
}


def skeleton_h36m17(path: Path) -> np.ndarray:
    """(T, 17, 3) every frame's H36M-17 joints (SPIN's order) of the BVH clip at
    ``path``, in metres, SMPL's axes (Y up)."""
    from eft.body.joints import SMPL24_NAMES

    clip = read_bvh(path)
    pos = to_smpl_frame(forward_kinematics(clip), units="m")
    smpl, mask = smpl_joint_positions(clip, pos)
    variant = skeleton_map(clip).variant
    out = np.zeros((len(pos), 17, 3))
    for k, name in enumerate(H36M17_NAMES):
        if name in FROM_SMPL:
            j = SMPL24_NAMES.index(FROM_SMPL[name])
            assert mask[j], (path, name)
            out[:, k] = smpl[:, j]
        else:  # Head
            out[:, k] = np.mean([pos[:, clip.index(n)] for n in HEAD_POINT[variant]], axis=0)
    return out


def frames(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` frames spread evenly over the pose bank's validation clips (ids, and their
    (n, 17, 3) joints), drawn at random within each clip."""
    bank = load_pose_bank()
    clips = sorted({bank.clip_names[c] for c in np.unique(bank.val().clip)})
    rng = np.random.default_rng(seed)
    ids, joints = [], []
    for k, name in enumerate(clips):
        take = n // len(clips) + (k < n % len(clips))
        j = skeleton_h36m17(DATA / "mocap" / f"{name}.bvh")
        pick = np.sort(rng.choice(len(j), size=take, replace=False))
        ids += [f"{name}/{int(t)}" for t in pick]
        joints.append(j[pick])
    return ids, np.concatenate(joints)


def _rot(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def studio_view(joints: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(camera-frame joints (N, 17, 3) metres, Y down; their pixels (N, 17, 2)): each
    frame turned to a random side, seen from 0-15 degrees above by a studio camera."""
    rng = np.random.default_rng(seed)
    cam, px = [], []
    flip = np.diag([1.0, -1.0, -1.0])  # Y up, facing +Z -> camera axes (Y down)
    for pts in joints:
        pelvis = pts[0]
        r = _rot(0, -np.radians(rng.uniform(*PITCH))) @ flip @ _rot(1, rng.uniform(0, 2 * np.pi))
        depth = rng.uniform(*DISTANCE)
        shift = rng.uniform(-SHIFT, SHIFT, 2) * depth / FOCAL
        p = (pts - pelvis) @ r.T + np.array([shift[0], shift[1], depth])
        cam.append(p)
        px.append(FOCAL * p[:, :2] / p[:, 2:] + IMAGE / 2)
    return np.stack(cam), np.stack(px)


def exemplars(ids: list[str], px: np.ndarray) -> list[Exemplar]:
    """Exact H36M-17 labels as a reader gives them: SPIN-49 slots, the labels' box."""
    out = []
    for i, uv in zip(ids, px, strict=True):
        kps = to_spin49(np.concatenate([uv, np.ones((17, 1))], axis=1), "h36m17_spin")
        center, scale = keypoint_box_center_scale(kps)
        out.append(Exemplar(id=i, image_path=None, center=center, scale=scale, keypoints=kps,
                            source="h36m17_spin", image_size=(IMAGE, IMAGE)))
    return out


def in_format(people: list[Exemplar], fmt: str) -> list[Exemplar]:
    """The H36M-17 exemplars ``people`` with their labels given in ``fmt``'s slots
    (:data:`FORMATS`) and their box built again from those labels."""
    h36m = set(get_format("h36m17_spin").spin_names)
    shared = [SPIN49_INDEX[n] for n in get_format(fmt).spin_names if n in h36m]
    moved = [(SPIN49_INDEX[a], SPIN49_INDEX[b]) for a, b in FORMATS[fmt].items()]
    out = []
    for e in people:
        kps = np.zeros_like(np.asarray(e.keypoints))
        kps[shared] = np.asarray(e.keypoints)[shared]
        for a, b in moved:
            kps[a] = np.asarray(e.keypoints)[b]
        center, scale = keypoint_box_center_scale(kps)
        out.append(dataclasses.replace(e, keypoints=kps, center=center, scale=scale,
                                       source=fmt))
    return out


def clips_of(ids: list[str]) -> list[str]:
    """The clips that frame ids ``clip/frame`` come from, sorted."""
    return sorted({i.rsplit("/", 1)[0] for i in ids})


def truth49(cam: np.ndarray) -> np.ndarray:
    """(N, 49, 3) the capture's joints in their SPIN-49 slots (for ``by_name``)."""
    out = np.zeros((len(cam), 49, 3))
    out[:, list(get_format("h36m17_spin").spin_indices)] = cam
    return out


def versus(auto: dict, smplify: dict) -> dict:
    """``auto``'s row against ``smplify``'s (same frames): the paired difference's mean
    and standard error (mm) and the relative difference of their means (%)."""
    a, s = np.asarray(auto["per_frame"]), np.asarray(smplify["per_frame"])
    d = a - s
    return {"auto_minus_smplify_mm": float(d.mean()),
            "auto_minus_smplify_se_mm": float(d.std(ddof=1) / np.sqrt(len(d))),
            "auto_vs_smplify_pct": float(100 * (a.mean() / s.mean() - 1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="frames (spread over the 16 clips)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regressor", default="default",
                    help="the prior (a shipped prior's name or a regressor file)")
    ap.add_argument("--out", default="bench_mocap_skeleton")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body, model = BodyModel.load(), load_regressor(args.regressor)
    ids, joints = frames(args.n, args.seed)
    cam, px = studio_view(joints, args.seed)
    people, truth = exemplars(ids, px), truth49(cam)
    pick, choice = pilot(model, body, people)
    batch = exemplar_batch(people)
    rows = {}

    def score(name: str, fits: list, own: bool = False, seconds: float = 0.0) -> dict:
        points = (body_keypoints(body, fits) if own
                  else np.stack([f.keypoints3d for f in fits]))
        err = by_name(points, truth)
        row = {"pa_mpjpe14_mm": float(err.mean()), "median_mm": float(np.median(err)),
               "se_mm": float(err.std(ddof=1) / np.sqrt(len(err))),
               "seconds": round(seconds, 1), "per_frame": err.tolist()}
        print(name, {k: v for k, v in row.items() if k != "per_frame"}, flush=True)
        return row

    for name, method, cfg in (("auto (eft fit's default)", "eft", auto_config(choice)),
                              ("open-prior", "eft", eft_preset("open-prior")),
                              ("open-prior-exact (named by hand)", "eft",
                               eft_preset("open-prior-exact")),
                              ("open-prior-exact without the image camera", "eft",
                               eft_preset("open-prior-exact", perspective_steps=0)),
                              ("smplify", "smplify", None),
                              ("regressor", "regressor", eft_preset("open-prior"))):
        t = time.perf_counter()
        fits = fit_method(method, model, body, batch, cfg)
        rows[name] = score(name, fits, seconds=time.perf_counter() - t)
        if name.startswith("auto"):  # what a harness posing the body itself would read
            rows["auto, the body's own keypoints"] = score("own", fits, own=True)
    formats = {}
    for fmt in FORMATS:  # the same labels in other formats' slots
        given = in_format(people, fmt)
        fpick, fchoice = pilot(model, body, given)
        fbatch = exemplar_batch(given)
        auto_fits = fit_method("eft", model, body, fbatch, auto_config(fchoice))
        frows = {"auto": score(f"{fmt} auto", auto_fits),
                 "auto, own keypoints": score(f"{fmt} own", auto_fits, own=True)}
        for name, method, cfg in (("open-prior", "eft", eft_preset("open-prior")),
                                  ("smplify", "smplify", None)):
            frows[name] = score(f"{fmt} {name}", fit_method(method, model, body, fbatch, cfg))
        formats[fmt] = {"pick": fpick, "capture": bool(fchoice.capture),
                        "perspective_median": fchoice.to_dict()["perspective_median"],
                        "capture_probe_median": fchoice.to_dict()["capture_probe_median"],
                        **versus(frows["auto"], frows["smplify"]), "methods": frows}
    small = []  # small sets: one frame of each clip per set, its own pilot
    for k in range(SMALL_SETS):
        s_ids, s_joints = frames(len(clips_of(ids)), 100 + 1000 * args.seed + k)
        s_cam, s_px = studio_view(s_joints, 100 + 1000 * args.seed + k)
        s_people, s_truth = exemplars(s_ids, s_px), truth49(s_cam)
        _, s_choice = pilot(model, body, s_people)
        s_batch = exemplar_batch(s_people)
        row = {"offsets": len(s_choice.skeleton_offsets),
               "offsets_camera_median": s_choice.to_dict()["offsets_camera_median"]}
        for name, method, cfg in (("auto", "eft", auto_config(s_choice)),
                                  ("without offsets", "eft", eft_preset(
                                      "open-prior-exact", perspective_steps=0)),
                                  ("smplify", "smplify", None)):
            fits = fit_method(method, model, body, s_batch, cfg)
            row[name] = float(by_name(np.stack([f.keypoints3d for f in fits]), s_truth).mean())
        print("small set", k, row, flush=True)
        small.append(row)
    out = {"command": "python scripts/bench_mocap_skeleton.py"
           + ("" if args.n == 512 else f" --n {args.n}")
           + ("" if args.seed == 0 else f" --seed {args.seed}")
           + ("" if args.regressor == "default" else f" --regressor {args.regressor}")
           + ("" if args.out == "bench_mocap_skeleton" else f" --out {args.out}"),
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()}, 1 torch thread", "n": len(people),
           "clips": clips_of(ids),
           "pick": pick, "skeleton_offsets": [list(r) for r in choice.skeleton_offsets],
           "perspective": bool(choice.perspective), "capture": bool(choice.capture),
           "pilot_median": choice.reproj_median, "pilot_limb_median": choice.limb_median,
           "perspective_median": choice.perspective_median,
           "offsets_camera_median": choice.offsets_camera_median,
           **versus(rows["auto (eft fit's default)"], rows["smplify"]),
           "seconds": round(time.perf_counter() - t0, 1), "methods": rows,
           "formats": formats, "small_sets": small}
    write_results(out, args.out, markdown(out))


def markdown(r: dict) -> str:
    lines = ["# bench_mocap_skeleton: exact labels from a real capture's skeleton", "",
             f"`{r['command']}` ({r['date']}, {r['machine']}, {r['seconds']} s)", "",
             f"{r['n']} frames of the pose bank's {len(r['clips'])} validation clips (CMU "
             "BVH, never trained on), H36M-17 labels drawn exactly from each capture's own "
             "skeleton by a studio camera (1,000 px, focal 1,145 px, 3.5-6.5 m). "
             "PA-MPJPE over the 14 joints compared by name (limbs, hips, thorax, head): "
             "the 3D keypoints each method writes against the capture's joints; lower is "
             "better.", "",
             f"`eft.preset: auto` picked **{r['pick']}** (pilot medians: "
             f"{r['pilot_median']:.4f} / limbs {r['pilot_limb_median']:.4f} / through the "
             f"cameras {r['perspective_median']:.4f}, with the skeleton offsets out "
             f"{r['offsets_camera_median']:.4f}; read as motion capture: "
             f"{r['capture']}; image camera kept: {r['perspective']}; skeleton offsets "
             f"measured on {', '.join(o[0] for o in r['skeleton_offsets']) or 'no slot'}).",
             "",
             "| method | PA-MPJPE-14 by name, mm (± s.e.) | median, mm |", "|---|---|---|"]
    for name, m in r["methods"].items():
        lines.append(f"| {name} | {m['pa_mpjpe14_mm']:.1f} ± {m['se_mm']:.1f} | "
                     f"{m['median_mm']:.1f} |")
    lines += ["", f"`auto` minus SMPLify, paired: {r['auto_minus_smplify_mm']:+.1f} ± "
              f"{r['auto_minus_smplify_se_mm']:.1f} mm ({r['auto_vs_smplify_pct']:+.1f} %).",
              "", "The same labels given in other formats' slots (COCO-17: the limbs; LSP-14 "
              "and MPII-16: with the thorax, pelvis and head points in their slots). "
              "Without H36M's spine and jaw, `auto` reads them as motion capture by "
              "probing them: with their skeleton offsets out, fits through the cameras "
              "reproduce them below 0.0030 (probe column).", "",
              "| format | pick | read as capture (probe) | auto | auto, body's own keypoints "
              "| open-prior | SMPLify | auto - SMPLify |", "|---|---|---|---|---|---|---|---|"]
    for fmt, f in r.get("formats", {}).items():
        m = f["methods"]
        probe = f["capture_probe_median"]
        lines.append(
            f"| {fmt} | {f['pick']} | {f['capture']} "
            f"({'-' if probe is None else f'{probe:.4f}'}) | "
            f"**{m['auto']['pa_mpjpe14_mm']:.1f}** | "
            f"{m['auto, own keypoints']['pa_mpjpe14_mm']:.1f} | "
            f"{m['open-prior']['pa_mpjpe14_mm']:.1f} | {m['smplify']['pa_mpjpe14_mm']:.1f} | "
            f"{f['auto_minus_smplify_mm']:+.1f} ± {f['auto_minus_smplify_se_mm']:.1f} "
            f"({f['auto_vs_smplify_pct']:+.1f} %) |")
    lines.append("")
    small = r.get("small_sets", [])
    if small:
        mean = {k: float(np.mean([s[k] for s in small]))
                for k in ("auto", "without offsets", "smplify")}
        lines += [f"Small sets: {len(small)} sets of {len(r['clips'])} frames (one of each "
                  "clip), each piloted and fitted as a job of its own (H36M-17 slots). Their "
                  "pilots measure the capture's skeleton offsets from 8 people up "
                  "(`CAPTURE_MIN_PEOPLE`; other labels 32).", "",
                  "| | `auto` | `open-prior-exact` without the camera, no offsets | SMPLify |",
                  "|---|---|---|---|",
                  f"| mean over the sets, mm | **{mean['auto']:.1f}** | "
                  f"{mean['without offsets']:.1f} | {mean['smplify']:.1f} |",
                  f"| sets where `auto` measured offsets | "
                  f"{sum(s['offsets'] > 0 for s in small)} of {len(small)} | | |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
