"""Exemplar Fine-Tuning: batched == sequential, independence of exemplars in a batch,
early stopping, degenerate exemplars, trainable scopes and quality flags.

Everything uses freshly built, seeded regressors and a few synthetic exemplars, and runs
single-threaded (on a shared 2-core machine OpenMP threads mostly wait for each other).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from eft.body.fast import KeypointLBS
from eft.errors import EftError
from eft.fitting import (
    EFT_LR,
    FLAGS,
    KEYPOINT_REGRESSOR_LR,
    EFTConfig,
    FitTargets,
    QualityRules,
    apply_rules,
    eft_loss,
    exemplar_batch,
    fit,
    fit_batched,
    fit_sequential,
    quality_flags,
    rejudge,
    sanitize_keypoints,
    split_model,
)
from eft.geometry.cameras import image_to_crop_norm
from eft.models import HMR, KeypointRegressor, RegressorOutput
from eft.synthetic.exemplars import SyntheticConfig, generate

N = 8
# Tolerance of batched vs sequential: float32 rounding differs between torch.optim.Adam on
# one exemplar and the vectorised Adam on stacked weights (bmm vs mm), and Adam's
# normalised steps pass gradient rounding on to the weights; measured max ~3e-6.
ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fast(body) -> KeypointLBS:
    from eft.fitting.engine import _keypoint_lbs

    return _keypoint_lbs(body, torch.device("cpu"))


@pytest.fixture(scope="module")
def data(body):
    """8 synthetic exemplars (COCO-17 annotation, default noise and missing joints)."""
    g = torch.Generator().manual_seed(0)
    poses = (torch.randn(N, 72, generator=g, dtype=torch.float64) * 0.3).numpy()
    cfg = SyntheticConfig(truncation_prob=0.0, limb_drop_prob=0.0)
    syn = generate(poses, N, seed=0, config=cfg, body=body)
    exemplars = list(syn.exemplars())
    batch = exemplar_batch(exemplars)
    return {"exemplars": exemplars, "targets": batch.keypoints, "centers": batch.centers,
            "scales": batch.scales, "ids": batch.id_list}


@pytest.fixture(scope="module")
def hmr() -> HMR:
    """A seeded HMR; the fits restore its weights, so tests can share it."""
    torch.manual_seed(0)
    return HMR()


def make_kr() -> KeypointRegressor:
    torch.manual_seed(0)
    return KeypointRegressor()


CFG = EFTConfig(lr=1e-4, max_iters=6, stop_loss_2d=0.0)


def batch_of(data, rows=None) -> FitTargets:
    """The FitTargets of the exemplars ``rows`` (default all) of ``data``."""
    rows = list(range(N)) if rows is None else rows
    return FitTargets(data["targets"][rows], **kwargs(data, rows))


def kwargs(data, rows=None):
    rows = list(range(N)) if rows is None else rows
    return {"ids": [data["ids"][i] for i in rows],
            "centers": data["centers"][rows], "scales": data["scales"][rows]}


def assert_same(a, b, atol=ATOL, rtol=0.0):
    assert a.exemplar_id == b.exemplar_id
    np.testing.assert_allclose(a.rotmat, b.rotmat, atol=atol, rtol=rtol)
    np.testing.assert_allclose(a.betas, b.betas, atol=atol, rtol=rtol)
    np.testing.assert_allclose(a.cam_weak, b.cam_weak, atol=atol, rtol=rtol)
    assert a.quality.iterations == b.quality.iterations
    assert a.quality.converged == b.quality.converged
    assert a.quality.flags == b.quality.flags
    assert math.isclose(a.quality.loss_2d_final, b.quality.loss_2d_final,
                        rel_tol=1e-3, abs_tol=1e-7)


# ---------------------------------------------------------------------------
# Helpers and configuration
# ---------------------------------------------------------------------------

def test_exemplar_batch_matches_crop_normalisation(data):
    ex = data["exemplars"][3]
    xy = image_to_crop_norm(torch.as_tensor(ex.keypoints[None, :, :2]),
                            torch.as_tensor(ex.center[None]), torch.tensor([ex.scale]))
    np.testing.assert_allclose(data["targets"][3, :, :2].numpy(), xy[0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(data["targets"][3, :, 2].numpy(), ex.keypoints[:, 2])
    assert data["ids"][3] == ex.id


def test_config_defaults_and_lr_resolution():
    cfg = EFTConfig()
    assert (cfg.max_iters, cfg.stop_loss_2d, cfg.loss_scale, cfg.w_keypoints_2d) == (
        20, 1e-4, 60.0, 5.0)
    assert (cfg.w_betas, cfg.w_leg_orientation, cfg.leg_min_length) == (0.001, 0.005, 0.0089)
    assert cfg.scope == "all" and cfg.weight_decay == 0.0
    assert cfg.resolve_lr(HMR.__new__(HMR)) == EFT_LR == 5e-6
    assert cfg.resolve_lr(make_kr()) == KEYPOINT_REGRESSOR_LR
    assert cfg.replace(lr=3e-5).resolve_lr(make_kr()) == 3e-5
    strict = EFTConfig.strict().rules
    assert (strict.max_abs_beta, strict.max_initial_loss_2d, strict.max_loss_2d) == (
        1.0, 0.04, 3e-4)
    with pytest.raises(ValueError):
        EFTConfig(scope="everything")
    with pytest.raises(ValueError):
        QualityRules(reject_flags=("bogus",))


def test_loss_terms(fast):
    """Hand-checkable pieces of the loss: hips ignored, ankles only via the leg term."""
    torch.manual_seed(0)
    out = RegressorOutput(rotmat=torch.eye(3).expand(1, 24, 3, 3).clone(),
                          betas=torch.zeros(1, 10), cam=torch.tensor([[0.9, 0.0, 0.0]]))
    kp, _ = fast(out.rotmat, out.betas)
    pred = 0.9 * kp[..., :2]
    target = torch.zeros(1, 49, 3)
    target[0, :, :2] = pred[0]
    cfg = EFTConfig()
    base_loss, base_2d = eft_loss(out, target, cfg, fast)
    assert float(base_2d) == pytest.approx(0.0, abs=1e-12)
    assert float(base_loss) == pytest.approx(60 * math.exp(-9.0) ** 2, rel=1e-5)
    # a displaced hip (or any slot) without confidence changes nothing
    moved = target.clone()
    moved[0, 27, :2] += 0.5
    assert torch.allclose(eft_loss(out, moved, cfg, fast)[0], base_loss)
    # a displaced hip with confidence: ignored unless with_hips
    moved[0, 27, 2] = 1.0
    assert float(eft_loss(out, moved, cfg, fast)[1]) == pytest.approx(0.0, abs=1e-12)
    with_hips = float(eft_loss(out, moved, cfg.replace(with_hips=True), fast)[1])
    assert with_hips == pytest.approx(2 * 0.25 / 98, rel=1e-4)
    # a wrist off by 0.1 in x, confidence 1: L2D = 0.01 / 98
    wrist = target.clone()
    wrist[0, 31, 0] += 0.1
    wrist[0, 31, 2] = 1.0
    assert float(eft_loss(out, wrist, cfg, fast)[1]) == pytest.approx(0.01 / 98, rel=1e-3)
    # ankle and knee with confidence: the ankle is not in L2D, the shank direction counts
    leg = target.clone()
    leg[0, [25, 26], 2] = 1.0
    leg[0, 25, :2] = leg[0, 26, :2] + torch.tensor([0.3, 0.0])  # horizontal GT shank
    loss, l2d = eft_loss(out, leg, cfg, fast)
    assert float(l2d) == pytest.approx(0.0, abs=1e-12)
    shank = pred[0, 25] - pred[0, 26]
    cos = float(shank[0] / shank.norm())
    assert float(loss - base_loss) == pytest.approx(60 * 0.005 * (1 - cos), rel=1e-4)


def test_robust_2d_is_geman_mcclure_and_leaves_l2d_squared(fast):
    """``robust_2d``: a wrist off by ``d`` adds ``60 * 5 * rho^2 d^2 / (d^2 + rho^2) / 98``
    to the loss (the squared term's ``d^2 / 98`` for small ``d``, at most ``rho^2 / 98``
    however far), L2D stays squared, and a far joint's pull (the gradient) drops."""
    out = RegressorOutput(rotmat=torch.eye(3).expand(1, 24, 3, 3).clone(),
                          betas=torch.zeros(1, 10), cam=torch.tensor([[0.9, 0.0, 0.0]]))
    kp, _ = fast(out.rotmat, out.betas)
    target = torch.zeros(1, 49, 3)
    target[0, :, :2] = 0.9 * kp[0, :, :2]
    base = float(eft_loss(out, target, EFTConfig(), fast)[0])
    rho = 0.1
    for d in (0.001, 0.1, 1.0):
        wrist = target.clone()
        wrist[0, 31, 0] += d
        wrist[0, 31, 2] = 1.0
        loss, l2d = eft_loss(out, wrist, EFTConfig(robust_2d=rho), fast)
        assert float(l2d) == pytest.approx(d * d / 98, rel=1e-3)
        gm = rho * rho * d * d / (d * d + rho * rho)
        assert float(loss) - base == pytest.approx(60 * 5 * gm / 98, rel=2e-3)
        squared = float(eft_loss(out, wrist, EFTConfig(), fast)[0]) - base
        if d < 0.01:
            assert float(loss) - base == pytest.approx(squared, rel=1e-3)
        else:
            assert float(loss) - base < squared
    # the pull of a far joint on the camera: weaker under the robust term
    far = target.clone()
    far[0, 31, 0] += 1.0
    far[0, 31, 2] = 1.0
    pulls = []
    for cfg in (EFTConfig(), EFTConfig(robust_2d=rho)):
        cam = out.cam.clone().requires_grad_(True)
        eft_loss(RegressorOutput(out.rotmat, out.betas, cam), far, cfg, fast)[0].sum().backward()
        pulls.append(float(cam.grad.norm()))
    assert pulls[1] < 0.1 * pulls[0]
    with pytest.raises(ValueError, match="robust_2d"):
        EFTConfig(robust_2d=-0.1)


