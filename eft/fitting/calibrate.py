"""Skeleton offsets: where a dataset's joints sit relative to the body model's.

Labels from motion capture are exact, but a studio's skeleton may define its hips, head
or spine elsewhere than the body model does (markers' constructions rather than the
body model's joint centres).  Every fitter then bends the body to reach joints it cannot
draw.  Such a difference is systematic: the same offset in the body's own frame for
every person of the dataset.  This module measures it from fits of many people and
takes it out of the labels before they are fitted.

**The offset model.**  For one slot, the labelled joint sits at the body model's
keypoint plus ``a u + b w + c f + d v`` (metres), where, from the fitted body's own
keypoints (SPIN-49, body frame):

- ``u``: the torso's up axis, hips' midpoint to shoulders' midpoint;
- ``w``: the hip axis, left hip to right hip;
- ``f``: the forward axis ``u x w / |u|`` (as long as ``w``);
- ``v``: for a limb joint (:data:`LIMB_PARENTS`), its bone from the parent joint; 0
  for the other slots.

The coefficients ``(a, b, c, d)`` are dimensionless, so one offset serves people of
every size.  ``EFTConfig.skeleton_offsets`` holds them as ``(slot, a, b, c, d)`` rows.

**Estimating them** (:func:`estimate_skeleton_offsets`): each fit is placed in front of
its image's camera (translation by least squares on the slots every skeleton places
alike), and the labels' residuals from the projected keypoints are regressed, over all
people at once, on each basis vector's image through that camera (the pinhole's
Jacobian at the keypoint).  Annotation noise and fitting errors average out over
people; a skeleton's definition does not.  A slot is kept when its offset's median
length over the people exceeds ``min_cm``: the fitter's own small biases stay out.

**Using them** (:func:`correct_targets`, which ``eft.fitting.fit`` applies when the
config carries offsets): each person's labels are moved back by the offset's image,
the basis taken from the regressor's first prediction for that person, so the fit
reaches for the joints the body model defines.  The exemplar's stored labels are never
changed; a fit's reprojection quality is measured against the moved labels.  The
fitted 3D keypoints of those slots are then moved by the offsets of the fitted body
(:func:`in_label_skeleton`, unless ``EFTConfig.label_skeleton_keypoints`` is off): the
body reaches the joints it defines, and the keypoints a job writes sit where the
labels' skeleton (and a studio's 3D truth) places them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from eft.body.joints import SKELETON_FREE_SLOTS, SPIN49_INDEX

from .perspective import _translation, crop_camera
from .records import Fit, FitTargets

#: Limb joints whose offset may also run along the bone from this parent.
LIMB_PARENTS: dict[str, str] = {
    "Right Elbow": "Right Shoulder", "Right Wrist": "Right Elbow",
    "Left Elbow": "Left Shoulder", "Left Wrist": "Left Elbow",
    "Right Knee": "Right Hip", "Right Ankle": "Right Knee",
    "Left Knee": "Left Hip", "Left Ankle": "Left Knee",
}
#: The SPIN-49 ground-truth slots (25-48) an offset may be measured for.
GT_SLOTS: tuple[str, ...] = tuple(n for n, i in SPIN49_INDEX.items() if i >= 25)
#: A slot's offset is kept when its median length over the people exceeds this (cm).
#: 1.0 since 2026-12-07 (was 1.5): on exact labels of the body model's own skeleton
#: (256 people) nothing passes it either way; limb joints 3 cm along their bones then
#: also read the hip and pelvis offsets they induce (36.3 mm against 37.0 for the
#: bodies), studio skeletons at twice the guess 0.4-0.6 mm better, exact COCO-17 labels
#: of people lying and at a quarter of the noise 0.3-0.4 mm worse (a bias of the fitter
#: passes); at 0.5 the fitter's own biases pass on clean labels (0.1-0.25 mm worse).
MIN_OFFSET_CM = 1.0
#: ... and when at least this many people label it.
MIN_PEOPLE = 32
#: Pilot refits that measure the offsets again with the last measure taken out
#: (:func:`remeasure_skeleton_offsets`).
OFFSET_REFITS = 1

OffsetRows = tuple[tuple[str, float, float, float, float], ...]


def offset_basis(points: Tensor, slots: Sequence[str]) -> Tensor:
    """(B, S, 3, 4) basis vectors ``u, w, f, v`` (module docstring) as columns, for each
    of ``slots``, from keypoints ``points`` (B, 49, 3) in the body frame."""
    p = points
    hips = (p[:, SPIN49_INDEX["Right Hip"]] + p[:, SPIN49_INDEX["Left Hip"]]) / 2
    shoulders = (p[:, SPIN49_INDEX["Right Shoulder"]] + p[:, SPIN49_INDEX["Left Shoulder"]]) / 2
    u = shoulders - hips
    w = p[:, SPIN49_INDEX["Right Hip"]] - p[:, SPIN49_INDEX["Left Hip"]]
    f = torch.linalg.cross(u, w) / u.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    cols = []
    for name in slots:
        parent = LIMB_PARENTS.get(name)
        v = (p[:, SPIN49_INDEX[name]] - p[:, SPIN49_INDEX[parent]] if parent is not None
             else torch.zeros_like(u))
        cols.append(torch.stack((u, w, f, v), -1))
    return torch.stack(cols, 1)


def _placed(targets: FitTargets, points: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each body placed in front of its image camera: ``(camera-frame points (B, 49, 3),
    crop-normalised focal (B,), principal point (B, 2), known (B,) bool)``; rows without
    a camera or a finite body are not ``known``."""
    kp = torch.as_tensor(targets.keypoints, dtype=torch.float64)
    points = torch.as_tensor(points, dtype=torch.float64)
    focal = torch.as_tensor(targets.focals, dtype=torch.float64)
    centre = torch.as_tensor(targets.principal_points, dtype=torch.float64)
    known = (torch.isfinite(focal) & (focal > 0) & torch.isfinite(centre).all(1)
             & torch.isfinite(points).flatten(1).all(1))
    f_n, c_n = crop_camera(torch.where(known, focal, torch.ones_like(focal)),
                           torch.nan_to_num(centre),
                           torch.as_tensor(targets.centers, dtype=torch.float64),
                           torch.as_tensor(targets.scales, dtype=torch.float64))
    conf = torch.nan_to_num(kp[..., 2], nan=0.0).clamp_min(0)
    weights = torch.zeros_like(conf)
    free = list(SKELETON_FREE_SLOTS)
    weights[:, free] = conf[:, free]
    known = known & (weights.sum(1) > 0)
    pts = torch.nan_to_num(points)
    t = _translation(pts, torch.nan_to_num(kp[..., :2]), weights, f_n, c_n)
    return pts + t[:, None], f_n, c_n, known


