"""Training data as tensors, from synthetic sets or annotation files, and mixing.

A :class:`TrainSet` holds ``n`` samples: the 2D keypoints the regressor reads (or the
image it crops), the 2D keypoints it is supervised with, and the 3D targets (SMPL
rotations and betas, 3D keypoints) with masks saying which samples have them.
:class:`MixSampler` draws batches from several sets with fixed proportions.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from eft.annotations import read_annotations
from eft.annotations.filters import Selection
from eft.body.fast import KeypointLBS
from eft.geometry.cameras import perspective_project
from eft.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle
from eft.models.ief import default_mean_params, mean_params_from_poses

from .errors import TrainError

__all__ = ["TrainSet", "MixSampler", "concat_sets", "annotation_train_set",
           "load_annotation_set", "data_mean_params"]


@dataclass(frozen=True)
class TrainSet:
    """``n`` training samples (float32 tensors on the CPU).

    Attributes:
        kp_px: (n, 49, 3) SPIN-49 input keypoints, image px + confidence (0 = missing).
        target_px: (n, 49, 3) 2D supervision, image px + weight (0 = none).
        center: (n, 2) bbox centre, image px.   scale: (n,) bbox side / 200.
        rotmat: (n, 24, 3, 3) SMPL rotations (crop camera frame); betas: (n, 10).
        has_smpl: (n,) bool, the sample has SMPL targets (rotmat, betas).
        kp3d: (n, 49, 3) 3D keypoints relative to the SMPL pelvis joint, metres
            (non-finite rows = no target).
        has_kp3d: (n,) bool, the sample has 3D keypoint targets.
        image_paths: n image files (None entries: no image), or None for a set without
            images (synthetic data).
        ids: n sample ids, or None.
    """

    kp_px: Tensor
    target_px: Tensor
    center: Tensor
    scale: Tensor
    rotmat: Tensor
    betas: Tensor
    has_smpl: Tensor
    kp3d: Tensor
    has_kp3d: Tensor
    image_paths: tuple[str | None, ...] | None = None
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = self.kp_px.shape[0]
        shapes = {"kp_px": (n, 49, 3), "target_px": (n, 49, 3), "center": (n, 2),
                  "scale": (n,), "rotmat": (n, 24, 3, 3), "betas": (n, 10),
                  "has_smpl": (n,), "kp3d": (n, 49, 3), "has_kp3d": (n,)}
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"TrainSet.{name} must have shape {shape}, got "
                                 f"{tuple(getattr(self, name).shape)}")
        for name in ("image_paths", "ids"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"TrainSet.{name} has {len(value)} entries for {n} samples")

    def __len__(self) -> int:
        return int(self.kp_px.shape[0])

    @property
    def has_images(self) -> bool:
        return self.image_paths is not None and all(p is not None for p in self.image_paths)

    def subset(self, idx: Any) -> TrainSet:
        """The samples at ``idx`` (indices or a boolean mask)."""
        rows = torch.arange(len(self))[torch.as_tensor(idx)]
        pick = rows.tolist()
        return dataclasses.replace(
            self, **{f: getattr(self, f)[rows] for f in _TENSOR_FIELDS},
            image_paths=None if self.image_paths is None else tuple(
                self.image_paths[i] for i in pick),
            ids=None if self.ids is None else tuple(self.ids[i] for i in pick))

    @classmethod
    def from_synthetic(cls, s, target: str = "clean", with_smpl: bool = True,
                       with_kp3d: bool = True) -> TrainSet:
        """A :class:`~eft.synthetic.exemplars.SyntheticSet` as training samples.

        ``target="clean"``: 2D supervision is the noise-free projection of all 49
        ground-truth keypoints (weight 1), as in the prior's pretraining;
        ``"annotated"``: the (noisy, incomplete) annotation itself, as real data has.
        ``with_smpl`` / ``with_kp3d`` say whether the ground-truth parameters and 3D
        keypoints are given as targets.
        """
        if target not in ("clean", "annotated"):
            raise ValueError(f"target must be 'clean' or 'annotated', got {target!r}")
        n = len(s)
        kp3d_cam = torch.as_tensor(s.keypoints3d, dtype=torch.float64)
        kp_px = torch.as_tensor(s.keypoints, dtype=torch.float32)
        if target == "clean":
            clean = perspective_project(
                kp3d_cam, kp3d_cam.new_zeros(n, 3),
                torch.as_tensor(s.focal, dtype=torch.float64),
                torch.as_tensor(s.principal_point, dtype=torch.float64))
            target_px = torch.cat([clean.float(), torch.ones(n, 49, 1)], dim=-1)
        else:
            target_px = kp_px.clone()
        pelvis = torch.as_tensor(s.joints3d[:, :1], dtype=torch.float64)
        return cls(
            kp_px=kp_px,
            target_px=target_px,
            center=torch.as_tensor(s.center, dtype=torch.float32),
            scale=torch.as_tensor(s.scale, dtype=torch.float32),
            rotmat=axis_angle_to_rotmat(torch.as_tensor(s.pose, dtype=torch.float32)
                                        .reshape(-1, 24, 3)),
            betas=torch.as_tensor(s.betas, dtype=torch.float32),
            has_smpl=torch.full((n,), bool(with_smpl)),
            kp3d=(kp3d_cam - pelvis).float(),
            has_kp3d=torch.full((n,), bool(with_kp3d)),
            ids=tuple(str(i) for i in s.ids),
        )

    @classmethod
    def from_arrays(cls, keypoints: Any, center: Any, scale: Any, *,
                    rotmat: Any = None, betas: Any = None, kp3d: Any = None,
                    target: Any = None, image_paths: Sequence[str | None] | None = None,
                    ids: Sequence[str] | None = None) -> TrainSet:
        """Samples from arrays: ``keypoints`` (n, 49, 3) image px + conf, ``center``
        (n, 2), ``scale`` (n,); optional ``rotmat`` (n, 24, 3, 3), ``betas`` (n, 10),
        ``kp3d`` (n, 49, 3) pelvis-relative, ``target`` (n, 49, 3) (default: the
        keypoints).  Missing targets are masked out (``has_smpl`` / ``has_kp3d``)."""
        kp = _unlabelled_if_not_finite(keypoints)
        n = kp.shape[0]
        has_smpl = torch.full((n,), rotmat is not None)
        rot = (torch.eye(3).expand(n, 24, 3, 3).clone() if rotmat is None
               else torch.as_tensor(np.asarray(rotmat, dtype=np.float32)))
        b = torch.zeros(n, 10) if betas is None else torch.as_tensor(
            np.asarray(betas, dtype=np.float32))
        if rotmat is not None:
            finite = torch.isfinite(rot).flatten(1).all(1) & torch.isfinite(b).all(1)
            has_smpl = finite
            rot = torch.where(finite[:, None, None, None], rot, torch.eye(3))
            b = torch.where(finite[:, None], b, torch.zeros(()))
        has_kp3d = torch.zeros(n, dtype=torch.bool)
        k3 = torch.zeros(n, 49, 3)
        if kp3d is not None:
            k3 = torch.as_tensor(np.asarray(kp3d, dtype=np.float32))
            has_kp3d = torch.isfinite(k3).flatten(1).any(1)
        tgt = kp.clone() if target is None else _unlabelled_if_not_finite(target)
        return cls(kp_px=kp, target_px=tgt,
                   center=torch.as_tensor(np.asarray(center, dtype=np.float32)).reshape(n, 2),
                   scale=torch.as_tensor(np.asarray(scale, dtype=np.float32)).reshape(n),
                   rotmat=rot, betas=b, has_smpl=has_smpl, kp3d=k3, has_kp3d=has_kp3d,
                   image_paths=None if image_paths is None else tuple(image_paths),
                   ids=None if ids is None else tuple(str(i) for i in ids))


def _unlabelled_if_not_finite(keypoints: Any) -> Tensor:
    """(n, 49, 3) px + confidence as float32, a keypoint with any non-finite value
    zeroed with its confidence: unlabelled, never a full-weight point at the origin."""
    kp = torch.as_tensor(np.asarray(keypoints, dtype=np.float32)).clone()
    kp[~torch.isfinite(kp).all(-1)] = 0.0
    return kp


_TENSOR_FIELDS = ("kp_px", "target_px", "center", "scale", "rotmat", "betas", "has_smpl",
                  "kp3d", "has_kp3d")


def concat_sets(sets: Sequence[TrainSet]) -> TrainSet:
    """One set holding every sample of ``sets``, in order."""
    if not sets:
        raise ValueError("no training sets to concatenate")
    if len(sets) == 1:
        return sets[0]
    images = None
    if any(s.image_paths is not None for s in sets):
        images = tuple(p for s in sets for p in (s.image_paths or (None,) * len(s)))
    known_ids = [s.ids for s in sets if s.ids is not None]
    ids = None
    if len(known_ids) == len(sets):  # every set has ids
        ids = tuple(i for part in known_ids for i in part)
    return TrainSet(**{f: torch.cat([getattr(s, f) for s in sets]) for f in _TENSOR_FIELDS},
                    image_paths=images, ids=ids)


class MixSampler:
    """Batches drawn from consecutive blocks of a concatenated set with fixed shares.

    ``sizes``: samples per block; ``weights``: their shares of every batch (normalised).
    Each batch takes ``round(share * B)`` samples from each block (largest remainder,
    so the counts add up to ``B``; SPIN's fixed per-batch mix), each uniformly with
    replacement.  With one block a batch is ``torch.randint(n, (B,))``.

    ``final_weights`` (optional) makes the shares a schedule: they move linearly from
    ``weights`` at ``progress`` 0 (the first step) to ``final_weights`` at 1 (the last),
    e.g. real fits early and synthetic people late.  A block whose share is 0 at both
    ends is never drawn; every share must be >= 0 with a positive sum at both ends.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float] | None = None,
                 final_weights: Sequence[float] | None = None) -> None:
        self.sizes = [int(s) for s in sizes]
        if not self.sizes or min(self.sizes) < 1:
            raise TrainError(f"every dataset needs at least one sample, got sizes {self.sizes}")
        self.shares = self._normalised(weights)
        self.final_shares = (self.shares if final_weights is None
                             else self._normalised(final_weights))
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)

    def _normalised(self, weights: Sequence[float] | None) -> np.ndarray:
        w = np.ones(len(self.sizes)) if weights is None else np.asarray(weights, float)
        if w.shape != (len(self.sizes),) or not np.all(np.isfinite(w)) or np.any(w < 0) \
                or w.sum() <= 0:
            raise TrainError(f"dataset weights must be >= 0 with a positive sum, got "
                             f"{list(np.atleast_1d(w))}")
        return w / w.sum()

    def shares_at(self, progress: float = 0.0) -> np.ndarray:
        """(K,) shares of a batch at ``progress`` in [0, 1] through training."""
        if self.final_shares is self.shares:  # fixed shares, exactly as given
            return self.shares
        t = min(max(float(progress), 0.0), 1.0)
        return (1.0 - t) * self.shares + t * self.final_shares

    def counts(self, batch_size: int, progress: float = 0.0) -> list[int]:
        """Samples per block in a batch of ``batch_size`` at ``progress``."""
        raw = self.shares_at(progress) * batch_size
        base = np.floor(raw).astype(int)
        order = np.argsort(-(raw - base), kind="stable")
        base[order[: batch_size - int(base.sum())]] += 1
        return base.tolist()

    def sample(self, batch_size: int, generator: torch.Generator,
               progress: float = 0.0) -> Tensor:
        """(B,) int64 indices into the concatenated set, at ``progress`` in [0, 1]."""
        if len(self.sizes) == 1:
            return torch.randint(self.sizes[0], (batch_size,), generator=generator)
        parts = [off + torch.randint(size, (k,), generator=generator)
                 for off, size, k in zip(self.offsets, self.sizes,
                                         self.counts(batch_size, progress), strict=True)
                 if k > 0]
        return torch.cat(parts)


