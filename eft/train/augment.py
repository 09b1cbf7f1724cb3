"""Per-step augmentation of training samples, for keypoint and image regressors.

One pipeline moves every sample from image pixels into the regressor's crop and keeps
inputs, 2D targets and 3D targets consistent (per sample, in this order):

0. **Input format** (``format_prob``): the sample's input keypoints are restricted to
   the slots of one keypoint format drawn uniformly from ``formats`` (e.g. ``coco17``,
   ``lsp14``, ``coco17+openpose25``), so every input slot is trained on the joint
   combinations real datasets give.  **Real missing pattern** (``real_mask_prob``,
   3D-supervised samples only): the missing joints of one real person (a pattern drawn
   from the training set's own 2D-only samples, :func:`real_drop_patterns`) are
   removed as well, with every slot that names the same joint, and the box is rebuilt
   from what is left - so synthetic people miss joints together the way real COCO /
   MPII people do (whole legs, the lower body).  **Exact inputs** (``clean_input_prob``,
   3D-supervised samples only): the input keypoints are replaced by the exact 2D
   targets at the slots the annotation has (its missing joints kept), and get no
   keypoint noise in step 6 - labels projected from motion capture, as a studio set
   gives them.  **Hidden limb** (``hide_limb_prob``): one limb's
   distal joints (elbow and wrist, or knee, ankle and foot) are removed from the input
   and the box is rebuilt from the remaining input joints (SPIN's rule, 1.2 x the long
   side), as in the held-out-joint benchmark.  Targets keep every joint, so the
   regressor learns to place joints it does not see.  **Skeleton jitter**
   (``skeleton_jitter_prob``, 3D-supervised samples only, before the format is drawn):
   the input keypoints are redrawn from a skeleton of other proportions - hip and
   shoulder widths, thighs, shins, upper arms and forearms each scaled by
   ``exp(N(0, std))`` (the same factor on both sides; each joint's move carried down
   its limb, the feet following the ankles), and the torso's own slots (neck, thorax,
   pelvis, spine, head, jaw) moved along the torso - as a motion-capture studio's or an
   annotator's skeleton differs from the body model's.  Targets keep the body model's
   joints, so the regressor learns the body under a skeleton it cannot draw.
1. **Reframing** (optional): an *extreme crop* - the box of the upper body, or of one
   of 8 nested body parts from the head to the whole body ("multilevel") - or a
   *truncation* (everything beyond a random cut on one side is cut off, and the box
   shrinks to the rest).  Input keypoints outside the new view get confidence 0.
2. **Box jitter**: bbox scale times ``U(scale_range)``, centre shifted by up to
   ``center_jitter`` of the box side.
3. Crop normalisation: ``(x - center) / (100 scale)`` (``eft.geometry.cameras``).
4. **Flip** (``flip_prob``): ``x -> -x`` with the SPIN-49 flip permutation for 2D and
   3D keypoints, and the SMPL mirror for rotations (joints swapped, ``R -> M R M``
   with ``M = diag(-1, 1, 1)``; on axis-angle that is SPIN's ``flip_pose``).
5. **Rotation** (``rot_prob``): in-plane by ``clip(N(0, rot_std), +-rot_max)`` degrees,
   the same rotation as :func:`eft.geometry.crops.image_to_crop`; the global
   orientation and the 3D keypoints turn with it about the camera axis.
6. Input keypoints only: Gaussian **noise** (``kp_noise``, crop-normalised std) and
   **dropout** (``kp_dropout`` of the annotated joints).
7. Images only: the crop is cut from the (flipped) image with the final box and
   rotation (:func:`eft.data.images.crop_image`), each colour channel is scaled by
   ``U(color_range)``, and it is normalised for HMR.

**Novel views** (:func:`novel_view`, used by the trainer's view-cycle loss on real
2D-only samples, not by :func:`make_batch`): a predicted body turned about its pelvis
(yaw about the camera's vertical, then pitch), projected orthographically and framed
by the box of the sample's present input slots (1.2 x the long side, times
``U(scale_range)``), as the regressor's next input.

All random numbers come from one ``torch.Generator`` (drawn in a fixed order, and
only for the augmentations that are switched on), so a run is reproducible and
resumable.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from eft.body.joints import SPIN49_NAMES, flip_keypoints, flip_smpl_rotmat
from eft.data.images import crop_image, load_image, normalize_crop
from eft.geometry.cameras import image_to_crop_norm
from eft.synthetic.exemplars import LIMB_MASKS, annotated_slots

from .data import TrainSet

__all__ = ["AugmentConfig", "Batch", "make_batch", "crop_inputs", "novel_view", "flip_rotmat",
           "jitter_skeleton",
           "flip_kp3d", "flip_kp2d", "rotate_2d", "rotate_3d", "rotation_z",
           "LEVEL_GROUPS", "LEVEL_MASKS", "UPPER_BODY_LEVEL", "image_batch"]

# Nested body parts for the multilevel crops: level k holds the joints of groups 0..k.
LEVEL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Nose", "Eye", "Ear", "Head", "Jaw"),
    ("Neck", "Shoulder", "Thorax"),
    ("Elbow",),
    ("Wrist",),
    ("Hip", "Pelvis", "Spine"),
    ("Knee",),
    ("Ankle",),
    ("Toe", "Heel"),
)


def _level_masks() -> torch.Tensor:
    group = np.full(len(SPIN49_NAMES), -1)
    for i, name in enumerate(SPIN49_NAMES):
        for g, words in enumerate(LEVEL_GROUPS):
            if group[i] < 0 and any(w in name for w in words):
                group[i] = g
    if (group < 0).any():  # pragma: no cover - guards the table above
        raise RuntimeError(f"joints without a crop level: {np.array(SPIN49_NAMES)[group < 0]}")
    return torch.as_tensor(group[None, :] <= np.arange(len(LEVEL_GROUPS))[:, None])


#: (8, 49) bool: the joints inside each multilevel crop, head (0) to the whole body (7).
LEVEL_MASKS: torch.Tensor = _level_masks()
#: The upper-body crop: head, shoulders, arms and hips.
UPPER_BODY_LEVEL = 4



@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings (module docstring); 0 switches a random one off.

    Attributes:
        scale_range: bbox scale multiplier, uniform.
        center_jitter: bbox centre shift, uniform up to this fraction of the box side.
        flip_prob: probability of a left/right flip.
        rot_prob: probability of an in-plane rotation; rot_std_deg / rot_max_deg: its
            normal std and clip (SPIN: 0.4, 30, 60).
        kp_noise: std of the noise added to input keypoints (crop-normalised units,
            1 = half the crop side).
        kp_dropout: fraction of annotated input joints dropped.
        truncation_prob: probability of a truncation; truncation_range: the fraction of
            the person's keypoint extent cut off, uniform.
        upper_body_prob: probability of an upper-body crop.
        multilevel_prob: probability of a multilevel crop (level uniform in 0..7).
        min_crop_fraction: a reframed box is at least this fraction of the original side.
        color_range: per-channel colour scale, uniform (images only).
        format_prob / formats: input-format restriction (step 0).
        hide_limb_prob: probability of hiding one limb's distal joints (step 0).
        hide_limb_prob_2d: the same for 2D-only samples (no SMPL or 3D target, e.g.
            real labels); None: ``hide_limb_prob`` for every sample.
        real_mask_prob: probability that a 3D-supervised sample also loses the missing
            joints of a real person (step 0; needs real 2D-only samples in the set).
        clean_input_prob: probability that a 3D-supervised sample reads its exact 2D
            targets instead of its annotated keypoints, without keypoint noise (step 0).
        skeleton_jitter_prob: probability that a 3D-supervised sample's input is redrawn
            from a skeleton of other proportions (step 0, :func:`jitter_skeleton`);
            ``bone_scale_std`` (limb bones), ``width_scale_std`` (hip and shoulder
            widths): std of the log scale factors; ``torso_shift_std``: std of each torso
            slot's move along the torso, in torso lengths.
        cycle_yaw_deg / cycle_pitch_std_deg: novel views for the view-cycle loss
            (:func:`novel_view`): yaw uniform in +-``cycle_yaw_deg``, pitch normal with
            this std (clipped to +-3 std).  Used only when the loss's ``cycle_kp3d`` or
            ``cycle_rotmat`` weight is > 0.
    """

    scale_range: tuple[float, float] = (0.75, 1.25)
    center_jitter: float = 0.05
    flip_prob: float = 0.5
    rot_prob: float = 0.4
    rot_std_deg: float = 30.0
    rot_max_deg: float = 60.0
    kp_noise: float = 0.005
    kp_dropout: float = 0.05
    truncation_prob: float = 0.0
    truncation_range: tuple[float, float] = (0.15, 0.5)
    upper_body_prob: float = 0.0
    multilevel_prob: float = 0.0
    min_crop_fraction: float = 0.3
    color_range: tuple[float, float] = (0.6, 1.4)
    format_prob: float = 0.0
    formats: tuple[str, ...] = ()
    hide_limb_prob: float = 0.0
    hide_limb_prob_2d: float | None = None
    real_mask_prob: float = 0.0
    clean_input_prob: float = 0.0
    skeleton_jitter_prob: float = 0.0
    bone_scale_std: float = 0.10
    width_scale_std: float = 0.15
    torso_shift_std: float = 0.05
    cycle_yaw_deg: float = 180.0
    cycle_pitch_std_deg: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(str(f) for f in self.formats))
        for fmt in self.formats:
            try:
                annotated_slots(fmt)
            except KeyError as exc:  # the config's ValueError, naming the known formats
                raise ValueError(f"formats: {exc.args[0]}") from None
        if self.format_prob > 0 and not self.formats:
            raise ValueError("format_prob > 0 needs a list of formats")
        for name in ("scale_range", "truncation_range", "color_range"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be [lo, hi] with 0 <= lo <= hi, got {[lo, hi]}")
            object.__setattr__(self, name, (lo, hi))
        if self.scale_range[0] <= 0:
            raise ValueError("scale_range must be positive")
        for name in ("flip_prob", "rot_prob", "kp_dropout", "truncation_prob",
                     "upper_body_prob", "multilevel_prob", "format_prob", "hide_limb_prob",
                     "real_mask_prob", "clean_input_prob", "skeleton_jitter_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.hide_limb_prob_2d is not None:
            p2d = float(self.hide_limb_prob_2d)
            if not 0.0 <= p2d <= 1.0:
                raise ValueError(f"hide_limb_prob_2d must lie in [0, 1], got {p2d!r}")
            object.__setattr__(self, "hide_limb_prob_2d", p2d)
        if self.truncation_prob + self.upper_body_prob + self.multilevel_prob > 1.0:
            raise ValueError("truncation_prob + upper_body_prob + multilevel_prob must be <= 1")
        for name in ("center_jitter", "rot_std_deg", "rot_max_deg", "kp_noise",
                     "cycle_yaw_deg", "cycle_pitch_std_deg", "bone_scale_std",
                     "width_scale_std", "torso_shift_std"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.min_crop_fraction <= 1:
            raise ValueError("min_crop_fraction must lie in (0, 1]")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (evaluation framing)."""
        return cls(scale_range=(1.0, 1.0), center_jitter=0.0, flip_prob=0.0, rot_prob=0.0,
                   kp_noise=0.0, kp_dropout=0.0, color_range=(1.0, 1.0))


@dataclass
class Batch:
    """One training batch of B samples.

    Attributes:
        keypoints: (B, 49, 3) crop-normalised input keypoints + confidence.
        target2d: (B, 49, 3) crop-normalised 2D targets + weight.
        rotmat: (B, 24, 3, 3); betas: (B, 10); has_smpl: (B,) bool.
        kp3d: (B, 49, 3) pelvis-relative; has_kp3d: (B,) bool.
        center: (B, 2), scale: (B,), rot: (B,) degrees, flip: (B,) bool, color: (B, 3):
            the final crop of each sample (for image inputs).
        images: (B, 3, R, R) normalised crops, or None for keypoint inputs.
    """

    keypoints: Tensor
    target2d: Tensor
    rotmat: Tensor
    betas: Tensor
    has_smpl: Tensor
    kp3d: Tensor
    has_kp3d: Tensor
    center: Tensor
    scale: Tensor
    rot: Tensor
    flip: Tensor
    color: Tensor
    images: Tensor | None = None

    @property
    def only_2d(self) -> Tensor:
        """(B,) bool: the samples with 2D targets alone (real labels: no SMPL, no 3D)."""
        return ~(self.has_smpl | self.has_kp3d)

    @property
    def inputs(self) -> Tensor:
        """What the regressor reads: the images when there are any, else the keypoints."""
        return self.keypoints if self.images is None else self.images

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v)
                 for k, v in self.__dict__.items()}
        return Batch(**moved)


def crop_inputs(kp_px: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """(n, 49, 3) image px + conf -> crop-normalised [-1, 1] + conf (missing stay 0)."""
    xy = image_to_crop_norm(kp_px[..., :2], center, scale)
    conf = kp_px[..., 2:3]
    return torch.cat([xy * (conf > 0), conf], dim=-1)


# ---------------------------------------------------------------------------
# Geometry of flips and rotations
# ---------------------------------------------------------------------------

def flip_kp2d(kp: Tensor) -> Tensor:
    """(..., 49, C) crop-normalised keypoints mirrored: x -> -x, sides swapped."""
    return flip_keypoints(kp)


def flip_kp3d(kp3d: Tensor) -> Tensor:
    """(..., 49, 3) 3D keypoints mirrored in the camera's x: x -> -x, sides swapped."""
    return flip_kp2d(kp3d)


def flip_rotmat(rotmat: Tensor) -> Tensor:
    """(..., 24, 3, 3) SMPL rotations of the mirrored body: sides swapped, ``M R M``
    (:func:`eft.body.joints.flip_smpl_rotmat`)."""
    return flip_smpl_rotmat(rotmat)


def rotation_z(rot_deg: Tensor) -> Tensor:
    """(...,) degrees -> (..., 3, 3) rotation about the camera axis that turns image
    content as :func:`rotate_2d` does (``[[c, s, 0], [-s, c, 0], [0, 0, 1]]``)."""
    rad = rot_deg * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, s, z], -1), torch.stack([-s, c, z], -1),
                        torch.stack([z, z, o], -1)], -2)


