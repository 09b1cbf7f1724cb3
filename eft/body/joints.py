"""Joint conventions, all defined by joint *names*.

The project's one keypoint convention is SPIN's 49 keypoints: the 25 OpenPose
BODY_25 joints followed by 24 "ground-truth" joints (a superset of the joints
that the common 2D/3D datasets annotate).  Every dataset table maps names into
this order, so index arithmetic never leaks outside this module.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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

#: SPIN-49 ground-truth slots placed alike by every skeleton: elbows, wrists, knees,
#: ankles, shoulders and the face (nose, eyes, ears).  Hips, pelvis, spine, thorax,
#: neck and head are left out: studio skeletons define them unlike the body model.
SKELETON_FREE_SLOTS: tuple[int, ...] = tuple(SPIN49_INDEX[n] for n in (
    "Left Elbow", "Left Wrist", "Right Elbow", "Right Wrist", "Left Knee", "Left Ankle",
    "Right Knee", "Right Ankle", "Left Shoulder", "Right Shoulder", "Nose", "Left Eye",
    "Right Eye", "Left Ear", "Right Ear"))

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

# H36M-17 joints as produced by SPIN's J_regressor_h36m (row order): keypoint format
# "h36m17_spin".  SPIN's H36M_TO_J14 = [6,5,4,1,2,3,16,15,14,11,12,13,8,10] maps these
# rows onto the LSP-14 order, which fixes the side of each row: index 1 is the LEFT hip.
# Human3.6M's own 17-joint order, used by mmpose and VideoPose3D ("h36m17_std",
# H36M17_STD_NAMES below), has the RIGHT hip at index 1: the legs are the other way
# round (the arms agree).
H36M17_NAMES: tuple[str, ...] = (
    "Pelvis", "Left Hip", "Left Knee", "Left Ankle", "Right Hip", "Right Knee",
    "Right Ankle", "Spine", "Thorax", "Jaw", "Head", "Left Shoulder", "Left Elbow",
    "Left Wrist", "Right Shoulder", "Right Elbow", "Right Wrist",
)

# COCO-17 keypoints followed by the 6 COCO-WholeBody foot keypoints.
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_FEET6_NAMES: tuple[str, ...] = (
    "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)
COCO23_NAMES: tuple[str, ...] = COCO17_NAMES + COCO_FEET6_NAMES

SPIN_GT24_INDEX: dict[str, int] = {n: i for i, n in enumerate(SPIN_GT24_NAMES)}
NUM_SPIN_JOINTS: int = len(SPIN49_NAMES)  # 49
NUM_OPENPOSE_JOINTS: int = len(OPENPOSE25_NAMES)  # 25; the GT joints start here


# ---------------------------------------------------------------------------
# Dataset keypoint orders and their name-level mapping onto SPIN-49.
# Every table below is {dataset joint name: SPIN-49 name}; index arrays are
# derived from the names further down, never written out by hand.
# ---------------------------------------------------------------------------

def _coco_style_to_spin(name: str) -> str:
    """'left_shoulder' -> 'Left Shoulder', 'nose' -> 'Nose' (the SPIN GT spelling)."""
    return name.replace("_", " ").title()


# COCO-17: every COCO name has a SPIN GT joint of the same meaning.
COCO17_TO_SPIN: dict[str, str] = {n: _coco_style_to_spin(n) for n in COCO17_NAMES}

# COCO-WholeBody feet have no GT slot in SPIN; they land on the OpenPose feet.
COCO23_TO_SPIN: dict[str, str] = {
    **COCO17_TO_SPIN,
    "left_big_toe": "OP LBigToe", "left_small_toe": "OP LSmallToe", "left_heel": "OP LHeel",
    "right_big_toe": "OP RBigToe", "right_small_toe": "OP RSmallToe", "right_heel": "OP RHeel",
}

MPII16_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)
MPII16_TO_SPIN: dict[str, str] = {
    "right_ankle": "Right Ankle", "right_knee": "Right Knee", "right_hip": "Right Hip",
    "left_hip": "Left Hip", "left_knee": "Left Knee", "left_ankle": "Left Ankle",
    "pelvis": "Pelvis (MPII)", "thorax": "Thorax (MPII)",
    "upper_neck": "Neck (LSP)", "head_top": "Top of Head (LSP)",
    "right_wrist": "Right Wrist", "right_elbow": "Right Elbow", "right_shoulder": "Right Shoulder",
    "left_shoulder": "Left Shoulder", "left_elbow": "Left Elbow", "left_wrist": "Left Wrist",
}

# LSP-14 is the order of SPIN's first 14 GT joints (also the "J14" evaluation order).
LSP14_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "head_top",
)
LSP14_TO_SPIN: dict[str, str] = {
    **{n: _coco_style_to_spin(n) for n in LSP14_NAMES[:12]},
    "neck": "Neck (LSP)", "head_top": "Top of Head (LSP)",
}

# PoseTrack-17: COCO order with head_bottom/head_top in place of the eyes.
POSETRACK17_NAMES: tuple[str, ...] = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
) + COCO17_NAMES[5:]
POSETRACK17_TO_SPIN: dict[str, str] = {
    **{n: COCO17_TO_SPIN[n] for n in COCO17_NAMES[5:]},
    "nose": "Nose", "head_bottom": "Neck (LSP)", "head_top": "Top of Head (LSP)",
    # SPIN/EFT's PoseTrack table sends left_ear to GT 23 "Right Ear" and right_ear
    # to GT 22 "Left Ear".  That is what the released EFT PoseTrack fits were made
    # with, so it is reproduced here on purpose (do not "fix" it).
    "left_ear": "Right Ear", "right_ear": "Left Ear",
}

CROWDPOSE14_NAMES: tuple[str, ...] = COCO17_NAMES[5:] + ("head", "neck")
CROWDPOSE14_TO_SPIN: dict[str, str] = {
    **{n: COCO17_TO_SPIN[n] for n in COCO17_NAMES[5:]},
    "head": "Top of Head (LSP)", "neck": "Neck (LSP)",
}

# OpenPose's own spellings (BODY_25 and the older COCO-18 model).
OPENPOSE25_RAW_NAMES: tuple[str, ...] = tuple(n[len("OP "):] for n in OPENPOSE25_NAMES)
OPENPOSE18_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)
OPENPOSE25_TO_SPIN: dict[str, str] = {n: "OP " + n for n in OPENPOSE25_RAW_NAMES}
OPENPOSE18_TO_SPIN: dict[str, str] = {n: "OP " + n for n in OPENPOSE18_NAMES}

# The SPIN GT joint that carries the same body point as each OpenPose-18 joint.
OPENPOSE18_TO_GT: dict[str, str] = {
    "Nose": "Nose", "Neck": "Neck (LSP)",
    "RShoulder": "Right Shoulder", "RElbow": "Right Elbow", "RWrist": "Right Wrist",
    "LShoulder": "Left Shoulder", "LElbow": "Left Elbow", "LWrist": "Left Wrist",
    "RHip": "Right Hip", "RKnee": "Right Knee", "RAnkle": "Right Ankle",
    "LHip": "Left Hip", "LKnee": "Left Knee", "LAnkle": "Left Ankle",
    "REye": "Right Eye", "LEye": "Left Eye", "REar": "Right Ear", "LEar": "Left Ear",
}
# Order of EFT's `joint_validity_openpose18`, as indices into the 24 GT joints.
OPENPOSE18_FROM_GT24: tuple[int, ...] = tuple(
    SPIN_GT24_INDEX[OPENPOSE18_TO_GT[n]] for n in OPENPOSE18_NAMES
)

# H36M-17 (regressed joints) onto the SPIN GT joint of the same meaning.
H36M17_TO_SPIN: dict[str, str] = {
    **{n: n for n in H36M17_NAMES if n.startswith(("Left ", "Right "))},
    "Pelvis": "Pelvis (MPII)", "Spine": "Spine (H36M)", "Thorax": "Thorax (MPII)",
    "Jaw": "Jaw (H36M)", "Head": "Head (H36M)",
}

# Human3.6M's own 17-joint order (mmpose's names; VideoPose3D uses the same order).
H36M17_STD_NAMES: tuple[str, ...] = (
    "root", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot",
    "spine", "thorax", "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
H36M17_STD_TO_SPIN: dict[str, str] = {
    "root": "Pelvis (MPII)", "right_hip": "Right Hip", "right_knee": "Right Knee",
    "right_foot": "Right Ankle", "left_hip": "Left Hip", "left_knee": "Left Knee",
    "left_foot": "Left Ankle", "spine": "Spine (H36M)", "thorax": "Thorax (MPII)",
    "neck_base": "Jaw (H36M)", "head": "Head (H36M)",  # SPIN's names of those rows
    **{n: _coco_style_to_spin(n) for n in COCO17_NAMES[5:11]},
}

# AI Challenger (AIC) 14 keypoints, in the order of its annotation files.
AIC14_NAMES: tuple[str, ...] = (
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "head_top", "neck",
)
AIC14_TO_SPIN: dict[str, str] = {
    **{n: _coco_style_to_spin(n) for n in AIC14_NAMES[:12]},
    "head_top": "Top of Head (LSP)", "neck": "Neck (LSP)",
}

# MPI-INF-3DHP's 17 test-set joints (mmpose's names and order).
MPI_INF_3DHP17_NAMES: tuple[str, ...] = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "root", "spine", "head",
)
MPI_INF_3DHP17_TO_SPIN: dict[str, str] = {
    **{n: _coco_style_to_spin(n) for n in MPI_INF_3DHP17_NAMES[2:14]},
    "head_top": "Top of Head (LSP)", "neck": "Neck (LSP)", "root": "Pelvis (MPII)",
    "spine": "Spine (H36M)", "head": "Head (H36M)",
}

# For the J14 evaluation SPIN reads the LSP neck from H36M "Thorax" and the LSP head
# top from H36M "Head"; every other J14 joint is the H36M joint of the same name.
_J14_FROM_H36M_SPECIAL: dict[str, str] = {"Neck (LSP)": "Thorax", "Top of Head (LSP)": "Head"}
J14_NAMES: tuple[str, ...] = tuple(LSP14_TO_SPIN[n] for n in LSP14_NAMES)
H36M_TO_J14: tuple[int, ...] = tuple(
    H36M17_NAMES.index(_J14_FROM_H36M_SPECIAL.get(n, n)) for n in J14_NAMES
)


@dataclass(frozen=True)
class KeypointFormat:
    """One dataset's keypoint order and where each keypoint goes in SPIN-49."""

    name: str
    joint_names: tuple[str, ...]
    spin_names: tuple[str, ...]   # SPIN-49 name of each joint, same order as joint_names
    spin_indices: tuple[int, ...]  # index of each joint in SPIN-49

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @classmethod
    def from_names(
        cls, name: str, joint_names: Sequence[str], to_spin: Mapping[str, str]
    ) -> KeypointFormat:
        missing = [n for n in joint_names if n not in to_spin]
        if missing:
            raise ValueError(f"format {name!r}: no SPIN-49 name for {missing}")
        spin_names = tuple(to_spin[n] for n in joint_names)
        unknown = [s for s in spin_names if s not in SPIN49_INDEX]
        if unknown:
            raise ValueError(f"format {name!r}: {unknown} are not SPIN-49 names")
        if len(set(spin_names)) != len(spin_names):
            raise ValueError(f"format {name!r}: two joints map to the same SPIN-49 joint")
        return cls(
            name=name,
            joint_names=tuple(joint_names),
            spin_names=spin_names,
            spin_indices=tuple(SPIN49_INDEX[s] for s in spin_names),
        )


