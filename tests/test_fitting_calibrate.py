"""Skeleton offsets (eft.fitting.calibrate): recovered in closed form from labels drawn
with known offsets, taken back out of the labels, and worth millimetres in 3D when a
skeleton defines its joints unlike the body model."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from eft.body import BodyModel
from eft.body.joints import SPIN49_INDEX
from eft.fitting import exemplar_batch, fit_method, fits_to_tensors
from eft.fitting.auto import (
    AUTO_CHOICES,
    MEASURED_TORSO_WEIGHT,
    PresetChoice,
    auto_config,
    with_perspective_check,
    with_remeasured_offsets,
)
from eft.fitting.calibrate import (
    correct_targets,
    estimate_skeleton_offsets,
    in_label_skeleton,
    offset_basis,
)
from eft.fitting.config import eft_preset
from eft.geometry.metrics import procrustes_align
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import load_regressor
from eft.synthetic.exemplars import annotated_slots, generate
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.evaluate import pose_joints

#: Studio-like cameras: a 1,000 px square image, focal 1,145 px, people 3.5-6.5 m away.
STUDIO = {"image_sizes": ((1000, 1000),), "focal_range": (1140.0, 1150.0),
          "distance_range": (3.5, 6.5), "person_fraction_range": (0.3, 0.5)}
#: A made-up studio skeleton: hips wider and lower, head higher and forward, thorax
#: lower, knees further down the thigh (coefficients along u, w, f, bone).
SKELETON = {"Right Hip": (-0.05, 0.30, 0.0, 0.0), "Left Hip": (-0.05, -0.30, 0.0, 0.0),
            "Head (H36M)": (0.15, 0.0, 0.10, 0.0), "Thorax (MPII)": (-0.10, 0.0, 0.0, 0.0),
            "Right Knee": (0.0, 0.0, 0.0, 0.08)}


def studio_set(n: int, seed: int = 5):
    """Synthetic people seen by studio cameras with exact H36M-17 labels, the true
    camera in each exemplar's meta."""
    from eft.train.prior import V2_SYNTHETIC

    cfg = dataclasses.replace(V2_SYNTHETIC.clean(), noise_scale=0.0, **STUDIO)
    s = generate(load_pose_bank().val().poses, n, seed, cfg)
    mask = annotated_slots("h36m17_spin")[:, None]
    people = [dataclasses.replace(e, keypoints=np.asarray(e.keypoints) * mask,
                                  meta={**e.meta, "focal": float(s.focal[i]),
                                        "principal_point": [float(v) for v in
                                                            s.principal_point[i]]})
              for i, e in enumerate(s.exemplars())]
    return s, people


def with_skeleton(s, people, skeleton: dict) -> list:
    """``people`` labelled by a skeleton whose joints sit ``skeleton``'s offsets away from
    the body model's (3D, in the body's own axes), drawn by each true camera."""
    names = list(skeleton)
    k3 = torch.as_tensor(np.asarray(s.keypoints3d), dtype=torch.float64)
    coef = torch.as_tensor([skeleton[n] for n in names], dtype=torch.float64)
    moved = k3.clone()
    idx = [SPIN49_INDEX[n] for n in names]
    moved[:, idx] += (offset_basis(k3, names) @ coef[None, :, :, None])[..., 0]
    out = []
    for i, e in enumerate(people):
        kp = np.asarray(e.keypoints, dtype=np.float64).copy()
        x = moved[i, idx].numpy()
        drawn = s.focal[i] * x[:, :2] / x[:, 2:] + s.principal_point[i]
        kp[idx, :2] = np.where(kp[idx, 2:] > 0, drawn, kp[idx, :2])
        out.append(dataclasses.replace(e, keypoints=kp))
    return out


