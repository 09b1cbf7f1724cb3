"""Tests for eft.geometry.metrics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eft import geometry as G

SETTINGS = settings(max_examples=50, deadline=None)
F64 = torch.float64


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


seeds = st.integers(0, 2**31 - 1)
n_joints = st.integers(4, 20)
scales = st.floats(0.5, 2.0)


def _rotation(gen: torch.Generator, *batch: int) -> torch.Tensor:
    """Random rotation from a QR decomposition (independent of eft.geometry)."""
    q, r = torch.linalg.qr(torch.randn(*batch, 3, 3, generator=gen, dtype=F64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[..., None, :]
    flip = torch.linalg.det(q) < 0
    q[flip] = q[flip] * t64([1.0, 1.0, -1.0])
    return q


def _sse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).sum((-2, -1))


def _assert_locally_optimal(pred, gt, gen, n_trials: int = 30):
    """No small perturbation of the returned similarity transform lowers the SSE."""
    scale, rot, t = G.procrustes_params(pred, gt)
    best = _sse(scale * pred @ rot.T + t, gt)
    for _ in range(n_trials):
        w = 1e-3 * torch.randn(3, generator=gen, dtype=F64)
        d_rot = torch.linalg.matrix_exp(
            t64([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
        )
        d_s = 1.0 + 1e-3 * torch.randn((), generator=gen, dtype=F64)
        d_t = 1e-3 * torch.randn(3, generator=gen, dtype=F64)
        other = _sse(scale * d_s * pred @ (d_rot @ rot).T + t + d_t, gt)
        assert other >= best - 1e-12


# ----------------------------------------------------------------------------- Procrustes


@SETTINGS
@given(seeds, n_joints, scales)
def test_procrustes_recovers_similarity_transform(seed, n, scale):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, 3, generator=gen, dtype=F64)
    rot = _rotation(gen)
    trans = 10 * torch.rand(3, generator=gen, dtype=F64) - 5
    gt = scale * pred @ rot.T + trans
    s_hat, r_hat, t_hat = G.procrustes_params(pred, gt)
    torch.testing.assert_close(s_hat, t64(scale))
    torch.testing.assert_close(r_hat, rot)
    torch.testing.assert_close(t_hat, trans)
    torch.testing.assert_close(G.procrustes_align(pred, gt), gt)
    assert G.pa_mpjpe(pred, gt) < 1e-9
    assert G.mpjpe(pred, gt) > 1e-3  # the unaligned error is not trivially zero


@SETTINGS
@given(seeds, n_joints)
def test_procrustes_never_increases_least_squares_error(seed, n):
    """Alignment minimises the sum of squared errors, so it never exceeds the unaligned
    one (the *mean Euclidean* error, MPJPE, can rise with outliers: the least-squares
    fit trades one large error for several medium ones)."""
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(3, n, 3, generator=gen, dtype=F64)
    gt = pred @ _rotation(gen, 3).transpose(-1, -2) + 0.3 * torch.randn(
        3, n, 3, generator=gen, dtype=F64
    )
    aligned = G.procrustes_align(pred, gt)
    assert (_sse(aligned, gt) <= _sse(pred, gt) + 1e-12).all()
    # Also no worse than any other proper similarity transform tried here.
    other = 1.3 * pred @ _rotation(gen, 3).transpose(-1, -2) + 0.1
    assert (_sse(aligned, gt) <= _sse(other, gt) + 1e-12).all()
    _assert_locally_optimal(pred[0], gt[0], gen)


@SETTINGS
@given(seeds, n_joints, scales)
def test_procrustes_reflection_gives_proper_rotation(seed, n, scale):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, 3, generator=gen, dtype=F64)
    mirror = _rotation(gen) @ torch.diag(t64([1.0, 1.0, -1.0]))  # det -1
    gt = scale * pred @ mirror.T + 1.0
    _, rot, _ = G.procrustes_params(pred, gt)
    torch.testing.assert_close(torch.linalg.det(rot), t64(1.0))
    torch.testing.assert_close(rot.T @ rot, torch.eye(3, dtype=F64))
    aligned = G.procrustes_align(pred, gt)
    assert _sse(aligned, gt) <= _sse(pred, gt) + 1e-12
    sv = torch.linalg.svdvals(pred - pred.mean(0))
    if sv[-1] > 0.2 * sv[0]:  # a nearly planar set *can* be mirrored by a rotation
        assert G.pa_mpjpe(pred, gt) > 1e-3  # a reflection cannot be matched by a rotation
    _assert_locally_optimal(pred, gt, gen)


@SETTINGS
@given(seeds, n_joints, scales)
def test_pa_mpjpe_ignores_invalid_joints(seed, n, scale):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, 3, generator=gen, dtype=F64)
    gt = scale * pred @ _rotation(gen).T - 2.0
    valid = torch.ones(n, dtype=torch.bool)
    valid[1] = False
    gt[1] = float("nan")  # placeholder at a missing joint
    assert G.pa_mpjpe(pred, gt, valid) < 1e-9
    assert G.pa_mpjpe(pred, gt, valid.to(F64)) < 1e-9
    # Garbage (finite) at the invalid joint must not move the fit either.
    gt[1] = 1e3
    assert G.pa_mpjpe(pred, gt, valid) < 1e-9
    assert G.pa_mpjpe(pred, gt) > 1.0


def test_procrustes_batched_matches_loop():
    gen = torch.Generator().manual_seed(3)
    pred = torch.randn(2, 3, 8, 3, generator=gen, dtype=F64)
    gt = torch.randn(2, 3, 8, 3, generator=gen, dtype=F64)
    batched = G.procrustes_align(pred, gt)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], G.procrustes_align(pred[i, j], gt[i, j]))


def test_procrustes_differentiable():
    gen = torch.Generator().manual_seed(4)
    pred = torch.randn(10, 3, generator=gen, dtype=F64, requires_grad=True)
    gt = torch.randn(10, 3, generator=gen, dtype=F64)
    assert torch.autograd.gradcheck(lambda p: G.pa_mpjpe(p, gt), (pred,))


# ----------------------------------------------------------------------------- hand examples


def test_mpjpe_hand_example():
    pred = t64([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    gt = t64([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    torch.testing.assert_close(G.mpjpe(pred, gt), t64(2.5))
    torch.testing.assert_close(G.mpjpe(pred, gt, t64([1.0, 0.0])), t64(5.0))
    torch.testing.assert_close(G.mpjpe(pred, gt, torch.tensor([False, True])), t64(0.0))
    assert torch.isnan(G.mpjpe(pred, gt, torch.tensor([False, False])))
    gt_nan = gt.clone()
    gt_nan[1] = float("nan")
    torch.testing.assert_close(G.mpjpe(pred, gt_nan, torch.tensor([True, False])), t64(5.0))


def test_pck_hand_example():
    gt = torch.zeros(4, 2, dtype=F64)
    pred = t64([[0.0, 0.0], [1.0, 0.0], [0.0, -2.0], [3.0, 4.0]])  # errors 0, 1, 2, 5
    torch.testing.assert_close(G.pck(pred, gt, 2.0), t64(0.75))  # inclusive at 2
    torch.testing.assert_close(G.pck(pred, gt, 0.5), t64(0.25))
    torch.testing.assert_close(G.pck(pred, gt, 10.0), t64(1.0))
    valid = torch.tensor([False, True, True, True])
    torch.testing.assert_close(G.pck(pred, gt, 2.0, valid), t64(2.0 / 3.0))
    both = G.pck(pred.expand(2, 4, 2), gt, t64([2.0, 0.5]))
    torch.testing.assert_close(both, t64([0.75, 0.25]))
    assert torch.isnan(G.pck(pred, gt, 2.0, torch.zeros(4, dtype=torch.bool)))
    # 3D works too.
    pred3 = torch.cat((pred, torch.zeros(4, 1, dtype=F64)), dim=-1)
    torch.testing.assert_close(G.pck(pred3, torch.zeros(4, 3, dtype=F64), 1.5), t64(0.5))


def test_reprojection_error_hand_example():
    gt = t64([[10.0, 10.0], [0.0, 0.0], [5.0, 5.0]])
    pred = t64([[13.0, 14.0], [0.0, 0.0], [11.0, 13.0]])  # errors 5, 0, 10
    conf = t64([1.0, 0.5, 0.0])
    torch.testing.assert_close(G.reprojection_error_px(pred, gt, conf), t64(5.0 / 1.5))
    torch.testing.assert_close(G.reprojection_error_px(pred, gt, t64([1.0, 1.0, 1.0])), t64(5.0))
    torch.testing.assert_close(G.reprojection_error_px(pred, gt, t64([2.0, 0.0, 2.0])), t64(7.5))
    # conf 0 (or negative) joints are ignored even with NaN coordinates.
    gt_nan = gt.clone()
    gt_nan[2] = float("nan")
    torch.testing.assert_close(G.reprojection_error_px(pred, gt_nan, conf), t64(5.0 / 1.5))
    torch.testing.assert_close(
        G.reprojection_error_px(pred, gt, t64([1.0, 0.5, -3.0])), t64(5.0 / 1.5)
    )
    assert torch.isnan(G.reprojection_error_px(pred, gt, torch.zeros(3, dtype=F64)))
    batched = G.reprojection_error_px(pred.expand(4, 3, 2), gt, conf.expand(4, 3))
    torch.testing.assert_close(batched, torch.full((4,), 5.0 / 1.5, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_metric_gradients_finite_at_zero_error(dtype):
    pred = torch.zeros(3, 2, dtype=dtype, requires_grad=True)
    loss = G.reprojection_error_px(pred, torch.zeros(3, 2, dtype=dtype), torch.ones(3, dtype=dtype))
    loss = loss + G.mpjpe(pred, torch.zeros(3, 2, dtype=dtype))
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(grad).all()
    assert math.isfinite(loss.item())