KEYPOINT_FORMATS: dict[str, KeypointFormat] = {
    f.name: f
    for f in (
        KeypointFormat.from_names("coco17", COCO17_NAMES, COCO17_TO_SPIN),
        KeypointFormat.from_names("coco23", COCO23_NAMES, COCO23_TO_SPIN),
        KeypointFormat.from_names("mpii16", MPII16_NAMES, MPII16_TO_SPIN),
        KeypointFormat.from_names("lsp14", LSP14_NAMES, LSP14_TO_SPIN),
        KeypointFormat.from_names("posetrack17", POSETRACK17_NAMES, POSETRACK17_TO_SPIN),
        KeypointFormat.from_names("crowdpose14", CROWDPOSE14_NAMES, CROWDPOSE14_TO_SPIN),
        KeypointFormat.from_names("openpose25", OPENPOSE25_RAW_NAMES, OPENPOSE25_TO_SPIN),
        KeypointFormat.from_names("openpose18", OPENPOSE18_NAMES, OPENPOSE18_TO_SPIN),
        KeypointFormat.from_names("h36m17_spin", H36M17_NAMES, H36M17_TO_SPIN),
        KeypointFormat.from_names("h36m17_std", H36M17_STD_NAMES, H36M17_STD_TO_SPIN),
        KeypointFormat.from_names("aic14", AIC14_NAMES, AIC14_TO_SPIN),
        KeypointFormat.from_names("mpi_inf_3dhp17", MPI_INF_3DHP17_NAMES,
                                  MPI_INF_3DHP17_TO_SPIN),
        # deprecated: "h36m17" meant SPIN's regressor order; kept so old configs and
        # callers read as before (with a warning), see DEPRECATED_FORMATS
        KeypointFormat.from_names("h36m17", H36M17_NAMES, H36M17_TO_SPIN),
    )
}
#: Old format names -> the name that now says what they meant.
DEPRECATED_FORMATS: dict[str, str] = {"h36m17": "h36m17_spin"}


