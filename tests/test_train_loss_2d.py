"""The 2D term's options, checked against the formula written out by hand: the weight of
a real person's joints the regressor must infer (``hidden_2d``), the distance form on real
2D-only samples (``kp2d_distance``) and on those inferred joints only
(``hidden_2d_distance``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eft.body.fast import KeypointLBS
from eft.body.model import BodyModel
from eft.models.output import RegressorOutput
from eft.train.augment import Batch
from eft.train.losses import LossWeights, regression_loss


@pytest.fixture(scope="module")
def fast():
    return KeypointLBS(BodyModel.load())


def _case(fast):
    """Two people: 0 synthetic (SMPL targets), 1 real (2D only).  Returns the output,
    the batch, and the projected keypoints (2, 49, 2) the loss sees."""
    g = torch.Generator().manual_seed(0)
    n = 2
    rot = torch.eye(3).expand(n, 24, 3, 3).clone()
    out = RegressorOutput(rotmat=rot, betas=torch.zeros(n, 10),
                          cam=torch.tensor([[0.9, 0.05, -0.02], [1.1, 0.0, 0.1]]),
                          pose6d=torch.zeros(n, 144))
    kp, _ = fast(rot, torch.zeros(n, 10))
    proj = out.cam[:, None, :1] * kp[..., :2] + out.cam[:, None, 1:]  # written out
    target = torch.zeros(n, 49, 3)
    target[..., :2] = proj + 0.1 * torch.randn(n, 49, 2, generator=g)
    target[..., 2] = (torch.rand(n, 49, generator=g) > 0.3).float()
    inputs = target.clone()
    inputs[:, 30:36, 2] = 0.0  # a limb hidden from the input, kept in the target
    batch = Batch(keypoints=inputs, target2d=target, rotmat=rot, betas=torch.zeros(n, 10),
                  has_smpl=torch.tensor([True, False]), kp3d=torch.zeros(n, 49, 3),
                  has_kp3d=torch.zeros(n, dtype=torch.bool), center=torch.zeros(n, 2),
                  scale=torch.ones(n), rot=torch.zeros(n),
                  flip=torch.zeros(n, dtype=torch.bool), color=torch.ones(n, 3))
    return out, batch, proj


def _by_hand(batch, proj, hidden_2d: float, ratio: float | None,
             real: tuple[bool, bool] = (False, True)) -> float:
    """mean over 2 x 49 of weight x (squared distance | distance x ratio on the real
    person), in float64 numpy; ``hidden_2d`` applies to the real people only."""
    d2 = ((proj.double().numpy() - batch.target2d[..., :2].double().numpy()) ** 2).sum(-1)
    w = batch.target2d[..., 2].double().numpy().copy()
    hidden = (batch.keypoints[..., 2].numpy() <= 0) & (w > 0)
    hidden &= np.asarray(real)[:, None]  # SMPL-supervised people: weight 1 everywhere
    w[hidden] *= hidden_2d
    per = w * d2
    if ratio is not None and real[1]:
        per[1] = w[1] * np.sqrt(d2[1]) * ratio
    return float(per.mean())


def test_the_projection_is_the_one_the_loss_uses(fast):
    """Guard for the hand formula: with both slot groups on and no option, L2D is the
    plain weighted mean."""
    out, batch, proj = _case(fast)
    w = LossWeights(rotmat=0, betas=0, cam=0, openpose_2d=1.0)
    _, parts = regression_loss(out, fast, batch, w)
    assert parts["kp2d"] == pytest.approx(_by_hand(batch, proj, 1.0, None), rel=1e-5)


@pytest.mark.parametrize("hidden_2d", [0.0, 3.0])
def test_real_hidden_joints_weigh_hidden_2d_times_more(fast, hidden_2d):
    out, batch, proj = _case(fast)
    w = LossWeights(rotmat=0, betas=0, cam=0, openpose_2d=1.0, hidden_2d=hidden_2d)
    total, parts = regression_loss(out, fast, batch, w)
    want = _by_hand(batch, proj, hidden_2d, None)
    assert parts["kp2d"] == pytest.approx(want, rel=1e-5)
    assert float(total) == pytest.approx(w.overall * w.kp2d * want, rel=1e-5)
    assert want != pytest.approx(_by_hand(batch, proj, 1.0, None), rel=1e-3)


def test_distance_form_applies_to_the_real_person_only(fast):
    out, batch, proj = _case(fast)
    w = LossWeights(rotmat=0, betas=0, cam=0, openpose_2d=1.0, kp2d=5.0, kp2d_distance=2.0,
                    hidden_2d=2.0)
    total, parts = regression_loss(out, fast, batch, w)
    want = _by_hand(batch, proj, 2.0, 2.0 / 5.0)
    assert parts["kp2d"] == pytest.approx(want, rel=1e-4)
    assert float(total) == pytest.approx(w.overall * 5.0 * want, rel=1e-4)
    # no real person in the batch: the squared form everywhere, no hidden weight
    synth = Batch(**{**batch.__dict__, "has_smpl": torch.tensor([True, True])})
    _, parts = regression_loss(out, fast, synth, w)
    assert parts["kp2d"] == pytest.approx(_by_hand(batch, proj, 2.0, 0.4, (False, False)),
                                          rel=1e-5)


def test_hidden_distance_form_applies_to_the_real_persons_hidden_joints_only(fast):
    out, batch, proj = _case(fast)
    w = LossWeights(rotmat=0, betas=0, cam=0, openpose_2d=1.0, kp2d=5.0, hidden_2d=3.0,
                    hidden_2d_distance=20.0)
    total, parts = regression_loss(out, fast, batch, w)
    d2 = ((proj.double().numpy() - batch.target2d[..., :2].double().numpy()) ** 2).sum(-1)
    conf = batch.target2d[..., 2].double().numpy()
    hidden = (batch.keypoints[..., 2].numpy() <= 0) & (conf > 0)
    hidden[0] = False  # person 0 has SMPL targets
    assert hidden[1].sum() > 0
    # hidden joints: distance x 20 / 5 (hidden_2d's x3 is not applied); the rest squared
    per = np.where(hidden, conf * np.sqrt(d2) * 20.0 / 5.0, conf * d2)
    assert parts["kp2d"] == pytest.approx(float(per.mean()), rel=1e-4)
    assert float(total) == pytest.approx(w.overall * 5.0 * float(per.mean()), rel=1e-4)
    # without a real person nothing changes
    synth = Batch(**{**batch.__dict__, "has_smpl": torch.tensor([True, True])})
    _, parts = regression_loss(out, fast, synth, w)
    assert parts["kp2d"] == pytest.approx(_by_hand(batch, proj, 1.0, None, (False, False)),
                                          rel=1e-5)


def test_distance_form_has_finite_gradients_at_a_perfect_fit(fast):
    out, batch, proj = _case(fast)
    batch.target2d[..., :2] = proj.detach()
    cam = out.cam.clone().requires_grad_(True)
    out = RegressorOutput(rotmat=out.rotmat, betas=out.betas, cam=cam, pose6d=out.pose6d)
    total, _ = regression_loss(out, fast, batch, LossWeights(kp2d_distance=1.0))
    total.backward()
    assert bool(torch.isfinite(cam.grad).all())


def test_distance_form_needs_a_2d_weight():
    with pytest.raises(ValueError, match="kp2d_distance"):
        LossWeights(kp2d=0.0, kp2d_distance=1.0)
    with pytest.raises(ValueError, match="hidden_2d_distance"):
        LossWeights(kp2d=0.0, hidden_2d_distance=1.0)
    with pytest.raises(ValueError, match="hidden_2d"):
        LossWeights(hidden_2d=-1.0)


def test_kp3d_distance_counts_each_joints_3d_distance(fast):
    """``kp3d_distance``: L3D is the mean over the 3D-supervised samples x 49 of each
    joint's distance x kp3d_distance / kp3d (squared distance without it), written out."""
    out, batch, _ = _case(fast)
    g = torch.Generator().manual_seed(1)
    kp, joints = fast(out.rotmat, out.betas)
    target = kp - joints[:, :1] + 0.05 * torch.randn(2, 49, 3, generator=g)
    target[0, 5] = float("nan")  # a missing target joint counts 0
    batch = batch.__class__(**{**batch.__dict__, "kp3d": target,
                               "has_kp3d": torch.tensor([True, False])})
    diff = (kp - joints[:, :1] - target)[0].double().numpy()
    d = np.sqrt((diff ** 2).sum(-1))
    d[5] = 0.0
    w = LossWeights(kp3d=5.0, kp3d_distance=0.6)
    _, parts = regression_loss(out, fast, batch, w)
    assert parts["kp3d"] == pytest.approx(float((d * 0.6 / 5.0).sum() / 49), rel=1e-4)
    _, parts = regression_loss(out, fast, batch, LossWeights(kp3d=5.0))
    assert parts["kp3d"] == pytest.approx(float((d ** 2).sum() / 49), rel=1e-4)
    with pytest.raises(ValueError, match="kp3d_distance"):
        LossWeights(kp3d=0.0, kp3d_distance=1.0)
