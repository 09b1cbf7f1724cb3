"""Prior v2: its training pieces (pose variants, input formats, hidden limbs, the
real-label prior term, the input-slot mask) and the shipped v2 checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eft.body.joints import SMPL24_NAMES, get_format
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import KeypointRegressor, load_regressor, save_regressor
from eft.models.registry import NAMED_PRIORS, named_prior_path
from eft.synthetic.exemplars import LIMB_MASKS, annotated_slots
from eft.synthetic.pose_variants import VARIANT_KINDS, pose_variants
from eft.train.augment import AugmentConfig, make_batch
from eft.train.data import TrainSet
from eft.train.losses import LossWeights, regression_loss
from tests.helpers import require_file

J = {n: i for i, n in enumerate(SMPL24_NAMES)}


@pytest.fixture(scope="module")
def pose_bank():
    from eft.synthetic.pose_bank import load_pose_bank

    return load_pose_bank()


def _joints(body, poses: np.ndarray) -> np.ndarray:
    p = poses.copy()
    p[:, :3] = 0.0
    rot = axis_angle_to_rotmat(torch.tensor(p, dtype=torch.float32).reshape(-1, 24, 3))
    return body(rot, torch.zeros(len(p), 10)).joints.numpy()


def test_pose_variants_are_deterministic_and_do_what_they_say(body, pose_bank):
    src = pose_bank.train().poses[:500]
    for kind in VARIANT_KINDS:
        a, b = pose_variants(src, 64, 3, kind), pose_variants(src, 64, 3, kind)
        assert a.shape == (64, 72) and np.array_equal(a, b)
        assert np.all(np.isfinite(a))
    seated = _joints(body, pose_variants(src, 64, 0, "seated"))
    for side in ("left", "right"):
        hip, knee, ankle = (seated[:, J[f"{side}_{j}"]] for j in ("hip", "knee", "ankle"))
        thigh = knee - hip
        # thighs point forward (+z) far more than down; shanks hang down from the knee
        assert np.median(thigh[:, 2] / np.linalg.norm(thigh, axis=1)) > 0.7
        assert np.all(ankle[:, 1] < knee[:, 1])
    bending = _joints(body, pose_variants(src, 64, 0, "bending"))
    standing = _joints(body, src[:64])
    lean = lambda j: (j[:, J["neck"], 2] - j[:, J["pelvis"], 2])  # noqa: E731
    assert np.median(lean(bending)) > np.median(lean(standing)) + 0.15


def _set(n: int = 32) -> TrainSet:
    g = np.random.default_rng(0)
    kp = np.zeros((n, 49, 3), np.float32)
    kp[..., :2] = g.uniform(100, 300, (n, 49, 2))
    kp[..., 2] = 1.0
    return TrainSet.from_arrays(kp, np.full((n, 2), 200.0), np.full(n, 1.5))


def test_format_augmentation_keeps_only_the_formats_slots():
    data = _set()
    cfg = AugmentConfig(scale_range=(1, 1), center_jitter=0, flip_prob=0, rot_prob=0,
                        kp_noise=0, kp_dropout=0, format_prob=1.0, formats=("lsp14", "coco17"))
    batch = make_batch(data, torch.arange(len(data)), cfg, torch.Generator().manual_seed(0))
    present = batch.keypoints[..., 2] > 0
    lsp, coco = (torch.as_tensor(annotated_slots(f)) for f in ("lsp14", "coco17"))
    for row in present:
        assert torch.equal(row, lsp) or torch.equal(row, coco)
    assert {int(r.sum()) for r in present} == {14, 17}
    assert bool((batch.target2d[..., 2] > 0).all())  # targets keep every joint
    assert annotated_slots("coco17+openpose25").sum() == len(set(
        get_format("coco17").spin_indices) | set(get_format("openpose25").spin_indices))


def test_hidden_limb_is_removed_from_inputs_and_the_box_rebuilt():
    data = _set()
    cfg = AugmentConfig(scale_range=(1, 1), center_jitter=0, flip_prob=0, rot_prob=0,
                        kp_noise=0, kp_dropout=0, hide_limb_prob=1.0)
    batch = make_batch(data, torch.arange(len(data)), cfg, torch.Generator().manual_seed(1))
    limbs = torch.as_tensor(LIMB_MASKS.copy())
    for i in range(len(data)):
        hidden = batch.keypoints[i, :, 2] == 0
        assert any(torch.equal(hidden, m) for m in limbs)
        vis = data.kp_px[i][~hidden]
        lo, hi = vis[:, :2].amin(0), vis[:, :2].amax(0)
        np.testing.assert_allclose(batch.center[i].numpy(), ((lo + hi) / 2).numpy(), atol=1e-4)
        np.testing.assert_allclose(float(batch.scale[i]), 1.2 * float((hi - lo).max()) / 200,
                                   rtol=1e-5)


def test_pose_prior_term_costs_nothing_for_plausible_poses(pose_bank):
    from eft.body.fast import KeypointLBS
    from eft.body.model import BodyModel
    from eft.fitting.pose_prior import load_default_pose_prior
    from eft.models.output import RegressorOutput
    from eft.train.augment import Batch

    fast = KeypointLBS(BodyModel.load())
    prior = load_default_pose_prior()
    plausible = axis_angle_to_rotmat(torch.tensor(pose_bank.val().poses[:4],
                                                  dtype=torch.float32).reshape(-1, 24, 3))
    twisted = plausible.clone()
    twisted[:, J["left_knee"]] = axis_angle_to_rotmat(torch.tensor([[0.0, 2.5, 0.0]]))
    n = 4

    def loss_of(rot, has_smpl):
        out = RegressorOutput(rotmat=rot, betas=torch.zeros(n, 10),
                              cam=torch.tensor([[0.9, 0, 0]]).expand(n, 3),
                              pose6d=torch.zeros(n, 144))
        batch = Batch(keypoints=torch.zeros(n, 49, 3), target2d=torch.zeros(n, 49, 3),
                      rotmat=rot, betas=torch.zeros(n, 10), has_smpl=has_smpl,
                      kp3d=torch.zeros(n, 49, 3), has_kp3d=torch.zeros(n, dtype=torch.bool),
                      center=torch.zeros(n, 2), scale=torch.ones(n), rot=torch.zeros(n),
                      flip=torch.zeros(n, dtype=torch.bool), color=torch.ones(n, 3),
                      images=None)
        w = LossWeights(pose_prior=1e-3, pose_prior_floor=0.0)
        return regression_loss(out, fast, batch, w, prior)[1]["prior"]

    none = torch.zeros(n, dtype=torch.bool)
    assert loss_of(plausible, none) == 0.0
    nll = prior(twisted)
    assert float(nll.min()) > 0
    assert loss_of(twisted, none) == pytest.approx(1e-3 * float(nll.mean()), rel=1e-4)
    assert loss_of(twisted, torch.ones(n, dtype=torch.bool)) == 0.0  # 3D-supervised: off


def test_input_slots_mask_untrained_slots(tmp_path):
    torch.manual_seed(0)
    slots = list(range(25, 49))
    model = KeypointRegressor(width=32, hidden=32, input_slots=slots).eval()
    kp = torch.rand(3, 49, 3)
    noisy = kp.clone()
    noisy[:, :25] = torch.randn(3, 25, 3) * 100
    with torch.no_grad():
        assert torch.equal(model(kp).rotmat, model(noisy).rotmat)
    path = save_regressor(model, tmp_path / "m.pt")
    back = load_regressor(path)
    assert back.input_slots == tuple(slots)
    with torch.no_grad():
        assert torch.equal(back(noisy).rotmat, model(kp).rotmat)


def test_v1_stays_loadable_by_name():
    v1 = load_regressor("keypoint-prior-v1")
    assert isinstance(v1, KeypointRegressor) and v1.input_slots is None
    assert set(NAMED_PRIORS) >= {"keypoint-prior-v1", "keypoint-prior-v2",
                                 "keypoint-prior-v3", "keypoint-prior-v4",
                                 "keypoint-prior-v5", "keypoint-prior-v6",
                                 "keypoint-prior-v7", "keypoint-prior-v8",
                                 "keypoint-prior-v9"}


V2 = named_prior_path("keypoint-prior-v2")


@pytest.fixture
def _v2_built():
    require_file(V2, "prior v2 (not built yet?)")


needs_v2 = pytest.mark.usefixtures("_v2_built")


@pytest.fixture(scope="module")
def val_people(body, pose_bank):
    """100 synthetic val people (unseen clips) with every slot annotated, and their
    ground-truth J14 joints (one body pass shared by every prior's test)."""
    from eft.synthetic.exemplars import SyntheticConfig, generate
    from eft.train.evaluate import pose_joints

    s = generate(pose_bank.val().poses, 100, 7, SyntheticConfig(annotate="all"), body=body)
    data = TrainSet.from_synthetic(s)
    return data, pose_joints(body, data.rotmat, data.betas)[0]


@needs_v2
@pytest.mark.parametrize("name", ["keypoint-prior-v2", "keypoint-prior-v3",
                                  "keypoint-prior-v4", "keypoint-prior-v5",
                                  "keypoint-prior-v6", "keypoint-prior-v7",
                                  "keypoint-prior-v8", "keypoint-prior-v9"])
def test_v2_reads_every_input_format_plausibly(body, val_people, name):
    """Synthetic val people (unseen clips) given to v2 - v9 in each format: finite output
    and a 3D error far below the mean pose's."""
    from eft.train.evaluate import joint_metrics, pose_joints
    from eft.train.prior import INPUT_FORMATS, crop_inputs

    require_file(named_prior_path(name), name)
    model = load_regressor(name)
    data, g14 = val_people
    for fmt in INPUT_FORMATS:
        kp = data.kp_px * torch.as_tensor(annotated_slots(fmt))[None, :, None]
        with torch.no_grad():
            out = model(crop_inputs(kp, data.center, data.scale))
        assert torch.isfinite(out.rotmat).all() and torch.isfinite(out.cam).all(), fmt
        err = joint_metrics(pose_joints(body, out.rotmat, out.betas)[0], g14)
        assert err["pa_mpjpe_mm"] < 90.0, (fmt, err)


@needs_v2
@pytest.mark.parametrize("prior", ["keypoint-prior-v2", "keypoint-prior-v3",
                                   "keypoint-prior-v4", "keypoint-prior-v5",
                                   "keypoint-prior-v6", "keypoint-prior-v7",
                                   "keypoint-prior-v8", "keypoint-prior-v9"])
def test_v2_reads_every_slot_the_readers_fill_and_ignores_any_other(prior):
    from eft.body.joints import KEYPOINT_FORMATS

    model = load_regressor(prior)
    assert model.input_slots is not None
    for name, fmt in KEYPOINT_FORMATS.items():  # every format's slots were trained
        assert set(fmt.spin_indices) <= set(model.input_slots), name
    unseen = sorted(set(range(49)) - set(model.input_slots))
    if not unseen:  # v2 trains all 49: check the mask on a copy that reads fewer
        model = KeypointRegressor(**{**model.config, "input_slots": list(range(25, 49))})
        model.load_state_dict(load_regressor(prior).state_dict())
        model.eval()
        unseen = list(range(25))
    kp = torch.zeros(2, 49, 3)
    g = torch.Generator().manual_seed(0)
    kp[:, list(model.input_slots), :2] = torch.rand(2, len(model.input_slots), 2,
                                                    generator=g) - 0.5
    kp[:, list(model.input_slots), 2] = 1.0
    noisy = kp.clone()
    noisy[:, unseen] = torch.tensor([5.0, -7.0, 1.0])
    with torch.no_grad():
        assert torch.equal(model(kp).rotmat, model(noisy).rotmat)


def test_eft_presets_and_the_job_default():
    from eft.fitting.config import EFT_PRESETS, EFTConfig, eft_preset
    from eft.jobs.config import config_from_dict

    assert eft_preset("eft") == EFTConfig()  # the published recipe: the defaults
    tuned = eft_preset("open-prior")
    assert (tuned.lr, tuned.max_iters, tuned.with_ankles, tuned.scope,
            tuned.mirror_average) == (3e-4, 10, True, "bias", True)
    before = eft_preset("open-prior-all")  # the default until the bias scope, kept by name
    assert (before.lr, before.max_iters, before.with_ankles, before.scope) == (
        2e-5, 10, True, "all")
    exact = eft_preset("open-prior-exact")  # labels without annotation noise: fit harder,
    assert exact == tuned.replace(lr=1e-3, max_iters=30, smplify_blend=0.5,  # blend SMPLify
                                  perspective_steps=150,  # then the image camera
                                  tilted_above_deg=0.0,  # open-prior's refit of lying people
                                  smplify_init="regressor")  # and its SMPLify start
    assert tuned.tilted_above_deg == 30.0 and tuned.smplify_init == "eft"
    assert tuned.smplify_blend == 0.0
    from eft.fitting.config import preset_name

    assert [preset_name(eft_preset(n)) for n in EFT_PRESETS] == list(EFT_PRESETS)
    assert preset_name(tuned.replace(lr=1e-4)) is None
    from eft.fitting.config import describe_recipe  # in words: the nearest preset's changes

    assert [describe_recipe(eft_preset(n)) for n in EFT_PRESETS] == list(EFT_PRESETS)
    assert describe_recipe(tuned.replace(lr=1e-4)) == "open-prior with lr=0.0001"
    assert describe_recipe(exact.replace(max_iters=6, w_betas=0.5, lr=1e-2, w_cam=3.0),
                           shown=2) == "open-prior-exact with lr=0.01, max_iters=6 and 2 more"
    old = eft_preset("open-prior-v2")  # v2's recipe, kept by name
    assert (old.lr, old.max_iters, old.with_ankles, old.scope) == (1e-5, 20, True, "all")
    assert eft_preset("open-prior", lr=2e-5).lr == 2e-5
    with pytest.raises(ValueError, match="unknown EFT preset"):
        eft_preset("nope")
    ds = [{"kind": "coco", "path": "x.json"}]
    assert config_from_dict({"datasets": ds}).eft == tuned  # shipped prior: open-prior
    assert config_from_dict({"datasets": ds, "regressor": "keypoint-prior-v1"}).eft == tuned
    assert config_from_dict({"datasets": ds, "regressor": "spin.pt"}).eft == EFTConfig()
    assert config_from_dict({"datasets": ds, "eft": {"preset": "eft"}}).eft == EFTConfig()
    got = config_from_dict({"datasets": ds, "eft": {"preset": "open-prior", "lr": 3e-5}}).eft
    assert got == tuned.replace(lr=3e-5)
    assert set(EFT_PRESETS) == {"eft", "open-prior", "open-prior-all", "open-prior-exact",
                                "open-prior-v2"}


def test_with_ankles_puts_the_ankles_into_the_2d_loss():
    from eft.body.fast import KeypointLBS
    from eft.body.joints import SPIN49_INDEX
    from eft.body.model import BodyModel
    from eft.fitting.config import EFTConfig
    from eft.fitting.losses import eft_loss
    from eft.models.output import RegressorOutput

    fast = KeypointLBS(BodyModel.load())
    out = RegressorOutput(rotmat=torch.eye(3).expand(1, 24, 3, 3).clone(),
                          betas=torch.zeros(1, 10), cam=torch.tensor([[0.9, 0.0, 0.0]]),
                          pose6d=torch.zeros(1, 144))
    target = torch.zeros(1, 49, 3)
    ankle = SPIN49_INDEX["Left Ankle"]
    target[0, ankle] = torch.tensor([0.5, 0.5, 1.0])  # only the ankle is labelled
    _, off = eft_loss(out, target, EFTConfig(w_leg_orientation=0.0), fast)
    _, on = eft_loss(out, target, EFTConfig(with_ankles=True, w_leg_orientation=0.0), fast)
    assert float(off) == 0.0 and float(on) > 0.0


def test_recipe_grids_of_the_tuning_and_cost_benchmarks():
    from eft.fitting.config import eft_preset
    from tests.helpers import load_script

    grid = load_script("tune_eft").parse_grid("lr=2e-5;max_iters=10;with_ankles=1;scope=all,head")
    assert grid == [{"lr": 2e-5, "max_iters": 10, "with_ankles": True, "scope": "all"},
                    {"lr": 2e-5, "max_iters": 10, "with_ankles": True, "scope": "head"}]
    parse = load_script("bench_prior_cost").parse_recipe
    assert parse("open-prior") == eft_preset("open-prior")
    assert parse("open-prior-v2") == eft_preset("open-prior-v2")
    assert parse("open-prior-all") == eft_preset("open-prior-all")
    got = parse("scope=head,lr=3e-5,max_iters=7")
    assert (got.scope, got.lr, got.max_iters, got.with_ankles) == ("head", 3e-5, 7, True)
    assert parse("lr=1e-4").scope == "bias"  # overrides apply over open-prior
    assert not parse("mirror_average=0").mirror_average
    assert parse("smplify_init=regressor,mirror_average=1").smplify_init == "regressor"
    assert load_script("tune_eft").parse_grid("smplify_init=eft,regressor") == [
        {"smplify_init": "eft"}, {"smplify_init": "regressor"}]
    with pytest.raises(SystemExit, match="unknown recipe key 'iters'"):
        parse("iters=5")
