#!/usr/bin/env python
"""Build ``eft/synthetic/assets/pose_bank.npz``: SMPL poses retargeted from BVH motion capture.

Recipe (every step prints what it kept):

1. Find every ``*.bvh`` under ``--root`` (default ``../shared/data/mocap`` beside the
   repository).  Frame rates: the file header, unless a ``readme.txt`` in a parent
   folder has a line ``<subfolder> framerate <fps>`` (the CMU "DAZ-friendly" set says
   its salsa clips are 60 fps while their headers say 120) or ``--frame-rate GLOB=FPS``
   matches the clip's path.
2. Identify the skeleton by its joint names (``eft.synthetic.mocap.skeleton_maps``; clips with an
   unknown skeleton are skipped and listed) and run forward kinematics at the native
   rate.
3. Drop frames that are not motion or are broken, generically:
   the leading reference frames (5 for the DAZ-43 skeleton: a T-pose and ~4 frames
   blending out of it; 1 for CMU-31), frames whose root is less than 10 cm above the
   clip's floor (the median over frames of the lowest joint) or whose lowest joint is
   more than 0.5 m below it, both ends of every discontinuity (root faster than
   8 m/s, or a bone of 20 cm or more turning faster than 2000 deg/s), stretches of
   fewer than 0.25 s between discontinuities, and frames whose left and right legs
   (thigh and shin axes) pass within 4 cm of each other.
4. Subsample to ``--fps`` (``eft.synthetic.mocap.bvh.subsample``: every k-th native frame) and, with
   ``--max-frames-per-clip``, thin long clips evenly.
5. Retarget each clip onto the open body model (betas 0): ``eft.synthetic.mocap.retarget.retarget``
   with per-joint weights 1 (approximately placed joints: ``--approx-weight``) and the
   torso calibrated against the BVH rest pose.
6. Deduplicate per clip: greedily drop a pose whose every joint rotation (heading of
   the global orientation ignored) is within ``--dedup-deg`` of a pose already kept.
7. Add the left/right mirror of every kept pose (``flip_smpl_pose``) unless it is itself
   within ``--dedup-deg`` of its source (near-symmetric poses).
8. Split by clip: per activity (the first ``--stratum-depth`` folders of the clip's
   path), ``--val-fraction`` of the clips, at least one when the activity has three or
   more, go to validation, chosen with ``--seed``.  Clips recorded together (partners
   of one salsa take: same folder, same length, roots within 3 m) are split together.
   Mirrored copies stay with their source.
9. Write the bank (``np.savez_compressed``, no pickles), and for the shipped bank also
   ``POSE_BANK.md`` (card, with the numbers) and ``LICENSE-pose-bank.md``.

Usage, from the repository root::

    python scripts/build_pose_bank.py                         # the shipped bank
    python scripts/build_pose_bank.py --root /path/to/bvh --out my_bank.npz
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(REPO_ROOT))

from eft.body import BodyModel  # noqa: E402
from eft.body.joints import SMPL24_NAMES, flip_smpl_pose  # noqa: E402
from eft.synthetic.mocap.bvh import (  # noqa: E402
    BvhError,
    forward_kinematics,
    read_bvh,
    subsample,
    to_smpl_frame,
)
from eft.synthetic.mocap.retarget import (  # noqa: E402
    TORSO_JOINTS,
    MocapTargets,
    mocap_targets,
    retarget,
    retarget_bones,
)
from eft.synthetic.mocap.skeleton_maps import SKELETON_MAPS, skeleton_map, smpl_joint_positions  # noqa: E402
from eft.synthetic.pose_bank import (  # noqa: E402
    ACKNOWLEDGEMENT,
    CMU_TERMS,
    dedup_poses,
    pose_distance_deg,
)

DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "data" / "mocap"
ASSETS = REPO_ROOT / "eft" / "synthetic" / "assets"
DEFAULT_OUT = ASSETS / "pose_bank.npz"
CARD = ASSETS / "POSE_BANK.md"
LICENCE = ASSETS / "LICENSE-pose-bank.md"

# Leading frames that are a reference pose (and the blend out of it), per skeleton.
LEADING_REFERENCE_FRAMES = {"daz43": 5, "cmu31": 1}
SOURCE = ("CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), as BVH: the "
          "'DAZ-friendly' 43-joint conversion (salsa, Indian dance, martial arts, subjects "
          "02-16) and 31-joint CMU clips 01_01, 131_01-03; see shared/data/LICENSES.md")

_README_RATE = re.compile(r"^\s*(\S+)\s+frame\s*rate\s*[:=]?\s*([0-9.]+)\s*$", re.IGNORECASE)


@dataclass
class Checks:
    """Thresholds of the per-frame sanity checks (step 3 of the recipe)."""

    min_root_height: float = 0.10
    max_below_floor: float = 0.50
    max_root_speed: float = 8.0
    max_bone_speed_deg: float = 2000.0
    long_bone: float = 0.20
    min_segment_s: float = 0.25
    min_leg_gap: float = 0.04


@dataclass
class ClipData:
    name: str
    path: Path
    skeleton: str
    variant: str
    fps_native: float
    frames_raw: int
    drops: dict[str, int] = field(default_factory=dict)
    frames_valid: int = 0
    frame_index: np.ndarray | None = None
    targets: MocapTargets | None = None
    root_track: np.ndarray | None = None
    poses: np.ndarray | None = None
    residual: np.ndarray | None = None
    direction: np.ndarray | None = None
    limb_direction: np.ndarray | None = None


# ----------------------------------------------------------------------------- inputs


def readme_frame_rates(root: Path) -> dict[Path, float]:
    """``{folder: fps}`` from ``readme.txt`` lines ``<subfolder> framerate <fps>``."""
    rates: dict[Path, float] = {}
    for readme in sorted(root.rglob("*")):
        if not readme.is_file() or readme.name.lower() not in ("readme.txt", "readme"):
            continue
        for line in readme.read_text(errors="replace").splitlines():
            match = _README_RATE.match(line)
            if match:
                rates[(readme.parent / match.group(1)).resolve()] = float(match.group(2))
    return rates


def frame_rate_override(path: Path, rel: str, readme: dict[Path, float],
                        patterns: list[tuple[str, float]]) -> float | None:
    for pattern, fps in patterns:
        if fnmatch.fnmatch(rel, pattern):
            return fps
    resolved = path.resolve()
    for folder, fps in readme.items():
        if folder in resolved.parents:
            return fps
    return None


def _leg_gap(joints: np.ndarray) -> np.ndarray:
    """(T,) smallest distance between the left and the right thigh/shin axes."""
    idx = {n: i for i, n in enumerate(SMPL24_NAMES)}
    left = [("left_hip", "left_knee"), ("left_knee", "left_ankle")]
    right = [("right_hip", "right_knee"), ("right_knee", "right_ankle")]
    s = np.linspace(0.0, 1.0, 11)[None, :, None]
    gap = np.full(joints.shape[0], np.inf)
    for a0, a1 in left:
        pa = joints[:, idx[a0], None] + (joints[:, idx[a1]] - joints[:, idx[a0]])[:, None] * s
        for b0, b1 in right:
            pb = (joints[:, idx[b0], None]
                  + (joints[:, idx[b1]] - joints[:, idx[b0]])[:, None] * s)
            d = np.linalg.norm(pa[:, :, None] - pb[:, None, :], axis=-1).min(axis=(1, 2))
            gap = np.minimum(gap, d)
    return gap


def frame_checks(positions: np.ndarray, joints: np.ndarray, mask: np.ndarray, fps: float,
                 skip: int, checks: Checks) -> tuple[np.ndarray, dict[str, int]]:
    """Valid-frame mask of one clip at its native rate, and how many each check dropped.

    ``positions`` (T, J, 3) all BVH joints (End Sites included) and ``joints`` (T, 24, 3)
    the SMPL-mapped ones, metres, y up.
    """
    num = positions.shape[0]
    reasons: dict[str, np.ndarray] = {}
    reasons["reference"] = np.arange(num) < skip
    height = positions[..., 1]
    floor = float(np.median(height.min(axis=1))) if num else 0.0
    reasons["floor"] = ((positions[:, 0, 1] - floor < checks.min_root_height)
                        | (height.min(axis=1) < floor - checks.max_below_floor))
    # Discontinuities between consecutive frames.
    jump = np.zeros(max(num - 1, 0), dtype=bool)
    if num > 1:
        root_speed = np.linalg.norm(np.diff(positions[:, 0], axis=0), axis=-1) * fps
        jump |= root_speed > checks.max_root_speed
        bones, _ = retarget_bones(mask, mask.astype(float), trunk=False)
        vec = joints[:, bones[:, 0]] - joints[:, bones[:, 1]]
        length = np.linalg.norm(vec, axis=-1)
        long = np.median(length, axis=0) >= checks.long_bone
        if long.any():
            unit = vec[:, long] / np.maximum(length[:, long, None], 1e-9)
            cos = np.clip((unit[1:] * unit[:-1]).sum(-1), -1.0, 1.0)
            speed = np.degrees(np.arccos(cos)).max(axis=1) * fps
            jump |= speed > checks.max_bone_speed_deg
    at_jump = np.zeros(num, dtype=bool)
    at_jump[:-1] |= jump
    at_jump[1:] |= jump
    reasons["jump"] = at_jump
    # Short stretches between discontinuities (or between a jump and the clip's start).
    bad = reasons["reference"] | reasons["floor"] | at_jump
    short = np.zeros(num, dtype=bool)
    min_len = max(1, int(math.ceil(checks.min_segment_s * fps)))
    start = None
    for t in range(num + 1):
        good = t < num and not bad[t]
        if good and start is None:
            start = t
        elif not good and start is not None:
            if t - start < min_len:
                short[start:t] = True
            start = None
    reasons["short"] = short
    idx = {n: i for i, n in enumerate(SMPL24_NAMES)}
    legs = ["left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle"]
    if all(mask[idx[n]] for n in legs) and num:
        reasons["legs"] = _leg_gap(joints) < checks.min_leg_gap
    else:
        reasons["legs"] = np.zeros(num, dtype=bool)
    valid = np.ones(num, dtype=bool)
    counts = {}
    for key, flagged in reasons.items():  # count each frame under its first reason
        counts[key] = int((flagged & valid).sum())
        valid &= ~flagged
    return valid, counts


# ------------------------------------------------------------------------------ steps


def load_clips(root: Path, args, checks: Checks
               ) -> tuple[list[ClipData], list[str], dict[str, float]]:
    files = sorted(root.rglob("*.bvh"))
    if not files:
        raise SystemExit(f"no .bvh files under {root}")
    readme = readme_frame_rates(root)
    patterns = []
    for item in args.frame_rate:
        glob, _, fps = item.rpartition("=")
        patterns.append((glob, float(fps)))
    clips: list[ClipData] = []
    skipped: list[str] = []
    overrides: dict[str, float] = {}
    for path in tqdm(files, desc="read + check", unit="clip"):
        rel = path.relative_to(root).as_posix()
        name = rel[:-4]
        fps_override = frame_rate_override(path, rel, readme, patterns)
        if fps_override is not None:
            overrides[rel] = fps_override
        try:
            clip = read_bvh(path, frame_time=None if fps_override is None else 1 / fps_override)
            smap = skeleton_map(clip)
        except BvhError as exc:
            skipped.append(f"{rel}: {exc}")
            continue
        positions = to_smpl_frame(forward_kinematics(clip), units="m", up=args.up)
        joints, mask = smpl_joint_positions(clip, positions)
        skip = (args.skip_start if args.skip_start is not None
                else LEADING_REFERENCE_FRAMES.get(smap.skeleton, 1))
        valid, drops = frame_checks(positions, joints, mask, clip.fps, skip, checks)
        stride = max(1, int(round(subsample(clip, args.fps).frame_time / clip.frame_time)))
        grid = np.arange(0, clip.num_frames, stride)
        keep = grid[valid[grid]]
        drops["subsample"] = int(valid.sum() - len(keep))
        if args.max_frames_per_clip and len(keep) > args.max_frames_per_clip:
            pick = np.unique(np.linspace(0, len(keep) - 1, args.max_frames_per_clip).round())
            drops["cap"] = int(len(keep) - len(pick))
            keep = keep[pick.astype(int)]
        else:
            drops["cap"] = 0
        targets = mocap_targets(clip, keep, approx_weight=args.approx_weight, up=args.up)
        data = ClipData(
            name=name, path=path, skeleton=smap.skeleton, variant=smap.variant,
            fps_native=clip.fps, frames_raw=clip.num_frames, drops=drops,
            frames_valid=int(valid.sum()), frame_index=keep, targets=targets,
            root_track=positions[::stride, 0])
        clips.append(data)
    return clips, skipped, overrides


def retarget_clips(clips: list[ClipData], body, args) -> None:
    """Retarget every clip; clips with the same joint mask and weights go through
    ``retarget`` together in batches of ``--batch`` frames (frames are independent, and
    the torso reference is given per frame), which saves per-call overhead."""
    torso = {SMPL24_NAMES.index(n) for n in TORSO_JOINTS}
    families: dict[tuple, list[ClipData]] = defaultdict(list)
    for c in clips:
        c.poses = np.zeros((0, 72), np.float32)
        c.residual = np.zeros((0, 24), np.float32)
        c.direction = np.zeros((0,), np.float32)
        c.limb_direction = np.zeros((0,), np.float32)
        if len(c.frame_index):
            t = c.targets
            families[(t.mask.tobytes(), t.weights.tobytes())].append(c)
    total = sum(len(c.frame_index) for c in clips)
    with tqdm(total=total, desc="retarget", unit="frame") as bar:
        for members in families.values():
            # Chunks of whole clips, about --batch frames each.
            chunks: list[list[ClipData]] = [[]]
            for c in members:
                if chunks[-1] and sum(len(m.frame_index) for m in chunks[-1]) >= args.batch:
                    chunks.append([])
                chunks[-1].append(c)
            for chunk in chunks:
                t0 = chunk[0].targets
                joints = np.concatenate([c.targets.joints for c in chunk])
                calibrate = not args.no_calibration
                res = retarget(
                    joints, t0.mask, t0.weights, body, iters=args.iters, lr=args.lr,
                    batch=max(args.batch, len(joints)),
                    segment_rotations=np.concatenate(
                        [c.targets.segment_rotations for c in chunk]) if calibrate else None,
                    reference_joints=np.concatenate(
                        [np.broadcast_to(c.targets.reference_joints, c.targets.joints.shape)
                         for c in chunk]) if calibrate else None)
                limb = np.array([not (int(a) in torso and int(b) in torso)
                                 for a, b in res.bones])
                start = 0
                for c in chunk:
                    sl = slice(start, start + len(c.frame_index))
                    start = sl.stop
                    c.poses = res.pose[sl]
                    c.residual = res.residual_mm[sl]
                    c.direction = np.nanmean(res.direction_deg[sl], axis=1)
                    values = res.direction_deg[sl][:, limb].ravel()
                    c.limb_direction = values[~np.isnan(values)]
                bar.update(len(joints))


def session_groups(clips: list[ClipData]) -> list[int]:
    """Group id per clip: clips of one folder with the same length whose roots stay
    within 3 m of each other (median) were recorded together and split together."""
    group = list(range(len(clips)))

    def find(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    by_key = defaultdict(list)
    for i, c in enumerate(clips):
        by_key[(c.path.parent, c.frames_raw)].append(i)
    for members in by_key.values():
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1:]:
                ta, tb = clips[a].root_track, clips[b].root_track
                n = min(len(ta), len(tb))
                if n and np.median(np.linalg.norm(ta[:n] - tb[:n], axis=-1)) < 3.0:
                    group[find(b)] = find(a)
    return [find(i) for i in range(len(clips))]


def choose_val(clips: list[ClipData], groups: list[int], fraction: float, seed: int,
               depth: int) -> set[int]:
    """Clip indices that go to validation (whole session groups, per activity)."""
    rng = np.random.default_rng(seed)
    strata: dict[str, list[int]] = defaultdict(list)
    for g in sorted(set(groups)):
        first = min(i for i in range(len(clips)) if groups[i] == g)
        folder = "/".join(Path(clips[first].name).parent.parts[:depth]) or "."
        strata[folder].append(g)
    val: set[int] = set()
    for folder in sorted(strata):
        members = strata[folder]
        if fraction <= 0 or len(members) < 3:
            continue
        count = max(1, int(round(fraction * len(members))))
        chosen = rng.choice(len(members), size=count, replace=False)
        for k in chosen:
            val.update(i for i in range(len(clips)) if groups[i] == members[k])
    return val


def assemble(clips: list[ClipData], val: set[int], args) -> dict[str, np.ndarray]:
    rows: dict[str, list] = defaultdict(list)
    n = 0
    stats = Counter()
    for ci, c in enumerate(clips):
        if len(c.poses) == 0:
            continue
        keep = dedup_poses(c.poses, args.dedup_deg)
        stats["before_dedup"] += len(c.poses)
        stats["after_dedup"] += len(keep)
        poses = c.poses[keep].astype(np.float64)
        mirrors = flip_smpl_pose(poses)
        distinct = pose_distance_deg(poses, mirrors) >= args.dedup_deg
        res = np.nanmean(c.residual[keep][:, c.targets.mask], axis=1)
        split = 1 if ci in val else 0
        for k in range(len(keep)):
            rows["poses"].append(poses[k])
            rows["clip"].append(ci)
            rows["split"].append(split)
            rows["mirrored"].append(False)
            rows["mirror_of"].append(-1)
            rows["frame"].append(c.frame_index[keep[k]])
            rows["residual_mm"].append(res[k])
            rows["direction_deg"].append(c.direction[keep[k]])
            src = n
            n += 1
            if distinct[k]:
                rows["poses"].append(mirrors[k])
                rows["clip"].append(ci)
                rows["split"].append(split)
                rows["mirrored"].append(True)
                rows["mirror_of"].append(src)
                rows["frame"].append(c.frame_index[keep[k]])
                rows["residual_mm"].append(res[k])
                rows["direction_deg"].append(c.direction[keep[k]])
                n += 1
            else:
                stats["symmetric"] += 1
    out = {
        "poses": np.asarray(rows["poses"], dtype=np.float16).reshape(-1, 72),
        "clip": np.asarray(rows["clip"], dtype=np.int32),
        "split": np.asarray(rows["split"], dtype=np.uint8),
        "mirrored": np.asarray(rows["mirrored"], dtype=bool),
        "mirror_of": np.asarray(rows["mirror_of"], dtype=np.int32),
        "frame": np.asarray(rows["frame"], dtype=np.int32),
        "residual_mm": np.asarray(rows["residual_mm"], dtype=np.float16),
        "direction_deg": np.asarray(rows["direction_deg"], dtype=np.float16),
    }
    out["_stats"] = stats
    return out


# ---------------------------------------------------------------------------- reports


def residual_table(clips: list[ClipData]) -> tuple[str, dict]:
    """Per-joint median / 90th-percentile residual (mm) by skeleton family, as Markdown."""
    families = sorted({c.skeleton for c in clips if len(c.poses)})
    numbers: dict[str, dict[str, list]] = {}
    header = "| joint | " + " | ".join(f"{f} median | {f} p90" for f in families) + " |"
    lines = [header, "|---|" + "---:|" * (2 * len(families))]
    per_family = {}
    for f in families:
        res = np.concatenate([c.residual for c in clips if c.skeleton == f and len(c.poses)])
        approx = set().union(*[c.targets.approximate for c in clips if c.skeleton == f])
        per_family[f] = (res, approx)
        numbers[f] = {}
    for j, name in enumerate(SMPL24_NAMES):
        cells = []
        for f in families:
            res, approx = per_family[f]
            col = res[:, j]
            if np.isnan(col).all():
                cells += ["-", "-"]
                continue
            med, p90 = np.nanmedian(col), np.nanpercentile(col, 90)
            star = "*" if name in approx else ""
            cells += [f"{med:.0f}{star}", f"{p90:.0f}"]
            numbers[f][name] = [round(float(med), 1), round(float(p90), 1)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for f in families:
        res, approx = per_family[f]
        exact = [j for j, n in enumerate(SMPL24_NAMES)
                 if n not in approx and not np.isnan(res[:, j]).all()]
        mapped = [j for j in range(24) if not np.isnan(res[:, j]).all()]
        numbers[f]["_exact_median"] = round(float(np.nanmedian(res[:, exact])), 1)
        numbers[f]["_mapped_median"] = round(float(np.nanmedian(res[:, mapped])), 1)
        lines.append(f"| median, exact joints ({f}) | {numbers[f]['_exact_median']:.0f} |"
                     + " |" * (2 * len(families) - 1))
    return "\n".join(lines), numbers


def _summarise_rates(overrides: dict[str, float], clips: list[ClipData]) -> dict[str, str]:
    """``{folder: "60 fps (header 120)"}`` for folders whose clips had their rate overridden."""
    header = {}
    for c in clips:
        rel = c.name + ".bvh"
        if rel in overrides:
            folder = str(Path(rel).parent)
            native = 1.0 / read_bvh_header_frame_time(c.path)
            header[folder] = f"{overrides[rel]:g} fps (header {native:.4g})"
    return header


def read_bvh_header_frame_time(path: Path) -> float:
    """The ``Frame Time:`` of a BVH file's header (without parsing the motion)."""
    with open(path, errors="replace") as fh:
        for line in fh:
            if line.strip().lower().startswith("frame time"):
                return float(line.split(":", 1)[1])
    return float("nan")