def rotate_2d(xy: Tensor, rot_deg: Tensor) -> Tensor:
    """(B, N, 2) crop-normalised points turned by ``rot_deg`` (B,) about the crop
    centre, as :func:`eft.geometry.crops.image_to_crop` rotates crop content."""
    r = rotation_z(rot_deg)[:, :2, :2].to(xy.dtype)
    return torch.einsum("bij,bnj->bni", r, xy)


def rotate_3d(rotmat: Tensor, kp3d: Tensor, rot_deg: Tensor) -> tuple[Tensor, Tensor]:
    """Turn bodies about the camera axis: global orientation ``Rz @ R0`` and
    pelvis-relative keypoints ``Rz @ X`` for (B, 24, 3, 3), (B, 49, 3), (B,)."""
    rz = rotation_z(rot_deg).to(rotmat.dtype)
    rotmat = rotmat.clone()
    rotmat[:, 0] = rz @ rotmat[:, 0]
    return rotmat, torch.einsum("bij,bnj->bni", rz, kp3d)


# ---------------------------------------------------------------------------
# Input formats and hidden limbs
# ---------------------------------------------------------------------------

_LIMBS_T = torch.as_tensor(LIMB_MASKS.copy())


@functools.lru_cache(maxsize=16)
def _format_masks(formats: tuple[str, ...]) -> torch.Tensor:
    """(F, 49) bool: the slots of each input format (computed once per format list)."""
    return torch.as_tensor(np.stack([annotated_slots(f) for f in formats]))


