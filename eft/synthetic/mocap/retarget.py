"""Retarget mocap joint positions onto the SMPL-layout body model (pose parameters).

A mocap skeleton and the body model have different limb lengths and put some joints in
different places, so matching joint *positions* would bend the body to make up for the
length differences.  Retargeting here is **direction based**: per frame it finds the 24
joint rotations that make the body's bone *directions* match the mocap's.

Bones
-----
:func:`retarget_bones` lists the pairs whose directions are compared: every mapped SMPL
joint with its nearest mapped ancestor (an unmapped joint is bridged: with ``spine2``
unmapped, ``spine3`` is compared with ``spine1``), two cross pairs (``left_hip`` -
``right_hip``, ``left_shoulder`` - ``right_shoulder``) and four trunk pairs from the hips
to the neck and shoulders, which tie the overall trunk posture to well-placed joints
whatever the skeletons' spines look like.  A pair's weight is the smaller of its two
joints' weights; pairs whose mocap length is below 1 cm in a frame (CMU-31's clavicles
start exactly at the thorax) are ignored there.

Torso calibration
-----------------
Mocap skeletons disagree with SMPL about the torso's inner joints: the DAZ root sits
below the hip joints and CMU's 10 cm above them (SMPL's 2 cm above), the DAZ chest joint
is 10 cm lower than SMPL's ``spine3``, and so on, so raw directions of bones *inside*
the torso are off by 10 to 50 degrees even in a neutral stance.  Given the mocap
segments' rotations and the mocap joints in the rest pose those rotations are relative
to (:func:`mocap_targets` takes both from a BVH clip, whose all-zero rest pose stands
upright), each torso-internal bone's target becomes ``Q C Q^T u``: the mocap direction
``u`` turned, in the frame of the mocap segment carrying the bone (rotation ``Q``), by
the rest-pose offset ``C`` between the mocap's and the body's direction of that bone
(:func:`torso_bone_calibration`).  Limb bones are never calibrated: rest poses differ
there (CMU's splays the legs, some files hang the arms).

Objective and solver
--------------------
Per frame (frames are independent; ``batch`` only groups them):

* directions: ``sum_b w_b |u_body(b) - u_target(b)|^2`` over unit bone vectors;
* a weak position term (``pos_weight``): body joints relative to the pelvis against
  the target directions re-lengthed to the body's rest bone lengths and chained from
  the pelvis, which weighs errors near the root more (they move whole limbs);
* a weak regulariser ``reg_weight * sum_j s_j |R_j - I|_F^2`` (not the root; ``s_j`` 30
  for the collars, 1 otherwise).  It settles what joint positions do not show: how
  ``spine1`` and the unmapped ``spine2`` share a bend, and twist about a bone;
* a hinge prior ``hinge_weight * |R_j a_j - a_j|^2`` keeping knees and elbows turning
  about their natural flexion axis ``a_j`` (:data:`HINGE_AXES`), which decides the
  split between the hip's (shoulder's) twist and the knee's (elbow's) axis;
* leaf joints (feet, head, hands) move no joint and stay at identity.

:func:`initial_rotations` solves the directions analytically down the tree (Kabsch
over the bones a joint anchors, the hinge axis onto the limb's flexion-plane normal,
bridged joints sharing one swing equally), then Adam refines all terms for ``iters``
steps (6D rotations, Zhou et al. 2019; learning rate decaying from ``lr`` to
``lr / 10``).  The translation is closed form: it puts the body's hip centre on the
mocap's.

Joint positions come from the body's own skeleton: the rest joints are
``body(zero pose, betas=0).joints`` and :func:`skeleton_fk` poses them along the body
model's kinematic chain (posed joints of an SMPL-layout model do not depend on pose
blend shapes), which is what makes thousands of frames per second affordable; the
tests check it against ``BodyModel.forward``.

Residuals
---------
``residual_mm`` is, per frame and joint, ``|(body_j - body_c) - (mocap_j - mocap_c)|`` in
millimetres, ``c`` the hip centre (mean of the two hips; the pelvis when a hip is
unmapped).  The hip centre is the common origin because skeletons disagree most about
the pelvis, which would otherwise add the same few centimetres to every joint.  The
residual includes the skeletons' different proportions, which no pose removes;
``direction_deg`` (angle to the target directions) is what the fit controls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from eft.body.joints import SMPL24_NAMES, SMPL24_PARENTS
from eft.geometry.rotations import rot6d_to_rotmat, rotmat_to_axis_angle
from eft.synthetic.mocap.bvh import BvhClip, forward_kinematics, rest_positions, to_smpl_frame
from eft.synthetic.mocap.skeleton_maps import skeleton_map, smpl_joint_positions

__all__ = [
    "MocapTargets",
    "mocap_targets",
    "segment_rotations",
    "RetargetResult",
    "retarget",
    "retarget_bones",
    "rest_joints",
    "skeleton_fk",
    "joint_residual_mm",
    "bone_direction_deg",
    "torso_bone_calibration",
    "initial_rotations",
    "LEAF_JOINTS",
    "HINGE_AXES",
    "TORSO_JOINTS",
]

_INDEX = {n: i for i, n in enumerate(SMPL24_NAMES)}
_PARENTS = np.array(SMPL24_PARENTS, dtype=np.int64)
NUM_JOINTS = len(SMPL24_NAMES)

# Joints without children: nothing in the joint positions fixes their rotation.
LEAF_JOINTS: tuple[int, ...] = tuple(j for j in range(NUM_JOINTS) if j not in set(_PARENTS))
# Natural flexion axes of the hinge joints in their local frames (SMPL's rest pose is a
# T-pose, y up, facing +z, palms down): flexion is a positive turn about the axis.  A
# knee bends the shin backwards about +x; an elbow brings the forearm forwards, about
# -y on the left and +y on the right.
HINGE_AXES: dict[str, tuple[float, float, float]] = {
    "left_knee": (1.0, 0.0, 0.0),
    "right_knee": (1.0, 0.0, 0.0),
    "left_elbow": (0.0, -1.0, 0.0),
    "right_elbow": (0.0, 1.0, 0.0),
}
CROSS_PAIRS: tuple[tuple[str, str], ...] = (
    ("left_hip", "right_hip"),
    ("left_shoulder", "right_shoulder"),
)
# Long trunk pairs between well-defined joints: they tie the overall trunk posture to
# the mocap's joint positions, whatever the skeletons' spine joints look like.
TRUNK_PAIRS: tuple[tuple[str, str], ...] = (
    ("neck", "left_hip"),
    ("neck", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
)
# Extra regulariser weight per joint (multiplies ``reg_weight``).  A clavicle's twist
# about its (lateral) bone axis moves no joint and would otherwise share the upper
# arm's twist with the shoulder; real clavicles barely twist.
REG_SCALE: dict[str, float] = {"left_collar": 30.0, "right_collar": 30.0}
# Torso joints: a bone between two of them is "torso-internal" and can be calibrated
# against a reference pose (see ``retarget``).
TORSO_JOINTS: frozenset[str] = frozenset({
    "pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder",
})
_MIN_BONE_M = 0.01


@dataclass(frozen=True)
class RetargetResult:
    """Output of :func:`retarget` for T frames.

    Attributes:
        pose: (T, 72) float32 axis-angle, joint 0 the global orientation.
        transl: (T, 3) float32, so that ``body(pose, betas=0, transl).joints`` is the fit.
        joints: (T, 24, 3) float32 fitted body joints (with ``transl``).
        residual_mm: (T, 24) float32 hip-centre-relative joint residual (module
            docstring), NaN for unmapped joints.
        direction_deg: (T, K) float32 angle between the body's direction of each bone in
            ``bones`` and its target direction (the mocap's, or for ``calibrated`` bones
            the calibrated one), NaN where the bone was ignored (mocap length < 1 cm).
        bones: (K, 2) int64 (joint, anchor) pairs compared.
        bone_weights: (K,) float32 weight of each pair.
        calibrated: (K,) bool, which bones had a torso-calibrated target.
    """

    pose: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    residual_mm: np.ndarray
    direction_deg: np.ndarray
    bones: np.ndarray
    bone_weights: np.ndarray
    calibrated: np.ndarray


def retarget_bones(mask, weights, *, trunk: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) int64 ``(joint, anchor)`` pairs and (K,) float weights; see module docstring."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if mask.shape != (NUM_JOINTS,) or weights.shape != (NUM_JOINTS,):
        raise ValueError(f"mask and weights must have shape ({NUM_JOINTS},), "
                         f"got {mask.shape} and {weights.shape}")
    pairs: list[tuple[int, int]] = []
    for j in range(1, NUM_JOINTS):
        if not mask[j]:
            continue
        a = int(_PARENTS[j])
        while a >= 0 and not mask[a]:
            a = int(_PARENTS[a])
        if a >= 0:
            pairs.append((j, a))
    for first, second in CROSS_PAIRS + (TRUNK_PAIRS if trunk else ()):
        if mask[_INDEX[first]] and mask[_INDEX[second]]:
            pairs.append((_INDEX[first], _INDEX[second]))
    bones = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    w = np.minimum(weights[bones[:, 0]], weights[bones[:, 1]]) if len(bones) else np.zeros(0)
    keep = w > 0
    return bones[keep], w[keep].astype(np.float32)


def rest_joints(body) -> torch.Tensor:
    """(24, 3) float32 joints of ``body`` in the rest pose with betas 0, no translation."""
    with torch.no_grad():
        out = body(torch.zeros(1, NUM_JOINTS, 3))
    return out.joints[0].detach().to(torch.float32).clone()


def skeleton_fk(rotmats: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Pose SMPL's kinematic tree: (B, 24, 3, 3) local rotations, (24, 3) rest joints.

    Returns (B, 24, 3) joints: the root stays at its rest position (add a translation
    yourself), each child at ``parent + G_parent @ (rest_child - rest_parent)``.  Equal
    to ``BodyModel.forward(rotmats).joints`` for betas 0 (see the tests).
    """
    if rotmats.shape[-3:] != (NUM_JOINTS, 3, 3):
        raise ValueError(f"rotmats must have shape (B, 24, 3, 3), got {tuple(rotmats.shape)}")
    rest = rest.to(rotmats.dtype)
    offsets = rest - rest[torch.as_tensor(np.maximum(_PARENTS, 0))]
    batch = rotmats.shape[0]
    glob: dict[int, torch.Tensor] = {0: rotmats[:, 0]}  # joint -> (B, 3, 3), not leaves
    pos: dict[int, torch.Tensor] = {0: rest[0].expand(batch, 3)}  # joint -> (B, 3)
    leaves = set(LEAF_JOINTS)
    for j in range(1, NUM_JOINTS):
        p = int(_PARENTS[j])
        pos[j] = pos[p] + glob[p] @ offsets[j]
        if j not in leaves:
            glob[j] = glob[p] @ rotmats[:, j]
    return torch.stack([pos[j] for j in range(NUM_JOINTS)], dim=1)


