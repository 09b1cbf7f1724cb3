"""Benchmark batch fitting jobs end to end: read -> fit -> write, three ways.

    python scripts/bench_jobs.py [--n 1000] [--max-iters 20] [--batch-size 64]
                                 [--chunk-size 128] [--workdir DIR]

The dataset is ``eft demo``'s: ``--n`` synthetic people rendered with the open body
model into PNGs plus a COCO ``person_keypoints`` JSON (``eft.jobs.demo.make_demo_dataset``).
The same job (``eft.jobs.run_job``, COCO reader, shipped keypoint prior, EFT, every
image decoded by the ``check_images`` rule, final eft-json + h5 files) then runs

* ``local x1``  - one worker, in this process (what ``eft fit`` does with ``workers: 1``);
* ``local x2``  - two joblib loky worker processes;
* ``dask x2``   - a Dask ``LocalCluster`` of two single-threaded worker processes on
  127.0.0.1, reached through ``backend: dask`` + ``scheduler: tcp://...``
  (cluster start-up timed separately).

Each worker uses 1 torch thread (``threads: 1``).  The reference is *pure fitting*: the
same exemplars fitted in this process by ``eft.fitting.fit_exemplars`` with the same EFT
settings and batch size, no reading, no job machinery, no writing.  The script also times
the cold start of a worker (a fresh Python importing torch + eft and loading the body
model and regressor) and the pickling of a chunk task and of its result.

Writes scripts/results/bench_jobs.json and bench_jobs.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

#: (label, backend, workers) of the three job runs.
WAYS = (("local x1", "local", 1), ("local x2", "local", 2), ("dask x2", "dask", 2))

_COLD_START = r"""
import json, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(1)
import eft.jobs.worker as w
t1 = time.perf_counter()
body, model = w._body("open"), w._model("default", "cpu")
t2 = time.perf_counter()
from eft.synthetic.pose_bank import load_pose_bank
from eft.synthetic.exemplars import generate
from eft.fitting import EFTConfig, fit_exemplars
ex = list(generate(load_pose_bank().val().poses, 16, 0).exemplars())
cfg = EFTConfig(max_iters=MAX_ITERS)
calls = []
for _ in range(2):
    t = time.perf_counter()
    fit_exemplars(ex, model, body, cfg, batch_size=16, progress=False)
    calls.append(time.perf_counter() - t)
print(json.dumps({"import_s": t1 - t0, "load_models_s": t2 - t1,
                  "first_fit_extra_s": calls[0] - calls[1]}))
"""


class _Clock(logging.Handler):
    """Keeps (perf_counter, message) of every ``eft.jobs`` log record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.perf_counter(), record.getMessage()))

    def first(self, prefix: str) -> float | None:
        return next((t for t, m in self.records if m.startswith(prefix)), None)

    def last(self, prefix: str) -> float | None:
        return next((t for t, m in reversed(self.records) if m.startswith(prefix)), None)


def job_dict(dataset_json: Path, out: Path, args, backend: str, workers: int,
             scheduler: str | None = None) -> dict:
    return {
        "datasets": [{"kind": "coco", "path": str(dataset_json),
                      "image_root": str(dataset_json.parent / "images"), "name": "bench",
                      "split": "synthetic"}],
        "body": "open",
        "regressor": "default",
        "eft": {"max_iters": args.max_iters},
        "output": {"dir": str(out), "formats": ["eft-json", "h5"], "name": "fits"},
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "devices": ["cpu"],
        "workers": workers,
        "threads": 1,
        "backend": backend,
        "scheduler": scheduler,
    }


def make_dataset(folder: Path, n: int, seed: int) -> tuple[Path, float, bool]:
    """The rendered COCO dataset in ``folder`` (reused when it was made with the same
    ``n`` and ``seed``); returns (json path, seconds, reused)."""
    from eft.jobs.demo import DEMO_JSON, make_demo_dataset

    marker = folder / "bench_dataset.json"
    want = {"n_people": n, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == want \
            and (folder / DEMO_JSON).is_file():
        return folder / DEMO_JSON, 0.0, True
    t = time.perf_counter()
    path, _ = make_demo_dataset(folder, n_people=n, seed=seed)
    seconds = time.perf_counter() - t
    marker.write_text(json.dumps(want))
    return path, seconds, False


def cold_start(max_iters: int) -> dict:
    """What a fresh worker process pays once: interpreter + imports + model loading, and
    the extra time of its first EFT call (16 exemplars, fitted twice)."""
    code = _COLD_START.replace("MAX_ITERS", str(max_iters))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"process_wall_s": round(wall, 3), "import_s": round(inner["import_s"], 3),
            "load_models_s": round(inner["load_models_s"], 3),
            "first_fit_extra_s": round(inner["first_fit_extra_s"], 3)}