def write_card(path: Path, info: dict, table: str) -> None:
    s = info
    caveats = CAVEATS_GENERAL + (CAVEATS_CMU if s["shipped"] else "")
    skel_lines = "\n".join(f"| {k} | {v} |" for k, v in sorted(s["clips_per_skeleton"].items()))
    stage_lines = "\n".join(f"| {k} | {v} |" for k, v in s["stages"].items())
    text = f"""# Pose bank (`pose_bank.npz`)

SMPL body poses retargeted from CMU motion capture, for pose priors, augmentation
and sampling.  Load it with `eft.synthetic.pose_bank.load_pose_bank()` (the package data
entry `"eft.data" = ["assets/*"]` must be present for installed copies).

**Data source and terms.** {CMU_TERMS}
Anything derived from this bank must carry the acknowledgement:
"{ACKNOWLEDGEMENT}" (see `LICENSE-pose-bank.md`; the text is also stored in the npz
as `acknowledgement`).

## Contents

| key | shape, dtype | meaning |
|---|---|---|
| `poses` | (N, 72) float16 | SMPL axis-angle; joint 0 = global orientation (note 1) |
| `clip` | (N,) int32 | index into `clip_names` |
| `clip_names` | (C,) str | source clip (path under the mocap root, no `.bvh`) |
| `clip_skeleton` | (C,) str | BVH skeleton (naming variant) of each clip |
| `clip_fps` | (C,) float32 | native frame rate used for each clip |
| `split` | (N,) uint8 | 0 train, 1 val (whole clips) |
| `mirrored` | (N,) bool | left/right mirror (`flip_smpl_pose`) of row `mirror_of` |
| `mirror_of` | (N,) int32 | source row of a mirrored pose, -1 for originals |
| `frame` | (N,) int32 | frame of the source clip at its native rate |
| `residual_mm` | (N,) float16 | mean hip-centre-relative joint residual of the fit (mm) |
| `direction_deg` | (N,) float16 | mean bone-direction error of the fit (degrees) |
| `fps`, `source` | scalars | sampling rate, provenance |
| `acknowledgement`, `licence` | str | required acknowledgement, CMU terms |
| `build` | str | build settings and statistics (JSON) |

Note 1: y up, facing +z at zero rotation, as captured (the subject's heading varies);
replace it if you only want the articulation.

**{s["poses"]} poses** ({s["originals"]} retargeted + {s["mirrors"]} mirrored) from
{s["clips_used"]} clips; train {s["train"]} / val {s["val"]} poses
({s["train_clips"]} / {s["val_clips"]} clips).  Validation clips: {", ".join(s["val_names"])}.
File size {s["size_mb"]:.2f} MB.

## How it was built

`python scripts/build_pose_bank.py {s["argv"]}` ({s["build_s"]:.0f} s on
{s["machine"]}; torch {s["torch"]}).  The script's docstring lists the steps; in short:
BVH frames at {s["fps"]:g} fps, leading reference frames and broken frames dropped,
direction-based retargeting onto the open body model `{s["body"]}` (betas 0; see
`eft/synthetic/mocap/retarget.py`), per-clip deduplication at {s["dedup_deg"]:g} degrees
(every joint within that angle of a kept pose, heading ignored), mirrored copies, split by clip
(seed {s["seed"]}, val fraction {s["val_fraction"]:g} per activity, recording partners
together).

Clips per skeleton:

| skeleton | clips |
|---|---|
{skel_lines}

Frame rates overridden: {"; ".join(f"{k}: {v}" for k, v in s["frame_rates"].items())
                         or "none"}.
Clips that gave no pose: {"; ".join(s["empty"]) or "none"}.
Clips with an unknown skeleton: {"; ".join(s["skipped"]) or "none"}.

Frames through the stages (native rate until subsampling):

| stage | frames |
|---|---|
{stage_lines}

Deduplication kept {s["dedup_ratio"]:.1%} of the retargeted frames; {s["symmetric"]} poses
were their own mirror image within the threshold and got no mirrored copy.

## Fit quality

Per-joint residual in mm, `|(body_j - body_hips) - (mocap_j - mocap_hips)|` with both
skeletons centred on their hip centres, over all retargeted frames (before
deduplication).  `*` marks joints the skeleton map calls approximate (the mocap joint
is not where SMPL puts that joint).  Most of the residual is the skeletons' different
proportions (e.g. the CMU-31 torso is ~6 cm shorter and its neck sits at shoulder
height), which no pose removes.  What the fit controls, bone *directions*: the per-pose mean
angle between fitted and target directions over all compared bones has median
{s["dir_median"]:.2f} degrees (90th percentile {s["dir_p90"]:.1f}); limb bones alone,
which are compared with the raw mocap directions, median {s["limb_median"]:.2f}
(90th percentile {s["limb_p90"]:.1f}).

{table}

## Rebuilding, other data

* From the full CMU database or your own BVH files:
  `python scripts/build_pose_bank.py --root /path/to/bvh --out my_bank.npz`
  (add `--frame-rate 'salsa/*=60'` for clips whose header has the wrong rate; see
  `--help` for the thresholds).  Use the bank with `load_pose_bank("my_bank.npz")`.
* Supported skeletons are those of `eft.synthetic.mocap.skeleton_maps`: CMU-31
  ({", ".join(v for v in SKELETON_MAPS if v.startswith("cmu31"))}) and the
  43-joint DAZ-friendly skeleton.  Clips with other joint names are skipped and listed.
  To add one, add a `SkeletonMap` (SMPL joint name -> BVH joint name, with the
  approximately placed joints listed) to `SKELETON_MAPS` in `eft/synthetic/mocap/skeleton_maps.py`,
  and if its files start with a reference pose, its frame count to
  `LEADING_REFERENCE_FRAMES` in the script (or pass `--skip-start`).
* Z-up files: `--up z`.  The torso calibration assumes the BVH rest pose (all channels
  zero) stands upright; pass `--no-calibration` if your skeleton's does not.

{caveats}"""
    path.write_text(text)


