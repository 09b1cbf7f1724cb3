"""Training augmentation: flips, rotations, reframing and image crops stay consistent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eft.body.joints import J49_FLIP_PERM, SPIN49_INDEX, flip_smpl_pose
from eft.geometry.crops import crop_px_to_norm, image_to_crop
from eft.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle
from eft.synthetic.exemplars import SyntheticConfig, generate
from eft.train.augment import (
    LEVEL_MASKS,
    AugmentConfig,
    flip_kp2d,
    flip_kp3d,
    flip_rotmat,
    make_batch,
    rotate_2d,
    rotate_3d,
)
from eft.train.data import TrainSet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clean_set(body):
    """Noise-free synthetic people with their exact 2D projections as targets."""
    g = torch.Generator().manual_seed(3)
    poses = (torch.randn(16, 72, generator=g) * 0.35).numpy()
    s = generate(poses, 24, 5, SyntheticConfig().clean(), body=body)
    return TrainSet.from_synthetic(s, target="clean")


def _with_2d_only_copy(train: TrainSet) -> tuple[int, TrainSet]:
    """``(n, train + the same n people again as 2D-only samples)``: no SMPL, no 3D."""
    from eft.train.data import concat_sets

    n = len(train)
    real = dataclasses.replace(train, has_smpl=torch.zeros(n, dtype=torch.bool),
                               has_kp3d=torch.zeros(n, dtype=torch.bool))
    return n, concat_sets([train, real])


def _random_rotmat(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_rotmat(torch.randn(n, 24, 3, generator=g) * 0.6)


def test_flip_twice_is_identity():
    g = torch.Generator().manual_seed(1)
    kp = torch.randn(5, 49, 3, generator=g)
    rot = _random_rotmat(5)
    assert torch.equal(flip_kp2d(flip_kp2d(kp)), kp)
    assert torch.equal(flip_kp3d(flip_kp3d(kp)), kp)
    assert torch.allclose(flip_rotmat(flip_rotmat(rot)), rot, atol=0)
    # a flip really changes things (so the identity above is not vacuous)
    assert (flip_kp2d(kp) - kp).abs().max() > 0.5
    assert (flip_rotmat(rot) - rot).abs().max() > 0.3


def test_flip_rotmat_matches_spin_axis_angle_flip():
    """M R M with swapped joints equals SPIN's flip_pose (negate y, z of axis-angle)."""
    rot = _random_rotmat(6, seed=2).double()
    aa = rotmat_to_axis_angle(rot).reshape(6, 72)
    ref = axis_angle_to_rotmat(flip_smpl_pose(aa).reshape(6, 24, 3))
    assert torch.allclose(flip_rotmat(rot), ref, atol=1e-6)


def test_flipped_pose_and_flipped_keypoints_agree_through_the_body(body):
    rot = _random_rotmat(4, seed=4)
    with torch.no_grad():
        a = body(rot)
        b = body(flip_rotmat(rot))
        rest = body(torch.zeros(1, 24, 3))
    kp_a = a.keypoints - a.joints[:, :1]
    kp_b = b.keypoints - b.joints[:, :1]
    r = rest.keypoints - rest.joints[:, :1]
    asym = float((flip_kp3d(r) - r).norm(dim=-1).max())  # the model's own asymmetry
    err = float((flip_kp3d(kp_a) - kp_b).norm(dim=-1).max())
    assert err < asym + 0.01, (err, asym)
    assert float((flip_kp3d(kp_a) - kp_a).norm(dim=-1).max()) > 0.05  # can fail


def test_rotation_matches_crop_geometry_and_projection():
    g = torch.Generator().manual_seed(5)
    n = 6
    rot = torch.randn(n, generator=g) * 40
    px = torch.rand(n, 10, 2, generator=g) * 300
    center = torch.rand(n, 2, generator=g) * 200 + 50
    scale = torch.rand(n, generator=g) + 0.5
    # rotate_2d on normalised coordinates == geometry's rotated crop
    ref = crop_px_to_norm(image_to_crop(px.double(), center.double(), scale.double(), 224,
                                        rot.double()), 224)
    plain = crop_px_to_norm(image_to_crop(px.double(), center.double(), scale.double(), 224),
                            224)
    assert torch.allclose(rotate_2d(plain, rot.double()), ref, atol=1e-9)
    # the 3D rotation projects onto the 2D one (orthographic part of weak perspective)
    x3 = torch.randn(n, 49, 3, generator=g)
    r3, x3r = rotate_3d(_random_rotmat(n), x3, rot)
    assert torch.allclose(x3r[..., :2], rotate_2d(x3[..., :2], rot), atol=1e-5)
    assert torch.allclose(x3r[..., 2], x3[..., 2])


