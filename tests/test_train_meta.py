"""Meta-EFT (eft.train.meta): B adapted networks in one pass equal the engine's own EFT
fits, the term's gradient is the training loss's at the adapted networks (first order),
and a run with it on resumes exactly."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from eft.fitting import FitTargets, fit
from eft.fitting.engine import _keypoint_lbs
from eft.models import KeypointRegressor
from eft.synthetic.exemplars import generate
from eft.train.augment import AugmentConfig
from eft.train.data import TrainSet
from eft.train.losses import LossWeights, regression_loss
from eft.train.meta import META_EFT_RECIPE, adapted_offsets, forward_with_offsets

from .helpers import check_loss_term_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(body):
    g = torch.Generator().manual_seed(0)
    poses = (torch.randn(24, 72, generator=g) * 0.3).numpy()
    synth = TrainSet.from_synthetic(generate(poses, 24, 0, body=body), target="annotated",
                                    with_kp3d=True)
    torch.manual_seed(1)
    model = KeypointRegressor(width=32, hidden=32)
    return synth, model, _keypoint_lbs(body, torch.device("cpu"))


def _keypoints(body, n=6):
    g = torch.Generator().manual_seed(3)
    poses = (torch.randn(n, 72, generator=g) * 0.3).numpy()
    ds = generate(poses, n, 1, body=body)
    from eft.fitting import exemplar_batch

    return exemplar_batch(list(ds.exemplars())).keypoints.float()


def test_offsets_reproduce_the_engines_adapted_fits(body, setup):
    """Shared weights + each sample's offsets = that sample's EFT fit, to float rounding;
    without offsets, the network's own guess."""
    _, model, fast = setup
    model.eval()
    kp = _keypoints(body)
    fits = fit(model, fast, FitTargets(keypoints=kp), META_EFT_RECIPE, pose_prior=None,
               progress=False)
    offsets = adapted_offsets(model, fast, kp)
    assert set(offsets) and all(v.shape[0] == kp.shape[0] for v in offsets.values())
    assert max(float(v.abs().max()) for v in offsets.values()) > 1e-4  # EFT moved them
    with torch.no_grad():
        out = forward_with_offsets(model, kp, offsets)
        guess = model(kp)
    rot = torch.as_tensor(np.stack([f.rotmat for f in fits]))
    cam = torch.as_tensor(np.stack([f.cam_weak for f in fits]))
    torch.testing.assert_close(out.rotmat, rot, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.cam, cam, rtol=0, atol=1e-5)
    assert float((guess.rotmat - rot).abs().max()) > 1e-3
    zero = {k: torch.zeros_like(v) for k, v in offsets.items()}
    with torch.no_grad():
        torch.testing.assert_close(forward_with_offsets(model, kp, zero).rotmat, guess.rotmat)
    with pytest.raises(ValueError, match="scope"):
        adapted_offsets(model, fast, kp, META_EFT_RECIPE.replace(scope="all"))


def test_first_order_gradient_is_the_adapted_networks(body, setup):
    """The gradient through the hooks equals the gradient of a copy of the network whose
    biases and LayerNorms are set to one sample's adapted values (sample by sample)."""
    synth, model, fast = setup
    from eft.train.augment import make_batch

    batch = make_batch(synth, torch.arange(3), AugmentConfig(), torch.Generator()
                       .manual_seed(0))
    model.eval()
    offsets = adapted_offsets(model, fast, batch.keypoints)
    w = LossWeights()
    model.zero_grad()
    loss, _ = regression_loss(forward_with_offsets(model, batch.keypoints, offsets), fast,
                              batch, w)
    loss.backward()
    hooked = {n: p.grad.clone() for n, p in model.named_parameters()}
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(3):
        one = copy.deepcopy(model)
        with torch.no_grad():
            for n, p in one.named_parameters():
                if n in offsets:
                    p.add_(offsets[n][i])
        one.zero_grad()
        sub = dataclasses.replace(batch, **{k: v[i:i + 1] for k, v in batch.__dict__.items()
                                            if isinstance(v, torch.Tensor)})
        # the batch loss is a mean over samples: each contributes its share
        part, _ = regression_loss(one(sub.keypoints), fast, sub, w)
        (part / 3).backward()
        for n, p in one.named_parameters():
            total[n] += p.grad
    for n in hooked:
        if "weight" in n and n.replace("weight", "bias") not in offsets:
            continue
        torch.testing.assert_close(hooked[n], total[n], rtol=2e-3, atol=2e-5, msg=n)
    model.train()


def test_a_run_with_meta_eft_resumes_exactly_and_logs_it(body, tmp_path):
    check_loss_term_run(body, tmp_path / "r", LossWeights(meta_eft=1.0, meta_eft_samples=4),
                        "meta", steps=4)
    with pytest.raises(ValueError, match="meta_eft_samples"):
        LossWeights(meta_eft_samples=0)