CAVEATS_GENERAL = """## Caveats

* Twist about a bone (upper arm, forearm, thigh) is not visible in joint positions;
  it comes from the hinge prior (knees and elbows turn about one axis) and a weak
  pull towards the rest pose, not from the mocap.  Hands, feet and head keep their
  rest rotation (the BVH joints give no SMPL-compatible orientation for them).
* The torso calibration takes each BVH file's rest pose (all channels zero) as an
  upright stance.
"""

CAVEATS_CMU = """* The DAZ-43 clips share one standard skeleton rather than each subject's own.
* `cmu_subjects/09/09_10` gives no pose: after its broken start (root 1.9 m below the
  floor, then a 2.9 m jump) its legs keep flipping (shins pointing up, 30 degrees per
  1/120 s) and almost every stretch between flips is shorter than 0.25 s.
  `cmu_daz43/standard.bvh` is only the 3-frame reference skeleton.
* Some clips contain tracking flips (e.g. a knee turning 150 degrees within 4 frames in
  `indian/07`); the discontinuity frames are dropped, the stretches between them are
  kept unless the legs interpenetrate.
* The salsa clips are recorded in pairs (partners of one take, e.g. `salsa/01` and
  `salsa/16`); the split keeps partners together.
* Amateur subjects in a lab; the activity mix (salsa, Indian dance, martial arts,
  walking, running, jumping) is far from everyday poses, and salsa dominates.
"""


