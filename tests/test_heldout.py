"""Held-out-joint metric (eft.fitting.heldout), the mean-pose baseline
(eft.fitting.baselines) and a smoke run of scripts/bench_real2d.py on real people."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from eft.body.joints import SPIN49_INDEX
from eft.data.exemplar import Exemplar
from eft.data.readers import read_dataset
from eft.fitting import EFTConfig, exemplar_batch
from eft.fitting.baselines import fit_weak_camera, mean_output, mean_pose_fits
from eft.fitting.heldout import (
    LIMB_ORDER,
    LIMB_SLOTS,
    fit_keypoints_px,
    held_out_errors,
    hide_limb,
    keypoint_box_side,
    limb_for,
    limb_shape,
    limbs_labelled,
    make_held_out,
    sample_held_out,
    visible_crop,
)
from eft.fitting.records import Fit, FitQuality
from tests.helpers import STANDING_PERSON, load_script, require_file

I = SPIN49_INDEX

# A standing person, image px: (SPIN-49 name, x, y).
_PERSON = STANDING_PERSON


def person(**moved) -> np.ndarray:
    kp = np.zeros((49, 3))
    for name, (x, y) in {**_PERSON, **moved}.items():
        kp[I[name]] = (x, y, 1.0)
    return kp


def exemplar(kp: np.ndarray, i: int = 0) -> Exemplar:
    return Exemplar(id=f"p{i}", image_path=None, center=np.array([130.0, 250.0]),
                    scale=1.8, keypoints=kp, source="coco17")


def test_limb_rotation_and_eligibility():
    assert [limb_for(i) for i in range(9)] == [*LIMB_ORDER, *LIMB_ORDER, LIMB_ORDER[0]]
    kp = person()
    assert limbs_labelled(kp) is True
    no_wrist = kp.copy()
    no_wrist[I["Left Wrist"]] = 0.0
    nan_knee = kp.copy()
    nan_knee[I["Right Knee"], 0] = np.nan
    assert limbs_labelled(np.stack([kp, no_wrist, nan_knee])).tolist() == [True, False, False]
    held = make_held_out([exemplar(kp, i) for i in range(6)])
    assert [h.limb for h in held] == [limb_for(i) for i in range(6)]
    assert [h.exemplar.meta["held_out_limb"] for h in held] == [h.limb for h in held]
    with pytest.raises(ValueError, match="p1"):
        make_held_out([exemplar(kp, 0), exemplar(no_wrist, 1)])


def test_sample_held_out_keeps_eligible_people_in_order_and_is_seeded():
    no_wrist = person()
    no_wrist[I["Left Wrist"]] = 0.0
    people = [exemplar(no_wrist if i % 3 == 0 else person(), i) for i in range(30)]
    everyone = sample_held_out(people, None, 0)
    assert [h.exemplar.id for h in everyone] == [f"p{i}" for i in range(30) if i % 3]
    a, b = sample_held_out(people, 7, 5), sample_held_out(people, 7, 5)
    ids = [h.exemplar.id for h in a]
    assert ids == [h.exemplar.id for h in b] and len(set(ids)) == 7
    assert ids == sorted(ids, key=lambda s: int(s[1:]))
    assert [h.limb for h in a] == [limb_for(i) for i in range(7)]


def test_hide_limb_hides_only_the_labelled_slots_of_that_limb():
    kp = person()
    kp[I["OP LBigToe"]] = (150, 410, 1.0)  # a labelled foot slot goes with the left leg
    before = kp.copy()
    for limb in LIMB_ORDER:
        visible, hidden = hide_limb(kp, limb)
        expect = {"left_arm": {"Left Elbow", "Left Wrist"},
                  "right_arm": {"Right Elbow", "Right Wrist"},
                  "left_leg": {"Left Knee", "Left Ankle", "OP LBigToe"},
                  "right_leg": {"Right Knee", "Right Ankle"}}[limb]
        assert set(np.flatnonzero(hidden)) == {I[n] for n in expect}
        assert set(np.flatnonzero(hidden)) <= set(LIMB_SLOTS[limb])
        assert np.all(visible[hidden] == 0)
        np.testing.assert_array_equal(visible[~hidden], kp[~hidden])
    np.testing.assert_array_equal(kp, before)  # the input is not modified


def test_visible_crop_excludes_the_hidden_limb():
    # the right wrist and elbow stick far out to the left: hiding the right arm must
    # shrink the crop to the box of the rest
    kp = person(**{"Right Wrist": (-300, 230), "Right Elbow": (-100, 180)})
    h = make_held_out([exemplar(person(), 0), exemplar(kp, 1)])[1]  # person 1: right arm
    assert h.limb == "right_arm"
    xs = [p[0] for n, p in _PERSON.items() if n not in ("Right Wrist", "Right Elbow")]
    ys = [p[1] for n, p in _PERSON.items() if n not in ("Right Wrist", "Right Elbow")]
    w, hgt = max(xs) - min(xs), max(ys) - min(ys)
    np.testing.assert_allclose(h.exemplar.center, [(max(xs) + min(xs)) / 2,
                                                   (max(ys) + min(ys)) / 2])
    assert h.exemplar.scale == pytest.approx(1.2 * max(w, hgt) / 200)
    c, s = visible_crop(h.exemplar.keypoints)
    np.testing.assert_allclose(c, h.exemplar.center)
    # the full box (normaliser) includes the hidden wrist at x = -300
    assert h.box_side == pytest.approx(max(180 + 300, 400 - 95))
    assert keypoint_box_side(kp) == h.box_side
    with pytest.raises(ValueError):
        visible_crop(np.zeros((49, 3)))


def test_held_out_error_closed_form():
    held = make_held_out([exemplar(person(), i) for i in range(4)])
    labels = np.stack([h.labels[:, :2] for h in held])
    # exact prediction: zero error on every hidden joint (2 per person)
    e0 = held_out_errors(held, labels)
    assert len(e0.error_px) == 8 and np.all(e0.error_px == 0)
    s0 = e0.summary()
    assert (s0.n_people, s0.n_joints, s0.mean, s0.share_below_0_1) == (4, 8, 0.0, 1.0)
    # a known offset of (3, 4) px on everything: 5 px / box side
    box = keypoint_box_side(person())
    assert box == 305.0  # y from 95 to 400
    e = held_out_errors(held, labels + np.array([3.0, 4.0]))
    np.testing.assert_allclose(e.error_px, 5.0)
    np.testing.assert_allclose(e.error_frac, 5.0 / 305.0)
    # person 2 (left leg) off by 61 px = 0.2 box on its hidden joints only
    pred = labels.copy()
    pred[2, held[2].hidden] += np.array([0.0, 61.0])
    pred[2, ~held[2].hidden] += 1000.0  # visible joints do not count
    e = held_out_errors(held, pred)
    assert e.summary().mean == pytest.approx(2 * 0.2 / 8)
    assert e.summary().share_below_0_1 == pytest.approx(6 / 8)
    np.testing.assert_allclose(e.per_person(5), [0, 0, 0.2, 0, np.nan])
    assert e.summary().mean_se == pytest.approx(np.std([0, 0, 0.2, 0], ddof=1) / 2)
    assert e.by_limb()["left_leg"].mean == pytest.approx(0.2)
    assert e.by_limb()["right_arm"].mean == 0.0
    assert e.by_slot()[I["Left Knee"]].median_px == pytest.approx(61.0)
    assert set(e.slot[e.person == 2]) == {I["Left Knee"], I["Left Ankle"]}
    # slots filter: only knees scored
    knees = np.zeros(49, bool)
    knees[[I["Left Knee"], I["Right Knee"]]] = True
    assert set(held_out_errors(held, pred, knees).slot) == {I["Left Knee"], I["Right Knee"]}


def _fit_at(kp3d, cam, center, scale) -> Fit:
    q = FitQuality(0.0, 0.0, 0.0, 0.0, 1, True, 0.0, 0.0, 12, True)
    return Fit(exemplar_id="x", rotmat=np.zeros((24, 3, 3)), pose_aa=np.zeros(72),
               betas=np.zeros(10), cam_weak=np.asarray(cam, float), cam_t=np.zeros(3),
               keypoints3d=np.asarray(kp3d, float), center=np.asarray(center, float),
               scale=float(scale), quality=q)


def test_fits_are_projected_into_the_image():
    held = make_held_out([exemplar(person(), i) for i in range(2)])
    cam, fits = np.array([0.8, 0.1, -0.05]), []
    for h in held:
        c, s = h.exemplar.center, h.exemplar.scale
        # body points that land exactly on the labels: c + 100 s (0.8 X + t) = label
        xy = ((h.labels[:, :2] - c) / (100 * s) - cam[1:]) / cam[0]
        fits.append(_fit_at(np.c_[xy, np.ones(49)], cam, c, s))
    px = fit_keypoints_px(fits)
    for i, h in enumerate(held):  # independent reference, one joint at a time
        j = I["Left Wrist"]
        x = h.exemplar.center + 100 * h.exemplar.scale * (
            cam[0] * fits[i].keypoints3d[j, :2] + cam[1:])
        np.testing.assert_allclose(px[i, j], x)
    assert np.abs(held_out_errors(held, fits).error_px).max() < 1e-9


def test_limb_shape_closed_form():
    """Bones drawn on the labels' lines at known depth: in-plane share and projected
    length over the labelled length follow from the construction."""
    held = make_held_out([exemplar(person(), i) for i in range(4)])
    cam, fits, tilt = np.array([0.5, 0.0, 0.0]), [], [0.0, 1.0, 0.5, 2.0]
    for i, h in enumerate(held):
        c, s = h.exemplar.center, h.exemplar.scale
        xy = (h.labels[:, :2] - c) / (100 * s * cam[0])  # lands exactly on the labels
        # each hidden bone's depth step = tilt x its image length, so its
        # |v_xy| / |v| = 1 / sqrt(1 + tilt^2)
        kp3d = np.c_[xy, np.zeros(49)]
        for a, b in held_out_bones(h.limb):
            kp3d[b] = kp3d[a] + np.r_[xy[b] - xy[a], tilt[i] * np.linalg.norm(xy[b] - xy[a])]
        fits.append(_fit_at(kp3d, cam, c, s))
    shape = limb_shape(held, fits)
    want = 1 / np.sqrt(1 + np.square(tilt))
    np.testing.assert_allclose(shape.in_plane, np.c_[want, want])
    np.testing.assert_allclose(shape.length_ratio, 1.0)  # projections land on the labels
    half = [_fit_at(f.keypoints3d, [0.25, 0.0, 0.0], f.center, f.scale) for f in fits]
    np.testing.assert_allclose(limb_shape(held, half).length_ratio, 0.5)
    px = limb_shape(held, fit_keypoints_px(half))  # the same, as 2D predictions
    np.testing.assert_allclose(px.length_ratio, 0.5)
    assert np.isnan(px.in_plane).all()
    with pytest.raises(ValueError):
        limb_shape(held, fits[:2])


def held_out_bones(limb: str) -> tuple[tuple[int, int], ...]:
    side = "Left" if limb.startswith("left") else "Right"
    names = ("Shoulder", "Elbow", "Wrist") if limb.endswith("arm") else ("Hip", "Knee", "Ankle")
    a, b, c = (I[f"{side} {n}"] for n in names)
    return ((a, b), (b, c))


def test_weak_camera_least_squares():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 49, 3, generator=g, dtype=torch.float64)
    true = torch.tensor([[0.7, 0.1, -0.2], [1.3, -0.3, 0.0], [0.5, 0.0, 0.4]],
                        dtype=torch.float64)
    x = true[:, None, :1] * X[..., :2] + true[:, None, 1:]
    w = torch.rand(3, 49, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(fit_weak_camera(X, x, w).numpy(), true.numpy(), atol=1e-12)
    # noisy targets: the closed form is the minimiser (gradient zero)
    noisy = x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    cam = fit_weak_camera(X, noisy, w).requires_grad_(True)
    r = cam[:, None, :1] * X[..., :2] + cam[:, None, 1:] - noisy
    (w[..., None] * r ** 2).sum().backward()
    assert cam.grad.abs().max() < 1e-10


def test_mean_pose_of_a_mean_pose_person_is_exact(body):
    """A synthetic person who *is* the regressor's mean body, seen through a known
    camera: the mean-pose baseline recovers the camera, its 2D loss is 0, it is
    accepted, and its held-out error is 0 (closed form)."""
    from eft.body.fast import KeypointLBS
    from eft.models import load_regressor

    model = load_regressor("default")
    start = mean_output(model, 1)
    fast = KeypointLBS(body)
    with torch.no_grad():
        kp3d, _ = fast(start.rotmat, start.betas)
    valid = (fast.kp_total > 0.5).numpy()
    cam = np.array([0.9, 0.05, -0.1])
    center, scale = np.array([300.0, 200.0]), 1.5
    xy = center + 100 * scale * (cam[0] * kp3d[0, :, :2].numpy() + cam[1:])
    gt = np.zeros((49, 3))
    gt[25:] = np.c_[xy[25:], valid[25:].astype(float)]  # GT slots only
    ex = [Exemplar(id=f"m{i}", image_path=None, center=center, scale=scale, keypoints=gt,
                   source="synthetic") for i in range(4)]
    fits = mean_pose_fits(model, body, exemplar_batch(ex), EFTConfig())
    for f in fits:
        np.testing.assert_allclose(f.cam_weak, cam, atol=1e-5)
        assert f.quality.loss_2d_final < 1e-10 and f.accepted
        assert f.quality.reproj_px < 1e-3
    held = make_held_out(ex)
    targets = exemplar_batch([h.exemplar for h in held])
    assert not np.allclose(targets.center_tensor.numpy(), center)  # crops from the visible joints
    hfits = mean_pose_fits(model, body, targets)
    errs = held_out_errors(held, hfits, valid)
    assert errs.summary().n_joints == 8
    assert errs.error_px.max() < 1e-3


def _load_script():
    return load_script("bench_real2d")


def test_bench_real2d_smoke(shared_data, tmp_path, one_thread):
    coco = shared_data / "coco2017_keypoints" / "person_keypoints_val2017.json"
    mpii = shared_data / "mpii_2d" / "mpii_valid_tompson.h5"
    for p in (coco, mpii):
        require_file(p)
    bench = _load_script()
    bench.DATASETS.update(coco=("coco", coco), mpii=("mpii", mpii))
    out = tmp_path / "smoke"
    r = bench.main(["--n", "6", "--seed", "3", "--max-iters", "5",
                    "--set", "eft.rules.max_pose_nll=200", "--out", str(out)])
    saved = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").read_text().startswith("# bench_real2d")
    assert saved["eft_config"]["max_iters"] == 5
    assert saved["eft_config"]["rules"]["max_pose_nll"] == 200
    # the shipped prior gets the open-prior recipe (as eft fit does), then --set on top
    assert saved["eft_overrides"] == {"lr": 3e-4, "with_ankles": True, "max_iters": 5,
                                      "scope": "bias", "mirror_average": True,
                                      "tilted_above_deg": 30.0, "smplify_init": "eft",
                                      "rules.max_pose_nll": 200}
    for name in ("coco", "mpii"):
        d = r["datasets"][name]
        diff = d["held_out_paired"]["eft"]["mean"]["diff"]
        assert diff == pytest.approx(d["methods"]["eft"]["held_out"]["mean"]
                                     - d["methods"]["mean"]["held_out"]["mean"])
        assert d["n_all"] == 6 and d["n_held_out"] == 6
        assert d["limbs_hidden"] == {"left_arm": 2, "right_arm": 2, "left_leg": 1,
                                     "right_leg": 1}
        assert set(d["methods"]) == {"mean", "regressor", "smplify", "eft"}
        for m in d["methods"].values():
            h, a = m["held_out"], m["all_labels"]
            assert h["n_joints"] == 12 and h["n_people"] == 6
            assert 0 < h["mean"] < 1 and math.isfinite(h["median"])
            assert 0 <= a["accept_rate"] <= 1 and a["median_reproj_px"] > 0
            assert a["pose_nll"]["p5"] <= a["pose_nll"]["p99"]
        # EFT fits the visible keypoints better than the mean body does
        assert (d["methods"]["eft"]["all_labels"]["median_reproj_px"]
                < d["methods"]["mean"]["all_labels"]["median_reproj_px"])
    d_coco = r["datasets"]["coco"]
    assert len(d_coco["held_out_ids"]) == 6
    # the annotation-box reading: each person's error rescaled by the keypoint box over
    # the longer side of the raw file's bbox (2 hidden joints each, so people weigh alike)
    raw = {a["id"]: a for a in json.loads(coco.read_text())["annotations"]}
    people = {e.id: e for e in read_dataset("coco", coco).exemplars}
    ratio = []
    for eid in d_coco["held_out_ids"]:
        e = people[eid]
        ratio.append(keypoint_box_side(e.keypoints) / max(raw[e.meta["annotId"]]["bbox"][2:]))
    assert "mean_annotation_box" not in r["datasets"]["mpii"]["methods"]["eft"]["held_out"]
    for m in d_coco["methods"].values():
        h = m["held_out"]
        assert h["mean_annotation_box"] == pytest.approx(
            np.mean(np.array(h["per_person"]) * ratio), abs=1e-5)
    assert d_coco["annotation_box_over_box"] == pytest.approx(np.median(1 / np.array(ratio)))
    assert "annotation's own box" in out.with_suffix(".md").read_text()
    # same seed, same people: a second run of one method repeats the numbers
    r2 = bench.main(["--n", "6", "--seed", "3", "--methods", "mean", "--datasets", "coco",
                     "--out", str(tmp_path / "again")])
    assert (json.dumps(r2["datasets"]["coco"]["methods"]["mean"], sort_keys=True)
            == json.dumps(r["datasets"]["coco"]["methods"]["mean"], sort_keys=True))
    cmp = bench.main(["--compare", str(out.with_suffix(".json")),
                      str((tmp_path / "again").with_suffix(".json"))])
    assert set(cmp) == {"coco"}
    assert cmp["coco"]["A:mean - B:mean"]["diff"] == 0.0
    assert cmp["coco"]["A:eft - B:mean"]["diff"] == pytest.approx(
        d_coco["held_out_paired"]["eft"]["mean"]["diff"], abs=1e-5)  # 6 decimals kept
    for bad in ("eft.nonsense=1", "eft.lr=-1", "smplify.nonsense=1"):
        with pytest.raises(SystemExit, match=bad.split("=")[0]):
            bench.main(["--n", "2", "--set", bad, "--out", str(tmp_path / "x")])
