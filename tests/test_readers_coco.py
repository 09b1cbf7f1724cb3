"""COCO reader on the real COCO val2017 sample, and EFT on what it reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import ReaderError, read_coco


def test_read_coco_sample(shared_data):
    path = shared_data / "coco_sample" / "test_coco.json"
    res = read_coco(path)
    raw = json.loads(path.read_text())
    anns = {a["id"]: a for a in raw["annotations"]}
    assert len(res) + len(res.skipped) == len(anns) == 14
    assert res.skipped_by_reason() == {"no_keypoints": 2}
    ids = [e.id for e in res.exemplars]
    assert ids == sorted(ids, key=lambda s: int(s.split("/")[1]))  # stable order
    ex = next(e for e in res.exemplars if e.meta["annotId"] == 442619)
    a = anns[442619]
    x, y, w, h = a["bbox"]
    np.testing.assert_allclose(ex.center, [x + w / 2, y + h / 2])
    assert ex.scale == pytest.approx(1.2 * max(w, h) / 200)
    kp = np.array(a["keypoints"], float).reshape(17, 3)
    ls = J.SPIN49_INDEX["Left Shoulder"]
    np.testing.assert_array_equal(ex.keypoints[ls], [kp[5, 0], kp[5, 1], 1.0])
    assert ex.image_path.endswith("000000000785.jpg") and ex.image_size == (640, 425)
    assert ex.meta["imageName"] == "000000000785.jpg"


def test_min_keypoints_rule(shared_data):
    path = shared_data / "coco_sample" / "test_coco.json"
    strict = read_coco(path, min_keypoints=16)
    counts = strict.skipped_by_reason()
    assert counts["no_keypoints"] == 2 and counts["too_few_keypoints"] > 0
    assert len(strict) + sum(counts.values()) == 14
    assert all((e.keypoints[25:, 2] > 0).sum() >= 16 for e in strict.exemplars)


def test_bad_files(tmp_path):
    with pytest.raises(ReaderError, match="no such"):
        read_coco(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(ReaderError, match="not a valid JSON"):
        read_coco(bad)


def test_eft_lowers_reprojection_on_coco(coco_fits):
    exemplars, fits = coco_fits
    assert [f.exemplar_id for f in fits] == [e.id for e in exemplars]
    for f in fits:
        assert f.quality.loss_2d_final < f.quality.loss_2d_init
        assert f.vertices is not None and np.isfinite(f.vertices).all()


def test_nan_keypoints_skipped_with_reason(shared_data, tmp_path):
    raw = json.loads((shared_data / "coco_sample" / "test_coco.json").read_text())
    ann = next(a for a in raw["annotations"] if a["id"] == 442619)
    ann["keypoints"][0] = float("nan")  # nose x, annotated
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps(raw))
    res = read_coco(bad)
    assert [s.id for s in res.skipped if s.reason == "bad_keypoints"] == ["coco/442619"]
    assert len(res) == 11
