"""Synthetic exemplars: geometry against an independent re-evaluation, noise statistics,
missing keypoints, truncation, determinism and the set's container API."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from eft.body import BodyModel
from eft.body.joints import KEYPOINT_FORMATS, SPIN49_INDEX
from eft.body.poses import canonical_poses
from eft.data.exemplar import Exemplar, GroundTruth
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.synthetic.exemplars import (
    COCO17_OKS_SIGMAS,
    DEFAULT_OKS_SIGMA,
    ORIENTATION_NAMES,
    SPIN49_OKS_SIGMAS,
    SyntheticConfig,
    SyntheticSet,
    annotated_slots,
    generate,
)

HEAD = SPIN49_INDEX["Head (H36M)"]
ANKLES = [SPIN49_INDEX["Left Ankle"], SPIN49_INDEX["Right Ankle"]]
COCO_SLOTS = list(KEYPOINT_FORMATS["coco17"].spin_indices)


# ---------------------------------------------------------------------------
# Fixtures (module scope: each set is generated once)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def body32() -> BodyModel:
    return BodyModel.load()


@pytest.fixture(scope="module")
def body(body32) -> BodyModel:
    """float64 copy: generate() uses it as is, and re-evaluations are exact."""
    return copy.deepcopy(body32).double()


@pytest.fixture(scope="module")
def pose_tensor() -> torch.Tensor:
    """(16, 24, 3) torch: the canonical poses and small random poses, each with a
    deliberately odd global orientation (which generate() must discard)."""
    canon = torch.stack(list(canonical_poses().values()))
    g = torch.Generator().manual_seed(0)
    rand = torch.randn(11, 24, 3, generator=g, dtype=torch.float64) * 0.2
    poses = torch.cat([canon, rand])
    poses[:, 0] = torch.tensor([0.3, 2.0, -1.0], dtype=torch.float64)
    return poses


@pytest.fixture(scope="module")
def pose_bank(pose_tensor) -> np.ndarray:
    return pose_tensor.reshape(-1, 72).numpy()


@pytest.fixture(scope="module")
def clean_set(pose_tensor, body) -> SyntheticSet:
    cfg = SyntheticConfig(annotate="all").clean()
    return generate(pose_tensor, 96, seed=1, config=cfg, body=body)


@pytest.fixture(scope="module")
def default_set(pose_bank, body) -> SyntheticSet:
    return generate(pose_bank, 128, seed=0, body=body, batch_size=50)


@pytest.fixture(scope="module")
def noisy_set(pose_bank, body) -> SyntheticSet:
    cfg = SyntheticConfig(annotate="all", missing_rate=0.0, limb_drop_prob=0.0,
                          truncation_prob=0.0, noise_scale=1.5)
    return generate(pose_bank, 256, seed=2, config=cfg, body=body)


def project(points: np.ndarray, s: SyntheticSet) -> np.ndarray:
    """By-hand pinhole projection of camera-frame points (n, K, 3) -> (n, K, 2)."""
    return (s.focal[:, None, None] * points[..., :2] / points[..., 2:3]
            + s.principal_point[:, None, :])


def inside_image(uv: np.ndarray, s: SyntheticSet) -> np.ndarray:
    wh = s.image_size[:, None, :]
    return np.all((uv >= 0) & (uv < wh), axis=-1)


def reevaluate(model: BodyModel, s: SyntheticSet):
    with torch.no_grad():
        return model(torch.from_numpy(s.pose), torch.from_numpy(s.betas),
                     torch.from_numpy(s.transl))


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------

def test_clean_keypoints_are_exact_projections_of_the_ground_truth(clean_set, body, body32):
    s = clean_set
    out = reevaluate(body, s)
    np.testing.assert_allclose(s.keypoints3d, out.keypoints.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.joints3d, out.joints.numpy(), rtol=0, atol=1e-9)
    # every slot is annotated, present and exactly the projection of the re-evaluated body
    assert np.all(s.keypoints[..., 2] == 1.0)
    uv = project(out.keypoints.numpy(), s)
    assert np.abs(s.keypoints[..., :2] - uv).max() < 1e-3
    assert np.all(inside_image(uv, s))
    # a float32 model (what users load) reproduces the ground truth to float32 precision
    out32 = reevaluate(body32, s)
    np.testing.assert_allclose(s.keypoints3d, out32.keypoints.double().numpy(), rtol=0, atol=2e-4)


def test_clean_set_box_depth_and_person_size(clean_set, body):
    s = clean_set
    out = reevaluate(body, s)
    verts = out.vertices.numpy()
    assert verts[..., 2].min() > 0.25  # the whole mesh is in front of the camera
    assert s.joints3d[..., 2].min() > 0 and s.keypoints3d[..., 2].min() > 0
    uv = project(verts, s)
    lo, hi = uv.min(axis=1), uv.max(axis=1)
    wh = s.image_size.astype(float)
    np.testing.assert_allclose(s.person_size, np.sqrt(0.5 * np.prod(hi - lo, axis=1)), rtol=1e-9)
    vis_lo, vis_hi = np.clip(lo, 0, wh), np.clip(hi, 0, wh)
    np.testing.assert_allclose(s.center, 0.5 * (vis_lo + vis_hi), rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.scale, 1.2 * (vis_hi - vis_lo).max(axis=1) / 200, rtol=1e-9)
    # keypoints lie inside the crop
    half = 100 * s.scale[:, None, None]
    assert np.all(np.abs(s.keypoints[..., :2] - s.center[:, None]) <= half)
    # camera and distance ranges of the default config
    assert np.all((s.focal >= 500) & (s.focal <= 2500))
    assert np.all((s.transl[:, 2] >= 2.0 - 1e-9) & (s.transl[:, 2] <= 12.0 + 1e-9))
    assert np.array_equal(s.principal_point, s.image_size / 2)


def test_pose_orientation_is_replaced_and_upright_people_stand_upright(
        clean_set, default_set, pose_bank):
    for s in (clean_set, default_set):
        assert np.all((s.pose_index >= 0) & (s.pose_index < len(pose_bank)))
        np.testing.assert_array_equal(s.pose[:, 3:], pose_bank[s.pose_index, 3:])
        assert not np.allclose(s.pose[:, :3], pose_bank[s.pose_index, :3])
        upright = s.orientation == ORIENTATION_NAMES.index("upright")
        assert upright.mean() > 0.7
        # the body's up axis points up in the image (camera y is down)
        rot = axis_angle_to_rotmat(torch.from_numpy(s.pose[:, :3])).numpy()
        up = rot[:, :, 1]
        assert np.all(up[upright, 1] < -np.cos(np.radians(40)))
        # ... so the head projects above both ankles
        uv = project(s.keypoints3d, s)
        assert np.all(uv[upright, HEAD, 1] < uv[upright][:, ANKLES, 1].min(axis=1))
        assert s.joints3d[..., 2].min() > 0 and s.keypoints3d[..., 2].min() > 0


def test_orientation_mix_and_betas(default_set, body):
    s = default_set
    counts = np.bincount(s.orientation, minlength=3)
    assert counts[0] > 0.75 * len(s) and counts[1] + counts[2] > 0
    assert np.abs(s.betas).max() <= 3.0
    assert 0.85 < s.betas.std() < 1.15
    clipped = generate(np.zeros((1, 72)), 8, seed=0, body=body,
                       config=SyntheticConfig(beta_clip=0.5).clean())
    assert np.abs(clipped.betas).max() <= 0.5 and np.isclose(np.abs(clipped.betas).max(), 0.5)


# ---------------------------------------------------------------------------
# Noise, confidences and missing keypoints
# ---------------------------------------------------------------------------

def test_noise_matches_the_configured_sigmas(noisy_set):
    s = noisy_set
    cfg = s.config
    expected = cfg.noise_scale * cfg.noise_k * SPIN49_OKS_SIGMAS[None] * s.person_size[:, None]
    np.testing.assert_allclose(s.noise_std, expected, rtol=1e-12)
    present = s.keypoints[..., 2] > 0
    assert present.mean() > 0.98  # only points pushed out of the image by noise are lost
    err = (s.keypoints[..., :2] - project(s.keypoints3d, s)) / s.noise_std[..., None]
    z = np.where(present[..., None], err, np.nan)
    assert abs(np.nanmean(z)) < 0.03
    assert abs(np.nanstd(z) - 1.0) < 0.05
    per_joint = np.nanstd(z, axis=(0, 2))
    assert np.all(np.abs(per_joint - 1.0) < 0.15), per_joint
    # the noise is as big as documented: RMS 2-D error = noise_scale * sigma * sqrt(area)
    rms = np.sqrt(np.nanmean(np.where(present, (err ** 2).sum(-1) * s.noise_std ** 2, np.nan)
                             / (SPIN49_OKS_SIGMAS[None] * s.person_size[:, None]) ** 2))
    assert abs(rms - cfg.noise_scale) < 0.05 * cfg.noise_scale


def test_sigma_table():
    coco = dict(zip(KEYPOINT_FORMATS["coco17"].spin_names, COCO17_OKS_SIGMAS, strict=True))
    for name, sigma in coco.items():
        assert SPIN49_OKS_SIGMAS[SPIN49_INDEX[name]] == sigma
    assert SPIN49_OKS_SIGMAS[SPIN49_INDEX["OP LWrist"]] == coco["Left Wrist"]
    assert SPIN49_OKS_SIGMAS[SPIN49_INDEX["OP Nose"]] == coco["Nose"]
    assert SPIN49_OKS_SIGMAS[SPIN49_INDEX["OP RHeel"]] == coco["Right Ankle"]
    assert SPIN49_OKS_SIGMAS[SPIN49_INDEX["Top of Head (LSP)"]] == DEFAULT_OKS_SIGMA


def test_detector_confidence_tracks_the_noise(noisy_set, pose_bank, body):
    cfg = SyntheticConfig(annotate="all", missing_rate=0.0, limb_drop_prob=0.0,
                          truncation_prob=0.0, noise_scale=1.5, confidence_mode="detector")
    det = generate(pose_bank, 40, seed=2, config=cfg, body=body)
    ref = noisy_set.subset(slice(0, 40))  # same seed: same bodies, cameras and noise draws
    # equal up to float64 rounding: the body model's batched maths may split a batch of
    # 40 differently from a larger one across threads
    np.testing.assert_allclose(det.keypoints[..., :2], ref.keypoints[..., :2], rtol=0,
                               atol=1e-9)
    present = det.keypoints[..., 2] > 0
    conf = det.keypoints[..., 2][present]
    assert np.all((conf > 0) & (conf <= 1)) and conf.std() > 0.05
    d2 = ((det.keypoints[..., :2] - project(det.keypoints3d, det)) ** 2).sum(-1)
    kernel = 2 * SPIN49_OKS_SIGMAS[None] * det.person_size[:, None]
    expected = np.clip(np.exp(-d2 / (2 * kernel ** 2)), cfg.min_confidence, 1)
    np.testing.assert_allclose(conf, expected[present], rtol=1e-9)
    assert np.corrcoef(conf, np.sqrt(d2[present]) / kernel[present])[0, 1] < -0.8


def test_missing_rate_and_limb_drop(pose_bank, body):
    base = SyntheticConfig(truncation_prob=0.0).clean()
    s = generate(pose_bank, 64, seed=3, body=body,
                 config=dataclasses.replace(base, missing_rate=0.3))
    conf = s.keypoints[..., 2]
    assert abs((conf[:, COCO_SLOTS] == 0).mean() - 0.3) < 0.05
    assert np.all(s.keypoints[conf == 0] == 0)  # missing slots are all zero
    limbs = generate(pose_bank, 16, seed=3, body=body,
                     config=dataclasses.replace(base, limb_drop_prob=1.0))
    groups = [["Left Elbow", "Left Wrist"], ["Right Elbow", "Right Wrist"],
              ["Left Knee", "Left Ankle"], ["Right Knee", "Right Ankle"]]
    c = limbs.keypoints[..., 2]
    for i in range(len(limbs)):
        gone = [bool(np.all(c[i, [SPIN49_INDEX[n] for n in g]] == 0)) for g in groups]
        assert sum(gone) == 1
        assert (c[i, COCO_SLOTS] == 0).sum() == 2


def test_annotate_selects_the_format_slots(default_set, pose_bank, body):
    conf = default_set.keypoints[..., 2]
    non_coco = np.setdiff1d(np.arange(49), COCO_SLOTS)
    assert np.all(conf[:, non_coco] == 0)
    assert (conf[:, COCO_SLOTS] > 0).mean() > 0.7
    for fmt in ("mpii16", "lsp14", "openpose25"):
        s = generate(pose_bank, 6, seed=4, body=body,
                     config=SyntheticConfig(annotate=fmt, truncation_prob=0.0).clean())
        expected = np.zeros(49, dtype=bool)
        expected[list(KEYPOINT_FORMATS[fmt].spin_indices)] = True
        assert np.array_equal(annotated_slots(fmt), expected)
        assert np.array_equal(s.keypoints[..., 2] > 0, np.broadcast_to(expected, (6, 49)))


# ---------------------------------------------------------------------------
# Truncation
# ---------------------------------------------------------------------------

def test_truncation_marks_out_of_frame_keypoints_missing(pose_bank, body):
    cfg = dataclasses.replace(SyntheticConfig(annotate="all").clean(), truncation_prob=1.0)
    s = generate(pose_bank, 48, seed=5, config=cfg, body=body)
    assert s.truncated.all()
    inside = inside_image(project(s.keypoints3d, s), s)
    present = s.keypoints[..., 2] > 0
    assert np.array_equal(present, inside)  # no noise, no drops: missing <=> out of frame
    outside_count = (~inside).sum(axis=1)
    assert (outside_count > 0).mean() > 0.7
    assert np.all(present.sum(axis=1) > 0) and np.all(s.scale > 0)
    for i in range(len(s)):
        ex = s.exemplar(i)
        assert ex.meta["truncated"] is True
        assert np.all((ex.center >= 0) & (ex.center <= np.array(ex.image_size)))


def test_no_present_keypoint_outside_the_image(default_set):
    s = default_set
    present = s.keypoints[..., 2] > 0
    assert np.all(inside_image(s.keypoints[..., :2], s)[present])
    # truncated exemplars exist, and some of their annotated slots fell out of frame
    assert s.truncated.any() and not s.truncated.all()
    uv = project(s.keypoints3d, s)
    wh = s.image_size[:, None, :]
    beyond = np.maximum(-uv, uv - wh).max(axis=-1)  # > 0: the true point is out of frame
    annotated = np.zeros(49, dtype=bool)
    annotated[COCO_SLOTS] = True
    lost = (beyond > 0) & annotated
    assert lost[s.truncated].any()
    # noise can carry a point just outside back in, never one far outside
    far = (beyond > 5 * s.noise_std) & annotated
    assert far.any() and np.all(s.keypoints[..., 2][far] == 0)


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------

def _assert_same(a: SyntheticSet, b: SyntheticSet, atol: float = 0.0) -> None:
    for name in SyntheticSet.ARRAY_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if atol == 0.0 or x.dtype.kind not in "f":
            assert np.array_equal(x, y), name
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=name)


def test_same_seed_same_set_and_batch_size_independence(pose_bank, body):
    a = generate(pose_bank, 40, seed=7, body=body, batch_size=40)
    b = generate(pose_bank, 40, seed=7, body=body, batch_size=40)
    _assert_same(a, b)  # bitwise
    c = generate(pose_bank, 40, seed=7, body=body, batch_size=7)
    _assert_same(a, c, atol=1e-9)  # float64 rounding only; discrete fields identical
    d = generate(pose_bank, 40, seed=8, body=body, batch_size=40)
    assert not np.array_equal(a.keypoints, d.keypoints)
    assert not np.array_equal(a.pose, d.pose)
    # a shorter set is a prefix of a longer one
    e = generate(pose_bank, 25, seed=7, body=body, batch_size=40)
    _assert_same(e, a.subset(slice(0, 25)), atol=1e-9)


def test_default_set_is_reproducible(default_set, pose_bank, body):
    again = generate(pose_bank, 128, seed=0, body=body, batch_size=50)
    _assert_same(default_set, again)


# ---------------------------------------------------------------------------
# Container API
# ---------------------------------------------------------------------------

def test_exemplar_and_ground_truth(default_set):
    s = default_set
    assert len(s) == 128 and len(set(s.ids.tolist())) == 128
    for i in (0, 17, 127):
        ex = s.exemplar(i)
        assert isinstance(ex, Exemplar)
        assert ex.source == "synthetic" and ex.image_path is None
        assert ex.id == s.ids[i] and ex.keypoints.shape == (49, 3)
        assert ex.image_size == tuple(int(v) for v in s.image_size[i])
        assert ex.meta["pose_index"] == s.pose_index[i]
        assert ex.meta["truncated"] == bool(s.truncated[i])
        assert ex.meta["orientation"] in ORIENTATION_NAMES
        ex.keypoints[0, 0] = -5.0  # a copy
        assert s.keypoints[i, 0, 0] != -5.0
        gt = s.ground_truth(i)
        assert isinstance(gt, GroundTruth)
        assert gt.pose.shape == (72,) and gt.betas.shape == (10,)
        assert gt.joints3d.shape == (24, 3) and gt.keypoints3d.shape == (49, 3)
        assert isinstance(gt.focal, float) and gt.principal_point.shape == (2,)
        np.testing.assert_array_equal(gt.transl, s.transl[i])
    assert sum(1 for _ in s.exemplars()) == len(s)


def test_subset(default_set):
    s = default_set
    sub = s.subset([5, 2, 9])
    assert len(sub) == 3 and list(sub.ids) == [s.ids[5], s.ids[2], s.ids[9]]
    np.testing.assert_array_equal(sub.keypoints3d[1], s.keypoints3d[2])
    mask = s.truncated
    assert len(s.subset(mask)) == mask.sum()
    assert len(s.subset(3)) == 1
    assert sub.config == s.config and sub.seed == s.seed


def test_save_load_round_trip(default_set, tmp_path):
    for name in ("set.npz", "no_suffix"):
        path = tmp_path / name
        default_set.save(path)
        assert path.is_file()
        loaded = SyntheticSet.load(path)
        _assert_same(default_set, loaded)
        assert loaded.config == default_set.config and loaded.seed == default_set.seed
    with np.load(tmp_path / "set.npz", allow_pickle=False) as z:
        assert z["keypoints"].shape == (128, 49, 3)


def test_config_validation_and_edge_cases(pose_bank, body):
    with pytest.raises(KeyError):
        SyntheticConfig(annotate="not-a-format")
    with pytest.raises(ValueError):
        SyntheticConfig(confidence_mode="guess")
    with pytest.raises(ValueError):
        SyntheticConfig(focal_range=(2000.0, 1000.0))
    with pytest.raises(ValueError):
        SyntheticConfig(missing_rate=1.5)
    clean = SyntheticConfig().clean()
    assert (clean.noise_scale, clean.missing_rate, clean.truncation_prob) == (0, 0, 0)
    assert SyntheticConfig.from_dict(SyntheticConfig().to_dict()) == SyntheticConfig()
    with pytest.raises(ValueError):
        generate(np.zeros((3, 70)), 4, seed=0, body=body)
    empty = generate(pose_bank, 0, seed=0, body=body)
    assert len(empty) == 0 and empty.keypoints.shape == (0, 49, 3)
