"""The flat batched EFT engine (eft.fitting.flat) against fit_sequential, the readable
spec: same fits (1e-5), same iteration counts, same flags, at B = 1, 8 and 64, with
early-stopping, never-stopping and degenerate exemplars, in every scope; independence of
exemplars; other layer sizes and a masked input; and the level-wise kinematic chain
against smplx's, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smplx.lbs import batch_rigid_transform

from eft.body import BodyModel
from eft.body.fast import KeypointLBS, kinematic_levels, rigid_transform_levels
from eft.fitting import EFTConfig, FitTargets, exemplar_batch, fit, fit_flat, fit_sequential
from eft.fitting import flat as flat_module
from eft.fitting.losses import sanitize_keypoints
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import HMR, KeypointRegressor, load_regressor
from eft.synthetic.exemplars import SyntheticConfig, generate
from tests.test_body_model import fake_smpl_fields
from tests.test_eft import assert_same

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = 1e-5  # measured max difference flat vs sequential on these runs: ~1e-6
N_GOOD = 61


@pytest.fixture(scope="module")
def prior() -> KeypointRegressor:
    """The shipped keypoint prior (the fits restore its weights)."""
    return load_regressor("default")


@pytest.fixture(scope="module")
def data(body):
    """64 exemplars: 61 synthetic people (COCO-17 annotation, noise, missing joints) and
    3 degenerate ones (no confidence, NaN keypoints, a single keypoint) at rows 5, 30, 63."""
    g = torch.Generator().manual_seed(1)
    poses = (torch.randn(N_GOOD, 72, generator=g, dtype=torch.float64) * 0.3).numpy()
    cfg = SyntheticConfig(truncation_prob=0.0, limb_drop_prob=0.0)
    good = exemplar_batch(list(generate(poses, N_GOOD, seed=1, config=cfg,
                                        body=body).exemplars())).keypoints
    bad = good[:3].clone()
    bad[0, :, 2] = 0.0
    bad[1] = float("nan")
    bad[2, :, 2] = 0.0
    bad[2, 31, 2] = 1.0
    rows = list(good)
    for pos, b in zip((5, 30, 63), bad, strict=True):
        rows.insert(pos, b)
    return torch.stack(rows)


def _threshold(model, body, targets, scope: str) -> float:
    """A stopping threshold between two initial 2D losses (about a third of the
    exemplars stop at once, some later, some never), away from every initial loss."""
    init = fit_sequential(model, body, FitTargets(targets),
                          EFTConfig(max_iters=1, stop_loss_2d=0.0, scope=scope))
    losses = np.sort([f.quality.loss_2d_init for f in init
                      if "skipped" not in f.quality.flags])
    k = len(losses) // 3
    return float(0.5 * (losses[k] + losses[k + 1]))


def _compare(ref, got, atol=ATOL):
    assert len(ref) == len(got)
    for a, b in zip(ref, got, strict=True):
        assert_same(a, b, atol=atol)


@pytest.mark.parametrize("scope", ["all", "head", "last_stage", "bias"])
def test_flat_equals_sequential_b64_mixed(body, prior, data, scope):
    """B = 64 in one chunk: early stops, never-stoppers and skipped exemplars agree with
    the sequential loop (fits, iterations, convergence, flags)."""
    cfg = EFTConfig(lr=6e-5, max_iters=8, scope=scope,
                    stop_loss_2d=_threshold(prior, body, data, scope))
    ref = fit_sequential(prior, body, FitTargets(data), cfg)
    got = fit_flat(prior, body, FitTargets(data), cfg, batch_size=64, block=8)
    _compare(ref, got)
    iters = [f.quality.iterations for f in ref]
    assert iters.count(0) == 3  # the degenerate ones
    assert 1 in iters and cfg.max_iters in iters  # stopped at once / never stopped
    assert any(1 < i < cfg.max_iters for i in iters)  # stopped on the way
    for i in (5, 30, 63):
        assert "skipped" in got[i].quality.flags


@pytest.mark.parametrize("batch,block", [(1, 8), (8, 3), (8, 8)])
@pytest.mark.parametrize("scope", ["all", "head", "bias"])
def test_flat_equals_sequential_small_batches(body, prior, data, scope, batch, block):
    """B = 1 and B = 8 chunks (and cache blocks that do not divide the chunk)."""
    rows = list(range(3, 12))  # includes the degenerate row 5
    targets = data[rows]
    cfg = EFTConfig(lr=6e-5, max_iters=6, scope=scope,
                    stop_loss_2d=_threshold(prior, body, targets, scope))
    ref = fit_sequential(prior, body, FitTargets(targets), cfg)
    got = fit_flat(prior, body, FitTargets(targets), cfg, batch_size=batch, block=block)
    _compare(ref, got)


def test_fit_alone_equals_fit_in_batch(body, prior, data):
    cfg = EFTConfig(max_iters=8, stop_loss_2d=_threshold(prior, body, data[:16], "all"))
    together = fit_flat(prior, body, FitTargets(data[:16]), cfg, block=4)
    assert len({f.quality.iterations for f in together}) > 2
    for i in (0, 7, 13):
        alone = fit_flat(prior, body, FitTargets(data[i:i + 1]), cfg)[0]
        b = together[i]
        assert (alone.quality.iterations, alone.quality.flags) == (
            b.quality.iterations, b.quality.flags)
        # float32 rounding of the batched matmuls, through 8 Adam steps: ~4e-6 with prior v8
        np.testing.assert_allclose(alone.rotmat, b.rotmat, atol=ATOL)
        np.testing.assert_allclose(alone.betas, b.betas, atol=ATOL)
        np.testing.assert_allclose(alone.cam_weak, b.cam_weak, atol=ATOL)


@pytest.mark.parametrize("scope", ["all", "bias"])
def test_keep_params_model_untouched_and_params_reproduce_the_fit(body, prior, data, scope):
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    prior.train()
    cfg = EFTConfig(lr=1e-4 if scope == "all" else 1e-3, max_iters=4, stop_loss_2d=0.0,
                    scope=scope)
    ref = fit_sequential(prior, body, FitTargets(data[:3]), cfg, keep_params=True)
    got = fit_flat(prior, body, FitTargets(data[:3]), cfg, keep_params=True)
    assert prior.training
    for k, v in prior.state_dict().items():
        assert torch.equal(v, before[k]), k
    for a, b in zip(ref, got, strict=True):
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            np.testing.assert_allclose(a.params[k], b.params[k], atol=1e-5)
    moved = {k for k, v in got[1].params.items() if not np.array_equal(v, before[k].numpy())}
    if scope == "bias":  # biases and LayerNorm gains/offsets only; every matrix is shared
        assert moved and all(k.endswith(".bias") or prior.get_submodule(
            k.rsplit(".", 1)[0]).__class__ is torch.nn.LayerNorm for k in moved)
        assert "decpose.bias" in moved and "encoder.1.weight" in moved
    else:
        assert "encoder.0.weight" in moved
    tuned = load_regressor("default")
    tuned.load_state_dict({**tuned.state_dict(),
                           **{k: torch.as_tensor(v) for k, v in got[1].params.items()}})
    with torch.no_grad():
        out = tuned.eval()(sanitize_keypoints(data[1:2]))
    np.testing.assert_allclose(out.rotmat[0].numpy(), got[1].rotmat, atol=1e-5)


class _MaskedRegressor(KeypointRegressor):
    """A v2-style prior: wider or narrower, another n_iter, and an input mask inside
    ``prepare_input`` (slots it never saw count as missing)."""

    def prepare_input(self, keypoints):
        kp = keypoints.clone()
        kp[:, :25, 2] = 0.0  # reads only the GT slots
        return super().prepare_input(kp)


@pytest.mark.parametrize("scope", ["all", "last_stage", "bias"])
def test_other_layer_sizes_and_masked_input(body, data, scope):
    torch.manual_seed(3)
    model = _MaskedRegressor(width=96, hidden=80, n_iter=2)
    model.encoder = torch.nn.Sequential(*model.encoder, torch.nn.Linear(96, 96),
                                        torch.nn.LayerNorm(96), torch.nn.ReLU())
    assert flat_module.supports(model, scope)
    targets = data[:10]
    cfg = EFTConfig(lr=1e-4, max_iters=5, scope=scope,
                    stop_loss_2d=_threshold(model, body, targets, scope))
    ref = fit_sequential(model, body, FitTargets(targets), cfg)
    got = fit_flat(model, body, FitTargets(targets), cfg, block=4)
    _compare(ref, got)


def test_fit_dispatches_to_the_flat_engine(body, prior, data, monkeypatch):
    calls = []
    real = flat_module.fit_flat

    def spy(*args, **kwargs):
        calls.append(type(args[0]).__name__)
        return real(*args, **kwargs)

    monkeypatch.setattr(flat_module, "fit_flat", spy)
    cfg = EFTConfig(max_iters=2)
    fit(prior, body, FitTargets(data[:2]), cfg, progress=False, pose_prior=None)
    assert calls == ["KeypointRegressor"]
    fit(prior, body, FitTargets(data[:2]), cfg, mode="vmap", progress=False, pose_prior=None)
    assert calls == ["KeypointRegressor"]
    torch.manual_seed(0)
    hmr = HMR()
    assert not flat_module.supports(hmr, "all")
    images = torch.randn(1, 3, 32, 32)
    fit(hmr, body, FitTargets(data[:1], images), EFTConfig(max_iters=1, scope="head"),
        progress=False, pose_prior=None)
    assert calls == ["KeypointRegressor"]
    with pytest.raises(ValueError):
        fit(prior, body, FitTargets(data[:2]), cfg, mode="parallel")


# ---------------------------------------------------------------------------
# Level-wise kinematic chain
# ---------------------------------------------------------------------------

def _chain_bitwise(body: BodyModel, seed: int) -> None:
    smpl = body.smpl
    parents = smpl.parents
    g = torch.Generator().manual_seed(seed)
    for dtype in (torch.float32, torch.float64):
        for batch in (1, 5, 64):
            rot = axis_angle_to_rotmat(torch.randn(batch, 24, 3, generator=g, dtype=dtype))
            betas = torch.randn(batch, 10, generator=g, dtype=dtype)
            v_shaped = smpl.v_template.to(dtype) + torch.einsum(
                "bl,mkl->bmk", betas, smpl.shapedirs.to(dtype))
            joints = torch.einsum("bik,ji->bjk", v_shaped, smpl.J_regressor.to(dtype))
            ref_j, ref_a = batch_rigid_transform(rot, joints, parents, dtype)
            got_j, got_a = rigid_transform_levels(rot, joints, parents.tolist())
            assert torch.equal(ref_j, got_j) and torch.equal(ref_a, got_a)
    levels = kinematic_levels(parents.tolist())
    assert len(levels) == 8  # SMPL's tree is 9 joints deep
    assert sorted(j for lv, _ in levels for j in lv) == list(range(1, 24))


def test_levelwise_chain_bitwise_on_open_model(body):
    _chain_bitwise(body, 0)


def test_levelwise_chain_bitwise_on_smpl_layout_model_with_posedirs(tmp_path):
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **fake_smpl_fields(seed=5))
    np.save(tmp_path / "J_regressor_extra.npy", np.full((9, 6890), 1 / 6890, dtype=np.float32))
    body = BodyModel.load(tmp_path)
    fast = KeypointLBS(body)
    assert fast.has_correctives
    _chain_bitwise(body, 1)
    # and the keypoint path built on it still matches the mesh
    rot = axis_angle_to_rotmat(torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        kp, joints = fast(rot, torch.zeros(3, 10))
        ref = body(rot, torch.zeros(3, 10))
    torch.testing.assert_close(kp, ref.keypoints, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(joints, ref.joints, atol=1e-5, rtol=1e-5)


def test_kinematic_levels_rejects_unordered_trees():
    with pytest.raises(ValueError):
        kinematic_levels([-1, 2, 0])
