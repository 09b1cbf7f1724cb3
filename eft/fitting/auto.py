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
evenly over them sorted by id) with ``open-prior`` plus the caller's own keys.  The
labels look exact (:func:`pick_preset`) when the median of the fits' reprojection
errors over the box side is below :data:`EXACT_LABELS_BELOW`, or when the median over
the joints every skeleton defines alike (:data:`SKELETON_FREE_SLOTS`: limbs, shoulders,
face) is below :data:`EXACT_LIMBS_BELOW`.  The second test keeps exact labels whose
hips, neck and head are defined unlike the body model's (a studio skeleton's) from
looking annotated.  The pilot is deterministic and does not depend on the order of the
people.  Then the pilot is fitted once more, with ``open-prior-exact``, and measured
through each image's own camera (:func:`with_perspective_check`): below
:data:`EXACT_CAMERA_BELOW` the labels are exact whatever the first fit read (a light
fit cannot reproduce exact labels of poses the prior finds hard, such as lying
people; below :data:`CAPTURE_CAMERA_BELOW` for labels of every joint with a spine and a
jaw, :func:`capture_labels`, whose capture skeleton the body model cannot draw), and
under ``open-prior-exact`` the refinement under that camera stays on only below
:data:`PERSPECTIVE_LABELS_BELOW`: it fits annotation noise, and bones of other lengths,
as readily as it resolves depth.  Complete labels not read so (a studio set converted
to COCO-17, LSP-14 or MPII-16, or missing the odd joint) are probed as motion capture
(:func:`with_capture_probe`): their skeleton offsets are measured and taken out, and
when a pilot fit through the cameras then reproduces them closely
(:data:`CAPTURE_PROBE_BELOW`) they are read as capture.  :func:`run_pilots` is the
sequence every caller runs.

