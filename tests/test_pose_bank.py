"""Retargeting (eft.synthetic.mocap.retarget), the shipped pose bank and its building blocks.

Bounds for the real clips were set from measurements on these exact frames (20 frames
spread over each clip, default settings); the measured values are in the comments.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from eft.body.joints import SMPL24_NAMES, flip_smpl_pose
from eft.errors import EftError
from eft.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle
from eft.synthetic.mocap.bvh import forward_kinematics, read_bvh
from eft.synthetic.mocap.retarget import (
    HINGE_AXES,
    TORSO_JOINTS,
    mocap_targets,
    rest_joints,
    retarget,
    skeleton_fk,
)
from eft.synthetic.mocap.skeleton_maps import smpl_joint_positions
from eft.synthetic.pose_bank import (
    ACKNOWLEDGEMENT,
    PoseBank,
    PoseBankError,
    dedup_poses,
    default_pose_bank_path,
    load_pose_bank,
    pose_distance_deg,
    remove_heading,
)
from tests.helpers import load_script, require_file

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "eft" / "synthetic" / "assets"
INDEX = {n: i for i, n in enumerate(SMPL24_NAMES)}

# (clip, skeleton variant, bound on the median residual of mapped non-approximate
# joints in mm, measured)
REAL_CLIPS = [
    ("cmu_daz43/cmu_subjects/02/02_01.bvh", "daz43", 55.0),  # 44 mm
    ("cmu_daz43/martial/04.bvh", "daz43", 55.0),  # 46 mm
    ("cmu_31/131_01.bvh", "cmu31_anatomical", 80.0),  # 56 mm
    ("cmu_daz43/cmu_subjects/16/16_01.bvh", "cmu31_asf", 85.0),  # 70 mm
]


# Retargeting runs many small batches: one torch thread is as fast on an idle machine and
# far faster on a busy one (no threads spinning on a taken core).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bank():
    return load_pose_bank()


def _plausible_poses(n: int, seed: int) -> torch.Tensor:
    """Random poses with knees and elbows bent about their natural axis only."""
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(n, 24, 3, generator=g) * 0.3
    for name, axis in HINGE_AXES.items():
        pose[:, INDEX[name]] = torch.tensor(axis) * torch.rand(n, 1, generator=g) * 1.6
    for name in ("left_collar", "right_collar"):
        pose[:, INDEX[name]] *= 0.3
    pose[:, 0] = torch.randn(n, 3, generator=g)
    return pose


# ------------------------------------------------------------------------- retargeting


def test_skeleton_fk_matches_body_model(body):
    pose = torch.randn(6, 24, 3, generator=torch.Generator().manual_seed(1)) * 0.5
    with torch.no_grad():
        ref = body(pose).joints
        fk = skeleton_fk(axis_angle_to_rotmat(pose), rest_joints(body))
    assert torch.allclose(fk, ref, atol=1e-5)


def test_retarget_recovers_the_body_models_own_joints(body):
    """Targets made by the body model itself (betas 0) are reproduced to ~1 mm."""
    pose = _plausible_poses(16, seed=0)
    transl = torch.randn(16, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        target = body(pose, transl=transl).joints.double().numpy()
    result = retarget(target, np.ones(24, bool), np.ones(24), body)
    assert result.pose.shape == (16, 72) and result.transl.shape == (16, 3)
    # Independent check: pose the body model with the result.
    with torch.no_grad():
        out = body(torch.as_tensor(result.pose), transl=torch.as_tensor(result.transl))
    err_mm = 1000 * np.linalg.norm(out.joints.double().numpy() - target, axis=-1)
    assert np.median(err_mm) < 1.0  # measured 0.5 mm
    assert err_mm.max() < 5.0  # measured 1.9 mm
    assert np.nanmax(result.residual_mm) < 5.0
    assert np.allclose(out.joints.numpy(), result.joints, atol=1e-4)
    # Knees and elbows bend about their natural axis, as generated.
    aa = result.pose.reshape(-1, 24, 3)
    for name, axis in HINGE_AXES.items():
        rot = aa[:, INDEX[name]]
        bent = np.linalg.norm(rot, axis=-1) > 0.35
        cos = (rot[bent] @ np.asarray(axis)) / np.linalg.norm(rot[bent], axis=-1)
        assert (cos > 0.9).all(), name


def test_retarget_partial_mask_and_batching(body):
    """Unmapped joints get NaN residuals; results do not depend on the batch size."""
    pose = _plausible_poses(6, seed=3)
    with torch.no_grad():
        target = body(pose).joints.double().numpy()
    mask = np.ones(24, bool)
    mask[[INDEX["spine2"], INDEX["left_hand"], INDEX["right_hand"]]] = False
    a = retarget(target, mask, np.ones(24), body, iters=30)
    b = retarget(target, mask, np.ones(24), body, iters=30, batch=4)
    assert np.isnan(a.residual_mm[:, ~mask]).all()
    assert np.isfinite(a.residual_mm[:, mask]).all()
    assert np.allclose(a.pose, b.pose, atol=1e-4)
    with pytest.raises(ValueError):
        retarget(target[:, :20], mask, np.ones(24), body)


@pytest.mark.parametrize("rel, variant, bound_mm", REAL_CLIPS,
                         ids=[c[0].split("/")[-1] for c in REAL_CLIPS])
def test_retarget_real_clips(shared_data, body, rel, variant, bound_mm):
    clip = read_bvh(require_file(shared_data / "mocap" / rel))
    frames = np.linspace(10, clip.num_frames - 1, 20).astype(int)
    targets = mocap_targets(clip, frames)
    assert targets.variant == variant
    result = targets.retarget(body)
    exact = targets.mask.copy()
    exact[[INDEX[n] for n in targets.approximate]] = False
    assert np.nanmedian(result.residual_mm[:, exact]) < bound_mm
    # Fitted bone directions: median over all compared pairs (measured 0.2-0.4 deg),
    # and limb bones, which are never calibrated, against the raw mocap (<= 0.5 deg).
    assert np.nanmedian(result.direction_deg) < 1.0
    torso = {INDEX[n] for n in TORSO_JOINTS}
    limb = np.array([not (a in torso and b in torso) for a, b in result.bones])
    assert not result.calibrated[limb].any()
    assert np.nanmax(result.direction_deg[:, limb]) < 2.0
    # The joints of the fit are what the body model gives for the pose.
    with torch.no_grad():
        out = body(torch.as_tensor(result.pose[:3]), transl=torch.as_tensor(result.transl[:3]))
    assert np.allclose(out.joints.numpy(), result.joints[:3], atol=1e-4)


def test_retarget_several_clips_in_one_call(shared_data, body):
    """Frames of clips with the same joint map can share a call (per-frame reference)."""
    paths = [shared_data / "mocap" / "cmu_31" / n for n in ("01_01.bvh", "131_01.bvh")]
    for p in paths:
        require_file(p)
    parts = [mocap_targets(read_bvh(p), [300, 600, 900]) for p in paths]
    assert (parts[0].mask == parts[1].mask).all()
    assert not np.allclose(parts[0].reference_joints, parts[1].reference_joints)
    alone = [t.retarget(body, iters=20) for t in parts]
    together = retarget(
        np.concatenate([t.joints for t in parts]), parts[0].mask, parts[0].weights, body,
        iters=20, segment_rotations=np.concatenate([t.segment_rotations for t in parts]),
        reference_joints=np.concatenate(
            [np.broadcast_to(t.reference_joints, t.joints.shape) for t in parts]))
    assert np.allclose(together.pose, np.concatenate([r.pose for r in alone]), atol=1e-4)


def test_mocap_targets_match_forward_kinematics(shared_data):
    path = require_file(shared_data / "mocap" / "cmu_31" / "131_02.bvh")
    clip = read_bvh(path)
    targets = mocap_targets(clip, [100, 200])
    joints, mask = smpl_joint_positions(clip, forward_kinematics(clip, [100, 200]))
    assert np.allclose(targets.joints, joints) and (targets.mask == mask).all()
    rot = targets.segment_rotations[:, mask]
    assert np.allclose(rot @ np.swapaxes(rot, -1, -2), np.eye(3), atol=1e-9)


# ---------------------------------------------------------------------- building blocks


def _rotate_joint(poses: np.ndarray, joint: int, axis, degrees: float) -> np.ndarray:
    """Poses with ``joint``'s rotation followed by an extra turn about ``axis``."""
    out = poses.copy()
    aa = torch.as_tensor(out[:, 3 * joint:3 * joint + 3])
    turn = torch.as_tensor(np.radians(degrees) * np.asarray(axis, dtype=np.float64))
    rot = axis_angle_to_rotmat(turn).expand(len(out), 3, 3) @ axis_angle_to_rotmat(aa)
    out[:, 3 * joint:3 * joint + 3] = rotmat_to_axis_angle(rot).numpy()
    return out


