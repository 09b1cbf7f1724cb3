"""``eft.preset: auto`` (the default with a shipped prior): pick the EFT recipe from how
exact the job's labels are.

Human-annotated labels (COCO, MPII, detector output) are fitted best by ``open-prior``;
labels without annotation noise (projected from motion capture, as a studio set's are)
by ``open-prior-exact``, which fits harder and blends the fit with SMPLify's.  Neither
recipe is right for the other's labels (README, "Labels without annotation noise"):
on exact synthetic labels ``open-prior-exact`` is 4.3 mm PA-MPJPE-14 better, on
annotated ones 3.2 mm worse, and 0.010 worse on COCO's held-out joints.

The two kinds of labels differ in how closely ``open-prior``'s fits reproduce them.
Before anything is fitted, the runner fits a *pilot*: up to :data:`PILOT_SIZE` of the
job's exemplars, spread evenly over all of them sorted by id (every dataset, every
shard, before ``limit``; :func:`pilot_sample`), with ``open-prior`` plus the job's own
``eft`` keys.  If the median reprojection error of the pilot's fits, over the box
side, is below :data:`EXACT_LABELS_BELOW` the job runs ``open-prior-exact``, else
``open-prior`` (each with the job's ``eft`` keys on top).  The pilot is deterministic and never
depends on the shard, the limit, the workers or the devices (it runs on the CPU), so
every shard and every resumed run picks the same recipe, and the resolved config the
job writes names the chosen recipe's settings.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eft.data.exemplar import Exemplar
from eft.fitting.config import EFTConfig, eft_preset

from .config import AUTO_PILOT_PRESET, AUTO_PRESET, JobConfig
from .worker import ChunkTask, WorkerSetup, check_exemplar, run_chunk

__all__ = ["AUTO_PRESET", "AUTO_CHOICES", "EXACT_LABELS_BELOW", "PILOT_SIZE", "RecipeChoice",
           "pilot_sample", "pick_recipe", "choose_recipe", "job_eft_keys", "resolve_auto"]

log = logging.getLogger("eft.jobs")

#: (recipe for annotated labels, recipe for exact labels); the pilot fits with the first.
AUTO_CHOICES: tuple[str, str] = (AUTO_PILOT_PRESET, "open-prior-exact")
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
#: Exemplars in the pilot fit (all of them when the job has fewer).
PILOT_SIZE = 256


@dataclass(frozen=True)
class RecipeChoice:
    """What ``eft.preset: auto`` picked.

    Attributes:
        recipe: the chosen preset, one of :data:`AUTO_CHOICES`.
        pilot: exemplars fitted in the pilot.
        reproj_median: the pilot fits' median reprojection / box side (NaN when no
            pilot fit had one; ``open-prior`` is then chosen).
        seconds: the pilot's wall time.
    """

    recipe: str
    pilot: int
    reproj_median: float
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def pilot_sample(exemplars: Sequence[Exemplar], n: int = PILOT_SIZE) -> list[Exemplar]:
    """Up to ``n`` of the fittable ``exemplars`` (:func:`~eft.jobs.worker.check_exemplar`),
    evenly spaced over them sorted by id, in id order: the same people whatever order
    the datasets list them in."""
    usable = sorted((e for e in exemplars if check_exemplar(e) is None), key=lambda e: e.id)
    if len(usable) <= n:
        return usable
    picks = np.unique(np.linspace(0, len(usable) - 1, n).round().astype(np.int64))
    return [usable[i] for i in picks]


def choose_recipe(config: JobConfig, exemplars: Sequence[Exemplar]) -> RecipeChoice:
    """Fit :func:`pilot_sample` of ``exemplars`` with ``open-prior`` and ``config.eft``'s
    own keys (``config.eft`` is that already), one process on the CPU, and pick the
    recipe from the fits' median reprojection error (:data:`EXACT_LABELS_BELOW`)."""
    t0 = time.perf_counter()
    pilot = pilot_sample(exemplars)
    setup = WorkerSetup(
        run_id="pilot", config_hash="pilot", body=config.body, regressor=config.regressor,
        eft=config.eft, mode=config.mode, batch_size=config.batch_size, seed=config.seed,
        threads=config.threads, devices=("cpu",), slot_dir=None,
        check_images=False)
    part = run_chunk(setup, ChunkTask(index=-1, exemplars=tuple(pilot)))
    recipe, median = pick_recipe(part.columns.quality["reproj_frac_bbox"])
    return RecipeChoice(recipe=recipe, pilot=len(pilot), reproj_median=median,
                        seconds=round(time.perf_counter() - t0, 3))


def pick_recipe(reproj_frac_bbox: Sequence[float] | np.ndarray) -> tuple[str, float]:
    """(recipe, median): the pilot fits' median reprojection / box side (N,) (non-finite
    values left out; NaN when none is left) and the recipe it picks, ``open-prior-exact``
    below :data:`EXACT_LABELS_BELOW`, else ``open-prior``."""
    reproj = np.asarray(reproj_frac_bbox, dtype=np.float64)
    reproj = reproj[np.isfinite(reproj)]
    median = float(np.median(reproj)) if reproj.size else float("nan")
    exact = bool(reproj.size) and median < EXACT_LABELS_BELOW
    return AUTO_CHOICES[int(exact)], median


def job_eft_keys(eft: EFTConfig) -> dict:
    """The ``eft`` settings of an ``auto`` job that differ from the pilot's recipe
    (``open-prior``): the job's own keys, kept on top of whichever recipe is chosen."""
    base = eft_preset(AUTO_PILOT_PRESET)
    return {f.name: getattr(eft, f.name) for f in dataclasses.fields(EFTConfig)
            if getattr(eft, f.name) != getattr(base, f.name)}


def resolve_auto(config: JobConfig,
                 exemplars: Sequence[Exemplar]) -> tuple[JobConfig, RecipeChoice]:
    """``config`` (``eft_auto`` set) with ``eft`` the chosen recipe plus the job's own
    keys (:func:`job_eft_keys`) and ``eft_auto`` cleared, and the :class:`RecipeChoice`
    (:func:`choose_recipe`)."""
    choice = choose_recipe(config, exemplars)
    eft = eft_preset(choice.recipe, **job_eft_keys(config.eft))
    log.info("eft.preset %s: the pilot's %d fits reproduce the labels to a median %.4f of "
             "the box side (labels look exact below %.3f): %s", AUTO_PRESET, choice.pilot,
             choice.reproj_median, EXACT_LABELS_BELOW, choice.recipe)
    return config.replace(eft=eft, eft_auto=False), choice
