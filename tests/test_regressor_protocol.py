"""The regressor protocol (eft.models.protocol): a regressor defined here, outside
eft.models and eft.fitting, is fine-tuned by fit() and fit_sequential through its own
declarations only (input kind, EFT learning rate, frozen/trained split per scope), and
the shipped regressors declare what the engine used to hard-code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from eft.errors import EftError
from eft.fitting import EFTConfig, exemplar_batch, fit, fit_sequential, split_model
from eft.fitting import flat as flat_module
from eft.fitting.config import EFT_LR, KEYPOINT_REGRESSOR_LR
from eft.geometry.rotations import rot6d_to_rotmat
from eft.models import HMR, KeypointRegressor, Regressor, RegressorOutput
from eft.models.ief import default_mean_params
from eft.models.protocol import RegressorSplit, whole_model_split
from eft.synthetic.exemplars import SyntheticConfig, generate

N = 6
# batched (vmap, stacked Adam) vs sequential (torch.optim.Adam) float32 rounding, as in
# tests/test_eft.py
ATOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyRegressor(nn.Module):
    """Keypoints -> tanh MLP features -> one Linear decoder added to the mean
    parameters; not an IEF regressor.  Its head scope trains the decoder only, and it
    has no stage of its own, so ``"last_stage"`` is the same as ``"head"``."""

    input_kind = "keypoints"
    eft_lr = 2e-5

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(49 * 3, width), nn.Tanh())
        self.decoder = nn.Linear(width, 144 + 10 + 3)
        mean = default_mean_params()
        start = np.concatenate([mean["pose"], mean["shape"], mean["cam"]])
        self.register_buffer("start", torch.from_numpy(start).float())

    def encode(self, keypoints: Tensor) -> Tensor:
        conf = torch.nan_to_num(keypoints[..., 2:].clamp(min=0.0), nan=0.0)
        xy = torch.where(conf > 0, keypoints[..., :2], torch.zeros_like(keypoints[..., :2]))
        return self.encoder(torch.cat((xy, conf), dim=-1).flatten(1))

    def decode(self, features: Tensor) -> RegressorOutput:
        state = self.decoder(features) + self.start
        pose6d = state[:, :144]
        return RegressorOutput(rotmat=rot6d_to_rotmat(pose6d.reshape(-1, 24, 6)),
                               betas=state[:, 144:154], cam=state[:, 154:], pose6d=pose6d)

    def forward(self, keypoints: Tensor) -> RegressorOutput:
        return self.decode(self.encode(keypoints))

    def eft_split(self, scope: str) -> RegressorSplit:
        if scope == "all":
            return whole_model_split(self)
        return RegressorSplit(self.encode, self.decode, ("decoder",))


def make_toy() -> ToyRegressor:
    torch.manual_seed(0)
    return ToyRegressor()


@pytest.fixture(scope="module")
def targets(body):
    g = torch.Generator().manual_seed(1)
    poses = (torch.randn(N, 72, generator=g, dtype=torch.float64) * 0.3).numpy()
    cfg = SyntheticConfig(truncation_prob=0.0, limb_drop_prob=0.0)
    return exemplar_batch(list(generate(poses, N, seed=1, config=cfg, body=body).exemplars()))


def assert_same(a, b, atol=ATOL):
    assert [f.exemplar_id for f in a] == [f.exemplar_id for f in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.rotmat, y.rotmat, atol=atol, rtol=0)
        np.testing.assert_allclose(x.betas, y.betas, atol=atol, rtol=0)
        np.testing.assert_allclose(x.cam_weak, y.cam_weak, atol=atol, rtol=0)
        assert x.quality.iterations == y.quality.iterations


def test_toy_is_a_regressor_and_declares_its_split():
    toy = make_toy()
    assert isinstance(toy, Regressor)
    assert not isinstance(nn.Linear(2, 2), Regressor)
    assert split_model(toy, "head").trainable == ("decoder.weight", "decoder.bias")
    assert split_model(toy, "all").trainable == tuple(n for n, _ in toy.named_parameters())
    assert EFTConfig().resolve_lr(toy) == 2e-5
    assert not flat_module.supports(toy, "all")  # the flat engine is for KR-shaped models
    with pytest.raises(EftError):
        split_model(toy, "everything")


@pytest.mark.parametrize("scope", ["all", "head", "bias"])
def test_toy_fit_equals_sequential(body, targets, scope):
    cfg = EFTConfig(max_iters=6, stop_loss_2d=0.0, scope=scope)
    toy = make_toy()
    before = {n: p.detach().clone() for n, p in toy.named_parameters()}
    seq = fit_sequential(toy, body, targets, cfg)
    got = fit(toy, body, targets, cfg, progress=False, pose_prior=None)
    assert_same(seq, got)
    for n, p in toy.named_parameters():  # the fits restore the pretrained weights
        assert torch.equal(p, before[n])
    # the fine-tuning moved the prediction: a 1-step fit is the un-tuned regressor
    init = fit_sequential(toy, body, targets, cfg.replace(max_iters=1))
    assert all(f.quality.loss_2d_final < i.quality.loss_2d_final for f, i in
               zip(seq, init, strict=True))
    if scope == "head":  # the frozen encoder: same features, only the decoder moved
        full = fit_sequential(toy, body, targets, cfg.replace(scope="all"))
        assert not np.allclose(full[0].rotmat, seq[0].rotmat, atol=1e-6)


def test_toy_learning_rate_is_its_own(body, targets):
    cfg = EFTConfig(max_iters=4, stop_loss_2d=0.0)
    toy = make_toy()
    own = fit_sequential(toy, body, targets, cfg)
    assert_same(own, fit_sequential(toy, body, targets, cfg.replace(lr=ToyRegressor.eft_lr)),
                atol=0)
    other = fit_sequential(toy, body, targets, cfg.replace(lr=EFT_LR))
    assert not np.allclose(own[0].rotmat, other[0].rotmat, atol=1e-7)


def test_shipped_regressors_declare_what_the_engine_hard_coded():
    torch.manual_seed(0)
    kr = KeypointRegressor()
    assert (kr.input_kind, kr.eft_lr) == ("keypoints", KEYPOINT_REGRESSOR_LR)
    assert (HMR.input_kind, HMR.eft_lr) == ("image", EFT_LR)
    head = ("fc1", "fc2", "decpose", "decshape", "deccam")
    names = [n for n, _ in kr.named_parameters()]
    assert split_model(kr, "head").trainable == tuple(
        n for n in names if n.split(".")[0] in head)
    assert split_model(kr, "last_stage").trainable == tuple(
        n for n in names if n.split(".")[0] in head or n.startswith(("encoder.3.", "encoder.4.")))
    # "bias": every Linear bias and LayerNorm gain/offset, written out by hand
    assert split_model(kr, "bias").trainable == (
        "encoder.0.bias", "encoder.1.weight", "encoder.1.bias", "encoder.3.bias",
        "encoder.4.weight", "encoder.4.bias", "fc1.bias", "fc2.bias", "decpose.bias",
        "decshape.bias", "deccam.bias")
    assert flat_module.supports(kr, "bias")
    assert not flat_module.supports(kr.deepened(1), "bias")  # residual blocks: fit_batched
    hmr = HMR()
    # HMR's convolutions have no bias and BatchNorm stays frozen: only the IEF head's
    assert split_model(hmr, "bias").trainable == tuple(f"{h}.bias" for h in head)
    hmr_names = split_model(hmr, "last_stage").trainable
    assert all(n.startswith("layer4.") or n.split(".")[0] in head for n in hmr_names)
    assert not any(".bn" in n or "downsample.1" in n for n in hmr_names)  # BatchNorm frozen
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        hmr.eval()
        split = hmr.eft_split("last_stage")
        np.testing.assert_allclose(split.head(split.features(x)).rotmat, hmr(x).rotmat,
                                   atol=1e-6)