:func:`~eft.fitting.engine.fit_exemplars` takes ``config="auto"`` (its default with a
shipped prior loaded by name); ``eft fit`` uses it by default with a shipped prior
(:mod:`eft.jobs.recipe`, which fits its pilot through the job's own worker).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eft.body.joints import SKELETON_FREE_SLOTS, SPIN49_INDEX
from eft.data.exemplar import Exemplar
from eft.geometry.cameras import image_to_crop_norm

from .calibrate import (
    MIN_PEOPLE,
    OffsetRows,
    correct_targets,
    estimate_skeleton_offsets,
    remeasure_skeleton_offsets,
)
from .config import MEASURE_OFFSETS, EFTConfig, eft_preset
from .perspective import crop_camera, image_camera, perspective_residual
from .quality import reprojection_px
from .records import Fit, FitTargets

__all__ = ["AUTO_PRESET", "AUTO_CHOICES", "EXACT_LABELS_BELOW", "EXACT_LIMBS_BELOW",
           "SKELETON_FREE_SLOTS", "PILOT_SIZE", "SMALL_PILOT", "SMALL_PILOT_TRIM", "MIN_PILOT",
           "PERSPECTIVE_LABELS_BELOW", "EXACT_CAMERA_BELOW", "CAPTURE_SLOTS",
           "CAPTURE_CAMERA_BELOW", "OFFSETS_CAMERA_BELOW", "CAPTURE_PROBE_BELOW",
           "PROBE_COMPLETE_SHARE", "CAPTURE_MIN_PEOPLE", "offsets_min_people",
           "FAR_FROM_SKELETON", "MIXED_RIGS_SHARE", "CAPTURE_REFITS",
           "capture_labels", "complete_share", "complete_labels",
           "with_capture_probe",
           "pilot_statistic", "statistic_name",
           "MEASURED_TORSO_WEIGHT",
           "PresetChoice",
           "pilot_indices", "pilot_config", "limb_reproj", "pick_preset", "pilot_measures",
           "choose_from_pilot", "pick_with_camera", "camera_measures",
           "with_perspective_check", "with_remeasured_offsets", "own_keys", "chosen_recipe",
           "auto_config", "PilotRefit", "run_pilots"]

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
#: without annotation noise") read 0.013, 0.018 and 0.024 at 1, 2 and 3 times the
#: offsets guessed for a studio set.
EXACT_LABELS_BELOW = 0.015
#: Median over people of the mean reprojection / box side over
#: :data:`SKELETON_FREE_SLOTS` (:func:`limb_reproj`) below which the labels also look
#: exact.  Measured as above: 0.011 / 0.013 on exact labels and 0.011-0.013 with the
#: studio offsets at 1-3 times, 0.011 / 0.013 at a quarter of the noise, 0.012 / 0.014
#: at half, 0.015 / 0.017 at three quarters, 0.018-0.021 with all of it; on real labels
#: 0.017-0.018 on COCO train, 0.019 on COCO val, 0.020-0.022 on MPII train and
#: 0.015-0.016 on MPII val (the nearest, 1.13x this threshold).
EXACT_LIMBS_BELOW = 0.0135
#: People in the pilot fit (all of them when there are fewer).
PILOT_SIZE = 256
#: Pilots of fewer people read their measures as a trimmed geometric mean rather than
#: a median (:func:`pilot_statistic`).
SMALL_PILOT = 64
#: The share of a small pilot's people the trimmed geometric mean leaves out at each
#: end (the lowest and the highest values).
SMALL_PILOT_TRIM = 0.1
#: Pilots of fewer people do not read the labels: they keep ``open-prior``, the recipe
#: for annotated labels, whatever their measures say.  Too few people cannot tell exact
#: labels from annotated ones: pilots of 4 real people misread 10 % of COCO val draws
#: and 22 % of MPII val ones, and the 4 people of the CrowdPose sample read exact
#: (2026-12-07), where pilots of 8 misread 4 % and 8 % (``scripts/bench_small_pilots.py``,
#: trimmed mean).  Of the two
#: wrong picks, ``open-prior`` on exact labels costs less (about 20 mm on a studio set's
#: proxy) than ``open-prior-exact`` on annotated photos (about 34 mm;
#: ``scripts/bench_mixed_jobs.py``), and annotated labels are the common case; a
#: handful of exact labels takes ``eft.preset: open-prior-exact`` by hand.
MIN_PILOT = 8
#: When the pick is ``open-prior-exact``, the pilot is fitted again with it, and its
#: refinement under each image's camera (``perspective_steps``) is kept only when the
#: median over those fits of :func:`~eft.fitting.perspective.perspective_residual` (how
#: closely, through the image camera, they reproduce the joints every skeleton places
#: alike, over the box side) is below this.  Synthetic people, 256 per set
#: (``scripts/bench_auto_recipe.py``): exact labels 0.0015-0.0017, with a studio
#: skeleton's torso offsets at 1-3 times up to 0.0021, with the limb joints 3 cm along
#: the limbs 0.0022; a quarter of COCO's annotation noise 0.0020-0.0023, where the
#: refinement still gains 3.6-6.3 mm PA-MPJPE-14; half of it 0.0027-0.0034, where it
#: loses 2.9-5.5 mm (it fits the noise; the first pilot sends most such labels to
#: ``open-prior`` already).  The threshold sits between, nearer the noise: dropping
#: the refinement on exact labels costs more (7-13 mm) than keeping it on noisier ones.
#: 0.0025 since 2026-12-07 (was 0.0030): exact labels from a real capture's skeleton
#: (``scripts/bench_mocap_skeleton.py``) read 0.0031-0.0032, and the refinement there
#: costs 12 mm (67.4 against 55.8 mm by name): it draws the body's limbs nearer or
#: further to reach bones of other lengths.  No measured set that gains from it reads
#: above 0.0023.
PERSPECTIVE_LABELS_BELOW = 0.0025
#: The second pilot fits ``open-prior-exact`` whichever recipe the first picked, and
#: when its median (as for :data:`PERSPECTIVE_LABELS_BELOW`) is below this, the labels
#: are exact whatever the first pilot read: ``open-prior``'s light fit cannot reproduce
#: exact labels of poses the prior finds hard, so exact labels of lying people read
#: 0.021 there, as annotated ones do (0.017-0.025), while through the image camera
#: after ``open-prior-exact`` they read 0.0019.  Synthetic people, 256 per set,
#: COCO-17 / H36M-17: exact labels 0.0015-0.0019 (upright, seated, kneeling, bent
#: over, lying), a quarter of COCO's noise 0.0020-0.0026, half 0.0027-0.0037, three
#: quarters 0.0034-0.0045, all of it and the annotated val set 0.0042-0.0063.  Real
#: labels, the pilot and two random draws of 256 each: COCO train 0.0038-0.0041, COCO
#: val 0.0043, MPII train 0.0027-0.0030, MPII's Tompson split 0.0030-0.0031.  The
#: threshold keeps more room to annotated labels (1.23x, MPII train), where a wrong
#: pick costs every job on such data, than to exact ones (1.16x, lying people).  On
#: those lying people ``open-prior`` scores 64.9 mm PA-MPJPE-14, ``open-prior-exact``
#: 47.8 and SMPLify 59.3 (COCO-17; H36M-17 64.5 / 46.0 / 56.9).
EXACT_CAMERA_BELOW = 0.0022
#: Slots that only a motion-capture skeleton labels: no annotator marks the middle of the
#: spine or H36M's jaw joint; a dataset's labels that fill them for every person, with
#: nothing missing anywhere, were projected from motion capture (:func:`capture_labels`).
CAPTURE_SLOTS: tuple[str, ...] = ("Spine (H36M)", "Jaw (H36M)")
#: For such capture labels the second pilot's camera measure reads them exact below this
#: instead of :data:`EXACT_CAMERA_BELOW`.  A real capture's skeleton places its joints and
#: proportions unlike the body model (a shin 16 % longer, shoulders 28 % narrower), which
#: no fitter can draw exactly: exact H36M-17 labels from the real CMU skeletons of the
#: pose bank's val clips read 0.0031-0.0032, as real MPII annotations do (0.0027-0.0031),
#: and there ``open-prior-exact`` with the capture's offsets measured (which this
#: threshold also allows) scores 46.0 mm by name without the image camera and 44.0 with
#: it back on (:data:`OFFSETS_CAMERA_BELOW`), against ``open-prior``'s 59.1 and SMPLify's
#: 56.8 (``scripts/bench_mocap_skeleton.py``, 512 frames).  Synthetic H36M-17 labels of
#: every joint at half of COCO's noise read 0.0029 and now pick ``open-prior-exact``
#: without the camera (52.4 mm against ``open-prior``'s 54.0, the offsets read from their
#: noise dropped by :data:`OFFSETS_CAMERA_BELOW`; 53.8 while they were kept); at three
#: quarters 0.0036 and with all of it 0.0042 (``open-prior`` 1.7 and 5.8 mm better
#: there), but at those noise levels a few joints leave the image (one person of 256 at
#: three quarters), so they do not read as motion capture by their slots (nor by the
#: capture probe: 0.0058 there) and keep ``open-prior``
#: (``scripts/bench_auto_recipe.py``).
CAPTURE_CAMERA_BELOW = 0.0040
#: For motion-capture labels whose camera refinement the second pilot turned off and
#: whose skeleton offsets it measured, a pilot fit through the cameras with those
#: offsets taken out keeps the refinement when it reproduces the corrected labels to a
#: median below this (:func:`with_remeasured_offsets`).  The real CMU capture skeletons
#: of ``scripts/bench_mocap_skeleton.py`` read 0.0026 (where the refinement then gains
#: 2 mm: 44.0 against 46.0 by name); synthetic H36M-17 labels of every joint at half
#: of COCO's noise 0.0042-0.0046 (where it loses 4-5 mm).  At or above it the offsets
#: themselves are dropped too (since 2026-12-08): they did not explain the labels, and
#: were read from annotation noise (1.4 mm worse at half of COCO's noise, 256 people;
#: 3 mm with 16, :data:`CAPTURE_MIN_PEOPLE`).
OFFSETS_CAMERA_BELOW = 0.0034
#: Labels that give every person every slot anyone labels (nearly:
#: :data:`PROBE_COMPLETE_SHARE`) but are not read as capture by :data:`CAPTURE_SLOTS`
#: (motion capture converted to COCO-17, LSP-14 or MPII-16 slots) are probed as motion
#: capture (:func:`with_capture_probe`) when the second pilot's camera measure is below
#: :data:`CAPTURE_CAMERA_BELOW`: with their skeleton offsets measured and taken out, a
#: pilot fit through the cameras reproduces a capture's labels to a median of
#: 0.0025-0.0026 (the real CMU skeletons of ``scripts/bench_mocap_skeleton.py``, in each
#: of those formats and in H36M-17's), annotators' labels no closer than 0.0037 (MPII's
#: Tompson split, its complete people only; MPII train 0.0039-0.0041, COCO val's complete
#: people 0.0050), synthetic labels of every joint at half of COCO's noise 0.0044-0.0047
#: (one-off probe 2026-12-08, 256-2,000 people per set).  Below this the labels read as
#: motion capture.  Read so, capture labels in those three formats score 42.3-43.4 mm by
#: name (47.5 before :data:`CAPTURE_REFITS`) against ``open-prior``'s 58.0-59.2 and
#: SMPLify's 59.9-61.8.
CAPTURE_PROBE_BELOW = 0.0030
#: The capture probe runs where at least this share of the pilot's people label every
#: slot anyone labels (:func:`complete_share`): a studio set may leave out the odd joint
#: outside the image, where annotators leave out many (MPII train and its Tompson
#: split: 65 % and 68 % of their people complete; COCO val: 6 %).
PROBE_COMPLETE_SHARE = 0.95
#: Motion-capture labels whose offsets the fit through the cameras kept
#: (:func:`with_remeasured_offsets`) measure them this many more times, each from the
#: pilot refitted with the last measure out: the real CMU capture skeletons of
#: ``scripts/bench_mocap_skeleton.py`` score 39.8 / 37.8 mm by name with one more
#: (seeds 0 / 1; 44.0 / 42.9 without), the bodies' own keypoints 50.1 / 48.5 (51.0 /
#: 49.7); two more 39.4 by name but 51.1 for the bodies (one-off probes 2026-12-08).
#: The decisions before it (camera, dropped offsets, the capture probe) read the
#: offsets measured once.
CAPTURE_REFITS = 1
#: A pilot person reproduced more than this many times as far as the pilot's median by
#: the fit through the cameras with the measured offsets out
#: (:attr:`PresetChoice.far_from_skeleton`) is far from the measured skeleton ...
FAR_FROM_SKELETON = 2.0
#: ... and more than this share of such people warns that the dataset may mix capture
#: rigs (the offsets are one per dataset).  ``scripts/bench_mocap_skeleton.py``'s pilot:
#: 10 of 256 people (3.9 %), all 10 of the one clip on another rig (CMU-31 among DAZ-43
#: clips, 62 % of its 16 pilot people; 83.9 mm with the others' offsets, 47.7 alone),
#: none of the 240 DAZ-43 people (one-off probe 2026-12-08).
MIXED_RIGS_SHARE = 0.02
#: For motion-capture labels (:func:`capture_labels`) the second pilot measures the
#: labels' skeleton offsets from this many people up (other labels:
#: ``calibrate.MIN_PEOPLE``, 32): a capture skeleton's offsets are the same in every
#: frame.  Exact labels from the real CMU capture skeletons, 16 frames per set (one of
#: each val clip, 8 sets; ``scripts/bench_mocap_skeleton.py``'s small sets): ``auto``
#: 43.0 mm by name (45.9 before :data:`CAPTURE_REFITS`) against SMPLify's 57.8, where
#: with 32 it measured none and tied (57.7).  Offsets read from annotation noise instead
#: are dropped by the fit through the cameras that follows
#: (:data:`OFFSETS_CAMERA_BELOW`): synthetic H36M-17 labels of every joint at half of
#: COCO's noise, 16 people per set, read 0.0041-0.0070 there and keep their 52.8 mm (55.8
#: with the offsets kept; one-off probe 2026-12-08).
CAPTURE_MIN_PEOPLE = MIN_PILOT
#: ``perspective_torso_weight`` of ``open-prior-exact`` when the pilot has measured the
#: labels' skeleton offsets (and the job takes out those above 1 cm; a pilot of fewer
#: than ``calibrate.MIN_PEOPLE`` people measures none, and keeps 0.1: a studio skeleton
#: at twice the guessed offsets, not taken out, scores 57.1 mm under full weight against
#: 40.7 under 0.1, 128 people, one-off probe 2026-12-07): the preset's 0.1
#: guards a recipe named by hand against a studio skeleton's hips, spine, neck and head;
#: once they are measured, full weight is 0.5-2.1 mm better on every exact-label set of
#: ``scripts/bench_skeleton_offsets.py`` (256 people, one-off probes 2026-12-07:
#: studio / photo cameras 35.3 -> 33.2 / 40.5 -> 38.6, a studio skeleton at twice the
#: guessed offsets 35.8 -> 34.3 / 41.4 -> 40.3, at a third of them, none measured,
#: 35.3 -> 33.3, a quarter of COCO's noise 41.0 -> 40.2, people lying 44.7 -> 42.6).
MEASURED_TORSO_WEIGHT = 1.0


@dataclass(frozen=True)
class PresetChoice:
    """What ``"auto"`` picked.

    Attributes:
        preset: the chosen recipe, one of :data:`AUTO_CHOICES`.
        pilot: people fitted in the pilot.
        reproj_median: the pilot fits' median reprojection / box side (NaN when no
            pilot fit had one); every "median" here is :func:`pilot_statistic`'s,
            which under :data:`SMALL_PILOT` people is a trimmed geometric mean.
        limb_median: the same over :data:`SKELETON_FREE_SLOTS` (:func:`limb_reproj`).
        seconds: the pilot's wall time (both fits).
        perspective_median: the median reprojection / box side of the pilot's fits with
            ``open-prior-exact`` through each image's camera, over
            :data:`SKELETON_FREE_SLOTS` (:func:`with_perspective_check`); NaN when not
            measured.
        capture: whether the pilot's labels read as projected from motion capture
            (:func:`capture_labels`), which moves the second pilot's thresholds.
        capture_probe_median: for complete labels without :data:`CAPTURE_SLOTS`
            (:func:`with_capture_probe`), the ``offsets_camera_median`` the probe
            measured (they read as motion capture below :data:`CAPTURE_PROBE_BELOW`);
            NaN when not probed.
        far_from_skeleton: the share of the pilot's people that the
            ``offsets_camera_median`` fit (below) reproduces more than
            :data:`FAR_FROM_SKELETON` times as far as its median (kept offsets only;
            above :data:`MIXED_RIGS_SHARE` the job warns of mixed capture rigs); NaN when
            not measured.
        offsets_camera_median: for such labels, the same measure as
            ``perspective_median`` of a pilot fit through the cameras with the labels'
            skeleton offsets taken out, against the corrected labels
            (:func:`with_remeasured_offsets`); NaN when not measured.
        skeleton_offsets: the labels' skeleton offsets measured on the second pilot's
            fits (:func:`~eft.fitting.calibrate.estimate_skeleton_offsets`, rows as
            ``EFTConfig.skeleton_offsets``); :func:`auto_config` uses them with
            ``open-prior-exact`` only.  ``()`` when none is large enough.
    """

    preset: str
    pilot: int
    reproj_median: float
    limb_median: float
    seconds: float
    perspective_median: float = float("nan")
    skeleton_offsets: tuple[tuple[str, float, float, float, float], ...] = ()
    capture: bool = False
    offsets_camera_median: float = float("nan")
    capture_probe_median: float = float("nan")
    far_from_skeleton: float = float("nan")

    @property
    def perspective(self) -> bool:
        """Whether the chosen recipe keeps its ``perspective_steps``: the second pilot's
        median below :data:`PERSPECTIVE_LABELS_BELOW`, or the one measured with the
        labels' skeleton offsets out below :data:`OFFSETS_CAMERA_BELOW`."""
        return bool(self.perspective_median < PERSPECTIVE_LABELS_BELOW
                    or self.offsets_camera_median < OFFSETS_CAMERA_BELOW)

    def to_dict(self) -> dict:
        """Plain values for JSON: NaN medians as None."""
        out = {k: (None if isinstance(v, float) and math.isnan(v) else v)
               for k, v in dataclasses.asdict(self).items()}
        out["skeleton_offsets"] = [list(r) for r in self.skeleton_offsets]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> PresetChoice:
        """The inverse of :meth:`to_dict` (None medians back to NaN)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: (float("nan") if v is None else v)
                                  for k, v in data.items() if k in names}
        values["skeleton_offsets"] = tuple(
            (str(r[0]), *(float(x) for x in r[1:])) for r in data.get("skeleton_offsets", ()))
        return cls(**values)


def pilot_indices(ids: Sequence[str], n: int = PILOT_SIZE) -> np.ndarray:
    """(min(n, N),) int64 indices into ``ids`` (N unique ids) of the pilot: evenly spaced
    over the ids sorted, in id order, so the same people whatever order they come in."""
    order = np.argsort(np.asarray(list(ids), dtype=object), kind="stable").astype(np.int64)
    if len(order) <= n:
        return order
    return order[np.unique(np.linspace(0, len(order) - 1, n).round().astype(np.int64))]


def limb_reproj(pred_px: np.ndarray, labels: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(N,) each person's mean distance between the fit's keypoints ``pred_px``
    (N, 49, 2) and the labelled ones ``labels`` (N, 49, 3, image px) over the
    labelled :data:`SKELETON_FREE_SLOTS`, over the box side ``200 * scales`` (N,);
    NaN for a person with none of them labelled.  The fits' own
    :func:`~eft.fitting.quality.reprojection_px` restricted to those slots."""
    s = torch.as_tensor(np.asarray(scales, dtype=np.float64))
    origin = torch.zeros(len(s), 2, dtype=torch.float64)
    target = torch.as_tensor(np.asarray(labels, dtype=np.float64)).clone()
    target[..., :2] = image_to_crop_norm(target[..., :2], origin, s)
    pred = image_to_crop_norm(torch.as_tensor(np.asarray(pred_px, dtype=np.float64)),
                              origin, s)
    valid = torch.zeros(target.shape[1], dtype=torch.bool)
    valid[list(SKELETON_FREE_SLOTS)] = True
    return (reprojection_px(pred, target, origin, s, valid) / (200.0 * s)).numpy()


def statistic_name(pilot: int) -> str:
    """What :func:`pilot_statistic` is for a pilot of ``pilot`` people, in words."""
    return "median" if pilot >= SMALL_PILOT else "trimmed mean"


def pilot_statistic(values: Sequence[float] | np.ndarray) -> float:
    """The typical value of a pilot measure over its people (the finite ``values``;
    NaN when none): their median, or under :data:`SMALL_PILOT` people their trimmed
    geometric mean (the mean of the logs without the :data:`SMALL_PILOT_TRIM` lowest
    and highest of them), which a few people move less than the median.  Measured
    (``scripts/bench_small_pilots.py``, 400 random pilots per size from 512 real and
    256 synthetic people per kind of label): pilots of 13 people misread MPII val's
    annotated labels as exact 14 % of the time with the median (mostly keeping the
    camera refinement, which costs such labels about 18 mm) and 5 % with this mean,
    COCO val's 5 % and 0, while exact labels of people lying down read as annotated
    17 % and 14 % of the time (8 people: MPII 24 % -> 8 %, lying 24 % -> 26 %; 32:
    MPII 2 % -> 0, lying 6 % -> 4 %).  Pilots of :data:`SMALL_PILOT` people or more
    keep the median, which every threshold here was measured with."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return float("nan")
    if len(v) >= SMALL_PILOT:
        return float(np.median(v))
    logs = np.sort(np.log(np.maximum(v, 1e-12)))
    cut = int(SMALL_PILOT_TRIM * len(logs))
    return float(np.exp(logs[cut:len(logs) - cut].mean()))


def pilot_config(config: EFTConfig) -> EFTConfig:
    """What the first pilot fits with: ``config`` (``open-prior`` and the caller's own
    keys) without its second fit of people lying down (``tilted_above_deg``), which fits
    their labels more closely and would shift the medians :data:`EXACT_LABELS_BELOW` and
    :data:`EXACT_LIMBS_BELOW` were measured with (half of COCO's noise in H36M-17 then
    read 0.0148 instead of 0.0155 and went to ``open-prior-exact``, 1.7 mm worse than
    SMPLify).  Exact labels of lying people are the second pilot's to find."""
    return config.replace(tilted_above_deg=0.0)


def pick_preset(reproj_median: float, limb_median: float = float("nan")) -> str:
    """``open-prior-exact`` when the pilot's median reprojection / box side is below
    :data:`EXACT_LABELS_BELOW` or its median over :data:`SKELETON_FREE_SLOTS` below
    :data:`EXACT_LIMBS_BELOW` (NaN never is), else ``open-prior``."""
    exact = reproj_median < EXACT_LABELS_BELOW or limb_median < EXACT_LIMBS_BELOW
    return AUTO_CHOICES[int(bool(exact))]


def pilot_measures(fits: Sequence[Fit], exemplars: Sequence[Exemplar]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each person's measures from the first pilot's ``open-prior`` ``fits`` of
    ``exemplars`` (same order): (N,) reprojection / box side and (N,) the same over
    :data:`SKELETON_FREE_SLOTS` (:func:`limb_reproj`; NaN without such a label)."""
    from .heldout import fit_keypoints_px  # lazy: heldout builds on the engine

    reproj = np.asarray([f.quality.reproj_frac_bbox for f in fits], dtype=np.float64)
    limbs = limb_reproj(fit_keypoints_px(fits),
                        np.stack([np.asarray(e.keypoints) for e in exemplars]),
                        np.asarray([e.scale for e in exemplars]))
    return reproj, limbs


def choose_from_pilot(fits: Sequence[Fit], exemplars: Sequence[Exemplar],
                      seconds: float = 0.0) -> PresetChoice:
    """The :class:`PresetChoice` of a pilot's ``open-prior`` ``fits`` of ``exemplars``
    (same order): :func:`pick_preset` of :func:`pilot_statistic` of each of
    :func:`pilot_measures`; ``open-prior`` under :data:`MIN_PILOT` people (the
    measures are still recorded)."""
    if not fits:
        return PresetChoice(AUTO_CHOICES[0], 0, float("nan"), float("nan"), seconds)
    reproj, limbs = (pilot_statistic(m) for m in pilot_measures(fits, exemplars))
    if len(fits) >= MIN_PILOT:
        preset = pick_preset(reproj, limbs)
    else:
        preset = AUTO_CHOICES[0]
        log.info("eft.preset %s: a pilot of %d people (fewer than %d) cannot tell exact "
                 "labels from annotated ones: %s; name open-prior-exact by hand for "
                 "exact labels", AUTO_PRESET, len(fits), MIN_PILOT, preset)
    return PresetChoice(preset=preset, pilot=len(fits),
                        reproj_median=reproj, limb_median=limbs, seconds=seconds)


def pick_with_camera(preset: str, camera: float, capture: bool = False) -> str:
    """The first pilot's ``preset``, or ``open-prior-exact`` where the second pilot's
    camera measure (:func:`camera_measures`, its :func:`pilot_statistic`) is below
    :data:`EXACT_CAMERA_BELOW` (:data:`CAPTURE_CAMERA_BELOW` for ``capture`` labels,
    :func:`capture_labels`; NaN never is)."""
    below = CAPTURE_CAMERA_BELOW if capture else EXACT_CAMERA_BELOW
    return AUTO_CHOICES[1] if camera < below else preset


def complete_share(exemplars: Sequence[Exemplar]) -> float:
    """The share of ``exemplars``' people who label every slot that anyone labels
    (0.0 for an empty list)."""
    if not exemplars:
        return 0.0
    has = np.stack([np.asarray(e.keypoints, dtype=np.float64)[:, 2] > 0 for e in exemplars])
    return float((has == has.any(0)).all(1).mean())


def complete_labels(exemplars: Sequence[Exemplar]) -> bool:
    """Whether every person of ``exemplars`` labels every slot that anyone labels
    (nothing occluded or cut off is left out, as annotators and detectors leave it).
    False for an empty list."""
    return complete_share(exemplars) == 1.0


def offsets_min_people(capture: bool) -> int:
    """How many pilot people must label a slot for its skeleton offset to be measured:
    :data:`CAPTURE_MIN_PEOPLE` for motion-capture labels, else ``calibrate.MIN_PEOPLE``."""
    return CAPTURE_MIN_PEOPLE if capture else MIN_PEOPLE


def capture_labels(exemplars: Sequence[Exemplar]) -> bool:
    """Whether ``exemplars``' labels were projected from motion capture: every person
    labels :data:`CAPTURE_SLOTS` and every slot that anyone labels
    (:func:`complete_labels`).  False for an empty list."""
    if not complete_labels(exemplars):
        return False
    slots = [SPIN49_INDEX[n] for n in CAPTURE_SLOTS]
    return bool(all(np.asarray(e.keypoints)[slots, 2].min() > 0 for e in exemplars))


def _pilot_targets(exemplars: Sequence[Exemplar]) -> FitTargets:
    """The pilot's labels (crop-normalised, float64) with each image's camera
    (:func:`~eft.fitting.perspective.image_camera`); no network inputs."""
    cams = [image_camera(e) for e in exemplars]
    centers = torch.as_tensor(np.stack([np.asarray(e.center, dtype=np.float64)
                                        for e in exemplars]))
    scales = torch.as_tensor([float(e.scale) for e in exemplars], dtype=torch.float64)
    kp = torch.as_tensor(np.stack([np.asarray(e.keypoints, dtype=np.float64)
                                   for e in exemplars]))
    return FitTargets(
        keypoints=torch.cat((image_to_crop_norm(kp[..., :2], centers, scales), kp[..., 2:]),
                            -1),
        centers=centers, scales=scales, focals=np.asarray([c[0] for c in cams]),
        principal_points=np.asarray([c[1] for c in cams]))


def camera_measures(exact_fits: Sequence[Fit], exemplars: Sequence[Exemplar]) -> np.ndarray:
    """(N,) each person's measure from the second pilot's ``open-prior-exact``
    ``exact_fits`` of ``exemplars``: :func:`~eft.fitting.perspective.perspective_residual`
    through the image's camera (:func:`~eft.fitting.perspective.image_camera`)."""
    return _camera_residuals(_pilot_targets(exemplars), exact_fits)


def _camera_residuals(targets: FitTargets, exact_fits: Sequence[Fit]) -> np.ndarray:
    """:func:`camera_measures` from the pilot's targets (:func:`_pilot_targets`)."""
    focal, centre = crop_camera(torch.as_tensor(targets.focals),
                                torch.as_tensor(targets.principal_points),
                                targets.center_tensor, targets.scale_tensor)
    points = torch.as_tensor(np.stack([f.keypoints3d for f in exact_fits]),
                             dtype=torch.float64)
    return perspective_residual(points, targets.keypoints, focal, centre).numpy()


def with_perspective_check(choice: PresetChoice, exact_fits: Sequence[Fit],
                           exemplars: Sequence[Exemplar], seconds: float = 0.0
                           ) -> PresetChoice:
    """``choice`` with :attr:`PresetChoice.perspective_median` read from the pilot's
    ``exact_fits`` of ``exemplars`` (``open-prior-exact``, the job's own keys on top):
    the median over people of :func:`~eft.fitting.perspective.perspective_residual`
    through each image's camera (:func:`~eft.fitting.perspective.image_camera`), and
    ``seconds`` added to its time.  Below :data:`EXACT_CAMERA_BELOW` the preset becomes
    ``open-prior-exact`` whatever the first pilot picked (from :data:`MIN_PILOT`
    people).  Below
    :data:`PERSPECTIVE_LABELS_BELOW` (labels exact enough to keep the camera refinement;
    :data:`CAPTURE_CAMERA_BELOW` for motion-capture labels, :func:`capture_labels`,
    which also move the first threshold there) the labels' skeleton offsets are measured
    from the same fits
    (:attr:`PresetChoice.skeleton_offsets`); noisier labels read their annotators'
    scatter and the fitter's bias as offsets (1.7 mm worse at half of COCO's noise)."""
    median = float("nan")
    offsets: tuple = ()
    capture = capture_labels(exemplars)
    if exact_fits:
        targets = _pilot_targets(exemplars)
        median = pilot_statistic(_camera_residuals(targets, exact_fits))
        if median < (CAPTURE_CAMERA_BELOW if capture else PERSPECTIVE_LABELS_BELOW):
            offsets = estimate_skeleton_offsets(  # exact: readable
                targets, exact_fits, min_people=offsets_min_people(capture))
    preset = (pick_with_camera(choice.preset, median, capture) if choice.pilot >= MIN_PILOT
              else choice.preset)
    if preset != choice.preset:
        log.info("eft.preset %s: the pilot's %s fits reproduce the labels through the "
                 "images' cameras to a %s %.4f of the box side (below %.4f%s): the "
                 "labels are exact", AUTO_PRESET, preset, statistic_name(len(exact_fits)),
                 median, CAPTURE_CAMERA_BELOW if capture else EXACT_CAMERA_BELOW,
                 ", for labels of every joint with a spine and a jaw: motion capture"
                 if capture else "")
    return dataclasses.replace(choice, preset=preset, perspective_median=median,
                               skeleton_offsets=offsets, capture=capture,
                               seconds=round(choice.seconds + seconds, 3))


def own_keys(config: EFTConfig) -> dict:
    """The settings of ``config`` that differ from the pilot's recipe (``open-prior``):
    the caller's own keys, kept on top of whichever recipe is chosen."""
    base = eft_preset(AUTO_CHOICES[0])
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(EFTConfig)
            if getattr(config, f.name) != getattr(base, f.name)}


def chosen_recipe(choice: PresetChoice, overrides: dict | None = None) -> EFTConfig:
    """The chosen recipe with ``overrides`` (:func:`own_keys`) on top: ``open-prior-exact``
    without its perspective refinement unless the pilot kept it
    (:attr:`PresetChoice.perspective`; not measured reads as off), with it the torso
    at :data:`MEASURED_TORSO_WEIGHT` where the pilot was large enough to measure the
    labels' skeleton, and with the pilot's
    :attr:`PresetChoice.skeleton_offsets` (an override's own rows win)."""
    overrides = dict(overrides or {})
    if overrides.get("skeleton_offsets") == MEASURE_OFFSETS:  # measured already
        overrides["skeleton_offsets"] = choice.skeleton_offsets
    if choice.preset == AUTO_CHOICES[1]:
        if not choice.perspective:
            overrides = {"perspective_steps": 0, **overrides}
        elif (math.isfinite(choice.perspective_median)
              and choice.pilot >= offsets_min_people(choice.capture)):
            # the pilot could measure the offsets (enough people for each slot)
            overrides = {"perspective_torso_weight": MEASURED_TORSO_WEIGHT, **overrides}
        if choice.skeleton_offsets:
            overrides = {"skeleton_offsets": choice.skeleton_offsets, **overrides}
    return eft_preset(choice.preset, **overrides)


def auto_config(choice: PresetChoice, overrides: dict | None = None) -> EFTConfig:
    """:func:`chosen_recipe`, logged."""
    if choice.preset == AUTO_CHOICES[1]:
        log.info("eft.preset %s: the pilot's %s fits reproduce the labels through the "
                 "images' cameras to a %s %.4f of the box side (kept below %.4f): "
                 "image-camera refinement %s", AUTO_PRESET, choice.preset,
                 statistic_name(choice.pilot), choice.perspective_median, PERSPECTIVE_LABELS_BELOW,
                 "on" if choice.perspective else "off")
        if choice.skeleton_offsets:
            log.info("eft.preset %s: the labels' skeleton places %s away from the body "
                     "model's joints (offsets measured on the pilot); the labels are moved "
                     "back before fitting", AUTO_PRESET,
                     ", ".join(r[0] for r in choice.skeleton_offsets))
    log.info("eft.preset %s: the pilot's %d fits reproduce the labels to a %s %.4f of "
             "the box side, %.4f on the limbs (labels look exact below %.4f or %.4f): %s",
             AUTO_PRESET, choice.pilot, statistic_name(choice.pilot), choice.reproj_median,
             choice.limb_median, EXACT_LABELS_BELOW, EXACT_LIMBS_BELOW, choice.preset)
    return chosen_recipe(choice, overrides)


def with_remeasured_offsets(choice: PresetChoice, exemplars: Sequence[Exemplar],
                            refit: Callable[[EFTConfig], Sequence[Fit]],
                            overrides: dict | None = None) -> PresetChoice:
    """``choice`` with its skeleton offsets measured again from the pilot's people
    ``exemplars`` refitted (``refit(config)`` -> their fits) by the recipe
    :func:`chosen_recipe` makes of it, with the offsets measured so far taken out
    (:func:`~eft.fitting.calibrate.remeasure_skeleton_offsets`).  Only where the pick
    uses them (``open-prior-exact``) and some were measured; else ``choice``.

    For motion-capture labels (:attr:`PresetChoice.capture`) whose image-camera
    refinement the second pilot turned off, the pilot is then fitted once more through
    the cameras with the offsets taken out, and the refinement is kept where those fits
    reproduce the corrected labels below :data:`OFFSETS_CAMERA_BELOW`
    (:attr:`PresetChoice.offsets_camera_median`): a capture skeleton's bones of other
    lengths are what the refinement could not draw, and once its offsets are out it
    resolves depth again.  Where they do not, the offsets are dropped as well: read
    from annotation noise, not from a skeleton.  Where they do, the share of people far
    from them is recorded (:attr:`PresetChoice.far_from_skeleton`; a warning above
    :data:`MIXED_RIGS_SHARE`) and the offsets are measured :data:`CAPTURE_REFITS` more
    times."""
    if choice.preset != AUTO_CHOICES[1] or not choice.skeleton_offsets or not exemplars:
        return choice
    base = chosen_recipe(choice, overrides)
    if "perspective_torso_weight" not in (overrides or {}):
        # measured with the preset's light torso: a body held less firmly to the moved
        # torso labels shows what is left of the offsets (measured under full weight,
        # the refit absorbs it and the second measure reads short)
        base = base.replace(
            perspective_torso_weight=eft_preset(AUTO_CHOICES[1]).perspective_torso_weight)
    targets = _pilot_targets(exemplars)

    def without(r: OffsetRows) -> Sequence[Fit]:  # the pilot refitted with ``r`` out
        return refit(base.replace(skeleton_offsets=r, label_skeleton_keypoints=False))

    people = offsets_min_people(choice.capture)
    rows = remeasure_skeleton_offsets(targets, choice.skeleton_offsets, without,
                                      min_people=people)
    choice = dataclasses.replace(choice, skeleton_offsets=rows)
    if not (choice.capture and rows and not choice.perspective):
        return choice
    # motion-capture labels whose camera refinement is off: with their capture's offsets
    # taken out, do fits through the cameras reproduce the corrected labels closely?
    trial = chosen_recipe(dataclasses.replace(choice, offsets_camera_median=0.0), overrides)
    fits = refit(trial.replace(label_skeleton_keypoints=False))
    points = torch.as_tensor(np.stack([f.keypoints3d for f in fits]), dtype=torch.float64)
    values = _camera_residuals(correct_targets(targets, points, rows), fits)
    median = pilot_statistic(values)
    far = float(np.mean(values > FAR_FROM_SKELETON * median)) if len(values) else 0.0
    log.info("eft.preset %s: with the labels' skeleton offsets taken out, the pilot's fits "
             "through the images' cameras reproduce them to a %s %.4f of the box side "
             "(kept below %.4f): image-camera refinement %s", AUTO_PRESET,
             statistic_name(len(fits)), median, OFFSETS_CAMERA_BELOW,
             "on" if median < OFFSETS_CAMERA_BELOW else "off")
    if not median < OFFSETS_CAMERA_BELOW:  # offsets that do not explain the labels
        log.info("eft.preset %s: the skeleton offsets measured on the pilot leave the "
                 "labels as scattered as annotations: read from noise, not taken out",
                 AUTO_PRESET)
        return dataclasses.replace(choice, offsets_camera_median=median,
                                   skeleton_offsets=())
    if far > MIXED_RIGS_SHARE:
        log.warning("eft.preset %s: %.0f %% of the pilot's people are reproduced more than "
                    "%g times as far as the median once the measured skeleton offsets are "
                    "out: the dataset may mix capture rigs (the offsets are one per "
                    "dataset); give each rig's labels as a dataset of its own",
                    AUTO_PRESET, 100 * far, FAR_FROM_SKELETON)
    # kept: measured once more, from the pilot refitted with them out (each round reads
    # more of a capture skeleton the fitter bent the bodies part of the way toward)
    rows = remeasure_skeleton_offsets(targets, rows, without, refits=CAPTURE_REFITS,
                                      min_people=people) or rows
    return dataclasses.replace(choice, skeleton_offsets=rows, offsets_camera_median=median,
                               far_from_skeleton=far)


def with_capture_probe(choice: PresetChoice, exact_fits: Sequence[Fit],
                       exemplars: Sequence[Exemplar],
                       refit: Callable[[EFTConfig], Sequence[Fit]],
                       overrides: dict | None = None) -> PresetChoice:
    """``choice`` after :func:`with_perspective_check` (from the second pilot's
    ``exact_fits`` of ``exemplars``), probed for motion capture given in slots without
    :data:`CAPTURE_SLOTS` (a studio set's labels converted to COCO-17, LSP-14 or
    MPII-16, or H36M-17 labels missing the odd joint): where at least
    :data:`PROBE_COMPLETE_SHARE` of the people label every slot (:func:`complete_share`),
    the labels are not read as capture already, and the camera measure is below
    :data:`CAPTURE_CAMERA_BELOW`, the labels' skeleton offsets are measured from
    ``exact_fits`` (from ``calibrate.MIN_PEOPLE`` people up) and
    :func:`with_remeasured_offsets` runs as for capture labels.  When its fit through
    the cameras with the offsets out reproduces the corrected labels below
    :data:`CAPTURE_PROBE_BELOW`, the labels are motion capture: that choice
    (``open-prior-exact``, offsets, camera refinement as measured) is returned.  Else
    ``choice`` with only :attr:`PresetChoice.capture_probe_median` recorded.  Unprobed
    labels return ``choice`` as it is; so does a pilot under :data:`MIN_PILOT`."""
    if (choice.capture or choice.pilot < MIN_PILOT or not exact_fits
            or not choice.perspective_median < CAPTURE_CAMERA_BELOW
            or (choice.preset == AUTO_CHOICES[1] and choice.perspective)
            or complete_share(exemplars) < PROBE_COMPLETE_SHARE):
        return choice
    offsets = estimate_skeleton_offsets(_pilot_targets(exemplars), exact_fits)
    if not offsets:
        return choice
    trial = dataclasses.replace(choice, preset=AUTO_CHOICES[1], capture=True,
                                skeleton_offsets=offsets)
    probed = with_remeasured_offsets(trial, exemplars, refit, overrides)
    median = probed.offsets_camera_median
    capture = bool(median < CAPTURE_PROBE_BELOW)
    log.info("eft.preset %s: labels of (nearly) every slot for every person, probed as "
             "motion capture: with their skeleton offsets out, the pilot's fits through the "
             "images' cameras reproduce them to a %s %.4f of the box side (capture below "
             "%.4f): %s", AUTO_PRESET, statistic_name(choice.pilot), median,
             CAPTURE_PROBE_BELOW, "motion capture" if capture else "not motion capture")
    if capture:
        return dataclasses.replace(probed, capture_probe_median=median)
    return dataclasses.replace(choice, capture_probe_median=median)


#: How :func:`run_pilots` fits: ``refit(config, people)`` -> (the fits, the people they
#: are of), in ``people``'s order; a caller that cannot fit some person leaves both out.
PilotRefit = Callable[[EFTConfig, Sequence[Exemplar]],
                      tuple[Sequence[Fit], Sequence[Exemplar]]]


def run_pilots(pilot: Sequence[Exemplar], refit: PilotRefit,
               config: EFTConfig | None = None) -> PresetChoice:
    """Every pilot fit ``"auto"`` makes of the people ``pilot`` (already the pilot sample,
    :func:`pilot_indices`) and the :class:`PresetChoice` they give: ``open-prior``
    (``config``, default the preset, through :func:`pilot_config`) and
    :func:`choose_from_pilot`; whichever that picked, ``open-prior-exact`` with
    ``config``'s own keys (:func:`own_keys`) and :func:`with_perspective_check`;
    :func:`with_capture_probe` on complete labels; and, where skeleton offsets were
    measured for the pick and not by that probe, :func:`with_remeasured_offsets`.
    The one sequence jobs (:mod:`eft.jobs.recipe`, through their worker),
    :func:`~eft.fitting.engine.fit_exemplars` and the benchmarks run."""
    base = config if config is not None else eft_preset(AUTO_CHOICES[0])
    own = own_keys(base)
    t0 = time.perf_counter()
    fits, people = refit(pilot_config(base), pilot)
    choice = choose_from_pilot(fits, people, round(time.perf_counter() - t0, 3))
    if not fits:
        return choice
    t1 = time.perf_counter()  # the second pilot, whichever recipe the first picked
    exact, people = refit(eft_preset(AUTO_CHOICES[1], **own), pilot)
    choice = with_perspective_check(choice, exact, people)

    def again(cfg: EFTConfig) -> Sequence[Fit]:
        return refit(cfg, people)[0]

    choice = with_capture_probe(choice, exact, people, again, own)
    if not (choice.capture and math.isfinite(choice.capture_probe_median)):
        # a third fit, where offsets were measured (a capture probe measured them already)
        choice = with_remeasured_offsets(choice, people, again, own)
    return dataclasses.replace(choice,
                               seconds=round(choice.seconds + time.perf_counter() - t1, 3))
