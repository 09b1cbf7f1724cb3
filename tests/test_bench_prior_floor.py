"""scripts/bench_prior_floor.py: its input conditions switch off exactly the annotation
faults they name, and its pose/shape swaps score zero where both halves are true."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_prior_floor")


def test_conditions_switch_off_what_they_name(bench):
    from eft.synthetic.exemplars import SyntheticConfig

    base = SyntheticConfig()
    c = bench.CONDITIONS
    assert c["val (as kept)"] == base
    assert c["no noise"] == dataclasses.replace(base, noise_scale=0.0)
    complete = c["nothing missing"]
    assert complete.noise_scale == base.noise_scale
    assert (complete.missing_rate, complete.limb_drop_prob, complete.truncation_prob) == (
        0.0, 0.0, 0.0)
    assert c["exact, complete"] == base.clean()


def test_rows_on_a_tiny_set(bench, body, monkeypatch):
    """Every row is there and is a valid error (Procrustes never worse than none), and
    the ground truth the rows are scored against scores zero against itself."""
    from eft.models import KeypointRegressor
    from eft.synthetic.pose_bank import load_pose_bank

    torch.manual_seed(0)
    model = KeypointRegressor()
    poses = load_pose_bank().val().poses[:64]
    captured = {}
    real_eval = bench.evaluate_bodies

    def spy(body_, r, b, gr, gb, batch=512):
        captured.setdefault("gt", (gr, gb))
        return real_eval(body_, r, b, gr, gb, batch)

    monkeypatch.setattr(bench, "evaluate_bodies", spy)
    rows = bench.condition_rows(model, body, poses, 8, 3, bench.CONDITIONS["exact, complete"],
                                "open-prior")
    assert set(rows) == {"prior alone", "EFT (open-prior)", "SMPLify (from the prior)",
                         "prior pose, true shape",
                         "true pose, prior shape", "true pose, mean shape"}
    gr, gb = captured["gt"]
    assert real_eval(body, gr, gb, gr, gb)["pa_mpjpe_mm"] < 1e-3
    for row in rows.values():
        assert row["pa_mpjpe_mm"] >= 0 and row["mpjpe_mm"] >= row["pa_mpjpe_mm"] - 1e-3
