"""Generic JSON / CSV reader: the documented layouts, written here."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import ReaderError, read_dataset, read_generic

IDX = J.SPIN49_INDEX
COCO = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]


def _kps(k, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(10, 300, (k, 2)).round(2), np.ones((k, 1))], axis=1)


@pytest.fixture
def people():
    c = _kps(17, 0)
    c[3, 2] = 0  # a missing ear
    c[5, 2] = 2  # COCO's "visible" flag reads as confidence 1
    lsp = _kps(14, 1)
    return [
        {"image": "imgs/a.jpg", "person_id": "a-0", "keypoint_format": "coco17",
         "keypoints": c.reshape(-1).tolist(), "bbox": [10, 20, 100, 50]},
        {"image": "imgs/a.jpg", "keypoint_format": "lsp14",
         "keypoints": lsp[:, :2].reshape(-1).tolist()},  # x, y only; no id, no bbox
        {"image": "/abs/b.png", "person_id": 7, "keypoint_format": "mpii16",
         "keypoints": _kps(16, 2).reshape(-1).tolist()},
    ], c, lsp


def _check(res, c, lsp, root):
    assert [e.id for e in res.exemplars] == ["generic/a-0", "generic/a/1", "generic/7"]
    e, f, g = res.exemplars
    assert e.image_path == str(root / "imgs/a.jpg") and g.image_path == "/abs/b.png"
    assert e.source == "coco17" and f.source == "lsp14" and g.source == "mpii16"
    for k, name in enumerate(COCO):
        spin = name.replace("_", " ").title()
        want = [*c[k, :2], min(c[k, 2], 1.0)]
        np.testing.assert_allclose(e.keypoints[IDX[spin]], want)
    np.testing.assert_allclose(e.center, [60, 45])
    assert e.scale == pytest.approx(1.2 * 100 / 200)
    np.testing.assert_allclose(f.keypoints[IDX["Top of Head (LSP)"]], [*lsp[13, :2], 1.0])
    lo, hi = lsp[:, :2].min(0), lsp[:, :2].max(0)
    np.testing.assert_allclose(f.center, (lo + hi) / 2)


def test_json(tmp_path, people):
    recs, c, lsp = people
    p = tmp_path / "people.json"
    p.write_text(json.dumps({"people": recs}))
    _check(read_generic(p), c, lsp, tmp_path)
    p.write_text(json.dumps(recs))  # a bare list works too
    _check(read_dataset("generic", p), c, lsp, tmp_path)


def test_csv_equals_json(tmp_path, people):
    recs, c, lsp = people
    p = tmp_path / "people.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["keypoints", "image", "bbox", "keypoint_format", "person_id"])
        for r in recs:
            kp = " ".join(f"{v:g}" for v in r["keypoints"])
            box = " ".join(str(v) for v in r.get("bbox", []))
            w.writerow([kp, r["image"], box, r["keypoint_format"], r.get("person_id", "")])
    res = read_generic(p)
    _check(res, c, lsp, tmp_path)
    j = tmp_path / "people.json"
    j.write_text(json.dumps(recs))
    for a, b in zip(res.exemplars, read_generic(j).exemplars, strict=True):
        np.testing.assert_allclose(a.keypoints, b.keypoints)
        assert a.id == b.id and a.scale == pytest.approx(b.scale)


def test_bad_records(tmp_path):
    good = _kps(17, 3).reshape(-1).tolist()
    nan = list(good)
    nan[0] = float("nan")
    recs = [
        {"image": "a.jpg", "person_id": "x", "keypoints": good},  # file-wide format
        {"image": "a.jpg", "person_id": "x", "keypoints": good},
        {"image": "a.jpg", "person_id": "u", "keypoint_format": "nope", "keypoints": good},
        {"image": "a.jpg", "person_id": "n", "keypoints": good[:-3]},
        {"image": "a.jpg", "person_id": "z", "keypoints": good, "bbox": [1, 2, 0, 5]},
        {"image": "a.jpg", "person_id": "q", "keypoints": nan},
        {"image": "a.jpg", "person_id": "f", "keypoints": [0] * 51},
        {"person_id": "i", "keypoints": good},
        {"image": "a.jpg", "person_id": "s", "keypoint_format": "spin49",
         "keypoints": J.to_spin49(np.reshape(good, (17, 3)), "coco17").reshape(-1).tolist()},
    ]
    p = tmp_path / "g.json"
    p.write_text(json.dumps({"keypoint_format": "coco17", "people": recs}))
    res = read_generic(p)
    assert [e.id for e in res.exemplars] == ["generic/x", "generic/s"]
    np.testing.assert_allclose(res.exemplars[0].keypoints, res.exemplars[1].keypoints)
    assert [(s.id, s.reason) for s in res.skipped] == [
        ("generic/x", "duplicate_id"), ("generic/u", "bad_annotation"),
        ("generic/n", "bad_annotation"), ("generic/z", "bad_bbox"),
        ("generic/q", "bad_keypoints"), ("generic/f", "no_keypoints"),
        ("generic/#7", "bad_annotation")]
    assert "needs 51" in res.skipped[2].detail
    p.write_text(json.dumps({"people": recs[:1]}))  # no format anywhere
    assert read_generic(p).skipped_by_reason() == {"bad_annotation": 1}
    assert len(read_generic(p, keypoint_format="coco17")) == 1


def test_bad_files(tmp_path):
    with pytest.raises(ReaderError, match="no such"):
        read_generic(tmp_path / "x.json")
    p = tmp_path / "x.csv"
    p.write_text("image,kps\na.jpg,1 2 3\n")
    with pytest.raises(ReaderError, match="lacks column"):
        read_generic(p)
    p = tmp_path / "x.json"
    p.write_text('{"people": 3}')
    with pytest.raises(ReaderError, match="expected a list"):
        read_generic(p)
    p = tmp_path / "x.txt"
    p.write_text("")
    with pytest.raises(ReaderError, match=".json or .csv"):
        read_generic(p)


def test_image_size_and_focal(tmp_path):
    """``image_size`` and ``focal`` are read when given; otherwise the size comes from
    the image file's header, and stays unknown without a readable file."""
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (321, 123)).save(tmp_path / "imgs" / "real.png")
    kp = _kps(17, 3).reshape(-1).tolist()
    recs = [
        {"image": "imgs/given.jpg", "keypoint_format": "coco17", "keypoints": kp,
         "image_size": [1000, 1002], "focal": 1145.5},
        {"image": "imgs/real.png", "keypoint_format": "coco17", "keypoints": kp},
        {"image": "imgs/missing.jpg", "keypoint_format": "coco17", "keypoints": kp},
        {"image": "imgs/bad.jpg", "keypoint_format": "coco17", "keypoints": kp,
         "image_size": [1000]},
        {"image": "imgs/badf.jpg", "keypoint_format": "coco17", "keypoints": kp,
         "focal": -3},
    ]
    (tmp_path / "p.json").write_text(json.dumps(recs))
    res = read_generic(tmp_path / "p.json")
    by = {e.meta["imageName"]: e for e in res.exemplars}
    assert by["imgs/given.jpg"].image_size == (1000, 1002)
    assert by["imgs/given.jpg"].meta["focal"] == 1145.5
    assert by["imgs/real.png"].image_size == (321, 123) and "focal" not in by["imgs/real.png"].meta
    assert by["imgs/missing.jpg"].image_size is None
    reasons = {s.id: (s.reason, s.detail) for s in res.skipped}
    assert reasons["generic/bad/0"][0] == "bad_annotation" and "image_size" in \
        reasons["generic/bad/0"][1]
    assert "focal" in reasons["generic/badf/0"][1]
    # the CSV layout takes the same columns
    with open(tmp_path / "p.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "keypoint_format", "keypoints", "image_size", "focal"])
        w.writerow(["imgs/given.jpg", "coco17", " ".join(map(str, kp)), "1000 1002", "1145.5"])
        w.writerow(["imgs/real.png", "coco17", " ".join(map(str, kp)), "", ""])
    csv_res = read_generic(tmp_path / "p.csv")
    assert [(e.image_size, e.meta.get("focal")) for e in csv_res.exemplars] == [
        ((1000, 1002), 1145.5), ((321, 123), None)]


@pytest.mark.parametrize("fmt, names", [("openpose25", J.OPENPOSE25_RAW_NAMES),
                                        ("openpose18", J.OPENPOSE18_NAMES)])
def test_openpose_format_records_fill_the_gt_slots_eft_fits(tmp_path, fmt, names):
    """A generic record in an OpenPose order is fitted like the OpenPose reader's: each
    joint with a GT twin (not MidHip or the feet) lands in that GT slot too."""
    kps = _kps(len(names), 5)
    path = tmp_path / "op.json"
    path.write_text(json.dumps({"keypoint_format": fmt, "people": [
        {"image": "a.jpg", "keypoints": kps.reshape(-1).tolist()}]}))
    res = read_generic(path)
    assert not res.skipped and len(res.exemplars) == 1
    k49 = np.asarray(res.exemplars[0].keypoints)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(k49[IDX["OP " + name]], kps[i])
        if name in J.OPENPOSE18_TO_GT:
            np.testing.assert_array_equal(k49[IDX[J.OPENPOSE18_TO_GT[name]]], kps[i])
    assert int((k49[25:, 2] > 0).sum()) == 18  # GT twins of the 18 OpenPose-18 joints