def _restrict_format(kp: Tensor, cfg: AugmentConfig, g: torch.Generator) -> Tensor:
    """Step 0: each sample's inputs restricted to one format's slots (``format_prob``)."""
    n = kp.shape[0]
    masks = _format_masks(cfg.formats)
    pick = torch.randint(len(cfg.formats), (n,), generator=g)
    use = torch.rand(n, generator=g) < cfg.format_prob
    keep = torch.where(use[:, None], masks[pick], torch.ones(n, 49, dtype=torch.bool))
    return kp * keep[..., None]


def _exact_inputs(kp: Tensor, target: Tensor, has3d: Tensor, cfg: AugmentConfig,
                  g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Step 0: with probability ``clean_input_prob``, a 3D-supervised sample's input
    keypoints (B, 49, 3) take the positions of its 2D targets (B, 49, 3) wherever both
    are present; returns the new keypoints and which samples (B,) bool were made exact."""
    use = (torch.rand(kp.shape[0], generator=g) < cfg.clean_input_prob) & has3d
    swap = use[:, None] & (kp[..., 2] > 0) & (target[..., 2] > 0)
    xy = torch.where(swap[..., None], target[..., :2], kp[..., :2])
    return torch.cat([xy, kp[..., 2:]], -1), use


def _hide_limb(kp: Tensor, center: Tensor, scale: Tensor, has3d: Tensor, cfg: AugmentConfig,
               g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Step 0c: one limb's distal joints hidden (``hide_limb_prob``; samples without a
    3D target, ``has3d`` (B,) False, ``hide_limb_prob_2d`` when set), box rebuilt."""
    n = kp.shape[0]
    limb = torch.randint(len(LIMB_MASKS), (n,), generator=g)
    prob = torch.full((n,), cfg.hide_limb_prob)
    if cfg.hide_limb_prob_2d is not None:
        prob = torch.where(has3d, prob, torch.tensor(cfg.hide_limb_prob_2d))
    use = torch.rand(n, generator=g) < prob
    kp = kp * (~(_LIMBS_T[limb] & use[:, None]))[..., None]
    present = kp[..., 2] > 0
    ok = use & (present.sum(1) >= 2)
    if bool(ok.any()):
        new_c, side = _box_of(kp, present)
        side = torch.maximum(side, 0.05 * 200.0 * scale)  # never a degenerate box
        center = torch.where(ok[:, None], new_c, center)
        scale = torch.where(ok, side / 200.0, scale)
    return kp, center, scale


def _slot(name: str) -> int:
    return SPIN49_NAMES.index(name)


# The joints every real format labels by the same name (COCO-17 and MPII-16 share the
# twelve limb joints; COCO adds the face), each with the other SPIN-49 slots that are
# the same joint (OpenPose's copy; the feet follow the ankles).
_CORE_EQUIVALENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Right Ankle", ("OP RAnkle", "OP RBigToe", "OP RSmallToe", "OP RHeel")),
    ("Right Knee", ("OP RKnee",)),
    ("Right Hip", ("OP RHip",)),
    ("Left Hip", ("OP LHip",)),
    ("Left Knee", ("OP LKnee",)),
    ("Left Ankle", ("OP LAnkle", "OP LBigToe", "OP LSmallToe", "OP LHeel")),
    ("Right Wrist", ("OP RWrist",)),
    ("Right Elbow", ("OP RElbow",)),
    ("Right Shoulder", ("OP RShoulder",)),
    ("Left Shoulder", ("OP LShoulder",)),
    ("Left Elbow", ("OP LElbow",)),
    ("Left Wrist", ("OP LWrist",)),
    ("Nose", ("OP Nose",)),
    ("Left Eye", ("OP LEye",)),
    ("Right Eye", ("OP REye",)),
    ("Left Ear", ("OP LEar",)),
    ("Right Ear", ("OP REar",)),
)
_CORE = torch.as_tensor([_slot(c) for c, _ in _CORE_EQUIVALENTS])
# Columns of _CORE that are the face (COCO labels it, MPII does not).
_FACE_COLS = torch.as_tensor([k for k, (core, _) in enumerate(_CORE_EQUIVALENTS)
                              if core in ("Nose", "Left Eye", "Right Eye", "Left Ear",
                                          "Right Ear")])
