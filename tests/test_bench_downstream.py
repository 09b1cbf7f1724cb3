"""scripts/bench_downstream.py: the held-out design's fresh prior is a function of its
seed alone (its initialisation must not depend on the global RNG's state, which torch
seeds differently in every process)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_downstream")


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()
                      if p.is_floating_point()])


def test_fresh_prior_depends_on_its_seed_not_on_the_global_rng(bench, body, one_thread):
    from eft.synthetic.pose_bank import load_pose_bank
    from eft.train.evaluate import synthetic_eval_set

    bank = load_pose_bank()
    poses = bank.train().poses[:200]
    val = synthetic_eval_set(8, 0, body, poses=bank.val().poses[:50])

    def train(global_seed: int, seed: int):
        torch.manual_seed(global_seed)  # whatever state the process happens to be in
        key = {"split": "test", "split_seed": 0, "n": 32, "steps": 2, "seed": seed}
        model, info = bench.fresh_prior(poses, 32, 2, seed, body, val, None, key)
        assert info["steps"] == 2 and len(info["curve"]) == 2
        return _weights(model), info["curve"]

    w_a, curve_a = train(1, seed=0)
    w_b, curve_b = train(2, seed=0)
    assert torch.equal(w_a, w_b)
    assert curve_a == curve_b
    w_c, _ = train(1, seed=1)
    assert not torch.allclose(w_a, w_c)
