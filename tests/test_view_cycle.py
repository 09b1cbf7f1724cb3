"""The view-cycle loss (2D-3D self-supervision on real 2D-only samples): its novel views
are rigid turns about the pelvis framed like SPIN's boxes, it is exactly zero for a
view-equivariant answer and the closed form for a constant one, and a run with it on
still resumes exactly."""

from __future__ import annotations

import math

import pytest
import torch

from eft.body.fast import KeypointLBS
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models.output import RegressorOutput
from eft.train.augment import AugmentConfig, Batch, novel_view
from eft.train.losses import LossWeights, view_cycle_loss

from .helpers import check_loss_term_run

pytestmark = pytest.mark.usefixtures("one_thread")


def _points(n: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    kp = torch.randn(n, 49, 3, generator=g, dtype=torch.float64) * 0.4
    pelvis = torch.randn(n, 3, generator=g, dtype=torch.float64)
    present = torch.rand(n, 49, generator=g) < 0.7
    return kp, pelvis, present


def test_no_turn_is_the_spin_box_of_the_orthographic_projection():
    kp, pelvis, present = _points()
    cfg = AugmentConfig(scale_range=(1.0, 1.0), cycle_yaw_deg=0.0, cycle_pitch_std_deg=0.0)
    inputs, target = novel_view(kp, pelvis, present, cfg, torch.Generator().manual_seed(1))
    torch.testing.assert_close(target, kp - pelvis[:, None], rtol=0, atol=1e-12)
    for i in range(kp.shape[0]):
        xy = target[i, present[i], :2]
        lo, hi = xy.min(0).values, xy.max(0).values
        side = 1.2 * float((hi - lo).max())  # SPIN's box: 1.2 x the long side
        want = (xy - (lo + hi) / 2) / (side / 2)
        torch.testing.assert_close(inputs[i, present[i], :2], want, rtol=0, atol=1e-12)
        assert bool((inputs[i, present[i], 2] == 1).all())
        assert bool((inputs[i, ~present[i]] == 0).all())
        # the long side spans exactly 2 / 1.2 of the crop
        ext = inputs[i, present[i], :2].max(0).values - inputs[i, present[i], :2].min(0).values
        assert math.isclose(float(ext.max()), 2 / 1.2, rel_tol=1e-12)


def test_turns_are_rigid_about_the_pelvis_and_the_vertical():
    kp, pelvis, present = _points(n=64, seed=2)
    rel = kp - pelvis[:, None]
    yaw_only = AugmentConfig(cycle_yaw_deg=180.0, cycle_pitch_std_deg=0.0)
    _, target = novel_view(kp, pelvis, present, yaw_only, torch.Generator().manual_seed(3))
    # a turn about the camera's vertical (y) keeps heights and distances
    torch.testing.assert_close(target[..., 1], rel[..., 1], rtol=0, atol=1e-12)
    torch.testing.assert_close(target.norm(dim=-1), rel.norm(dim=-1), rtol=0, atol=1e-12)
    assert float((target - rel).abs().max()) > 0.1  # it did turn
    both = AugmentConfig(cycle_yaw_deg=180.0, cycle_pitch_std_deg=20.0)
    _, target2 = novel_view(kp, pelvis, present, both, torch.Generator().manual_seed(3))
    torch.testing.assert_close(target2.norm(dim=-1), rel.norm(dim=-1), rtol=0, atol=1e-12)
    # pairwise distances (a rigid motion, not only about the pelvis)
    def pairwise(x: torch.Tensor) -> torch.Tensor:
        return (x[:, :, None] - x[:, None]).norm(dim=-1)

    torch.testing.assert_close(pairwise(target2), pairwise(rel), rtol=0, atol=1e-10)
    assert float((target2[..., 1] - rel[..., 1]).abs().max()) > 0.01  # pitch tilts


class _Constant(torch.nn.Module):
    """Answers every input with the same body (a fixed pose, global orientation first)."""

    def __init__(self, rotmat: torch.Tensor, betas: torch.Tensor) -> None:
        super().__init__()
        self.rotmat, self.betas = rotmat, betas

    def forward(self, keypoints: torch.Tensor) -> RegressorOutput:
        n = keypoints.shape[0]
        return RegressorOutput(rotmat=self.rotmat.expand(n, -1, -1, -1),
                               betas=self.betas.expand(n, -1),
                               cam=torch.tensor([[0.9, 0.0, 0.0]]).expand(n, -1))


def _batch(n: int, real: torch.Tensor) -> Batch:
    g = torch.Generator().manual_seed(5)
    kp = torch.cat([torch.rand(n, 49, 2, generator=g) * 2 - 1, torch.ones(n, 49, 1)], -1)
    return Batch(keypoints=kp, target2d=kp.clone(), rotmat=torch.eye(3).expand(n, 24, 3, 3),
                 betas=torch.zeros(n, 10), has_smpl=~real, kp3d=torch.zeros(n, 49, 3),
                 has_kp3d=~real, center=torch.zeros(n, 2), scale=torch.ones(n),
                 rot=torch.zeros(n), flip=torch.zeros(n, dtype=torch.bool),
                 color=torch.ones(n, 3), images=None)


def _pose(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    aa = torch.randn(24, 3, generator=g) * 0.3
    return axis_angle_to_rotmat(aa)[None]


def test_cycle_loss_closed_forms(body):
    fast = KeypointLBS(body)
    rot, betas = _pose(0), torch.zeros(1, 10)
    kp, joints = fast(rot, betas)
    p = (kp - joints[:, :1])[0].double()  # (49, 3) pelvis-relative
    real = torch.tensor([True, False, True, True, False, True, False, True])
    batch = _batch(8, real)
    model = _Constant(rot, betas)
    out = model(batch.keypoints)
    w = LossWeights(cycle_kp3d=2.0, cycle_rotmat=7.0)
    # no turn: the constant body is its own novel view -> exactly 0
    still = AugmentConfig(cycle_yaw_deg=0.0, cycle_pitch_std_deg=0.0)
    value, raw = view_cycle_loss(model, out, fast, batch, w, still,
                                 torch.Generator().manual_seed(0))
    assert float(value) < 1e-10 and raw < 1e-10
    # yaw only: |p - R_y p|^2 = 2 (1 - cos yaw) (x^2 + z^2), body rotations equal (0)
    turn = AugmentConfig(cycle_yaw_deg=120.0, cycle_pitch_std_deg=0.0)
    g = torch.Generator().manual_seed(4)
    value, raw = view_cycle_loss(model, out, fast, batch, w, turn, g)
    g = torch.Generator().manual_seed(4)  # the documented draws: yaw first
    yaw = torch.deg2rad((torch.rand(int(real.sum()), generator=g) * 2 - 1) * 120.0).double()
    per = 2 * (1 - torch.cos(yaw))[:, None] * (p[:, 0] ** 2 + p[:, 2] ** 2)[None]
    want_l3d = float(per.mean())  # over real samples and 49 joints
    assert math.isclose(raw, want_l3d, rel_tol=1e-4)
    assert math.isclose(float(value), 2.0 * want_l3d * float(real.float().mean()), rel_tol=1e-4)
    # no real sample: nothing to do
    none, raw0 = view_cycle_loss(model, out, fast, _batch(8, torch.zeros(8, dtype=torch.bool)),
                                 w, turn, g)
    assert float(none) == 0.0 and raw0 == 0.0


def test_a_run_with_the_cycle_resumes_exactly_and_logs_it(body, tmp_path):
    """Logged, resumable bit for bit; switched off, not computed (the generator is not
    drawn)."""
    check_loss_term_run(body, tmp_path / "r", LossWeights(cycle_kp3d=5.0, cycle_rotmat=1.0),
                        "cycle", steps=8)