# MPII's own slots: a sample with any of them is MPII-like and labels no face.
_MPII_ONLY = torch.as_tensor([_slot(n) for n in ("Neck (LSP)", "Top of Head (LSP)",
                                                 "Pelvis (MPII)", "Thorax (MPII)")])


def _expand_matrix() -> torch.Tensor:
    """(17, 49) bool: core joint k -> every slot that is the same joint."""
    m = torch.zeros(len(_CORE_EQUIVALENTS), 49, dtype=torch.bool)
    for k, (core, same) in enumerate(_CORE_EQUIVALENTS):
        for name in (core, *same):
            m[k, _slot(name)] = True
    return m


_EXPAND = _expand_matrix()

# Skeleton jitter: (parent, joint, factor column) along each limb, root first; the
# factor columns are 0 thigh, 1 shin, 2 upper arm, 3 forearm (4 hip width and 5
# shoulder width scale the pairs in _WIDTHS about their midpoint).
_LIMB_CHAIN: tuple[tuple[str, str, int], ...] = (
    ("Right Hip", "Right Knee", 0), ("Right Knee", "Right Ankle", 1),
    ("Left Hip", "Left Knee", 0), ("Left Knee", "Left Ankle", 1),
    ("Right Shoulder", "Right Elbow", 2), ("Right Elbow", "Right Wrist", 3),
    ("Left Shoulder", "Left Elbow", 2), ("Left Elbow", "Left Wrist", 3),
)
_WIDTHS: tuple[tuple[str, str, int], ...] = (("Right Hip", "Left Hip", 4),
                                              ("Right Shoulder", "Left Shoulder", 5))
