"""Synthetic "in-the-wild" exemplars with exact ground truth.

The idea of SURREAL / VirtualPose: take body poses (from a pose bank), give each a
random body shape, orientation and camera, project the body's SPIN-49 keypoints into
a virtual image and corrupt them the way human (or detector) annotations are
corrupted.  Unlike real data every exemplar carries its :class:`GroundTruth`, so
fitting and regression can be measured exactly, and there is no limit on how many
are made.

Conventions
-----------
* **Camera frame.**  Camera at the origin looking down +z, x to the right and y
  *down* (the axes of the image; the same camera as
  :func:`eft.geometry.cameras.perspective_project`).  Metres.
* **Ground truth.**  ``body(pose, betas, transl)`` - the body model posed with the
  stored ``pose`` (joint 0 = global orientation *in the camera frame*) and
  translated by ``transl`` - gives the camera-frame points ``X_cam`` stored as
  ``joints3d`` / ``keypoints3d`` (keypoints the body model does not define are
  zero rows, as ``BodyOutput.keypoints`` has them).
* **Image.**  ``x_px = focal * X_cam[:2] / X_cam[2] + principal_point``, with
  ``principal_point = (W / 2, H / 2)``.  The image covers ``0 <= x < W`` and
  ``0 <= y < H`` (continuous pixel coordinates); a point is *inside* it when it lies
  in that half-open box.
* **Orientation.**  The body frame (SMPL: y up, the body faces +z) is first rotated
  in a y-up "world" by ``R_body = R_y(yaw) @ R_x(pitch) @ R_z(roll)`` (positive pitch
  tips the head forward) and then taken into the camera by ``R_x(pi) = diag(1, -1,
  -1)``, so the global orientation is ``R_x(pi) @ R_body``: an upright person
  (pitch = roll = 0) stands head-up in the image, and yaw = 0 faces the camera.  The
  input pose's own global orientation (``pose[:3]``) is **discarded and replaced** by
  this sampled one; joints 1..23 are kept as given.

Sampling (one exemplar)
-----------------------
1. A pose index uniformly from the input poses (with replacement); betas
   ``N(0, beta_std^2)`` clipped to ``+-beta_clip``; an image size from
   ``image_sizes``; a focal length uniform in ``focal_range``.
2. An orientation class: *lying* (``lying_fraction``: pitch ``+-90`` degrees, face
   down or up, plus ``lying_jitter_deg`` noise), *bending* (``bending_fraction``:
   pitch uniform in ``bending_pitch_range_deg``) or *upright* (pitch
   ``N(0, upright_pitch_std_deg^2)``); every class gets yaw uniform in
   ``yaw_range_deg`` and roll ``N(0, roll_std_deg^2)``.
3. Placement.  The posed body (keypoints the model defines plus the 24 joints) is
   put at depth ``d = focal * max(ext_x / W, ext_y / H) / fraction`` - ``fraction``
   uniform in ``person_fraction_range`` is the share of the image the person spans
   along its tighter image dimension, ``ext`` the body's extent in metres - clipped
   to ``distance_range``.  Then ``transl = (tx, ty, d)`` with ``tx, ty`` uniform over
   the (exact, perspective) range that keeps every placement point inside the image
   minus a ``margin``; where no such range exists ``d`` grows by 10 % steps until it
   does (so ``d`` leaves ``distance_range`` only when the body would not fit
   otherwise).  ``d`` is also kept large enough that every vertex is >= 0.3 m in
   front of the camera.  With probability ``truncation_prob`` the person is then
   pushed out of one image side (left / right / top / bottom) by a fraction of its
   extent uniform in ``truncation_range``.
4. 2D annotation.  Only the SPIN-49 slots of the ``annotate`` keypoint format (or
   all 49 for ``"all"``) that the body model defines are annotated.  Each gets
   isotropic Gaussian noise with per-coordinate std
   ``noise_scale * noise_k * sigma_j * person_size`` px, where ``sigma_j`` is the
   COCO OKS sigma of the slot (:data:`SPIN49_OKS_SIGMAS`) and ``person_size =
   sqrt(area)`` with ``area = segment_area_fraction * w * h`` of the tight box of the
   projected mesh (COCO's ``area`` is the segment area, roughly half the box).  The
   default ``noise_k = 1/sqrt(2)`` makes the RMS 2-D error ``sigma_j * sqrt(area)``,
   which is how COCO defines its sigmas (``sigma^2 = E[d^2 / s^2]`` over redundant
   human annotations); ``noise_k = 2`` gives the width of the OKS kernel instead.
   A slot is then *missing* (all three numbers 0) when it is dropped at random
   (``missing_rate`` per slot; with probability ``limb_drop_prob`` one whole limb -
   elbow and wrist, or knee, ankle and foot - of one side), or when the noisy point
   lies outside the image.  Present slots get confidence 1 (``confidence_mode =
   "binary"``, like human annotations) or, for ``"detector"``, their OKS similarity
   to the true point, ``exp(-|noise|^2 / (2 * (2 * sigma_j * person_size)^2))``,
   floored at ``min_confidence``.
5. Box.  ``bbox_source = "vertices"`` (default): the box of the projected mesh
   clipped to the image, i.e. the box of the visible part of the person, like a
   COCO person box.  ``"keypoints"``: the box of the present keypoints (the mesh
   box where fewer than two are present).  ``center, scale`` come from
   :func:`eft.geometry.crops.bbox_to_center_scale` with ``bbox_rescale`` (1.2).

Determinism.  Everything random is drawn with numpy from ``seed`` before any body
is posed, in blocks of 1024 exemplars that each own a child generator
(``SeedSequence(seed, spawn_key=(block,))``); no torch random numbers are used, so
the device does not matter.  Hence the same seed gives bitwise identical sets, the
first ``m`` exemplars of a set of ``n > m`` are those of the set of ``m``, and the
same bodies, cameras and noise draws come out whatever the noise / missing /
confidence settings.  ``batch_size`` only groups body-model calls: it changes the
results by float64 rounding at most (~1e-13 m).  The body model is evaluated in
float64 (on a float64 copy of a float32 model) so the ground truth is exact to
rounding and a float32 re-evaluation reproduces it to float32 precision.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from eft.body import BodyModel
from eft.body.joints import (
    COCO17_NAMES,
    COCO17_TO_SPIN,
    NUM_SPIN_JOINTS,
    OPENPOSE18_TO_GT,
    SPIN49_INDEX,
    SPIN49_NAMES,
    get_format,
)
from eft.data.exemplar import Exemplar, GroundTruth
from eft.geometry.cameras import perspective_project
from eft.geometry.crops import bbox_to_center_scale
from eft.geometry.rotations import rotmat_to_axis_angle

__all__ = [
    "COCO17_OKS_SIGMAS",
    "DEFAULT_OKS_SIGMA",
    "LIMB_NAMES",
    "LIMB_MASKS",
    "ORIENTATION_NAMES",
    "SPIN49_OKS_SIGMAS",
    "SyntheticConfig",
    "SyntheticSet",
    "annotated_slots",
    "generate",
]

NUM_BETAS = 10
SOURCE = "synthetic"
FORMAT_VERSION = 1

# COCO keypoint OKS sigmas, in COCO17_NAMES order.
COCO17_OKS_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)
# Sigma of the SPIN slots that no COCO keypoint names (neck, head top, pelvis, thorax,
# spine, jaw, H36M head, OpenPose mid-hip): CrowdPose's value for its head and neck
# points, which is also COCO's shoulder sigma.
DEFAULT_OKS_SIGMA = 0.079
# Foot slots (OpenPose toes and heels) take the COCO ankle sigma.
_FOOT_SLOTS = ("OP LBigToe", "OP LSmallToe", "OP LHeel", "OP RBigToe", "OP RSmallToe", "OP RHeel")


def _spin49_sigmas() -> np.ndarray:
    """OKS sigma of every SPIN-49 slot.

    A SPIN ground-truth slot named by a COCO keypoint takes that keypoint's sigma,
    and so does the OpenPose slot that marks the same body point (``OP LShoulder``
    and ``Left Shoulder`` alike); the foot slots take the ankle sigma; the rest
    :data:`DEFAULT_OKS_SIGMA`.
    """
    by_gt = {COCO17_TO_SPIN[n]: s for n, s in zip(COCO17_NAMES, COCO17_OKS_SIGMAS, strict=True)}
    for raw, gt in OPENPOSE18_TO_GT.items():
        if gt in by_gt:
            by_gt["OP " + raw] = by_gt[gt]
    ankle = COCO17_OKS_SIGMAS[COCO17_NAMES.index("left_ankle")]
    by_gt.update({n: ankle for n in _FOOT_SLOTS})
    return np.array([by_gt.get(n, DEFAULT_OKS_SIGMA) for n in SPIN49_NAMES], dtype=np.float64)


SPIN49_OKS_SIGMAS: np.ndarray = _spin49_sigmas()
SPIN49_OKS_SIGMAS.setflags(write=False)

ORIENTATION_NAMES: tuple[str, ...] = ("upright", "bending", "lying")
_UPRIGHT, _BENDING, _LYING = range(3)

# Limbs that `limb_drop_prob` removes as a whole (all of their SPIN-49 slots).
_LIMBS: dict[str, tuple[str, ...]] = {
    "left_arm": ("OP LElbow", "OP LWrist", "Left Elbow", "Left Wrist"),
    "right_arm": ("OP RElbow", "OP RWrist", "Right Elbow", "Right Wrist"),
    "left_leg": ("OP LKnee", "OP LAnkle", "OP LBigToe", "OP LSmallToe", "OP LHeel",
                 "Left Knee", "Left Ankle"),
    "right_leg": ("OP RKnee", "OP RAnkle", "OP RBigToe", "OP RSmallToe", "OP RHeel",
                  "Right Knee", "Right Ankle"),
}
LIMB_NAMES: tuple[str, ...] = tuple(_LIMBS)
_LIMB_MASKS = np.zeros((len(_LIMBS), NUM_SPIN_JOINTS), dtype=bool)
for _row, _names in enumerate(_LIMBS.values()):
    _LIMB_MASKS[_row, [SPIN49_INDEX[n] for n in _names]] = True
_LIMB_MASKS.setflags(write=False)
#: (4, 49) bool, read-only: the SPIN-49 slots of each limb in :data:`LIMB_NAMES` order
#: (arm: elbow and wrist; leg: knee, ankle and the foot points), OpenPose and GT slots.
LIMB_MASKS: np.ndarray = _LIMB_MASKS

_RNG_BLOCK = 1024  # exemplars per child random generator
_MIN_DEPTH = 0.3  # metres: every vertex at least this far in front of the camera
_FIT_GROWTH = 1.1  # distance factor per step while a body does not fit
_MAX_FIT_STEPS = 200


def _check_range(name: str, r: Any, lo: float | None = None, hi: float | None = None) -> None:
    if len(r) != 2 or not r[0] <= r[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {r!r}")
    if lo is not None and r[0] < lo:
        raise ValueError(f"{name} must be >= {lo}, got {r!r}")
    if hi is not None and r[1] > hi:
        raise ValueError(f"{name} must be <= {hi}, got {r!r}")


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {p!r}")


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic exemplars are sampled (see the module docstring for the recipe).

    Attributes:
        image_sizes: (W, H) candidates in pixels, one picked uniformly per exemplar.
        focal_range: focal length in pixels, uniform.
        distance_range: depth of the body origin (``transl[2]``) in metres.
        person_fraction_range: share of the image the untruncated person spans along
            its tighter image dimension, uniform; sets the distance with the focal.
        margin: fraction of each image side kept free around an untruncated person.
        yaw_range_deg: yaw about the vertical, uniform (0 = facing the camera).
        upright_pitch_std_deg: pitch std of upright people (forward/back lean).
        roll_std_deg: roll std (sideways lean), every orientation class.
        bending_fraction: share of bending people (pitch uniform in
            ``bending_pitch_range_deg``, tipped forward).
        bending_pitch_range_deg: their pitch.
        lying_fraction: share of lying people (pitch +-90 degrees, face down or up).
        lying_jitter_deg: pitch std around +-90 for lying people.
        beta_std: std of the shape coefficients.
        beta_clip: betas are clipped to ``[-beta_clip, beta_clip]``.
        truncation_prob: probability that a person is pushed partly out of frame.
        truncation_range: fraction of the person's extent pushed out, uniform.
        noise_scale: multiplies the keypoint noise; 1 = human-annotation-like, 0 = none.
        noise_k: per-coordinate noise std = ``noise_scale * noise_k * sigma_j *
            person_size``; 1/sqrt(2) = COCO's sigma definition (RMS error sigma * s).
        segment_area_fraction: person area as a fraction of its (mesh) box area.
        missing_rate: probability that an annotated slot is dropped.
        limb_drop_prob: probability that one whole limb (chosen uniformly from
            :data:`LIMB_NAMES`) is dropped.
        confidence_mode: ``"binary"`` (1 for present keypoints) or ``"detector"``
            (OKS similarity of the noisy point to the truth, in (0, 1]).
        min_confidence: floor of detector confidences.
        annotate: keypoint format whose SPIN-49 slots are annotated
            (a name in ``eft.body.joints.KEYPOINT_FORMATS``) or ``"all"``.
        bbox_source: ``"vertices"`` (visible part of the projected mesh) or
            ``"keypoints"`` (present keypoints).
        bbox_rescale: SPIN's box enlargement for ``scale``.
    """

    image_sizes: tuple[tuple[int, int], ...] = ((640, 480), (480, 640), (1280, 720), (720, 1280))
    focal_range: tuple[float, float] = (500.0, 2500.0)
    distance_range: tuple[float, float] = (2.0, 12.0)
    person_fraction_range: tuple[float, float] = (0.3, 0.9)
    margin: float = 0.02
    yaw_range_deg: tuple[float, float] = (-180.0, 180.0)
    upright_pitch_std_deg: float = 8.0
    roll_std_deg: float = 5.0
    bending_fraction: float = 0.05
    bending_pitch_range_deg: tuple[float, float] = (30.0, 70.0)
    lying_fraction: float = 0.05
    lying_jitter_deg: float = 10.0
    beta_std: float = 1.0
    beta_clip: float = 3.0
    truncation_prob: float = 0.15
    truncation_range: tuple[float, float] = (0.15, 0.5)
    noise_scale: float = 1.0
    noise_k: float = 1.0 / math.sqrt(2.0)
    segment_area_fraction: float = 0.5
    missing_rate: float = 0.1
    limb_drop_prob: float = 0.05
    confidence_mode: str = "binary"
    min_confidence: float = 1e-3
    annotate: str = "coco17"
    bbox_source: str = "vertices"
    bbox_rescale: float = 1.2

    def __post_init__(self) -> None:
        sizes = tuple(tuple(int(v) for v in s) for s in self.image_sizes)
        if not sizes or any(len(s) != 2 or min(s) <= 0 for s in sizes):
            raise ValueError(f"image_sizes must be positive (W, H) pairs, got {self.image_sizes!r}")
        object.__setattr__(self, "image_sizes", sizes)
        for name in ("focal_range", "distance_range", "person_fraction_range", "yaw_range_deg",
                     "bending_pitch_range_deg", "truncation_range"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        _check_range("focal_range", self.focal_range, lo=1e-6)
        _check_range("distance_range", self.distance_range, lo=1e-6)
        _check_range("person_fraction_range", self.person_fraction_range, lo=1e-6)
        _check_range("yaw_range_deg", self.yaw_range_deg)
        _check_range("bending_pitch_range_deg", self.bending_pitch_range_deg)
        _check_range("truncation_range", self.truncation_range, lo=0.0, hi=0.9)
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must lie in [0, 0.5), got {self.margin!r}")
        for name in ("bending_fraction", "lying_fraction", "truncation_prob", "missing_rate",
                     "limb_drop_prob"):
            _check_prob(name, getattr(self, name))
        if self.bending_fraction + self.lying_fraction > 1.0:
            raise ValueError("bending_fraction + lying_fraction must not exceed 1")
        for name in ("upright_pitch_std_deg", "roll_std_deg", "lying_jitter_deg", "beta_std",
                     "beta_clip", "noise_scale", "noise_k"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 < self.segment_area_fraction <= 1.0:
            raise ValueError("segment_area_fraction must lie in (0, 1]")
        if not 0.0 < self.min_confidence <= 1.0:
            raise ValueError("min_confidence must lie in (0, 1]")
        if self.confidence_mode not in ("binary", "detector"):
            raise ValueError(
                f"confidence_mode must be 'binary' or 'detector', got {self.confidence_mode!r}")
        if self.bbox_source not in ("vertices", "keypoints"):
            raise ValueError(
                f"bbox_source must be 'vertices' or 'keypoints', got {self.bbox_source!r}")
        if not self.bbox_rescale > 0:
            raise ValueError("bbox_rescale must be > 0")
        annotated_slots(self.annotate)  # raises KeyError for an unknown format

    def clean(self) -> SyntheticConfig:
        """This config without corruption: no noise, no dropped joints, no truncation."""
        return dataclasses.replace(self, noise_scale=0.0, missing_rate=0.0, limb_drop_prob=0.0,
                                   truncation_prob=0.0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyntheticConfig:
        """Inverse of :meth:`to_dict` (lists become tuples; unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}

        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v

        return cls(**{k: tup(v) for k, v in d.items() if k in names})


def annotated_slots(annotate: str) -> np.ndarray:
    """(49,) bool: the SPIN-49 slots a keypoint format annotates (``"all"``: every slot;
    ``"coco17+openpose25"``: the union of the named formats' slots)."""
    mask = np.zeros(NUM_SPIN_JOINTS, dtype=bool)
    for name in annotate.split("+"):
        if name.strip().lower() == "all":
            mask[:] = True
        else:
            mask[list(get_format(name.strip()).spin_indices)] = True
    return mask


# ---------------------------------------------------------------------------
# The set
# ---------------------------------------------------------------------------

# Per-exemplar arrays: name -> (trailing shape, dtype).
_ARRAYS: dict[str, tuple[tuple[int, ...], Any]] = {
    "ids": ((), np.str_),
    "keypoints": ((NUM_SPIN_JOINTS, 3), np.float64),
    "center": ((2,), np.float64),
    "scale": ((), np.float64),
    "image_size": ((2,), np.int64),
    "pose": ((72,), np.float64),
    "betas": ((NUM_BETAS,), np.float64),
    "joints3d": ((24, 3), np.float64),
    "keypoints3d": ((NUM_SPIN_JOINTS, 3), np.float64),
    "transl": ((3,), np.float64),
    "focal": ((), np.float64),
    "principal_point": ((2,), np.float64),
    "pose_index": ((), np.int64),
    "truncated": ((), np.bool_),
    "orientation": ((), np.int8),
    "person_size": ((), np.float64),
    "noise_std": ((NUM_SPIN_JOINTS,), np.float64),
}


@dataclass(frozen=True, eq=False)
class SyntheticSet:
    """Stacked synthetic exemplars and their ground truth (numpy, one row per exemplar).

    Attributes:
        ids: (n,) str, ``"synthetic/s<seed>/<index>"``.
        keypoints: (n, 49, 3) SPIN-49 keypoints in image pixels + confidence
            (missing slots are all zero).
        center: (n, 2) box centre, pixels.   scale: (n,) box side / 200 (SPIN).
        image_size: (n, 2) int (W, H).
        pose: (n, 72) axis-angle; joint 0 = global orientation in the camera frame.
        betas: (n, 10).
        joints3d: (n, 24, 3) and keypoints3d: (n, 49, 3) camera frame, metres.
        transl: (n, 3) translation given to the body model.
        focal: (n,) pixels.   principal_point: (n, 2) pixels (image centre).
        pose_index: (n,) int, row of the input ``poses`` each exemplar was made from.
        truncated: (n,) bool, the exemplar was pushed partly out of frame.
        orientation: (n,) int8 index into :data:`ORIENTATION_NAMES`.
        person_size: (n,) ``sqrt(area)`` px the noise was scaled with.
        noise_std: (n, 49) per-coordinate std (px) of the noise each slot received.
        seed: the seed it was generated with.
        config: the :class:`SyntheticConfig` it was generated with.
    """

    ids: np.ndarray
    keypoints: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    image_size: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    joints3d: np.ndarray
    keypoints3d: np.ndarray
    transl: np.ndarray
    focal: np.ndarray
    principal_point: np.ndarray
    pose_index: np.ndarray
    truncated: np.ndarray
    orientation: np.ndarray
    person_size: np.ndarray
    noise_std: np.ndarray
    seed: int
    config: SyntheticConfig

    ARRAY_FIELDS: ClassVar[tuple[str, ...]] = tuple(_ARRAYS)

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name, (shape, dtype) in _ARRAYS.items():
            arr = np.asarray(getattr(self, name))
            if dtype is not np.str_:
                arr = arr.astype(dtype, copy=False)
            elif arr.dtype.kind != "U":
                arr = arr.astype(np.str_)
            if arr.shape != (n, *shape):
                raise ValueError(f"SyntheticSet.{name} must have shape {(n, *shape)}, "
                                 f"got {arr.shape}")
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.ids)

    def exemplar(self, i: int) -> Exemplar:
        """Exemplar ``i`` (source ``"synthetic"``, no image); arrays are copies."""
        w, h = (int(v) for v in self.image_size[i])
        return Exemplar(
            id=str(self.ids[i]),
            image_path=None,
            center=self.center[i].copy(),
            scale=float(self.scale[i]),
            keypoints=self.keypoints[i].copy(),
            source=SOURCE,
            image_size=(w, h),
            meta={
                "pose_index": int(self.pose_index[i]),
                "truncated": bool(self.truncated[i]),
                "orientation": ORIENTATION_NAMES[int(self.orientation[i])],
                "annotate": self.config.annotate,
                "confidence_mode": self.config.confidence_mode,
                "person_size": float(self.person_size[i]),
                "seed": self.seed,
            },
        )

    def ground_truth(self, i: int) -> GroundTruth:
        """Ground truth of exemplar ``i`` (camera frame; arrays are copies)."""
        return GroundTruth(
            pose=self.pose[i].copy(),
            betas=self.betas[i].copy(),
            joints3d=self.joints3d[i].copy(),
            keypoints3d=self.keypoints3d[i].copy(),
            transl=self.transl[i].copy(),
            focal=float(self.focal[i]),
            principal_point=self.principal_point[i].copy(),
        )

    def exemplars(self) -> Iterator[Exemplar]:
        """Every exemplar in order."""
        return (self.exemplar(i) for i in range(len(self)))

    def subset(self, idx: Any) -> SyntheticSet:
        """The exemplars selected by ``idx`` (indices, a slice or a boolean mask)."""
        rows = np.atleast_1d(np.arange(len(self))[idx])
        return dataclasses.replace(self, **{k: getattr(self, k)[rows] for k in _ARRAYS})

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` exactly (an .npz; no pickled objects)."""
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        with open(path, "wb") as fh:
            np.savez(fh, format_version=np.int64(FORMAT_VERSION), seed=np.int64(self.seed),
                     config_json=np.str_(json.dumps(self.config.to_dict())), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SyntheticSet:
        """Read a set written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"])
            if version != FORMAT_VERSION:
                raise ValueError(f"{path}: synthetic set format {version} is not supported "
                                 f"(expected {FORMAT_VERSION})")
            arrays = {k: z[k] for k in _ARRAYS}
            config = SyntheticConfig.from_dict(json.loads(str(z["config_json"])))
            seed = int(z["seed"])
        return cls(**arrays, seed=seed, config=config)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------

def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1),
                     np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1),
                     np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1),
                     np.stack([z, z, o], -1)], -2)


# World (y up) -> camera (y down, looking down +z): a half turn about x.
_WORLD_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


def _sample_block(rng: np.random.Generator, m: int, num_poses: int,
                  cfg: SyntheticConfig) -> dict[str, np.ndarray]:
    """Every random quantity of ``m`` exemplars.  The draws (their order and shapes)
    depend on ``m`` and ``num_poses`` only, never on the config's switches."""
    deg = math.pi / 180.0
    pose_index = rng.integers(0, num_poses, size=m)
    betas = np.clip(rng.standard_normal((m, NUM_BETAS)) * cfg.beta_std,
                    -cfg.beta_clip, cfg.beta_clip)
    size_choice = rng.integers(0, len(cfg.image_sizes), size=m)
    focal = rng.uniform(*cfg.focal_range, size=m)
    kind_u = rng.random(m)
    yaw = rng.uniform(*cfg.yaw_range_deg, size=m) * deg
    pitch_n = rng.standard_normal(m)
    roll_n = rng.standard_normal(m)
    bend = rng.uniform(*cfg.bending_pitch_range_deg, size=m) * deg
    face_up = rng.random(m) < 0.5
    fraction = rng.uniform(*cfg.person_fraction_range, size=m)
    place_u = rng.random((m, 2))
    trunc_u = rng.random(m)
    trunc_side = rng.integers(0, 4, size=m)
    trunc_amount = rng.uniform(*cfg.truncation_range, size=m)
    noise = rng.standard_normal((m, NUM_SPIN_JOINTS, 2))
    drop_u = rng.random((m, NUM_SPIN_JOINTS))
    limb_u = rng.random(m)
    limb_choice = rng.integers(0, len(LIMB_NAMES), size=m)

    orientation = np.full(m, _UPRIGHT, dtype=np.int8)
    orientation[kind_u < cfg.lying_fraction + cfg.bending_fraction] = _BENDING
    orientation[kind_u < cfg.lying_fraction] = _LYING
    lying_pitch = np.where(face_up, -90.0, 90.0) * deg + cfg.lying_jitter_deg * deg * pitch_n
    pitch = np.select([orientation == _LYING, orientation == _BENDING],
                      [lying_pitch, bend], cfg.upright_pitch_std_deg * deg * pitch_n)
    roll = cfg.roll_std_deg * deg * roll_n
    r_body = _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)
    global_rotmat = _WORLD_TO_CAMERA @ r_body

    limb_drop = _LIMB_MASKS[limb_choice] & (limb_u < cfg.limb_drop_prob)[:, None]
    return {
        "pose_index": pose_index,
        "betas": betas,
        "image_size": np.asarray(cfg.image_sizes, dtype=np.int64)[size_choice],
        "focal": focal,
        "orientation": orientation,
        "global_rotmat": global_rotmat,
        "fraction": fraction,
        "place_u": place_u,
        "truncated": trunc_u < cfg.truncation_prob,
        "trunc_side": trunc_side,
        "trunc_amount": trunc_amount,
        "noise": noise,
        "dropped": (drop_u < cfg.missing_rate) | limb_drop,
    }


def _sample_parameters(n: int, num_poses: int, seed: int,
                       cfg: SyntheticConfig) -> dict[str, np.ndarray]:
    """Parameters of exemplars 0..n-1.  Block b always draws a full block from its own
    generator, so exemplar i's parameters do not depend on n."""
    blocks = []
    for b in range(max(1, -(-n // _RNG_BLOCK))):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(b,)))
        blocks.append(_sample_block(rng, _RNG_BLOCK, num_poses, cfg))
    return {k: np.concatenate([blk[k] for blk in blocks])[:n] for k in blocks[0]}


def _translation_interval(x: np.ndarray, z: np.ndarray, depth: np.ndarray, focal: np.ndarray,
                          centre: np.ndarray, low: np.ndarray, high: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Translations t (B,) along one image axis that keep the projections
    ``focal * (x + t) / (z + depth) + centre`` of all points (B, K) within [low, high]."""
    zz = z + depth[:, None]
    lo = ((low - centre)[:, None] * zz / focal[:, None] - x).max(axis=1)
    hi = ((high - centre)[:, None] * zz / focal[:, None] - x).min(axis=1)
    return lo, hi


def _place(points: np.ndarray, z_min: np.ndarray, p: dict[str, np.ndarray],
           cfg: SyntheticConfig) -> np.ndarray:
    """Translation (B, 3) of bodies whose posed, untranslated placement points are
    ``points`` (B, K, 3); ``z_min`` (B,) is the smallest vertex depth."""
    focal = p["focal"]
    wh = p["image_size"].astype(np.float64)
    extent = points.max(axis=1) - points.min(axis=1)
    rel = np.maximum(extent[:, 0] / wh[:, 0], extent[:, 1] / wh[:, 1])
    depth = np.clip(focal * rel / p["fraction"], *cfg.distance_range)
    depth = np.maximum(depth, _MIN_DEPTH - np.minimum(z_min, points[..., 2].min(axis=1)))
    low, high = cfg.margin * wh, (1.0 - cfg.margin) * wh
    centre = 0.5 * wh
    for _ in range(_MAX_FIT_STEPS):
        lo_x, hi_x = _translation_interval(points[..., 0], points[..., 2], depth, focal,
                                           centre[:, 0], low[:, 0], high[:, 0])
        lo_y, hi_y = _translation_interval(points[..., 1], points[..., 2], depth, focal,
                                           centre[:, 1], low[:, 1], high[:, 1])
        misfit = (lo_x > hi_x) | (lo_y > hi_y)
        if not misfit.any():
            break
        depth = np.where(misfit, depth * _FIT_GROWTH, depth)
    else:  # pragma: no cover - the window is never empty for margin < 0.5
        raise RuntimeError("could not fit a synthetic body into its image")
    u = p["place_u"]
    tx = lo_x + u[:, 0] * (hi_x - lo_x)
    ty = lo_y + u[:, 1] * (hi_y - lo_y)
    # Truncation: push the body past one side by a fraction of its extent.  The margin
    # (in metres at the body's depth) is undone first, so the body's edge crosses the
    # image border by about `trunc_amount` of the body.
    side, amount, trunc = p["trunc_side"], p["trunc_amount"], p["truncated"]
    margin_m = (low / focal[:, None]) * depth[:, None]  # (B, 2)
    push = margin_m + amount[:, None] * extent[:, :2]
    tx = np.where(trunc & (side == 0), lo_x - push[:, 0], tx)
    tx = np.where(trunc & (side == 1), hi_x + push[:, 0], tx)
    ty = np.where(trunc & (side == 2), lo_y - push[:, 1], ty)
    ty = np.where(trunc & (side == 3), hi_y + push[:, 1], ty)
    return np.stack([tx, ty, depth], axis=-1)


def _box(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(B, 2) corners -> (B, 4) xywh."""
    return np.concatenate([lo, hi - lo], axis=-1)


def _float64_body(body: BodyModel | None) -> BodyModel:
    if body is None:
        return BodyModel.load().double()
    if body.smpl.shapedirs.dtype == torch.float64:
        return body
    return copy.deepcopy(body).double()


def _as_pose_array(poses: Any) -> np.ndarray:
    if isinstance(poses, torch.Tensor):
        poses = poses.detach().cpu().numpy()
    arr = np.asarray(poses, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ValueError("poses must hold at least one pose")
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[1] != 72:
        raise ValueError(f"poses must be (N, 72) or (N, 24, 3) axis-angle, got {np.shape(poses)}")
    if not np.isfinite(arr).all():
        raise ValueError("poses contain non-finite values")
    return arr


def _run_batch(body: BodyModel, p: dict[str, np.ndarray], poses_cam: np.ndarray,
               annotated: np.ndarray, cfg: SyntheticConfig) -> dict[str, np.ndarray]:
    """Pose, place, project and annotate one batch (all arrays already sliced)."""
    device = body.smpl.shapedirs.device
    f64 = torch.float64
    valid = body.keypoint_valid.cpu().numpy().astype(bool)
    out = body(torch.as_tensor(poses_cam, dtype=f64, device=device),
               torch.as_tensor(p["betas"], dtype=f64, device=device))
    kp_local = out.keypoints.cpu().numpy()
    joints_local = out.joints.cpu().numpy()
    z_min = out.vertices[..., 2].amin(dim=1).cpu().numpy()
    points = np.concatenate([kp_local[:, valid], joints_local], axis=1)
    transl = _place(points, z_min, p, cfg)

    # What body(pose, betas, transl) returns: the keypoint map adds transl times its
    # row sums (1 up to the rounding of float32 weights), the joints transl itself.
    kp_total = (body.kp_vertex_weights.sum(1) + body.kp_joint_weights.sum(1)).cpu().numpy()
    keypoints3d = np.where(valid[None, :, None],
                           kp_local + transl[:, None] * kp_total[None, :, None], 0.0)
    joints3d = joints_local + transl[:, None]

    wh = p["image_size"].astype(np.float64)
    pp = 0.5 * wh
    t_transl = torch.as_tensor(transl, dtype=f64, device=device)
    t_focal = torch.as_tensor(p["focal"], dtype=f64, device=device)
    t_pp = torch.as_tensor(pp, dtype=f64, device=device)
    proj = perspective_project(torch.as_tensor(keypoints3d, device=device),
                               t_transl.new_zeros(t_transl.shape), t_focal, t_pp).cpu().numpy()
    vert_uv = perspective_project(out.vertices, t_transl, t_focal, t_pp)
    v_lo = vert_uv.amin(dim=1).cpu().numpy()
    v_hi = vert_uv.amax(dim=1).cpu().numpy()
    del vert_uv

    # Person size (whole body, truncated or not) and the mesh box of the visible part.
    tight = v_hi - v_lo
    person_size = np.sqrt(cfg.segment_area_fraction * tight[:, 0] * tight[:, 1])
    vis_lo = np.clip(v_lo, 0.0, wh)
    vis_hi = np.clip(v_hi, 0.0, wh)
    vis_hi = np.maximum(vis_hi, vis_lo + 1.0)  # never empty (cannot happen for sane configs)

    noise_std = cfg.noise_scale * cfg.noise_k * SPIN49_OKS_SIGMAS[None] * person_size[:, None]
    offset = p["noise"] * noise_std[..., None]
    kp2d = proj + offset
    inside = ((kp2d[..., 0] >= 0) & (kp2d[..., 0] < wh[:, :1])
              & (kp2d[..., 1] >= 0) & (kp2d[..., 1] < wh[:, 1:]))
    present = (annotated & valid)[None] & inside & ~p["dropped"]
    if cfg.confidence_mode == "detector":
        ref = 2.0 * SPIN49_OKS_SIGMAS[None] * person_size[:, None]
        oks = np.exp(-(offset ** 2).sum(-1) / (2.0 * ref ** 2))
        conf = np.clip(oks, cfg.min_confidence, 1.0)
    else:
        conf = np.ones(present.shape)
    keypoints = np.where(present[..., None], np.concatenate([kp2d, conf[..., None]], -1), 0.0)

    box = _box(vis_lo, vis_hi)
    if cfg.bbox_source == "keypoints":
        big = np.finfo(np.float64).max
        k_lo = np.where(present[..., None], kp2d, big).min(axis=1)
        k_hi = np.where(present[..., None], kp2d, -big).max(axis=1)
        usable = (present.sum(1) >= 2) & ((k_hi - k_lo).max(axis=1) > 0)
        box = np.where(usable[:, None], _box(np.where(usable[:, None], k_lo, 0.0),
                                             np.where(usable[:, None], k_hi, 1.0)), box)
    center, scale = bbox_to_center_scale(torch.as_tensor(box, dtype=f64), cfg.bbox_rescale)

    return {
        "keypoints": keypoints,
        "center": center.numpy(),
        "scale": scale.numpy(),
        "joints3d": joints3d,
        "keypoints3d": keypoints3d,
        "transl": transl,
        "principal_point": pp,
        "person_size": person_size,
        "noise_std": np.broadcast_to(noise_std, present.shape).copy(),
    }


def generate(
    poses: Any,
    n: int,
    seed: int,
    config: SyntheticConfig | None = None,
    body: BodyModel | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> SyntheticSet:
    """Sample ``n`` synthetic exemplars with ground truth.

    Args:
        poses: (N, 72) or (N, 24, 3) axis-angle body poses (numpy or torch), e.g. a
            pose bank.  Each exemplar uses one uniformly drawn row (with replacement);
            its global orientation ``pose[:3]`` is replaced by the sampled one.
        n: number of exemplars (>= 0).
        seed: non-negative int; the set is a deterministic function of
            ``(poses, n, seed, config, body)`` (see the module docstring).
        config: sampling settings, default ``SyntheticConfig()``.
        body: body model, default ``BodyModel.load()`` (the open model).  It is
            evaluated in float64 (a float32 model is copied, not modified) on its device.
        batch_size: exemplars per body-model call (memory / speed only).
        progress: show a tqdm progress bar.
    """
    cfg = SyntheticConfig() if config is None else config
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    pose_bank = _as_pose_array(poses)
    body64 = _float64_body(body)
    if body64.num_betas < NUM_BETAS:
        raise ValueError(f"body model has {body64.num_betas} shape coefficients; "
                         f"synthetic data needs {NUM_BETAS}")
    annotated = annotated_slots(cfg.annotate)

    params = _sample_parameters(n, len(pose_bank), seed, cfg)
    global_aa = rotmat_to_axis_angle(torch.from_numpy(params["global_rotmat"])).numpy()
    poses_cam = np.concatenate([global_aa, pose_bank[params["pose_index"], 3:]], axis=1)

    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, total=len(starts), desc="synthetic", unit="batch")
    chunks = []
    with torch.no_grad():
        for s in starts:
            e = min(s + batch_size, n)
            sub = {k: v[s:e] for k, v in params.items()}
            chunks.append(_run_batch(body64, sub, poses_cam[s:e], annotated, cfg))
    if chunks:
        result = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    else:
        result = {k: np.zeros((0, *shape)) for k, (shape, _) in _ARRAYS.items()}
    return SyntheticSet(
        ids=np.array([f"{SOURCE}/s{seed}/{i:07d}" for i in range(n)], dtype=np.str_),
        keypoints=result["keypoints"],
        center=result["center"],
        scale=result["scale"],
        image_size=params["image_size"],
        pose=poses_cam,
        betas=params["betas"],
        joints3d=result["joints3d"],
        keypoints3d=result["keypoints3d"],
        transl=result["transl"],
        focal=params["focal"],
        principal_point=result["principal_point"],
        pose_index=params["pose_index"],
        truncated=params["truncated"],
        orientation=params["orientation"],
        person_size=result["person_size"],
        noise_std=result["noise_std"],
        seed=int(seed),
        config=cfg,
    )
