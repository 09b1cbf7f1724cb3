"""The ``"auto"`` recipe: pick ``open-prior`` or ``open-prior-exact`` from how exact the
labels are, by a pilot fit.

Human-annotated labels (COCO, MPII, detector output) are fitted best by ``open-prior``;
labels without annotation noise (projected from motion capture, as a studio set's are)
by ``open-prior-exact``, which fits harder and blends the fit with SMPLify's.  Neither
recipe is right for the other's labels (README, "Labels without annotation noise"): on
exact synthetic labels ``open-prior-exact`` is 4.3 mm PA-MPJPE-14 better, on annotated
ones 3.2 mm worse, and 0.010 worse on COCO's held-out joints.

The two kinds of labels differ in how closely ``open-prior``'s fits reproduce them.  A
*pilot* fits up to :data:`PILOT_SIZE` of the people (:func:`pilot_indices`: spread
evenly over them sorted by id) with ``open-prior`` plus the caller's own keys; when the
median of their reprojection errors over the box side is below
:data:`EXACT_LABELS_BELOW`, the labels look exact (:func:`pick_preset`).  The pilot is
deterministic and does not depend on the order of the people.

:func:`~eft.fitting.engine.fit_exemplars` takes ``config="auto"``; ``eft fit`` uses it
by default with a shipped prior (:mod:`eft.jobs.recipe`, which fits its pilot through
the job's own worker).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import EFTConfig, eft_preset

__all__ = ["AUTO_PRESET", "AUTO_CHOICES", "EXACT_LABELS_BELOW", "PILOT_SIZE",
           "PresetChoice", "pilot_indices", "pick_preset", "own_keys", "auto_config"]

log = logging.getLogger("eft.fitting")

#: The recipe name that picks one of :data:`AUTO_CHOICES` by a pilot fit.
AUTO_PRESET = "auto"
#: (recipe for annotated labels, recipe for exact labels); the pilot fits with the first.
AUTO_CHOICES: tuple[str, str] = ("open-prior", "open-prior-exact")
#: Median reprojection / box side under ``open-prior`` below which the labels look
#: exact (projected from motion capture): ``open-prior-exact`` fits them better.
#: Measured with prior v9 on 256 synthetic val people per row (COCO-17 / H36M-17
#: labels; ``scripts/bench_auto_recipe.py``): 0.011 / 0.011 on exact labels, 0.011 /
#: 0.012 at a quarter of COCO's annotation noise, 0.013 / 0.015 at half
#: (``open-prior-exact`` about 3 mm better there), 0.017 / 0.020 at three quarters (the
#: two recipes within 1 mm), 0.021 / 0.025 with all of it and on the annotated val set
#: (``open-prior`` 3-6 mm better).  On real labels, 256 random people per draw, two
#: draws each: 0.018-0.020 on COCO train, 0.021-0.022 on COCO val, 0.022-0.023 on
#: MPII train, 0.017-0.018 on MPII val.  Exact H36M-17 labels with a studio skeleton's
#: offsets (head, jaw, spine, thorax and hips moved along the torso; README "Labels
#: without annotation noise") read 0.013 at the offsets guessed for a studio set and
#: 0.018 at twice them.  0.015 sits at the same ratio (1.15x) from the nearest real
#: labels and from the guessed studio skeleton.
EXACT_LABELS_BELOW = 0.015
#: People in the pilot fit (all of them when there are fewer).
PILOT_SIZE = 256


@dataclass(frozen=True)
class PresetChoice:
    """What ``"auto"`` picked.

    Attributes:
        preset: the chosen recipe, one of :data:`AUTO_CHOICES`.
        pilot: people fitted in the pilot.
        reproj_median: the pilot fits' median reprojection / box side (NaN when no
            pilot fit had one; ``open-prior`` is then chosen).
        seconds: the pilot's wall time.
    """

    preset: str
    pilot: int
    reproj_median: float
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def pilot_indices(ids: Sequence[str], n: int = PILOT_SIZE) -> np.ndarray:
    """(min(n, N),) int64 indices into ``ids`` (N unique ids) of the pilot: evenly spaced
    over the ids sorted, in id order, so the same people whatever order they come in."""
    order = np.argsort(np.asarray(list(ids), dtype=object), kind="stable").astype(np.int64)
    if len(order) <= n:
        return order
    return order[np.unique(np.linspace(0, len(order) - 1, n).round().astype(np.int64))]


def pick_preset(reproj_frac_bbox: Sequence[float] | np.ndarray) -> tuple[str, float]:
    """(recipe, median): the pilot fits' median reprojection / box side (N,) (non-finite
    values left out; NaN when none is left) and the recipe it picks, ``open-prior-exact``
    below :data:`EXACT_LABELS_BELOW`, else ``open-prior``."""
    reproj = np.asarray(reproj_frac_bbox, dtype=np.float64)
    reproj = reproj[np.isfinite(reproj)]
    median = float(np.median(reproj)) if reproj.size else float("nan")
    exact = bool(reproj.size) and median < EXACT_LABELS_BELOW
    return AUTO_CHOICES[int(exact)], median


def own_keys(config: EFTConfig) -> dict:
    """The settings of ``config`` that differ from the pilot's recipe (``open-prior``):
    the caller's own keys, kept on top of whichever recipe is chosen."""
    base = eft_preset(AUTO_CHOICES[0])
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(EFTConfig)
            if getattr(config, f.name) != getattr(base, f.name)}


def auto_config(choice: PresetChoice, overrides: dict | None = None) -> EFTConfig:
    """The chosen recipe with ``overrides`` (:func:`own_keys`) on top, logged."""
    log.info("eft.preset %s: the pilot's %d fits reproduce the labels to a median %.4f of "
             "the box side (labels look exact below %.3f): %s", AUTO_PRESET, choice.pilot,
             choice.reproj_median, EXACT_LABELS_BELOW, choice.preset)
    return eft_preset(choice.preset, **(overrides or {}))
