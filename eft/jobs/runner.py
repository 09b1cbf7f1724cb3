"""Running a job: read, shard, chunk, fit what is missing, commit parts, export.

:func:`run_job` is what ``eft fit`` calls.  The order of things:

1. resolve devices and workers; under ``eft.preset: auto`` (the default with a shipped
   prior) read the datasets and fit a pilot to pick the recipe (:mod:`eft.jobs.recipe`;
   with several datasets, each one's own too);
   hash the settings that decide the fits together with the body model's and
   regressor's file contents (the *config hash*);
2. lock the output folder; if it holds a manifest with another config hash (or another
   shard), refuse - unless ``force``, which clears the folder and starts over;
3. read the datasets, keep the shard's ids (sorted), apply ``limit``, cut into chunks;
4. collect what is committed: listed parts, plus parts renamed but not yet listed (a
   kill between the two steps); temporary files are removed;
5. fit the missing exemplars chunk by chunk - in-process, in local joblib worker
   processes, or on a Dask cluster - committing each chunk's part and the manifest as
   it arrives (a dataset with an ``eft`` of its own is fitted with it: the worker fits
   a chunk's exemplars of each recipe together);
6. write the final annotation files from all parts, in id order, and the summary.

The folder also gets ``config.yaml``: the resolved config of the run (overrides and
defaults filled in); ``eft fit OUT/config.yaml`` resumes it from the same working folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eft._files import blocking_file, file_sha256
from eft.annotations.columns import Columns
from eft.body.model import resolve_model_path
from eft.config_loader import changed_keys
from eft.data.exemplar import Exemplar
from eft.errors import EftError
from eft.fitting.config import TILTED_REFIT, EFTConfig, describe_recipe, preset_name
from eft.models.registry import (
    DEFAULT_SPEC,
    NAMED_PRIORS,
    body_mismatch,
    load_regressor,
    regressor_path,
)

from .config import JobConfig, JobConfigError, fit_view, hash_dict
from .devices import default_workers, resolve_devices
from .export import output_file, provenance_for, write_outputs
from .overlays import write_overlays
from .recipe import AutoRecipe, PilotCache, needs_offsets, resolve_auto, resolve_offsets
from .sharding import Shard, parse_shard, plan_chunks, select_shard
from .sources import Sources, read_sources
from .store import (
    MANIFEST,
    OVERLAYS_DIR,
    PARTS_DIR,
    SKIPPED,
    SUMMARY,
    JobStoreError,
    Manifest,
    Part,
    PartInfo,
    atomic_write_bytes,
    atomic_write_json,
    job_lock,
    part_name,
    read_part,
    remove_temporaries,
    write_part,
)
from .summary import Summary, summarize
from .worker import ChunkTask, WorkerSetup, run_chunk

__all__ = ["JobResult", "run_job", "job_identity", "config_hash_of", "output_dir_for",
           "load_parts", "execute"]

log = logging.getLogger("eft.jobs")


@dataclass
class JobResult:
    """What :func:`run_job` did.

    Attributes:
        output_dir: the folder written.
        summary: :class:`~eft.jobs.summary.Summary`.
        manifest: the final :class:`~eft.jobs.store.Manifest`.
    """

    output_dir: Path
    summary: Summary
    manifest: Manifest


def _body_name(path: Path) -> str:
    """The model's own name (``model_name`` in our .npz files), else the file name."""
    if path.suffix == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as z:
                if "model_name" in z.files:
                    return str(z["model_name"])
        except (OSError, ValueError):
            pass
    return path.name


def job_identity(config: JobConfig) -> dict:
    """Names and sha256 of the body model and regressor files the job uses."""
    try:
        body_path = resolve_model_path(None if config.body == "default" else config.body)
    except EftError as exc:
        raise JobConfigError(f"body: {exc}") from None
    try:
        reg_path = regressor_path(config.regressor)
    except EftError as exc:
        raise JobConfigError(f"regressor: {exc}") from None
    if not reg_path.is_file():
        raise JobConfigError(f"regressor: {reg_path}: no such checkpoint file")
    return {
        "body": {"name": _body_name(body_path), "sha256": file_sha256(body_path)},
        "regressor": {"name": config.regressor, "sha256": file_sha256(reg_path),
                      "hash_of": "file"},
    }


