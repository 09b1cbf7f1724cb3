"""What every dataset reader returns: the exemplars it kept and, for every person it
left out, why (:class:`ReadResult`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eft.body.joints import KEYPOINT_FORMATS, SPIN49_INDEX
from eft.data.exemplar import Exemplar
from eft.data.images import image_file_size
from eft.errors import EftError
from eft.geometry.crops import bbox_to_center_scale

__all__ = ["ReaderError", "Skipped", "ReadResult", "box_center_scale", "cached_image_size",
           "keypoint_box_center_scale", "count_gt_keypoints", "keypoint_skip_reason",
           "keypoint_skip_reasons", "left_right_swap_warning", "MAX_ABS_KEYPOINT_PX",
           "MIN_KEYPOINT_SPREAD_PX", "MIN_SIDE_PX", "box_problems", "crop_problems",
           "camera_problem", "image_size_or_none", "keypoint_format_problem"]


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
    #: dataset-level doubts (e.g. :func:`left_right_swap_warning`), one line each
    warnings: list[str] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))

    def extend(self, other: ReadResult) -> None:
        self.exemplars.extend(other.exemplars)
        self.skipped.extend(other.skipped)
        self.warnings.extend(other.warnings)

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

    def skip_bad_crop(self, eid: str, center: Any, scale: Any) -> bool:
        """Record person ``eid`` as skipped (``bad_bbox``) when its crop (``center`` (2,)
        px, ``scale``: crop side / 200 px) fails :func:`crop_problems`; True when it was
        skipped."""
        why = crop_problems(np.reshape(np.asarray(center, dtype=np.float64), (1, 2)),
                            np.reshape(np.asarray(scale, dtype=np.float64), (1,)))[0]
        if why is not None:
            self.skipped.append(Skipped(eid, "bad_bbox", why))
        return why is not None


def cached_image_size(path: str | Path, cache: dict[Path, tuple[int, int] | None]
                      ) -> tuple[int, int] | None:
    """``(W, H)`` of the image at ``path`` from its header
    (:func:`eft.data.images.image_file_size`; None when it cannot be read), remembered in
    ``cache`` so an image of many people is opened once."""
    key = Path(path)
    if key not in cache:
        cache[key] = image_file_size(key)
    return cache[key]


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


def keypoint_format_problem(value: Any, extra: tuple[str, ...] = ()) -> str | None:
    """None when ``value`` names a keypoint format (a key of
    :data:`eft.body.joints.KEYPOINT_FORMATS` or of ``extra``, any case), else one line
    saying what is wrong and naming the known formats."""
    known = sorted({*KEYPOINT_FORMATS, *extra})
    if isinstance(value, str) and value.lower() in known:
        return None
    what = (f"unknown keypoint_format {value!r}" if isinstance(value, str) else
            f"keypoint_format {value!r} ({type(value).__name__}) is not a format name")
    return f"{what}; known formats: {', '.join(known)}"


def count_gt_keypoints(kps49: np.ndarray) -> int | np.ndarray:
    """Annotated (finite, confidence > 0) GT keypoints, SPIN-49 slots 25..48 - the count
    EFT's minimum-keypoints rule uses: an int for one person ((49, 3)), an (N,) int
    array for many ((N, 49, 3))."""
    gt = np.asarray(kps49)[..., 25:, :]
    n = ((gt[..., 2] > 0) & np.all(np.isfinite(gt[..., :2]), axis=-1)).sum(axis=-1)
    return int(n) if n.ndim == 0 else n


#: Annotated keypoints farther than this from the image origin (px) are absurd (no
#: camera has such images): the person is skipped as ``bad_keypoints``.  The same bound
#: holds for boxes, crops, image sizes and focal lengths (:func:`box_problems`,
#: :func:`crop_problems`, :func:`camera_problem`).
MAX_ABS_KEYPOINT_PX = 1e6
#: Two or more labelled keypoints whose tight box has a longer side under this (px) all
#: lie at one point - no pose to fit: the person is skipped as ``bad_keypoints``.
MIN_KEYPOINT_SPREAD_PX = 1.0
#: Crop sides, image sizes and focal lengths under this (px) are absurd.
MIN_SIDE_PX = 1.0


def _fmt(values: Any) -> str:
    """Numbers as a short ``[a, b, ...]`` for a skip detail or an error."""
    return "[" + ", ".join(f"{float(v):g}" for v in np.reshape(values, -1)) + "]"


def box_problems(boxes: np.ndarray) -> list[str | None]:
    """What is wrong with each person box ``[x, y, w, h]`` ((N, 4) image px: top-left
    corner and size), as a one-line detail for a ``bad_bbox`` skip, or None for a usable
    box: a non-finite value, a side <= 0, or a side or corner beyond
    :data:`MAX_ABS_KEYPOINT_PX`."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.asarray(np.isfinite(b).all(axis=1))
        flat = np.asarray(~(b[:, 2] > 0) | ~(b[:, 3] > 0))
        corners = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
        huge = (np.abs(corners) > MAX_ABS_KEYPOINT_PX).any(axis=1) | (
            b[:, 2:] > MAX_ABS_KEYPOINT_PX).any(axis=1)
    out: list[str | None] = []
    for i in np.flatnonzero(~finite | flat | huge).tolist():
        out.extend([None] * (i - len(out)))
        what = ("has NaN/inf values" if not finite[i] else "has a side <= 0" if flat[i]
                else f"has a side or corner beyond {MAX_ABS_KEYPOINT_PX:g} px")
        out.append(f"bbox {_fmt(b[i])} {what}")
    out.extend([None] * (len(b) - len(out)))
    return out


