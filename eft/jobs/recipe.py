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
(:data:`~eft.fitting.auto.EXACT_CAMERA_BELOW`; for labels of every joint with a spine
and a jaw, as motion capture gives them, :data:`~eft.fitting.auto.CAPTURE_CAMERA_BELOW`)
the labels are exact whatever the first fit read (exact labels of poses the prior finds
hard, such as lying people, or of a capture skeleton the body cannot draw), and under
``open-prior-exact`` the same measure decides whether its refinement under the image's
camera stays on (:data:`~eft.fitting.auto.PERSPECTIVE_LABELS_BELOW`); complete labels
in other slots are probed as motion capture
(:func:`~eft.fitting.auto.with_capture_probe`).  The pilot never
depends on the shard, the limit, the workers, the threads or the devices, so every
shard and every resumed run picks the same recipe, and the resolved config the job
writes names the chosen recipe's settings.

With several datasets the pilot pools those without an ``eft`` of their own, and each
of them is piloted alone as well: one whose own pilot picks other settings (another
recipe, or other skeleton offsets measured on its labels) gets them as its ``eft``
(``recipe_per_dataset``, on by default), so exact studio labels and annotated photos
in one job are each fitted as a job of their own would fit them.  The pilots share
their fits (:class:`PilotFits`): a person in the job's pilot and in their dataset's is
fitted once per recipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eft.data.exemplar import Exemplar
from eft.fitting import exemplar_batch
from eft.fitting.auto import (
    AUTO_CHOICES,
    CAPTURE_CAMERA_BELOW,
    CAPTURE_MIN_PEOPLE,
    CAPTURE_PROBE_BELOW,
    EXACT_CAMERA_BELOW,
    EXACT_LABELS_BELOW,
    EXACT_LIMBS_BELOW,
    MIN_PILOT,
    OFFSETS_CAMERA_BELOW,
    PERSPECTIVE_LABELS_BELOW,
    PILOT_SIZE,
    PresetChoice,
    auto_config,
    chosen_recipe,
    own_keys,
    pilot_indices,
    run_pilots,
    statistic_name,
)
from eft.fitting.calibrate import estimate_skeleton_offsets, remeasure_skeleton_offsets
from eft.fitting.config import MEASURE_OFFSETS, TILTED_REFIT, EFTConfig

from .config import JobConfig
from .sources import Sources
from .store import atomic_write_json
from .worker import ChunkTask, WorkerSetup, check_exemplar, run_chunk

log = logging.getLogger("eft.jobs")

__all__ = ["pilot_sample", "choose_recipe", "recipe_label", "AutoRecipe", "resolve_auto",
           "resolve_offsets", "needs_offsets", "PilotCache", "PilotFits", "PILOT_FILE"]


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


class PilotFits:
    """The pilot fits of one job's resolution, by recipe and person: the pilots of a job
    and of each of its datasets share people (all of them, where the job is small), and
    each person is fitted once per recipe.  A person's fit does not depend on the others
    in its batch (beyond float rounding), and the pilots run in a fixed order, so a
    resumed job reuses the same fits as the run it resumes."""

    def __init__(self) -> None:
        self._done: dict[str, dict[str, object]] = {}

    def fit(self, config: JobConfig, eft: EFTConfig, pilot: Sequence[Exemplar]) -> list:
        """:func:`_fit_pilot` of ``pilot`` with ``eft``, fitting only the people not yet
        fitted with it; records in ``pilot``'s order (people the worker left out have
        none)."""
        done = self._done.setdefault(repr(eft), {})
        todo = [e for e in pilot if e.id not in done]
        if todo:
            for r in _fit_pilot(config, eft, todo):
                done[r.exemplar.id] = r
            for e in todo:
                done.setdefault(e.id, None)  # left out: not tried again
        return [done[e.id] for e in pilot if done[e.id] is not None]


#: The file in a job's folder that keeps its pilots' picks (:class:`PilotCache`).
PILOT_FILE = "pilot.json"
#: Bumped when what a pilot measures or how it picks changes: older picks are refitted.
PILOT_CACHE_VERSION = 3