def test_augmented_targets_stay_consistent(body, clean_set):
    """After flip + rotation + box jitter the 3D keypoint targets are still the body's
    keypoints of the rotation targets, and undoing the rotation and flip of the inputs
    gives the un-augmented inputs."""
    cfg = AugmentConfig(flip_prob=0.5, rot_prob=1.0, kp_noise=0.0, kp_dropout=0.0,
                        scale_range=(1.0, 1.0), center_jitter=0.0)
    idx = torch.arange(len(clean_set))
    b = make_batch(clean_set, idx, cfg, torch.Generator().manual_seed(0))
    assert b.flip.any() and (~b.flip).any() and (b.rot.abs() > 1).all()
    with torch.no_grad():
        out = body(b.rotmat, b.betas)
        out0 = body(torch.zeros(1, 24, 3))
    kp = out.keypoints - out.joints[:, :1]
    r = out0.keypoints - out0.joints[:, :1]
    asym = float((flip_kp3d(r) - r).norm(dim=-1).max())
    err = (kp - b.kp3d).norm(dim=-1).amax(1)
    assert float(err[~b.flip].max()) < 1e-4
    assert float(err[b.flip].max()) < asym + 0.01
    plain = make_batch(clean_set, idx, AugmentConfig.none(), torch.Generator().manual_seed(0))
    undone = torch.cat([rotate_2d(b.keypoints[..., :2], -b.rot), b.keypoints[..., 2:]], -1)
    undone = torch.where(b.flip[:, None, None], flip_kp2d(undone), undone)
    assert torch.allclose(undone, plain.keypoints, atol=1e-5)


def test_upper_body_crop_drops_the_legs_and_frames_the_rest(clean_set):
    cfg = dataclasses.replace(AugmentConfig.none(), upper_body_prob=1.0)
    b = make_batch(clean_set, torch.arange(len(clean_set)), cfg, torch.Generator())
    present = b.keypoints[..., 2] > 0
    xy = b.keypoints[..., :2]
    assert (xy[present].abs() <= 1.0 + 1e-5).all()  # everything kept is inside the crop
    upper = LEVEL_MASKS[4]
    annotated = clean_set.kp_px[..., 2] > 0
    assert present[:, upper].sum() > 0.9 * annotated[:, upper].sum()
    legs = [SPIN49_INDEX[n] for n in ("Right Ankle", "Left Ankle", "OP RAnkle", "OP LAnkle")]
    assert present[:, legs].float().mean() < 0.2
    assert (b.scale < clean_set.scale).float().mean() > 0.8  # smaller boxes


def test_truncation_cuts_one_side(clean_set):
    cfg = dataclasses.replace(AugmentConfig.none(), truncation_prob=1.0,
                              truncation_range=(0.4, 0.4))
    b = make_batch(clean_set, torch.arange(len(clean_set)), cfg, torch.Generator())
    before = (clean_set.kp_px[..., 2] > 0).sum(1)
    after = (b.keypoints[..., 2] > 0).sum(1)
    assert (after < before).all()
    assert (after > 0).all()
    # the 2D targets are kept: the whole body still supervises
    assert torch.equal(b.target2d[..., 2], clean_set.target_px[..., 2])


def test_image_crop_follows_the_keypoints(tmp_path):
    """A bright dot drawn at a keypoint lands where the augmented keypoint says, through
    flips, rotations and box jitter."""
    from PIL import Image

    h, w, res = 90, 120, 64
    dot = np.array([80.0, 30.0])
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.exp(-((xx - dot[0]) ** 2 + (yy - dot[1]) ** 2) / (2 * 2.0 ** 2))
    path = tmp_path / "dot.png"
    Image.fromarray((np.repeat(img[..., None], 3, 2) * 255).astype(np.uint8)).save(path)
    n = 8
    kp = np.zeros((n, 49, 3), np.float32)
    kp[:, 30] = [dot[0], dot[1], 1.0]
    kp[:, 40] = [20.0, 60.0, 1.0]
    data = TrainSet.from_arrays(kp, np.tile([[60.0, 45.0]], (n, 1)), np.full(n, 0.6),
                                image_paths=[str(path)] * n)
    cfg = AugmentConfig(flip_prob=0.5, rot_prob=1.0, rot_std_deg=40, scale_range=(0.8, 1.2),
                        center_jitter=0.1, kp_noise=0.0, kp_dropout=0.0,
                        color_range=(1.0, 1.0))
    b = make_batch(data, torch.arange(n), cfg, torch.Generator().manual_seed(7), images=True,
                   img_res=res)
    assert b.images.shape == (n, 3, res, res) and b.flip.any() and (~b.flip).any()
    for i in range(n):
        j = J49_FLIP_PERM[30] if b.flip[i] else 30  # where the dot's joint went
        where = (b.keypoints[i, j, :2].numpy() + 1) * res / 2  # crop px
        chan = b.images[i, 0].numpy()
        peak = np.array(np.unravel_index(np.argmax(chan), chan.shape))[::-1]
        assert np.all((where > 2) & (where < res - 3)), where  # the dot is in view
        assert np.linalg.norm(peak - where) < 1.6, (i, peak, where)