def config_hash_of(config: JobConfig, identity: dict) -> str:
    return hash_dict({"fit": config.fit_dict(), "identity": identity})


def output_dir_for(config: JobConfig, shard: Shard | None) -> Path:
    base = Path(config.output.dir)
    return base / shard.folder if shard is not None and shard.count > 1 else base


def _check_output_dir(folder: Path) -> None:
    """A :class:`JobConfigError` naming ``output.dir`` when ``folder`` or a folder above
    it exists as something other than a folder (a file)."""
    blocked = blocking_file(folder)
    if blocked is not None:
        raise JobConfigError(f"output.dir: {blocked} exists and is not a folder")


def _open_manifest(folder: Path, config: JobConfig, identity: dict, chash: str,
                   shard_text: str | None, force: bool) -> Manifest:
    """The folder's manifest when it is this job's; a fresh one for an empty folder or
    (with ``force``) one written with another config."""
    try:
        manifest = Manifest.load(folder)
    except JobStoreError:
        if not force:
            raise
        manifest = None
    if manifest is not None and manifest.config_hash == chash and manifest.shard == shard_text:
        log.info("resuming into %s (%d committed part(s))", folder, len(manifest.parts))
        return manifest
    if manifest is not None:
        old = {"fit": fit_view(manifest.config),
               "identity": manifest.identity, "shard": manifest.shard}
        new = {"fit": config.fit_dict(), "identity": identity, "shard": shard_text}
        changes = [f"{key}: {a!r} -> {b!r}" for key, a, b in changed_keys(old, new)]
        if not force:
            shown = "; ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")
            raise JobStoreError(
                f"{folder} holds results of another configuration "
                f"({shown or 'config hash differs'}); not resuming. Use another --output, "
                "or --force to discard them and start over")
        log.warning("--force: discarding the results of another configuration in %s",
                    folder)
    _clear(folder, manifest)
    return Manifest(config_hash=chash, config=config.to_dict(), identity=identity,
                    shard=shard_text)