def crop_problems(centers: np.ndarray, scales: np.ndarray) -> list[str | None]:
    """What is wrong with each crop (``centers`` (N, 2) image px, ``scales`` (N,): crop
    side / 200 px), as a one-line detail for a ``bad_bbox`` skip, or None for a usable
    crop: a non-finite value, a centre beyond :data:`MAX_ABS_KEYPOINT_PX`, or a side
    ``200 * scale`` under :data:`MIN_SIDE_PX` or beyond :data:`MAX_ABS_KEYPOINT_PX`."""
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scales, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        side = 200.0 * s
        finite = np.asarray(np.isfinite(c).all(axis=1) & np.isfinite(side))
        far = np.asarray((np.abs(c) > MAX_ABS_KEYPOINT_PX).any(axis=1))
        bad_side = ~((side >= MIN_SIDE_PX) & (side <= MAX_ABS_KEYPOINT_PX))
    out: list[str | None] = []
    for i in np.flatnonzero(~finite | far | bad_side).tolist():
        out.extend([None] * (i - len(out)))
        if not finite[i]:
            what = f"crop centre {_fmt(c[i])}, scale {s[i]:g}: NaN/inf values"
        elif far[i]:
            what = f"crop centre {_fmt(c[i])} beyond {MAX_ABS_KEYPOINT_PX:g} px"
        else:
            what = (f"crop side {side[i]:g} px (200 * scale {s[i]:g}) outside "
                    f"[{MIN_SIDE_PX:g}, {MAX_ABS_KEYPOINT_PX:g}] px")
        out.append(what)
    out.extend([None] * (len(c) - len(out)))
    return out


def camera_problem(image_size: Any, focal: Any) -> str | None:
    """What is wrong with an image size ``[width, height]`` and a focal length (px;
    either may be None = not given), as one line, or None when both are usable: every
    value finite and within [:data:`MIN_SIDE_PX`, :data:`MAX_ABS_KEYPOINT_PX`] px."""
    bounds = f"[{MIN_SIDE_PX:g}, {MAX_ABS_KEYPOINT_PX:g}] px"
    for name, value, n in (("image_size", image_size, 2), ("focal", focal, 1)):
        if value is None:
            continue
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        with np.errstate(invalid="ignore"):
            ok = v.size == n and bool(np.all((v >= MIN_SIDE_PX) & (v <= MAX_ABS_KEYPOINT_PX)))
        if not ok:
            want = "[width, height]" if n == 2 else "one number"
            return f"{name} must be {want} within {bounds}, got {_fmt(v)}"
    return None


def image_size_or_none(width: Any, height: Any) -> tuple[int, int] | None:
    """``(W, H)`` whole pixels from an annotation's ``width`` and ``height``, or None
    when either is missing, not a number, or not a usable size (:func:`camera_problem`)
    - the size is then read from the image file's header where one is needed."""
    try:
        size = (float(width), float(height))
    except (TypeError, ValueError, OverflowError):
        return None
    # camera_problem's bounds, in plain Python: this runs once per person (NaN fails)
    if not all(MIN_SIDE_PX <= v <= MAX_ABS_KEYPOINT_PX for v in size):
        return None
    return int(round(size[0])), int(round(size[1]))


def keypoint_skip_reason(kps49: np.ndarray, min_keypoints: int, *, gt: bool = True,
                         ) -> tuple[str, str] | None:
    """Why a person with these SPIN-49 keypoints ((49, 3) image px) is not fitted, as
    ``(reason, detail)``, or None to keep it.

    Reasons, checked in this order: ``bad_keypoints`` (an annotated keypoint - confidence
    > 0 - with a non-finite or absurd coordinate, beyond :data:`MAX_ABS_KEYPOINT_PX`, or a
    non-finite confidence), ``no_keypoints`` (no annotated keypoint),
    ``too_few_keypoints`` (fewer than ``min_keypoints``; EFT's rule is 6) and
    ``bad_keypoints`` again for a person with enough keypoints that all lie at one point
    (two or more annotated keypoints, over all 49 slots, whose tight box has a longer
    side under :data:`MIN_KEYPOINT_SPREAD_PX`: no pose to fit).  Keypoints are counted
    over the GT slots 25..48 (``gt=True``, EFT's count) or over the OpenPose slots
    0..24 (``gt=False``).
    """
    return keypoint_skip_reasons(np.asarray(kps49)[None], min_keypoints, gt=gt)[0]


