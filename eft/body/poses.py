"""A few canonical body poses as SMPL axis-angle, for checks and demos.

SMPL's frame: y up, the body faces +z, +x is the subject's left.  A rotation
about +z by a negative angle lowers the left arm; about +x by a negative angle
swings a leg forward.
"""

from __future__ import annotations

import math

import torch

from eft.body.joints import SMPL24_NAMES

_J = {n: i for i, n in enumerate(SMPL24_NAMES)}


def _pose(**joint_aa: tuple[float, float, float]) -> torch.Tensor:
    """(24,3) axis-angle from ``joint_name=(x, y, z)`` in degrees."""
    pose = torch.zeros(24, 3, dtype=torch.float64)
    for name, aa in joint_aa.items():
        pose[_J[name]] = torch.tensor(aa, dtype=torch.float64) * math.pi / 180.0
    return pose


def canonical_poses() -> dict[str, torch.Tensor]:
    """Name -> (24,3) float64 axis-angle pose: T, A, arms up, squat and walking."""
    return {
        "T-pose": _pose(),
        "A-pose": _pose(left_shoulder=(0, 0, -45), right_shoulder=(0, 0, 45)),
        "arms up": _pose(left_shoulder=(0, 0, 80), right_shoulder=(0, 0, -80)),
        "squat": _pose(
            left_hip=(-100, 0, 0), right_hip=(-100, 0, 0),
            left_knee=(120, 0, 0), right_knee=(120, 0, 0),
            left_ankle=(-20, 0, 0), right_ankle=(-20, 0, 0),
            spine1=(20, 0, 0), left_shoulder=(0, -60, -10), right_shoulder=(0, 60, 10)),
        "walking": _pose(
            left_hip=(-30, 0, 0), right_hip=(20, 0, 0),
            left_knee=(10, 0, 0), right_knee=(45, 0, 0),
            left_shoulder=(0, 0, -70), right_shoulder=(0, 0, 70),
            left_elbow=(0, 30, 0), right_elbow=(0, -30, 0)),
    }