def _clear(folder: Path, manifest: Manifest | None = None) -> None:
    """Remove what a job writes into ``folder``: its parts, manifest and list of skipped
    people, and, where ``manifest`` (the discarded job's) could be read, its summary,
    overlays and the final files it names, so none of another configuration's fits is
    left beside the new ones."""
    shutil.rmtree(folder / PARTS_DIR, ignore_errors=True)
    for name in (MANIFEST, SKIPPED):
        (folder / name).unlink(missing_ok=True)
    if manifest is None:  # not (or no longer) a job's folder: nothing else is ours
        return
    if (manifest.config.get("output") or {}).get("overlays"):  # the old job drew them
        shutil.rmtree(folder / OVERLAYS_DIR, ignore_errors=True)
    finals = [name for name in manifest.outputs.values()
              if isinstance(name, str) and Path(name).name == name]  # in the folder only
    for name in (SUMMARY, *finals):
        (folder / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Committed parts
# ---------------------------------------------------------------------------

def _collect_parts(folder: Path, manifest: Manifest) -> dict[str, Part]:
    """file name -> part for every committed part; adopts unlisted complete parts of
    this config, drops listed parts whose file is gone."""
    parts_dir = folder / PARTS_DIR
    removed = remove_temporaries(parts_dir) + remove_temporaries(folder)
    if removed:
        log.info("removed %d temporary file(s) of an interrupted run", removed)
    listed = {p.file for p in manifest.parts}
    parts: dict[str, Part] = {}
    for info in list(manifest.parts):
        path = folder / info.file
        try:
            parts[info.file] = read_part(path)
        except JobStoreError as exc:
            log.warning("%s; its exemplars will be fitted again", exc)
            manifest.parts = [p for p in manifest.parts if p.file != info.file]
            path.unlink(missing_ok=True)
    if parts_dir.is_dir():
        for path in sorted(parts_dir.glob("part-*.npz")):
            rel = f"{PARTS_DIR}/{path.name}"
            if rel in listed:
                continue
            try:
                part = read_part(path)
            except JobStoreError as exc:
                log.warning("%s; removing it", exc)
                path.unlink(missing_ok=True)
                continue
            if part.config_hash != manifest.config_hash:
                log.warning("%s belongs to another config; removing it", path)
                path.unlink(missing_ok=True)
                continue
            log.info("adopting %s (committed but not yet listed when the last run stopped)",
                     path.name)
            parts[rel] = part
            manifest.add_part(_info(rel, part))
    return parts


def _drop_stale_parts(folder: Path, manifest: Manifest, parts: dict[str, Part],
                      by_id: dict[str, Exemplar]) -> None:
    """Remove from ``parts`` (and the folder and ``manifest``) every part holding a fit
    whose labels (keypoints, image) are no longer those the job reads for its id (the
    dataset was edited since the part was written), or a ``missing_image`` failure
    whose image is there now: its chunk is fitted again rather than resumed with fits
    of the old labels, or without the person."""
    changed: list[str] = []
    found: list[str] = []
    for rel, part in list(parts.items()):
        cols = part.columns
        ids = [str(i) for i in cols.fit_id]
        known = [k for k, i in enumerate(ids) if i in by_id]
        stale: list[str] = []
        if known:
            now = np.stack([np.asarray(by_id[ids[k]].keypoints, np.float64) for k in known])
            was = np.asarray(cols.keypoints2d, np.float64)[known]
            same = ((now == was) | (np.isnan(now) & np.isnan(was))).all(axis=(1, 2))
            stale = [ids[k] for k, ok in zip(known, same, strict=True) if not ok
                     or (cols.image_path[k] or None) != (by_id[ids[k]].image_path or None)]
        back = [f.id for f in part.failures if f.reason == "missing_image"
                and f.id in by_id and Path(by_id[f.id].image_path or "").is_file()]
        if stale or back:
            changed += stale
            found += back
            del parts[rel]
            manifest.parts = [p for p in manifest.parts if p.file != rel]
            (folder / rel).unlink(missing_ok=True)
    if changed:
        log.warning("the labels of %d fitted people changed since they were fitted (e.g. "
                    "%s): fitting their chunks again", len(changed), changed[0])
    if found:
        log.info("%d image(s) missing when their people were tried are there now (e.g. "
                 "%s): fitting their chunks again", len(found), found[0])


def _info(rel: str, part: Part) -> PartInfo:
    return PartInfo(file=rel, chunk=part.chunk, n_fits=part.n_fits,
                    n_failed=len(part.failures),
                    failures=[{"id": f.id, "reason": f.reason, "detail": f.detail}
                              for f in part.failures],
                    seconds=round(part.seconds, 3), device=part.device)


def load_parts(folder: Path, manifest: Manifest) -> list[Part]:
    """Every part the manifest lists."""
    return [read_part(folder / p.file) for p in manifest.parts]


# ---------------------------------------------------------------------------
# Execution backends
# ---------------------------------------------------------------------------

def local_dask_cluster(workers: int):
    """A Dask ``LocalCluster`` of ``workers`` single-threaded worker processes on
    127.0.0.1, started without the ``MALLOC_TRIM_THRESHOLD_=65536`` Dask's nanny gives
    its workers: that setting makes glibc mmap and unmap every large tensor, and EFT ran
    2.6x slower per chunk with it (``scripts/bench_jobs.py``).  The variables
    ``LocalCluster`` writes into this process's environment are taken out again."""
    import dask
    from distributed import LocalCluster

    saved = dict(os.environ)
    try:
        with dask.config.set(
                {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                host="127.0.0.1", dashboard_address=None)
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


def _dask_client(scheduler: str | None, workers: int):
    try:
        from distributed import Client
    except ImportError:
        raise JobConfigError("backend dask needs Dask distributed: "
                             "pip install 'eft[cluster]' (or 'dask[distributed]')") from None
    if scheduler is None:
        cluster = local_dask_cluster(workers)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=30), None
    except OSError as exc:
        raise JobConfigError(f"scheduler: cannot reach the Dask scheduler at {scheduler} "
                             f"({exc})") from None


def execute(tasks: list[ChunkTask], setup: WorkerSetup, backend: str, workers: int,
            scheduler: str | None = None) -> Iterator[Part]:
    """Run ``tasks``, yielding each chunk's part as soon as it is done (any order)."""
    if not tasks:
        return
    if backend == "local" and workers == 1:
        for task in tasks:
            yield run_chunk(setup, task)
        return
    from joblib import Parallel, delayed

    jobs = (delayed(run_chunk)(setup, task) for task in tasks)
    if backend == "local":
        parallel = Parallel(n_jobs=min(workers, len(tasks)), backend="loky",
                            return_as="generator_unordered", pre_dispatch="2*n_jobs")
        yield from parallel(jobs)
        return
    from joblib import parallel_config

    client, cluster = _dask_client(scheduler, workers)
    try:
        with parallel_config(backend="dask", client=client):
            parallel = Parallel(n_jobs=-1, return_as="generator_unordered")
            yield from parallel(jobs)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------

def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="eft fit", unit="ex", disable=not enabled or total == 0,
                dynamic_ncols=True, smoothing=0.1, mininterval=0.5)