# Torso slots a skeleton may define elsewhere along the torso.
_TORSO_SLOTS = torch.as_tensor([_slot(n) for n in (
    "OP Neck", "OP MidHip", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)",
    "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)")])
_CORE_NAMES = [c for c, _ in _CORE_EQUIVALENTS]


def jitter_skeleton(kp: Tensor, use: Tensor, cfg: AugmentConfig, g: torch.Generator
                    ) -> Tensor:
    """``kp`` (B, 49, 3) image px with the samples ``use`` (B,) bool redrawn from a
    skeleton of other proportions (module docstring, step 0): widths and limb bones
    scaled by ``exp(N(0, std))``, a joint's move carried to every joint below it (and to
    every slot that is the same joint), the torso slots moved along the hips-to-shoulders
    axis by ``N(0, torso_shift_std)`` torso lengths.  A bone with an unlabelled end is
    not scaled (what hangs below it still moves with its parent); confidences are kept.
    Draws the same random numbers whatever ``use`` holds."""
    n = kp.shape[0]
    factors = torch.exp(torch.randn(n, 6, generator=g)
                        * torch.tensor([cfg.bone_scale_std] * 4 + [cfg.width_scale_std] * 2))
    shifts = torch.randn(n, len(_TORSO_SLOTS), generator=g) * cfg.torso_shift_std
    xy, present = kp[..., :2], kp[..., 2] > 0
    core = xy[:, _CORE]  # (B, 17, 2): the GT slots of the core joints
    ok = present[:, _CORE]
    move = torch.zeros_like(core)
    col = {name: k for k, name in enumerate(_CORE_NAMES)}
    for a, b, f in _WIDTHS:
        i, j = col[a], col[b]
        both = (ok[:, i] & ok[:, j])[:, None]
        half = (core[:, i] - core[:, j]) / 2 * (factors[:, f:f + 1] - 1)
        move[:, i] += torch.where(both, half, 0.0)
        move[:, j] -= torch.where(both, half, 0.0)
    for a, b, f in _LIMB_CHAIN:
        i, j = col[a], col[b]
        both = (ok[:, i] & ok[:, j])[:, None]
        bone = (core[:, j] - core[:, i]) * (factors[:, f:f + 1] - 1)
        move[:, j] += move[:, i] + torch.where(both, bone, 0.0)
    moved = xy + torch.einsum("kc,bkd->bcd", _EXPAND.to(xy.dtype), move)
    # the torso: hips' midpoint to shoulders' midpoint (both pairs labelled)
    hips = (core[:, col["Right Hip"]] + core[:, col["Left Hip"]]) / 2
    shoulders = (core[:, col["Right Shoulder"]] + core[:, col["Left Shoulder"]]) / 2
    has_torso = ok[:, [col["Right Hip"], col["Left Hip"], col["Right Shoulder"],
                       col["Left Shoulder"]]].all(1)
    up = torch.where(has_torso[:, None], shoulders - hips, 0.0)
    moved[:, _TORSO_SLOTS] += shifts[..., None] * up[:, None, :]
    out = kp.clone()
    out[..., :2] = torch.where((use[:, None] & present)[..., None], moved, xy)
    return out
