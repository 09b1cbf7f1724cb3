"""``eft merge``: join the output folders of a job's shards into one.

The shards must come from the same config (same config hash, which covers the body
model's and regressor's file contents) and be complete; every shard of the ``N`` should
be there.  Each of these checks can be overridden with ``force``.  The merged folder
holds copies of all parts, a manifest (``shard: null``, ``merged_from``), the union of
the ``skipped.json`` lists and the final files, in id order - the same files an
unsharded run writes (fits equal to float rounding: chunks group exemplars differently).

Merging again into the same folder first marks its manifest incomplete with no parts
(one atomic write), then replaces the parts: an interrupted re-merge leaves a folder
that says it is unfinished, never one whose manifest lists parts that are gone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eft.config_loader import changed_keys

from .config import JobConfigError, config_from_dict, fit_view
from .runner import CONFIG_FILE, JobResult, finish, resolved_config_yaml
from .sharding import parse_shard
from .store import (
    PARTS_DIR,
    SKIPPED,
    SUMMARY,
    JobStoreError,
    Manifest,
    Part,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    job_lock,
    read_part,
)

__all__ = ["merge_outputs"]

log = logging.getLogger("eft.jobs")


def _config_difference(folders: Sequence[Path], manifests: Sequence[Manifest]) -> str:
    """The config mismatch between merge inputs, naming the folders and the first keys
    that differ from the first input's."""
    base = {"fit": fit_view(manifests[0].config), "identity": manifests[0].identity}
    odd = []
    for folder, m in zip(folders[1:], manifests[1:], strict=True):
        if m.config_hash == manifests[0].config_hash:
            continue
        keys = [k.removeprefix("fit.") for k, _, _ in changed_keys(
            base, {"fit": fit_view(m.config), "identity": m.identity})]
        shown = ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "")
        odd.append(f"{folder} differs from {folders[0]} in {shown or 'its config hash'}")
    return (f"they were made with {len({m.config_hash for m in manifests})} different "
            f"configs: {'; '.join(odd)}")


def _load(folder: Path) -> Manifest:
    manifest = Manifest.load(folder)
    if manifest is None:
        raise JobStoreError(f"{folder}: not a job output folder (no manifest.json)")
    return manifest


def merge_outputs(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                  force: bool = False) -> JobResult:
    """Merge shard folders ``inputs`` into ``output``; see the module docstring."""
    t0 = time.perf_counter()
    folders = [Path(p) for p in inputs]
    out = Path(output)
    if any(f.resolve() == out.resolve() for f in folders):
        raise JobConfigError("the merged folder must not be one of the inputs")
    manifests = [_load(f) for f in folders]
    problems = []
    hashes = {m.config_hash for m in manifests}
    if len(hashes) > 1:
        problems.append(_config_difference(folders, manifests))
    incomplete = [str(f) for f, m in zip(folders, manifests, strict=True) if not m.complete]
    if incomplete:
        problems.append(f"unfinished: {', '.join(incomplete)} (re-run their eft fit first)")
    limited = [f"{f} (limit {m.config['limit']})"
               for f, m in zip(folders, manifests, strict=True) if m.config.get("limit")]
    if limited:
        problems.append(f"run with --limit, so they fitted part of their shard only: "
                        f"{', '.join(limited)} (re-run their eft fit without it)")
    shards = [parse_shard(m.shard) if m.shard else None for m in manifests]
    known = [s for s in shards if s is not None]
    if len(known) == len(shards):  # every input is a shard
        counts = {s.count for s in known}
        indices = [s.index for s in known]
        if len(counts) > 1:
            problems.append(f"shards of different splits ({sorted(counts)})")
        elif len(set(indices)) != len(indices):  # their people clash: --force cannot help
            twice = sorted({str(s) for s in known if indices.count(s.index) > 1})
            raise JobStoreError("refusing to merge: a shard is given twice: " + "; ".join(
                f"{t} in " + " and ".join(str(f) for f, s in zip(folders, shards, strict=True)
                                          if str(s) == t) for t in twice))
        else:
            n = counts.pop()
            absent = sorted(set(range(n)) - set(indices))
            if absent:
                problems.append(f"shard(s) {absent} of {n} are missing")
    if problems and not force:
        raise JobStoreError("refusing to merge: " + "; ".join(problems)
                            + " (--force merges anyway)")
    for p in problems:
        log.warning("merging anyway: %s", p)

    first = manifests[0]
    config = config_from_dict(first.config, source=f"{folders[0]}/manifest.json")
    # the merged folder resumes as an unsharded job writing into it (config.yaml)
    config = config.replace(shard=None, limit=None, output=dataclasses.replace(
        config.output, dir=str(out)))
    chash = first.config_hash
    if len(hashes) > 1:  # forced: no one config made these fits, and none resumes them
        chash = "mixed:" + ",".join(sorted(hashes))
    given: list[dict[str, Any]] = [
        {"folder": str(f), "config_hash": m.config_hash, "shard": m.shard}
        for f, m in zip(folders, manifests, strict=True)]
    if len(hashes) > 1:  # the top-level config is the first input's: each says its own
        for entry, m in zip(given, manifests, strict=True):
            entry["config"] = m.config
    made = not out.exists()
    try:
        return _merge_into(out, folders, manifests, config, chash, given, force, t0)
    except BaseException:
        if made and not (out / "manifest.json").exists():  # leave no half-made folder
            shutil.rmtree(out, ignore_errors=True)
        raise