def test_pose_prior_term_adds_the_gmm_nll(fast, body, data):
    """``w_pose_prior`` adds ``loss_scale * w * NLL`` of the shipped GMM (evaluated here by
    the GMM module itself, on axis-angle), leaves L2D alone, and pulls fits toward
    plausible poses."""
    from eft.fitting.pose_prior import load_default_pose_prior
    from eft.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

    torch.manual_seed(0)
    rotmat = axis_angle_to_rotmat(0.3 * torch.randn(2, 24, 3))
    out = RegressorOutput(rotmat=rotmat, betas=torch.zeros(2, 10),
                          cam=torch.tensor([[0.9, 0.0, 0.0]] * 2))
    target = torch.zeros(2, 49, 3)
    base, base_2d = eft_loss(out, target, EFTConfig(), fast)
    loss, l2d = eft_loss(out, target, EFTConfig(w_pose_prior=1e-3), fast)
    nll = load_default_pose_prior().nll(rotmat_to_axis_angle(rotmat[:, 1:]).reshape(2, 69))
    assert torch.allclose(l2d, base_2d)
    assert torch.allclose(loss - base, 60 * 1e-3 * nll, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="w_pose_prior"):
        EFTConfig(w_pose_prior=-1.0)
    cfg = CFG.replace(max_iters=5)
    plain = fit(make_kr(), body, batch_of(data), cfg)
    pulled = fit(make_kr(), body, batch_of(data), cfg.replace(w_pose_prior=1e-3))
    assert np.mean([f.quality.pose_nll for f in pulled]) < np.mean(
        [f.quality.pose_nll for f in plain]) - 1.0