def true_bodies(s) -> list:
    """The true bodies as fits: keypoints in the body frame (camera axes, no
    translation)."""
    k3 = np.asarray(s.keypoints3d, dtype=np.float64)
    return [SimpleNamespace(keypoints3d=k - k[SPIN49_INDEX["Pelvis (MPII)"]]) for k in k3]


def test_offsets_are_recovered_in_closed_form():
    s, people = studio_set(64)
    labels = exemplar_batch(with_skeleton(s, people, SKELETON))
    rows = estimate_skeleton_offsets(labels, true_bodies(s))
    got = {r[0]: np.array(r[1:]) for r in rows}
    assert set(got) == set(SKELETON)  # every other slot sits where the body's does
    for name, coef in SKELETON.items():
        # within 3 % of the largest: the estimate reads the pinhole to first order
        np.testing.assert_allclose(got[name], coef, atol=0.01, err_msg=name)
    # the same labels without a skeleton of their own: nothing to take out
    assert estimate_skeleton_offsets(exemplar_batch(people), true_bodies(s)) == ()
    with pytest.raises(ValueError, match="3 fits for 64 targets"):
        estimate_skeleton_offsets(labels, true_bodies(s)[:3])


def test_offsets_are_read_only_from_labels_exact_through_the_camera():
    """The second pilot measures offsets where its fits reproduce the labels through the
    image camera (for H36M-17 labels of every joint, motion capture's, up to
    ``CAPTURE_CAMERA_BELOW``); labels that scatter more read none."""
    from eft.fitting.auto import CAPTURE_CAMERA_BELOW, PERSPECTIVE_LABELS_BELOW

    s, people = studio_set(64)
    labelled = with_skeleton(s, people, SKELETON)
    first = PresetChoice(preset=AUTO_CHOICES[1], pilot=64, reproj_median=0.01,
                         limb_median=0.01, seconds=0.0)
    exact = with_perspective_check(first, true_bodies(s), labelled)
    assert exact.capture and exact.perspective_median < CAPTURE_CAMERA_BELOW
    assert {r[0] for r in exact.skeleton_offsets} == set(SKELETON)
    # without the spine, not motion capture: offsets only below the camera's threshold
    spineless = [dataclasses.replace(e, keypoints=np.where(
        (np.arange(49) == SPIN49_INDEX["Spine (H36M)"])[:, None], 0.0, e.keypoints))
        for e in labelled]
    other = with_perspective_check(first, true_bodies(s), spineless)
    assert not other.capture
    assert bool(other.skeleton_offsets) == (other.perspective_median
                                            < PERSPECTIVE_LABELS_BELOW)
    rng = np.random.default_rng(0)
    noisy = [dataclasses.replace(e, keypoints=np.asarray(e.keypoints) + np.concatenate(
        [rng.normal(0, 0.02 * 200 * e.scale, (49, 2)), np.zeros((49, 1))], 1))
        for e in labelled]
    scattered = with_perspective_check(first, true_bodies(s), noisy)
    assert not scattered.perspective and scattered.skeleton_offsets == ()


def test_correcting_the_labels_gives_back_the_body_models_joints():
    s, people = studio_set(16)
    plain = exemplar_batch(people)
    labels = exemplar_batch(with_skeleton(s, people, SKELETON))
    rows = tuple((n, *c) for n, c in SKELETON.items())
    points = np.stack([b.keypoints3d for b in true_bodies(s)])
    back = correct_targets(labels, points, rows)
    idx = [SPIN49_INDEX[n] for n in SKELETON]
    moved = (labels.keypoints[:, idx, :2] - plain.keypoints[:, idx, :2]).abs().max()
    left = (back.keypoints[:, idx, :2] - plain.keypoints[:, idx, :2]).abs().max()
    assert moved > 0.02 and left < 1e-4  # crop units: 1 = half the crop side
    # the other slots, and a batch without a camera, are left as they are
    others = [j for j in range(49) if j not in idx]
    assert torch.equal(back.keypoints[:, others], labels.keypoints[:, others])
    blind = dataclasses.replace(labels, focals=None, principal_points=None)
    assert torch.equal(correct_targets(blind, points, rows).keypoints, labels.keypoints)
    assert correct_targets(labels, points, ()) is labels