def keypoint_skip_reasons(kps49: np.ndarray, min_keypoints: int, *, gt: bool = True,
                          ) -> list[tuple[str, str] | None]:
    """:func:`keypoint_skip_reason` of many people at once (``kps49`` (N, 49, 3)): one
    ``(reason, detail)`` or None per person, in order."""
    kps49 = np.asarray(kps49, dtype=np.float64).reshape(-1, 49, 3)
    conf = kps49[..., 2]
    xy = kps49[..., :2]
    with np.errstate(invalid="ignore", over="ignore"):
        annotated = conf > 0
        nonfinite = (~np.isfinite(conf) | (annotated & ~np.all(np.isfinite(xy), axis=-1))
                     ).sum(axis=-1)
        usable = annotated & np.all(np.isfinite(xy), axis=-1)  # (N, 49)
        absurd = (usable & (np.abs(xy) > MAX_ABS_KEYPOINT_PX).any(axis=-1)).sum(axis=-1)
        # longer side of the tight box of the usable keypoints (-inf without any)
        lo = np.where(usable[..., None], xy, np.inf).min(axis=1)
        hi = np.where(usable[..., None], xy, -np.inf).max(axis=1)
        spread = (hi - lo).max(axis=-1)
    one_point = (usable.sum(axis=-1) >= 2) & (spread < MIN_KEYPOINT_SPREAD_PX)
    n = np.asarray(count_gt_keypoints(kps49) if gt else (conf[:, :25] > 0).sum(axis=-1))
    out: list[tuple[str, str] | None] = []
    for b, a, p, k in zip(nonfinite.tolist(), absurd.tolist(), one_point.tolist(),
                          n.tolist(), strict=True):
        if b:
            out.append(("bad_keypoints", f"{b} keypoints with NaN/inf values"))
        elif a:
            out.append(("bad_keypoints", f"{a} keypoints beyond {MAX_ABS_KEYPOINT_PX:g} px"))
        elif k == 0:
            out.append(("no_keypoints", ""))
        elif k < min_keypoints:
            out.append(("too_few_keypoints", f"{k} < {min_keypoints}"))
        elif p:
            out.append(("bad_keypoints", "every labelled keypoint lies at one point (their "
                        f"box is under {MIN_KEYPOINT_SPREAD_PX:g} px)"))
        else:
            out.append(None)
    return out


_SIDES = {k: SPIN49_INDEX[n] for k, n in (
    ("lsh", "Left Shoulder"), ("rsh", "Right Shoulder"), ("lhip", "Left Hip"),
    ("rhip", "Right Hip"))}


def left_right_swap_warning(kps49: np.ndarray, *, min_people: int = 10,
                            max_disagree: float = 0.5, label: str = "dataset",
                            ) -> str | None:
    """A one-line warning when left and right look swapped between the arms and the legs
    across a dataset, else None.

    For a person, the left shoulder and the left hip lie on the same side of the body
    in the image (the torso rarely turns by more than 90 degrees between them), so the
    horizontal order of the shoulders and of the hips agree.  People with both pairs
    annotated and at least 5 % of their keypoint box apart are counted; when more than
    ``max_disagree`` of at least ``min_people`` disagree, the legs (or the arms) were
    most likely read in the wrong order - e.g. Human3.6M's order read as SPIN's
    (``h36m17_std`` vs ``h36m17_spin``).  ``kps49``: (N, 49, 3) image px.
    """
    k = np.asarray(kps49, dtype=np.float64).reshape(-1, 49, 3)
    if len(k) == 0:
        return None
    idx = list(_SIDES.values())
    ok = (k[:, idx, 2] > 0).all(axis=1) & np.isfinite(k[:, idx, :2]).all(axis=(1, 2))
    if not ok.any():
        return None
    k = k[ok]
    vis = k[..., 2] > 0
    xy = np.where(vis[..., None], k[..., :2], np.nan)
    with np.errstate(invalid="ignore"):
        size = np.nanmax(np.nanmax(xy, axis=1) - np.nanmin(xy, axis=1), axis=1)
    ds = k[:, _SIDES["lsh"], 0] - k[:, _SIDES["rsh"], 0]
    dh = k[:, _SIDES["lhip"], 0] - k[:, _SIDES["rhip"], 0]
    clear = (np.abs(ds) > 0.05 * size) & (np.abs(dh) > 0.05 * size)
    n = int(clear.sum())
    if n < min_people:
        return None
    disagree = float((np.sign(ds[clear]) != np.sign(dh[clear])).mean())
    if disagree <= max_disagree:
        return None
    return (f"{label}: left and right look swapped between the arms and the legs in "
            f"{100 * disagree:.0f}% of {n} people (normally a few %); check the keypoint "
            "format (e.g. h36m17_std, Human3.6M's own order, vs h36m17_spin, SPIN's)")