def pure_fit(config) -> tuple[dict, list]:
    """The job's exemplars (read here, sorted by id as the job does) fitted in-process
    by ``fit_exemplars``; only the fitting call is timed."""
    import torch

    from eft.body import BodyModel
    from eft.fitting import fit_exemplars
    from eft.jobs.sources import read_sources
    from eft.models import load_regressor

    t = time.perf_counter()
    sources = read_sources(config.datasets)
    read_s = time.perf_counter() - t
    exemplars = sorted(sources.exemplars, key=lambda e: e.id)
    body = BodyModel.load(None if config.body == "default" else config.body)
    model = load_regressor(config.regressor, map_location="cpu")
    torch.manual_seed(config.seed)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    fits = fit_exemplars(exemplars, model, body, config.eft, mode=config.mode,
                         batch_size=config.batch_size, progress=False)
    seconds = time.perf_counter() - t
    return {"exemplars": len(exemplars), "fitted": len(fits), "seconds": round(seconds, 3),
            "exemplars_per_s": round(len(fits) / seconds, 2),
            "accepted": int(sum(f.quality.accepted for f in fits)),
            "skipped_by_reader": len(sources.skipped),
            "read_dataset_s": round(read_s, 3), "loadavg_1min": round(load, 2)}, exemplars


def start_cluster(workers: int):
    """A LocalCluster of ``workers`` single-threaded processes on 127.0.0.1, started the
    way ``eft fit --backend dask`` starts its own (:func:`eft.jobs.runner.local_dask_cluster`,
    which leaves out Dask's ``MALLOC_TRIM_THRESHOLD_``: with it, EFT ran 2.6x slower per
    chunk)."""
    from eft.jobs.runner import local_dask_cluster

    return local_dask_cluster(workers)


def run_way(label: str, config, clock: _Clock) -> dict:
    from eft.jobs import run_job

    clock.records.clear()
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = run_job(config, progress=False)
    wall = time.perf_counter() - t0
    s = result.summary
    t_plan = next((t for t, m in clock.records if " chunks: " in m), None)
    t_first = clock.first("committed ")
    t_last = clock.last("committed ")
    n = s.fitted_this_run + s.failed
    phases = {}
    if t_plan and t_first and t_last:
        phases = {"setup_read_s": round(t_plan - t0, 3),
                  "first_part_s": round(t_first - t_plan, 3),
                  "fit_s": round(t_last - t_plan, 3),
                  "export_s": round(t0 + wall - t_last, 3)}
    print(f"  {label}: {n} exemplars in {wall:.1f} s = {n / wall:.1f} ex/s "
          f"({phases})", flush=True)
    return {"way": label, "backend": config.backend, "workers": config.workers,
            "exemplars": n, "fitted": s.fitted, "accepted": s.accepted,
            "failed": s.failed, "wall_s": round(wall, 3),
            "exemplars_per_s": round(n / wall, 2),
            "worker_fit_s_summed": s.fit_seconds, "phases": phases,
            "parts": len(result.manifest.parts),
            "part_seconds": sorted(round(p.seconds, 2) for p in result.manifest.parts),
            "loadavg_1min": round(load, 2),
            "output_dir": str(result.output_dir)}