#: The resolved config of the run, in the output folder.
CONFIG_FILE = "config.yaml"


def resolved_config_yaml(config: JobConfig, by: str = "eft fit") -> str:
    """``config`` as YAML (every key, defaults filled in) that loads back equal."""
    import yaml

    head = (f"# The resolved config of this job, written by {by} (overrides and defaults "
            "filled in).\n# `eft fit THIS_FILE` from the same working folder resumes it.\n")
    return head + yaml.safe_dump(config.to_dict(), sort_keys=False)


def _read_sources(config: JobConfig) -> Sources:
    """The job's exemplars (:func:`~eft.jobs.sources.read_sources`); an error when the
    datasets hold none that can be fitted, or, under ``check_images``, when a dataset's
    ``image_root`` is not a folder."""
    if config.check_images:
        for i, ds in enumerate(config.datasets):
            if ds.image_root is not None and not Path(ds.image_root).expanduser().is_dir():
                raise JobConfigError(
                    f"datasets[{i}].image_root: {ds.image_root}: no such folder (every "
                    "image would be missing; set check_images: false to fit the "
                    "keypoints alone)")
    sources = read_sources(config.datasets)
    if not sources.exemplars:
        counts = Counter(s.reason for s in sources.skipped)
        shown = ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none read"
        first = next((s for s in sources.skipped if s.detail), None)
        example = f"; e.g. {first.id}: {first.reason}, {first.detail}" if first else ""
        raise EftError(f"no exemplars to fit: the datasets hold none that can be "
                       f"fitted ({len(sources.skipped)} people skipped: {shown}{example})")
    return sources


def _auto_note(auto: AutoRecipe, config: JobConfig) -> str:
    """What a refused resume says under ``eft.preset: auto``: the pick, what it holds,
    and how to resume results fitted with another recipe."""
    choice = auto.choice
    note = ""
    if choice.preset == "open-prior-exact":
        if choice.perspective:
            note = (" (with its image-camera refinement, the torso weighed in "
                    "full once the labels' skeleton is measured; results fitted "
                    "before 2026-12-07 resume with --set eft.preset=open-prior-exact"
                    ", those before 2026-12-06 without the refinement with --set "
                    "eft.preset=open-prior-exact --set eft.perspective_steps=0)")
        if choice.skeleton_offsets:
            note += (" (the labels' skeleton offsets measured on the pilot, the "
                     "written keypoints in the labels' skeleton)")
    elif choice.preset == "open-prior":
        note = (" (with its second fit of people leaning more than "
                f"{config.eft.tilted_above_deg:g} degrees, SMPLify started from "
                "EFT's fit; results fitted before 2026-12-06 without it resume "
                "with --set eft.preset=open-prior --set eft.tilted_above_deg=0, "
                "those fitted on its evening from 60 degrees with --set "
                "eft.tilted_above_deg=60 --set eft.smplify_init=regressor, and "
                "from 30 degrees with --set eft.smplify_init=regressor)")
    if auto.own:
        note += (f" (datasets {', '.join(auto.own)} with their own pilot's "
                 "settings; results of several datasets fitted before 2026-12-07 "
                 "resume with --set recipe_per_dataset=false)")
    return (f"eft.preset auto picked {choice.preset} for these labels{note}; to resume "
            "results fitted with another recipe, name it (e.g. --set "
            "eft.preset=open-prior)")