def get_format(fmt: str | KeypointFormat) -> KeypointFormat:
    """Look a format up by name (case-insensitive); a KeypointFormat passes through.
    A deprecated name (:data:`DEPRECATED_FORMATS`) warns (``FutureWarning``)."""
    if isinstance(fmt, KeypointFormat):
        return fmt
    key = fmt.lower()
    if key in DEPRECATED_FORMATS:
        warnings.warn(f"keypoint format {fmt!r} is deprecated: it means SPIN's regressor "
                      f"order (index 1 = left hip); write {DEPRECATED_FORMATS[key]!r}, or "
                      "'h36m17_std' for Human3.6M's own order (mmpose, VideoPose3D: index "
                      "1 = right hip)", FutureWarning, stacklevel=2)
    try:
        return KEYPOINT_FORMATS[key]
    except KeyError:
        known = ", ".join(sorted(KEYPOINT_FORMATS))
        raise KeyError(f"unknown keypoint format {fmt!r}; known formats: {known}") from None


def _norm_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def format_from_names(names: Sequence[str], label: str = "keypoints") -> KeypointFormat:
    """The keypoint format of keypoints called ``names``, in that order, recognised by
    the whole set of names (never by their count): a format of
    :data:`KEYPOINT_FORMATS` with exactly these names (any order; spelling compared
    case-, space- and hyphen-insensitively).  Returns a format in the given order,
    named like the known one.  ValueError (one line) naming the names no known format
    has."""
    given = [_norm_name(n) for n in names]
    if len(set(given)) != len(given):
        raise ValueError(f"{label}: a keypoint name appears twice in {list(names)}")
    best, best_common, matches = None, -1, []
    for f in KEYPOINT_FORMATS.values():
        if f.name in DEPRECATED_FORMATS:
            continue
        known = {_norm_name(n): (n, s) for n, s in zip(f.joint_names, f.spin_names,
                                                      strict=True)}
        if set(known) == set(given):
            matches.append((list(known) != given, f.name, known))
            continue
        common = len(set(known) & set(given))
        if common > best_common:
            best, best_common = (f, known), common
    if matches:  # same names: the same mapping; named after the one in this order
        _, name, known = min(matches, key=lambda m: m[0])
        return KeypointFormat.from_names(name, given, {g: known[g][1] for g in given})
    assert best is not None  # KEYPOINT_FORMATS is never empty
    f, known = best
    unknown = [n for n, g in zip(names, given, strict=True) if g not in known]
    absent = [n for n in f.joint_names if _norm_name(n) not in set(given)]
    why = (f"names no known format has: {unknown}" if unknown else
           f"close to {f.name!r} but without {absent}")
    raise ValueError(f"{label}: {len(given)} keypoints in an unknown layout ({why}); "
                     "give keypoint_format to read them")


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


