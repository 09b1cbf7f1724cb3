"""Joint conventions, all defined by joint *names*.

The project's one keypoint convention is SPIN's 49 keypoints: the 25 OpenPose
BODY_25 joints followed by 24 "ground-truth" joints (a superset of the joints
that the common 2D/3D datasets annotate).  Every dataset table maps names into
this order, so index arithmetic never leaks outside this module.
"""

from __future__ import annotations

# SMPL's 24 skeleton joints, in kinematic-tree order.
SMPL24_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

# Parent of each SMPL joint (-1 for the root); identical for every SMPL-layout model.
SMPL24_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)

# OpenPose BODY_25 order.
OPENPOSE25_NAMES: tuple[str, ...] = (
    "OP Nose", "OP Neck", "OP RShoulder", "OP RElbow", "OP RWrist",
    "OP LShoulder", "OP LElbow", "OP LWrist", "OP MidHip", "OP RHip",
    "OP RKnee", "OP RAnkle", "OP LHip", "OP LKnee", "OP LAnkle",
    "OP REye", "OP LEye", "OP REar", "OP LEar", "OP LBigToe",
    "OP LSmallToe", "OP LHeel", "OP RBigToe", "OP RSmallToe", "OP RHeel",
)

# SPIN's 24 ground-truth joints (indices 25..48 of the 49).
SPIN_GT24_NAMES: tuple[str, ...] = (
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
    "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow",
    "Left Wrist", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)",
    "Spine (H36M)", "Jaw (H36M)", "Head (H36M)", "Nose", "Left Eye", "Right Eye",
    "Left Ear", "Right Ear",
)

SPIN49_NAMES: tuple[str, ...] = OPENPOSE25_NAMES + SPIN_GT24_NAMES
SPIN49_INDEX: dict[str, int] = {n: i for i, n in enumerate(SPIN49_NAMES)}

# Names of the 9 joints that SPIN's J_regressor_extra.npy adds (row order of that file).
SPIN_EXTRA9_NAMES: tuple[str, ...] = (
    "Right Hip", "Left Hip", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)",
    "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)",
)

# Surface landmarks that smplx's VertexJointSelector reads from vertex ids
# (face and feet only; we never use the SMPL-H fingertips).
VERTEX_LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "reye", "leye", "rear", "lear",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
