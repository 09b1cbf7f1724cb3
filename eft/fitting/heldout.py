"""Held-out joints: hide one limb's distal joints, fit with the rest, score the hidden ones.

The development proxy for 3D quality on real 2D labels (``scripts/bench_real2d.py``):
a fit that understands human pose predicts where a hidden elbow and wrist (or knee and
ankle) are from the rest of the body; one that only reproduces the visible keypoints
does not.

Protocol (one :class:`HeldOut` per person):

* **Eligible** people have both arms and both legs labelled: the GT slots (SPIN-49
  25..48) of both elbows, wrists, knees and ankles are annotated (finite, confidence
  > 0), :func:`limbs_labelled`.
* **Which limb.** Person ``i`` of the list handed to :func:`make_held_out` hides
  ``LIMB_ORDER[i % 4]`` (left arm, right arm, left leg, right leg): :func:`limb_for`.
* **What is hidden** (:data:`LIMB_SLOTS`): arm = elbow + wrist, leg = knee + ankle + the
  foot slots (big toe, small toe, heel); each in its GT slot and its OpenPose twin.  The
  hidden slots are those of the limb that were labelled; their confidence becomes 0.
* **Crop from the visible keypoints only** (SPIN's rule): tight box of the visible
  labelled keypoints, ``center`` = box centre, ``scale = 1.2 * max(w, h) / 200``
  (:func:`visible_crop`), so the crop does not leak where the hidden limb is.
* **Error** (:func:`held_out_errors`): for every hidden slot, the image-pixel distance
  between the fitted body's keypoint of the *same* SPIN-49 slot, projected with the
  fit's weak-perspective camera into the image (``center + 100 * scale * (s * X[:2] +
  t)``), and the hidden label.
* **Normaliser** (:func:`keypoint_box_side`): ``box_side`` = the longer side, in image
  px, of the tight box of *all* the person's labelled keypoints before hiding (visible
  and hidden, no 1.2 margin).  It depends on the person only, not on the limb hidden or
  the method, so every method and every limb is divided by the same number.  The
  benchmark reports ``error_px / box_side`` pooled over the hidden joints (mean,
  median, share below 0.1).

Everything here is NumPy on (N, 49, 3) keypoint arrays in image pixels; nothing
depends on the regressor or the fitting method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from eft.body.joints import SPIN49_INDEX
from eft.data.exemplar import Exemplar
from eft.data.readers.base import keypoint_box_center_scale
from eft.geometry.cameras import crop_norm_to_image, weak_perspective_project
from eft.synthetic.exemplars import LIMB_MASKS, LIMB_NAMES

from .records import Fit

__all__ = [
    "LIMB_ORDER",
    "LIMB_SLOTS",
    "REQUIRED_SLOTS",
    "HeldOut",
    "HeldOutErrors",
    "HeldOutSummary",
    "labelled",
    "limbs_labelled",
    "limb_for",
    "hide_limb",
    "keypoint_box_side",
    "visible_crop",
    "make_held_out",
    "sample_held_out",
    "fit_keypoints_px",
    "held_out_errors",
    "LIMB_SEGMENTS",
    "LimbShape",
    "limb_shape",
]

#: Limbs in rotation order: person ``i`` hides ``LIMB_ORDER[i % 4]`` (the order of
#: :data:`eft.synthetic.exemplars.LIMB_NAMES`).
LIMB_ORDER: tuple[str, ...] = LIMB_NAMES


def _slots(*names: str) -> tuple[int, ...]:
    return tuple(SPIN49_INDEX[n] for n in names)


#: SPIN-49 slots each limb hides: its distal joints in the GT slots and their OpenPose
#: twins, plus the OpenPose foot slots for a leg - the limbs the synthetic generator
#: drops and the keypoint prior's training hides (:data:`eft.synthetic.exemplars.LIMB_MASKS`).
LIMB_SLOTS: dict[str, tuple[int, ...]] = {
    name: tuple(int(i) for i in np.flatnonzero(mask))
    for name, mask in zip(LIMB_NAMES, LIMB_MASKS, strict=True)}

#: GT slots that must all be labelled for a person to be eligible: both elbows,
#: wrists, knees and ankles.
REQUIRED_SLOTS: tuple[int, ...] = _slots(
    "Left Elbow", "Left Wrist", "Right Elbow", "Right Wrist",
    "Left Knee", "Left Ankle", "Right Knee", "Right Ankle")


def labelled(keypoints: np.ndarray) -> np.ndarray:
    """(..., 49, 3) image-px keypoints -> (..., 49) bool: finite with confidence > 0."""
    kp = np.asarray(keypoints, dtype=np.float64)
    return np.all(np.isfinite(kp), axis=-1) & (np.nan_to_num(kp[..., 2]) > 0)


def limbs_labelled(keypoints: np.ndarray) -> np.ndarray | bool:
    """(N, 49, 3) -> (N,) bool (or a bool for one (49, 3) person): every slot of
    :data:`REQUIRED_SLOTS` labelled (both arms and both legs)."""
    ok = np.asarray(labelled(keypoints)[..., list(REQUIRED_SLOTS)].all(axis=-1))
    return bool(ok) if ok.ndim == 0 else ok


def limb_for(i: int) -> str:
    """The limb person ``i`` hides: ``LIMB_ORDER[i % 4]``."""
    return LIMB_ORDER[int(i) % len(LIMB_ORDER)]


def hide_limb(keypoints: np.ndarray, limb: str) -> tuple[np.ndarray, np.ndarray]:
    """``(visible (49, 3), hidden (49,) bool)``: a copy of ``keypoints`` with the
    labelled slots of ``limb`` (:data:`LIMB_SLOTS`) set to ``[0, 0, 0]``, and which
    slots those were."""
    if limb not in LIMB_SLOTS:
        raise ValueError(f"unknown limb {limb!r}; known: {LIMB_ORDER}")
    kp = np.array(keypoints, dtype=np.float64)
    if kp.shape != (49, 3):
        raise ValueError(f"keypoints must be (49, 3), got {kp.shape}")
    hidden = np.zeros(49, dtype=bool)
    hidden[list(LIMB_SLOTS[limb])] = True
    hidden &= labelled(kp)
    kp[hidden] = 0.0
    return kp, hidden


def keypoint_box_side(keypoints: np.ndarray) -> float:
    """Longer side (image px) of the tight box of the labelled keypoints of one person
    ((49, 3) or (K, 3)); NaN with fewer than 2 labelled keypoints."""
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = labelled(kp)
    if ok.sum() < 2:
        return float("nan")
    xy = kp[ok, :2]
    return float((xy.max(axis=0) - xy.min(axis=0)).max())


def visible_crop(keypoints: np.ndarray, rescale: float = 1.2) -> tuple[np.ndarray, float]:
    """SPIN's crop from the labelled keypoints ((49, 3) image px; pass the visible ones):
    ``center`` (2,) = centre of their tight box, ``scale = rescale * max(w, h) / 200``.
    Raises ValueError when fewer than 2 are labelled or the box is a point."""
    out = keypoint_box_center_scale(np.asarray(keypoints, dtype=np.float64), rescale)
    if out is None:
        raise ValueError("no crop: fewer than 2 labelled keypoints or a degenerate box")
    return out


@dataclass(frozen=True)
class HeldOut:
    """One person with one limb hidden.

    Attributes:
        exemplar: the person as the fit sees it: the original :class:`Exemplar` (same
            id) with the hidden slots' keypoints set to ``[0, 0, 0]`` and the crop
            (``center``, ``scale``) built from the visible keypoints only
            (:func:`visible_crop`); ``meta["held_out_limb"]`` names the limb.
        limb: the hidden limb, one of :data:`LIMB_ORDER`.
        hidden: (49,) bool, the slots hidden (labelled slots of the limb).
        labels: (49, 3) the original keypoints (image px); the hidden labels are
            ``labels[hidden]``.
        box_side: the normaliser, :func:`keypoint_box_side` of ``labels`` (all labelled
            keypoints, visible and hidden), image px.
    """

    exemplar: Exemplar
    limb: str
    hidden: np.ndarray
    labels: np.ndarray
    box_side: float


def make_held_out(exemplars: Sequence[Exemplar], rescale: float = 1.2) -> list[HeldOut]:
    """One :class:`HeldOut` per exemplar, person ``i`` hiding :func:`limb_for` ``(i)``.

    Every exemplar must be eligible (:func:`limbs_labelled`); select them first, e.g.
    ``[e for e in exemplars if limbs_labelled(e.keypoints)]``.  Raises ValueError naming
    the first that is not.
    """
    out = []
    for i, ex in enumerate(exemplars):
        labels = np.asarray(ex.keypoints, dtype=np.float64)
        if not limbs_labelled(labels):
            raise ValueError(f"exemplar {ex.id}: not every arm and leg is labelled "
                             "(select people with limbs_labelled first)")
        limb = limb_for(i)
        visible, hidden = hide_limb(labels, limb)
        center, scale = visible_crop(visible, rescale)
        held = dataclasses.replace(ex, keypoints=visible, center=np.asarray(center),
                                   scale=float(scale),
                                   meta={**ex.meta, "held_out_limb": limb})
        out.append(HeldOut(exemplar=held, limb=limb, hidden=hidden, labels=labels.copy(),
                           box_side=keypoint_box_side(labels)))
    return out


def sample_held_out(exemplars: Sequence[Exemplar], n: int | None, seed: int,
                    rescale: float = 1.2) -> list[HeldOut]:
    """:func:`make_held_out` on a seeded subset of ``n`` of the eligible ``exemplars``
    (:func:`limbs_labelled`; all of them when ``n`` is None or larger), in their order."""
    eligible = [e for e in exemplars if limbs_labelled(np.asarray(e.keypoints))]
    if n is not None and n < len(eligible):
        pick = np.sort(np.random.default_rng(seed).choice(len(eligible), n, replace=False))
        eligible = [eligible[i] for i in pick]
    return make_held_out(eligible, rescale)


def fit_keypoints_px(fits: Sequence[Fit]) -> np.ndarray:
    """(B, 49, 2) float64: each fit's SPIN-49 keypoints projected into the image with its
    weak-perspective camera and crop, ``center + 100 * scale * (s * X[:2] + t)``."""
    if len(fits) == 0:
        return np.zeros((0, 49, 2))
    kp3d = torch.as_tensor(np.stack([f.keypoints3d for f in fits]), dtype=torch.float64)
    cam = torch.as_tensor(np.stack([f.cam_weak for f in fits]), dtype=torch.float64)
    centers = torch.as_tensor(np.stack([f.center for f in fits]), dtype=torch.float64)
    scales = torch.as_tensor([float(f.scale) for f in fits], dtype=torch.float64)
    return crop_norm_to_image(weak_perspective_project(kp3d, cam), centers,
                              scales).numpy()


@dataclass(frozen=True)
class HeldOutSummary:
    """Statistics of hidden-joint errors, pooled over joints.

    Attributes:
        n_people: people scored.   n_joints: hidden joints scored.
        mean, median: of ``error_px / box_side``.
        share_below_0_1: fraction of hidden joints with ``error_px / box_side < 0.1``.
        median_px: median error in image px.
        mean_se: standard error of ``mean`` with people as the sampling unit: the
            standard deviation (ddof 1) of the per-person mean errors over
            ``sqrt(n_people)`` (NaN with fewer than 2 people).
    """

    n_people: int
    n_joints: int
    mean: float
    median: float
    share_below_0_1: float
    median_px: float
    mean_se: float = float("nan")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class HeldOutErrors:
    """Per hidden joint errors (M joints over the people scored).

    Attributes:
        person: (M,) int, index of the person (in the list scored).
        slot: (M,) int, SPIN-49 slot of the joint.
        limb: (M,) str, the limb hidden.
        error_px: (M,) image-px distance between the fit's keypoint of that slot and
            the hidden label.
        error_frac: (M,) ``error_px / box_side`` of the person.
    """

    person: np.ndarray
    slot: np.ndarray
    limb: np.ndarray
    error_px: np.ndarray
    error_frac: np.ndarray

    def summary(self, mask: np.ndarray | None = None) -> HeldOutSummary:
        """:class:`HeldOutSummary` over all joints, or those where ``mask`` (M,) holds."""
        keep = np.ones(len(self.slot), bool) if mask is None else np.asarray(mask, bool)
        frac, px = self.error_frac[keep], self.error_px[keep]
        nan = float("nan")
        per = _group_mean(self.person[keep], frac)
        return HeldOutSummary(
            n_people=len(per), n_joints=int(keep.sum()),
            mean=float(frac.mean()) if len(frac) else nan,
            median=float(np.median(frac)) if len(frac) else nan,
            share_below_0_1=float((frac < 0.1).mean()) if len(frac) else nan,
            median_px=float(np.median(px)) if len(px) else nan,
            mean_se=float(per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else nan)

    def per_person(self, n: int) -> np.ndarray:
        """(n,) mean ``error_frac`` of each person ``0..n-1`` over its hidden joints
        (NaN for a person with none): the unit of paired comparisons between methods
        scored on the same :class:`HeldOut` people."""
        out = np.full(int(n), np.nan)
        people = np.unique(self.person)
        out[people] = _group_mean(self.person, self.error_frac)
        return out

    def by_limb(self) -> dict[str, HeldOutSummary]:
        """Summary per hidden limb, in :data:`LIMB_ORDER`."""
        return {limb: self.summary(self.limb == limb) for limb in LIMB_ORDER
                if (self.limb == limb).any()}

    def by_slot(self) -> dict[int, HeldOutSummary]:
        """Summary per SPIN-49 slot (e.g. ``SPIN49_INDEX["Left Ankle"]``)."""
        return {int(s): self.summary(self.slot == s) for s in np.unique(self.slot)}


def _group_mean(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per distinct value of ``groups``, groups ascending."""
    keys, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(keys))
    return sums / np.bincount(inverse, minlength=len(keys))


