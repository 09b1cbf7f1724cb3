"""Seated, kneeling and bent-over variants of mocap poses, for training the prior.

The CMU clips behind the pose bank are mostly walking, dancing and martial arts: they
hold almost no seated, kneeling or bent-over people, which are common in photos.
:func:`pose_variants` makes such poses from bank poses by *replacing* the legs (and,
for ``"bending"``, adding trunk flexion) with sampled joint rotations, and keeping the
arms, head and the rest of the body of the source pose.

SMPL's frame (see :mod:`eft.body.poses`): y up, the body faces +z, +x is the
subject's left.  A rotation about +x by a negative angle swings a thigh forward
(hip flexion); a positive one bends a knee (shank backwards) or tips the trunk
forward.  Angles below are in degrees.

* ``"seated"``: hips flexed ``U(60, 105)``, knees bent ``U(50, 115)``, each leg with
  its own jitter, abduction ``N(0, 10)`` and ankle ``N(0, 12)``; trunk ``N(5, 10)``.
* ``"kneeling"``: hips ``U(-25, 10)``, knees ``U(90, 140)``, ankles ``U(-30, 10)``,
  optionally one knee up (hip ``U(60, 95)``, knee ``U(70, 100)``) with p = 0.4.
* ``"bending"``: the source's legs (hips flexed an extra ``U(0, 20)``) and the three
  spine joints each ``U(10, 30)`` forward, so the trunk leans 30-90 degrees over
  roughly upright legs.

Deterministic in ``seed`` (numpy ``default_rng``).
"""

from __future__ import annotations

import numpy as np

from eft.body.joints import SMPL24_NAMES

__all__ = ["VARIANT_KINDS", "pose_variants"]

VARIANT_KINDS: tuple[str, ...] = ("seated", "kneeling", "bending")

_J = {n: i for i, n in enumerate(SMPL24_NAMES)}
_DEG = np.pi / 180.0


def _axis_rot(angle: np.ndarray, axis: int) -> np.ndarray:
    """(n,) radians -> (n, 3, 3) rotations about coordinate axis ``axis`` (0 = x, 2 = z)."""
    i, j = [k for k in range(3) if k != axis]
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((angle.shape[0], 3, 3))
    out[:, axis, axis] = 1.0
    out[:, i, i], out[:, i, j] = c, -s
    out[:, j, i], out[:, j, j] = s, c
    return out


def _rx(angle: np.ndarray) -> np.ndarray:
    return _axis_rot(angle, 0)


def _rz(angle: np.ndarray) -> np.ndarray:
    return _axis_rot(angle, 2)


def _aa_to_rot(aa: np.ndarray) -> np.ndarray:
    """(n, 3) axis-angle -> (n, 3, 3) (Rodrigues)."""
    theta = np.linalg.norm(aa, axis=1, keepdims=True)
    axis = aa / np.maximum(theta, 1e-12)
    x, y, z = axis.T
    k = np.zeros((aa.shape[0], 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 0] = -z, y, z
    k[:, 1, 2], k[:, 2, 0], k[:, 2, 1] = -x, -y, x
    t = theta[:, :, None]
    return np.eye(3)[None] + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def _rot_to_aa(rot: np.ndarray) -> np.ndarray:
    """(n, 3, 3) -> (n, 3) axis-angle (angles below pi, as these are)."""
    cos = np.clip((np.trace(rot, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    theta = np.arccos(cos)
    v = np.stack([rot[:, 2, 1] - rot[:, 1, 2], rot[:, 0, 2] - rot[:, 2, 0],
                  rot[:, 1, 0] - rot[:, 0, 1]], axis=1)
    sin = np.sin(theta)
    scale = np.where(sin > 1e-8, theta / np.maximum(2 * sin, 1e-12), 0.5)
    return v * scale[:, None]


def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, n) * _DEG


def pose_variants(poses: np.ndarray, n: int, seed: int, kind: str) -> np.ndarray:
    """``n`` poses of ``kind`` (:data:`VARIANT_KINDS`) made from rows of ``poses``.

    ``poses``: (N, 72) axis-angle (global orientation first; kept as is - the
    synthetic generator replaces it).  Returns (n, 72) float64.
    """
    if kind not in VARIANT_KINDS:
        raise ValueError(f"kind must be one of {VARIANT_KINDS}, got {kind!r}")
    src = np.asarray(poses, dtype=np.float64).reshape(-1, 72)
    rng = np.random.default_rng(seed)
    out = src[rng.integers(0, src.shape[0], n)].copy().reshape(n, 24, 3)

    def put(joint: str, rot: np.ndarray) -> None:
        out[:, _J[joint]] = _rot_to_aa(rot)

    def compose(joint: str, rot: np.ndarray) -> None:
        put(joint, rot @ _aa_to_rot(out[:, _J[joint]]))

    if kind == "seated":
        hip = _u(rng, 60, 105, n)
        knee = _u(rng, 50, 115, n)
        for side, sign in (("left", 1.0), ("right", -1.0)):
            h = hip + rng.normal(0, 8, n) * _DEG
            k = knee + rng.normal(0, 10, n) * _DEG
            abd = sign * np.abs(rng.normal(0, 10, n)) * _DEG
            put(f"{side}_hip", _rz(abd) @ _rx(-h))
            put(f"{side}_knee", _rx(k))
            put(f"{side}_ankle", _rx(rng.normal(0, 12, n) * _DEG))
        put("spine1", _rx(rng.normal(5, 10, n) * _DEG))
    elif kind == "kneeling":
        one_up = rng.random(n) < 0.4
        for side in ("left", "right"):
            h = _u(rng, -25, 10, n)
            k = _u(rng, 90, 140, n)
            up = one_up & (side == "left")
            h = np.where(up, _u(rng, 60, 95, n), h)
            k = np.where(up, _u(rng, 70, 100, n), k)
            put(f"{side}_hip", _rx(-h))
            put(f"{side}_knee", _rx(k))
            put(f"{side}_ankle", _rx(_u(rng, -30, 10, n)))
    else:  # bending
        extra = _u(rng, 0, 20, n)
        for side in ("left", "right"):
            compose(f"{side}_hip", _rx(-(extra + rng.normal(0, 3, n) * _DEG)))
        for joint in ("spine1", "spine2", "spine3"):
            compose(joint, _rx(_u(rng, 10, 30, n)))
    return out.reshape(n, 72)