def test_dedup_removes_near_duplicates_and_keeps_distinct_poses():
    rng = np.random.default_rng(0)
    base = rng.normal(scale=0.5, size=(4, 72))
    exact = base[[1]].copy()
    near = _rotate_joint(base[[2]], INDEX["left_elbow"], (0, 1, 0), 2.0)
    turned = _rotate_joint(base[[3]], 0, (0, 1, 0), 120.0)  # same pose, other heading
    distinct = _rotate_joint(base[[0]], INDEX["right_knee"], (1, 0, 0), 20.0)
    poses = np.concatenate([base, exact, near, turned, distinct])
    assert list(dedup_poses(poses, 7.5)) == [0, 1, 2, 3, 7]
    # Heading matters when asked to.
    assert list(dedup_poses(poses, 7.5, ignore_heading=False)) == [0, 1, 2, 3, 6, 7]
    # Threshold 0 drops exact copies only; groups are deduplicated separately.
    assert list(dedup_poses(poses, 0.0, ignore_heading=False)) == [0, 1, 2, 3, 5, 6, 7]
    assert list(dedup_poses(np.concatenate([base, base]), 5.0,
                            groups=[0] * 4 + [1] * 4)) == list(range(8))
    d = pose_distance_deg(base[2], near[0])
    assert 1.9 < d < 2.1