# ---------------------------------------------------------------------------
# Batched == sequential
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sequential_fits(body, data):
    return fit_sequential(make_kr(), body, batch_of(data), CFG)


def test_batched_equals_sequential(body, data, sequential_fits):
    model = make_kr()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batched = fit_batched(model, body, batch_of(data), CFG,
                          batch_size=8)
    assert len(batched) == N
    for a, b in zip(sequential_fits, batched, strict=True):
        assert_same(a, b)
        assert a.quality.iterations == CFG.max_iters
    # the weights actually moved: the fits differ from the initial prediction
    assert model.training  # the fit restored the mode it found
    init = model.eval()(sanitize_keypoints(data["targets"]))
    assert max(np.abs(f.rotmat - init.rotmat[i].detach().numpy()).max()
               for i, f in enumerate(batched)) > 1e-3
    for k, v in model.state_dict().items():  # the model itself is untouched
        assert torch.equal(v, before[k]), k


def test_batch_of_one_and_uneven_chunks(body, data, sequential_fits):
    """B = 1 (alone) and chunks of 3 (3 + 3 + 2) give the same fits."""
    one = fit_batched(make_kr(), body, batch_of(data, [2]), CFG,
                      batch_size=1)
    assert_same(sequential_fits[2], one[0])
    chunks = fit(make_kr(), body, batch_of(data), CFG, batch_size=3,
                 progress=False, pose_prior=None)
    for a, b in zip(sequential_fits, chunks, strict=True):
        assert_same(a, b)


