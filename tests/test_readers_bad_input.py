"""Readers on bad input, files written here: a bad person is skipped with a reason, a bad
file is one clear ReaderError; never a traceback from deep inside a reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import (
    ReaderError,
    base,
    keypoint_skip_reason,
    read_coco,
    read_generic,
    read_humandata_keypoints,
    read_mpii,
    read_posetrack,
)
from tests.helpers import require_module

h5py = require_module("h5py", "pip install -e '.[datasets]'", module_level=True)

IDX = J.SPIN49_INDEX


def _person17(seed: int = 0, x0: float = 50.0) -> list[float]:
    """17 COCO keypoints (x, y, v=2) spread over a 100 x 200 px person, flat."""
    rng = np.random.default_rng(seed)
    xy = np.stack([rng.uniform(x0, x0 + 100, 17), rng.uniform(50, 250, 17)], axis=1)
    return np.concatenate([xy.round(1), np.full((17, 1), 2.0)], axis=1).reshape(-1).tolist()


def _coco(tmp_path, anns: list, *, images=None, categories=None, name="c.json"):
    """A COCO person_keypoints file with these annotations (image 1 by default)."""
    doc = {"images": images if images is not None else
           [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
           "categories": categories if categories is not None else
           [{"id": 1, "name": "person", "keypoints": list(J.COCO17_NAMES)}],
           "annotations": anns}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _ann(aid: int, **kw) -> dict:
    ann = {"id": aid, "image_id": 1, "category_id": 1, "iscrowd": 0,
           "keypoints": _person17(aid), "bbox": [40, 40, 120, 220]}
    ann.update(kw)
    return ann


def _reasons(res) -> dict[str, tuple[str, str]]:
    return {s.id: (s.reason, s.detail) for s in res.skipped}


# --- 1. every labelled keypoint on one point ------------------------------------------


def _spin49(points: dict[str, tuple[float, float]]) -> np.ndarray:
    k = np.zeros((49, 3))
    for name, (x, y) in points.items():
        k[IDX[name]] = (x, y, 1.0)
    return k


GT6 = ["Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle"]


def test_shared_rule_skips_keypoints_on_one_point():
    one = _spin49({n: (100.0, 100.0) for n in GT6})
    assert keypoint_skip_reason(one, 6)[0] == "bad_keypoints"
    assert "one point" in keypoint_skip_reason(one, 6)[1]
    half = _spin49({n: (100.0 + 0.1 * i, 100.0) for i, n in enumerate(GT6)})  # 0.5 px
    assert keypoint_skip_reason(half, 6)[0] == "bad_keypoints"
    wide = _spin49({n: (100.0 + 0.2 * i, 100.0) for i, n in enumerate(GT6)})  # 1 px
    assert keypoint_skip_reason(wide, 6) is None
    lone = _spin49({"Right Ankle": (5.0, 5.0)})  # one keypoint: too few, not "bad"
    assert keypoint_skip_reason(lone, 6) == ("too_few_keypoints", "1 < 6")
    assert keypoint_skip_reason(lone, 1) is None
    pair = _spin49({"Right Ankle": (5.0, 5.0), "Left Ankle": (5.0, 5.0)})
    assert keypoint_skip_reason(pair, 6) == ("too_few_keypoints", "2 < 6")  # counts first
    assert keypoint_skip_reason(pair, 2)[0] == "bad_keypoints"


def test_coco_person_on_one_pixel_is_skipped(tmp_path):
    dot = [v for _ in range(17) for v in (100.0, 100.0, 2.0)]
    res = read_coco(_coco(tmp_path, [_ann(1), _ann(2, keypoints=dot, bbox=[90, 90, 20, 20])]))
    assert [e.id for e in res.exemplars] == ["coco/1"]
    reason, detail = _reasons(res)["coco/2"]
    assert reason == "bad_keypoints" and "one point" in detail


def _mpii_csv(tmp_path, rows: list[dict], *, drop: str | None = None, name="m.csv"):
    """An MPII CSV (the real file's header) with these rows: ``{"joints": (16, 2),
    "Scale": s}``; ``drop`` leaves out that column."""
    joints = [n.replace("right_", "r ").replace("left_", "l ").replace("_", " ")
              for n in J.MPII16_NAMES]
    header = ["ID", "NAME", *[f"{j}_{a}" for j in joints for a in "XY"], "Scale",
              "Activity", "Category"]
    lines = []
    for i, r in enumerate(rows):
        xy = np.asarray(r["joints"], dtype=np.float64).reshape(-1)
        lines.append([str(i + 1), f"{i:09d}.jpg", *[repr(float(v)) for v in xy],
                      str(r["Scale"]), "walking", "sports"])
    keep = [c for c, h in enumerate(header) if h != drop]
    text = "\n".join(",".join(row[c] for c in keep) for row in [header, *lines]) + "\n"
    path = tmp_path / name
    path.write_text(text)
    return path


def _mpii_joints(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(100, 200, 16), rng.uniform(100, 400, 16)], axis=1).round(1)


def test_mpii_csv_person_on_one_pixel_is_skipped(tmp_path):
    path = _mpii_csv(tmp_path, [{"joints": _mpii_joints(), "Scale": 1.5},
                                {"joints": np.full((16, 2), 100.0), "Scale": 1.5}])
    res = read_mpii(path)
    assert [e.id for e in res.exemplars] == ["mpii/000000000/0"]
    reason, detail = _reasons(res)["mpii/000000001/0"]
    assert reason == "bad_keypoints" and "one point" in detail


# --- 2. absurd boxes, crops, image sizes and focal lengths ----------------------------


def test_shared_bounds_on_boxes_crops_and_cameras():
    boxes = np.array([[10, 10, 100, 200], [10, 10, 1e300, 1e300], [0, 0, 1e12, 1e12],
                      [-2e6, 0, 10, 10], [0, 0, 0, 10], [np.nan, 0, 10, 10]])
    got = base.box_problems(boxes)
    assert got[0] is None and all(isinstance(g, str) and g for g in got[1:])
    assert f"{base.MAX_ABS_KEYPOINT_PX:g}" in got[1]
    centers = np.array([[100, 100], [100, 100], [1e7, 0], [100, 100], [100, 100]])
    crops = base.crop_problems(centers, np.array([1.2, 6e297, 1.2, 1e-5, np.inf]))
    assert crops[0] is None and all(isinstance(g, str) and g for g in crops[1:])
    assert base.camera_problem((640, 480), 1000.0) is None
    assert base.camera_problem(None, None) is None
    for size, focal in [((1e20, 1e20), None), ((0.4, 0.4), None), (None, 1e300),
                        (None, 0.0), ((640, np.nan), None)]:
        assert base.camera_problem(size, focal), (size, focal)


def test_coco_absurd_box_is_bad_bbox(tmp_path):
    res = read_coco(_coco(tmp_path, [_ann(1), _ann(2, bbox=[10, 10, 1e300, 1e300]),
                                     _ann(3, bbox=[0, 0, 1e12, 1e12])]))
    assert [e.id for e in res.exemplars] == ["coco/1"]
    r = _reasons(res)
    assert r["coco/2"][0] == "bad_bbox" and r["coco/3"][0] == "bad_bbox"
    assert all(np.isfinite(e.scale) and 200 * e.scale < 1e6 for e in res.exemplars)


def test_coco_absurd_image_size_is_not_kept(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 1e20, "height": 1e20},
              {"id": 2, "file_name": "b.jpg", "width": 1e400, "height": 10}]
    res = read_coco(_coco(tmp_path, [_ann(1), _ann(2, image_id=2)], images=images))
    assert len(res) == 2 and all(e.image_size is None for e in res.exemplars)


def test_mpii_csv_absurd_scale_is_bad_bbox(tmp_path):
    path = _mpii_csv(tmp_path, [{"joints": _mpii_joints(0), "Scale": 1.5},
                                {"joints": _mpii_joints(1), "Scale": 1e300}])
    res = read_mpii(path)
    assert [e.id for e in res.exemplars] == ["mpii/000000000/0"]
    reason, detail = _reasons(res)["mpii/000000001/0"]
    assert reason == "bad_bbox" and "crop" in detail


def test_mpii_json_absurd_centre_or_scale_is_bad_bbox(tmp_path):
    def entry(name, center, scale):
        return {"image": name, "center": center, "scale": scale,
                "joints": _mpii_joints(1).tolist(), "joints_vis": [1] * 16}

    path = tmp_path / "m.json"
    path.write_text(json.dumps([entry("a.jpg", [150, 250], 2.0),
                                entry("b.jpg", [150, 250], 1e300),
                                entry("c.jpg", [1e300, 250], 2.0)]))
    res = read_mpii(path)
    assert [e.id for e in res.exemplars] == ["mpii/a/0"]
    assert {s.id: s.reason for s in res.skipped} == {"mpii/b/0": "bad_bbox",
                                                     "mpii/c/0": "bad_bbox"}


def _mpii_h5(path, n: int = 3, **override):
    arrays = {"imgname": np.array([f"{i:09d}.jpg".encode() for i in range(n)]),
              "part": np.stack([_mpii_joints(i) for i in range(n)]),
              "visible": np.ones((n, 16)), "center": np.tile([150.0, 250.0], (n, 1)),
              "scale": np.full(n, 2.0), "person": np.zeros(n), "index": np.arange(n, dtype=float),
              "normalize": np.full(n, 40.0)}
    arrays.update(override)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is None:
                f.create_group(k)
            else:
                f[k] = v
    return path


def test_mpii_h5_absurd_scale_is_bad_bbox(tmp_path):
    scale = np.full(3, 2.0)
    scale[1] *= 1e300
    res = read_mpii(_mpii_h5(tmp_path / "v.h5", scale=scale))
    assert [e.id for e in res.exemplars] == ["mpii/000000000/0", "mpii/000000002/0"]
    assert _reasons(res)["mpii/000000001/0"][0] == "bad_bbox"


def _generic(tmp_path, people: list[dict], **top):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"keypoint_format": "coco17", **top, "people": people}))
    return path


def test_generic_absurd_box_size_and_focal(tmp_path):
    base = {"image": "a.jpg", "keypoints": _person17(0)}
    people = [dict(base, person_id="ok", bbox=[40, 40, 120, 220], image_size=[640, 480],
                   focal=1000),
              dict(base, person_id="box", bbox=[0, 0, 1e12, 1e12]),
              dict(base, person_id="size", image_size=[1e20, 1e20]),
              dict(base, person_id="focal", focal=1e300),
              dict(base, person_id="tiny", image_size=[0.4, 0.4])]
    res = read_generic(_generic(tmp_path, people))
    assert [e.id for e in res.exemplars] == ["generic/ok"]
    assert res.exemplars[0].image_size == (640, 480)
    r = _reasons(res)
    assert r["generic/box"][0] == "bad_bbox"
    for pid in ("size", "focal", "tiny"):
        assert r[f"generic/{pid}"][0] == "bad_annotation", pid
    assert "image_size" in r["generic/tiny"][1] and "focal" in r["generic/focal"][1]


def test_humandata_and_posetrack_absurd_boxes_are_bad_bbox(tmp_path):
    kp = np.array(_person17(0)).reshape(17, 3)
    names = list(J.COCO17_NAMES)
    # HumanData: 190 keypoints, the 17 COCO ones by name
    from eft.data.readers.humandata import HUMAN_DATA_NAMES

    raw = np.zeros((2, 190, 3))
    for j, n in enumerate(names):
        raw[:, HUMAN_DATA_NAMES.index(n)] = (*kp[j, :2], 1.0)
    npz = tmp_path / "h.npz"
    np.savez(npz, keypoints2d=raw, bbox_xywh=np.array([[40, 40, 120, 220, 1],
                                                       [10, 10, 1e300, 1e300, 1]]),
             image_path=np.array(["a.jpg", "b.jpg"]))
    res = read_humandata_keypoints(npz)
    assert [e.id for e in res.exemplars] == ["humandata/0"]
    assert _reasons(res)["humandata/1"][0] == "bad_bbox"
    # PoseTrack 2018: posetrack17 order (head_bottom, head_top where COCO has eyes)
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "vid_id": 1, "frame_id": 0}],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [{"id": 1, "image_id": 1, "keypoints": kp.reshape(-1).tolist(),
                            "bbox": [40, 40, 120, 220]},
                           {"id": 2, "image_id": 1, "keypoints": kp.reshape(-1).tolist(),
                            "bbox": [10, 10, 1e300, 1e300]}]}
    pt = tmp_path / "p.json"
    pt.write_text(json.dumps(doc))
    res = read_posetrack(pt)
    assert [e.id for e in res.exemplars] == ["posetrack/1"]
    assert _reasons(res)["posetrack/2"][0] == "bad_bbox"


# --- 3. COCO ids, categories, images of the wrong type -------------------------------


def test_coco_list_ids_are_bad_annotations(tmp_path):
    res = read_coco(_coco(tmp_path, [_ann(1), _ann(2, image_id=[1]),
                                     _ann(3, category_id=[1])]))
    assert [e.id for e in res.exemplars] == ["coco/1"]
    r = _reasons(res)
    assert r["coco/2"][0] == "bad_annotation" and "image_id" in r["coco/2"][1]
    assert r["coco/3"][0] == "bad_annotation" and "category_id" in r["coco/3"][1]


def test_coco_malformed_image_entry_skips_its_people(tmp_path):
    images = [{"id": [1], "file_name": "a.jpg"},
              {"id": 2, "file_name": "b.jpg", "width": 640, "height": 480}]
    res = read_coco(_coco(tmp_path, [_ann(1), _ann(2, image_id=2)], images=images))
    assert [e.id for e in res.exemplars] == ["coco/2"]
    reason, detail = _reasons(res)["coco/1"]
    assert reason == "missing_image" and "images[0]" in detail


def test_coco_malformed_category_is_one_error(tmp_path):
    cats = [{"id": [1], "name": "person", "keypoints": list(J.COCO17_NAMES)}]
    with pytest.raises(ReaderError, match=r"categories\[0\]") as err:
        read_coco(_coco(tmp_path, [_ann(1)], categories=cats))
    assert "\n" not in str(err.value)


def test_coco_keypoints_as_strings_are_bad_annotations(tmp_path):
    text = [str(v) for v in _person17(2)]
    res = read_coco(_coco(tmp_path, [_ann(1), _ann(2, keypoints=text),
                                     _ann(3, bbox=["40", "40", "120", "220"])]))
    assert [e.id for e in res.exemplars] == ["coco/1"]
    r = _reasons(res)
    assert r["coco/2"][0] == "bad_annotation" and "keypoints" in r["coco/2"][1]
    assert r["coco/3"][0] == "bad_annotation" and "bbox" in r["coco/3"][1]


# --- 4. unknown keypoint_format ------------------------------------------------------


def test_coco_unknown_keypoint_format_option(tmp_path):
    path = _coco(tmp_path, [_ann(1)])
    for bad in ("coco18", 17):
        with pytest.raises(ReaderError, match="coco17") as err:  # the known names
            read_coco(path, keypoint_format=bad)
        assert "keypoint_format" in str(err.value) and "\n" not in str(err.value)


def test_generic_keypoint_format_not_a_name(tmp_path):
    people = [{"image": "a.jpg", "person_id": "ok", "keypoints": _person17(0)},
              {"image": "a.jpg", "person_id": "five", "keypoint_format": 5,
               "keypoints": _person17(1)}]
    res = read_generic(_generic(tmp_path, people))
    assert [e.id for e in res.exemplars] == ["generic/ok"]
    reason, detail = _reasons(res)["generic/five"]
    assert reason == "bad_annotation" and "keypoint_format" in detail
    for top in (17, "coco18"):
        with pytest.raises(ReaderError, match="coco17"):
            read_generic(_generic(tmp_path, people[:1], keypoint_format=top))
    with pytest.raises(ReaderError, match="coco17"):
        read_generic(_generic(tmp_path, people[:1]), keypoint_format="coco18")


# --- 5. MPII CSV file problems ------------------------------------------------------


def test_mpii_csv_x_column_without_y(tmp_path):
    path = _mpii_csv(tmp_path, [{"joints": _mpii_joints(), "Scale": 1.5}], drop="r ankle_Y")
    with pytest.raises(ReaderError, match="r ankle_Y") as err:
        read_mpii(path)
    assert "\n" not in str(err.value)


def test_mpii_csv_not_utf8(tmp_path):
    path = _mpii_csv(tmp_path, [{"joints": _mpii_joints(), "Scale": 1.5}])
    path.write_bytes(path.read_bytes().replace(b"walking", b"walk\xffing"))
    with pytest.raises(ReaderError, match="UTF-8"):
        read_mpii(path)


# --- 6. MPII h5 problems ------------------------------------------------------------


def test_mpii_h5_nan_person_is_bad_annotation(tmp_path):
    person = np.zeros(3)
    person[1] = np.nan
    res = read_mpii(_mpii_h5(tmp_path / "v.h5", person=person))
    assert [e.id for e in res.exemplars] == ["mpii/000000000/0", "mpii/000000002/0"]
    (skip,) = res.skipped
    assert skip.reason == "bad_annotation" and "person" in skip.detail


def test_mpii_h5_imgname_group_is_one_error(tmp_path):
    with pytest.raises(ReaderError, match="imgname"):
        read_mpii(_mpii_h5(tmp_path / "v.h5", imgname=None))


# --- 7. HumanData file problems ----------------------------------------------------


def test_humandata_truncated_or_0d_image_path(tmp_path):
    good = tmp_path / "h.npz"
    np.savez(good, keypoints2d=np.zeros((2, 190, 3)), image_path=np.array(["a", "b"]))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ReaderError, match="npz"):
        read_humandata_keypoints(cut)
    npy = tmp_path / "npy.npz"  # one array saved with numpy.save
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros((2, 190, 3)))
    with pytest.raises(ReaderError, match="npz"):
        read_humandata_keypoints(npy)
    json_file = tmp_path / "coco.json"  # a COCO file given as HumanData
    json_file.write_text('{"images": [], "annotations": []}')
    with pytest.raises(ReaderError, match=r"not an npz archive \(HumanData is numpy's .npz; "
                       r"this file starts b'\{\"imag'\)"):
        read_humandata_keypoints(json_file)
    zero_d = tmp_path / "z.npz"
    np.savez(zero_d, keypoints2d=np.zeros((2, 190, 3)), image_path=np.array("a.jpg"))
    with pytest.raises(ReaderError, match="image_path"):
        read_humandata_keypoints(zero_d)


def test_coco_null_coordinates_read_as_nan(tmp_path):
    """JSON null (how JavaScript writes NaN) on an unlabelled joint keeps the person, as
    it always did; on a labelled joint the person is bad_keypoints, not a crash."""
    import json

    from eft.data.readers import read_dataset

    kp = []
    for j in range(17):
        kp += [None, None, 0] if j >= 13 else [100.0 + 10 * j, 200.0 + 15 * j, 2]
    bad = list(kp)
    bad[0] = None  # a labelled joint's x
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "bbox": [90, 190, 200, 300],
                "num_keypoints": 13, "keypoints": kp, "iscrowd": 0},
               {"id": 2, "image_id": 1, "category_id": 1, "bbox": [90, 190, 200, 300],
                "num_keypoints": 13, "keypoints": bad, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "person", "keypoints": [
               "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
               "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
               "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
               "right_ankle"]}]}
    path = tmp_path / "nulls.json"
    path.write_text(json.dumps(doc))
    res = read_dataset("coco", path)
    assert [e.meta["annotId"] for e in res.exemplars] == [1]
    assert [(s.reason) for s in res.skipped] == ["bad_keypoints"]