def _zeros_like_float(x: Any, shape: tuple[int, ...]) -> Any:
    """Zeros of `shape` with x's float dtype (ints become float64 / float32 for torch)."""
    if _is_torch(x):
        import torch

        dtype = x.dtype if x.is_floating_point() else torch.float32
        return torch.zeros(shape, dtype=dtype, device=x.device)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return np.zeros(shape, dtype=dtype)


def to_spin49(kps: Any, fmt: str | KeypointFormat, binarize_visibility: bool = False) -> Any:
    """Place keypoints of format `fmt` ((..., K, 2) or (..., K, 3)) into SPIN-49 (..., 49, 3).

    The third channel (confidence / visibility) is copied as is, or set to 1 where it
    is > 0 when `binarize_visibility` is True (SPIN's treatment of COCO's v in {0,1,2}).
    (..., K, 2) input gets confidence 1.  SPIN joints the format lacks are all zero,
    confidence included.  numpy in -> numpy out, torch in -> torch out (differentiable).
    """
    f = get_format(fmt)
    if not _is_torch(kps):
        kps = np.asarray(kps)
    if kps.ndim < 2 or kps.shape[-2] != f.num_joints or kps.shape[-1] not in (2, 3):
        raise ValueError(
            f"{f.name} keypoints must have shape (..., {f.num_joints}, 2|3), "
            f"got {tuple(kps.shape)}"
        )
    lead = tuple(kps.shape[:-2])
    out = _zeros_like_float(kps, lead + (NUM_SPIN_JOINTS, 3))
    idx = list(f.spin_indices)
    out[..., idx, :2] = kps[..., :2]
    if kps.shape[-1] == 3:
        conf = kps[..., 2]
        if binarize_visibility:
            visible = conf > 0
            conf = visible.to(out.dtype) if _is_torch(visible) else visible.astype(out.dtype)
        out[..., idx, 2] = conf
    else:
        out[..., idx, 2] = 1
    return out


