"""The embedded open body model: loads quietly, is anatomically sane, has all 49 keypoints."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct

from eft.body import BodyModel, default_model_path
from eft.body.joints import (
    COCO23_NAMES,
    SMPL24_FLIP_PERM,
    SMPL24_NAMES,
    SPIN49_INDEX,
    flip_smpl_pose,
)
from eft.body.poses import canonical_poses

J = {n: i for i, n in enumerate(SMPL24_NAMES)}


@pytest.fixture(scope="module")
def body() -> BodyModel:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default must load without any warning
        return BodyModel.load()


@pytest.fixture(scope="module")
def tpose(body):
    with torch.no_grad():
        return body(torch.zeros(1, 24, 3))


def test_default_is_the_open_model(body):
    assert body.name == "eft-open-body-v1"
    assert body.path == default_model_path()
    assert bool(body.keypoint_valid.all())
    assert body.keypoint_source.startswith("anatomical")
    assert body.h36m_regressor is not None


def test_file_loads_directly_through_smplx():
    with np.load(default_model_path(), allow_pickle=False) as data:
        fields = {k: data[k] for k in data.files}
    ids = dict(zip([str(n) for n in fields["vertex_ids_names"]],
                   (int(i) for i in fields["vertex_ids"]), strict=True))
    model = smplx.SMPL(model_path="", data_struct=Struct(**fields), vertex_ids=ids,
                       use_hands=False, use_feet_keypoints=True)
    out = model()
    assert out.vertices.shape == (1, fields["v_template"].shape[0], 3)
    assert out.joints.shape == (1, 24 + 11, 3)
    assert torch.isfinite(out.vertices).all()
    # Regressors are sparse-ish, non-negative and partition-of-unity.
    for key in ("J_regressor", "J_regressor_coco", "J_regressor_extra", "J_regressor_h36m"):
        reg = fields[key]
        assert reg.min() >= -1e-6, key
        np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-3, err_msg=key)
    np.testing.assert_allclose(fields["weights"].sum(1), 1.0, atol=1e-4)


def test_tpose_is_anatomically_ordered(tpose):
    j = tpose.joints[0]
    assert j[J["head"], 1] > j[J["neck"], 1] > j[J["spine3"], 1] > j[J["pelvis"], 1]
    assert j[J["pelvis"], 1] > j[J["left_knee"], 1] > j[J["left_ankle"], 1]
    for part in ("collar", "shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "foot"):
        assert j[J[f"left_{part}"], 0] > 0 > j[J[f"right_{part}"], 0], part
    k = tpose.keypoints[0]
    assert k[SPIN49_INDEX["Top of Head (LSP)"], 1] > k[SPIN49_INDEX["Nose"], 1]
    assert k[SPIN49_INDEX["Nose"], 1] > k[SPIN49_INDEX["Neck (LSP)"], 1]
    assert k[SPIN49_INDEX["Neck (LSP)"], 1] > k[SPIN49_INDEX["Pelvis (MPII)"], 1]
    assert k[SPIN49_INDEX["Nose"], 2] > j[J["head"], 2]  # the face points to +z
    assert k[SPIN49_INDEX["Left Eye"], 0] > 0 > k[SPIN49_INDEX["Right Eye"], 0]
    stature = float(tpose.vertices[0, :, 1].max() - tpose.vertices[0, :, 1].min())
    assert 1.5 < stature < 1.9


def test_height_beta_changes_stature_monotonically(body):
    grid = torch.linspace(-3, 3, 13)

    def stature(k: int) -> np.ndarray:
        betas = torch.zeros(len(grid), 10)
        betas[:, k] = grid
        with torch.no_grad():
            v = body(torch.zeros(len(grid), 24, 3), betas).vertices
        return (v[..., 1].amax(1) - v[..., 1].amin(1)).numpy()

    spans = [abs(stature(k)[-1] - stature(k)[0]) for k in range(10)]
    k = int(np.argmax(spans))
    s = stature(k)
    steps = np.diff(s) * np.sign(s[-1] - s[0])
    assert np.all(steps > 0), s
    assert spans[k] > 0.15  # +-3 sd spans more than 15 cm of stature


def test_keypoints_finite_in_many_poses(body):
    g = torch.Generator().manual_seed(0)
    poses = torch.cat([torch.stack(list(canonical_poses().values())).float(),
                       torch.randn(16, 24, 3, generator=g) * 0.6])
    betas = torch.cat([torch.zeros(5, 10), torch.randn(16, 10, generator=g).clamp(-3, 3)])
    with torch.no_grad():
        out = body(poses, betas)
    assert torch.isfinite(out.keypoints).all()
    assert torch.isfinite(out.vertices).all()


def test_coco_keypoints_near_skeleton_joints(tpose):
    with np.load(default_model_path(), allow_pickle=False) as data:
        coco = torch.from_numpy(data["J_regressor_coco"])
    kps = coco @ tpose.vertices[0]
    j = tpose.joints[0]
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        for side in ("left", "right"):
            name = f"{side}_{part}"
            d = torch.linalg.norm(kps[COCO23_NAMES.index(name)] - j[J[name]])
            assert d < 0.04, (side, part, float(d))


def test_pose_flip_mirrors_the_body(body):
    """Flipping the SMPL pose mirrors the posed skeleton (x -> -x), up to model asymmetry."""
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(4, 24, 3, generator=g) * 0.4
    with torch.no_grad():
        a = body(pose).joints
        b = body(flip_smpl_pose(pose.reshape(4, 72)).reshape(4, 24, 3)).joints
        rest = body(torch.zeros(1, 24, 3)).joints
    perm = list(SMPL24_FLIP_PERM)
    mirrored = b[:, perm] * torch.tensor([-1.0, 1.0, 1.0])
    rest_mirrored = rest[:, perm] * torch.tensor([-1.0, 1.0, 1.0])
    asym = float((rest - rest_mirrored).norm(dim=-1).max())
    err = (a - mirrored).norm(dim=-1).max()
    assert err < asym + 0.01, (float(err), asym)
    # ... while the pose itself is far from symmetric, so the check can fail.
    assert (a - a[:, perm] * torch.tensor([-1.0, 1.0, 1.0])).norm(dim=-1).max() > 0.05
