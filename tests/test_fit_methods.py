"""eft.fitting.fit_method: each benchmark method by name equals its own entry point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eft.fitting import (
    EFTConfig,
    SmplifyConfig,
    exemplar_batch,
    fit,
    fit_method,
    fits_to_tensors,
    smplify,
)
from eft.fitting.baselines import mean_pose_fits
from eft.models import load_regressor
from tests.test_heldout import exemplar, person


@pytest.fixture(scope="module")
def targets():
    moved = [{}, {"Right Wrist": (60, 140)}, {"Left Knee": (170, 300)}]
    return exemplar_batch([exemplar(person(**m), i) for i, m in enumerate(moved)])


@pytest.fixture(scope="module")
def prior():
    return load_regressor("keypoint-prior-v1")


def _same(a, b):
    ra, ba = fits_to_tensors(a)
    rb, bb = fits_to_tensors(b)
    assert [f.exemplar_id for f in a] == [f.exemplar_id for f in b]
    torch.testing.assert_close(ra, rb, rtol=0, atol=1e-6)
    torch.testing.assert_close(ba, bb, rtol=0, atol=1e-6)


def test_regressor_is_the_prediction_itself(prior, body, targets, one_thread):
    fits = fit_method("regressor", prior, body, targets, pose_prior=None)
    with torch.no_grad():
        out = prior(targets.keypoints)
    rot, betas = fits_to_tensors(fits)
    assert rot.shape == (3, 24, 3, 3) and betas.shape == (3, 10)
    torch.testing.assert_close(rot, out.rotmat.float(), rtol=0, atol=1e-5)
    assert all(f.quality.iterations <= 1 for f in fits)


def test_each_method_equals_its_entry_point(prior, body, targets, one_thread):
    cfg = EFTConfig(max_iters=5)
    _same(fit_method("eft", prior, body, targets, cfg, pose_prior=None),
          fit(prior, body, targets, cfg, progress=False, pose_prior=None))
    _same(fit_method("mean", prior, body, targets, cfg),
          mean_pose_fits(prior, body, targets, cfg))
    scfg = SmplifyConfig(camera_iters=5, body_iters=5)
    with torch.no_grad():
        init = prior(targets.keypoints)
    _same(fit_method("smplify", prior, body, targets, smplify_config=scfg),
          smplify(body, targets.keypoints, init=init, config=scfg, progress=False,
                  exemplar_ids=targets.ids, centers=targets.centers, scales=targets.scales))
    eft_fits = fit_method("eft", prior, body, targets, cfg, pose_prior=None)
    assert not np.allclose(eft_fits[1].rotmat, fit_method(
        "regressor", prior, body, targets, pose_prior=None)[1].rotmat)


def test_unknown_method_is_one_clear_error(prior, body, targets):
    with pytest.raises(ValueError, match="method must be one of"):
        fit_method("spin", prior, body, targets)
