"""The precontracted keypoint path equals the full-mesh path, pose correctives included."""

from __future__ import annotations

import pytest
import torch

from eft.body import BodyModel, BodyModelWarning
from eft.body.fast import KeypointLBS
from eft.geometry.rotations import axis_angle_to_rotmat
from tests.test_body_model import fake_smpl_fields


def _compare(body: BodyModel, seed: int) -> None:
    """Float32 buffers: agreement to < 1 micrometre."""
    fast = KeypointLBS(body).double()
    body = body.double()
    g = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_rotmat(torch.randn(5, 24, 3, generator=g, dtype=torch.float64) * 0.7)
    betas = torch.randn(5, 10, generator=g, dtype=torch.float64)
    transl = torch.randn(5, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref = body(rot, betas, transl)
        kp, joints = fast(rot, betas, transl)
    torch.testing.assert_close(kp, ref.keypoints, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(joints, ref.joints, atol=1e-6, rtol=1e-6)


def test_fast_path_matches_mesh_with_pose_correctives(tmp_path):
    import numpy as np

    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **fake_smpl_fields(seed=3))
    np.save(tmp_path / "J_regressor_extra.npy", np.full((9, 6890), 1 / 6890, dtype=np.float32))
    body = BodyModel.load(tmp_path)
    assert KeypointLBS(body).has_correctives
    _compare(body, 0)


def test_fast_path_matches_mesh_on_open_model():
    _compare(BodyModel.load(), 1)


def test_masked_keypoints_stay_zero(tmp_path):
    import numpy as np

    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **fake_smpl_fields(seed=4))
    with pytest.warns(BodyModelWarning):
        body = BodyModel.load(tmp_path)
    kp, _ = KeypointLBS(body)(torch.eye(3).expand(2, 24, 3, 3), transl=torch.ones(2, 3))
    assert torch.all(kp[:, ~body.keypoint_valid] == 0)