def _merge_into(out: Path, folders: Sequence[Path], manifests: Sequence[Manifest], config,
                chash: str, given: list[dict], force: bool, t0: float) -> JobResult:
    """The body of :func:`merge_outputs`, once the inputs passed (or were forced)."""
    first = manifests[0]
    with job_lock(out):
        existing = Manifest.load(out) if (out / "manifest.json").exists() else None
        if existing is not None and not force and existing.merged_from != [
                str(f) for f in folders]:
            raise JobStoreError(f"{out} already holds another job's results; "
                                "use another -o or --force")
        if existing is not None:
            # first say (atomically) that the folder holds nothing complete: a merge
            # interrupted below never leaves a manifest listing parts that are gone
            existing.complete = False
            existing.parts = []
            existing.outputs, existing.output_sha256 = {}, {}
            existing.save(out)
        shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
        (out / PARTS_DIR).mkdir(parents=True)
        merged = Manifest(config_hash=chash, config=config.to_dict(),
                          identity=first.identity, shard=None,
                          merged_from=[str(f) for f in folders])
        parts: list[Part] = []
        skipped: list[dict] = []
        seen: set[str] = set()
        for folder, manifest in zip(folders, manifests, strict=True):
            for info in manifest.parts:
                part = read_part(folder / info.file)
                clash = seen.intersection(part.ids)
                if clash:
                    raise JobStoreError(f"{folder / info.file}: exemplar {sorted(clash)[0]!r} "
                                        "is also in another input")
                seen.update(part.ids)
                rel = f"{PARTS_DIR}/{Path(info.file).name}"
                with atomic_path(out / rel) as tmp:
                    shutil.copyfile(folder / info.file, tmp)
                merged.add_part(type(info)(**{**info.__dict__, "file": rel}))
                parts.append(part)
            sk = folder / SKIPPED
            if sk.is_file():
                skipped.extend(json.loads(sk.read_text()))
        skipped.sort(key=lambda s: s["id"])
        atomic_write_json(out / SKIPPED, skipped)
        merged.n_work = len(seen)
        merged.save(out)
        # merged output: formats of the first input's config, written into `out`
        summary = finish(out, config, merged, parts, seen, [s["reason"] for s in skipped],
                         first.identity, chash, job_extra={"merged_from": given})
        summary.seconds = round(time.perf_counter() - t0, 3)
        # every shard piloted the whole job alike: its pick is the merged job's
        summary.recipe_auto = first.summary.get("recipe_auto")
        summary.dataset_recipes = dict(first.summary.get("dataset_recipes") or {})
        merged.summary = summary.to_dict()
        merged.save(out)
        atomic_write_json(out / SUMMARY, summary.to_dict())
        atomic_write_bytes(out / CONFIG_FILE, resolved_config_yaml(config, by="eft merge").encode())
    return JobResult(output_dir=out, summary=summary, manifest=merged)