#: What the shipped keypoint priors read of a label's confidence since 2026-12-07:
#: whether the joint is present (:meth:`eft.models.KeypointRegressor.prepare_input`),
#: where they read the value before.  Recorded in the identity of the jobs this
#: changed: a shipped prior and labels with confidences other than 0 and 1.
KEYPOINT_INPUT = "presence"


def _feeds_soft_confidences(config: JobConfig, sources: Sources) -> bool:
    """Whether the job feeds a shipped keypoint prior labels whose confidence is neither
    0 (missing) nor 1 (a detector's, e.g. an OpenPose file's)."""
    if not (config.regressor == DEFAULT_SPEC or config.regressor in NAMED_PRIORS):
        return False
    for e in sources.exemplars:
        conf = np.asarray(e.keypoints)[:, 2]
        if np.any((conf > 0) & (conf != 1)):
            return True
    return False


def _warn_numeric_changes(before: dict, config: JobConfig) -> None:
    """Warn when a resume fits the rest with other ``threads`` or ``devices`` than the
    committed parts were fitted with: both may move fits at float rounding (~1e-6 in
    the rotations), so the final files then equal neither uninterrupted run bit for bit."""
    now = config.to_dict()
    moved = [f"{k} {before.get(k)!r} -> {now[k]!r}" for k in ("threads", "devices")
             if k in before and before.get(k) != now[k]]
    if moved:
        log.warning("resuming with %s: the people fitted from here on may differ from an "
                    "uninterrupted run at float rounding (about 1e-6)", ", ".join(moved))


def _recipes(config: JobConfig) -> list[EFTConfig]:
    """Every EFT setting the job fits with: its ``eft`` and its datasets' own."""
    return [config.eft, *(ds.eft for ds in config.datasets if ds.eft is not None)]


def _recipe_numbers(config: JobConfig, sources: Sources
                    ) -> tuple[tuple[EFTConfig, ...], dict[str, int]]:
    """The settings of the datasets with an ``eft`` of their own other than the job's
    (:attr:`~eft.jobs.worker.WorkerSetup.recipes`) and the number of each of their
    exemplars ({id: k}, k >= 1; the job's own exemplars are left out: 0)."""
    extra: list[EFTConfig] = []
    recipe_of: dict[str, int] = {}
    groups = sources.groups()
    for i, eft in config.own_recipes():
        if eft not in extra:
            extra.append(eft)
        k = extra.index(eft) + 1
        recipe_of.update((e.id, k) for e in groups[i])
    return tuple(extra), recipe_of