LICENCE_TEXT = f"""# Licence of the pose bank (`pose_bank.npz`)

The poses in `pose_bank.npz` are derived from the CMU Graphics Lab Motion Capture
Database, http://mocap.cs.cmu.edu, through BVH conversions of its clips (the
43-joint "DAZ-friendly" conversion and CMU's 31-joint BVH files).

Terms of the CMU database (from mocap.cs.cmu.edu): the data is free for all uses,
including commercial ones; you may not resell the data as data, even converted to
another form.

Required acknowledgement, to be reproduced with anything that uses or redistributes
this bank or data derived from it:

> {ACKNOWLEDGEMENT}

The same text is stored inside `pose_bank.npz` under the key `acknowledgement`.
The retargeting code (`eft/synthetic/mocap/retarget.py`, `scripts/build_pose_bank.py`) is part of
this project and under the project's licence.
"""


# ------------------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                    help="folder searched recursively for *.bvh (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz")
    ap.add_argument("--fps", type=float, default=20.0, help="sampling rate, 10-30 (default 20)")
    ap.add_argument("--val-fraction", type=float, default=0.15,
                    help="fraction of each activity's clips held out (default 0.15)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    ap.add_argument("--max-frames-per-clip", type=int, default=0,
                    help="thin clips to at most this many frames after subsampling (0: off)")
    ap.add_argument("--dedup-deg", type=float, default=7.5,
                    help="per-joint angle below which two poses of a clip are duplicates")
    ap.add_argument("--approx-weight", type=float, default=0.3,
                    help="retargeting weight of approximately placed joints (others: 1)")
    ap.add_argument("--stratum-depth", type=int, default=2,
                    help="path components of a clip's folder that name its activity")
    ap.add_argument("--frame-rate", action="append", default=[], metavar="GLOB=FPS",
                    help="override the frame rate of clips whose relative path matches")
    ap.add_argument("--skip-start", type=int, default=None,
                    help="leading frames to drop in every clip (default: per skeleton)")
    ap.add_argument("--up", choices=("y", "z"), default="y", help="up axis of the BVH files")
    ap.add_argument("--no-calibration", action="store_true",
                    help="retarget with raw torso bone directions (no rest-pose calibration)")
    ap.add_argument("--iters", type=int, default=100, help="Adam steps per frame")
    ap.add_argument("--lr", type=float, default=0.02, help="Adam learning rate")
    ap.add_argument("--batch", type=int, default=2048, help="frames optimised together")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: the batches are small, and more threads "
                         "slow down badly when other processes share the cores; 0: torch's "
                         "default)")
    ap.add_argument("--card", type=Path, default=None,
                    help="write the Markdown card here (default: POSE_BANK.md and the "
                         "licence file beside the shipped bank only)")
    args = ap.parse_args(argv)
    if not 10 <= args.fps <= 30:
        ap.error("--fps must be between 10 and 30")
    if not 0 <= args.val_fraction < 1:
        ap.error("--val-fraction must be in [0, 1)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.root.expanduser().resolve()
    if not root.is_dir():
        raise SystemExit(f"--root {root} is not a folder")
    checks = Checks()
    body = BodyModel.load()

    clips, skipped, overrides = load_clips(root, args, checks)
    retarget_clips(clips, body, args)
    groups = session_groups(clips)
    val = choose_val(clips, groups, args.val_fraction, args.seed, args.stratum_depth)
    bank = assemble(clips, val, args)
    stats = bank.pop("_stats")
    used = sorted({int(c) for c in bank["clip"]})
    # Keep only clips that contributed poses; renumber.
    renumber = {old: new for new, old in enumerate(used)}
    bank["clip"] = np.array([renumber[int(c)] for c in bank["clip"]], dtype=np.int32)
    names = [clips[i].name for i in used]
    build_s = time.time() - start

    # ---- statistics
    raw = sum(c.frames_raw for c in clips)
    drop_total = Counter()
    for c in clips:
        drop_total.update(c.drops)
    stages = {
        "native frames read": raw,
        "- reference frames": drop_total["reference"],
        "- root below / under the floor": drop_total["floor"],
        "- at a discontinuity": drop_total["jump"],
        "- short stretches between discontinuities": drop_total["short"],
        "- interpenetrating legs": drop_total["legs"],
        "valid native frames": sum(c.frames_valid for c in clips),
        f"after subsampling to {args.fps:g} fps": sum(
            len(c.frame_index) + c.drops.get("cap", 0) for c in clips),
        "after the per-clip cap": sum(len(c.frame_index) for c in clips),
        "retargeted": stats["before_dedup"],
        "after deduplication": stats["after_dedup"],
        "with mirrored copies (bank)": len(bank["poses"]),
    }
    table, numbers = residual_table(clips)
    all_dir = np.concatenate([c.direction for c in clips if len(c.poses)])
    n_val = int(bank["split"].sum())
    val_names = sorted({names[int(c)] for c, s in zip(bank["clip"], bank["split"],
                                                       strict=True) if s == 1})
    limb = np.concatenate([c.limb_direction for c in clips if len(c.poses)] or [np.zeros(1)])
    info = {
        "poses": len(bank["poses"]),
        "originals": int((~bank["mirrored"]).sum()),
        "mirrors": int(bank["mirrored"].sum()),
        "clips_used": len(names),
        "train": len(bank["poses"]) - n_val,
        "val": n_val,
        "train_clips": len(names) - len(val_names),
        "val_clips": len(val_names),
        "val_names": val_names,
        "clips_per_skeleton": dict(Counter(c.variant for c in clips)),
        "stages": stages,
        "dedup_ratio": stats["after_dedup"] / max(stats["before_dedup"], 1),
        "symmetric": stats["symmetric"],
        "dir_median": float(np.nanmedian(all_dir)),
        "dir_p90": float(np.nanpercentile(all_dir, 90)),
        "limb_median": float(np.nanmedian(limb)),
        "limb_p90": float(np.nanpercentile(limb, 90)),
        "fps": args.fps,
        "dedup_deg": args.dedup_deg,
        "seed": args.seed,
        "val_fraction": args.val_fraction,
        "body": body.name,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, torch threads: {torch.get_num_threads()}",
        "argv": " ".join(sys.argv[1:]) if argv is None else " ".join(argv),
        "build_s": build_s,
        "residual_mm": numbers,
        "skipped": skipped,
        "frame_rates": _summarise_rates(overrides, clips),
        "shipped": root == DEFAULT_ROOT.resolve(),
        "empty": [f"{c.name} ({c.frames_raw} frames; dropped: "
                  + ", ".join(f"{k} {v}" for k, v in c.drops.items() if v) + ")"
                  for i, c in enumerate(clips) if i not in renumber],
    }

    # ---- write
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        **bank,
        clip_names=np.array(names, dtype=str),
        clip_skeleton=np.array([clips[i].variant for i in used], dtype=str),
        clip_fps=np.array([clips[i].fps_native for i in used], dtype=np.float32),
        fps=np.float32(args.fps),
        source=np.array(SOURCE),
        acknowledgement=np.array(ACKNOWLEDGEMENT),
        licence=np.array(CMU_TERMS),
        build=np.array(json.dumps(info, default=float)),
    )
    info["size_mb"] = args.out.stat().st_size / 1e6
    card = args.card
    if card is None and args.out.resolve() == DEFAULT_OUT.resolve():
        card = CARD
        LICENCE.write_text(LICENCE_TEXT)
    if card is not None:
        write_card(card, info, table)

    # ---- print
    print(f"\nclips per skeleton: {info['clips_per_skeleton']}")
    if skipped:
        print("skipped:\n  " + "\n  ".join(skipped))
    if info["empty"]:
        print("clips without poses:\n  " + "\n  ".join(info["empty"]))
    print("\nframes per stage:")
    for k, v in stages.items():
        print(f"  {k:45s} {v:8d}")
    print(f"\ndedup kept {info['dedup_ratio']:.1%}; {stats['symmetric']} symmetric poses "
          "without a mirror")
    print("\nper-joint residual (mm; * = approximate joint):")
    print(table)
    print(f"\nbone directions (per-pose mean): median {info['dir_median']:.2f} deg, "
          f"p90 {info['dir_p90']:.1f}; "
          f"limb bones median {info['limb_median']:.2f}, p90 {info['limb_p90']:.1f}")
    print(f"\nbank: {info['poses']} poses ({info['originals']} + {info['mirrors']} mirrored), "
          f"train {info['train']} / val {info['val']} poses, "
          f"{info['train_clips']} / {info['val_clips']} clips")
    print(f"val clips: {', '.join(val_names)}")
    print(f"wrote {args.out} ({info['size_mb']:.2f} MB) in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
