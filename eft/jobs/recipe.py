"""``eft.preset: auto`` in a job (the default with a shipped prior): the recipe picked
by a pilot fit of the job's own people (:mod:`eft.fitting.auto`).

Before anything is fitted, the runner fits the pilot: up to
:data:`~eft.fitting.auto.PILOT_SIZE` of the job's fittable exemplars, spread evenly
over all of them sorted by id (every dataset, every shard, before ``limit``;
:func:`pilot_sample`), with ``open-prior`` plus the job's own ``eft`` keys, through the
job's own worker (:func:`~eft.jobs.worker.run_chunk`: image crops for an image
regressor, bad exemplars left out), in this process on one CPU thread.  If the pilot's
fits reproduce the labels closely enough (:func:`~eft.fitting.auto.pick_preset`) the
job runs ``open-prior-exact``, else ``open-prior`` (each with the job's ``eft`` keys on
top).  Then the pilot is fitted once more, with ``open-prior-exact``: where those fits
reproduce the labels through each image's camera closely enough
(:data:`~eft.fitting.auto.EXACT_CAMERA_BELOW`) the labels are exact whatever the first
fit read (exact labels of poses the prior finds hard, such as lying people), and under
``open-prior-exact`` the same measure decides whether its refinement under the image's
camera stays on (:data:`~eft.fitting.auto.PERSPECTIVE_LABELS_BELOW`).  The pilot never
depends on the shard, the limit, the workers, the threads or the devices, so every
shard and every resumed run picks the same recipe, and the resolved config the job
writes names the chosen recipe's settings.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

from eft.data.exemplar import Exemplar
from eft.fitting import exemplar_batch
from eft.fitting.auto import (
    AUTO_CHOICES,
    PILOT_SIZE,
    PresetChoice,
    auto_config,
    choose_from_pilot,
    own_keys,
    pilot_config,
    pilot_indices,
    with_perspective_check,
    with_remeasured_offsets,
)
from eft.fitting.calibrate import estimate_skeleton_offsets, remeasure_skeleton_offsets
from eft.fitting.config import MEASURE_OFFSETS, EFTConfig, eft_preset

from .config import JobConfig
from .worker import ChunkTask, WorkerSetup, check_exemplar, run_chunk

log = logging.getLogger("eft.jobs")

__all__ = ["pilot_sample", "choose_recipe", "disagreeing_datasets", "resolve_auto",
           "resolve_offsets"]


def pilot_sample(exemplars: Sequence[Exemplar], n: int = PILOT_SIZE) -> list[Exemplar]:
    """The pilot: :func:`~eft.fitting.auto.pilot_indices` of the fittable ``exemplars``
    (:func:`~eft.jobs.worker.check_exemplar`), in id order."""
    usable = [e for e in exemplars if check_exemplar(e) is None]
    return [usable[int(i)] for i in pilot_indices([e.id for e in usable], n)]


def _fit_pilot(config: JobConfig, eft: EFTConfig, pilot: Sequence[Exemplar]) -> list:
    """The annotation records of ``pilot`` fitted with ``eft`` (the job's body, regressor,
    mode and batch size) on one CPU thread, whatever the job's ``threads`` and
    ``devices``, which a resumed run may change."""
    setup = WorkerSetup(
        run_id="pilot", config_hash="pilot", body=config.body, regressor=config.regressor,
        eft=eft, mode=config.mode, batch_size=config.batch_size, seed=config.seed,
        threads=1, devices=("cpu",), slot_dir=None, check_images=False)
    return run_chunk(setup, ChunkTask(index=-1, exemplars=tuple(pilot))).columns \
        .to_annotations()


def choose_recipe(config: JobConfig, exemplars: Sequence[Exemplar]) -> PresetChoice:
    """Fit :func:`pilot_sample` of ``exemplars`` with ``config.eft`` (``open-prior`` and
    the job's own keys) on one CPU thread (whatever the job's ``threads`` and
    ``devices``, which a resumed run may change) and pick the recipe
    (:func:`~eft.fitting.auto.choose_from_pilot`, then
    :func:`~eft.fitting.auto.with_perspective_check` on a second pilot fit with
    ``open-prior-exact``, and, where that measured skeleton offsets for it,
    :func:`~eft.fitting.auto.with_remeasured_offsets` on a third)."""
    t0 = time.perf_counter()
    pilot = pilot_sample(exemplars)
    records = _fit_pilot(config, pilot_config(config.eft), pilot)
    choice = choose_from_pilot([r.fit for r in records], [r.exemplar for r in records],
                               round(time.perf_counter() - t0, 3))
    if records:  # the second pilot, whichever recipe the first picked
        chosen = eft_preset(AUTO_CHOICES[1], **own_keys(config.eft))
        t1 = time.perf_counter()
        done = _fit_pilot(config, chosen, pilot)
        people = [r.exemplar for r in done]
        choice = with_perspective_check(choice, [r.fit for r in done], people)
        choice = with_remeasured_offsets(  # a third pilot fit, where offsets were measured
            choice, people, lambda eft: [r.fit for r in _fit_pilot(config, eft, people)],
            own_keys(config.eft))
        choice = dataclasses.replace(
            choice, seconds=round(choice.seconds + time.perf_counter() - t1, 3))
    return choice


def _label(choice: PresetChoice) -> str:
    """The recipe a choice runs, as the summary names it."""
    if choice.preset == AUTO_CHOICES[1] and not choice.perspective:
        return f"{choice.preset} without its camera refinement"
    return choice.preset


def disagreeing_datasets(config: JobConfig, exemplars: Sequence[Exemplar],
                         per_dataset: Sequence[tuple[str, int, int]],
                         choice: PresetChoice) -> list[tuple[str, PresetChoice]]:
    """The datasets of a job of several whose own pilot (:func:`choose_recipe` on their
    exemplars alone; ``per_dataset``: (name, exemplars, skipped) in reading order, as
    :class:`~eft.jobs.sources.Sources` lists them) picks another recipe than the job's
    ``choice``, with their choices.  A job fits every dataset with one recipe, so
    exact labels mixed with annotated ones get the recipe of whichever the pilot reads
    (measured: the minority kind loses 17-21 mm on exact labels, 25-30 on annotated
    ones; docs/exact-labels.md, "One job, one recipe")."""
    if sum(1 for _, n, _ in per_dataset if n) < 2:
        return []
    out, start = [], 0
    for name, n, _ in per_dataset:
        group, start = exemplars[start:start + n], start + n
        if not pilot_sample(group):
            continue
        own = choose_recipe(config, group)
        if _label(own) != _label(choice):
            out.append((name, own))
    return out


def resolve_auto(config: JobConfig, exemplars: Sequence[Exemplar],
                 per_dataset: Sequence[tuple[str, int, int]] = ()
                 ) -> tuple[JobConfig, PresetChoice, dict[str, str]]:
    """``config`` (``eft_auto`` set) with ``eft`` the chosen recipe plus the job's own
    keys (:func:`~eft.fitting.auto.own_keys`) and ``eft_auto`` cleared, the
    :class:`~eft.fitting.auto.PresetChoice` (:func:`choose_recipe`), and, with several
    datasets (``per_dataset``, as :class:`~eft.jobs.sources.Sources` lists them), each
    one whose own pilot picks another recipe, named in a warning: ``{dataset: the
    recipe it reads as}`` (:func:`disagreeing_datasets`)."""
    choice = choose_recipe(config, exemplars)
    odd = disagreeing_datasets(config, exemplars, per_dataset, choice)
    for name, own in odd:
        log.warning("dataset %s reads as %s on its own (pilot of %d: median reprojection "
                    "%.4f, limbs %.4f through the cameras), but the job fits all its "
                    "datasets with %s: fit it as a job of its own, or name eft.preset",
                    name, _label(own), own.pilot, own.reproj_median,
                    own.perspective_median, _label(choice))
    eft = auto_config(choice, own_keys(config.eft))
    return (config.replace(eft=eft, eft_auto=False), choice,
            {name: _label(own) for name, own in odd})


def resolve_offsets(config: JobConfig, exemplars: Sequence[Exemplar]) -> JobConfig:
    """``config`` with ``eft.skeleton_offsets: measure`` replaced by the offsets measured
    on :func:`pilot_sample` of ``exemplars``, fitted on one CPU thread by the job's
    recipe without offsets (:func:`~eft.fitting.calibrate.estimate_skeleton_offsets`),
    then measured again from the pilot refitted with them taken out
    (:func:`~eft.fitting.calibrate.remeasure_skeleton_offsets`); the same pilot
    whatever the shard, limit or order, so a resumed run measures the same offsets."""
    records = _fit_pilot(config, config.eft.replace(skeleton_offsets=()),
                         pilot_sample(exemplars))
    people = [r.exemplar for r in records]  # the pilot's people that were fitted

    def refit(rows: tuple) -> list:
        eft = config.eft.replace(skeleton_offsets=rows, label_skeleton_keypoints=False)
        return [r.fit for r in _fit_pilot(config, eft, people)]

    rows: tuple = ()
    if records:
        targets = exemplar_batch(people)
        rows = remeasure_skeleton_offsets(
            targets, estimate_skeleton_offsets(targets, [r.fit for r in records]), refit)
    log.info("eft.skeleton_offsets %s: measured on a pilot of %d: %s", MEASURE_OFFSETS,
             len(records), ", ".join(r[0] for r in rows) or "none large enough")
    return config.replace(eft=config.eft.replace(skeleton_offsets=rows))
