"""``fit_exemplars(..., config="auto")``: a pilot fit picks ``open-prior`` or
``open-prior-exact`` from how exact the labels are (eft.fitting.auto)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eft.body import BodyModel
from eft.fitting import fit_exemplars
from eft.fitting.auto import EXACT_LABELS_BELOW, pick_preset, pilot_indices
from eft.fitting.config import eft_preset
from eft.models import load_regressor
from eft.synthetic.exemplars import generate
from eft.synthetic.pose_bank import load_pose_bank


@pytest.fixture(scope="module")
def setup(one_thread):
    return load_regressor("default"), BodyModel.load()


def people(n: int, exact: bool) -> list:
    """Synthetic people with every slot annotated (the priors' val recipe), exact or
    with human-like annotation noise, missing joints and truncation."""
    from eft.train.prior import V2_SYNTHETIC

    cfg = V2_SYNTHETIC.clean() if exact else V2_SYNTHETIC
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


def test_pick_preset_thresholds():
    from eft.fitting.auto import EXACT_LIMBS_BELOW

    nan = float("nan")
    lo, hi = EXACT_LABELS_BELOW * 0.9, EXACT_LABELS_BELOW * 1.1
    llo, lhi = EXACT_LIMBS_BELOW * 0.9, EXACT_LIMBS_BELOW * 1.1
    assert pick_preset(lo, lhi) == pick_preset(hi, llo) == "open-prior-exact"
    assert pick_preset(hi, lhi) == pick_preset(EXACT_LABELS_BELOW, EXACT_LIMBS_BELOW) \
        == "open-prior"
    assert pick_preset(nan, nan) == pick_preset(hi) == "open-prior"
    assert pick_preset(nan, llo) == "open-prior-exact"
    # the second pilot's camera measure overrules an annotated pick below its threshold
    from eft.fitting.auto import EXACT_CAMERA_BELOW, pick_with_camera

    assert pick_with_camera("open-prior", EXACT_CAMERA_BELOW * 0.9) == "open-prior-exact"
    assert pick_with_camera("open-prior", EXACT_CAMERA_BELOW) == "open-prior"
    assert pick_with_camera("open-prior", nan) == "open-prior"
    assert pick_with_camera("open-prior-exact", EXACT_CAMERA_BELOW * 2) == "open-prior-exact"
    # motion-capture labels read exact up to their own, looser threshold
    from eft.fitting.auto import CAPTURE_CAMERA_BELOW

    between = (EXACT_CAMERA_BELOW + CAPTURE_CAMERA_BELOW) / 2
    assert pick_with_camera("open-prior", between) == "open-prior"
    assert pick_with_camera("open-prior", between, capture=True) == "open-prior-exact"
    assert pick_with_camera("open-prior", CAPTURE_CAMERA_BELOW, capture=True) == "open-prior"
    assert pick_with_camera("open-prior", nan, capture=True) == "open-prior"


def test_capture_labels_need_a_spine_and_jaw_and_nothing_missing():
    """H36M-17 labels of every joint for every person read as motion capture; one
    person missing a joint, or labels without the spine and jaw slots, do not."""
    import dataclasses as dc

    from eft.data.exemplar import Exemplar
    from eft.fitting.auto import capture_labels

    def person(fmt, i, drop=()):
        from eft.body.joints import get_format, to_spin49

        k = get_format(fmt).num_joints
        kp = np.concatenate([np.random.default_rng(i).uniform(0, 500, (k, 2)),
                             np.ones((k, 1))], 1)
        kp[list(drop), 2] = 0.0
        return Exemplar(id=str(i), image_path=None, center=np.array([250.0, 250.0]),
                        scale=2.5, keypoints=to_spin49(kp, fmt), source=fmt)

    studio = [person("h36m17_std", i) for i in range(10)]
    assert capture_labels(studio)
    assert not capture_labels([*studio[:9], person("h36m17_std", 9, drop=(3,))])
    assert not capture_labels([person("coco17", i) for i in range(10)])
    assert not capture_labels([person("mpii16", i) for i in range(10)])
    assert not capture_labels([])
    # the confidence's value does not matter, only that every slot has one
    half = [dc.replace(e, keypoints=e.keypoints * np.array([1.0, 1.0, 0.5])) for e in studio]
    assert capture_labels(half)
    # complete labels: every person labels every slot anyone labels, in any format
    from eft.fitting.auto import complete_labels

    assert complete_labels(studio) and complete_labels([person("coco17", i) for i in range(5)])
    assert complete_labels([person("coco17", i, drop=(1, 2)) for i in range(5)])
    assert not complete_labels([person("coco17", 0), person("coco17", 1, drop=(1,))])
    assert not complete_labels([])
    from eft.fitting.auto import complete_share

    some = [person("coco17", i, drop=(5,) if i % 4 == 0 else ()) for i in range(8)]
    assert complete_share(some) == 0.75 and complete_share([]) == 0.0


def test_pilot_statistic_is_the_median_or_for_small_pilots_a_trimmed_geometric_mean():
    from eft.fitting.auto import SMALL_PILOT, pilot_statistic

    rng = np.random.default_rng(0)
    big = rng.lognormal(-4.0, 0.5, SMALL_PILOT)
    assert pilot_statistic(big) == pytest.approx(float(np.median(big)))
    # ten people e^0 .. e^9: the middle eight's logs average 4.5; NaN is left out and
    # the largest value does not count
    small = np.exp(np.arange(10.0))
    assert pilot_statistic([*small, np.nan]) == pytest.approx(np.exp(4.5))
    assert pilot_statistic([*small[:-1], 1e30]) == pytest.approx(np.exp(4.5))
    # under ten people nothing is trimmed: the geometric mean
    assert pilot_statistic([1.0, 4.0]) == pytest.approx(2.0)
    assert np.isnan(pilot_statistic([np.nan]))


def test_limb_reproj_closed_form():
    """Mean distance over the labelled skeleton-free slots, over 200 * scale."""
    from eft.fitting.auto import SKELETON_FREE_SLOTS, limb_reproj

    rng = np.random.default_rng(3)
    labels = np.zeros((3, 49, 3))
    labels[..., :2] = rng.uniform(0, 500, (3, 49, 2))
    pred = labels[..., :2].copy()
    a, b = SKELETON_FREE_SLOTS[0], SKELETON_FREE_SLOTS[5]
    labels[0, [a, b], 2] = 1.0
    pred[0, a] += [3.0, 4.0]                 # 5 px off
    pred[0, b] += [0.0, 1.0]                 # 1 px off
    pred[0, 27] += 100.0                     # a hip: not counted, nor labelled
    labels[1, 27, 2] = 1.0                   # only a hip labelled: no limb joint
    labels[2, SKELETON_FREE_SLOTS, 2] = 1.0  # exact
    out = limb_reproj(pred, labels, np.array([0.5, 1.0, 2.0]))
    assert out[0] == pytest.approx(3.0 / 100.0) and np.isnan(out[1]) and out[2] == 0.0


@pytest.mark.parametrize("exact, want", [(True, "open-prior-exact"), (False, "open-prior")])
def test_auto_fits_with_the_recipe_the_labels_call_for(setup, exact, want, caplog):
    """COCO-17 labels (not motion capture by their slots): 20 people are too few to
    measure the labels' skeleton, so ``auto`` is the picked recipe as named."""
    from eft.synthetic.exemplars import annotated_slots

    model, body = setup
    coco = annotated_slots("coco17")[:, None].astype(np.float32)
    ppl = [dataclasses.replace(e, keypoints=np.asarray(e.keypoints) * coco)
           for e in people(20, exact)]
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


def test_a_pilot_of_a_few_people_keeps_open_prior(setup, caplog):
    """Under MIN_PILOT people neither pilot reads the labels: exact labels of 4 people
    are fitted with open-prior (its measures still say exact)."""
    from eft.fitting.auto import MIN_PILOT

    model, body = setup
    ppl = people(MIN_PILOT - 4, True)
    with caplog.at_level("INFO", logger="eft.fitting"):
        auto = fit_exemplars(ppl, model, body, "auto", progress=False)
    assert "cannot tell exact labels from annotated ones: open-prior" in caplog.text
    assert "labels are exact" not in caplog.text
    assert same(auto, fit_exemplars(ppl, model, body, "open-prior", progress=False))


def test_unknown_recipe_name(setup, caplog):
    model, body = setup
    with pytest.raises(ValueError, match="unknown EFT preset"):
        fit_exemplars(people(2, True), model, body, "open-prior-exactly")
    with pytest.raises(ValueError, match=r"known: \['auto', 'eft', .*\(did you mean "
                       r"'open-prior'\?\)"):
        fit_exemplars(people(2, True), model, body, "open_prior")
    with caplog.at_level("INFO", logger="eft.fitting"):  # nobody to pilot: no pilot
        assert fit_exemplars([], model, body, "auto") == []
    assert "pilot" not in caplog.text



def _studio_skeleton(e, k: float):
    """Exact labels with the hips, thorax and head slots moved as a studio skeleton
    might place them (k times: hips 15 % of their width outward and 5 % of the torso
    down, thorax 5 % down and the H36M head 10 % up the torso)."""
    from eft.body.joints import SPIN49_INDEX as S

    kp = np.asarray(e.keypoints, dtype=np.float64).copy()
    r, le = kp[S["Right Hip"], :2].copy(), kp[S["Left Hip"], :2].copy()
    u = kp[S["Thorax (MPII)"], :2] - (r + le) / 2
    kp[S["Right Hip"], :2] += k * (0.15 * (r - le) - 0.05 * u)
    kp[S["Left Hip"], :2] += k * (0.15 * (le - r) - 0.05 * u)
    kp[S["Thorax (MPII)"], :2] -= k * 0.05 * u
    kp[S["Head (H36M)"], :2] += k * 0.10 * u
    return dataclasses.replace(e, keypoints=kp)


def test_a_studio_skeleton_still_reads_exact(setup):
    """Exact H36M-17 labels whose torso joints sit where a studio skeleton puts them
    fit worse than exact labels overall, so the first median misses them; the median
    over the skeleton-free joints still finds them exact.  Annotated labels pass
    neither test."""
    from eft.fitting import exemplar_batch, fit
    from eft.fitting.auto import EXACT_LIMBS_BELOW, choose_from_pilot
    from eft.synthetic.exemplars import annotated_slots

    model, body = setup
    mask = annotated_slots("h36m17_spin")[:, None].astype(np.float32)

    def choice(ppl):
        ppl = [dataclasses.replace(e, keypoints=np.asarray(e.keypoints) * mask) for e in ppl]
        fits = fit(model, body, exemplar_batch(ppl), eft_preset("open-prior"), progress=False)
        return choose_from_pilot(fits, ppl)

    studio = choice([_studio_skeleton(e, 2.0) for e in people(40, True)])
    assert studio.reproj_median > EXACT_LABELS_BELOW > studio.limb_median * 1.05
    assert studio.limb_median < EXACT_LIMBS_BELOW and studio.preset == "open-prior-exact"
    noisy = choice(people(40, False))
    assert noisy.reproj_median > EXACT_LABELS_BELOW and noisy.limb_median > EXACT_LIMBS_BELOW
    assert noisy.preset == "open-prior"


def test_without_a_recipe_a_shipped_prior_gets_eft_fits_default(setup, tmp_path):
    """``config=None`` is what ``eft fit`` would run: ``auto`` for a prior loaded by
    name, the published recipe for the same weights read from a regressor file (only
    loading by name marks a prior as shipped, even when the file's metadata is copied)."""
    import copy

    from eft.models import save_regressor, shipped_prior_name

    model, body = setup
    ppl = people(12, True)
    assert shipped_prior_name(model) == "keypoint-prior-v9"
    assert shipped_prior_name(load_regressor("keypoint-prior-v1")) == "keypoint-prior-v1"
    assert shipped_prior_name(copy.deepcopy(model)) == "keypoint-prior-v9"
    default = fit_exemplars(ppl, model, body, progress=False)
    assert same(default, fit_exemplars(ppl, model, body, "auto", progress=False))
    assert not same(default, fit_exemplars(ppl, model, body, "eft", progress=False))

    path = save_regressor(model, tmp_path / "mine.pt", **model.eft_metadata)
    mine = load_regressor(path)
    assert shipped_prior_name(mine) is None and "shipped_as" not in mine.eft_metadata
    assert same(fit_exemplars(ppl, mine, body, progress=False),
                fit_exemplars(ppl, model, body, "eft", progress=False))