def test_exemplar_alone_equals_in_batch(body, data):
    """No state leaks between exemplars: A alone == A among others (either order)."""
    cfg = CFG.replace(stop_loss_2d=2e-3)  # some stop early, the rest go on
    together = fit_batched(make_kr(), body, batch_of(data), cfg)
    assert len({f.quality.iterations for f in together}) > 1
    for i in (0, 5):
        alone = fit_batched(make_kr(), body, batch_of(data, [i]), cfg)[0]
        assert_same(alone, together[i])
    rev = list(range(N))[::-1]
    reversed_fits = fit_batched(make_kr(), body, batch_of(data, rev), cfg)
    for j, i in enumerate(rev):
        assert_same(reversed_fits[j], together[i])


# ---------------------------------------------------------------------------
# EFT does its job, and stops like EFT
# ---------------------------------------------------------------------------

def test_eft_lowers_2d_error(body, data):
    fits = fit_batched(make_kr(), body, batch_of(data),
                       EFTConfig(lr=1e-4, max_iters=10, stop_loss_2d=0.0))
    for f in fits:
        assert f.quality.n_valid_keypoints >= 6
        assert "skipped" not in f.flags
        assert f.quality.loss_2d_final < 0.5 * f.quality.loss_2d_init
        assert np.isfinite(f.quality.reproj_px)
        side = 200 * f.scale
        assert f.quality.reproj_frac_bbox == pytest.approx(f.quality.reproj_px / side)
        assert f.rotmat.shape == (24, 3, 3) and f.pose_aa.shape == (72,)
        assert f.betas.shape == (10,) and f.cam_weak.shape == (3,)
        assert f.keypoints3d.shape == (49, 3) and f.vertices is None
        s, tx, ty = f.cam_weak
        np.testing.assert_allclose(f.cam_t, [tx / s, ty / s, 2 * 5000 / (224 * s)], rtol=1e-5)