def copy_openpose_to_gt(kps49: np.ndarray) -> np.ndarray:
    """Copy every ``OP *`` slot of SPIN-49 keypoints ((..., 49, 3), numpy, in place) into
    the GT slot carrying the same body point (:data:`OPENPOSE18_TO_GT`: nose, neck,
    eyes, ears and limbs; not MidHip or the feet), so EFT's loss - which weighs the GT
    slots only by default - uses OpenPose-format labels; returns ``kps49``."""
    for op, gt in OPENPOSE18_TO_GT.items():
        kps49[..., SPIN49_INDEX[gt], :] = kps49[..., SPIN49_INDEX["OP " + op], :]
    return kps49


def from_spin49(kps49: Any, fmt: str | KeypointFormat) -> Any:
    """Read the keypoints of format `fmt` (..., K, 3) out of SPIN-49 (..., 49, 3).

    Exact inverse of `to_spin49` for (..., K, 3) input without binarisation.
    """
    f = get_format(fmt)
    if not _is_torch(kps49):
        kps49 = np.asarray(kps49)
    if kps49.ndim < 2 or kps49.shape[-2] != NUM_SPIN_JOINTS or kps49.shape[-1] != 3:
        raise ValueError(
            f"SPIN-49 keypoints must have shape (..., 49, 3), got {tuple(kps49.shape)}"
        )
    return kps49[..., list(f.spin_indices), :]


# ---------------------------------------------------------------------------
# Left/right mirroring, derived from the names.
# ---------------------------------------------------------------------------