# -- real missing-joint patterns (calibrated missingness) ----------------------------

def _person(present_names):
    """(1, 49, 3) keypoints with exactly ``present_names`` labelled (distinct spots)."""
    kp = torch.zeros(1, 49, 3)
    for i, name in enumerate(present_names):
        kp[0, SPIN49_INDEX[name]] = torch.tensor([10.0 + 7 * i, 20.0 + 3 * i, 1.0])
    return kp


_COCO_LIMBS = ["Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee",
               "Left Ankle", "Right Wrist", "Right Elbow", "Right Shoulder",
               "Left Shoulder", "Left Elbow", "Left Wrist"]
_COCO_FACE = ["Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear"]


def test_real_drop_pattern_of_a_coco_person_missing_a_leg():
    from eft.train.augment import real_drop_patterns

    present = [n for n in _COCO_LIMBS + _COCO_FACE if n not in ("Left Knee", "Left Ankle")]
    drop = real_drop_patterns(_person(present))[0]
    expected = {"Left Knee", "Left Ankle", "OP LKnee", "OP LAnkle", "OP LBigToe",
                "OP LSmallToe", "OP LHeel"}
    got = {name for name, i in SPIN49_INDEX.items() if drop[i]}
    assert got == expected


def test_real_drop_pattern_derived_joints_and_mpii_face():
    from eft.train.augment import real_drop_patterns

    # COCO person without hips and face: pelvis-like and head-like slots go too.
    coco = real_drop_patterns(_person([n for n in _COCO_LIMBS
                                       if n not in ("Right Hip", "Left Hip")]))[0]
    for name in ("OP MidHip", "Pelvis (MPII)", "Spine (H36M)", "Top of Head (LSP)",
                 "OP Nose", "Nose", "Head (H36M)"):
        assert coco[SPIN49_INDEX[name]], name
    assert not coco[SPIN49_INDEX["OP Neck"]]  # shoulders are labelled
    # MPII person (labels no face): its face is never dropped.
    mpii = real_drop_patterns(_person(_COCO_LIMBS + ["Pelvis (MPII)", "Thorax (MPII)"]))[0]
    assert not mpii.any()


def test_real_patterns_apply_to_3d_samples_only_and_reframe(clean_set):
    from eft.train.augment import real_drop_patterns

    n = len(clean_set)
    real = dataclasses.replace(clean_set, has_smpl=torch.zeros(n, dtype=torch.bool),
                               has_kp3d=torch.zeros(n, dtype=torch.bool))
    from eft.train.data import concat_sets

    both = concat_sets([clean_set, real])
    legs = [n_ for n_ in _COCO_LIMBS if "Ankle" in n_ or "Knee" in n_]
    bank = real_drop_patterns(_person([m for m in _COCO_LIMBS + _COCO_FACE
                                       if m not in legs]))
    cfg = dataclasses.replace(AugmentConfig.none(), real_mask_prob=1.0)
    idx = torch.arange(2 * n)
    b = make_batch(both, idx, cfg, torch.Generator().manual_seed(0), drop_bank=bank)
    knees = [SPIN49_INDEX[m] for m in ("Left Knee", "Right Knee")]
    assert (clean_set.kp_px[:, knees, 2] > 0).all()
    assert (b.keypoints[:n, knees, 2] == 0).all()  # synthetic: lower legs gone
    assert (b.keypoints[n:, knees, 2] > 0).all()   # real samples keep their own labels
    assert (b.scale[:n] < clean_set.scale).all()   # box rebuilt around what is left
    assert torch.equal(b.scale[n:], clean_set.scale)
    # targets keep every joint
    assert torch.equal(b.target2d[:n, knees, 2], b.target2d[n:, knees, 2])
    with pytest.raises(ValueError, match="drop_bank"):
        make_batch(both, idx, cfg, torch.Generator().manual_seed(0))