def test_early_stop_keeps_the_stopping_step(body, data, fast):
    """With a loose threshold the fit stops early, and the reported final loss is the
    loss of the returned parameters (the stopping step's), recomputed independently."""
    model = make_kr()
    with torch.no_grad():
        init = model.eval()(sanitize_keypoints(data["targets"]))
        _, init_2d = eft_loss(init, sanitize_keypoints(data["targets"]), EFTConfig(), fast)
    threshold = float(init_2d.median())  # about half are below it at once
    cfg = EFTConfig(lr=1e-4, max_iters=10, stop_loss_2d=threshold)
    for fits in (fit_batched(model, body, batch_of(data), cfg),
                 fit_sequential(model, body, batch_of(data), cfg)):
        for i, f in enumerate(fits):
            q = f.quality
            assert q.converged and q.iterations < cfg.max_iters
            assert q.loss_2d_final < threshold
            out = RegressorOutput(rotmat=torch.as_tensor(f.rotmat[None]),
                                  betas=torch.as_tensor(f.betas[None]),
                                  cam=torch.as_tensor(f.cam_weak[None]))
            _, l2d = eft_loss(out, sanitize_keypoints(data["targets"][i:i + 1]), cfg, fast)
            assert float(l2d) == pytest.approx(q.loss_2d_final, rel=1e-4, abs=1e-9)
            if q.iterations == 1:  # stopped at once: the regressor's own prediction
                assert q.loss_2d_final == q.loss_2d_init
                np.testing.assert_allclose(f.rotmat, init.rotmat[i].numpy(), atol=1e-5)
        assert any(f.quality.iterations > 1 for f in fits)


def test_keep_params_are_those_of_the_stopping_step(body, data, fast):
    """Re-running the regressor with the returned parameters reproduces the fit."""
    cfg = EFTConfig(lr=1e-4, max_iters=5, stop_loss_2d=0.0)
    model = make_kr()
    fits = fit_batched(model, body, batch_of(data, [0, 1]), cfg,
                       keep_params=True)
    for i, f in enumerate(fits):
        tuned = make_kr()
        tuned.load_state_dict({**tuned.state_dict(),
                               **{k: torch.as_tensor(v) for k, v in f.params.items()}})
        with torch.no_grad():
            out = tuned.eval()(sanitize_keypoints(data["targets"][i:i + 1]))
        np.testing.assert_allclose(out.rotmat[0].numpy(), f.rotmat, atol=1e-5)
        np.testing.assert_allclose(out.cam[0].numpy(), f.cam_weak, atol=1e-5)


# ---------------------------------------------------------------------------
# Degenerate exemplars
# ---------------------------------------------------------------------------

def test_degenerate_exemplars_are_skipped_without_harm(body, data, sequential_fits):
    targets = data["targets"].clone()
    bad = targets[:3].clone()
    bad[0, :, 2] = 0.0  # no confidence at all
    bad[1, :, :] = float("nan")  # NaN keypoints
    bad[2, :, 2] = 0.0
    bad[2, 31, 2] = 1.0  # a single keypoint
    mixed = torch.cat([targets[:4], bad, targets[4:]])
    rows = [0, 1, 2, 3, 0, 1, 2, 4, 5, 6, 7]
    ids = [data["ids"][r] for r in rows]
    ids[4:7] = ["zero-conf", "nan", "single"]
    model = make_kr()
    for fn in (fit_batched, fit_sequential):
        fits = fn(model, body, FitTargets(mixed, ids=ids, centers=data["centers"][rows],
                                          scales=data["scales"][rows]), CFG)
        with torch.no_grad():
            init = model.eval()(sanitize_keypoints(mixed[4:7]))
        for j, f in enumerate(fits[4:7]):
            assert "skipped" in f.flags and "too_few_keypoints" in f.flags
            assert not f.accepted and f.quality.iterations == 0
            assert f.quality.n_valid_keypoints == (1 if j == 2 else 0)
            np.testing.assert_allclose(f.rotmat, init.rotmat[j].numpy(), atol=1e-6)
            assert np.isfinite(f.rotmat).all() and np.isfinite(f.betas).all()
            assert math.isfinite(f.quality.loss_2d_final)
        assert math.isnan(fits[5].quality.reproj_px)
        good = fits[:4] + fits[7:]
        for a, b in zip(sequential_fits, good, strict=True):
            assert_same(a, b)


