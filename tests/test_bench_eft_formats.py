"""scripts/bench_eft_formats.py: the per-format restriction keeps exactly the format's
slots (inputs and targets alike, the box kept), and the error measures match their
closed forms on a known similarity transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_eft_formats")


def test_restrict_keeps_exactly_the_formats_slots(bench):
    from eft.body.joints import get_format
    from eft.data.exemplar import Exemplar

    kp = np.ones((49, 3), np.float32) * np.arange(1, 50, dtype=np.float32)[:, None]
    e = Exemplar(id="p", image_path=None, keypoints=kp, center=np.array([10.0, 20.0]),
                 scale=1.5, source="synthetic")
    for fmt in ("h36m17_spin", "coco17+openpose25"):
        (r,) = bench.restrict([e], fmt)
        keep = set()
        for name in fmt.split("+"):
            keep |= set(get_format(name).spin_indices)
        assert {int(i) for i in np.nonzero(r.keypoints[:, 2])[0]} == keep
        assert np.array_equal(r.keypoints[sorted(keep)], kp[sorted(keep)])
        assert np.array_equal(r.center, e.center) and r.scale == e.scale


def test_errors_are_zero_after_procrustes_for_a_similarity(bench):
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(3, 14, 3, generator=g) * 0.3
    c, s = math.cos(0.4), math.sin(0.4)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    pred = 1.2 * gt @ rot.T + torch.tensor([0.1, 0.0, 0.0])
    e = bench.errors(pred, gt)
    assert np.allclose(e["pa_mpjpe_mm"], 0.0, atol=1e-2)
    assert np.allclose(e["ankles_pa_mm"], 0.0, atol=1e-2)
    want = ((pred - gt).norm(dim=-1).mean(1) * 1000).numpy()
    assert np.allclose(e["mpjpe_mm"], want) and (want > 1.0).all()
    moved = gt.clone()
    moved[:, bench.ANKLES] += torch.tensor([0.0, 0.0, 0.05])  # both ankles 5 cm off
    e = bench.errors(moved, gt)
    assert (e["ankles_pa_mm"] > 20).all() and (e["ankles_pa_mm"] <= 50 + 1e-3).all()


def test_set_overrides_are_typed_and_reach_the_recipe(bench):
    from eft.fitting.config import eft_preset

    got = bench.parse_overrides(["lr=1e-3", "max_iters=30", "scope=all",
                                 "mirror_average=false"])
    assert got == {"lr": 1e-3, "max_iters": 30, "scope": "all", "mirror_average": False}
    assert isinstance(got["max_iters"], int)
    cfg = eft_preset("open-prior", **got)
    assert (cfg.lr, cfg.max_iters, cfg.scope, cfg.mirror_average) == (1e-3, 30, "all", False)
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench.parse_overrides(["lr"])