class PilotCache:
    """The picks of a job's pilots, kept in its folder (:data:`PILOT_FILE`) so a resumed
    run (a shard started again, a job re-run to add a format) reuses them instead of
    fitting the pilot again: the pilot is deterministic (one thread, fixed people), so
    the pick is the same.  Each pick is keyed by everything it depends on: the job's
    fit settings, the body and regressor files' hashes, this eft's version, the pick's
    thresholds and the pilot people's labels and image files (:meth:`key`); any change
    misses and pilots afresh."""

    def __init__(self, identity: dict, picks: dict[str, dict] | None = None) -> None:
        self.identity = identity
        self.picks = dict(picks or {})
        self.changed = False

    @classmethod
    def load(cls, folder: Path, identity: dict) -> PilotCache:
        """The picks in ``folder`` (none when it has no readable file)."""
        try:
            data = json.loads((folder / PILOT_FILE).read_text(encoding="utf-8"))
            picks = data["picks"] if isinstance(data.get("picks"), dict) else {}
        except (OSError, ValueError, AttributeError, KeyError):
            picks = {}
        return cls(identity, picks)

    def key(self, config: JobConfig, pilot: Sequence[Exemplar]) -> str:
        from eft import __version__

        rules = {"exact": [EXACT_LABELS_BELOW, EXACT_LIMBS_BELOW, EXACT_CAMERA_BELOW,
                           CAPTURE_CAMERA_BELOW, CAPTURE_PROBE_BELOW],
                 "perspective": [PERSPECTIVE_LABELS_BELOW, OFFSETS_CAMERA_BELOW],
                 "min_pilot": MIN_PILOT, "capture_min_people": CAPTURE_MIN_PEOPLE,
                 "tilted_refit": TILTED_REFIT}  # the pick's thresholds, in case they move
        h = hashlib.sha256(json.dumps(
            {"version": PILOT_CACHE_VERSION, "eft": __version__, "fit": config.fit_dict(),
             "identity": self.identity, "rules": rules}, sort_keys=True,
            default=str).encode())
        for e in pilot:
            try:  # an image regressor's pilot reads the crops: their files count too
                st = os.stat(e.image_path) if e.image_path else None
                image = [e.image_path, st.st_size, st.st_mtime_ns] if st else e.image_path
            except OSError:
                image = e.image_path
            h.update(json.dumps([e.id, e.source, e.image_size, float(e.scale), e.meta,
                                 image], sort_keys=True, default=str).encode())
            h.update(np.ascontiguousarray(e.keypoints, np.float64).tobytes())
            h.update(np.ascontiguousarray(e.center, np.float64).tobytes())
        return h.hexdigest()

    def get(self, key: str) -> PresetChoice | None:
        found = self.picks.get(key)
        try:
            return PresetChoice.from_dict(found) if isinstance(found, dict) else None
        except (TypeError, ValueError, IndexError):  # an edited file: pilot afresh
            return None

    def put(self, key: str, choice: PresetChoice) -> None:
        self.picks[key] = choice.to_dict()
        self.changed = True

    def save(self, folder: Path) -> None:
        """Write the picks (atomically) when this run added any."""
        if self.changed:
            atomic_write_json(folder / PILOT_FILE, {"picks": self.picks})
            self.changed = False


def choose_recipe(config: JobConfig, exemplars: Sequence[Exemplar],
                  cache: PilotCache | None = None,
                  fits: PilotFits | None = None) -> PresetChoice:
    """Fit :func:`pilot_sample` of ``exemplars`` with ``config.eft`` (``open-prior`` and
    the job's own keys) on one CPU thread (whatever the job's ``threads`` and
    ``devices``, which a resumed run may change) and pick the recipe
    (:func:`~eft.fitting.auto.run_pilots`).  ``fits`` keeps the pilot fits for other
    pilots of the same job (:class:`PilotFits`)."""
    fit = (fits if fits is not None else PilotFits()).fit
    pilot = pilot_sample(exemplars)
    key = ""
    if cache is not None:
        key = cache.key(config, pilot)
        kept = cache.get(key)
        if kept is not None:
            log.info("pilot of %d: reusing this job's earlier pick, %s (same settings "
                     "and people; kept in %s)", kept.pilot, recipe_label(kept), PILOT_FILE)
            return kept

    def refit(eft: EFTConfig, people: Sequence[Exemplar]) -> tuple[list, list]:
        records = fit(config, eft, people)
        return [r.fit for r in records], [r.exemplar for r in records]

    choice = run_pilots(pilot, refit, config.eft)
    if cache is not None:
        cache.put(key, choice)
    return choice