def held_out_errors(held: Sequence[HeldOut], pred_px: np.ndarray | Sequence[Fit],
                    slots: np.ndarray | None = None) -> HeldOutErrors:
    """Hidden-joint errors of predictions for the people ``held``.

    Args:
        held: the :class:`HeldOut` people (N).
        pred_px: (N, 49, 2) predicted keypoints in image px, or N :class:`Fit` s (then
            :func:`fit_keypoints_px`), in the order of ``held``.
        slots: (49,) bool, the slots to score (default: all; pass the body model's
            defined keypoints to leave out slots it lacks).

    Returns:
        :class:`HeldOutErrors` over every hidden slot (and in ``slots``), people in
        order, slots ascending within a person.
    """
    if len(pred_px) and isinstance(pred_px[0], Fit):
        pred_px = fit_keypoints_px(cast("Sequence[Fit]", pred_px))
    pred = np.asarray(pred_px, dtype=np.float64).reshape(-1, 49, 2)
    if len(pred) != len(held):
        raise ValueError(f"{len(pred)} predictions for {len(held)} held-out people")
    use = np.ones(49, bool) if slots is None else np.asarray(slots, bool).reshape(49)
    person, slot, limb, err, frac = [], [], [], [], []
    for i, h in enumerate(held):
        idx = np.flatnonzero(h.hidden & use)
        d = np.linalg.norm(pred[i, idx] - h.labels[idx, :2], axis=-1)
        person += [i] * len(idx)
        slot += idx.tolist()
        limb += [h.limb] * len(idx)
        err += d.tolist()
        frac += (d / h.box_side).tolist()
    return HeldOutErrors(person=np.asarray(person, dtype=np.int64),
                         slot=np.asarray(slot, dtype=np.int64),
                         limb=np.asarray(limb, dtype=object),
                         error_px=np.asarray(err, dtype=np.float64),
                         error_frac=np.asarray(frac, dtype=np.float64))


