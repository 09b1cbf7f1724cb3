"""Joint-name tables from mocap skeletons onto SMPL's 24 joints.

Two skeleton families occur in the CMU BVH data:

* ``"cmu31"``: the 31-joint CMU ASF skeleton.  The same topology comes with
  three naming schemes, all handled here:

  - ``cmu31_bvh``: CMU's own BVH names (``Hips, LeftUpLeg, LeftLeg, LeftFoot,
    LeftToeBase, LowerBack, Spine, Spine1, Neck, Neck1, Head, LeftShoulder
    (clavicle), LeftArm, LeftForeArm, LeftHand, ...``);
  - ``cmu31_anatomical``: ``LeftHip, LeftKnee, LeftAnkle, LeftToe, lowerback,
    Chest, Chest2, lowerneck, Neck, Head, LeftCollar, LeftShoulder (upper-arm
    root!), LeftElbow, LeftWrist, lhand, ...``;
  - ``cmu31_asf``: the ASF bone names (``hip, lfemur, ltibia, lfoot, ltoes,
    lowerback, upperback, thorax, lowerneck, upperneck, head, lclavicle,
    lhumerus, lradius, lwrist, lhand, ...``).

  Note that ``LeftShoulder`` is the clavicle in one scheme and the upper-arm
  root in another: names are only meaningful within their scheme.

* ``"daz43"``: the 43-joint "DAZ-friendly" skeleton (``hip, abdomen, chest,
  neck, head, eyes, lCollar, lShldr, lForeArm, lHand, two joints per finger,
  lButtock, lThigh, lShin, lFoot``).

Joints are matched by anatomical meaning: SMPL's hip/knee/ankle are the
thigh/shin/foot roots, SMPL's shoulder is the upper-arm root, SMPL's collar is
the clavicle root.  A BVH joint's position is the *start* of its bone, so for
the ASF names ``lfemur`` is the hip joint, ``ltibia`` the knee, and so on.
Every map leaves ``spine2`` unmapped; the lumbar joint stands in for
``spine1`` and the thorax joint (the one the neck and clavicles hang from, the
role of SMPL's ``spine3``) for ``spine3``.  Joints whose source lies only
roughly where SMPL puts the joint are listed in ``SkeletonMap.approximate`` so
that a fitter can down-weight them.

In every file checked the subject's left side is +X of the rest pose, which
faces +Z (right-handed, Y up, the same as SMPL); ``tests/test_bvh.py`` checks
the left/right labels against the facing direction given by the feet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from eft.body.joints import SMPL24_NAMES
from eft.synthetic.mocap.bvh import BvhClip, BvhError

__all__ = [
    "SkeletonMap",
    "SKELETON_MAPS",
    "detect_skeleton",
    "skeleton_map",
    "smpl_joint_positions",
]


@dataclass(frozen=True)
class SkeletonMap:
    """How one BVH skeleton's joints stand in for SMPL's 24 joints.

    ``skeleton``: family (``"cmu31"``, ``"daz43"``); ``variant``: naming scheme;
    ``joint_names``: the skeleton's animated joints (End Sites excluded) in file
    order; ``sources``: SMPL joint name -> BVH joint name, where ``"<joint>_end"``
    is that joint's End Site (see ``eft.synthetic.mocap.bvh``); SMPL joints missing from
    ``sources`` are unmapped; ``approximate``: mapped SMPL joints whose source
    is only roughly at SMPL's joint location.
    """

    skeleton: str
    variant: str
    joint_names: tuple[str, ...]
    sources: Mapping[str, str]
    approximate: frozenset[str]

    def __post_init__(self) -> None:
        unknown = set(self.sources) - set(SMPL24_NAMES)
        if unknown:
            raise ValueError(f"SkeletonMap {self.variant}: not SMPL joints: {sorted(unknown)}")
        if not self.approximate <= set(self.sources):
            raise ValueError(f"SkeletonMap {self.variant}: approximate joints must be mapped")
        for smpl_name, src in self.sources.items():
            base = src[:-4] if src.endswith("_end") else src
            if base not in self.joint_names:
                raise ValueError(f"SkeletonMap {self.variant}: source {src!r} of "
                                 f"{smpl_name} is not a joint of the skeleton")
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def unmapped(self) -> tuple[str, ...]:
        """SMPL joints without a source, in SMPL order."""
        return tuple(n for n in SMPL24_NAMES if n not in self.sources)


def _sided(left: dict[str, str], swap: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Add the right-side entries of a left-side table by rewriting names."""
    out = dict(left)
    for smpl_name, src in left.items():
        if not smpl_name.startswith("left_"):
            continue
        right = src
        for a, b in swap:
            if right.startswith(a):
                right = b + right[len(a):]
                break
        else:
            raise ValueError(f"no right-side rewrite for {src!r}")
        out["right_" + smpl_name[len("left_"):]] = right
    return out


