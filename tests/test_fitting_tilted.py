"""``EFTConfig.tilted_above_deg`` (on in ``open-prior``): people whose fit leans far from
upright are fitted again as ``open-prior-exact`` fits without its camera."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eft.body import BodyModel
from eft.errors import EftError
from eft.fitting import exemplar_batch, fit_method
from eft.fitting.config import TILTED_REFIT, eft_preset
from eft.fitting.engine import fit, tilt_deg
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import load_regressor
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank


@pytest.fixture(scope="module")
def setup(one_thread):
    return load_regressor("default"), BodyModel.load()


def rotz(deg: float) -> np.ndarray:
    return axis_angle_to_rotmat(torch.tensor([[0.0, 0.0, np.radians(deg)]],
                                             dtype=torch.float64))[0].numpy()


def test_tilt_closed_form():
    upright = np.diag([1.0, -1.0, -1.0])  # SMPL's +y drawn toward the image's up
    r = np.stack([upright, rotz(90) @ upright, rotz(-30) @ upright, rotz(180) @ upright,
                  upright @ axis_angle_to_rotmat(
                      torch.tensor([[0.0, np.pi / 2, 0.0]], dtype=torch.float64))[0].numpy(),
                  np.full((3, 3), np.nan)])
    got = tilt_deg(r)
    np.testing.assert_allclose(got[:5], [0.0, 90.0, 30.0, 180.0, 0.0], atol=1e-9)
    assert np.isnan(got[5])  # turning about the body's own up axis keeps it upright


def people(n: int, lying: float, noise: float = 0.5, seed: int = 3):
    from eft.train.prior import V2_SYNTHETIC

    cfg = dataclasses.replace(V2_SYNTHETIC.clean(), noise_scale=noise, lying_fraction=lying,
                              bending_fraction=0.0)
    return list(generate(load_pose_bank().val().poses, n, seed, cfg).exemplars())


def test_tilted_people_are_refitted_with_the_exact_recipe_and_the_rest_kept(setup):
    model, body = setup
    ppl = people(6, 0.5) + people(6, 0.0, seed=4)
    targets = exemplar_batch(ppl)
    cfg = eft_preset("open-prior")
    assert cfg.tilted_above_deg == 30.0
    got = fit(model, body, targets, cfg, progress=False)
    base = fit(model, body, targets, cfg.replace(tilted_above_deg=0.0), progress=False)
    tilt = tilt_deg(np.stack([f.rotmat[0] for f in base]))
    rows = np.flatnonzero(tilt > 30.0)
    assert 0 < len(rows) < len(ppl)  # the lying people, not the upright ones
    again = fit(model, body, targets.select(rows.tolist()), cfg.replace(**TILTED_REFIT),
                progress=False)
    by_row = dict(zip(rows.tolist(), again, strict=True))
    for i, (g, b) in enumerate(zip(got, base, strict=True)):
        want = by_row.get(i, b)
        assert g.exemplar_id == want.exemplar_id == ppl[i].id
        np.testing.assert_allclose(g.rotmat, want.rotmat, atol=1e-6)
        np.testing.assert_allclose(g.betas, want.betas, atol=1e-6)
        assert g.quality.accepted == want.quality.accepted
    # the refit is the exact recipe without its camera, with lighter steps and SMPLify
    # started from EFT's fit, here and through fit_method
    assert cfg.replace(**TILTED_REFIT) == eft_preset("open-prior-exact", perspective_steps=0,
                                                     lr=5e-4, max_iters=10,
                                                     smplify_init="eft")
    via = fit_method("eft", model, body, targets, cfg)
    np.testing.assert_allclose(np.stack([f.rotmat for f in via]),
                               np.stack([f.rotmat for f in got]), atol=1e-6)


def test_tilted_refit_refuses_kept_parameters(setup):
    model, body = setup
    with pytest.raises(EftError, match="tilted_above_deg"):
        fit(model, body, exemplar_batch(people(2, 1.0)), eft_preset("open-prior"),
            progress=False, keep_params=True)
    with pytest.raises(ValueError, match="tilted_above_deg"):
        eft_preset("open-prior", tilted_above_deg=-1.0)


def test_the_regressor_method_never_refits(setup):
    """``fit_method("regressor")`` is one forward pass whatever the recipe: lying
    people keep the regressor's prediction."""
    model, body = setup
    targets = exemplar_batch(people(6, 1.0))
    plain = fit_method("regressor", model, body, targets,
                       eft_preset("open-prior", tilted_above_deg=0.0))
    assert (tilt_deg(np.stack([f.rotmat[0] for f in plain])) > 60).any()
    got = fit_method("regressor", model, body, targets, eft_preset("open-prior"))
    np.testing.assert_array_equal(np.stack([f.rotmat for f in got]),
                                  np.stack([f.rotmat for f in plain]))


def test_the_first_pilot_fits_without_the_tilted_refit():
    """The first pilot's medians were measured without it (``pilot_config``)."""
    from eft.fitting.auto import pilot_config

    cfg = eft_preset("open-prior", max_iters=5)
    assert pilot_config(cfg) == cfg.replace(tilted_above_deg=0.0)
