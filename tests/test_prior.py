"""The shipped keypoint prior and its training loop."""

from __future__ import annotations

import pytest
import torch

from eft.data.pose_bank import load_pose_bank
from eft.data.synthetic import generate
from eft.models import KeypointRegressor, load_regressor
from eft.models.registry import default_prior_path
from eft.train.prior import (
    PRIOR_VAL_SEED,
    PriorTrainConfig,
    TensorSet,
    evaluate_mean_pose,
    evaluate_prior,
    make_prior_set,
    train_prior,
)


def test_training_reduces_loss_and_error(body):
    g = torch.Generator().manual_seed(0)
    poses = (torch.randn(64, 72, generator=g) * 0.3).numpy()
    data = TensorSet.from_synthetic(generate(poses, 256, 0, body=body))
    torch.manual_seed(0)
    model = KeypointRegressor(width=256, hidden=256)
    cfg = PriorTrainConfig(steps=300, eval_every=100, batch_size=64, lr=1e-3)
    log = train_prior(model, body, data, cfg, progress=False,
                      on_eval=lambda step, m: evaluate_prior(m, body, data))
    assert [e["step"] for e in log] == [100, 200, 300]
    assert log[-1]["loss"] < 0.6 * log[0]["loss"]
    # it fits (overfits) the small training set: the 3D error keeps falling
    assert log[-1]["pa_mpjpe_mm"] < 0.85 * log[0]["pa_mpjpe_mm"]
    assert log[-1]["mpjpe_mm"] < 0.85 * log[0]["mpjpe_mm"]


@pytest.mark.skipif(not default_prior_path().is_file(), reason="no shipped prior yet")
def test_shipped_prior_beats_mean_pose_on_unseen_clips(body):
    model = load_regressor("default")
    val = TensorSet.from_synthetic(
        make_prior_set(load_pose_bank().val().poses, 300, PRIOR_VAL_SEED, body))
    prior, floor = evaluate_prior(model, body, val), evaluate_mean_pose(model, body, val)
    # Stated margins: at most half the mean pose's MPJPE and 70 % of its PA-MPJPE.
    assert prior["mpjpe_mm"] < 0.5 * floor["mpjpe_mm"], (prior, floor)
    assert prior["pa_mpjpe_mm"] < 0.7 * floor["pa_mpjpe_mm"], (prior, floor)