def _image_of(cam_points: Tensor, basis: Tensor, focal: Tensor) -> Tensor:
    """(B, S, 2, 4): the pinhole's Jacobian at each keypoint (``cam_points`` (B, S, 3),
    ``focal`` (B,)) applied to the basis (B, S, 3, 4)."""
    z = cam_points[..., 2:3].clamp_min(1e-6)
    jac = torch.zeros(*cam_points.shape[:2], 2, 3, dtype=cam_points.dtype)
    jac[..., 0, 0] = jac[..., 1, 1] = 1.0
    jac[..., :, 2] = -cam_points[..., :2] / z
    jac = jac * (focal[:, None, None, None] / z[..., None])
    return jac @ basis


def _slot_coefficients(targets: FitTargets, points: Tensor, min_people: int
                       ) -> dict[str, np.ndarray]:
    """Per GT slot labelled by at least ``min_people`` people: the offset's coefficients
    (4,) by least squares on the labels' residuals from the bodies ``points`` (B, 49, 3)
    placed in front of their cameras."""
    cam_points, f_n, c_n, known = _placed(targets, points)
    kp = torch.as_tensor(targets.keypoints, dtype=torch.float64)
    out = {}
    for name in GT_SLOTS:
        j = SPIN49_INDEX[name]
        use = known & torch.isfinite(kp[:, j]).all(1) & (kp[:, j, 2] > 0)
        if int(use.sum()) < min_people:
            continue
        basis = offset_basis(points[use], [name])[:, 0]                  # (N, 3, 4)
        at = cam_points[use][:, j]
        image = _image_of(at[:, None], basis[:, None], f_n[use])[:, 0]   # (N, 2, 4)
        drawn = f_n[use][:, None] * at[:, :2] / at[:, 2:].clamp_min(1e-6) + c_n[use]
        resid = kp[use][:, j, :2] - drawn
        n_coef = 4 if name in LIMB_PARENTS else 3
        coef = np.zeros(4)
        coef[:n_coef] = np.linalg.lstsq(image[..., :n_coef].reshape(-1, n_coef).numpy(),
                                        resid.reshape(-1).numpy(), rcond=None)[0]
        out[name] = coef
    return out


def estimate_skeleton_offsets(targets: FitTargets, fits: Sequence[Fit], *,
                              min_cm: float = MIN_OFFSET_CM,
                              min_people: int = MIN_PEOPLE) -> OffsetRows:
    """The labels' skeleton offsets (module docstring) from ``fits`` of ``targets``
    (same people, same order; best from an exact-label recipe that reproduces the
    labels closely, e.g. ``open-prior-exact``): rows ``(slot, a, b, c, d)`` for the
    slots whose offset's median length exceeds ``min_cm`` among at least
    ``min_people`` people labelling them; ``()`` when none does.

    Two rounds: the second measures what is left once the first round's offsets are
    taken out, with each body placed again by the corrected labels (a limb joint's
    offset also moves the camera placement, which uses the limbs)."""
    if len(fits) != targets.batch:
        raise ValueError(f"{len(fits)} fits for {targets.batch} targets")
    if not fits:
        return ()
    points = torch.as_tensor(np.stack([f.keypoints3d for f in fits]), dtype=torch.float64)
    first = _slot_coefficients(targets, points, min_people)
    rows = tuple((n, *c) for n, c in first.items())
    second = _slot_coefficients(correct_targets(targets, points, rows), points, min_people)
    out: list[tuple[str, float, float, float, float]] = []
    for name, coef in first.items():
        total = coef + second[name] if name in second else coef
        length = (offset_basis(points, [name])[:, 0] @ torch.as_tensor(total)).norm(dim=-1)
        kp = torch.as_tensor(targets.keypoints)[:, SPIN49_INDEX[name]]
        labelled = torch.isfinite(kp).all(1) & (kp[:, 2] > 0)
        if float(length[labelled].median()) * 100.0 > min_cm:
            a, b, c, d = (round(float(v), 4) for v in total)
            out.append((name, a, b, c, d))
    return tuple(out)


