"""read_dataset / READERS, and CrowdPose through the COCO reader on the real sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import READERS, ReaderError, read_coco, read_dataset, read_mpii

IDX = J.SPIN49_INDEX
CROWDPOSE_TO_SPIN = ["Left Shoulder", "Right Shoulder", "Left Elbow", "Right Elbow",
                     "Left Wrist", "Right Wrist", "Left Hip", "Right Hip", "Left Knee",
                     "Right Knee", "Left Ankle", "Right Ankle", "Top of Head (LSP)",
                     "Neck (LSP)"]


def test_kinds():
    assert set(READERS) == {"coco", "crowdpose", "mpii", "lsp", "lspet", "posetrack",
                            "openpose", "generic", "humandata"}


def test_crowdpose_sample(shared_data):
    path = shared_data / "crowdpose_sample" / "test_crowdpose.json"
    raw = json.loads(path.read_text())
    assert raw["categories"][0]["keypoints"][12:] == ["head", "neck"]
    res = read_dataset("crowdpose", path)
    assert len(res) + len(res.skipped) == len(raw["annotations"]) == 5
    assert res.skipped_by_reason() == {"no_keypoints": 1}
    assert all(e.id.startswith("crowdpose/") and e.source == "crowdpose14"
               for e in res.exemplars)
    anns = {a["id"]: a for a in raw["annotations"]}
    for e in res.exemplars:
        kp = np.asarray(anns[e.meta["annotId"]]["keypoints"], float).reshape(14, 3)
        for k, name in enumerate(CROWDPOSE_TO_SPIN):
            want = [*kp[k, :2], 1.0] if kp[k, 2] > 0 else [*kp[k, :2], 0.0]
            np.testing.assert_allclose(e.keypoints[IDX[name]], want)
    assert [e.id for e in res.exemplars] == \
        [e.id.replace("coco/", "crowdpose/") for e in read_coco(path).exemplars]
    labelled = sorted(a["id"] for a in anns.values()
                      if sum(v > 0 for v in a["keypoints"][2::3]) >= 12)
    strict = read_dataset("crowdpose", path, min_keypoints=12)
    assert sorted(e.meta["annotId"] for e in strict.exemplars) == labelled and len(labelled) == 3


def test_dispatch_passes_options(shared_data):
    path = shared_data / "mpii_sample" / "test_mpii.json"
    a = read_dataset("MPII", path, None, dataset="m", crop="keypoints")
    b = read_mpii(path, dataset="m", crop="keypoints")
    assert [e.id for e in a.exemplars] == [e.id for e in b.exemplars]
    assert a.exemplars[0].id.startswith("m/")
    np.testing.assert_allclose(a.exemplars[0].center, b.exemplars[0].center)


def test_dispatch_errors(tmp_path):
    with pytest.raises(ReaderError, match="unknown dataset kind 'h36m'.*coco"):
        read_dataset("h36m", tmp_path)
    with pytest.raises(ReaderError, match=r"unknown option\(s\) \['min_kp'\].*min_keypoints"):
        read_dataset("coco", tmp_path / "x.json", min_kp=3)


def test_sizes_come_from_the_image_headers_when_the_annotations_lack_them(shared_data):
    """MPII's annotations carry no image size: read_dataset takes it from each image's
    header (the image camera of the perspective refinement needs it); people whose
    image is missing keep None."""
    from PIL import Image

    path = shared_data / "mpii_sample" / "test_mpii.json"
    raw = read_mpii(path)
    assert all(e.image_size is None for e in raw.exemplars)
    res = read_dataset("mpii", path)
    assert len(res) == len(raw) > 0
    for e in res.exemplars:
        with Image.open(e.image_path) as im:
            assert e.image_size == im.size
    elsewhere = read_dataset("mpii", path, shared_data / "no_such_folder")
    assert all(e.image_size is None for e in elsewhere.exemplars)
