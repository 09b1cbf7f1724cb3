"""Where each of SPIN's 49 keypoints comes from on a body model.

Every keypoint is a linear function of the posed mesh and skeleton::

    keypoints (B,49,3) = W_v (49,V) @ vertices (B,V,3) + W_j (49,24) @ joints (B,24,3)

so one pair of matrices describes any model, and later stages can precontract
them with the skinning (the map is linear in the vertices).

Two source tables exist:

* ``SPIN_SOURCES``: SPIN's published map for SMPL (skeleton joints for limbs,
  surface vertices for the face and feet, ``J_regressor_extra`` for the rest).
  Pretrained SPIN/EFT checkpoints were trained against it, so user SMPL files
  use it unchanged.
* ``ANATOMICAL_SOURCES``: for models that ship a vertex regressor for the COCO
  keypoints (the open body model).  Rig joints sit 1-3 cm away from the
  anatomical landmarks that annotators click, so limbs, face and feet come from
  that regressor instead of the skeleton.

A source is ``(kind, name)`` with kind one of ``joint`` (SMPL24 name), ``vertex``
(landmark vertex id), ``coco`` (row of ``J_regressor_coco``) or ``extra`` (row of
``J_regressor_extra``).  A keypoint listing several sources is their mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from eft.body.joints import (
    COCO23_NAMES,
    COCO23_TO_SPIN,
    OPENPOSE18_TO_GT,
    SMPL24_NAMES,
    SPIN49_NAMES,
    SPIN_EXTRA9_NAMES,
)

Source = tuple[str, str]

_SPIN_OPENPOSE: dict[str, Source] = {
    "OP Nose": ("vertex", "nose"), "OP Neck": ("joint", "neck"),
    "OP RShoulder": ("joint", "right_shoulder"), "OP RElbow": ("joint", "right_elbow"),
    "OP RWrist": ("joint", "right_wrist"), "OP LShoulder": ("joint", "left_shoulder"),
    "OP LElbow": ("joint", "left_elbow"), "OP LWrist": ("joint", "left_wrist"),
    "OP MidHip": ("joint", "pelvis"), "OP RHip": ("joint", "right_hip"),
    "OP RKnee": ("joint", "right_knee"), "OP RAnkle": ("joint", "right_ankle"),
    "OP LHip": ("joint", "left_hip"), "OP LKnee": ("joint", "left_knee"),
    "OP LAnkle": ("joint", "left_ankle"), "OP REye": ("vertex", "reye"),
    "OP LEye": ("vertex", "leye"), "OP REar": ("vertex", "rear"), "OP LEar": ("vertex", "lear"),
    "OP LBigToe": ("vertex", "LBigToe"), "OP LSmallToe": ("vertex", "LSmallToe"),
    "OP LHeel": ("vertex", "LHeel"), "OP RBigToe": ("vertex", "RBigToe"),
    "OP RSmallToe": ("vertex", "RSmallToe"), "OP RHeel": ("vertex", "RHeel"),
}
_SPIN_GT: dict[str, Source] = {
    "Right Ankle": ("joint", "right_ankle"), "Right Knee": ("joint", "right_knee"),
    "Right Hip": ("extra", "Right Hip"), "Left Hip": ("extra", "Left Hip"),
    "Left Knee": ("joint", "left_knee"), "Left Ankle": ("joint", "left_ankle"),
    "Right Wrist": ("joint", "right_wrist"), "Right Elbow": ("joint", "right_elbow"),
    "Right Shoulder": ("joint", "right_shoulder"), "Left Shoulder": ("joint", "left_shoulder"),
    "Left Elbow": ("joint", "left_elbow"), "Left Wrist": ("joint", "left_wrist"),
    "Nose": ("vertex", "nose"), "Left Eye": ("vertex", "leye"), "Right Eye": ("vertex", "reye"),
    "Left Ear": ("vertex", "lear"), "Right Ear": ("vertex", "rear"),
}
_EXTRA_ONLY = ("Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)",
               "Spine (H36M)", "Jaw (H36M)", "Head (H36M)")

SPIN_SOURCES: dict[str, tuple[Source, ...]] = {
    **{k: (v,) for k, v in _SPIN_OPENPOSE.items()},
    **{k: (v,) for k, v in _SPIN_GT.items()},
    **{k: (("extra", k),) for k in _EXTRA_ONLY},
}

# COCO name for each limb / face / foot keypoint, for the GT half and its OpenPose twin.
_COCO_FOR: dict[str, str] = {spin: coco for coco, spin in COCO23_TO_SPIN.items()}
_COCO_FOR.update({"OP " + op: _COCO_FOR[gt] for op, gt in OPENPOSE18_TO_GT.items()
                  if gt in _COCO_FOR})
ANATOMICAL_SOURCES: dict[str, tuple[Source, ...]] = {
    **{k: (("coco", v),) for k, v in _COCO_FOR.items()},
    # OpenPose places Neck and MidHip halfway between the shoulders / hips.
    "OP Neck": (("coco", "left_shoulder"), ("coco", "right_shoulder")),
    "OP MidHip": (("coco", "left_hip"), ("coco", "right_hip")),
    **{k: (("extra", k),) for k in _EXTRA_ONLY},
}

assert set(SPIN_SOURCES) == set(SPIN49_NAMES) == set(ANATOMICAL_SOURCES)


def build_keypoint_map(
    table: Mapping[str, Sequence[Source]],
    num_vertices: int,
    vertex_ids: Mapping[str, int],
    coco_regressor: np.ndarray | None = None,
    extra_regressor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Turn a source table into matrices.

    Returns ``(W_v (49,V), W_j (49,24), valid (49,) bool, missing)`` where
    ``missing`` lists ``"<keypoint> (needs <source>)"`` for keypoints whose source
    this model lacks; those rows stay zero and ``valid`` is False.
    """
    w_v = np.zeros((len(SPIN49_NAMES), num_vertices), dtype=np.float64)
    w_j = np.zeros((len(SPIN49_NAMES), len(SMPL24_NAMES)), dtype=np.float64)
    valid = np.ones(len(SPIN49_NAMES), dtype=bool)
    missing: list[str] = []
    regressors = {
        "coco": (coco_regressor, COCO23_NAMES, "J_regressor_coco"),
        "extra": (extra_regressor, SPIN_EXTRA9_NAMES, "J_regressor_extra"),
    }
    for k, name in enumerate(SPIN49_NAMES):
        sources = table[name]
        weight = 1.0 / len(sources)
        for kind, src in sources:
            if kind == "joint":
                w_j[k, SMPL24_NAMES.index(src)] += weight
            elif kind == "vertex":
                if src not in vertex_ids:
                    valid[k] = False
                    missing.append(f"{name} (needs vertex id '{src}')")
                    continue
                w_v[k, int(vertex_ids[src])] += weight
            else:
                matrix, names, label = regressors[kind]
                if matrix is None:
                    valid[k] = False
                    missing.append(f"{name} (needs {label})")
                    continue
                w_v[k] += weight * np.asarray(matrix, dtype=np.float64)[names.index(src)]
    w_v[~valid] = 0.0
    w_j[~valid] = 0.0
    return w_v, w_j, valid, missing


__all__ = [
    "ANATOMICAL_SOURCES",
    "SPIN_SOURCES",
    "build_keypoint_map",
]
