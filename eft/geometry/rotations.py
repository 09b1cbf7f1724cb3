"""Rotation representations: axis-angle, rotation matrices, SPIN's 6D, quaternions.

Every function is batched over arbitrary leading dimensions ``...``, differentiable,
and returns the dtype it was given (float32 or float64).

Conventions
-----------
* Axis-angle ``aa`` (..., 3): direction = rotation axis, norm = angle in radians.
* Rotation matrices ``R`` (..., 3, 3) act on column vectors: ``x' = R @ x``.
* Quaternions (..., 4) are ``(w, x, y, z)`` with ``w`` the scalar part.  Functions
  that *produce* quaternions from matrices return unit quaternions with ``w >= 0``.
* 6D (SPIN, Zhou et al. 2019): the six numbers are read as a (3, 2) matrix
  ``x.reshape(..., 3, 2)`` whose columns are Gram-Schmidt-orthonormalised, so
  ``rotmat_to_rot6d(R) == R[..., :, :2].reshape(..., 6)``.

Numerics
--------
Ratios such as ``sin(t)/t`` switch to Taylor series for tiny angles, and the
branch not taken is always evaluated at a harmless point, so values *and*
gradients are finite at exactly zero rotation.  Matrix -> quaternion uses
Shepperd's method (the branch with the largest diagonal term), which stays
accurate for angles at and near pi; axis-angle is then recovered with
``2 * atan2(|v|, w)`` so returned angles lie in ``[0, pi]``.
"""

from __future__ import annotations

import torch

from ._common import SMALL_ANGLE_SQ, check_last_dims

