"""MPII reader: the real JSON sample, and official-layout .mat files written here."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import ReaderError, keypoint_box_center_scale, read_mpii
from tests.helpers import require_module

scipy_io = require_module("scipy.io", "pip install -e '.[datasets]'", module_level=True)

IDX = J.SPIN49_INDEX
# MPII joint order (the official ids 0..15), written out from the MPII documentation.
MPII_NAMES_TO_SPIN = {
    0: "Right Ankle", 1: "Right Knee", 2: "Right Hip", 3: "Left Hip", 4: "Left Knee",
    5: "Left Ankle", 6: "Pelvis (MPII)", 7: "Thorax (MPII)", 8: "Neck (LSP)",
    9: "Top of Head (LSP)", 10: "Right Wrist", 11: "Right Elbow", 12: "Right Shoulder",
    13: "Left Shoulder", 14: "Left Elbow", 15: "Left Wrist",
}


@pytest.fixture(scope="module")
def sample(shared_data):
    path = shared_data / "mpii_sample" / "test_mpii.json"
    return path, json.loads(path.read_text())


def test_json_sample(sample):
    path, raw = sample
    res = read_mpii(path)
    assert len(res) == len(raw) == 5 and res.skipped == []
    for e, r in zip(res.exemplars, raw, strict=True):
        stem = r["image"].rsplit(".", 1)[0]
        assert e.id == f"mpii/{stem}/0" and e.source == "mpii16"
        assert e.image_path.endswith(r["image"])
        joints = np.asarray(r["joints"])
        for k, name in MPII_NAMES_TO_SPIN.items():  # 1-based file -> 0-based pixels
            want = [*(joints[k] - 1), 1.0] if r["joints_vis"][k] else [0, 0, 0]
            np.testing.assert_allclose(e.keypoints[IDX[name]], want)
        np.testing.assert_allclose(e.center, np.asarray(r["center"]) - 1)
        assert e.scale == pytest.approx(r["scale"])  # SPIN: the file's scale as given
        assert e.keypoints[:25].sum() == 0
        assert (e.keypoints[25:, 2] > 0).sum() == sum(r["joints_vis"])
    assert [sum(r["joints_vis"]) for r in raw] == [16, 16, 14, 14, 16]  # ankles missing


def test_json_options(sample):
    path, raw = sample
    exact = read_mpii(path, one_based=False).exemplars[1]
    np.testing.assert_allclose(exact.center, raw[1]["center"])
    np.testing.assert_allclose(exact.keypoints[IDX["Right Ankle"], :2], raw[1]["joints"][0])
    box = read_mpii(path, crop="keypoints", rescale=1.3).exemplars[1]
    j = np.asarray(raw[1]["joints"]) - 1
    w, h = j.max(0) - j.min(0)
    np.testing.assert_allclose(box.center, (j.max(0) + j.min(0)) / 2)
    assert box.scale == pytest.approx(1.3 * max(w, h) / 200)
    assert box.meta["crop_from"] == "keypoints"
    strict = read_mpii(path, min_keypoints=17)
    assert len(strict) == 0 and strict.skipped_by_reason() == {"too_few_keypoints": 5}
    with pytest.raises(ReaderError, match="crop must be"):
        read_mpii(path, crop="nope")


def test_json_bad_entries(tmp_path, sample):
    _, raw = sample
    entries = [dict(raw[0]), dict(raw[0]), {"image": "x.jpg", "joints": [[1, 2]]},
               {"joints": []}, dict(raw[1], joints_vis=[0] * 16)]
    entries[1]["joints"] = [[float("nan"), 1.0]] + raw[0]["joints"][1:]
    entries[4]["image"] = raw[0]["image"]  # a third person of the same image
    p = tmp_path / "x.json"
    p.write_text(json.dumps(entries))
    res = read_mpii(p)
    stem = raw[0]["image"][:-4]
    assert [e.id for e in res.exemplars] == [f"mpii/{stem}/0"]
    assert {(s.id, s.reason) for s in res.skipped} == {
        (f"mpii/{stem}/1", "bad_keypoints"), ("mpii/x/0", "bad_annotation"),
        ("mpii/#3", "bad_annotation"), (f"mpii/{stem}/2", "no_keypoints")}
    p.write_text('{"not": "a list"}')
    with pytest.raises(ReaderError, match="not an MPII JSON"):
        read_mpii(p)
    with pytest.raises(ReaderError, match="no such"):
        read_mpii(tmp_path / "missing.json")
    with pytest.raises(ReaderError, match=r"\.json, \.mat, \.h5 or \.csv"):
        read_mpii(tmp_path / "x.txt")


# --- official .mat layout -------------------------------------------------------------

def _structs(records: list[dict]) -> np.ndarray:
    """A 1 x N MATLAB struct array (savemat writes structured object arrays as structs)."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    arr = np.zeros((1, len(records)), dtype=[(k, object) for k in keys])
    for i, r in enumerate(records):
        for k in keys:
            arr[0, i][k] = r.get(k, np.zeros((0, 0)))
    return arr


def _rect(joints, vis, center, scale, head=(10, 20, 30, 40)):
    points = [{"id": k, "x": float(x), "y": float(y), "is_visible": v}
              for k, ((x, y), v) in enumerate(zip(joints, vis, strict=True)) if x is not None]
    r = {"x1": head[0], "y1": head[1], "x2": head[2], "y2": head[3], "scale": scale,
         "objpos": _structs([{"x": center[0], "y": center[1]}])}
    if points:
        r["annopoints"] = _structs([{"point": _structs(points)}])
    return r