_WORD_SWAP = {"Left": "Right", "Right": "Left", "left": "right", "right": "left"}
_OPENPOSE_SIDE = re.compile(r"^([RL])([A-Z][a-z])")  # RShoulder, LBigToe, REye (not "LSP")


def _mirror_token(token: str) -> str:
    if token in _WORD_SWAP:
        return _WORD_SWAP[token]
    for a, b in (("left_", "right_"), ("right_", "left_")):
        if token.startswith(a):
            return b + token[len(a):]
    m = _OPENPOSE_SIDE.match(token)
    if m:
        return ("L" if m.group(1) == "R" else "R") + token[1:]
    return token


def mirror_name(name: str) -> str:
    """Name of the joint on the other side: 'Left Ankle' <-> 'Right Ankle',
    'OP RShoulder' <-> 'OP LShoulder', 'left_hip' <-> 'right_hip'; central joints unchanged."""
    return " ".join(_mirror_token(t) for t in name.split(" "))


def flip_permutation(names: Sequence[str]) -> tuple[int, ...]:
    """perm with flipped[i] = original[perm[i]] for a left/right mirror of `names`."""
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        m = mirror_name(n)
        if m not in index:
            raise ValueError(f"joint {n!r} has no mirror {m!r} in this joint list")
        perm.append(index[m])
    return tuple(perm)


J49_FLIP_PERM: tuple[int, ...] = flip_permutation(SPIN49_NAMES)
SMPL24_FLIP_PERM: tuple[int, ...] = flip_permutation(SMPL24_NAMES)
SMPL_POSE_FLIP_PERM: tuple[int, ...] = tuple(
    3 * j + k for j in SMPL24_FLIP_PERM for k in range(3)
)


def flip_keypoints(kps49: Any, width: float | None = None) -> Any:
    """Mirror SPIN-49 keypoints (..., 49, C>=2) left/right: swap sides, then mirror x.

    width=None: x is in SPIN's normalised crop coordinates ([-1, 1]) and x -> -x,
    exactly SPIN's flip_kp.  width=W: x is in pixels of an image W pixels wide with
    pixel centres at integer x (the convention of np.fliplr), and x -> W - 1 - x.
    Other channels (y, confidence) are kept.  numpy or torch; returns a new array.
    """
    if not _is_torch(kps49):
        kps49 = np.asarray(kps49)
    if kps49.ndim < 2 or kps49.shape[-2] != NUM_SPIN_JOINTS or kps49.shape[-1] < 2:
        raise ValueError(f"expected (..., 49, C>=2) keypoints, got {tuple(kps49.shape)}")
    out = kps49[..., list(J49_FLIP_PERM), :]
    out[..., 0] = -out[..., 0] if width is None else (width - 1) - out[..., 0]
    return out


def flip_smpl_rotmat(rotmat: Any) -> Any:
    """Mirror SMPL rotation matrices (..., 24, 3, 3) left/right: swap the left and right
    joints, then map every rotation ``R -> M R M`` with ``M = diag(-1, 1, 1)`` (the
    matrix form of :func:`flip_smpl_pose`).  torch; returns a new tensor."""
    r = rotmat[..., list(SMPL24_FLIP_PERM), :, :].clone()
    sign = r.new_tensor([-1.0, 1.0, 1.0])
    return r * sign[:, None] * sign[None, :]


def flip_smpl_pose(pose: Any) -> Any:
    """Mirror SMPL axis-angle pose (..., 72) left/right (SPIN's flip_pose).

    Swaps left/right joints, then negates the y and z components of every joint's
    axis-angle (a reflection x -> -x maps a rotation about (ax, ay, az) by angle t to
    one about (ax, -ay, -az) by the same t).  numpy or torch; returns a new array.
    """
    if not _is_torch(pose):
        pose = np.asarray(pose)
    if pose.shape[-1] != 72:
        raise ValueError(f"expected (..., 72) axis-angle pose, got {tuple(pose.shape)}")
    out = pose[..., list(SMPL_POSE_FLIP_PERM)]
    out[..., 1::3] = -out[..., 1::3]
    out[..., 2::3] = -out[..., 2::3]
    return out