def test_offset_rows_are_checked():
    cfg = eft_preset("open-prior-exact", skeleton_offsets=[["Right Hip", 0, 0.1, 0, 0]])
    assert cfg.skeleton_offsets == (("Right Hip", 0.0, 0.1, 0.0, 0.0),)
    for bad, match in (([["Right Hipp", 0, 0, 0, 0]], "SPIN-49 slot"),
                       ([["Right Hip", 0, 0, 0]], "SPIN-49 slot"),
                       ([["Right Hip", 0, float("nan"), 0, 0]], "finite"),
                       ([["Right Hip", 0, 0, 0, 0], ["Right Hip", 1, 0, 0, 0]], "twice")):
        with pytest.raises(ValueError, match=match):
            eft_preset("open-prior-exact", skeleton_offsets=bad)


def pa_mm(body, s, fits) -> float:
    rot = axis_angle_to_rotmat(torch.as_tensor(s.pose, dtype=torch.float32).reshape(-1, 24, 3))
    gt, _ = pose_joints(body, rot, torch.as_tensor(s.betas, dtype=torch.float32))
    pred, _ = pose_joints(body, *fits_to_tensors(fits))
    return float(((procrustes_align(pred, gt) - gt).norm(dim=-1).mean(1) * 1000).mean())


#: SPIN-49 slots of the 14 joints a studio set's truth is compared on by name.
BY_NAME_14 = ("Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee",
              "Left Ankle", "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder",
              "Left Elbow", "Left Wrist", "Thorax (MPII)", "Head (H36M)")


def np_axes(p: np.ndarray, name: str) -> np.ndarray:
    """(N, 3, 4) the offset axes u, w, f, v written out in numpy (calibrate's docstring):
    torso up, hip axis, forward as long as the hip axis, and the bone for a limb joint."""
    i = SPIN49_INDEX
    hips = (p[:, i["Right Hip"]] + p[:, i["Left Hip"]]) / 2
    u = (p[:, i["Right Shoulder"]] + p[:, i["Left Shoulder"]]) / 2 - hips
    w = p[:, i["Right Hip"]] - p[:, i["Left Hip"]]
    f = np.cross(u, w) / np.linalg.norm(u, axis=1, keepdims=True)
    parent = {"Right Knee": "Right Hip", "Left Elbow": "Left Shoulder"}.get(name)
    v = p[:, i[name]] - p[:, i[parent]] if parent else np.zeros_like(u)
    return np.stack([u, w, f, v], -1)


def studio_truth(s, skeleton: dict) -> np.ndarray:
    """(N, 49, 3) the true keypoints in ``skeleton``'s definitions (numpy axes)."""
    k3 = np.asarray(s.keypoints3d, dtype=np.float64).copy()
    out = k3.copy()
    for name, coef in skeleton.items():
        out[:, SPIN49_INDEX[name]] += np_axes(k3, name) @ np.asarray(coef)
    return out


def by_name_pa_mm(fits, truth: np.ndarray) -> float:
    """Mean PA error (mm) of the fits' written keypoints on :data:`BY_NAME_14`."""
    idx = [SPIN49_INDEX[n] for n in BY_NAME_14]
    pred = torch.as_tensor(np.stack([f.keypoints3d for f in fits])[:, idx], dtype=torch.float64)
    gt = torch.as_tensor(truth[:, idx], dtype=torch.float64)
    return float(((procrustes_align(pred, gt) - gt).norm(dim=-1).mean(1) * 1000).mean())


