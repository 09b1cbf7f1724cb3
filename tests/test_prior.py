"""The shipped keypoint prior and its training loop (a tiny budget here; the full
pretraining run is ``scripts/pretrain_prior.py``)."""

from __future__ import annotations

import copy

import pytest
import torch

from eft.models import KeypointRegressor, load_regressor
from eft.models.registry import default_prior_path
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.prior import (
    PRIOR_VAL_SEED,
    TensorSet,
    evaluate_mean_pose,
    evaluate_prior,
    make_prior_set,
    prior_config,
    train_prior,
)
from eft.train.trainer import latest_checkpoint
from tests.helpers import require_file

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_set(body):
    """32 synthetic people from 16 random poses (fixed seeds)."""
    g = torch.Generator().manual_seed(0)
    poses = (torch.randn(16, 72, generator=g) * 0.3).numpy()
    return TensorSet.from_synthetic(generate(poses, 32, 0, body=body))


def test_training_reduces_loss_and_error(body, tiny_set):
    """100 steps on the 32 people it is evaluated on: the running loss falls below 0.6x
    of its value at step 50 and both 3D errors below 0.85x (measured: 0.45x, 0.75x
    PA-MPJPE, 0.69x MPJPE, in 1.6 s); it ends below the untrained model and the mean
    pose."""
    torch.manual_seed(0)
    model = KeypointRegressor(width=128, hidden=128)
    untrained = evaluate_prior(model, body, tiny_set)
    cfg = prior_config(steps=100, eval_every=33, batch_size=32, lr=1e-3)
    log = train_prior(model, body, tiny_set, cfg, progress=False,
                      on_eval=lambda step, m: evaluate_prior(m, body, tiny_set))
    assert [e["step"] for e in log] == [33, 66, 99, 100]
    first, last = log[0], log[-1]
    assert last["loss"] < 0.6 * first["loss"], (first, last)
    assert last["pa_mpjpe_mm"] < 0.85 * first["pa_mpjpe_mm"], (first, last)
    assert last["mpjpe_mm"] < 0.85 * first["mpjpe_mm"], (first, last)
    floor = evaluate_mean_pose(model, body, tiny_set)
    for key in ("mpjpe_mm", "pa_mpjpe_mm"):
        assert last[key] < untrained[key] and last[key] < floor[key], (key, last, floor)


class _Interrupted(Exception):
    pass


def test_interrupted_training_resumes_to_the_same_weights(body, tiny_set, tmp_path):
    """20 steps in one go == a run stopped after step 10's checkpoint, then the same
    call again on a fresh model with the same ``out_dir`` (it picks up the checkpoint)."""
    torch.manual_seed(1)
    init = KeypointRegressor(width=64, hidden=64)  # dropout on: the torch RNG matters
    cfg = prior_config(steps=20, eval_every=10, batch_size=16, lr=1e-3, seed=4)
    score = lambda step, m: {"step_seen": float(step)}  # noqa: E731
    full = copy.deepcopy(init)
    log_full = train_prior(full, body, tiny_set, cfg, progress=False, on_eval=score)

    def stop_at_20(step, m):
        if step == 20:
            raise _Interrupted
        return score(step, m)

    out = tmp_path / "run"
    with pytest.raises(_Interrupted):
        train_prior(copy.deepcopy(init), body, tiny_set, cfg, progress=False,
                    on_eval=stop_at_20, out_dir=str(out))
    assert latest_checkpoint(out / "checkpoints").name == "step_0000010.pt"
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    torch.rand(100)
    resumed = KeypointRegressor(width=64, hidden=64)  # other weights before loading
    log_resumed = train_prior(resumed, body, tiny_set, cfg, progress=False, on_eval=score,
                              out_dir=str(out))
    assert [e["step"] for e in log_resumed] == [10, 20]  # the history comes back too
    assert log_resumed[-1]["loss"] == log_full[-1]["loss"]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k


def test_shipped_prior_beats_mean_pose_on_unseen_clips(body):
    require_file(default_prior_path(), "the shipped prior")
    model = load_regressor("default")
    val = TensorSet.from_synthetic(
        make_prior_set(load_pose_bank().val().poses, 300, PRIOR_VAL_SEED, body))
    prior, floor = evaluate_prior(model, body, val), evaluate_mean_pose(model, body, val)
    # Stated margins: at most half the mean pose's MPJPE and 70 % of its PA-MPJPE.
    assert prior["mpjpe_mm"] < 0.5 * floor["mpjpe_mm"], (prior, floor)
    assert prior["pa_mpjpe_mm"] < 0.7 * floor["pa_mpjpe_mm"], (prior, floor)