# Joints a dataset derives from others: dropped when all of their sources are missing.
_DERIVED: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("Right Shoulder", "Left Shoulder"), ("OP Neck", "Neck (LSP)", "Thorax (MPII)")),
    (("Right Hip", "Left Hip"), ("OP MidHip", "Pelvis (MPII)", "Spine (H36M)")),
    (("Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear"),
     ("Top of Head (LSP)", "Jaw (H36M)", "Head (H36M)")),
)


def real_drop_patterns(kp_px: Tensor) -> Tensor:
    """The missing-joint patterns of real people, as SPIN-49 drop masks.

    Args:
        kp_px: (n, 49, 3) real people's keypoints (confidence 0 = missing), COCO-17
            and/or MPII-16 slots.
    Returns:
        (n, 49) bool: True where the person's label is missing, spread to every slot
        that is the same joint, and to the derived joints (neck, pelvis, head) whose
        sources are all missing.  MPII-like people (any MPII-only slot labelled) label
        no face, so their face counts as present.
    """
    present = kp_px[..., 2] > 0
    missing = ~present[:, _CORE]  # (n, 17)
    mpii_like = present[:, _MPII_ONLY].any(1)
    missing[:, _FACE_COLS] &= ~mpii_like[:, None]
    drop = (missing.float() @ _EXPAND.float()) > 0
    for sources, derived in _DERIVED:
        cols = torch.as_tensor([_CORE_NAMES.index(c) for c in sources])
        gone = missing[:, cols].all(1)
        for name in derived:
            drop[:, _slot(name)] |= gone
    return drop


def _apply_real_patterns(kp: Tensor, center: Tensor, scale: Tensor, eligible: Tensor,
                         bank: Tensor, cfg: AugmentConfig, g: torch.Generator
                         ) -> tuple[Tensor, Tensor, Tensor]:
    """Step 0b: drop a real person's missing joints from ``eligible`` samples (B,) with
    probability ``cfg.real_mask_prob``, and rebuild their box from what is left."""
    n = kp.shape[0]
    pick = torch.randint(bank.shape[0], (n,), generator=g)
    use = (torch.rand(n, generator=g) < cfg.real_mask_prob) & eligible
    dropped = kp * (~(bank[pick] & use[:, None]))[..., None]
    present = dropped[..., 2] > 0
    ok = use & (present.sum(1) >= 4)  # too few joints left: keep the sample as it was
    if not bool(ok.any()):
        return kp, center, scale
    new_c, side = _box_of(dropped, present)
    side = torch.maximum(side, 0.05 * 200.0 * scale)
    kp = torch.where(ok[:, None, None], dropped, kp)
    center = torch.where(ok[:, None], new_c, center)
    scale = torch.where(ok, side / 200.0, scale)
    return kp, center, scale


# ---------------------------------------------------------------------------
# Reframing: extreme crops and truncation
# ---------------------------------------------------------------------------

def _box_of(kp: Tensor, sel: Tensor, rescale: float = 1.2) -> tuple[Tensor, Tensor]:
    """Centre (B, 2) and side (B,) of the square around the selected keypoints."""
    big = torch.finfo(kp.dtype).max
    x, y = kp[..., 0], kp[..., 1]
    lo_x = torch.where(sel, x, big).amin(1)
    hi_x = torch.where(sel, x, -big).amax(1)
    lo_y = torch.where(sel, y, big).amin(1)
    hi_y = torch.where(sel, y, -big).amax(1)
    center = torch.stack([(lo_x + hi_x) / 2, (lo_y + hi_y) / 2], -1)
    side = rescale * torch.maximum(hi_x - lo_x, hi_y - lo_y)
    return center, side