def test_fits_are_written_in_the_labels_skeleton_in_closed_form():
    """Each offset slot's keypoint moves by ``a u + b w + c f + d v`` of its own body;
    the other slots, the bodies and a fit whose keypoints are not finite stay."""
    s, _ = studio_set(6)
    bodies = true_bodies(s)
    fits = [_fit_like(b.keypoints3d.astype(np.float32)) for b in bodies]
    fits[5] = dataclasses.replace(fits[5], keypoints3d=np.full((49, 3), np.nan, np.float32))
    rows = (("Right Knee", 0.01, 0.02, 0.03, 0.2), ("Head (H36M)", 0.1, 0.0, 0.05, 0.0))
    out = in_label_skeleton(fits, rows)
    p = np.stack([f.keypoints3d for f in fits[:5]]).astype(np.float64)
    for name, *coef in rows:
        j = SPIN49_INDEX[name]
        want = p[:, j] + np_axes(p, name) @ np.asarray(coef)
        np.testing.assert_allclose(np.stack([f.keypoints3d[j] for f in out[:5]]), want,
                                   atol=1e-6, err_msg=name)
    others = [j for j in range(49) if j not in (SPIN49_INDEX["Right Knee"],
                                                  SPIN49_INDEX["Head (H36M)"])]
    for a, b in zip(out, fits, strict=True):
        np.testing.assert_array_equal(a.keypoints3d[others], b.keypoints3d[others])
        assert a.keypoints3d.dtype == b.keypoints3d.dtype and a.rotmat is b.rotmat
    assert out[5] is fits[5]
    assert in_label_skeleton(fits, ()) == fits


def _fit_like(keypoints3d: np.ndarray):
    from eft.fitting.records import Fit, FitQuality

    return Fit(exemplar_id="x", rotmat=np.tile(np.eye(3, dtype=np.float32), (24, 1, 1)),
               pose_aa=np.zeros(72, np.float32), betas=np.zeros(10, np.float32),
               cam_weak=np.array([1.0, 0.0, 0.0], np.float32),
               cam_t=np.zeros(3, np.float32), keypoints3d=keypoints3d,
               center=np.zeros(2, np.float32), scale=1.0,
               quality=FitQuality(1e-3, 1e-4, 2.0, 0.01, 5, True, 0.1, float("nan"), 14,
                                  True))


def test_label_skeleton_keypoints_decide_a_jobs_fits_only_with_offsets():
    """The resume hash reads the option only where there are offsets, and folders
    fitted before it (no key) resume with it off."""
    from eft.jobs.config import fit_view

    base = {"eft": {"preset": "open-prior-exact", "skeleton_offsets": []}}
    on = {"eft": {**base["eft"], "label_skeleton_keypoints": True}}
    off = {"eft": {**base["eft"], "label_skeleton_keypoints": False}}
    assert fit_view(on) == fit_view(off) == fit_view(base)
    rows = [["Right Hip", 0.0, 0.1, 0.0, 0.0]]
    old = {"eft": {"preset": "open-prior-exact", "skeleton_offsets": rows}}
    assert fit_view({"eft": {**old["eft"], "label_skeleton_keypoints": False}}) == fit_view(old)
    assert fit_view({"eft": {**old["eft"], "label_skeleton_keypoints": True}}) != fit_view(old)
    with pytest.raises(ValueError, match="label_skeleton_keypoints must be true or false"):
        eft_preset("open-prior-exact", label_skeleton_keypoints="yes")


