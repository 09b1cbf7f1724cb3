"""``fit_exemplars(..., config="auto")``: a pilot fit picks ``open-prior`` or
``open-prior-exact`` from how exact the labels are (eft.fitting.auto)."""

from __future__ import annotations

import numpy as np
import pytest

from eft.body import BodyModel
from eft.fitting import fit_exemplars
from eft.fitting.auto import EXACT_LABELS_BELOW, pick_preset, pilot_indices
from eft.fitting.config import eft_preset
from eft.models import load_regressor
from eft.synthetic.exemplars import SyntheticConfig, generate
from eft.synthetic.pose_bank import load_pose_bank


@pytest.fixture(scope="module")
def setup(one_thread):
    return load_regressor("default"), BodyModel.load()


def people(n: int, exact: bool) -> list:
    cfg = SyntheticConfig()
    if exact:
        cfg = cfg.clean()
    return list(generate(load_pose_bank().val().poses, n, 11, cfg).exemplars())


def same(a: list, b: list, atol: float = 0.0) -> bool:
    """Equal fits (to ``atol``: a batch in another order sums in another order)."""
    return all(np.allclose(x.rotmat, y.rotmat, rtol=0, atol=atol)
               and np.allclose(x.betas, y.betas, rtol=0, atol=atol)
               for x, y in zip(a, b, strict=True))


def test_pilot_indices_spread_over_sorted_ids():
    ids = [f"p{i:03d}" for i in range(50)][::-1]  # given in reverse order
    idx = pilot_indices(ids, 6)
    assert [ids[i] for i in idx] == [f"p{k:03d}" for k in (0, 10, 20, 29, 39, 49)]
    assert len(pilot_indices(ids, 100)) == 50
    assert [ids[i] for i in pilot_indices(ids, 100)] == sorted(ids)


def test_pick_preset_threshold():
    below, above = EXACT_LABELS_BELOW * 0.9, EXACT_LABELS_BELOW * 1.1
    assert pick_preset([below, below, above]) == ("open-prior-exact", below)
    assert pick_preset([below, above, above, np.nan]) == ("open-prior", above)
    assert pick_preset([EXACT_LABELS_BELOW])[0] == "open-prior"
    preset, median = pick_preset([np.nan, np.inf])
    assert preset == "open-prior" and np.isnan(median)
    assert pick_preset([])[0] == "open-prior"


@pytest.mark.parametrize("exact, want", [(True, "open-prior-exact"), (False, "open-prior")])
def test_auto_fits_with_the_recipe_the_labels_call_for(setup, exact, want, caplog):
    model, body = setup
    ppl = people(20, exact)
    with caplog.at_level("INFO", logger="eft.fitting"):
        auto = fit_exemplars(ppl, model, body, "auto", progress=False)
    assert f": {want}" in caplog.text
    named = fit_exemplars(ppl, model, body, want, progress=False)
    assert same(auto, named)
    assert same(named, fit_exemplars(ppl, model, body, eft_preset(want), progress=False))
    # the pick does not depend on the people's order
    shuffled = [ppl[i] for i in np.random.default_rng(0).permutation(len(ppl))]
    again = fit_exemplars(shuffled, model, body, "auto", progress=False)
    by_id = {f.exemplar_id: f for f in again}
    assert same(named, [by_id[f.exemplar_id] for f in named], atol=1e-4)


def test_unknown_recipe_name(setup):
    model, body = setup
    with pytest.raises(ValueError, match="unknown EFT preset"):
        fit_exemplars(people(2, True), model, body, "open-prior-exactly")

