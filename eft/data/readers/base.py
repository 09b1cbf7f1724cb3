"""What every dataset reader returns: the exemplars it kept and, for every person it
left out, why (:class:`ReadResult`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from eft.data.exemplar import Exemplar
from eft.errors import EftError
from eft.geometry.crops import bbox_to_center_scale

__all__ = ["ReaderError", "Skipped", "ReadResult", "box_center_scale",
           "keypoint_box_center_scale", "count_gt_keypoints", "keypoint_skip_reason",
           "keypoint_skip_reasons"]


class ReaderError(EftError):
    """An annotation file that cannot be read (missing, malformed, wrong format)."""


@dataclass(frozen=True)
class Skipped:
    """A person a reader did not turn into an exemplar.

    Attributes:
        id: the id the exemplar would have had.
        reason: short machine-readable reason, e.g. ``"iscrowd"``, ``"too_few_keypoints"``.
        detail: human-readable detail (may be empty).
    """

    id: str
    reason: str
    detail: str = ""


@dataclass
class ReadResult:
    """Exemplars of one annotation source, in file order, and the people skipped."""

    exemplars: list[Exemplar] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))

    def extend(self, other: ReadResult) -> None:
        self.exemplars.extend(other.exemplars)
        self.skipped.extend(other.skipped)

    def __len__(self) -> int:
        return len(self.exemplars)

    def skip_unusable(self, eid: str, kps49: np.ndarray, min_keypoints: int, *,
                      gt: bool = True) -> bool:
        """Record person ``eid`` as skipped when :func:`keypoint_skip_reason` finds its
        keypoints unusable; True when it was skipped."""
        why = keypoint_skip_reason(kps49, min_keypoints, gt=gt)
        if why is not None:
            self.skipped.append(Skipped(eid, *why))
        return why is not None


def box_center_scale(x: float, y: float, w: float, h: float,
                     rescale: float = 1.2) -> tuple[np.ndarray, float]:
    """SPIN's crop of a person box (top-left ``x, y``, size ``w, h`` px):
    ``center = box centre`` and ``scale = rescale * max(w, h) / 200``."""
    c, s = bbox_to_center_scale(torch.tensor([x, y, w, h], dtype=torch.float64), rescale)
    return c.numpy(), float(s)


def keypoint_box_center_scale(kps: np.ndarray, rescale: float = 1.2,
                              ) -> tuple[np.ndarray, float] | None:
    """Crop around the tight box of the keypoints with confidence > 0 ((K, 3) image px);
    None when fewer than 2 are annotated or the box is degenerate."""
    kps = np.asarray(kps, dtype=np.float64)
    ok = (kps[:, 2] > 0) & np.all(np.isfinite(kps[:, :2]), axis=1)
    if ok.sum() < 2:
        return None
    lo, hi = kps[ok, :2].min(axis=0), kps[ok, :2].max(axis=0)
    w, h = hi - lo
    if max(w, h) <= 0:
        return None
    return box_center_scale(lo[0], lo[1], w, h, rescale)


def count_gt_keypoints(kps49: np.ndarray) -> int | np.ndarray:
    """Annotated (finite, confidence > 0) GT keypoints, SPIN-49 slots 25..48 - the count
    EFT's minimum-keypoints rule uses: an int for one person ((49, 3)), an (N,) int
    array for many ((N, 49, 3))."""
    gt = np.asarray(kps49)[..., 25:, :]
    n = ((gt[..., 2] > 0) & np.all(np.isfinite(gt[..., :2]), axis=-1)).sum(axis=-1)
    return int(n) if n.ndim == 0 else n


def keypoint_skip_reason(kps49: np.ndarray, min_keypoints: int, *, gt: bool = True,
                         ) -> tuple[str, str] | None:
    """Why a person with these SPIN-49 keypoints ((49, 3) image px) is not fitted, as
    ``(reason, detail)``, or None to keep it.

    Reasons, checked in this order: ``bad_keypoints`` (an annotated keypoint - confidence
    > 0 - with a non-finite coordinate, or a non-finite confidence), ``no_keypoints`` (no
    annotated keypoint) and ``too_few_keypoints`` (fewer than ``min_keypoints``; EFT's
    rule is 6).  Keypoints are counted over the GT slots 25..48 (``gt=True``, EFT's
    count) or over the OpenPose slots 0..24 (``gt=False``).
    """
    return keypoint_skip_reasons(np.asarray(kps49)[None], min_keypoints, gt=gt)[0]


def keypoint_skip_reasons(kps49: np.ndarray, min_keypoints: int, *, gt: bool = True,
                          ) -> list[tuple[str, str] | None]:
    """:func:`keypoint_skip_reason` of many people at once (``kps49`` (N, 49, 3)): one
    ``(reason, detail)`` or None per person, in order."""
    kps49 = np.asarray(kps49, dtype=np.float64).reshape(-1, 49, 3)
    conf = kps49[..., 2]
    bad = (~np.isfinite(conf) | ((conf > 0) & ~np.all(np.isfinite(kps49[..., :2]), axis=-1))
           ).sum(axis=-1)
    n = count_gt_keypoints(kps49) if gt else (conf[:, :25] > 0).sum(axis=-1)
    out: list[tuple[str, str] | None] = []
    for b, k in zip(bad.tolist(), n.tolist(), strict=True):
        if b:
            out.append(("bad_keypoints", f"{b} keypoints with NaN/inf values"))
        elif k == 0:
            out.append(("no_keypoints", ""))
        elif k < min_keypoints:
            out.append(("too_few_keypoints", f"{k} < {min_keypoints}"))
        else:
            out.append(None)
    return out