def test_a_studio_skeleton_measured_on_the_pilot_and_taken_out_gains_in_3d(one_thread):
    """The auto recipe's second pilot measures the offsets from its own fits (no 3D
    truth), auto_config carries them, and fitting with them is nearer the truth than
    without; labels drawn by the body model's own skeleton yield none, so their fits
    are unchanged."""
    model, body = load_regressor("default"), BodyModel.load()
    s, people = studio_set(48)
    labelled = with_skeleton(s, people, SKELETON)
    exact = eft_preset(AUTO_CHOICES[1])
    fits = fit_method("eft", model, body, exemplar_batch(labelled), exact)
    first = PresetChoice(preset=AUTO_CHOICES[1], pilot=48, reproj_median=0.01,
                         limb_median=0.01, seconds=0.0)
    choice = with_perspective_check(first, fits, labelled)
    assert {r[0] for r in choice.skeleton_offsets} >= {"Right Hip", "Left Hip",
                                                       "Head (H36M)"}
    assert choice.to_dict()["skeleton_offsets"][0][0] == choice.skeleton_offsets[0][0]
    # the job's third pilot fit: measured again with the first measure taken out
    again_measured = with_remeasured_offsets(
        choice, labelled, lambda c: fit_method("eft", model, body, exemplar_batch(labelled), c))
    hip = SKELETON["Left Hip"][1]
    got = [{r[0]: r[2] for r in c.skeleton_offsets}["Left Hip"] for c in (choice,
                                                                          again_measured)]
    assert abs(got[1] - hip) < abs(got[0] - hip), got
    cfg = auto_config(choice)
    assert cfg.skeleton_offsets == choice.skeleton_offsets
    assert cfg.perspective_torso_weight == MEASURED_TORSO_WEIGHT  # 48 people measured it
    assert auto_config(dataclasses.replace(choice, preset=AUTO_CHOICES[0])).skeleton_offsets \
        == ()
    again = fit_method("eft", model, body, exemplar_batch(labelled), cfg)
    before, after = pa_mm(body, s, fits), pa_mm(body, s, again)
    assert after < before - 1.5, (before, after)
    # the written keypoints sit in the labels' skeleton, nearer its 3D truth than the
    # body model's own keypoints of the same fits; the bodies are the same
    body_kp = fit_method("eft", model, body, exemplar_batch(labelled),
                         cfg.replace(label_skeleton_keypoints=False))
    np.testing.assert_array_equal(np.stack([f.rotmat for f in body_kp]),
                                  np.stack([f.rotmat for f in again]))
    truth = studio_truth(s, SKELETON)
    written, own = by_name_pa_mm(again, truth), by_name_pa_mm(body_kp, truth)
    assert written < own - 2.0, (written, own)
    own = fit_method("eft", model, body, exemplar_batch(people), exact)
    none = with_perspective_check(first, own, people)
    assert none.skeleton_offsets == ()

    def never(_):
        raise AssertionError("refitted without offsets to measure")

    assert with_remeasured_offsets(none, people, never) is none