def serialisation(out_dir: Path, exemplars: list, config) -> dict:
    """Pickled size and time of what crosses process boundaries per chunk: the task
    (setup + exemplars) out, the part (fits + exemplars) back."""
    from eft.jobs import read_part
    from eft.jobs.worker import ChunkTask, WorkerSetup

    parts = [read_part(p) for p in sorted((out_dir / "parts").glob("part-*.npz"))]
    setup = WorkerSetup(run_id="x", config_hash="x", body=config.body,
                        regressor=config.regressor, eft=config.eft, mode=config.mode,
                        batch_size=config.batch_size, seed=config.seed, threads=1,
                        devices=("cpu",), slot_dir=None, check_images=True)
    tasks = [ChunkTask(index=k, exemplars=tuple(exemplars[i:i + config.chunk_size]))
             for k, i in enumerate(range(0, len(exemplars), config.chunk_size))]
    out = {}
    for name, objs in (("task", [(setup, t) for t in tasks]), ("part", parts)):
        t = time.perf_counter()
        blobs = [pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL) for o in objs]
        dump_s = time.perf_counter() - t
        t = time.perf_counter()
        for b in blobs:
            pickle.loads(b)
        load_s = time.perf_counter() - t
        n = len(exemplars)
        out[name] = {"bytes_per_exemplar": round(sum(map(len, blobs)) / n),
                     "dumps_loads_ms_per_1k": round((dump_s + load_s) / n * 1e6, 1)}
    return out


