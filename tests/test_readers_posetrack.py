"""PoseTrack reader on 2018 (COCO-like) and 2017 (annolist) files written here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import ReaderError, read_dataset, read_posetrack

IDX = J.SPIN49_INDEX
PT18_KEYPOINTS = ["nose", "head_bottom", "head_top", "left_ear", "right_ear",
                  "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                  "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle"]


def _kps(seed, missing=()):
    rng = np.random.default_rng(seed)
    k = np.concatenate([rng.uniform(10, 300, (17, 2)).round(1), np.ones((17, 1))], axis=1)
    k[[3, 4]] = 0  # PoseTrack 2018 never annotates the ears
    k[list(missing)] = 0
    return k


def _video(vid, frames, people):
    """PoseTrack 2018 file: ``people`` = [(frame index, track id, keypoints, bbox)]."""
    images = [{"file_name": f"images/val/{vid}/{f:06d}.jpg", "id": int(f"1{vid}{f:04d}"),
               "frame_id": int(f"1{vid}{f:04d}"), "vid_id": vid, "nframes": frames,
               "is_labeled": True} for f in range(frames)]
    anns = []
    for f, track, kps, bbox in people:
        a = {"id": int(f"1{vid}{f:04d}{track:02d}"), "image_id": int(f"1{vid}{f:04d}"),
             "track_id": track, "category_id": 1, "keypoints": kps.reshape(-1).tolist(),
             "bbox_head": [0, 0, 10, 10]}
        if bbox is not None:
            a["bbox"] = bbox
        anns.append(a)
    cats = [{"id": 1, "name": "person", "supercategory": "person",
             "keypoints": PT18_KEYPOINTS}]
    return {"images": images, "annotations": anns[::-1], "categories": cats}


def test_posetrack2018_folder(tmp_path):
    ann = tmp_path / "annotations" / "val"
    ann.mkdir(parents=True)
    (tmp_path / "images" / "val").mkdir(parents=True)
    k0, k1 = _kps(0), _kps(1, missing=range(5, 17))
    (ann / "000342_mpii_test.json").write_text(json.dumps(_video("000342", 3, [
        (0, 0, k0, [10, 20, 100, 200]), (1, 0, _kps(2), None), (1, 1, k1, [0, 0, 5, 5]),
        (2, 0, np.zeros((17, 3)), [1, 2, 3, 4])])))
    (ann / "000522_mpii_test.json").write_text(json.dumps(_video("000522", 1, [
        (0, 3, _kps(3), [5, 5, 50, 80])])))

    res = read_posetrack(tmp_path / "annotations")
    ids = [e.id for e in res.exemplars]
    assert ids == ["posetrack/1000342000000", "posetrack/1000342000100",
                   "posetrack/1000522000003"]
    assert {(s.id, s.reason) for s in res.skipped} == {
        ("posetrack/1000342000101", "too_few_keypoints"),
        ("posetrack/1000342000200", "no_keypoints")}
    e = res.exemplars[0]
    assert e.image_path == str(tmp_path / "images/val/000342/000000.jpg")
    assert e.source == "posetrack17" and e.meta["trackId"] == 0
    assert e.meta["vidId"] == "000342" and e.meta["crop_from"] == "bbox"
    np.testing.assert_allclose(e.center, [60, 120])
    assert e.scale == pytest.approx(1.2 * 200 / 200)
    for name, spin in [("nose", "Nose"), ("head_bottom", "Neck (LSP)"),
                       ("head_top", "Top of Head (LSP)"), ("left_wrist", "Left Wrist"),
                       ("right_ankle", "Right Ankle"), ("left_hip", "Left Hip")]:
        np.testing.assert_allclose(e.keypoints[IDX[spin]], k0[PT18_KEYPOINTS.index(name)])
    assert e.keypoints[IDX["Left Eye"], 2] == 0 and e.keypoints[IDX["Left Ear"], 2] == 0
    # no bbox: crop from the keypoint box
    assert res.exemplars[1].meta["crop_from"] == "keypoints"
    # the same ids whichever way the files are read
    one = read_posetrack(ann / "000522_mpii_test.json", image_root=tmp_path)
    assert [e.id for e in one.exemplars] == ids[2:]
    assert one.exemplars[0].keypoints.tolist() == res.exemplars[2].keypoints.tolist()
    # a second copy of a video: its people are duplicates
    (ann / "copy.json").write_text((ann / "000522_mpii_test.json").read_text())
    again = read_dataset("posetrack", ann)
    assert again.skipped_by_reason()["duplicate_id"] == 1 and len(again) == 3


def test_posetrack2017_annolist(tmp_path):
    ids_2017 = {0: "Right Ankle", 1: "Right Knee", 2: "Right Hip", 3: "Left Hip",
                4: "Left Knee", 5: "Left Ankle", 6: "Right Wrist", 7: "Right Elbow",
                8: "Right Shoulder", 9: "Left Shoulder", 10: "Left Elbow", 11: "Left Wrist",
                12: "Neck (LSP)", 13: "Nose", 14: "Top of Head (LSP)"}
    rng = np.random.default_rng(5)
    xy = rng.uniform(10, 200, (15, 2)).round(1)
    points = [{"id": [k], "x": [float(xy[k, 0])], "y": [float(xy[k, 1])],
               "is_visible": [k % 2]} for k in range(15)]
    data = {"annolist": [
        {"image": [{"name": "images/bonn/01/00001.jpg"}], "imgnum": [1], "is_labeled": [1],
         "annorect": [{"track_id": [4], "x1": [0], "y1": [0], "x2": [5], "y2": [5],
                       "annopoints": [{"point": points}]},
                      {"track_id": [5], "x1": [0], "y1": [0], "x2": [5], "y2": [5]}]},
        {"image": [{"name": "images/bonn/01/00002.jpg"}], "imgnum": [2], "is_labeled": [0],
         "annorect": []},
    ]}
    f = tmp_path / "01.json"
    f.write_text(json.dumps(data))
    res = read_posetrack(f)
    assert [e.id for e in res.exemplars] == ["posetrack/01/0/4"]
    assert [(s.id, s.reason) for s in res.skipped] == [("posetrack/01/0/5", "no_keypoints")]
    e = res.exemplars[0]
    for k, spin in ids_2017.items():  # annotated = confidence 1, occluded included
        np.testing.assert_allclose(e.keypoints[IDX[spin]], [*xy[k], 1.0])
    assert e.image_path == str(tmp_path / "images/bonn/01/00001.jpg")
    assert e.meta["crop_from"] == "keypoints"


def test_bad_files(tmp_path):
    with pytest.raises(ReaderError, match="no such"):
        read_posetrack(tmp_path / "missing.json")
    with pytest.raises(ReaderError, match="no .json files"):
        read_posetrack(tmp_path)
    p = tmp_path / "x.json"
    p.write_text("[1, 2]")
    with pytest.raises(ReaderError, match="not a PoseTrack file"):
        read_posetrack(p)
    p.write_text('{"annotations": [{"id": 7, "image_id": 1, "keypoints": [1, 2, "a"]}], '
                 '"images": []}')
    res = read_posetrack(p)
    assert res.skipped_by_reason() == {"bad_annotation": 1}