__all__ = [
    "nearest_rotation",
    "axis_angle_to_rotmat",
    "rotmat_to_axis_angle",
    "rot6d_to_rotmat",
    "rotmat_to_rot6d",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "quaternion_to_rotmat",
    "rotmat_to_quaternion",
    "rotmat_geodesic_angle",
    "skew",
]


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix: ``skew(v) @ u == cross(v, u)``.

    Shapes: ``v`` (..., 3) -> (..., 3, 3).
    """
    check_last_dims("v", v, 3)
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    rows = (
        torch.stack((o, -z, y), dim=-1),
        torch.stack((z, o, -x), dim=-1),
        torch.stack((-y, x, o), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def _split_small(sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(small, safe_root)``: a mask of tiny squared angles, and ``sqrt(sq)``
    where it is not tiny (1 elsewhere, so no branch ever sees 0/0)."""
    small = sq < SMALL_ANGLE_SQ
    root = torch.sqrt(torch.where(small, torch.ones_like(sq), sq))
    return small, root


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula.

    Shapes: ``aa`` (..., 3) -> (..., 3, 3).

    Uses ``R = I + A K + B K^2`` with ``K = skew(aa)`` (unnormalised), ``A = sin t / t``
    and ``B = (1 - cos t) / t^2 = 2 sin^2(t/2) / t^2``; both switch to their Taylor
    series near ``t = 0``.
    """
    check_last_dims("aa", aa, 3)
    sq = (aa * aa).sum(-1)
    small, t = _split_small(sq)
    sinc_half = torch.sin(0.5 * t) / t
    a = torch.where(small, 1.0 - sq / 6.0 + sq * sq / 120.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - sq / 24.0 + sq * sq / 720.0, 2.0 * sinc_half * sinc_half)
    k = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    # K @ K = aa aa^T - |aa|^2 I
    k2 = aa.unsqueeze(-1) * aa.unsqueeze(-2) - sq[..., None, None] * eye
    return eye + a[..., None, None] * k + b[..., None, None] * k2


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle -> unit quaternion ``(cos(t/2), sin(t/2) * axis)``.

    Shapes: ``aa`` (..., 3) -> (..., 4).

    Continuous in ``aa``; ``w >= 0`` holds automatically for angles ``<= pi`` (for larger
    angles ``w`` is negative, which represents the same rotation).
    """
    check_last_dims("aa", aa, 3)
    sq = (aa * aa).sum(-1)
    small, t = _split_small(sq)
    w = torch.where(small, 1.0 - sq / 8.0 + sq * sq / 384.0, torch.cos(0.5 * t))
    k = torch.where(small, 0.5 - sq / 48.0 + sq * sq / 3840.0, torch.sin(0.5 * t) / t)
    return torch.cat((w.unsqueeze(-1), k.unsqueeze(-1) * aa), dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(w, x, y, z)`` -> axis-angle with angle in ``[0, pi]``.

    Shapes: ``q`` (..., 4) -> (..., 3).

    ``q`` need not be exactly unit (the angle ``2 atan2(|v|, |w|)`` is scale
    invariant).  ``q`` and ``-q`` give the same result.  The zero quaternion maps to 0.
    """
    check_last_dims("q", q, 4)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    w2 = w * w
    small = n2 <= SMALL_ANGLE_SQ * w2
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    w_safe = torch.where(small & (w > 0), w, torch.ones_like(w))
    r2 = n2 / (w_safe * w_safe)
    # angle / |v| = 2 atan(|v| / w) / |v|, with its series in r2 = |v|^2 / w^2.
    factor = torch.where(
        small,
        2.0 / w_safe * (1.0 - r2 / 3.0 + r2 * r2 / 5.0),
        2.0 * torch.atan2(n, w) / n,
    )
    return factor.unsqueeze(-1) * v


def quaternion_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(w, x, y, z)`` -> rotation matrix.

    Shapes: ``q`` (..., 4) -> (..., 3, 3).

    Non-unit quaternions are normalised implicitly (``s = 2 / |q|^2``); the zero
    quaternion is invalid.
    """
    check_last_dims("q", q, 4)
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    xx, yy, zz = s * x * x, s * y * y, s * z * z
    xy, xz, yz = s * x * y, s * x * z, s * y * z
    wx, wy, wz = s * w * x, s * w * y, s * w * z
    rows = (
        torch.stack((1.0 - yy - zz, xy - wz, xz + wy), dim=-1),
        torch.stack((xy + wz, 1.0 - xx - zz, yz - wx), dim=-1),
        torch.stack((xz - wy, yz + wx, 1.0 - xx - yy), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def rotmat_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix -> unit quaternion ``(w, x, y, z)`` with ``w >= 0`` (Shepperd).

    Shapes: ``R`` (..., 3, 3) -> (..., 4).

    Four candidate vectors, each equal to ``4 q_i q`` for one component ``q_i``, are
    built from sums/differences of entries of ``R``; the one with the largest
    ``4 q_i^2`` (norm >= 1 for a rotation) is normalised.  No square root or division
    ever sees a value near zero, so this is accurate and differentiable everywhere,
    including angles of exactly 0 and pi.
    """
    check_last_dims("R", R, 3, 3)
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    d_w = 1.0 + r00 + r11 + r22
    d_x = 1.0 + r00 - r11 - r22
    d_y = 1.0 - r00 + r11 - r22
    d_z = 1.0 - r00 - r11 + r22
    a_x, a_y, a_z = r21 - r12, r02 - r20, r10 - r01  # 4 w x, 4 w y, 4 w z
    s_xy, s_xz, s_yz = r01 + r10, r02 + r20, r12 + r21  # 4 x y, 4 x z, 4 y z
    candidates = torch.stack(
        (
            torch.stack((d_w, a_x, a_y, a_z), dim=-1),
            torch.stack((a_x, d_x, s_xy, s_xz), dim=-1),
            torch.stack((a_y, s_xy, d_y, s_yz), dim=-1),
            torch.stack((a_z, s_xz, s_yz, d_z), dim=-1),
        ),
        dim=-2,
    )  # (..., 4, 4)
    best = torch.stack((d_w, d_x, d_y, d_z), dim=-1).argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(candidates, -2, index).squeeze(-2)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def rotmat_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix -> axis-angle with angle in ``[0, pi]`` (via Shepperd quaternions).

    Shapes: ``R`` (..., 3, 3) -> (..., 3).

    At exactly pi the sign of the axis is arbitrary (both signs are the same rotation).
    """
    return quaternion_to_axis_angle(rotmat_to_quaternion(R))


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """SPIN's 6D representation -> rotation matrix (column convention).

    Shapes: ``x`` (..., 6) -> (..., 3, 3).

    ``x.reshape(..., 3, 2)`` gives columns ``a1, a2``; ``b1 = a1/|a1|``,
    ``b2 = normalise(a2 - <b1, a2> b1)``, ``b3 = b1 x b2`` and ``R = [b1 b2 b3]``
    (as columns).  Degenerate inputs (``a1 = 0`` or ``a2 || a1``) are invalid.
    """
    check_last_dims("x", x, 6)
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = torch.nn.functional.normalize(b2, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix -> SPIN's 6D representation (first two columns, row-major).

    Shapes: ``R`` (..., 3, 3) -> (..., 6).
    """
    check_last_dims("R", R, 3, 3)
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


def rotmat_geodesic_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle in ``[0, pi]`` of the relative rotation ``R1^T R2`` (geodesic distance on SO(3)).

    Shapes: ``R1`` (..., 3, 3), ``R2`` (..., 3, 3) (broadcastable) -> (...).

    Computed as ``2 atan2(|v|, w)`` of the relative quaternion, which is accurate near
    0 and pi (unlike ``acos((tr - 1) / 2)``).  The gradient at ``R1 == R2`` is 0 (the
    distance has a kink there).
    """
    check_last_dims("R1", R1, 3, 3)
    check_last_dims("R2", R2, 3, 3)
    q = rotmat_to_quaternion(R1.transpose(-1, -2) @ R2)
    return 2.0 * torch.atan2(torch.linalg.vector_norm(q[..., 1:], dim=-1), q[..., 0])


def nearest_rotation(M: torch.Tensor) -> torch.Tensor:
    """The rotation nearest to each matrix in the Frobenius norm: ``U diag(1, 1,
    det(U V^T)) V^T`` from the SVD ``M = U S V^T``.  Applied to the arithmetic mean of
    rotations it gives their chordal L2 mean.

    Shapes: ``M`` (..., 3, 3) -> (..., 3, 3).
    """
    check_last_dims("M", M, 3, 3)
    u, _, vh = torch.linalg.svd(M)
    fix = torch.ones(*M.shape[:-1], dtype=M.dtype, device=M.device)
    fix[..., 2] = torch.linalg.det(u @ vh)
    return u @ (fix.unsqueeze(-1) * vh)