def run_job(config: JobConfig, *, shard: Shard | None = None, force: bool = False,
            progress: bool = True) -> JobResult:
    """Run (or resume) a job; see the module docstring.

    Args:
        config: the job.
        shard: this process's shard (overrides ``config.shard``), or None for the
            config's (the whole job where it names none).
        force: start over in an output folder written with another config.
        progress: show a tqdm bar.
    """
    t0 = time.perf_counter()
    if shard is None and config.shard is not None:
        shard = parse_shard(config.shard)
    # the config.yaml written names the shard, so `eft fit` of it resumes this shard
    config = config.replace(shard=None if shard is None else str(shard))
    devices = resolve_devices(config.devices)
    workers = config.workers or default_workers(devices)
    if config.backend == "local" and workers > (os.cpu_count() or 1) and devices == ["cpu"]:
        log.warning("%d workers on %d CPU cores", workers, os.cpu_count() or 1)
    identity = job_identity(config)
    folder = output_dir_for(config, shard)
    _check_output_dir(folder)
    # held from before the datasets are read and the pilot fitted: a second job on this
    # folder is told at once, not after minutes of piloting
    with job_lock(folder):
        pilots = PilotCache.load(folder, identity)
        sources = _read_sources(config)  # the pilots and the identity need the exemplars
        auto = None
        if config.eft_auto:
            auto = resolve_auto(config, sources, pilots)
            config = auto.config
        if needs_offsets(config):  # a recipe named by hand
            config = resolve_offsets(config, sources)
        if any(e.tilted_above_deg > 0 for e in _recipes(config)):
            # the refit's settings decide those people's fits
            identity = {**identity, "tilted_refit": dict(TILTED_REFIT)}
        if _feeds_soft_confidences(config, sources):
            identity = {**identity, "keypoint_input": KEYPOINT_INPUT}
        mismatch = body_mismatch(load_regressor(config.regressor), identity["body"]["name"])
        if mismatch:
            log.warning("%s", mismatch)
        chash = config_hash_of(config, identity)
        shard_text = None if shard is None or shard.count == 1 else str(shard)
        pilots.save(folder)  # the picks, for a resumed run (kept through --force: keyed)
        try:
            manifest = _open_manifest(folder, config, identity, chash, shard_text, force)
        except JobStoreError as exc:
            notes = []
            if "keypoint_input" in identity:
                notes.append(
                    "The labels carry confidences between 0 and 1: since 2026-12-07 the "
                    "keypoint prior reads them as present, and fits made before read the "
                    "value itself (about 3 mm worse with a detector's confidences): refit "
                    "such results with --force.")
            if auto is not None:
                notes.append(_auto_note(auto, config))
            if not notes:
                raise
            raise JobStoreError(f"{exc}. " + " ".join(notes)) from None
        by_id = {e.id: e for e in sources.exemplars}
        ids = select_shard(by_id, shard)
        if config.limit is not None:
            ids = ids[:config.limit]
        work = set(ids)
        skipped = sorted((s for s in sources.skipped if shard is None or shard.contains(s.id)),
                         key=lambda s: s.id)  # id order, as a merge of shards writes it
        atomic_write_json(folder / SKIPPED, [{"id": s.id, "reason": s.reason,
                                              "detail": s.detail} for s in skipped])
        parts = _collect_parts(folder, manifest)
        _drop_stale_parts(folder, manifest, parts, by_id)
        done = {i for p in parts.values() for i in p.ids}
        chunks = plan_chunks(ids, config.chunk_size)
        recipes, recipe_of = _recipe_numbers(config, sources)
        tasks = []
        for k, chunk in enumerate(chunks):
            todo = tuple(by_id[i] for i in chunk if i not in done)
            if todo:
                tasks.append(ChunkTask(index=k, exemplars=todo, recipes=tuple(
                    recipe_of.get(e.id, 0) for e in todo) if recipe_of else ()))
        up_to_date = (manifest.complete and not tasks and manifest.n_work == len(ids)
                      and manifest.config.get("output") == config.to_dict()["output"]
                      and set(manifest.outputs) == set(config.output.formats))
        if up_to_date:
            damaged = manifest.damaged_outputs(folder)
            if damaged:
                log.warning("final file(s) %s differ from what this job wrote (missing, "
                            "truncated or edited); writing them again", ", ".join(damaged))
                up_to_date = False
        if done and tasks:
            _warn_numeric_changes(manifest.config, config)
        manifest.config = config.to_dict()  # this run's settings (runtime keys may differ)
        manifest.n_work = len(ids)
        manifest.complete = False
        manifest.save(folder)
        atomic_write_bytes(folder / CONFIG_FILE, resolved_config_yaml(config).encode())
        n_todo = sum(len(t.exemplars) for t in tasks)
        log.info("%d exemplars in %d chunks: %d to fit, %d already committed; %d worker(s), "
                 "backend %s, devices %s", len(ids), len(chunks), n_todo,
                 len(ids) - n_todo, min(workers, max(len(tasks), 1)), config.backend,
                 ",".join(devices))

        run_id = uuid.uuid4().hex
        slot_dir = None
        if not (config.backend == "local" and workers == 1):
            slot_dir = os.path.join(tempfile.gettempdir(), f"eft-slots-{run_id}")
        setup = WorkerSetup(
            run_id=run_id, config_hash=chash, body=config.body, regressor=config.regressor,
            eft=config.eft, mode=config.mode, batch_size=config.batch_size, seed=config.seed,
            threads=config.threads, devices=tuple(devices), slot_dir=slot_dir,
            check_images=config.check_images, recipes=recipes)
        fitted_now, fit_seconds = 0, 0.0
        (folder / PARTS_DIR).mkdir(parents=True, exist_ok=True)
        try:
            with _progress(n_todo, progress) as bar:
                for part in execute(tasks, setup, config.backend, workers, config.scheduler):
                    rel = f"{PARTS_DIR}/{part_name(part.chunk, part.ids)}"
                    write_part(folder / rel, part)
                    manifest.add_part(_info(rel, part))
                    manifest.save(folder)
                    parts[rel] = part
                    fitted_now += part.n_fits
                    fit_seconds += part.seconds
                    bar.update(len(part.ids))
                    log.debug("committed %s: %d fits, %d failed, %.1f s on %s", rel,
                              part.n_fits, len(part.failures), part.seconds, part.device)
        finally:
            if slot_dir is not None:
                shutil.rmtree(slot_dir, ignore_errors=True)

        summary = finish(folder, config, manifest, parts.values(), work,
                         [s.reason for s in skipped], identity, chash,
                         write=not up_to_date)
        summary.recipe_auto = None if auto is None else auto.summary_dict()
        summary.dataset_recipes = {config.datasets[i].label: describe_recipe(eft)
                                   for i, eft in config.own_recipes()}
        if up_to_date:
            log.info("nothing to do: every exemplar is fitted and the final files are "
                     "up to date")
        summary.fitted_this_run = fitted_now
        summary.fit_seconds = round(fit_seconds, 3)
        summary.seconds = round(time.perf_counter() - t0, 3)
        manifest.summary = summary.to_dict()
        manifest.save(folder)
        atomic_write_json(folder / SUMMARY, summary.to_dict())
    return JobResult(output_dir=folder, summary=summary, manifest=manifest)


