"""scripts/bench_downstream_real.py: the mixed arms' share of fits is a checked option
and is reported with the results."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_downstream_real")


def _result(**extra) -> dict:
    arm = {"train_samples": 10, "synthetic_val": {"pa_mpjpe_mm": 70.0, "mpjpe_mm": 100.0},
           "held_out": {s: {"mean": 0.14, "mean_se": 0.005} for s in ("coco", "mpii")}}
    return {"command": "python scripts/bench_downstream_real.py", "date": "d",
            "machine": "m", "seconds": 60.0, "smplify_cached": True, "people": 10,
            "prior": "default", "steps": 5, "batch_size": 4,
            "results": {"synthetic+eft": arm}, **extra}


@pytest.mark.parametrize("share", ["0", "1", "1.5", "-0.2"])
def test_mix_share_outside_zero_one_is_one_clear_error(bench, monkeypatch, share):
    monkeypatch.setattr(sys, "argv", ["bench_downstream_real.py", "--eft-fits", "x.h5",
                                      "--mix-share", share])
    with pytest.raises(SystemExit, match="--mix-share must be between 0 and 1"):
        bench.main()


def test_markdown_states_the_share(bench):
    assert "half of every batch from each" in bench.markdown(_result())
    assert "half of every batch from each" in bench.markdown(_result(mix_share=0.5))
    text = bench.markdown(_result(mix_share=0.2))
    assert "20% of every batch from the fits, the rest synthetic" in text
    assert "| synthetic+eft | 10 | 70.0 | 100.0 | 0.1400 ± 0.0050 |" in text