def fmt_table(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def write_markdown(res: dict, path: Path) -> None:
    pure = res["pure_fit"]
    rows = [["way", "exemplars/s", "wall s", "vs pure (1 proc)", "vs ideal (workers x pure)",
             "overhead s", "read+setup s", "first part s", "export s"]]
    rows.append(["pure fit (in-process, no I/O)", f"{pure['exemplars_per_s']:.1f}",
                 f"{pure['seconds']:.1f}", "1.00", "1.00", "0", "-", "-", "-"])
    for r in res["runs"]:
        ph = r["phases"]
        rows.append([r["way"], f"{r['exemplars_per_s']:.1f}", f"{r['wall_s']:.1f}",
                     f"{r['vs_pure']:.2f}", f"{r['vs_ideal']:.2f}", f"{r['overhead_s']:.1f}",
                     f"{ph.get('setup_read_s', 0):.1f}", f"{ph.get('first_part_s', 0):.1f}",
                     f"{ph.get('export_s', 0):.1f}"])
    cs, ser = res["cold_start"], res["serialisation"]
    dask = [r for r in res["runs"] if r["backend"] == "dask"]
    starts = ", ".join(f"{r['cluster_start_s']:.1f} s" for r in dask)
    incl = ", ".join(f"{r['exemplars_per_s_incl_cluster']:.1f}" for r in dask)
    med = {r["way"]: sorted(r["part_seconds"])[len(r["part_seconds"]) // 2]
           for r in res["runs"]}
    ds = res["dataset"]
    text = [
        "# bench_jobs", "",
        f"`{res['command']}` — {ds['people']} synthetic people (rendered PNGs + COCO "
        f"person_keypoints JSON, `eft demo`'s generator; the COCO reader keeps "
        f"{ds['exemplars']} exemplars), EFT max_iters "
        f"{res['settings']['max_iters']}, batch {res['settings']['batch_size']}, chunk "
        f"{res['settings']['chunk_size']}, 1 torch thread per worker, "
        f"{res['machine']['cpu_count']}-core shared CPU.", "",
        fmt_table(rows), "",
        "*vs ideal* = exemplars/s ÷ (workers × pure exemplars/s); *overhead s* = wall − "
        "exemplars ÷ (workers × pure rate).  *first part s*: from the chunk plan to the first "
        "committed part (worker start-up + one chunk).  Dask workers are started without "
        "Dask's default `MALLOC_TRIM_THRESHOLD_=65536` "
        "(`distributed.nanny.pre-spawn-environ`), which turns off glibc's dynamic mmap "
        "threshold and made EFT 2.6x slower per chunk.", "",
        "Median seconds per committed chunk: "
        + ", ".join(f"{k} {v:.1f}" for k, v in med.items()) + ".", "",
        f"Worker cold start (fresh Python: import torch + eft {cs['import_s']:.1f} s, load "
        f"body model + regressor {cs['load_models_s']:.1f} s, its first EFT call "
        f"{cs['first_fit_extra_s']:.1f} s slower than the next).  Dask LocalCluster start: "
        f"{starts} (not in the dask rows; with it {incl} exemplars/s).  "
        f"Pickled per exemplar: task {ser['task']['bytes_per_exemplar']} B, result "
        f"{ser['part']['bytes_per_exemplar']} B; dumps+loads "
        f"{ser['task']['dumps_loads_ms_per_1k'] + ser['part']['dumps_loads_ms_per_1k']:.0f} "
        "ms per 1k exemplars.  Reading the COCO JSON in-process: "
        f"{pure['read_dataset_s']:.2f} s.  Building the dataset (not timed in the job): "
        f"{ds['build_s']:.0f} s.", "",
        f"1-min load average at the start of each run: pure {pure['loadavg_1min']}, "
        + ", ".join(f"{r['way']} {r['loadavg_1min']}" for r in res["runs"])
        + " (other processes share the CPU).",
    ]
    path.write_text("\n".join(text) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="synthetic people (default 1000)")
    p.add_argument("--max-iters", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the dataset and outputs here (default: a temporary folder, "
                        "removed at the end); a dataset of the same --n/--seed is reused")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from eft.jobs import config_from_dict

    command = "python scripts/bench_jobs.py " + " ".join(sys.argv[1:])
    command = command.strip()
    t_start = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="eft-bench-jobs-"))
    work.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    jlog = logging.getLogger("eft.jobs")
    jlog.setLevel(logging.DEBUG)
    jlog.addHandler(clock)
    jlog.propagate = False
    try:
        print(f"dataset: rendering {args.n} people into {work / 'dataset'}", flush=True)
        ds_json, build_s, reused = make_dataset(work / "dataset", args.n, args.seed)
        img_bytes = sum(f.stat().st_size for f in (work / "dataset" / "images").iterdir())
        print(f"  {build_s:.1f} s{' (reused)' if reused else ''}", flush=True)

        print("worker cold start", flush=True)
        cs = cold_start(args.max_iters)
        print(f"  {cs}", flush=True)

        base = config_from_dict(job_dict(ds_json, work / "out-pure", args, "local", 1))
        print("pure fitting", flush=True)
        pure, exemplars = pure_fit(base)
        print(f"  {pure}", flush=True)

        runs = []
        for label, backend, workers in WAYS:
            out = work / f"out-{label.replace(' ', '-')}"
            shutil.rmtree(out, ignore_errors=True)
            if backend == "dask":
                t = time.perf_counter()
                cluster = start_cluster(workers)
                cluster_s = time.perf_counter() - t
                try:
                    cfg = config_from_dict(job_dict(ds_json, out, args, backend, workers,
                                                    cluster.scheduler_address))
                    row = run_way(label, cfg, clock)
                finally:
                    cluster.close()
                row["cluster_start_s"] = round(cluster_s, 3)
                row["exemplars_per_s_incl_cluster"] = round(
                    row["exemplars"] / (row["wall_s"] + cluster_s), 2)
            else:
                cfg = config_from_dict(job_dict(ds_json, out, args, backend, workers))
                row = run_way(label, cfg, clock)
            ideal = pure["exemplars_per_s"] * min(workers, os.cpu_count() or 1)
            row["vs_pure"] = round(row["exemplars_per_s"] / pure["exemplars_per_s"], 3)
            row["vs_ideal"] = round(row["exemplars_per_s"] / ideal, 3)
            row["overhead_s"] = round(row["wall_s"] - row["exemplars"] / ideal, 2)
            runs.append(row)

        ser = serialisation(Path(runs[0]["output_dir"]), exemplars, base)
        fitted = {r["fitted"] for r in runs} | {pure["fitted"]}
        res = {
            "command": command,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "python": platform.python_version(), "torch": torch.__version__},
            "settings": {"n_people": args.n, "max_iters": args.max_iters,
                         "batch_size": args.batch_size, "chunk_size": args.chunk_size,
                         "seed": args.seed, "threads_per_worker": 1,
                         "formats": ["eft-json", "h5"], "check_images": True,
                         "regressor": "default (keypoint prior)", "body": "open"},
            "dataset": {"kind": "rendered COCO person_keypoints (eft.jobs.demo."
                                "make_demo_dataset)",
                        "people": args.n, "exemplars": pure["exemplars"],
                        "skipped_by_reader": pure["skipped_by_reader"],
                        "image_bytes": img_bytes, "build_s": round(build_s, 1),
                        "reused": reused},
            "cold_start": cs,
            "pure_fit": pure,
            "runs": runs,
            "serialisation": ser,
            "same_fit_count_everywhere": len(fitted) == 1,
            "total_s": round(time.perf_counter() - t_start, 1),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_jobs.json").write_text(json.dumps(res, indent=2) + "\n")
        write_markdown(res, args.out / "bench_jobs.md")
        print((args.out / "bench_jobs.md").read_text())
    finally:
        jlog.removeHandler(clock)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
