"""scripts/bench_mocap_skeleton.py on the real CMU clips: the capture's bones are rigid
from frame to frame, the studio camera's pixels are its pinhole projection, and
``eft.preset: auto`` reads such labels as motion capture, keeps the image camera once
their skeleton offsets are out, and beats SMPLify on them by over 10 %, in a job's way
and through the Python API's default alike."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import auto_job_on_generic_file, load_script, test_data_dir

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bench():
    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    if scripts not in sys.path:  # the script imports its sibling benchmarks
        sys.path.insert(0, scripts)
    return load_script("bench_mocap_skeleton")


@pytest.fixture(scope="module")
def frames(bench):
    test_data_dir()  # fails on CI, skips elsewhere, without ../shared/data
    ids, joints = bench.frames(64, 0)
    return ids, joints


def auto_and_smplify(bench, model, body, people, choice, truth) -> dict[str, float]:
    """The mean error by name (mm) of ``auto`` as ``choice`` picked it and of SMPLify."""
    from eft.fitting import exemplar_batch, fit_method

    batch = exemplar_batch(people)
    return {name: float(bench.by_name(np.stack([f.keypoints3d for f in fits]), truth).mean())
            for name, fits in (
                ("auto", fit_method("eft", model, body, batch, bench.auto_config(choice))),
                ("smplify", fit_method("smplify", model, body, batch)))}


def test_frames_come_from_every_val_clip_with_rigid_bones(bench, frames):
    ids, joints = frames
    clips = np.array([i.rsplit("/", 1)[0] for i in ids])
    assert len(ids) == 64 and len(set(clips)) == 16
    for clip in set(clips):  # one skeleton per clip: every bone keeps its length
        j = joints[clips == clip]
        for a, b in ((1, 2), (2, 3), (11, 12), (12, 13), (4, 5), (14, 15)):
            length = np.linalg.norm(j[:, a] - j[:, b], axis=-1)
            assert np.ptp(length) < 1e-6 and 0.15 < length[0] < 0.6


def test_studio_view_is_the_pinhole_projection_of_a_rigid_motion(bench, frames):
    _, joints = frames
    cam, px = bench.studio_view(joints, 3)
    assert np.allclose(px, bench.FOCAL * cam[..., :2] / cam[..., 2:] + bench.IMAGE / 2)
    assert (cam[..., 2] > 2.5).all() and (px > 0).all() and (px < bench.IMAGE).all()
    # a rotation and a translation: distances between joints are kept
    d0 = np.linalg.norm(joints[:, :, None] - joints[:, None], axis=-1)
    d1 = np.linalg.norm(cam[:, :, None] - cam[:, None], axis=-1)
    assert np.allclose(d0, d1, atol=1e-9)
    people = bench.exemplars([str(i) for i in range(len(px))], px)
    truth = bench.truth49(cam)
    assert np.allclose(bench.by_name(truth, truth), 0.0, atol=1e-6)
    assert all(e.image_size == (bench.IMAGE, bench.IMAGE) for e in people)


def test_auto_reads_capture_labels_and_beats_smplify(bench, frames, body, monkeypatch):
    from eft.fitting import exemplar_batch, fit_exemplars, fit_method
    from eft.models import load_regressor

    ids, joints = frames
    cam, px = bench.studio_view(joints, 0)
    people, truth = bench.exemplars(ids, px), bench.truth49(cam)
    model = load_regressor("default")
    pick, choice = bench.pilot(model, body, people)
    from eft.fitting.auto import OFFSETS_CAMERA_BELOW, PERSPECTIVE_LABELS_BELOW

    # motion capture: exact, its own joints measured; the camera refinement, off at
    # first for a skeleton the body cannot draw, is back on once they are taken out
    assert choice.capture and choice.skeleton_offsets
    assert choice.perspective_median >= PERSPECTIVE_LABELS_BELOW
    assert choice.offsets_camera_median < OFFSETS_CAMERA_BELOW
    assert pick == "open-prior-exact" and choice.perspective
    job = fit_method("eft", model, body, exemplar_batch(people), bench.auto_config(choice))
    api = fit_exemplars(people, model, body, progress=False)  # the default: "auto"
    smplify = fit_method("smplify", model, body, exemplar_batch(people))
    err = {name: float(bench.by_name(np.stack([f.keypoints3d for f in fits]), truth).mean())
           for name, fits in (("job", job), ("api", api), ("smplify", smplify))}
    assert err["api"] == pytest.approx(err["job"], abs=0.5)
    assert err["job"] < 0.9 * err["smplify"], err
    torch.testing.assert_close(torch.as_tensor(np.stack([f.betas for f in api])),
                               torch.as_tensor(np.stack([f.betas for f in job])),
                               rtol=0, atol=1e-3)
    # the kept offsets measured once more (CAPTURE_REFITS) put the written keypoints
    # nearer the capture's joints than the first measure alone
    import eft.fitting.auto as auto

    monkeypatch.setattr(auto, "CAPTURE_REFITS", 0)
    _, once = bench.pilot(model, body, people)
    assert once.offsets_camera_median == choice.offsets_camera_median  # same decisions
    first = fit_method("eft", model, body, exemplar_batch(people), bench.auto_config(once))
    err_once = float(bench.by_name(np.stack([f.keypoints3d for f in first]), truth).mean())
    assert err["job"] < err_once - 1.0, (err["job"], err_once)


def test_capture_labels_in_other_formats_are_probed_as_capture_and_beat_smplify(
        bench, frames, body):
    """Studio labels converted to COCO-17 slots (no spine, no jaw: not read as motion
    capture by their slots) are read so by the probe, and ``auto`` then beats SMPLify
    by over 10 % on them."""
    from eft.body.joints import SPIN49_INDEX
    from eft.fitting.auto import CAPTURE_PROBE_BELOW, capture_labels
    from eft.models import load_regressor

    ids, joints = frames
    cam, px = bench.studio_view(joints, 0)
    people, truth = bench.exemplars(ids, px), bench.truth49(cam)
    coco, lsp = bench.in_format(people, "coco17"), bench.in_format(people, "lsp14")
    assert all((e.keypoints[:, 2] > 0).sum() == 12 for e in coco)  # the limbs only
    assert all((e.keypoints[:, 2] > 0).sum() == 14 for e in lsp)
    np.testing.assert_array_equal(lsp[5].keypoints[SPIN49_INDEX["Neck (LSP)"]],
                                  people[5].keypoints[SPIN49_INDEX["Thorax (MPII)"]])
    np.testing.assert_array_equal(coco[5].keypoints[SPIN49_INDEX["Left Wrist"]],
                                  people[5].keypoints[SPIN49_INDEX["Left Wrist"]])
    model = load_regressor("default")
    pick, choice = bench.pilot(model, body, coco)
    assert not capture_labels(coco)
    assert choice.capture and choice.capture_probe_median < CAPTURE_PROBE_BELOW
    assert pick == "open-prior-exact" and choice.skeleton_offsets
    err = auto_and_smplify(bench, model, body, coco, choice, truth)
    assert err["auto"] < 0.9 * err["smplify"], err
    # H36M-17 labels with the odd joint left out (one person in 32 without an ankle, as
    # outside the image) are not motion capture by their slots, but by the probe
    gaps = [dataclasses.replace(e, keypoints=e.keypoints * np.where(
        np.arange(49)[:, None] == SPIN49_INDEX["Left Ankle"], 0.0, 1.0))
        if i % 32 == 0 else e for i, e in enumerate(people)]
    assert not capture_labels(gaps)
    _, gap_choice = bench.pilot(model, body, gaps)
    assert gap_choice.capture and gap_choice.capture_probe_median < CAPTURE_PROBE_BELOW


def test_the_capture_probe_leaves_annotators_complete_labels_alone(bench, body):
    """MPII's validation people with every joint labelled are complete labels too, and
    probed: their annotation scatter keeps them above the probe's threshold, so they
    keep the recipe for annotated labels."""
    from eft.data.readers import read_dataset
    from eft.fitting.auto import CAPTURE_PROBE_BELOW, complete_labels, pilot_indices
    from eft.models import load_regressor

    people = read_dataset("mpii", test_data_dir() / "mpii_2d" / "mpii_valid_tompson.h5"
                          ).exemplars
    full = [e for e in people if (e.keypoints[:, 2] > 0).sum() == 16]
    pilot = [full[int(i)] for i in pilot_indices([e.id for e in full], 96)]
    assert complete_labels(pilot)
    pick, choice = bench.pilot(load_regressor("default"), body, pilot)
    assert choice.capture_probe_median >= CAPTURE_PROBE_BELOW, choice
    assert not choice.capture and pick != "open-prior-exact"


def test_a_small_capture_set_measures_its_offsets_and_beats_smplify(bench, body):
    """A set of 16 frames (one of each clip) is read as motion capture, measures its
    skeleton offsets from its 16 pilot people (``CAPTURE_MIN_PEOPLE``), keeps them
    (they explain the labels through the cameras) and beats SMPLify by over 10 %."""
    from eft.fitting.auto import CAPTURE_MIN_PEOPLE, OFFSETS_CAMERA_BELOW
    from eft.models import load_regressor

    test_data_dir()
    ids, joints = bench.frames(16, 101)
    cam, px = bench.studio_view(joints, 101)
    people, truth = bench.exemplars(ids, px), bench.truth49(cam)
    model = load_regressor("default")
    pick, choice = bench.pilot(model, body, people)
    assert choice.pilot == 16 >= CAPTURE_MIN_PEOPLE and choice.capture
    assert choice.skeleton_offsets and choice.offsets_camera_median < OFFSETS_CAMERA_BELOW
    err = auto_and_smplify(bench, model, body, people, choice, truth)
    assert err["auto"] < 0.9 * err["smplify"], err


def test_offsets_read_from_annotation_noise_are_dropped(body):
    """H36M-17 labels of every joint at half of COCO's annotation noise read as motion
    capture by their slots, and a pilot of 16 measures offsets from their noise; with
    those out, the fit through the cameras still leaves the labels scattered, so the
    offsets are dropped and the camera stays off."""
    from eft.fitting.auto import OFFSETS_CAMERA_BELOW
    from eft.models import load_regressor
    from eft.synthetic.pose_bank import load_pose_bank

    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    recipe = load_script("bench_auto_recipe")
    val = recipe.synthetic_set(load_pose_bank().val().poses, body, "0.5", 16)
    people = recipe.restrict(list(val.exemplars()), "h36m17_spin")
    pick, choice = recipe.pilot(load_regressor("default"), body, people)
    assert choice.capture and pick == recipe.NO_CAMERA
    assert choice.offsets_camera_median >= OFFSETS_CAMERA_BELOW
    assert choice.skeleton_offsets == () and not choice.perspective


def test_an_eft_fit_job_on_capture_labels_in_coco_slots_probes_them(bench, frames, body,
                                                                   tmp_path):
    """End to end through a generic JSON file of the capture frames in COCO-17 slots
    (``eft fit``'s default, ``eft.preset: auto``): the job's pilot probes them as
    motion capture, the summary says so, config.yaml records the measured offsets, and
    the written keypoints beat SMPLify by name by over 10 %."""
    import h5py
    import yaml

    from eft.fitting import exemplar_batch, fit_method
    from eft.fitting.auto import CAPTURE_PROBE_BELOW
    from eft.models import load_regressor

    ids, joints = frames
    cam, px = bench.studio_view(joints, 0)
    people, truth = bench.in_format(bench.exemplars(ids, px), "coco17"), bench.truth49(cam)
    r, out = auto_job_on_generic_file(tmp_path, people, "coco17", 32,
                                      [{"image_size": [bench.IMAGE, bench.IMAGE]}] * len(people))
    assert r.summary.fitted == len(people)
    auto = r.summary.recipe_auto
    assert auto["capture"] and auto["capture_probe_median"] < CAPTURE_PROBE_BELOW
    assert "(motion-capture labels: " in r.summary.format()
    eft = yaml.safe_load((out / "config.yaml").read_text())["eft"]
    assert {row[0] for row in eft["skeleton_offsets"]} >= {"Right Hip", "Left Hip"}
    with h5py.File(out / "fits.h5") as f:
        order = [int(x.decode().rsplit("p", 1)[1]) for x in f["fits/fit_id"][:]]
        written = f["fits/keypoints3d"][:]
    job = float(bench.by_name(written, truth[order]).mean())
    smplify = fit_method("smplify", load_regressor("default"), body, exemplar_batch(people))
    base = float(bench.by_name(np.stack([f.keypoints3d for f in smplify]), truth).mean())
    assert job < 0.9 * base, (job, base)


def test_a_pilot_mixing_capture_rigs_warns_and_one_rig_does_not(bench, body, caplog):
    """256 frames: the one clip on another rig (CMU-31, 16 frames among DAZ-43 clips)
    stands out from the offsets the pilot measures, and the job warns of mixed rigs;
    the DAZ-43 frames alone (one rig) put nobody that far, and no warning."""
    from eft.fitting.auto import MIXED_RIGS_SHARE
    from eft.models import load_regressor

    test_data_dir()
    model = load_regressor("default")
    ids, joints = bench.frames(256, 2)
    cam, px = bench.studio_view(joints, 2)
    people = bench.exemplars(ids, px)
    one = [e for e in people if e.id.startswith("cmu_daz43/")]
    assert 0 < len(people) - len(one) < 32
    with caplog.at_level("WARNING", logger="eft.fitting"):
        _, mixed = bench.pilot(model, body, people)
    assert mixed.far_from_skeleton > MIXED_RIGS_SHARE and "mix capture rigs" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="eft.fitting"):
        _, choice = bench.pilot(model, body, one)
    assert choice.capture and choice.skeleton_offsets
    assert choice.far_from_skeleton <= MIXED_RIGS_SHARE
    assert "mix capture rigs" not in caplog.text