def remeasure_skeleton_offsets(targets: FitTargets, offsets: OffsetRows,
                               refit: Callable[[OffsetRows], Sequence[Fit]],
                               refits: int = OFFSET_REFITS, **kwargs) -> OffsetRows:
    """``offsets`` first measured on ``targets`` measured again, ``refits`` times, from
    ``refit(rows)``: the same people fitted with ``rows`` taken out of their labels
    (the fits' keypoints the body model's own, ``label_skeleton_keypoints`` off).  A
    fitter bends the body part of the way toward joints it cannot draw, so the residuals
    of fits made without offsets fall short of them (by about a fifth); from fits made
    with the first measure taken out, the labels' residuals read nearer the whole offset.
    Nothing is refitted when ``offsets`` is empty.  ``kwargs``:
    :func:`estimate_skeleton_offsets`'s."""
    for _ in range(max(0, int(refits))):
        if not offsets:
            break
        offsets = estimate_skeleton_offsets(targets, refit(offsets), **kwargs)
    return offsets


def offset_vectors(points: Tensor, offsets: OffsetRows) -> Tensor:
    """(B, S, 3) each row's offset (metres) for bodies ``points`` (B, 49, 3), S =
    ``len(offsets)``, in the frame of ``points``."""
    names = [r[0] for r in offsets]
    coef = torch.as_tensor([r[1:] for r in offsets], dtype=points.dtype)      # (S, 4)
    return (offset_basis(points, names) @ coef[None, :, :, None])[..., 0]


def in_label_skeleton(fits: Sequence[Fit], offsets: OffsetRows) -> list[Fit]:
    """``fits`` with the keypoints of the slots of ``offsets`` moved by their offsets:
    the fitted 3D keypoints in the labels' own skeleton (a studio set's joints as its
    3D truth defines them), each from its own fitted body's axes.  Rotations, betas,
    camera, vertices and quality stay the fitted body's.  Fits whose keypoints are not
    finite are left as they are."""
    if not offsets or not fits:
        return list(fits)
    points = torch.as_tensor(np.stack([f.keypoints3d for f in fits]), dtype=torch.float64)
    moved = points.clone()
    idx = [SPIN49_INDEX[r[0]] for r in offsets]
    moved[:, idx] += offset_vectors(points, offsets)
    out = []
    for f, p in zip(fits, moved, strict=True):
        finite = bool(torch.isfinite(p).all())
        out.append(dataclasses.replace(f, keypoints3d=p.numpy().astype(f.keypoints3d.dtype))
                   if finite else f)
    return out


def correct_targets(targets: FitTargets, points: Tensor | np.ndarray,
                    offsets: OffsetRows, rounds: int = 2) -> FitTargets:
    """``targets`` with each labelled slot of ``offsets`` moved back by its offset's
    image (module docstring; the pinhole's exact difference, not its Jacobian), the
    basis from ``points`` (B, 49, 3): a first guess of each body, e.g. the regressor's
    prediction.  Each round places the bodies again by the labels as the round before
    corrected them.  Rows without a known image camera are left as they are."""
    if not offsets or targets.batch == 0:
        return targets
    points = torch.as_tensor(points, dtype=torch.float64)
    idx = [SPIN49_INDEX[r[0]] for r in offsets]
    offset = offset_vectors(points, offsets)                                 # (B, S, 3)
    kp0 = torch.as_tensor(targets.keypoints)
    current = targets
    for _ in range(max(1, int(rounds))):
        cam_points, f_n, _, known = _placed(current, points)
        at, to = cam_points[:, idx], cam_points[:, idx] + offset
        shift = f_n[:, None, None] * (to[..., :2] / to[..., 2:].clamp_min(1e-6)
                                      - at[..., :2] / at[..., 2:].clamp_min(1e-6))
        kp = kp0.clone()
        labelled = (kp[:, idx, 2] > 0) & known[:, None]
        moved = kp[:, idx, :2] - shift.to(kp.dtype)
        kp[:, idx, :2] = torch.where(labelled[..., None], moved, kp[:, idx, :2])
        current = dataclasses.replace(targets, keypoints=kp)
    return current