_CMU31_BVH_NAMES = (
    "Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
    "RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
    "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftFingerBase", "LFingers", "LThumb",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase", "RFingers",
    "RThumb",
)
_CMU31_ANATOMICAL_NAMES = (
    "Hips", "LHipJoint", "LeftHip", "LeftKnee", "LeftAnkle", "LeftToe",
    "RHipJoint", "RightHip", "RightKnee", "RightAnkle", "RightToe",
    "lowerback", "Chest", "Chest2", "lowerneck", "Neck", "Head",
    "LeftCollar", "LeftShoulder", "LeftElbow", "LeftWrist", "lhand", "LFingers", "LThumb",
    "RightCollar", "RightShoulder", "RightElbow", "RightWrist", "rhand", "RFingers", "RThumb",
)
_CMU31_ASF_NAMES = (
    "hip", "lhipjoint", "lfemur", "ltibia", "lfoot", "ltoes",
    "rhipjoint", "rfemur", "rtibia", "rfoot", "rtoes",
    "lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head",
    "lclavicle", "lhumerus", "lradius", "lwrist", "lhand", "lfingers", "lthumb",
    "rclavicle", "rhumerus", "rradius", "rwrist", "rhand", "rfingers", "rthumb",
)
_DAZ43_NAMES = (
    "hip", "abdomen", "chest", "neck", "head", "leftEye", "rightEye",
    "rCollar", "rShldr", "rForeArm", "rHand", "rThumb1", "rThumb2", "rIndex1", "rIndex2",
    "rMid1", "rMid2", "rRing1", "rRing2", "rPinky1", "rPinky2",
    "lCollar", "lShldr", "lForeArm", "lHand", "lThumb1", "lThumb2", "lIndex1", "lIndex2",
    "lMid1", "lMid2", "lRing1", "lRing2", "lPinky1", "lPinky2",
    "rButtock", "rThigh", "rShin", "rFoot", "lButtock", "lThigh", "lShin", "lFoot",
)

# Approximations shared by the CMU-31 maps:
#  spine1  <- the lumbar joint (upper end of the lower back), ~11 cm above the root;
#  spine3  <- the thorax joint; the CMU torso is short, so it sits only 5-8 cm below
#             the shoulders where SMPL's spine3 sits roughly 15 cm below them;
#  collars <- the clavicle roots, which have zero offset from the thorax, i.e. lie on
#             the spine rather than several cm to the side like SMPL's collars;
#  hands   <- the finger roots, only 3-4 cm beyond the wrist (SMPL: roughly 9 cm).
_CMU31_APPROX = frozenset({
    "spine1", "spine3", "left_collar", "right_collar", "left_hand", "right_hand",
})

_CMU31_BVH = SkeletonMap(
    skeleton="cmu31",
    variant="cmu31_bvh",
    joint_names=_CMU31_BVH_NAMES,
    sources=_sided({
        "pelvis": "Hips",
        "left_hip": "LeftUpLeg",
        "spine1": "Spine",
        "left_knee": "LeftLeg",
        "left_ankle": "LeftFoot",
        "spine3": "Spine1",
        "left_foot": "LeftToeBase",
        # "Neck" has zero offset from Spine1 (lower neck); "Neck1" is the upper neck,
        # ~3 cm above the shoulders like SMPL's neck.
        "neck": "Neck1",
        "left_collar": "LeftShoulder",
        "head": "Head",
        "left_shoulder": "LeftArm",
        "left_elbow": "LeftForeArm",
        "left_wrist": "LeftHand",
        "left_hand": "LFingers",
    }, (("Left", "Right"), ("L", "R"))),
    approximate=_CMU31_APPROX,
)

_CMU31_ANATOMICAL = SkeletonMap(
    skeleton="cmu31",
    variant="cmu31_anatomical",
    joint_names=_CMU31_ANATOMICAL_NAMES,
    sources=_sided({
        "pelvis": "Hips",
        "left_hip": "LeftHip",
        "spine1": "Chest",
        "left_knee": "LeftKnee",
        "left_ankle": "LeftAnkle",
        "spine3": "Chest2",
        "left_foot": "LeftToe",
        "neck": "Neck",  # "lowerneck" has zero offset from Chest2
        "left_collar": "LeftCollar",
        "head": "Head",
        "left_shoulder": "LeftShoulder",  # the upper-arm root in this scheme
        "left_elbow": "LeftElbow",
        "left_wrist": "LeftWrist",
        "left_hand": "LFingers",
    }, (("Left", "Right"), ("L", "R"))),
    approximate=_CMU31_APPROX,
)

