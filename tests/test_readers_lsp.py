"""LSP / LSPet reader on joints.mat files written here in each dataset's own layout."""

from __future__ import annotations

import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import ReaderError, read_dataset, read_lsp
from tests.helpers import require_module

scipy_io = require_module("scipy.io", "pip install -e '.[datasets]'", module_level=True)

IDX = J.SPIN49_INDEX
# LSP joint order, from the dataset's README.
LSP_TO_SPIN = ["Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee",
               "Left Ankle", "Right Wrist", "Right Elbow", "Right Shoulder",
               "Left Shoulder", "Left Elbow", "Left Wrist", "Neck (LSP)", "Top of Head (LSP)"]


def _people(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(20, 300, (n, 14, 2)).round(2)


def test_lsp_original_layout(tmp_path):
    xy = _people(3)
    occluded = np.zeros((3, 14))
    occluded[0, [1, 7]] = 1  # LSP: 1 = occluded
    joints = np.concatenate([xy, occluded[..., None]], axis=2)  # (N, 14, 3)
    mat = tmp_path / "joints.mat"
    scipy_io.savemat(str(mat), {"joints": np.transpose(joints, (2, 1, 0))})  # 3 x 14 x N

    res = read_lsp(mat)
    assert [e.id for e in res.exemplars] == ["lsp/im0001", "lsp/im0002", "lsp/im0003"]
    e = res.exemplars[0]
    assert e.image_path == str(tmp_path / "images" / "im0001.jpg") and e.source == "lsp14"
    for k, name in enumerate(LSP_TO_SPIN):  # every LSP joint annotated: confidence 1
        np.testing.assert_allclose(e.keypoints[IDX[name]], [*xy[0, k], 1.0])
    assert e.meta["visible"][1] == 0 and e.meta["visible"][0] == 1
    lo, hi = xy[0].min(0), xy[0].max(0)
    np.testing.assert_allclose(e.center, (lo + hi) / 2)
    assert e.scale == pytest.approx(1.2 * (hi - lo).max() / 200)  # SPIN's LSP crop

    vis = read_lsp(mat, visible_only=True, indices=[0]).exemplars[0]
    assert vis.keypoints[IDX["Right Knee"], 2] == 0 and vis.keypoints[IDX["Right Elbow"], 2] == 0
    assert (vis.keypoints[25:, 2] > 0).sum() == 12
    assert [e.id for e in read_lsp(mat, indices=range(1, 3)).exemplars] == \
        ["lsp/im0002", "lsp/im0003"]
    with pytest.raises(ReaderError, match="out of range"):
        read_lsp(mat, indices=[3])
    with pytest.raises(ReaderError, match="laid out as lsp"):
        read_dataset("lspet", mat)


def test_lspet_layout(tmp_path):
    xy = _people(2, seed=1)
    visible = np.ones((2, 14))
    visible[1, [0, 5, 13]] = 0  # LSPet: 0 = not annotated, its x, y are junk
    xy[1, [0, 5, 13]] = -1
    joints = np.concatenate([xy, visible[..., None]], axis=2)
    mat = tmp_path / "joints.mat"
    scipy_io.savemat(str(mat), {"joints": np.transpose(joints, (1, 2, 0))})  # 14 x 3 x N
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "im00001.png").write_bytes(b"")

    res = read_dataset("lspet", mat, min_keypoints=12)
    assert [e.id for e in res.exemplars] == ["lspet/im00001"]
    assert [(s.id, s.reason) for s in res.skipped] == [("lspet/im00002", "too_few_keypoints")]
    e = read_lsp(mat).exemplars[1]
    assert e.image_path.endswith("im00002.png") and e.meta["variant"] == "lspet"
    for k, name in enumerate(LSP_TO_SPIN):
        assert e.keypoints[IDX[name], 2] == visible[1, k]
    np.testing.assert_allclose(e.keypoints[IDX["Left Wrist"], :2], xy[1, 11])
    ok = visible[1] > 0
    lo, hi = xy[1, ok].min(0), xy[1, ok].max(0)  # the box ignores unannotated joints
    np.testing.assert_allclose(e.center, (lo + hi) / 2)
    # jpg images (the original lspet_dataset) are found too
    (tmp_path / "images" / "im00001.png").unlink()
    (tmp_path / "images" / "im00001.jpg").write_bytes(b"")
    assert read_lsp(mat).exemplars[0].image_path.endswith("im00001.jpg")


def test_bad_files(tmp_path):
    mat = tmp_path / "joints.mat"
    scipy_io.savemat(str(mat), {"joints": np.zeros((4, 14, 2))})
    with pytest.raises(ReaderError, match="expected 3x14xN"):
        read_lsp(mat)
    scipy_io.savemat(str(mat), {"other": np.zeros(3)})
    with pytest.raises(ReaderError, match="no 'joints'"):
        read_lsp(mat)
    with pytest.raises(ReaderError, match="no such"):
        read_lsp(tmp_path / "missing.mat")