def recipe_label(choice: PresetChoice) -> str:
    """The recipe a choice runs, as the summary names it."""
    if choice.preset == AUTO_CHOICES[1] and not choice.perspective:
        return f"{choice.preset} without its camera refinement"
    return choice.preset


@dataclass(frozen=True)
class AutoRecipe:
    """What ``eft.preset: auto`` made of a job (:func:`resolve_auto`).

    Attributes:
        config: the job with ``eft`` the chosen recipe plus the job's own keys,
            ``eft_auto`` cleared and, under ``recipe_per_dataset``, each dataset whose
            own pilot picks other settings given those as its ``eft``.
        choice: the pilot's pick for the job (its datasets without an ``eft`` of their
            own, pooled).
        otherwise: the datasets of several whose own pilot picks another recipe than
            ``choice``: {dataset: recipe}.
        own: the datasets fitted with their own pilot's settings (other than the job's,
            in the recipe or in what the pilot measured): {dataset: their pick}.
    """

    config: JobConfig
    choice: PresetChoice
    otherwise: dict[str, str] = field(default_factory=dict)
    own: dict[str, PresetChoice] = field(default_factory=dict)

    def summary_dict(self) -> dict:
        """The summary's ``recipe_auto``: the job's pick
        (:meth:`~eft.fitting.auto.PresetChoice.to_dict`, with ``recipe``: the recipe's
        name, :func:`recipe_label`), ``label_skeleton_keypoints``,
        and, where there are any, ``datasets_otherwise`` ({dataset: recipe}) and
        ``datasets`` ({dataset: its own pick, with ``recipe``: the recipe's name})."""
        out = {**self.choice.to_dict(), "recipe": recipe_label(self.choice),
               "label_skeleton_keypoints": self.config.eft.label_skeleton_keypoints}
        if self.otherwise:
            out["datasets_otherwise"] = dict(self.otherwise)
        if self.own:
            out["datasets"] = {name: {**c.to_dict(), "recipe": recipe_label(c)}
                               for name, c in self.own.items()}
        return out


def resolve_auto(config: JobConfig, sources: Sources,
                 cache: PilotCache | None = None) -> AutoRecipe:
    """Resolve ``config`` (``eft_auto`` set): pick the recipe on a pilot of the
    exemplars of the datasets without an ``eft`` of their own (:func:`choose_recipe`)
    and, with several such datasets, on a pilot of each one alone (one of fewer than
    :data:`~eft.fitting.auto.MIN_PILOT` people follows the job's pick).  Under
    ``config.recipe_per_dataset`` a dataset whose own pilot picks other settings than
    the job's is fitted with them (its ``eft``), so a job of several datasets fits
    each as a job of it alone would; else a dataset whose own pilot picks another
    recipe is named in a warning (one recipe fits the job: measured, the minority
    kind loses 17-21 mm on exact labels, 25-30 on annotated ones; docs/exact-labels.md,
    "One job, several datasets")."""
    groups = sources.groups()
    free = [i for i, ds in enumerate(config.datasets) if ds.eft is None]
    pooled = [e for i in free for e in groups[i]] or list(sources.exemplars)
    fits = PilotFits()  # each dataset's pilot reuses the job's fits of its people
    choice = choose_recipe(config, pooled, cache, fits)
    keys = own_keys(config.eft)
    eft = auto_config(choice, keys)
    datasets = list(config.datasets)
    otherwise: dict[str, str] = {}
    own: dict[str, PresetChoice] = {}
    sizes = {i: len(pilot_sample(groups[i])) for i in free}
    piloted = [i for i in free if sizes[i]]
    if len(piloted) >= 2:  # a dataset too small to read follows the job's pick
        for i in piloted:
            if sizes[i] < MIN_PILOT:
                log.info("dataset %s: %d people, too few for a pilot of its own (fewer "
                         "than %d): fitted with the job's recipe, %s", datasets[i].label,
                         sizes[i], MIN_PILOT, recipe_label(choice))
        piloted = [i for i in piloted if sizes[i] >= MIN_PILOT]
    for i in piloted if len(piloted) >= 2 else ():
        ds = datasets[i]
        pick = choose_recipe(config, groups[i], cache, fits)
        if recipe_label(pick) != recipe_label(choice):
            otherwise[ds.label] = recipe_label(pick)
        mine = chosen_recipe(pick, keys)
        if config.recipe_per_dataset and mine != eft:
            datasets[i] = dataclasses.replace(ds, eft=mine)
            own[ds.label] = pick
            log.info("dataset %s: its own pilot of %d picks %s (%s reprojection %.4f, "
                     "limbs %.4f through the cameras; the job's: %s): fitted with it",
                     ds.label, pick.pilot, recipe_label(pick),
                     statistic_name(pick.pilot), pick.reproj_median,
                     pick.perspective_median, recipe_label(choice))
        elif ds.label in otherwise:
            log.warning("dataset %s reads as %s on its own (pilot of %d: %s "
                        "reprojection %.4f, limbs %.4f through the cameras), but the job "
                        "fits all its datasets with %s (recipe_per_dataset: false): fit it "
                        "as a job of its own, or give it its own eft.preset", ds.label,
                        recipe_label(pick), pick.pilot, statistic_name(pick.pilot),
                        pick.reproj_median, pick.perspective_median, recipe_label(choice))
    resolved = config.replace(eft=eft, eft_auto=False, datasets=tuple(datasets))
    return AutoRecipe(config=resolved, choice=choice, otherwise=otherwise, own=own)


