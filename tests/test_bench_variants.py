"""scripts/bench_variants.py: its body angles match closed forms on hand-built skeletons
(standing straight 180 degrees, seated at a right angle, a torso tipped toward the
camera), and its scores are zero for the truth itself."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_variants")


def _skeleton(torso, thigh):
    """(1, 14, 3) LSP joints: hips at +-0.1 on x, neck at ``torso``, both knees at
    ``thigh`` from their hip (camera frame: y down, z away from the camera)."""
    j = torch.zeros(1, 14, 3)
    idx = {n: i for i, n in enumerate(bench_names())}
    j[0, idx["right_hip"]] = torch.tensor([-0.1, 0.0, 0.0])
    j[0, idx["left_hip"]] = torch.tensor([0.1, 0.0, 0.0])
    j[0, idx["neck"]] = torch.tensor(torso)
    j[0, idx["right_knee"]] = torch.tensor([-0.1, 0.0, 0.0]) + torch.tensor(thigh)
    j[0, idx["left_knee"]] = torch.tensor([0.1, 0.0, 0.0]) + torch.tensor(thigh)
    return j


def bench_names():
    from eft.body.joints import LSP14_NAMES

    return LSP14_NAMES


def test_angles_match_closed_forms(bench):
    hip, pitch = bench.body_angles(_skeleton([0.0, -0.5, 0.0], [0.0, 0.4, 0.0]))
    assert float(hip) == pytest.approx(180.0, abs=1e-3)  # standing straight
    assert float(pitch) == pytest.approx(0.0, abs=1e-3)  # torso along image-up
    hip, _ = bench.body_angles(_skeleton([0.0, -0.5, 0.0], [0.0, 0.0, -0.4]))
    assert float(hip) == pytest.approx(90.0, abs=1e-3)  # seated, thighs to the camera
    t = math.radians(30.0)  # torso tipped 30 degrees toward the camera
    _, pitch = bench.body_angles(_skeleton([0.0, -0.5 * math.cos(t), -0.5 * math.sin(t)],
                                           [0.0, 0.4, 0.0]))
    assert float(pitch) == pytest.approx(30.0, abs=1e-3)


def test_the_truth_scores_zero(bench):
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(5, 14, 3, generator=g) * 0.3
    s = bench.scores(gt.clone(), gt)
    assert s["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-2)
    assert s["hip_angle_err_deg"] == pytest.approx(0.0, abs=1e-3)
    assert s["torso_pitch_err_deg"] == pytest.approx(0.0, abs=1e-3)
    leaned = gt.clone()
    leaned[:, bench._J["neck"], 1] -= 0.2  # the neck moved up: a different hip angle
    assert abs(bench.scores(leaned, gt)["hip_angle_err_deg"]) > 1.0


def test_markdown_names_the_recipe(bench):
    cell = {"pa_mpjpe_mm": 50.0, "hip_angle_err_deg": 1.0, "true_hip_angle_deg": 90.0,
            "torso_pitch_err_deg": 0.5}
    r = {"command": "x", "date": "d", "machine": "m", "seconds": 60.0, "n": 2,
         "preset": "open-prior-exact", "overrides": {"smplify_blend": 0.4},
         "results": {"default": {"exact": {"seated": {m: cell for m in bench.METHODS}}}}}
    text = bench.markdown(r)
    assert "(`open-prior-exact`, smplify_blend=0.4)" in text
    assert "| default | exact | seated | 90 | 50.0 / +1.0 |" in text
    del r["preset"], r["overrides"]  # results written before the option read open-prior
    assert "(`open-prior`)" in bench.markdown(r)