def test_remove_heading_faces_forward():
    rng = np.random.default_rng(1)
    poses = rng.normal(scale=0.8, size=(10, 72))
    flat = remove_heading(poses)
    rot = axis_angle_to_rotmat(torch.as_tensor(flat[:, :3])).numpy()
    forward = rot[:, :, 2]
    assert np.allclose(forward[:, 0], 0, atol=1e-9) and (forward[:, 2] > 0).all()
    assert np.allclose(flat[:, 3:], poses[:, 3:])


# -------------------------------------------------------------------------- shipped bank


def test_shipped_bank_layout():
    path = default_pose_bank_path()
    assert path == ASSETS / "pose_bank.npz" and path.is_file()
    assert path.stat().st_size < 8e6
    with np.load(path, allow_pickle=False) as data:
        assert data["poses"].dtype == np.float16 and data["poses"].shape[1] == 72
        n = data["poses"].shape[0]
        assert 20_000 <= n <= 60_000
        assert data["clip"].dtype == np.int32 and data["clip"].shape == (n,)
        assert data["split"].dtype == np.uint8 and data["mirrored"].dtype == bool
        assert data["residual_mm"].dtype == np.float16
        assert data["clip_names"].dtype.kind == "U"
        assert str(data["acknowledgement"]) == ACKNOWLEDGEMENT
        assert "mocap.cs.cmu.edu" in str(data["source"])
        assert 10 <= float(data["fps"]) <= 30


def test_shipped_bank_contents(bank):
    n = len(bank)
    assert bank.poses.dtype == np.float32 and bank.poses.shape == (n, 72)
    assert np.isfinite(bank.poses).all() and np.isfinite(bank.residual_mm).all()
    norms = np.linalg.norm(bank.poses.reshape(n, 24, 3), axis=-1)
    assert norms.max() <= math.pi + 5e-3  # float16 rounding
    # Leaf joints were never fitted.
    for name in ("left_foot", "right_foot", "head", "left_hand", "right_hand"):
        assert (norms[:, INDEX[name]] == 0).all()
    assert 0 < np.median(bank.residual_mm) < 120
    assert bank.meta["acknowledgement"] == ACKNOWLEDGEMENT
    assert len(bank.clip_names) == len(set(bank.clip_names)) >= 50


