"""OpenPose reader on a folder of *_keypoints.json files written here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import ReaderError, read_dataset, read_openpose

IDX = J.SPIN49_INDEX
# OpenPose's own joint orders (from its output documentation).
BODY25 = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
          "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
          "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]
COCO18 = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
          "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar"]
GT_TWIN = {"Nose": "Nose", "Neck": "Neck (LSP)", "RShoulder": "Right Shoulder",
           "RElbow": "Right Elbow", "RWrist": "Right Wrist", "LShoulder": "Left Shoulder",
           "LElbow": "Left Elbow", "LWrist": "Left Wrist", "RHip": "Right Hip",
           "RKnee": "Right Knee", "RAnkle": "Right Ankle", "LHip": "Left Hip",
           "LKnee": "Left Knee", "LAnkle": "Left Ankle", "REye": "Right Eye",
           "LEye": "Left Eye", "REar": "Right Ear", "LEar": "Left Ear"}


def _person(n, seed):
    rng = np.random.default_rng(seed)
    k = np.concatenate([rng.uniform(10, 400, (n, 2)), rng.uniform(0.3, 0.95, (n, 1))], axis=1)
    return k.round(3)


def _write(path, people):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": p.reshape(-1).tolist(),
         "face_keypoints_2d": [], "hand_left_keypoints_2d": []} for p in people]}))


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "json"
    a0, a1 = _person(25, 0), _person(25, 1)
    a1[[4, 7]] = [0, 0, 0]  # undetected wrists
    a1[10, 2] = 0.05  # below the threshold
    b0 = _person(18, 2)
    tiny = np.zeros((25, 3))
    tiny[:3] = _person(3, 3)
    _write(out / "frame_000000_keypoints.json", [a0, a1, tiny])
    _write(out / "clip" / "b_keypoints.json", [b0])
    _write(out / "nomatch_keypoints.json", [a0])
    _write(out / "empty_keypoints.json", [])
    (out / "bad_keypoints.json").write_text("{not json")
    imgs = tmp_path / "images"
    (imgs / "clip").mkdir(parents=True)
    for name in ("frame_000000.png", "clip/b.jpg", "empty.jpg", "bad.jpg"):
        (imgs / name).write_bytes(b"")
    return out, imgs, (a0, a1, b0)


def test_multi_person_folder(folder):
    out, imgs, (a0, a1, b0) = folder
    res = read_openpose(out, imgs)
    assert [e.id for e in res.exemplars] == [
        "openpose/clip/b/0", "openpose/frame_000000/0", "openpose/frame_000000/1"]
    assert {(s.id, s.reason) for s in res.skipped} == {
        ("openpose/frame_000000/2", "too_few_keypoints"), ("openpose/nomatch/0", "no_image"),
        ("openpose/bad", "bad_annotation")}
    b, e0, e1 = res.exemplars
    assert b.source == "openpose18" and e0.source == "openpose25"
    assert b.image_path == str(imgs / "clip" / "b.jpg")
    assert e0.image_path == str(imgs / "frame_000000.png")
    for k, name in enumerate(BODY25):  # OpenPose slots, confidences kept
        np.testing.assert_allclose(e0.keypoints[IDX["OP " + name]], a0[k])
        if name in GT_TWIN:  # and their GT twins, so EFT's default weights use them
            np.testing.assert_allclose(e0.keypoints[IDX[GT_TWIN[name]]], a0[k])
    for k, name in enumerate(COCO18):
        np.testing.assert_allclose(b.keypoints[IDX["OP " + name]], b0[k])
    assert b.keypoints[IDX["OP MidHip"], 2] == 0 and b.keypoints[IDX["OP LHeel"], 2] == 0
    assert e0.keypoints[IDX["Top of Head (LSP)"], 2] == 0  # no OpenPose twin
    # thresholded and undetected joints are dropped in both slots
    for name in ("RWrist", "LWrist", "RKnee"):
        assert e1.keypoints[IDX["OP " + name], 2] == 0
        assert e1.keypoints[IDX[GT_TWIN[name]], 2] == 0
    # the crop is the box of the kept keypoints
    kept = a0[a0[:, 2] >= 0.1]
    lo, hi = kept[:, :2].min(0), kept[:, :2].max(0)
    np.testing.assert_allclose(e0.center, (lo + hi) / 2)
    assert e0.scale == pytest.approx(1.2 * (hi - lo).max() / 200)


def test_options(folder):
    out, imgs, (a0, a1, b0) = folder
    strict = read_openpose(out, imgs, conf_threshold=0.5)
    e = next(x for x in strict.exemplars if x.id == "openpose/frame_000000/0")
    assert np.all((e.keypoints[:25, 2] == 0) | (e.keypoints[:25, 2] >= 0.5))
    assert (e.keypoints[:25, 2] > 0).sum() == (a0[:, 2] >= 0.5).sum()
    binar = read_dataset("openpose", out, imgs, binarize=True).exemplars[0]
    assert set(np.unique(binar.keypoints[:, 2])) <= {0.0, 1.0}
    op_only = read_openpose(out, imgs, gt_slots=False).exemplars[0]
    assert op_only.keypoints[25:].sum() == 0 and (op_only.keypoints[:25, 2] > 0).sum() == 18
    single = read_openpose(out / "clip" / "b_keypoints.json", imgs / "clip")
    assert [e.id for e in single.exemplars] == ["openpose/b/0"]
    with pytest.raises(ReaderError, match="no such"):
        read_openpose(out / "missing")
    with pytest.raises(ReaderError, match="no OpenPose"):
        read_openpose(imgs)


def test_wrong_layout_and_old_key(tmp_path):
    _write(tmp_path / "x_keypoints.json", [np.ones((15, 3))])
    (tmp_path / "x.jpg").write_bytes(b"")
    old = _person(18, 4)
    (tmp_path / "y_keypoints.json").write_text(json.dumps({"people": [
        {"pose_keypoints": old.reshape(-1).tolist()}, {"face_keypoints_2d": []}]}))
    (tmp_path / "y.jpg").write_bytes(b"")
    res = read_openpose(tmp_path)
    assert [(s.id, s.reason) for s in res.skipped] == [
        ("openpose/x/0", "bad_annotation"), ("openpose/y/1", "bad_annotation")]
    assert [e.id for e in res.exemplars] == ["openpose/y/0"]
    np.testing.assert_allclose(res.exemplars[0].keypoints[IDX["OP LEar"]], old[17])


def test_the_shipped_prior_reads_openpose_confidences_as_presence(folder):
    """OpenPose's confidences (kept by default) weigh EFT's 2D loss but feed the keypoint
    prior as present / missing, the 0/1 it was trained on: its guess from them equals its
    guess from the binarized read."""
    from eft.body import BodyModel
    from eft.fitting import exemplar_batch, fit_method
    from eft.models import load_regressor

    out, imgs, _ = folder
    soft = read_dataset("openpose", out, imgs).exemplars
    hard = read_dataset("openpose", out, imgs, binarize=True).exemplars
    assert any(0 < c < 1 for e in soft for c in e.keypoints[:, 2])
    model, body = load_regressor("default"), BodyModel.load()
    a = fit_method("regressor", model, body, exemplar_batch(soft), None)
    b = fit_method("regressor", model, body, exemplar_batch(hard), None)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.rotmat, fb.rotmat)
        np.testing.assert_array_equal(fa.betas, fb.betas)


def test_a_job_of_detector_confidences_records_how_the_prior_reads_them(folder, tmp_path):
    """A job feeding the shipped prior confidences between 0 and 1 records that the prior
    reads them as presence (keypoint_input in its identity): a folder fitted before, when
    it read their value, is not resumed, and the message says why; a binarized read of
    the same files (0/1 labels, unchanged by the fix) records nothing."""
    from eft.jobs import config_from_dict, run_job
    from eft.jobs.store import JobStoreError, Manifest

    out, imgs, _ = folder

    def job(where, **options):
        return config_from_dict({
            "datasets": [{"kind": "openpose", "path": str(out), "image_root": str(imgs),
                          "options": options}],
            "eft": {"preset": "open-prior", "max_iters": 2},
            "output": {"dir": str(tmp_path / where), "formats": ["h5"]},
            "check_images": False, "devices": ["cpu"]})

    soft = run_job(job("soft"), progress=False)
    assert soft.manifest.identity["keypoint_input"] == "presence"
    hard = run_job(job("hard", binarize=True), progress=False)
    assert "keypoint_input" not in hard.manifest.identity
    # a folder written before the change: the same job without the key
    m = Manifest.load(soft.output_dir)
    m.identity = {k: v for k, v in m.identity.items() if k != "keypoint_input"}
    from eft.jobs.config import hash_dict

    m.config_hash = hash_dict({"fit": job("soft").fit_dict(), "identity": m.identity})
    m.save(soft.output_dir)
    with pytest.raises(JobStoreError, match=r"keypoint_input.*reads them as present.*"
                                            r"refit such results with --force"):
        run_job(job("soft"), progress=False)
    again = run_job(job("soft"), force=True, progress=False)
    assert again.summary.fitted_this_run == again.summary.fitted