#: Each limb's two bones, (parent, child) GT slots: upper arm and forearm, thigh and shin.
LIMB_SEGMENTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    f"{side}_{kind}": (_slots(f"{s} {a}", f"{s} {b}"), _slots(f"{s} {b}", f"{s} {c}"))
    for side, s in (("left", "Left"), ("right", "Right"))
    for kind, (a, b, c) in (("arm", ("Shoulder", "Elbow", "Wrist")),
                            ("leg", ("Hip", "Knee", "Ankle")))}


@dataclass(frozen=True)
class LimbShape:
    """How a predictor draws each person's hidden limb (:data:`LIMB_SEGMENTS`, two bones).

    Attributes:
        length_ratio: (N, 2) the bone's length in the image (px) over its labelled
            length (NaN where the label's bone is shorter than 1e-6 px).
        in_plane: (N, 2) ``|v_xy| / |v|`` of each fitted 3D bone ``v`` (camera frame):
            1 for a bone parallel to the image, smaller the more it points along the
            view axis; NaN for 2D predictions.
    """

    length_ratio: np.ndarray
    in_plane: np.ndarray


def limb_shape(held: Sequence[HeldOut], pred: np.ndarray | Sequence[Fit]) -> LimbShape:
    """:class:`LimbShape` of predictions for each person's hidden limb, compared with the
    labels in ``held`` (which hold the hidden ones too).

    ``pred``: N :class:`Fit` s, or (N, 49, 2) image-px keypoints of a 2D predictor, in
    the order of ``held``.  Fits of the same people with nothing hidden give the
    reference: a predictor that hedges where a limb is unseen draws it shorter than it
    draws it seen."""
    if len(pred) != len(held):
        raise ValueError(f"{len(pred)} predictions for {len(held)} held-out people")
    fits = len(pred) > 0 and isinstance(pred[0], Fit)
    px = (fit_keypoints_px(cast("Sequence[Fit]", pred)) if fits
          else np.asarray(pred, dtype=np.float64).reshape(-1, 49, 2))
    in_plane = np.full((len(held), 2), np.nan)
    ratio = np.full((len(held), 2), np.nan)
    for i, h in enumerate(held):
        for j, (a, b) in enumerate(LIMB_SEGMENTS[h.limb]):
            label = float(np.linalg.norm(h.labels[b, :2] - h.labels[a, :2]))
            if label > 1e-6:
                ratio[i, j] = float(np.linalg.norm(px[i, b] - px[i, a])) / label
            if fits:
                kp3d = cast(Fit, pred[i]).keypoints3d
                v = np.asarray(kp3d[b] - kp3d[a], dtype=np.float64)
                in_plane[i, j] = np.linalg.norm(v[:2]) / max(float(np.linalg.norm(v)), 1e-12)
    return LimbShape(length_ratio=ratio, in_plane=in_plane)