_CMU31_ASF = SkeletonMap(
    skeleton="cmu31",
    variant="cmu31_asf",
    joint_names=_CMU31_ASF_NAMES,
    sources=_sided({
        "pelvis": "hip",
        "left_hip": "lfemur",
        "spine1": "upperback",
        "left_knee": "ltibia",
        "left_ankle": "lfoot",
        "spine3": "thorax",
        "left_foot": "ltoes",
        "neck": "upperneck",
        "left_collar": "lclavicle",
        "head": "head",
        "left_shoulder": "lhumerus",
        "left_elbow": "lradius",
        "left_wrist": "lwrist",
        "left_hand": "lfingers",
    }, (("l", "r"),)),
    approximate=_CMU31_APPROX,
)

_DAZ43 = SkeletonMap(
    skeleton="daz43",
    variant="daz43",
    joint_names=_DAZ43_NAMES,
    sources=_sided({
        # The DAZ root sits ~3 cm *below* the hip joints; SMPL's pelvis is ~9 cm above.
        "pelvis": "hip",
        "left_hip": "lThigh",
        "spine1": "abdomen",
        "left_knee": "lShin",
        "left_ankle": "lFoot",
        "spine3": "chest",  # parent of neck and collars, ~10 cm lower than SMPL's spine3
        # No toe joint: the foot's End Site (toe tip, ~12 cm in front of the ankle).
        "left_foot": "lFoot_end",
        "neck": "neck",
        "left_collar": "lCollar",  # ~3 cm from the midline, above the shoulder
        "head": "head",
        "left_shoulder": "lShldr",
        "left_elbow": "lForeArm",
        "left_wrist": "lHand",
        "left_hand": "lMid1",  # middle-finger knuckle
    }, (("l", "r"),)),
    approximate=frozenset({
        "pelvis", "spine1", "spine3", "left_foot", "right_foot", "left_collar",
        "right_collar", "left_hand", "right_hand",
    }),
)

SKELETON_MAPS: Mapping[str, SkeletonMap] = MappingProxyType({
    m.variant: m for m in (_CMU31_BVH, _CMU31_ANATOMICAL, _CMU31_ASF, _DAZ43)
})


def _name_lookup(clip: BvhClip, smap: SkeletonMap) -> dict[str, str] | None:
    """Map each of ``smap``'s joint names to the clip's spelling, or None if no match."""
    ours = clip.joint_names
    if len(ours) != len(smap.joint_names):
        return None
    if set(ours) == set(smap.joint_names):
        return {n: n for n in smap.joint_names}
    folded = {n.casefold(): n for n in ours}
    if len(folded) != len(ours):
        return None
    lookup = {}
    for n in smap.joint_names:
        actual = folded.get(n.casefold())
        if actual is None:
            return None
        lookup[n] = actual
    return lookup


def _match(clip: BvhClip) -> tuple[SkeletonMap, dict[str, str]]:
    for smap in SKELETON_MAPS.values():
        lookup = _name_lookup(clip, smap)
        if lookup is not None:
            return smap, lookup
    names = clip.joint_names
    raise BvhError(f"{clip.source}: unknown BVH skeleton with {len(names)} joints: "
                   + ", ".join(names))


def detect_skeleton(clip: BvhClip) -> str:
    """``"cmu31"`` or ``"daz43"`` from the clip's joint names (case-insensitive).

    Raises :class:`BvhError` naming the clip's joints if no table matches.
    """
    return _match(clip)[0].skeleton


def skeleton_map(clip: BvhClip) -> SkeletonMap:
    """The :class:`SkeletonMap` (naming variant included) matching the clip."""
    return _match(clip)[0]


def smpl_joint_positions(clip: BvhClip, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick SMPL's 24 joints out of BVH joint positions.

    ``positions``: (..., J, 3) for the clip's J joints, End Sites included (the
    output of :func:`eft.synthetic.mocap.bvh.forward_kinematics`).  Returns
    ``(joints (..., 24, 3), mask (24,) bool)`` in SMPL order; unmapped joints are
    zero with ``mask`` False.
    """
    pts = np.asarray(positions)
    if pts.ndim < 2 or pts.shape[-2:] != (clip.num_joints, 3):
        raise ValueError(f"smpl_joint_positions: positions must have shape (..., "
                         f"{clip.num_joints}, 3) for {clip.source}, got {pts.shape}")
    smap, lookup = _match(clip)
    out = np.zeros(pts.shape[:-2] + (len(SMPL24_NAMES), 3), dtype=pts.dtype)
    mask = np.zeros(len(SMPL24_NAMES), dtype=bool)
    for i, smpl_name in enumerate(SMPL24_NAMES):
        src = smap.sources.get(smpl_name)
        if src is None:
            continue
        if src.endswith("_end"):
            name = lookup[src[:-4]] + "_end"
        else:
            name = lookup[src]
        out[..., i, :] = pts[..., clip.index(name), :]
        mask[i] = True
    return out, mask