def test_real_mask_off_changes_no_random_draw(clean_set):
    cfg = dataclasses.replace(AugmentConfig(), format_prob=0.5, formats=("coco17", "lsp14"),
                              hide_limb_prob=0.5)
    idx = torch.arange(len(clean_set))
    a = make_batch(clean_set, idx, cfg, torch.Generator().manual_seed(4))
    b = make_batch(clean_set, idx, cfg, torch.Generator().manual_seed(4),
                   drop_bank=torch.ones(3, 49, dtype=torch.bool))
    assert torch.equal(a.keypoints, b.keypoints)


def test_hide_limb_prob_2d_applies_to_2d_only_samples(clean_set):
    n, both = _with_2d_only_copy(clean_set)
    idx = torch.arange(2 * n)
    base = dataclasses.replace(AugmentConfig.none(), hide_limb_prob=0.5)

    def hidden(cfg):
        b = make_batch(both, idx, cfg, torch.Generator().manual_seed(2))
        return (b.keypoints[..., 2] == 0) & (both.kp_px[idx, :, 2] > 0), b

    # None: every sample uses hide_limb_prob, draw for draw as before
    h_none, b_none = hidden(base)
    h_same, b_same = hidden(dataclasses.replace(base, hide_limb_prob_2d=0.5))
    assert torch.equal(b_none.keypoints, b_same.keypoints)
    # 2D-only samples all lose a limb, 3D ones none; the targets keep every joint
    h, b = hidden(dataclasses.replace(base, hide_limb_prob=0.0, hide_limb_prob_2d=1.0))
    assert not h[:n].any()
    assert h[n:].any(1).all()
    assert torch.equal(b.target2d[..., 2], make_batch(
        both, idx, AugmentConfig.none(), torch.Generator().manual_seed(2)).target2d[..., 2])
    with pytest.raises(ValueError, match="hide_limb_prob_2d"):
        AugmentConfig(hide_limb_prob_2d=1.5)


def test_clean_input_prob_reads_3d_samples_from_their_exact_targets(clean_set):
    from eft.train.data import concat_sets

    n = len(clean_set)
    g = torch.Generator().manual_seed(6)
    noisy_px = clean_set.kp_px.clone()
    noisy_px[..., :2] += torch.randn(n, 49, 2, generator=g) * 4.0
    noisy_px[:, :3, 2] = 0.0  # joints the annotation lacks stay missing
    noisy = dataclasses.replace(clean_set, kp_px=noisy_px)
    real = dataclasses.replace(noisy, has_smpl=torch.zeros(n, dtype=torch.bool),
                               has_kp3d=torch.zeros(n, dtype=torch.bool))
    both = concat_sets([noisy, real])
    idx = torch.arange(2 * n)
    cfg = dataclasses.replace(AugmentConfig.none(), kp_noise=0.01, clean_input_prob=1.0)
    b = make_batch(both, idx, cfg, torch.Generator().manual_seed(1))
    present = b.keypoints[..., 2] > 0
    # 3D samples: inputs equal the exact targets (no keypoint noise), missing kept
    assert torch.equal(present[:n], both.kp_px[:n, :, 2] > 0)
    err = (b.keypoints[:n, :, :2] - b.target2d[:n, :, :2]).abs() * present[:n, :, None]
    assert float(err.max()) < 1e-5
    # 2D-only samples keep their own (noisy) inputs
    err2 = (b.keypoints[n:, :, :2] - b.target2d[n:, :, :2]).abs() * present[n:, :, None]
    assert float(err2.max()) > 0.01
    # off: not one random draw changes
    a0 = make_batch(both, idx, dataclasses.replace(cfg, clean_input_prob=0.0),
                    torch.Generator().manual_seed(1))
    a1 = make_batch(both, idx, dataclasses.replace(AugmentConfig.none(), kp_noise=0.01),
                    torch.Generator().manual_seed(1))
    assert torch.equal(a0.keypoints, a1.keypoints)
    with pytest.raises(ValueError, match="clean_input_prob"):
        AugmentConfig(clean_input_prob=1.5)


def _bone(kp, a, b):
    return kp[..., SPIN49_INDEX[b], :2] - kp[..., SPIN49_INDEX[a], :2]