def _centre(points: np.ndarray | torch.Tensor, mask: np.ndarray):
    """Hip centre of (..., 24, 3) points, or the pelvis when a hip is unmapped."""
    lh, rh = _INDEX["left_hip"], _INDEX["right_hip"]
    if mask[lh] and mask[rh]:
        return 0.5 * (points[..., lh, :] + points[..., rh, :])
    return points[..., 0, :]


def joint_residual_mm(body_joints, target_joints, mask) -> np.ndarray:
    """(T, 24) hip-centre-relative joint distance in mm, NaN where ``mask`` is False."""
    body = np.asarray(body_joints, dtype=np.float64)
    target = np.asarray(target_joints, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    rel_b = body - _centre(body, mask)[..., None, :]
    rel_t = target - _centre(target, mask)[..., None, :]
    out = 1000.0 * np.linalg.norm(rel_b - rel_t, axis=-1)
    out[..., ~mask] = np.nan
    return out.astype(np.float32)


def bone_direction_deg(body_joints, target_joints, bones) -> np.ndarray:
    """(T, K) angle in degrees between body and target direction of each (joint, anchor)."""
    body = np.asarray(body_joints, dtype=np.float64)
    target = np.asarray(target_joints, dtype=np.float64)
    bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
    vb = body[..., bones[:, 0], :] - body[..., bones[:, 1], :]
    vt = target[..., bones[:, 0], :] - target[..., bones[:, 1], :]
    nb = np.linalg.norm(vb, axis=-1)
    nt = np.linalg.norm(vt, axis=-1)
    cos = (vb * vt).sum(-1) / np.maximum(nb * nt, 1e-12)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    ang[nt < _MIN_BONE_M] = np.nan
    return ang.astype(np.float32)


def _normalise(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-9)


def torso_bone_calibration(bones, reference_joints, rest) -> tuple[np.ndarray, np.ndarray]:
    """Per-bone rest-pose offsets for torso-internal bones.

    ``bones`` (K, 2) from :func:`retarget_bones`; ``reference_joints`` (..., 24, 3): the
    mocap joints in a pose that stands for the body's rest pose *for the torso* (a BVH
    file's all-zero-channel rest pose: upright); ``rest`` (24, 3) the body's rest joints.
    Returns ``(calibrated (K,) bool, C (..., K, 3, 3))``: for a calibrated bone, ``C`` rotates
    its reference direction onto the body's rest direction (identity where the reference
    bone is shorter than 1 cm; such a bone's target is then the body's rest direction
    carried by the segment's rotation).  Cross and trunk pairs and limb bones are not
    calibrated (mocap rest poses disagree about limbs: CMU's splays the legs, some hang
    the arms).
    """
    bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
    ref = np.asarray(reference_joints, dtype=np.float64)
    rest = np.asarray(rest, dtype=np.float64)
    torso = {_INDEX[n] for n in TORSO_JOINTS}
    calibrated = np.array([int(c) in torso and int(a) in torso and _is_ancestor(int(a), int(c))
                           for c, a in bones], dtype=bool)
    vm = ref[..., bones[:, 0], :] - ref[..., bones[:, 1], :]
    vs = rest[bones[:, 0]] - rest[bones[:, 1]]
    lm = np.linalg.norm(vm, axis=-1, keepdims=True)
    um = vm / np.maximum(lm, 1e-12)
    us = np.broadcast_to(vs / np.maximum(np.linalg.norm(vs, axis=-1, keepdims=True), 1e-12),
                         um.shape)
    rot = _swing(um.reshape(-1, 3), us.reshape(-1, 3)).reshape(um.shape + (3,))
    rot[lm[..., 0] < _MIN_BONE_M] = np.eye(3)
    rot[..., ~calibrated, :, :] = np.eye(3)
    return calibrated, rot


def _common_ancestor(a: int, b: int) -> int:
    """Nearest joint that is an ancestor of both ``a`` and ``b`` (neither of them)."""
    up = set()
    p = int(_PARENTS[a])
    while p >= 0:
        up.add(p)
        p = int(_PARENTS[p])
    p = int(_PARENTS[b])
    while p >= 0 and p not in up:
        p = int(_PARENTS[p])
    return p


def _is_ancestor(a: int, j: int) -> bool:
    p = int(_PARENTS[j])
    while p >= 0:
        if p == a:
            return True
        p = int(_PARENTS[p])
    return False


def _target_directions(target, bones, segment_rotations, reference_joints, rest):
    """(T, K, 3) unit target directions, (T, K) validity, (K,) which are calibrated."""
    vt = target[:, bones[:, 0]] - target[:, bones[:, 1]]
    lt = np.linalg.norm(vt, axis=-1)
    ut = vt / np.maximum(lt, 1e-12)[..., None]
    valid = lt >= _MIN_BONE_M
    if segment_rotations is None or reference_joints is None:
        return ut, valid, np.zeros(len(bones), dtype=bool)
    ref = np.asarray(reference_joints, dtype=np.float64)
    if ref.ndim == 2:
        ref = ref[None]
    calibrated, rot = torso_bone_calibration(bones, ref, rest)  # rot (T or 1, K, 3, 3)
    rest_np = np.asarray(rest, dtype=np.float64)
    vs = rest_np[bones[:, 0]] - rest_np[bones[:, 1]]
    us = vs / np.maximum(np.linalg.norm(vs, axis=-1, keepdims=True), 1e-12)
    ref_short = np.linalg.norm(ref[:, bones[:, 0]] - ref[:, bones[:, 1]], axis=-1) < _MIN_BONE_M
    ref_short = np.broadcast_to(ref_short, ut.shape[:2])
    q = np.asarray(segment_rotations, dtype=np.float64)[:, bones[:, 0]]  # (T, K, 3, 3)
    local = np.einsum("tkji,tkj->tki", q, ut)  # Q^T u
    fixed = np.einsum("tkij,tkj->tki", q, np.einsum("tkij,tkj->tki", rot, local))
    carried = np.einsum("tkij,kj->tki", q, us)  # the body's rest direction carried by Q
    use = calibrated[None] & ~ref_short
    short = calibrated[None] & ref_short
    out = np.where(use[..., None], fixed, ut)
    out = np.where(short[..., None], carried, out)
    return out, valid | short, calibrated


def _kabsch_dirs(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation R minimising sum_k w_k |R src_k - dst_k|^2; src, dst (T, K, 3)."""
    cov = np.einsum("tk,tki,tkj->tij", w, dst, src)
    u, _, vh = np.linalg.svd(cov)
    fix = np.ones(cov.shape[:-1])
    fix[:, 2] = np.sign(np.linalg.det(u @ vh))
    return (u * fix[:, None, :]) @ vh


def _swing(a: np.ndarray, b: np.ndarray, fraction: float = 1.0) -> np.ndarray:
    """(T, 3, 3) rotations turning unit ``a`` towards unit ``b`` (T, 3) about their common
    normal by ``fraction`` of the angle between them (1: all the way); robust at pi."""
    normal = np.cross(a, b)
    size = np.linalg.norm(normal, axis=-1)
    angle = np.arctan2(size, (a * b).sum(-1)) * fraction
    # Parallel or opposite vectors: any axis perpendicular to a.
    alt = np.where(np.abs(a[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    fallback = np.cross(a, alt)
    axis = np.where((size > 1e-9)[:, None], normal, fallback)
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = np.where(norm > 1e-12, axis / np.maximum(norm, 1e-12), np.array([1.0, 0.0, 0.0]))
    k = np.zeros(axis.shape[:-1] + (3, 3))
    k[:, 0, 1], k[:, 0, 2] = -axis[:, 2], axis[:, 1]
    k[:, 1, 0], k[:, 1, 2] = axis[:, 2], -axis[:, 0]
    k[:, 2, 0], k[:, 2, 1] = -axis[:, 1], axis[:, 0]
    sin, cos = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + sin * k + (1.0 - cos) * (k @ k)


def initial_rotations(ut, valid, bones, bone_w, rest) -> np.ndarray:
    """(T, 24, 3, 3) local rotations from target directions, joint by joint down the tree.

    Each joint gets the global rotation that best maps its bones' rest directions onto
    the targets (weighted Kabsch over the bones it anchors, incl. the cross pair of its
    children; for knees' and elbows' parents also the hinge axis onto the flexion-plane
    normal, weighted by how bent the limb is); with one bone, the smallest swing from
    the parent's frame.  Joints with no bone keep the parent's frame.
    """
    ut = np.asarray(ut, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    rest = np.asarray(rest, dtype=np.float64)
    num = ut.shape[0]
    dirs = rest[bones[:, 0]] - rest[bones[:, 1]]
    dirs /= np.maximum(np.linalg.norm(dirs, axis=-1, keepdims=True), 1e-12)
    w = np.asarray(bone_w, dtype=np.float64)[None] * valid
    glob = np.zeros((num, NUM_JOINTS, 3, 3))
    local = np.broadcast_to(np.eye(3), (num, NUM_JOINTS, 3, 3)).copy()
    hinge_parent = {int(_PARENTS[_INDEX[n]]): n for n in HINGE_AXES}
    pending: dict[int, np.ndarray] = {}  # local rotations of bridged, unmapped joints
    for j in range(NUM_JOINTS):
        p = int(_PARENTS[j])
        g_parent = glob[:, p] if p >= 0 else np.broadcast_to(np.eye(3), (num, 3, 3))
        own = [k for k, (c, a) in enumerate(bones.tolist())
               if (a == j and _is_ancestor(j, c))
               or ((SMPL24_NAMES[c], SMPL24_NAMES[a]) in CROSS_PAIRS
                   and _common_ancestor(a, c) == j)]
        src = [np.broadcast_to(dirs[k], (num, 3)) for k in own]
        dst = [ut[:, k] for k in own]
        # A cross pair of grandchildren (the shoulders, below the collars) assumes the
        # joints between at rest: only a weak hint, when the joint has one bone or none.
        direct = sum(int(_PARENTS[bones[k, 0]]) == j for k in own)
        far = 0.0 if direct >= 2 else 0.1
        wts = [w[:, k] * (1.0 if int(_PARENTS[bones[k, 0]]) == j else far) for k in own]
        if j in hinge_parent and len(own) == 1:
            name = hinge_parent[j]
            h = _INDEX[name]
            k_lower = [k for k, (c, a) in enumerate(bones.tolist()) if a == h]
            if k_lower:
                k2 = k_lower[0]
                normal = np.cross(ut[:, own[0]], ut[:, k2])
                size = np.linalg.norm(normal, axis=-1)
                axis = np.asarray(HINGE_AXES[name], dtype=np.float64)
                src.append(np.broadcast_to(axis, (num, 3)))
                dst.append(normal / np.maximum(size, 1e-12)[:, None])
                wts.append(w[:, own[0]] * w[:, k2] * np.clip(size / 0.34, 0.0, 1.0))
        if not own:
            glob[:, j] = g_parent @ pending[j] if j in pending else g_parent
        elif len(src) == 1:
            # One bone; if it bridges unmapped joints, they share the swing equally.
            c = int(bones[own[0], 0])
            chain = [int(_PARENTS[c])]
            while chain[-1] != j:
                chain.append(int(_PARENTS[chain[-1]]))
            swing = _swing(np.einsum("tij,tj->ti", g_parent, src[0]), dst[0],
                           1.0 / len(chain))
            swing[wts[0] <= 0] = np.eye(3)
            glob[:, j] = swing @ g_parent
            shared = np.swapaxes(g_parent, -1, -2) @ swing @ g_parent
            for m in chain[:-1]:
                pending[m] = shared
        else:
            wt = np.stack(wts, axis=1)
            rot = _kabsch_dirs(np.stack(src, axis=1), np.stack(dst, axis=1), wt)
            none = wt.sum(1) <= 0
            rot[none] = g_parent[none]
            glob[:, j] = rot
        local[:, j] = np.swapaxes(g_parent, -1, -2) @ glob[:, j]
    return local


def retarget(
    target_joints,
    mask,
    weights,
    body,
    *,
    iters: int = 100,
    lr: float = 0.02,
    batch: int = 2048,
    pos_weight: float = 0.1,
    reg_weight: float = 1e-3,
    hinge_weight: float = 0.05,
    segment_rotations=None,
    reference_joints=None,
    rest: torch.Tensor | None = None,
) -> RetargetResult:
    """Fit body-model poses to mocap joints; see the module docstring.

    Args:
        target_joints: (T, 24, 3) mocap joints in SMPL order, metres, SMPL's axes (y up).
        mask: (24,) bool, which joints are mapped (others are ignored).
        weights: (24,) float >= 0, per-joint trust (e.g. lower for approximate joints).
        body: an :class:`eft.body.BodyModel` (its skeleton with betas 0 is used).
        iters, lr: Adam steps and initial learning rate.
        batch: frames optimised together (results do not depend on it).
        pos_weight, reg_weight, hinge_weight: weights of the position term, the pose
            regulariser and the knee/elbow hinge prior (module docstring).
        segment_rotations, reference_joints: optional torso calibration (module
            docstring).  ``segment_rotations`` (T, 24, 3, 3): global rotation of the
            mocap segment *ending* at each SMPL joint (the one that carries the bone
            from its parent), relative to the pose in which the mocap joints are
            ``reference_joints`` (24, 3), or (T, 24, 3) per frame (frames of several
            clips in one call) -- for BVH the rest pose, where all rotations are
            identity (:func:`segment_rotations`).  A torso-internal bone ending at
            joint ``c`` then gets the target ``Q_c C_b Q_c^T u``.  Without them raw
            directions are used.
        rest: (24, 3) rest joints to use instead of ``rest_joints(body)``.
    """
    target = np.asarray(target_joints, dtype=np.float64)
    if target.ndim != 3 or target.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"target_joints must have shape (T, 24, 3), got {target.shape}")
    if not np.isfinite(target).all():
        raise ValueError("target_joints must be finite")
    if (segment_rotations is None) != (reference_joints is None):
        raise ValueError("segment_rotations and reference_joints go together")
    if segment_rotations is not None and np.shape(segment_rotations) != target.shape + (3,):
        raise ValueError(f"segment_rotations must have shape {target.shape + (3,)}, "
                         f"got {np.shape(segment_rotations)}")
    if reference_joints is not None and np.shape(reference_joints) not in (
            (NUM_JOINTS, 3), target.shape):
        raise ValueError(f"reference_joints must have shape (24, 3) or {target.shape}, "
                         f"got {np.shape(reference_joints)}")
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    weights = np.where(mask, np.asarray(weights, dtype=np.float64).reshape(-1), 0.0)
    bones, bone_w = retarget_bones(mask, weights)
    if len(bones) == 0:
        raise ValueError("retarget: no bone has two mapped joints with positive weight")
    if iters < 0 or batch < 1:
        raise ValueError("retarget: iters must be >= 0 and batch >= 1")
    rest_j = rest_joints(body) if rest is None else torch.as_tensor(rest, dtype=torch.float32)
    rest_np = rest_j.double().numpy()
    num = target.shape[0]
    ut, valid, calibrated = _target_directions(target, bones, segment_rotations,
                                               reference_joints, rest_np)
    poses = np.zeros((num, NUM_JOINTS, 3), dtype=np.float32)
    joints = np.zeros((num, NUM_JOINTS, 3), dtype=np.float32)
    with torch.enable_grad():
        for start in range(0, num, batch):
            sl = slice(start, start + batch)
            rot = _fit_chunk(
                torch.as_tensor(target[sl], dtype=torch.float32),
                torch.as_tensor(ut[sl], dtype=torch.float32),
                torch.as_tensor(valid[sl]),
                initial_rotations(ut[sl], valid[sl], bones, bone_w, rest_np),
                mask, weights, bones, bone_w, rest_j,
                iters=iters, lr=lr, pos_weight=pos_weight, reg_weight=reg_weight,
                hinge_weight=hinge_weight)
            with torch.no_grad():
                poses[sl] = rotmat_to_axis_angle(rot).numpy()
                joints[sl] = skeleton_fk(rot, rest_j).numpy()
    transl = _centre(target, mask) - _centre(joints.astype(np.float64), mask)
    joints = joints + transl[:, None, :].astype(np.float32)
    return RetargetResult(
        pose=poses.reshape(num, 3 * NUM_JOINTS),
        transl=transl.astype(np.float32),
        joints=joints,
        residual_mm=joint_residual_mm(joints, target, mask),
        direction_deg=_angle_to(joints, ut, valid, bones),
        bones=bones,
        bone_weights=bone_w,
        calibrated=calibrated,
    )


def _angle_to(joints: np.ndarray, ut: np.ndarray, valid: np.ndarray, bones) -> np.ndarray:
    vb = joints[:, bones[:, 0]].astype(np.float64) - joints[:, bones[:, 1]]
    cos = (vb * ut).sum(-1) / np.maximum(np.linalg.norm(vb, axis=-1), 1e-12)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    ang[~valid] = np.nan
    return ang.astype(np.float32)


def _fit_chunk(target, ut, valid, init_rot, mask, weights, bones, bone_w, rest, *, iters, lr,
               pos_weight, reg_weight, hinge_weight) -> torch.Tensor:
    """Optimise one chunk of frames; returns (B, 24, 3, 3) local rotations."""
    b = target.shape[0]
    dtype = target.dtype
    leaves = set(LEAF_JOINTS)
    free = [j for j in range(NUM_JOINTS) if j not in leaves]
    child = torch.as_tensor(bones[:, 0])
    anchor = torch.as_tensor(bones[:, 1])
    wb = torch.as_tensor(bone_w, dtype=dtype) * valid.to(dtype)
    wj = torch.as_tensor(weights, dtype=dtype)

    # Position targets: the target directions re-lengthed to the body's rest bone
    # lengths and chained from the pelvis (tree bones only, not the cross pairs).
    rest_len = torch.linalg.vector_norm(rest[child] - rest[anchor], dim=-1)
    pos_t = torch.zeros(b, NUM_JOINTS, 3, dtype=dtype)
    reach = torch.zeros(b, NUM_JOINTS, dtype=torch.bool)
    reach[:, 0] = bool(mask[0])
    for k, (c, a) in enumerate(bones.tolist()):
        if not _is_ancestor(a, c):
            continue
        pos_t[:, c] = pos_t[:, a] + rest_len[k] * ut[:, k]
        reach[:, c] = reach[:, a] & valid[:, k]
    wpos = wj * reach.to(dtype)

    init = torch.as_tensor(init_rot, dtype=dtype)[:, free]
    eye = torch.eye(3, dtype=dtype)
    x = init[..., :, :2].reshape(b, len(free), 6).clone().requires_grad_(True)

    free_t = torch.as_tensor(free)
    body_idx = free_t[1:]  # regularised: every free joint but the root
    reg_w = torch.as_tensor([REG_SCALE.get(SMPL24_NAMES[j], 1.0) for j in free[1:]],
                            dtype=dtype)[:, None, None]
    hinge_j = torch.as_tensor([_INDEX[n] for n in HINGE_AXES])
    hinge_a = torch.as_tensor([HINGE_AXES[n] for n in HINGE_AXES], dtype=dtype)

    def rotations(params: torch.Tensor) -> torch.Tensor:
        rot = eye.expand(b, NUM_JOINTS, 3, 3).clone()
        rot[:, free_t] = rot6d_to_rotmat(params)
        return rot

    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.1 ** (1.0 / max(iters, 1)))
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        rot = rotations(x)
        body = skeleton_fk(rot, rest)
        ub = _normalise(body[:, child] - body[:, anchor])
        loss = (wb * ((ub - ut) ** 2).sum(-1)).sum()
        if pos_weight > 0:
            rel_b = body - body[:, :1]
            loss = loss + pos_weight * (wpos * ((rel_b - pos_t) ** 2).sum(-1)).sum()
        if reg_weight > 0:
            loss = loss + reg_weight * (reg_w * (rot[:, body_idx] - eye) ** 2).sum()
        if hinge_weight > 0:
            turned = (rot[:, hinge_j] @ hinge_a.unsqueeze(-1)).squeeze(-1)
            loss = loss + hinge_weight * ((turned - hinge_a) ** 2).sum()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return rotations(x.detach())


# ------------------------------------------------------------------------ BVH inputs

_UP_AXES = {"y": np.eye(3), "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])}


@dataclass(frozen=True)
class MocapTargets:
    """Everything :func:`retarget` needs from a BVH clip (see :func:`mocap_targets`).

    ``joints`` (T, 24, 3) metres in SMPL's axes; ``mask``, ``weights`` (24,);
    ``segment_rotations`` (T, 24, 3, 3) and ``reference_joints`` (24, 3) for the torso
    calibration; ``skeleton`` / ``variant`` from the skeleton map; ``approximate``
    the approximately placed SMPL joints.
    """

    joints: np.ndarray
    mask: np.ndarray
    weights: np.ndarray
    segment_rotations: np.ndarray
    reference_joints: np.ndarray
    skeleton: str
    variant: str
    approximate: frozenset

    def retarget(self, body, **kwargs) -> RetargetResult:
        """:func:`retarget` these targets (torso calibration included)."""
        return retarget(self.joints, self.mask, self.weights, body,
                        segment_rotations=self.segment_rotations,
                        reference_joints=self.reference_joints, **kwargs)


def segment_rotations(clip: BvhClip, rotations: np.ndarray) -> np.ndarray:
    """(T, 24, 3, 3) global rotation of the BVH segment that ends at each SMPL joint.

    ``rotations`` (T, J, 3, 3) from ``forward_kinematics(..., return_rotations=True)``.
    The segment ending at a joint is rotated by the joint's BVH parent (for an End Site
    source, the joint it ends); the root gets the identity.  All are identity in the
    BVH rest pose.  Unmapped SMPL joints get zeros.
    """
    rotations = np.asarray(rotations)
    parents = np.maximum(clip.parents, 0)
    incoming = rotations[:, parents].copy()
    incoming[:, clip.parents < 0] = np.eye(3)
    columns = [smpl_joint_positions(clip, incoming[..., :, k])[0] for k in range(3)]
    return np.stack(columns, axis=-1)


def mocap_targets(clip: BvhClip, frames=None, *, approx_weight: float = 0.3,
                  up: str = "y") -> MocapTargets:
    """Retargeting targets of ``clip``'s ``frames`` (as ``forward_kinematics`` takes them).

    Weights: 1 for mapped joints, ``approx_weight`` for the ones the skeleton map calls
    approximate, 0 for unmapped ones.  ``up``: the file's up axis (``"y"`` or ``"z"``).
    """
    smap = skeleton_map(clip)
    positions, rotations = forward_kinematics(clip, frames, return_rotations=True)
    axes = _UP_AXES[up.lower()]
    positions = to_smpl_frame(positions, units="m", up=up)
    rotations = axes @ rotations @ axes.T
    joints, mask = smpl_joint_positions(clip, positions)
    weights = np.where(mask, 1.0, 0.0)
    for name in smap.approximate:
        weights[_INDEX[name]] = approx_weight
    rest = to_smpl_frame(rest_positions(clip)[None], units=clip.units, up=up)
    reference = smpl_joint_positions(clip, rest)[0][0]
    return MocapTargets(joints=joints, mask=mask, weights=weights,
                        segment_rotations=segment_rotations(clip, rotations),
                        reference_joints=reference, skeleton=smap.skeleton,
                        variant=smap.variant, approximate=smap.approximate)