def test_the_job_summary_names_the_slots_whose_offsets_were_taken_out():
    from eft.jobs.summary import Summary

    auto = PresetChoice(preset=AUTO_CHOICES[1], pilot=256, reproj_median=0.008,
                        limb_median=0.007, seconds=1.0, perspective_median=0.0016,
                        skeleton_offsets=(("Right Hip", 0.0, 0.1, 0.0, 0.0),
                                          ("Head (H36M)", 0.1, 0.0, 0.0, 0.0))).to_dict()
    text = Summary(fitted=1, recipe=AUTO_CHOICES[1], recipe_auto=auto).format()
    assert "skeleton offsets taken out for 2 slots (Right Hip, Head (H36M))" in text
    assert "written keypoints in the labels' skeleton" not in text
    on = Summary(fitted=1, recipe=AUTO_CHOICES[1],
                 recipe_auto={**auto, "label_skeleton_keypoints": True}).format()
    assert "(Right Hip, Head (H36M)), the written keypoints in the labels' skeleton" in on
    none = Summary(fitted=1, recipe=AUTO_CHOICES[1],
                   recipe_auto={**auto, "skeleton_offsets": []}).format()
    assert "skeleton offsets" not in none and "image-camera refinement on" in none
    # motion-capture labels: the camera back on once the offsets are out, and said so
    capture = {**auto, "capture": True, "perspective_median": 0.0031,
               "offsets_camera_median": 0.0026}
    text = Summary(fitted=1, recipe=AUTO_CHOICES[1], recipe_auto=capture).format()
    assert ("image-camera refinement on (0.0026 through the cameras with the labels' "
            "skeleton offsets taken out)") in text and "(motion-capture labels)" in text
    assert PresetChoice.from_dict(capture).perspective
    off = {**capture, "offsets_camera_median": 0.0045}
    assert "image-camera refinement off (0.0045" in Summary(
        fitted=1, recipe=AUTO_CHOICES[1], recipe_auto=off).format()
    mixed = Summary(fitted=1, recipe=AUTO_CHOICES[1],
                    recipe_auto={**capture, "far_from_skeleton": 0.04}).format()
    assert "4 % of the pilot's people far from the measured skeleton: mixed capture" in mixed
    assert "mixed capture" not in Summary(fitted=1, recipe=AUTO_CHOICES[1], recipe_auto={
        **capture, "far_from_skeleton": 0.0}).format()
    dropped = Summary(fitted=1, recipe=AUTO_CHOICES[1],
                      recipe_auto={**off, "skeleton_offsets": []}).format()
    assert "offsets read from noise, dropped)" in dropped
    assert "dropped" not in Summary(fitted=1, recipe=AUTO_CHOICES[1],
                                    recipe_auto=off).format()
    assert not PresetChoice.from_dict(off).perspective
    # complete labels without a spine and a jaw, probed: the probe's measure is named
    probed = {**capture, "capture_probe_median": 0.0025, "offsets_camera_median": 0.0025}
    text = Summary(fitted=1, recipe=AUTO_CHOICES[1], recipe_auto=probed).format()
    assert ("(motion-capture labels: 0.0025 through the cameras with their skeleton "
            "offsets out, capture below 0.003)") in text
    assert PresetChoice.from_dict(probed).capture_probe_median == 0.0025
    assert PresetChoice.from_dict(capture).capture_probe_median != 0.0025  # NaN: unprobed
    failed = {**auto, "preset": AUTO_CHOICES[0], "perspective_median": 0.0031,
              "capture_probe_median": 0.0041}
    text = Summary(fitted=1, recipe=AUTO_CHOICES[0], recipe_auto=failed).format()
    assert "(probed as motion capture: 0.0041 with their skeleton offsets out" in text


def test_measure_on_a_recipe_named_by_hand_equals_measuring_by_hand(one_thread):
    """``skeleton_offsets: measure`` fits a pilot without offsets, measures them, refits
    the pilot with them taken out, measures them again from the labels' residuals, and
    fits with those: the same fits as doing those steps by hand.  The second measure
    reads more of the skeleton (the first pilot's bodies bent part of the way toward
    it)."""
    model, body = load_regressor("default"), BodyModel.load()
    s, people = studio_set(40)
    batch = exemplar_batch(with_skeleton(s, people, SKELETON))
    exact = eft_preset(AUTO_CHOICES[1], perspective_steps=20)
    first = fit_method("eft", model, body, batch, exact)
    rows1 = estimate_skeleton_offsets(batch, first)
    assert {r[0] for r in rows1} >= {"Right Hip", "Left Hip"}
    second = fit_method("eft", model, body, batch,
                        exact.replace(skeleton_offsets=rows1, label_skeleton_keypoints=False))
    rows = estimate_skeleton_offsets(batch, second)
    hip = SKELETON["Right Hip"][1]
    got = [{r[0]: r[2] for r in rr}["Right Hip"] for rr in (rows1, rows)]
    assert abs(got[1] - hip) < abs(got[0] - hip), got
    by_hand = fit_method("eft", model, body, batch, exact.replace(skeleton_offsets=rows))
    measured = fit_method("eft", model, body, batch,
                          exact.replace(skeleton_offsets="measure"))
    np.testing.assert_array_equal(np.stack([f.rotmat for f in measured]),
                                  np.stack([f.rotmat for f in by_hand]))
    with pytest.raises(ValueError, match="'measure' or a list"):
        exact.replace(skeleton_offsets="measured")