def finish(folder: Path, config: JobConfig, manifest: Manifest, parts: Iterable[Part],
           work: set[str], skipped_reasons: list[str], identity: dict,
           chash: str, write: bool = True, job_extra: dict | None = None) -> Summary:
    """Gather the fits of ``work`` from ``parts`` (sorted by id), write the final files
    (unless ``write`` is False: they are up to date) and mark the manifest complete.
    ``job_extra``: more keys for the files' provenance ``job`` (a merge's inputs)."""
    failures, seen = {}, set()
    ordered = sorted(parts, key=lambda p: (p.chunk, min(p.ids, default="")))
    columns = Columns.concat([p.columns for p in ordered])
    rows: list[int] = []  # rows of `columns`: the first committed fit of each id
    offset = 0
    for part in ordered:
        for i, fid in enumerate(part.columns.fit_id):
            if fid in work and fid not in seen:
                rows.append(offset + i)
                seen.add(fid)
        offset += part.n_fits
        for fail in part.failures:
            if fail.id in work and fail.id not in seen:
                failures[fail.id] = fail
                seen.add(fail.id)
    missing = work - seen
    if missing:  # pragma: no cover - every chunk was run above
        raise JobStoreError(f"{len(missing)} exemplars have no committed result")
    picked = np.asarray(rows, np.int64)
    columns = columns.take(picked[np.argsort(columns.fit_id[picked], kind="stable")])
    outputs = {}
    if not write:
        outputs = {fmt: str(folder / name) for fmt, name in manifest.outputs.items()}
    elif config.output.formats:
        provenance = provenance_for(config, identity, chash, manifest.shard, extra=job_extra)
        outputs = write_outputs(folder, config, columns, provenance)
    if config.output.overlays and write:
        records = columns.to_annotations()
        write_overlays(folder / OVERLAYS_DIR, config.body, [a.fit for a in records],
                       [a.exemplar for a in records], config.output.overlays)
    manifest.complete = True
    manifest.outputs = {fmt: Path(p).name for fmt, p in outputs.items()}
    if write:
        manifest.record_outputs(folder)
    return summarize(len(work), columns, [failures[i] for i in sorted(failures)],
                     skipped_reasons, outputs=outputs, recipe=preset_name(config.eft))


__all__ += ["finish", "output_file"]
