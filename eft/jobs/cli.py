"""``eft fit``, ``eft merge`` and ``eft demo``."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eft._argtypes import integer_at_least
from eft.shipped import find_config, shipped_configs

__all__ = ["register"]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.DEBUG
    logger = logging.getLogger("eft")
    logger.setLevel(level)
    if not any(getattr(h, "_eft_jobs", False) for h in logger.handlers):
        handler = _StderrHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._eft_jobs = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    for h in logger.handlers:
        if getattr(h, "_eft_jobs", False):
            h.setLevel(level)


def _overrides(args: argparse.Namespace) -> list[tuple[Sequence[str | int], Any]]:
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .config import parse_override

    out: list[tuple[Sequence[str | int], Any]] = []
    shortcuts = (("output", ["output", "dir"]), ("batch_size", ["batch_size"]),
                 ("workers", ["workers"]), ("backend", ["backend"]),
                 ("scheduler", ["scheduler"]), ("limit", ["limit"]))
    for text in args.set or []:
        out.append(parse_override(text))
    for attr, keys in shortcuts:
        value = getattr(args, attr)
        if value is not None:
            out.append((keys, value))
    if args.device is not None:
        out.append((["devices"], args.device))
    return out


def _fit(args: argparse.Namespace) -> int:
    _setup_logging(args)
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .config import load_config
    from .runner import output_dir_for, run_job
    from .sharding import parse_shard

    path = find_config(args.config)
    config = load_config(path, _overrides(args))
    shard_text = args.shard or config.shard
    shard = parse_shard(shard_text) if shard_text else None
    _check_written_config(Path(path), output_dir_for(config, shard), shard is not None)
    # Workers stopped by Ctrl-C die holding semaphores; Python's resource tracker (a
    # child started with these warning options) frees them and would warn about each
    quiet_tracker = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet_tracker not in sys.warnoptions:
        sys.warnoptions.append(quiet_tracker)
    try:
        with warnings.catch_warnings():
            # joblib's note, when Ctrl-C cancels queued chunks, that they were cancelled
            warnings.filterwarnings("ignore", message=r".*tasks which were still being "
                                    r"processed by the workers have been cancelled")
            result = run_job(config, shard=shard, force=args.force,
                             progress=not args.quiet)
    except KeyboardInterrupt:
        _stop_local_workers()
        print(_interrupted(config, shard), file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"output: {result.output_dir}")
        print(result.summary.format())
    return 0


def _check_written_config(path: Path, folder: Path, sharded: bool) -> None:
    """A job's own ``config.yaml`` (beside its manifest) whose output folder, read from
    the working folder, is another one: run from elsewhere, its relative ``output.dir``
    would start the whole job over in a new folder; one line saying how to resume."""
    from .config import JobConfigError
    from .store import MANIFEST

    here = path.parent
    if path.name != "config.yaml" or not (here / MANIFEST).is_file():
        return
    if folder.resolve() != here.resolve():
        out = here.parent if sharded else here  # a shard's output.dir holds its folder
        raise JobConfigError(
            f"{path} is the config of the job in {here}, but from this working folder it "
            f"names {folder} as its output: run it from the folder it was written from, "
            f"or add -o {out}")


def _stop_local_workers() -> None:
    """End joblib's local worker processes now (they ignore Ctrl-C), releasing their
    semaphores, so that nothing but our one line is printed."""
    if "joblib" not in sys.modules:
        return
    try:
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor  # the running one; never start another
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass


def _interrupted(config, shard) -> str:
    """The one line ``eft fit`` prints on Ctrl-C: what is committed, how to resume."""
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .runner import output_dir_for
    from .store import Manifest

    folder = output_dir_for(config, shard)
    try:
        manifest = Manifest.load(folder)
    except Exception:  # noqa: BLE001 - the report must not fail
        manifest = None
    parts = sorted((folder / "parts").glob("part-*.npz")) if folder.is_dir() else []
    if manifest is None or not parts:
        done = f"nothing committed yet in {folder}"
    else:
        # complete part files (renamed into place) count: a resumed run adopts those
        # the manifest did not list yet
        from .store import JobStoreError, read_part

        listed = {Path(p.file).name: p.n_fits + p.n_failed for p in manifest.parts}
        n = 0
        for p in parts:
            try:
                n += listed[p.name] if p.name in listed else len(read_part(p).ids)
            except JobStoreError:
                pass
        done = (f"{len(parts)} part(s) with {n} of {manifest.n_work or '?'} exemplars "
                f"committed in {folder}")
    return f"eft fit: interrupted; {done}; rerun the same command to resume"


def _merge(args: argparse.Namespace) -> int:
    _setup_logging(args)
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .merge import merge_outputs

    result = merge_outputs(args.inputs, args.output, force=args.force)
    if not args.quiet:
        print(f"merged {len(args.inputs)} output folder(s) into {result.output_dir}")
        print(result.summary.format())
    return 0


def _demo(args: argparse.Namespace) -> int:
    _setup_logging(args)
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .demo import run_demo

    report = run_demo(args.output, n_people=args.people, progress=not args.quiet,
                      seed=args.seed)
    print(report)
    return 0


def _config_show(args: argparse.Namespace) -> int:
    if args.name is None:
        for name, path in shipped_configs().items():
            first = path.read_text(encoding="utf-8").splitlines()[:1]
            about = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
            print(f"{name:32s} {about}"[:120].rstrip())
        return 0
    sys.stdout.write(find_config(args.name).read_text(encoding="utf-8"))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def register(sub) -> None:
    fit = sub.add_parser(
        "fit", help="fit every person of the datasets in a job config (resumable)",
        description="Run (or resume) an EFT job described by a YAML config (see "
                    "fitting/README.md). Re-running the same command after a crash fits "
                    "only what is missing.")
    fit.add_argument("config", help="job config file, e.g. fitting/coco.yaml, or the name of "
                                    "a shipped one (eft config show lists them)")
    fit.add_argument("--shard", metavar="i/N",
                     help="fit shard i of N (0-based; ids hashed) into "
                          "OUTPUT/shard-III-of-NNN, e.g. shard-000-of-008")
    fit.add_argument("-o", "--output", metavar="DIR", help="output folder (output.dir)")
    fit.add_argument("--batch-size", type=int, dest="batch_size", metavar="B",
                     help="exemplars fine-tuned at once (batch_size)")
    fit.add_argument("--device", metavar="DEV",
                     help="cpu, cuda, cuda:1, a comma list for one worker per GPU, or auto")
    fit.add_argument("--workers", type=integer_at_least(1), metavar="N",
                     help="parallel workers")
    fit.add_argument("--backend", choices=("local", "dask"), help="where workers run")
    fit.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="Dask scheduler address")
    fit.add_argument("--limit", type=integer_at_least(1), metavar="N",
                     help="fit only the first N exemplars (by id; of each shard with "
                          "--shard)")
    fit.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override any config key, e.g. --set eft.max_iters=10 (repeatable)")
    fit.add_argument("--force", action="store_true",
                     help="discard results of another configuration in the output folder")
    _common(fit)
    fit.set_defaults(func=_fit)

    merge = sub.add_parser("merge", help="join the output folders of the shards of a job")
    merge.add_argument("inputs", nargs="+", metavar="OUT_DIR", help="shard output folders")
    merge.add_argument("-o", "--output", required=True, metavar="OUT", help="merged folder")
    merge.add_argument("--force", action="store_true",
                       help="merge folders of different configs or incomplete shards")
    _common(merge)
    merge.set_defaults(func=_merge)

    config = sub.add_parser("config", help="the job and training configs shipped with eft")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser(
        "show", help="print a shipped config (coco, mpii, openpose, demo, ...), ready to "
                     "save and edit; without a name, list them")
    show.add_argument("name", nargs="?", default=None,
                      help="e.g. coco, mpii, openpose, demo, training/synthetic_demo")
    show.set_defaults(func=_config_show)

    demo = sub.add_parser(
        "demo",
        help="render, fit and export a small synthetic dataset (no downloads, seconds on CPU)")
    demo.add_argument("-o", "--output", default="annotations/demo", metavar="DIR",
                      help="where the dataset, annotations and overlays go")
    demo.add_argument("--people", type=integer_at_least(1), default=12,
                      help="synthetic people to make")
    demo.add_argument("--seed", type=integer_at_least(0), default=0,
                      help="seed of the people drawn (default 0: the README's figures)")
    _common(demo)
    demo.set_defaults(func=_demo)