def test_a_job_naming_its_recipe_measures_the_offsets_once_and_resumes(tmp_path, one_thread):
    """``eft.skeleton_offsets: measure`` in a job: resolved on the job's pilot into the
    rows its config.yaml records (none for labels drawn by the body model's own
    skeleton), and the same job resumes with nothing left to fit."""
    from eft.jobs import config_from_dict, run_job

    d = {"datasets": [{"kind": "synthetic", "name": "syn",
                       "options": {"n": 36, "seed": 5, "noise_scale": 0.0,
                                   "missing_rate": 0.0, "limb_drop_prob": 0.0,
                                   "truncation_prob": 0.0}}],
         "output": {"dir": str(tmp_path / "out"), "formats": ["h5"]},
         "eft": {"preset": "open-prior-exact", "skeleton_offsets": "measure"},
         "batch_size": 12, "chunk_size": 12, "devices": ["cpu"], "limit": 12}
    r = run_job(config_from_dict(d), progress=False)
    assert r.summary.fitted == 12
    assert config_from_dict(r.manifest.config).eft.skeleton_offsets == ()
    again = run_job(config_from_dict(d), progress=False)
    assert again.summary.fitted_this_run == 0


def test_an_auto_job_on_a_studio_file_writes_its_keypoints_in_the_labels_skeleton(
        tmp_path, one_thread):
    """End to end through a generic JSON file (H36M-17 labels of a studio skeleton, image
    size and focal given): ``eft.preset: auto`` measures the offsets on its pilot
    (48 people, enough to measure), records them, the label-skeleton keypoints and the
    full torso weight in config.yaml, and the keypoints it writes are nearer the
    skeleton's own 3D joints than the same bodies' keypoints."""
    import h5py
    import yaml

    from tests.helpers import auto_job_on_generic_file

    s, people = studio_set(48)
    labelled = with_skeleton(s, people, SKELETON)
    r, out = auto_job_on_generic_file(
        tmp_path, labelled, "h36m17_spin", 24,
        [{"image_size": [1000, 1000], "focal": float(f)} for f in s.focal[:48]])
    assert r.summary.fitted == 48
    eft = yaml.safe_load((out / "config.yaml").read_text())["eft"]
    assert {row[0] for row in eft["skeleton_offsets"]} >= {"Right Hip", "Left Hip"}
    assert eft["label_skeleton_keypoints"] is True
    assert eft["perspective_torso_weight"] == MEASURED_TORSO_WEIGHT
    with h5py.File(out / "fits.h5") as f:
        order = [int(x.decode().rsplit("p", 1)[1]) for x in f["fits/fit_id"][:]]
        written = [SimpleNamespace(keypoints3d=k) for k in f["fits/keypoints3d"][:]]
        rot, betas = f["fits/rotmat"][:], f["fits/betas"][:]
    body = BodyModel.load()
    with torch.no_grad():
        own = body(torch.as_tensor(rot), torch.as_tensor(betas)).keypoints.numpy()
    truth = studio_truth(s, SKELETON)[order]
    assert by_name_pa_mm(written, truth) < by_name_pa_mm(
        [SimpleNamespace(keypoints3d=k) for k in own], truth) - 2.0


def test_the_summary_of_a_pilot_without_labelled_people_prints():
    """No pilot person with GT-slot labels (every measure NaN): the summary says so,
    where it used to end the finished job with a traceback."""
    from eft.jobs.summary import Summary

    auto = PresetChoice(preset="open-prior", pilot=8, reproj_median=float("nan"),
                        limb_median=float("nan"), seconds=1.0).to_dict()
    text = Summary(fitted=8, recipe="open-prior", recipe_auto=auto).format()
    assert "reprojection none (no labelled pilot person)" in text