def _reframe(kp: Tensor, center: Tensor, scale: Tensor, cfg: AugmentConfig,
             g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Extreme crops and truncation (step 1); returns new (kp, center, scale)."""
    n = kp.shape[0]
    u = torch.rand(n, generator=g)
    level = torch.randint(len(LEVEL_GROUPS), (n,), generator=g)
    side_pick = torch.randint(4, (n,), generator=g)
    lo, hi = cfg.truncation_range
    frac = lo + (hi - lo) * torch.rand(n, generator=g)
    p_up, p_multi = cfg.upper_body_prob, cfg.multilevel_prob
    upper = u < p_up
    multi = (u >= p_up) & (u < p_up + p_multi)
    trunc = (u >= p_up + p_multi) & (u < p_up + p_multi + cfg.truncation_prob)
    present = kp[..., 2] > 0
    lvl = torch.where(upper, torch.full_like(level, UPPER_BODY_LEVEL), level)
    subset = LEVEL_MASKS[lvl] & present
    # truncation: keep the keypoints on the near side of a cut through the person
    big = torch.finfo(kp.dtype).max
    axis = (side_pick // 2)  # 0: x (cut the right or left), 1: y (bottom or top)
    coord = torch.gather(kp[..., :2], 2, axis[:, None, None].expand(n, 49, 1))[..., 0]
    cmin = torch.where(present, coord, big).amin(1)
    cmax = torch.where(present, coord, -big).amax(1)
    extent = (cmax - cmin).clamp(min=0)
    from_high = side_pick % 2 == 0  # cut off the high side (right / bottom)
    cut = torch.where(from_high, cmax - frac * extent, cmin + frac * extent)
    keep_side = torch.where(from_high[:, None], coord <= cut[:, None], coord >= cut[:, None])
    subset = torch.where(trunc[:, None], present & keep_side, subset)
    active = (upper | multi | trunc) & (subset.sum(1) >= 2)
    if not bool(active.any()):
        return kp, center, scale
    new_c, new_side = _box_of(kp, subset)
    old_side = 200.0 * scale
    new_side = torch.minimum(torch.maximum(new_side, cfg.min_crop_fraction * old_side), old_side)
    center = torch.where(active[:, None], new_c, center)
    scale = torch.where(active, new_side / 200.0, scale)
    half = 100.0 * scale[:, None]
    inside = ((kp[..., :2] - center[:, None]).abs() <= half[..., None]).all(-1)
    keep = torch.where(trunc[:, None], inside & keep_side, inside)
    keep = torch.where(active[:, None], keep, torch.ones_like(keep))
    return kp * keep[..., None], center, scale


def novel_view(kp3d: Tensor, pelvis: Tensor, present: Tensor, cfg: AugmentConfig,
               g: torch.Generator) -> tuple[Tensor, Tensor]:
    """A body seen from a random other viewpoint (module docstring, "Novel views").

    ``kp3d`` (B, 49, 3) keypoints and ``pelvis`` (B, 3) in the camera frame of the
    regressor's output; ``present`` (B, 49) bool, the slots the new input fills.
    Returns ``(inputs, target)``: ``inputs`` (B, 49, 3) crop-normalised keypoints with
    confidence 1 at the present slots (0 elsewhere), and ``target`` (B, 49, 3) the
    turned keypoints relative to the pelvis, what a regressor reading ``inputs`` should
    predict (its pelvis-relative keypoints).  Draws yaw, pitch and box scale from ``g``
    in that order."""
    n = kp3d.shape[0]
    yaw = torch.deg2rad((torch.rand(n, generator=g) * 2 - 1) * cfg.cycle_yaw_deg)
    pitch = torch.deg2rad((torch.randn(n, generator=g) * cfg.cycle_pitch_std_deg)
                          .clamp(-3 * cfg.cycle_pitch_std_deg, 3 * cfg.cycle_pitch_std_deg))
    lo, hi = cfg.scale_range
    box_scale = lo + (hi - lo) * torch.rand(n, generator=g)
    yaw, pitch, box_scale = (t.to(kp3d.device, kp3d.dtype) for t in (yaw, pitch, box_scale))
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    one, zero = torch.ones_like(cy), torch.zeros_like(cy)
    r_yaw = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(n, 3, 3)
    r_pitch = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(n, 3, 3)
    rot = r_pitch @ r_yaw
    target = (kp3d - pelvis[:, None]) @ rot.transpose(1, 2)
    xy = target[..., :2]
    center, side = _box_of(xy, present)
    side = (side * box_scale).clamp(min=1e-3)
    inputs_xy = (xy - center[:, None]) / (side[:, None, None] / 2)
    conf = present.to(kp3d.dtype)[..., None]
    return torch.cat([inputs_xy * conf, conf], -1), target


# ---------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------

def make_batch(data: TrainSet, idx: Tensor, cfg: AugmentConfig, g: torch.Generator,
               images: bool = False, img_res: int = 224, workers: int = 0,
               drop_bank: Tensor | None = None) -> Batch:
    """Augmented batch of the samples ``idx`` (B,) of ``data`` (module docstring).

    ``images=True`` also cuts the image crops (``img_res`` px; ``workers`` threads
    read the images; 0 reads them in this thread).  ``drop_bank`` (M, 49) bool: the
    real missing-joint patterns that ``cfg.real_mask_prob`` draws from
    (:func:`real_drop_patterns`)."""
    n = idx.shape[0]
    kp = data.kp_px[idx]
    center, scale = data.center[idx], data.scale[idx]
    has3d = data.has_smpl[idx] | data.has_kp3d[idx]
    exact = torch.zeros(n, dtype=torch.bool)
    if cfg.clean_input_prob > 0:
        kp, exact = _exact_inputs(kp, data.target_px[idx], has3d, cfg, g)
    if cfg.skeleton_jitter_prob > 0:
        use = has3d & (torch.rand(n, generator=g) < cfg.skeleton_jitter_prob)
        kp = jitter_skeleton(kp, use, cfg, g)
    if cfg.format_prob > 0:
        kp = _restrict_format(kp, cfg, g)
    if cfg.real_mask_prob > 0:
        if drop_bank is None or drop_bank.shape[0] == 0:
            raise ValueError("real_mask_prob > 0 needs real missing-joint patterns (drop_bank)")
        kp, center, scale = _apply_real_patterns(kp, center, scale, has3d, drop_bank,
                                                 cfg, g)
    if cfg.hide_limb_prob > 0 or (cfg.hide_limb_prob_2d or 0.0) > 0:
        kp, center, scale = _hide_limb(kp, center, scale, has3d, cfg, g)
    if cfg.truncation_prob > 0 or cfg.upper_body_prob > 0 or cfg.multilevel_prob > 0:
        kp, center, scale = _reframe(kp, center, scale, cfg, g)
    lo, hi = cfg.scale_range
    scale = scale * (lo + (hi - lo) * torch.rand(n, generator=g))
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * cfg.center_jitter * 200.0 * scale[:, None]
    center = center + shift
    inputs = crop_inputs(kp, center, scale)
    target = data.target_px[idx]
    target2d = torch.cat([image_to_crop_norm(target[..., :2], center, scale),
                          target[..., 2:3]], -1)
    rotmat, kp3d = data.rotmat[idx], data.kp3d[idx]
    flip = torch.zeros(n, dtype=torch.bool)
    if cfg.flip_prob > 0:
        flip = torch.rand(n, generator=g) < cfg.flip_prob
        f = flip[:, None, None]
        inputs = torch.where(f, flip_kp2d(inputs), inputs)
        target2d = torch.where(f, flip_kp2d(target2d), target2d)
        kp3d = torch.where(f, flip_kp3d(kp3d), kp3d)
        rotmat = torch.where(f[..., None], flip_rotmat(rotmat), rotmat)
    rot = torch.zeros(n)
    if cfg.rot_prob > 0:
        r = (torch.randn(n, generator=g) * cfg.rot_std_deg).clamp(-cfg.rot_max_deg,
                                                                  cfg.rot_max_deg)
        rot = torch.where(torch.rand(n, generator=g) < cfg.rot_prob, r, torch.zeros(()))
        inputs = torch.cat([rotate_2d(inputs[..., :2], rot), inputs[..., 2:]], -1)
        target2d = torch.cat([rotate_2d(target2d[..., :2], rot), target2d[..., 2:]], -1)
        rotmat, kp3d = rotate_3d(rotmat, kp3d, rot)
    if cfg.kp_dropout > 0 or cfg.kp_noise > 0:
        drop = torch.rand(n, 49, generator=g) < cfg.kp_dropout
        noise = torch.randn(n, 49, 2, generator=g) * cfg.kp_noise
        inputs[..., :2] += noise * (~exact)[:, None, None]
        inputs = inputs * (~drop & (inputs[..., 2] > 0))[..., None]
    color = torch.ones(n, 3)
    crops = None
    if images:
        clo, chi = cfg.color_range
        if chi > clo:
            color = clo + (chi - clo) * torch.rand(n, 3, generator=g)
        if data.image_paths is None:
            raise ValueError("this training set has no images")
        paths = [data.image_paths[i] for i in idx.tolist()]
        crops = image_batch(paths, center, scale, rot, flip, color, img_res, workers)
    return Batch(keypoints=inputs, target2d=target2d, rotmat=rotmat, betas=data.betas[idx],
                 has_smpl=data.has_smpl[idx], kp3d=kp3d, has_kp3d=data.has_kp3d[idx],
                 center=center, scale=scale, rot=rot, flip=flip, color=color, images=crops)


def _one_crop(path: str | None, center: np.ndarray, scale: float, rot: float, flip: bool,
              color: np.ndarray, res: int) -> Tensor:
    if path is None:
        raise ValueError("a sample without an image in an image batch")
    img = load_image(path)
    if flip:  # mirror the whole image and the box: crop x_norm -> -x_norm exactly
        img = img[:, ::-1]
        center = np.array([img.shape[1] - 1 - center[0], center[1]])
    crop = crop_image(img, center, scale, res=res, rot=rot).astype(np.float32)
    if not np.allclose(color, 1.0):
        crop = np.clip(crop * color[None, None, :], 0.0, 255.0)
    return normalize_crop(crop / 255.0)


def image_batch(paths, center: Tensor, scale: Tensor, rot: Tensor, flip: Tensor,
                color: Tensor, res: int = 224, workers: int = 0) -> Tensor:
    """(B, 3, res, res) HMR inputs: each image's crop (box ``center`` (B, 2), ``scale``
    (B,), ``rot`` (B,) degrees, mirrored where ``flip`` (B,)), colour-scaled by
    ``color`` (B, 3) and ImageNet-normalised."""
    c, s, r = center.double().numpy(), scale.double().numpy(), rot.double().numpy()
    f, col = flip.numpy(), color.double().numpy()
    args = [(paths[i], c[i], float(s[i]), float(r[i]), bool(f[i]), col[i], res)
            for i in range(len(paths))]
    if workers > 0:
        with ThreadPoolExecutor(workers) as pool:
            out = list(pool.map(lambda a: _one_crop(*a), args))
    else:
        out = [_one_crop(*a) for a in args]
    return torch.stack(out)