def test_hmr_non_finite_image_is_skipped(body, hmr):
    model = hmr
    images = torch.randn(2, 3, 32, 32)
    images[1, 0, 5, 5] = float("nan")
    targets = torch.zeros(2, 49, 3)
    targets[:, 25:, :2] = torch.randn(2, 24, 2) * 0.3
    targets[:, 25:, 2] = 1.0
    fits = fit_batched(model, body, FitTargets(targets, images),
                       EFTConfig(max_iters=1, scope="head"))
    assert "skipped" not in fits[0].flags
    assert {"skipped", "non_finite"} <= set(fits[1].flags)
    assert np.isfinite(fits[1].rotmat).all()


def test_bad_arguments(body, data, hmr):
    with pytest.raises(EftError):
        fit_batched(make_kr(), body, FitTargets(data["targets"][:, :24]), CFG)
    with pytest.raises(EftError):
        fit_batched(hmr, body, FitTargets(data["targets"]), CFG)  # HMR needs images
    with pytest.raises(ValueError):
        fit(make_kr(), body, FitTargets(data["targets"]), CFG, mode="parallel")
    with pytest.raises(EftError):
        split_model(torch.nn.Linear(2, 2), "head")


# ---------------------------------------------------------------------------
# Trainable scopes
# ---------------------------------------------------------------------------

def test_kr_scopes(body, data):
    targets = data["targets"][:2]
    base = make_kr().state_dict()
    changed = {}
    for scope in ("all", "head", "last_stage", "bias"):
        cfg = EFTConfig(lr=1e-3, max_iters=3, stop_loss_2d=0.0, scope=scope)
        fits = fit_batched(make_kr(), body, FitTargets(targets, **kwargs(data, [0, 1])), cfg,
                           keep_params=True)
        seq = fit_sequential(make_kr(), body, FitTargets(targets, **kwargs(data, [0, 1])), cfg)
        for a, b in zip(seq, fits, strict=True):
            assert_same(a, b, atol=1e-4)
        changed[scope] = {k for k, v in fits[0].params.items()
                          if not np.array_equal(v, base[k].numpy())}
    head = {"fc1", "fc2", "decpose", "decshape", "deccam"}
    assert {k.split(".")[0] for k in changed["head"]} == head
    assert any(k.startswith("encoder.0.") for k in changed["all"])
    assert {k.rsplit(".", 1)[0] for k in changed["last_stage"]} - {
        f"{h}" for h in head} == {"encoder.3", "encoder.4"}
    assert changed["bias"] == {"encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
                               "encoder.3.bias", "encoder.4.weight", "encoder.4.bias",
                               "fc1.bias", "fc2.bias", "decpose.bias", "decshape.bias",
                               "deccam.bias"}