def data_mean_params(data: TrainSet, limit: int = 20000) -> dict:
    """IEF start from the training targets: their mean body pose and shape, with the
    default global orientation (upright, facing the camera) and camera."""
    rows = torch.nonzero(data.has_smpl).flatten()[:limit]
    default = default_mean_params()
    if rows.numel() == 0:
        return default
    mean = mean_params_from_poses(data.rotmat[rows], data.betas[rows])
    mean["pose"][:6] = default["pose"][:6]
    mean["cam"] = default["cam"]
    return mean


# ---------------------------------------------------------------------------
# Annotation files
# ---------------------------------------------------------------------------

def load_annotation_set(path: str | os.PathLike, format: str | None = None):
    """``eft.annotations.read_annotations(path, format)`` with a one-line error for a
    missing file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TrainError(f"{p}: no such annotation file")

    return read_annotations(p, format=format)


def accepted_fit_poses(aset) -> np.ndarray:
    """The accepted fits of an :class:`~eft.annotations.AnnotationSet` as a pose bank:
    (N, 72) float64 axis-angle SMPL poses (global orientation first), for
    :func:`eft.synthetic.exemplars.generate` to pose synthetic people from."""
    anns = aset.filter(Selection(accepted_only=True)).annotations
    if not anns:
        raise TrainError("no accepted fits to take poses from")
    rotmat = torch.as_tensor(np.stack([np.asarray(a.fit.rotmat, np.float32) for a in anns]))
    return rotmat_to_axis_angle(rotmat.double()).reshape(len(anns), 72).numpy()


def annotation_train_set(
    aset,
    selection: Selection | None = None,
    *,
    image_root: str | os.PathLike | None = None,
    accepted_ids: set[str] | None = None,
    use_keypoints3d: bool = False,
    body=None,
    **criteria,
) -> TrainSet:
    """Training samples from an :class:`~eft.annotations.AnnotationSet`.

    The fits are the SMPL targets; the exemplars' 2D keypoints are both the input and
    the 2D supervision.  ``selection`` (:class:`~eft.annotations.Selection`: acceptance,
    quality thresholds, review decisions), or its fields as keywords (``criteria``, e.g.
    ``accepted_only=True``; with a ``selection`` they replace its fields), chooses the
    fits; ``accepted_ids`` - the hook for the review app: when given, only these ids are
    kept.

    ``use_keypoints3d``: the fits' 3D keypoints become 3D targets too (relative to the
    pelvis joint of ``body``, which is then required); off by default, as in SPIN,
    where pseudo-ground truth supervises the SMPL parameters only.
    ``image_root``: relative image paths are taken from there.
    """
    if not len(aset):
        raise TrainError("the file holds no fits")
    if accepted_ids is not None:
        criteria["ids"] = frozenset(str(i) for i in accepted_ids)
    selection = selection or Selection()
    if criteria:
        selection = dataclasses.replace(selection, **criteria)
    if selection.active:
        aset = aset.filter(selection)
    anns = list(aset.annotations)
    if not anns:
        raise TrainError("no annotations left after filtering")
    fits = [a.fit for a in anns]
    exs = [a.exemplar for a in anns]
    rotmat = np.stack([np.asarray(f.rotmat, np.float32) for f in fits])
    betas = np.stack([np.asarray(f.betas, np.float32)[:10] for f in fits])
    kp3d = None
    if use_keypoints3d:
        if body is None:
            raise TrainError("use_keypoints3d needs the body model (for the pelvis joint)")

        fast = body if isinstance(body, KeypointLBS) else KeypointLBS(body)
        with torch.no_grad():
            _, joints = fast(torch.as_tensor(rotmat), torch.as_tensor(betas))
        kp3d = np.stack([np.asarray(f.keypoints3d, np.float32) for f in fits])
        kp3d = kp3d - joints[:, :1].numpy()
    root = None if image_root is None else Path(image_root).expanduser()
    paths: list[str | None] = []
    for e in exs:
        p = e.image_path
        if p is not None and root is not None and not Path(p).is_absolute():
            p = str(root / p)
        paths.append(p)
    return TrainSet.from_arrays(
        np.stack([np.asarray(e.keypoints, np.float32) for e in exs]),
        np.stack([np.asarray(e.center, np.float32) for e in exs]),
        np.asarray([float(e.scale) for e in exs], np.float32),
        rotmat=rotmat, betas=betas, kp3d=kp3d,
        image_paths=paths if any(p is not None for p in paths) else None,
        ids=[a.id for a in anns])
