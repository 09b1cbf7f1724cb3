"""Tests for eft.geometry.rotations (plus dtype/shape checks for the whole subpackage)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eft import geometry as G

SETTINGS = settings(max_examples=60, deadline=None)

PI = math.pi

# ----------------------------------------------------------------------------- strategies

_unit = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
axes = st.tuples(_unit, _unit, _unit).filter(lambda v: sum(c * c for c in v) > 1e-2)
angles = st.one_of(
    st.floats(0.0, PI),
    st.floats(0.0, 1e-6),  # near 0
    st.floats(0.0, 1e-4).map(lambda d: PI - d),  # within 1e-4 of pi
    st.sampled_from([0.0, 1e-12, 1e-8, PI - 1e-12, PI - 1e-8, PI]),
)


def _to_aa(pairs) -> torch.Tensor:
    rows = []
    for axis, angle in pairs:
        norm = math.sqrt(sum(c * c for c in axis))
        rows.append([angle * c / norm for c in axis])
    return torch.tensor(rows, dtype=torch.float64)


aa_batches = st.lists(st.tuples(axes, angles), min_size=1, max_size=6).map(_to_aa)
seeds = st.integers(0, 2**31 - 1)


def _ref_skew(v: torch.Tensor) -> torch.Tensor:
    """Independent cross-product matrix (not eft's)."""
    m = torch.zeros(*v.shape[:-1], 3, 3, dtype=v.dtype)
    m[..., 0, 1], m[..., 0, 2] = -v[..., 2], v[..., 1]
    m[..., 1, 0], m[..., 1, 2] = v[..., 2], -v[..., 0]
    m[..., 2, 0], m[..., 2, 1] = -v[..., 1], v[..., 0]
    return m


def _ref_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Reference rotation: Rodrigues' closed form ``I + sin(t) K + (1 - cos(t)) K^2`` for
    the unit-axis skew matrix ``K``.  (``torch.linalg.matrix_exp`` of the skew matrix is
    off by ~2e-11 for some small angles, e.g. 0.03125 rad about z, with torch 2.13.)"""
    t = aa.norm(dim=-1, keepdim=True)
    axis = torch.where(t > 0, aa / torch.where(t > 0, t, torch.ones_like(t)),
                       torch.zeros_like(aa))
    k = _ref_skew(axis)
    t = t.unsqueeze(-1)
    eye = torch.eye(3, dtype=aa.dtype).expand_as(k)
    return eye + torch.sin(t) * k + (1 - torch.cos(t)) * (k @ k)


def _assert_same_aa(out: torch.Tensor, aa: torch.Tensor, atol: float = 1e-9) -> None:
    """Equal axis-angles; at an angle of (numerically) pi the axis sign may flip."""
    for o, a in zip(out.reshape(-1, 3), aa.reshape(-1, 3), strict=True):
        if torch.allclose(o, a, atol=atol, rtol=0):
            continue
        near_pi = abs(PI - a.norm().item()) < 1e-9
        assert near_pi and torch.allclose(o, -a, atol=atol, rtol=0), (o, a)


def _assert_rotation(R: torch.Tensor, atol: float = 1e-12) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=atol, rtol=0)
    torch.testing.assert_close(
        torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol, rtol=0
    )


# ----------------------------------------------------------------------------- round trips


@SETTINGS
@given(aa_batches)
def test_axis_angle_to_rotmat_matches_matrix_exp_and_is_rotation(aa):
    R = G.axis_angle_to_rotmat(aa)
    _assert_rotation(R)
    torch.testing.assert_close(R, _ref_rotmat(aa), atol=1e-12, rtol=0)


@SETTINGS
@given(aa_batches)
def test_aa_rotmat_aa_round_trip(aa):
    out = G.rotmat_to_axis_angle(G.axis_angle_to_rotmat(aa))
    assert (out.norm(dim=-1) <= PI + 1e-12).all()
    _assert_same_aa(out, aa)


@SETTINGS
@given(aa_batches)
def test_rotmat_rot6d_rotmat_round_trip(aa):
    R = G.axis_angle_to_rotmat(aa)
    x = G.rotmat_to_rot6d(R)
    assert x.shape == (*aa.shape[:-1], 6)
    torch.testing.assert_close(G.rot6d_to_rotmat(x), R, atol=1e-12, rtol=0)


@SETTINGS
@given(aa_batches)
def test_rotmat_quaternion_rotmat_round_trip(aa):
    R = G.axis_angle_to_rotmat(aa)
    q = G.rotmat_to_quaternion(R)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones_like(q[..., 0]), atol=1e-12, rtol=0)
    assert (q[..., 0] >= 0).all()
    torch.testing.assert_close(G.quaternion_to_rotmat(q), R, atol=1e-12, rtol=0)


@SETTINGS
@given(aa_batches)
def test_aa_quaternion_aa_round_trip(aa):
    q = G.axis_angle_to_quaternion(aa)
    torch.testing.assert_close(G.quaternion_to_rotmat(q), _ref_rotmat(aa), atol=1e-12, rtol=0)
    _assert_same_aa(G.quaternion_to_axis_angle(q), aa)
    # q and -q are the same rotation.
    _assert_same_aa(G.quaternion_to_axis_angle(-q), aa)


@SETTINGS
@given(aa_batches, aa_batches)
def test_geodesic_angle_is_relative_rotation_angle(aa1, aa2):
    n = min(len(aa1), len(aa2))
    aa1, aa2 = aa1[:n], aa2[:n]
    R1 = _ref_rotmat(aa1)
    R2 = R1 @ _ref_rotmat(aa2)
    angle = G.rotmat_geodesic_angle(R1, R2)
    torch.testing.assert_close(angle, aa2.norm(dim=-1), atol=1e-9, rtol=0)
    torch.testing.assert_close(G.rotmat_geodesic_angle(R2, R1), angle, atol=1e-9, rtol=0)


@SETTINGS
@given(seeds)
def test_rot6d_gram_schmidt_column_convention(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    R = G.rot6d_to_rotmat(x)
    _assert_rotation(R)
    cols = x.reshape(5, 3, 2)
    a1, a2 = cols[..., 0], cols[..., 1]
    # First column is a1 normalised; second lies in span(a1, a2) on a2's side.
    torch.testing.assert_close(R[..., :, 0], a1 / a1.norm(dim=-1, keepdim=True))
    assert ((R[..., :, 1] * a2).sum(-1) > 0).all()
    torch.testing.assert_close((R[..., :, 2] * a1).sum(-1), torch.zeros(5, dtype=x.dtype))
    torch.testing.assert_close((R[..., :, 2] * a2).sum(-1), torch.zeros(5, dtype=x.dtype))
    # Idempotent on its own output.
    torch.testing.assert_close(G.rot6d_to_rotmat(G.rotmat_to_rot6d(R)), R)


small_angles = st.one_of(
    st.floats(0.0, 4e-3),
    st.sampled_from([1e-5, 3e-4, 9.99e-4, 1e-3, 1.001e-3, 1.999e-3, 2e-3, 2.001e-3]),
)


@settings(max_examples=80, deadline=None)
@given(axes, small_angles)
def test_small_angle_relative_precision(axis, angle):
    """Near 0 (across the Taylor/closed-form switch points) the maps keep full relative
    precision: R - I matches the exponential series, the quaternion matches
    (cos(t/2), sin(t/2) * axis) to an ulp, and aa -> q -> aa is exact to ~1e-13."""
    aa = _to_aa([(axis, angle)])[0]
    k = _ref_skew(aa)
    series, term = torch.zeros(3, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    for i in range(1, 9):
        term = term @ k / i
        series = series + term
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(G.axis_angle_to_rotmat(aa) - eye, series, atol=3e-16, rtol=1e-9)
    q = G.axis_angle_to_quaternion(aa)
    theta = aa.norm().item()
    ratio = math.sin(theta / 2) / theta if theta > 0 else 0.5
    torch.testing.assert_close(q[0], torch.tensor(math.cos(theta / 2), dtype=torch.float64),
                               atol=3e-16, rtol=0)
    torch.testing.assert_close(q[1:], ratio * aa, atol=1e-300, rtol=1e-14)
    torch.testing.assert_close(G.quaternion_to_axis_angle(q), aa, atol=1e-300, rtol=1e-13)


def test_rotmat_to_rot6d_layout():
    R = torch.arange(9, dtype=torch.float64).reshape(3, 3)
    assert G.rotmat_to_rot6d(R).tolist() == [0.0, 1.0, 3.0, 4.0, 6.0, 7.0]


def test_quaternion_convention_wxyz():
    s = math.sqrt(0.5)
    q = torch.tensor([s, 0.0, 0.0, s], dtype=torch.float64)  # +90 deg about z
    R = G.quaternion_to_rotmat(q)
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(R @ ex, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    aa = G.quaternion_to_axis_angle(q)
    torch.testing.assert_close(aa, torch.tensor([0.0, 0.0, PI / 2], dtype=torch.float64))


def test_rotmat_to_axis_angle_exactly_pi():
    for axis in ([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 2.0, -2.0]):
        a = torch.tensor(axis, dtype=torch.float64)
        aa = PI * a / a.norm()
        out = G.rotmat_to_axis_angle(G.axis_angle_to_rotmat(aa))
        _assert_same_aa(out, aa, atol=1e-7)


@SETTINGS
@given(aa_batches)
def test_float32_round_trip_accuracy(aa):
    aa32 = aa.float()
    R = G.axis_angle_to_rotmat(aa32)
    assert R.dtype == torch.float32
    _assert_rotation(R.double(), atol=1e-5)
    back = G.rotmat_to_axis_angle(R)
    assert back.dtype == torch.float32
    err = G.rotmat_geodesic_angle(G.axis_angle_to_rotmat(back).double(), _ref_rotmat(aa))
    assert (err < 1e-5).all(), err
    generic = (aa.norm(dim=-1) < PI - 1e-2).unsqueeze(-1)
    assert ((back.double() - aa).abs() * generic < 1e-5).all()


# ----------------------------------------------------------------------------- gradients


def _aa_near_pi() -> torch.Tensor:
    a = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    return (PI - 1e-5) * a / a.norm()


@pytest.mark.parametrize("where", ["zero", "near_pi"])
def test_gradcheck_rotation_maps(where):
    aa = torch.zeros(3, dtype=torch.float64) if where == "zero" else _aa_near_pi()
    aa = aa.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(G.axis_angle_to_rotmat, (aa,))
    assert torch.autograd.gradcheck(G.axis_angle_to_quaternion, (aa,))
    R = G.axis_angle_to_rotmat(aa).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(G.rotmat_to_axis_angle, (R,))
    assert torch.autograd.gradcheck(G.rotmat_to_quaternion, (R,))
    q = G.axis_angle_to_quaternion(aa).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(G.quaternion_to_axis_angle, (q,))
    assert torch.autograd.gradcheck(G.quaternion_to_rotmat, (q,))


@pytest.mark.parametrize("where", ["zero", "near_pi"])
def test_round_trip_jacobian_is_identity(where):
    aa = torch.zeros(3, dtype=torch.float64) if where == "zero" else _aa_near_pi()
    for fwd, bwd in (
        (G.axis_angle_to_rotmat, G.rotmat_to_axis_angle),
        (G.axis_angle_to_quaternion, G.quaternion_to_axis_angle),
    ):
        jac = torch.autograd.functional.jacobian(lambda a, f=fwd, b=bwd: b(f(a)), aa)
        torch.testing.assert_close(jac, torch.eye(3, dtype=aa.dtype), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_at_zero_and_near_pi(dtype):
    aa = torch.stack([torch.zeros(3, dtype=torch.float64), _aa_near_pi()]).to(dtype)
    aa.requires_grad_(True)
    weights = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(0)).to(dtype)
    R = G.axis_angle_to_rotmat(aa)
    loss = (R * weights).sum()
    loss = loss + G.rotmat_to_axis_angle(R).sum() + G.quaternion_to_axis_angle(
        G.rotmat_to_quaternion(R)
    ).square().sum()
    loss = loss + G.rotmat_geodesic_angle(R, R.detach()).sum()
    loss = loss + G.rotmat_to_axis_angle(G.rot6d_to_rotmat(G.rotmat_to_rot6d(R))).sum()
    (grad,) = torch.autograd.grad(loss, aa)
    assert torch.isfinite(grad).all(), grad
    # At aa = 0, dR/daa_k = skew(e_k): d/daa sum(W * R) = vee(W - W^T) (plus 1 from aa sum).
    aa0 = torch.zeros(3, dtype=dtype, requires_grad=True)
    (g0,) = torch.autograd.grad((G.axis_angle_to_rotmat(aa0) * weights[0]).sum(), aa0)
    w = weights[0]
    expected = torch.stack((w[2, 1] - w[1, 2], w[0, 2] - w[2, 0], w[1, 0] - w[0, 1]))
    torch.testing.assert_close(g0, expected)


# ----------------------------------------------------------------------------- dtype, shapes


def _cases(dtype):
    """(name, callable) pairs exercising every public function with leading dims (2, 3)."""
    gen = torch.Generator().manual_seed(1)

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

    b = (2, 3)
    aa, R, q, x6 = r(*b, 3), G.axis_angle_to_rotmat(r(*b, 3)), r(*b, 4), r(*b, 6)
    pts3, pts2 = r(*b, 5, 3), r(*b, 5, 2)
    cam = torch.cat((r(*b, 1).abs() + 0.5, r(*b, 2)), dim=-1)
    center, scale = r(*b, 2) * 100 + 300, r(*b).abs() + 0.5
    depth = pts3 + torch.tensor([0.0, 0.0, 20.0], dtype=dtype)
    conf = r(*b, 5).abs()
    img = torch.tensor([640.0, 480.0], dtype=dtype)
    return [
        ("axis_angle_to_rotmat", lambda: G.axis_angle_to_rotmat(aa), (*b, 3, 3)),
        ("rotmat_to_axis_angle", lambda: G.rotmat_to_axis_angle(R), (*b, 3)),
        ("rot6d_to_rotmat", lambda: G.rot6d_to_rotmat(x6), (*b, 3, 3)),
        ("rotmat_to_rot6d", lambda: G.rotmat_to_rot6d(R), (*b, 6)),
        ("axis_angle_to_quaternion", lambda: G.axis_angle_to_quaternion(aa), (*b, 4)),
        ("quaternion_to_axis_angle", lambda: G.quaternion_to_axis_angle(q), (*b, 3)),
        ("quaternion_to_rotmat", lambda: G.quaternion_to_rotmat(q), (*b, 3, 3)),
        ("rotmat_to_quaternion", lambda: G.rotmat_to_quaternion(R), (*b, 4)),
        ("rotmat_geodesic_angle", lambda: G.rotmat_geodesic_angle(R, R[:1]), b),
        ("nearest_rotation", lambda: G.nearest_rotation(R + 0.1 * r(*b, 3, 3)), (*b, 3, 3)),
        ("skew", lambda: G.skew(aa), (*b, 3, 3)),
        ("weak_perspective_project", lambda: G.weak_perspective_project(pts3, cam), (*b, 5, 2)),
        ("weak_to_perspective_translation", lambda: G.weak_to_perspective_translation(cam),
         (*b, 3)),
        ("perspective_translation_to_weak",
         lambda: G.perspective_translation_to_weak(G.weak_to_perspective_translation(cam)),
         (*b, 3)),
        ("perspective_project", lambda: G.perspective_project(depth, aa, 5000.0, center),
         (*b, 5, 2)),
        ("crop_norm_to_image", lambda: G.crop_norm_to_image(pts2, center, scale), (*b, 5, 2)),
        ("image_to_crop_norm", lambda: G.image_to_crop_norm(pts2, center, scale), (*b, 5, 2)),
        ("crop_cam_to_full_image_translation",
         lambda: G.crop_cam_to_full_image_translation(cam, center, scale, img), (*b, 3)),
        ("bbox_to_center_scale", lambda: G.bbox_to_center_scale(r(*b, 4).abs())[0], (*b, 2)),
        ("bbox_to_center_scale.scale", lambda: G.bbox_to_center_scale(r(*b, 4).abs())[1], b),
        ("image_to_crop", lambda: G.image_to_crop(pts2, center, scale, 224, 30.0), (*b, 5, 2)),
        ("crop_to_image", lambda: G.crop_to_image(pts2, center, scale, 224, 20 * aa[..., 0]),
         (*b, 5, 2)),
        ("crop_px_to_norm", lambda: G.crop_px_to_norm(pts2, 224), (*b, 5, 2)),
        ("norm_to_crop_px", lambda: G.norm_to_crop_px(pts2, 224), (*b, 5, 2)),
        ("procrustes_align", lambda: G.procrustes_align(pts3, depth), (*b, 5, 3)),
        ("procrustes_params", lambda: G.procrustes_params(pts3, depth)[1], (*b, 3, 3)),
        ("mpjpe", lambda: G.mpjpe(pts3, depth), b),
        ("pa_mpjpe", lambda: G.pa_mpjpe(pts3, depth, conf > 0.5), b),
        ("pck", lambda: G.pck(pts2, pts2 * 1.1, 0.1), b),
        ("reprojection_error_px", lambda: G.reprojection_error_px(pts2, pts2 + 1, conf), b),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_public_function_keeps_dtype_and_batch_shape(dtype):
    cases = _cases(dtype)
    covered = {name.split(".")[0] for name, _, _ in cases}
    assert covered == {n for n in G.__all__ if callable(getattr(G, n))}
    for name, fn, shape in cases:
        out = fn()
        assert out.dtype == dtype, name
        assert tuple(out.shape) == tuple(shape), (name, out.shape)
        assert torch.isfinite(out).all(), name


def test_shape_errors():
    with pytest.raises(ValueError):
        G.axis_angle_to_rotmat(torch.zeros(4))
    with pytest.raises(ValueError):
        G.rot6d_to_rotmat(torch.zeros(2, 5))
    with pytest.raises(ValueError):
        G.rotmat_to_quaternion(torch.zeros(3, 2))


def test_nearest_rotation_closed_forms():
    gen = torch.Generator().manual_seed(5)
    R = G.axis_angle_to_rotmat(torch.randn(8, 3, generator=gen, dtype=torch.float64))
    torch.testing.assert_close(G.nearest_rotation(R), R, atol=1e-12, rtol=0)  # a rotation
    torch.testing.assert_close(G.nearest_rotation(2.5 * R), R, atol=1e-12, rtol=0)
    # the chordal mean of rotations by +t and -t about one axis is the identity
    aa = torch.tensor([[0.0, 0.0, 0.7]], dtype=torch.float64)
    mean = 0.5 * (G.axis_angle_to_rotmat(aa) + G.axis_angle_to_rotmat(-aa))
    torch.testing.assert_close(G.nearest_rotation(mean)[0], torch.eye(3, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    # a reflection is never returned: det is +1 even for a matrix with det < 0
    flip = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    out = G.nearest_rotation(flip @ R)
    torch.testing.assert_close(torch.linalg.det(out), torch.ones(8, dtype=torch.float64))