def _write_release(path, annolist, img_train, single_person):
    cells = np.empty((len(single_person), 1), dtype=object)
    for i, s in enumerate(single_person):
        cells[i, 0] = np.asarray(s, dtype=float)
    release = _structs([{"annolist": _structs(annolist),
                         "img_train": np.asarray([img_train], dtype=float),
                         "single_person": cells, "version": "12"}])
    scipy_io.savemat(str(path), {"RELEASE": release})


def test_mat_matches_json_sample(tmp_path, sample):
    """The JSON sample rewritten in the official .mat layout reads to the same people."""
    path, raw = sample
    annolist = []
    for r in raw:
        joints = [tuple(j) if v else (None, None)
                  for j, v in zip(r["joints"], r["joints_vis"], strict=True)]
        rect = _rect(joints, [1] * 16, r["center"], r["scale"])
        annolist.append({"image": _structs([{"name": r["image"]}]),
                         "annorect": _structs([rect])})
    mat = tmp_path / "annotations" / "mpii_human_pose_v1_u12_1.mat"
    mat.parent.mkdir()
    _write_release(mat, annolist, [1] * len(raw), [[1]] * len(raw))
    a = read_mpii(path).exemplars
    b = read_mpii(mat, image_root=path.parent).exemplars
    assert [e.id for e in a] == [e.id for e in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.keypoints, y.keypoints)
        np.testing.assert_allclose(x.center, y.center)
        assert x.scale == pytest.approx(y.scale) and x.image_path == y.image_path
    assert b[0].meta["head_box"] == [9, 19, 29, 39] and b[0].meta["single_person"]


def test_mat_layout_details(tmp_path):
    rng = np.random.default_rng(0)
    full = [tuple(p) for p in rng.uniform(50, 400, (16, 2)).round(1)]
    four = full[:4] + [(None, None)] * 12
    some = [full[k] if k in (0, 1, 2, 3, 4, 5, 8, 9) else (None, None) for k in range(16)]
    vis_mixed = ["1" if k % 2 else np.zeros((0, 0)) for k in range(16)]  # official quirks
    annolist = [
        {"image": _structs([{"name": "000000001.jpg"}]),
         "annorect": _structs([_rect(full, [1] * 16, (200, 210), 2.5),
                               _rect(four, [1] * 16, (100, 110), 1.0)])},
        {"image": _structs([{"name": "000000002.jpg"}]),  # one rect: squeezed to a struct
         "annorect": _structs([_rect(some, [0] * 16, (-1, -1), 1.5)])},
        {"image": _structs([{"name": "000000003.jpg"}]),  # a test image: no points
         "annorect": _structs([{"scale": 2.0, "objpos": _structs([{"x": 5, "y": 6}])}])},
        {"image": _structs([{"name": "000000004.jpg"}]),
         "annorect": _structs([_rect(full, vis_mixed, (300, 310), 3.0)])},
    ]
    mat = tmp_path / "release.mat"
    _write_release(mat, annolist, [1, 1, 0, 1], [[1, 2], 1, [], []])

    res = read_mpii(mat)
    assert [e.id for e in res.exemplars] == ["mpii/000000001/0", "mpii/000000002/0",
                                             "mpii/000000004/0"]
    assert res.skipped_by_reason() == {"too_few_keypoints": 1}
    assert res.skipped[0].id == "mpii/000000001/1"
    e1, e2, e4 = res.exemplars
    for k, name in MPII_NAMES_TO_SPIN.items():
        np.testing.assert_allclose(e1.keypoints[IDX[name]], [full[k][0] - 1, full[k][1] - 1, 1])
    np.testing.assert_allclose(e1.center, [199, 209])
    assert e1.scale == 2.5 and e1.image_path == str(tmp_path / "000000001.jpg")
    # occluded points keep confidence 1; missing ones are 0; -1 objpos -> keypoint box
    assert (e2.keypoints[25:, 2] > 0).sum() == 8 and e2.meta["is_visible"][0] == 0
    assert e2.keypoints[IDX["Pelvis (MPII)"], 2] == 0
    assert e2.meta["crop_from"] == "keypoints"
    c, s = keypoint_box_center_scale(e2.keypoints)
    np.testing.assert_allclose(e2.center, c)
    assert e2.scale == pytest.approx(s)
    assert e4.meta["is_visible"] == [1] * 16  # '1' strings and empty flags
    assert read_mpii(mat, split="test").skipped_by_reason() == {"no_keypoints": 1}
    assert len(read_mpii(mat, split="all")) == 3
    single = read_mpii(mat, single_person_only=True)
    assert [e.id for e in single.exemplars] == ["mpii/000000001/0", "mpii/000000002/0"]


def test_mat_errors(tmp_path, monkeypatch):
    bad = tmp_path / "bad.mat"
    scipy_io.savemat(str(bad), {"joints": np.zeros((3, 14, 2))})
    with pytest.raises(ReaderError, match="RELEASE.annolist"):
        read_mpii(bad)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"this is not matlab" * 20)
    with pytest.raises(ReaderError, match="not a readable .mat"):
        read_mpii(junk)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ReaderError, match=r"pip install eft\[datasets\]"):
        read_mpii(bad)