def _measured(config: JobConfig, eft: EFTConfig, exemplars: Sequence[Exemplar]) -> EFTConfig:
    """``eft`` with ``skeleton_offsets: measure`` replaced by the offsets measured on
    :func:`pilot_sample` of ``exemplars`` (see :func:`resolve_offsets`)."""
    records = _fit_pilot(config, eft.replace(skeleton_offsets=()), pilot_sample(exemplars))
    people = [r.exemplar for r in records]  # the pilot's people that were fitted

    def refit(rows: tuple) -> list:
        return [r.fit for r in _fit_pilot(
            config, eft.replace(skeleton_offsets=rows, label_skeleton_keypoints=False),
            people)]

    rows: tuple = ()
    if records:
        targets = exemplar_batch(people)
        rows = remeasure_skeleton_offsets(
            targets, estimate_skeleton_offsets(targets, [r.fit for r in records]), refit)
    log.info("eft.skeleton_offsets %s: measured on a pilot of %d: %s", MEASURE_OFFSETS,
             len(records), ", ".join(r[0] for r in rows) or "none large enough")
    return eft.replace(skeleton_offsets=rows)


def resolve_offsets(config: JobConfig, sources: Sources) -> JobConfig:
    """``config`` with ``eft.skeleton_offsets: measure`` (the job's, or a dataset's own)
    replaced by the offsets measured on :func:`pilot_sample` of the exemplars it fits
    (the job's: those of the datasets without an ``eft`` of their own), fitted on one
    CPU thread by that recipe without offsets
    (:func:`~eft.fitting.calibrate.estimate_skeleton_offsets`), then measured again
    from the pilot refitted with them taken out
    (:func:`~eft.fitting.calibrate.remeasure_skeleton_offsets`); the same pilot
    whatever the shard, limit or order, so a resumed run measures the same offsets."""
    groups = sources.groups()
    datasets = list(config.datasets)
    for i, ds in enumerate(datasets):
        if ds.eft is not None and ds.eft.skeleton_offsets == MEASURE_OFFSETS:
            datasets[i] = dataclasses.replace(ds, eft=_measured(config, ds.eft, groups[i]))
    eft = config.eft
    if eft.skeleton_offsets == MEASURE_OFFSETS:
        pooled = [e for i, ds in enumerate(config.datasets) if ds.eft is None
                  for e in groups[i]]
        eft = _measured(config, eft, pooled or sources.exemplars)
    return config.replace(eft=eft, datasets=tuple(datasets))


def needs_offsets(config: JobConfig) -> bool:
    """Whether the job's ``eft`` or a dataset's own says ``skeleton_offsets: measure``."""
    return any(e is not None and e.skeleton_offsets == MEASURE_OFFSETS
               for e in (config.eft, *(ds.eft for ds in config.datasets)))