def test_skeleton_jitter_scales_bones_and_widths_by_the_drawn_factors(clean_set):
    """Closed form: each limb bone keeps its direction and is scaled by exp of the first
    draw (the same factor on both sides), the hip and shoulder widths about their
    midpoints; every slot of a joint (OpenPose's, the feet's) moves with it; unselected
    samples and confidences stay as they were."""
    from eft.train.augment import jitter_skeleton

    kp = clean_set.kp_px[:6].clone()
    kp[..., 2] = 1.0
    kp[5, SPIN49_INDEX["Left Knee"], 2] = 0.0  # an unlabelled knee: its bones not scaled
    cfg = AugmentConfig(bone_scale_std=0.1, width_scale_std=0.2, torso_shift_std=0.05)
    use = torch.tensor([True, True, True, False, True, True])
    out = jitter_skeleton(kp, use, cfg, torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    f = torch.exp(torch.randn(6, 6, generator=g) * torch.tensor([0.1] * 4 + [0.2] * 2))
    assert torch.equal(out[3], kp[3]) and torch.equal(out[..., 2], kp[..., 2])
    sel = [0, 1, 2, 4]
    for col, bones in ((0, (("Right Hip", "Right Knee"), ("Left Hip", "Left Knee"))),
                       (1, (("Right Knee", "Right Ankle"), ("Left Knee", "Left Ankle"))),
                       (2, (("Right Shoulder", "Right Elbow"), ("Left Shoulder", "Left Elbow"))),
                       (3, (("Right Elbow", "Right Wrist"), ("Left Elbow", "Left Wrist"))),
                       (4, (("Left Hip", "Right Hip"),)), (5, (("Left Shoulder",
                                                                "Right Shoulder"),))):
        for a, b in bones:
            want = _bone(kp[sel], a, b) * f[sel, col, None]
            assert torch.allclose(_bone(out[sel], a, b), want, atol=1e-3), (a, b)
    # OpenPose's copies and the feet move with their joints
    for gt, op in (("Right Knee", "OP RKnee"), ("Left Wrist", "OP LWrist")):
        assert torch.allclose(out[:, SPIN49_INDEX[gt], :2], out[:, SPIN49_INDEX[op], :2]
                              + kp[:, SPIN49_INDEX[gt], :2] - kp[:, SPIN49_INDEX[op], :2],
                              atol=1e-3)
    ankle = out[:, SPIN49_INDEX["Left Ankle"], :2] - kp[:, SPIN49_INDEX["Left Ankle"], :2]
    heel = out[:, SPIN49_INDEX["OP LHeel"], :2] - kp[:, SPIN49_INDEX["OP LHeel"], :2]
    assert torch.allclose(ankle, heel, atol=1e-3)
    # the unlabelled knee: the left ankle only follows the left hip's move
    hip = out[5, SPIN49_INDEX["Left Hip"], :2] - kp[5, SPIN49_INDEX["Left Hip"], :2]
    assert torch.allclose(ankle[5], hip, atol=1e-3)
    # the torso slots move along the hips-to-shoulders axis only
    mid = lambda k, a, b: (k[:, SPIN49_INDEX[a], :2] + k[:, SPIN49_INDEX[b], :2]) / 2  # noqa: E731
    up = mid(kp, "Right Shoulder", "Left Shoulder") - mid(kp, "Right Hip", "Left Hip")
    d = out[:, SPIN49_INDEX["Spine (H36M)"], :2] - kp[:, SPIN49_INDEX["Spine (H36M)"], :2]
    cross = d[:, 0] * up[:, 1] - d[:, 1] * up[:, 0]
    assert float(cross.abs().max()) < 1e-2 and float(d[sel].norm(dim=-1).min()) > 0


def test_skeleton_jitter_moves_3d_samples_inputs_only(clean_set):
    n, both = _with_2d_only_copy(clean_set)
    idx = torch.arange(2 * n)
    plain = make_batch(both, idx, AugmentConfig.none(), torch.Generator().manual_seed(3))
    cfg = dataclasses.replace(AugmentConfig.none(), skeleton_jitter_prob=1.0)
    b = make_batch(both, idx, cfg, torch.Generator().manual_seed(3))
    moved = (b.keypoints[..., :2] - plain.keypoints[..., :2]).abs().amax(dim=(1, 2))
    assert (moved[:n] > 1e-3).all() and (moved[n:] == 0).all()
    assert torch.equal(b.target2d, plain.target2d) and torch.equal(b.kp3d, plain.kp3d)
    with pytest.raises(ValueError, match="skeleton_jitter_prob"):
        AugmentConfig(skeleton_jitter_prob=2.0)
    with pytest.raises(ValueError, match="bone_scale_std"):
        AugmentConfig(bone_scale_std=-0.1)