def test_shipped_bank_split_is_by_clip(bank):
    train, val = bank.train(), bank.val()
    assert len(train) + len(val) == len(bank)
    train_clips, val_clips = set(train.clip.tolist()), set(val.clip.tolist())
    assert not train_clips & val_clips
    assert 0.08 < len(val) / len(bank) < 0.3
    # Several clips from several activities.
    assert len(val_clips) >= 8
    activities = {"/".join(bank.clip_names[c].split("/")[:2]) for c in val_clips}
    assert len(activities) >= 3
    only_val = load_pose_bank(split="val")
    assert len(only_val) == len(val) and (only_val.split == 1).all()


def test_shipped_bank_mirrors(bank):
    originals = ~bank.mirrored
    assert bank.mirrored.sum() >= 0.9 * originals.sum()
    mirrored = np.flatnonzero(bank.mirrored)
    src = bank.mirror_of[mirrored]
    assert (src >= 0).all() and not bank.mirrored[src].any()
    assert (bank.clip[src] == bank.clip[mirrored]).all()
    assert (bank.split[src] == bank.split[mirrored]).all()
    # Flipping a mirrored pose gives back its source (exactly: the flip only permutes
    # joints and negates components, which float16 represents exactly).
    pick = mirrored[:: max(1, len(mirrored) // 200)]
    back = flip_smpl_pose(bank.poses[pick].astype(np.float64))
    assert np.allclose(back, bank.poses[bank.mirror_of[pick]], atol=1e-3)
    # Subsets keep the pairing.
    val = bank.val()
    m = np.flatnonzero(val.mirrored)
    assert np.allclose(flip_smpl_pose(val.poses[m].astype(np.float64)),
                       val.poses[val.mirror_of[m]], atol=1e-3)


def test_shipped_bank_docs_and_licence():
    licence = (ASSETS / "LICENSE-pose-bank.md").read_text()
    assert ACKNOWLEDGEMENT in licence
    assert "resell" in licence or "resold" in licence
    card = (ASSETS / "POSE_BANK.md").read_text()
    assert "build_pose_bank.py --root" in card and ACKNOWLEDGEMENT in card


def test_sample_and_subset(bank):
    a, b = bank.sample(50, seed=3), bank.sample(50, seed=3)
    assert a.shape == (50, 72) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, bank.sample(50, seed=4))
    sub = bank.subset(np.arange(10))
    assert len(sub) == 10 and isinstance(sub, PoseBank)
    assert (sub.mirror_of < 10).all()


# ----------------------------------------------------------------------------- errors


def test_load_errors(tmp_path):
    with pytest.raises(PoseBankError, match="not found"):
        load_pose_bank(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(EftError, match="not a readable"):
        load_pose_bank(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, poses=np.zeros((2, 72), np.float16))
    with pytest.raises(PoseBankError, match="missing"):
        load_pose_bank(partial)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, poses=np.zeros((2, 72), np.float16), clip=np.array([0, 5], np.int32),
             clip_names=np.array(["a"]), split=np.zeros(2, np.uint8),
             mirrored=np.zeros(2, bool), residual_mm=np.zeros(2, np.float16),
             fps=np.float32(20))
    with pytest.raises(PoseBankError, match="clip indices"):
        load_pose_bank(wrong)
    with pytest.raises(ValueError):
        load_pose_bank(split="test")


# ------------------------------------------------------------ build script: frame checks


def _build_script():
    return load_script("build_pose_bank")


def test_frame_checks_drop_broken_frames(shared_data):
    """Without the reference-frame rule the generic checks still drop the broken start
    of 07_12 (root 1.9 m below the floor, then a 2.9 m jump) and keep the rest."""
    path = require_file(shared_data / "mocap" / "cmu_daz43" / "cmu_subjects" / "07" / "07_12.bvh")
    script = _build_script()
    clip = read_bvh(path)
    positions = forward_kinematics(clip)
    joints, mask = smpl_joint_positions(clip, positions)
    valid, drops = script.frame_checks(positions, joints, mask, clip.fps, 0, script.Checks())
    assert not valid[:3].any()
    assert drops["floor"] >= 2 and drops["jump"] >= 1
    assert valid.sum() > 0.9 * clip.num_frames