def test_hmr_scopes_and_frozen_batchnorm(body, hmr):
    """Tiny HMR run (32 x 32 crops, B = 2, 2 steps): "all" trains the backbone but never
    BatchNorm's affine weights or statistics; "head" leaves the backbone alone."""
    model = hmr
    images = torch.randn(2, 3, 32, 32)
    targets = torch.zeros(2, 49, 3)
    targets[:, 25:, :2] = torch.randn(2, 24, 2) * 0.4
    targets[:, 25:, 2] = 1.0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bn = {n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    results = {}
    for scope in ("all", "head", "last_stage"):
        cfg = EFTConfig(lr=1e-3, max_iters=2, stop_loss_2d=0.0, scope=scope)
        results[scope] = fit_batched(model, body, FitTargets(targets, images), cfg,
                                     keep_params=True)
        for k, v in model.state_dict().items():  # model restored, BN statistics included
            assert torch.equal(v, before[k]), k
    for scope, fits in results.items():
        for f in fits:
            assert f.quality.iterations == 2
            moved = {k for k, v in f.params.items() if not np.array_equal(v, before[k].numpy())}
            assert not any(k.rsplit(".", 1)[0] in bn for k in moved)  # BN affine frozen
            backbone = {k for k in moved if k.split(".")[0] not in
                        {"fc1", "fc2", "decpose", "decshape", "deccam"}}
            if scope == "all":
                assert "conv1.weight" in backbone and "layer4.2.conv3.weight" in backbone
            elif scope == "last_stage":
                assert {k.split(".")[0] for k in backbone} == {"layer4"}
                assert "layer4.0.downsample.0.weight" in backbone and "fc1.weight" in moved
            else:
                assert not backbone and "fc1.weight" in moved
    seq = fit_sequential(model, body, FitTargets(targets, images),
                         EFTConfig(lr=1e-3, max_iters=2, stop_loss_2d=0.0, scope="all"))
    for a, b in zip(seq, results["all"], strict=True):
        # an untrained HMR predicts betas in the tens: compare relatively
        assert_same(a, b, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------
# Quality flags and acceptance rules
# ---------------------------------------------------------------------------

def test_quality_flags_rules():
    rules = QualityRules()
    ok = {"loss_2d_init": 0.01, "loss_2d_final": 5e-4, "max_abs_beta": 1.5,
          "n_valid_keypoints": 12}
    assert quality_flags(rules, **ok) == ()
    assert quality_flags(rules, **{**ok, "max_abs_beta": 4.0}) == ("extreme_shape",)
    assert quality_flags(rules, **{**ok, "loss_2d_final": 2e-3}) == ("not_converged",)
    assert quality_flags(rules, **{**ok, "loss_2d_init": 0.05}) == ("high_initial_loss",)
    assert quality_flags(rules, **{**ok, "n_valid_keypoints": 5}) == ("too_few_keypoints",)
    assert "non_finite" in quality_flags(rules, **{**ok, "loss_2d_final": math.nan})
    assert quality_flags(rules, **ok, pose_nll=100.0) == ()
    assert quality_flags(rules, **ok, pose_nll=rules.max_pose_nll + 1) == ("implausible_pose",)
    assert quality_flags(rules.replace(max_pose_nll=50.0), **ok, pose_nll=100.0) == (
        "implausible_pose",)
    assert quality_flags(rules.replace(max_pose_nll=None), **ok, pose_nll=1e9) == ()
    assert quality_flags(QualityRules.strict(), **ok) == ("not_converged", "extreme_shape")
    assert set(quality_flags(rules, **ok, finite=False, skipped=True)) == {
        "non_finite", "skipped"}
    assert set(FLAGS) >= {"not_converged", "extreme_shape", "implausible_pose",
                          "too_few_keypoints", "high_initial_loss", "non_finite", "skipped"}


def test_default_pose_nll_threshold_separates_real_from_broken_poses():
    """The default ``max_pose_nll`` passes real poses of the unseen val clips and flags
    poses with joints twisted far beyond their range."""
    from eft.fitting import DEFAULT_MAX_POSE_NLL, load_default_pose_prior
    from eft.synthetic.pose_bank import load_pose_bank

    prior = load_default_pose_prior()
    assert QualityRules().max_pose_nll == DEFAULT_MAX_POSE_NLL
    poses = torch.tensor(np.asarray(load_pose_bank().val().poses[::50]), dtype=torch.float64)
    nll = prior.nll(poses)
    assert float((nll > DEFAULT_MAX_POSE_NLL).float().mean()) < 0.001
    broken = poses.clone().reshape(len(poses), 24, 3)
    broken[:, [4, 5, 18, 19]] = torch.tensor([2.5, 0.0, 0.0], dtype=torch.float64)  # knees, elbows
    assert bool((prior.nll(broken.reshape(len(poses), 72)) > DEFAULT_MAX_POSE_NLL).all())


def test_quality_flags_on_fits(body, data):
    """Huge betas and a high loss get flagged; rules decide acceptance; a pose prior
    fills pose_nll."""
    model = make_kr()
    with torch.no_grad():
        model.init_shape[0, 0] = 8.0  # every prediction gets an extreme shape
    calls = []

    def prior(rotmat):
        calls.append(rotmat.shape)
        return torch.full((rotmat.shape[0],), 42.0)

    targets = data["targets"][:3].clone()
    targets[2, 25:, :2] += 0.8  # far from anything: high initial loss, not converged
    cfg = EFTConfig(lr=1e-4, max_iters=2, stop_loss_2d=0.0)
    fits = fit_batched(model, body, FitTargets(targets, **kwargs(data, [0, 1, 2])), cfg,
                       pose_prior=prior)
    assert calls == [(3, 24, 3, 3)]
    for f in fits:
        assert "extreme_shape" in f.flags and not f.accepted
        assert f.quality.max_abs_beta > 3 and f.quality.pose_nll == 42.0
    assert {"high_initial_loss", "not_converged"} <= set(fits[2].flags)
    # looser rules accept what the defaults reject; re-judging needs no refit
    loose = QualityRules(max_abs_beta=100.0, max_loss_2d=1.0, max_initial_loss_2d=10.0)
    assert all(f.accepted for f in rejudge(fits, loose))
    assert apply_rules(fits[0].quality, loose).flags == ()
    only_shape = QualityRules(reject_flags=("extreme_shape",))
    assert all(not apply_rules(f.quality, only_shape).accepted for f in fits)
    tolerant = QualityRules(reject_flags=("skipped",))
    assert all(apply_rules(f.quality, tolerant).accepted for f in fits)
    # the same rules given up front
    again = fit_batched(model, body, FitTargets(targets, **kwargs(data, [0, 1, 2])),
                        cfg.replace(rules=loose))
    assert [f.accepted for f in again] == [True, True, True]
    assert math.isnan(again[0].quality.pose_nll)


def test_vertices_and_fit_dataclass(body, data):
    fits = fit_sequential(make_kr(), body, batch_of(data, [0]),
                          EFTConfig(max_iters=1), with_vertices=True)
    f = fits[0]
    assert f.vertices.shape == (body.num_vertices, 3)
    out = body(torch.as_tensor(f.rotmat[None]), torch.as_tensor(f.betas[None]))
    np.testing.assert_allclose(out.keypoints[0].numpy(), f.keypoints3d, atol=1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.quality.accepted = True  # type: ignore[misc]


def test_fit_scores_pose_nll_with_the_shipped_prior(body):
    """``fit`` fills ``pose_nll`` from the bank's GMM unless told otherwise."""
    from eft.fitting import fit, load_default_pose_prior
    from eft.synthetic.pose_bank import load_pose_bank
    from eft.train.prior import crop_inputs

    data = generate(load_pose_bank().val().poses, 4, 0, body=body)
    targets = crop_inputs(torch.as_tensor(data.keypoints).float(),
                          torch.as_tensor(data.center).float(), torch.as_tensor(data.scale).float())
    torch.manual_seed(0)
    model = KeypointRegressor(width=64, hidden=64)
    cfg = EFTConfig(max_iters=2)
    fits = fit(model, body, FitTargets(targets, targets), cfg, progress=False)
    prior = load_default_pose_prior()
    expected = prior(torch.as_tensor(np.stack([f.rotmat for f in fits])))
    np.testing.assert_allclose([f.quality.pose_nll for f in fits], expected.numpy(), rtol=1e-4)
    off = fit(model, body, FitTargets(targets, targets), cfg, progress=False, pose_prior=None)
    assert all(math.isnan(f.quality.pose_nll) for f in off)
