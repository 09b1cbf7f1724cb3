"""Time the mission's batch job end to end: ``eft fit`` over all of COCO 2017 train.

    python scripts/bench_coco_job.py                       # the whole file, 2 workers
    python scripts/bench_coco_job.py --limit 18000         # the first 18,000 people
    python scripts/bench_coco_job.py --set eft.preset=open-prior-all --out bench_coco_job_all

Runs the shipped config ``fitting/coco2017-keypoints.yaml`` (keypoints only, no images,
the default prior and its default recipe) exactly as a user would, as a fresh ``eft fit``
process writing into a temporary folder (removed afterwards unless ``--keep``), and
records the wall-clock time of the whole command (start-up, reading the 146,921-person
JSON, fitting, writing the h5 and EFT JSON files) with the job's own summary: people
fitted, accepted and rejected, people per second.  The target: the whole set in at most
15 minutes on two cores.  The data come from ``$EFT_TEST_DATA`` (else ``../shared/data``).
Writes ``scripts/results/<--out>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EFT_TEST_DATA", ROOT.parent / "shared" / "data"))
TARGET_MIN = 15.0
CONFIG = ROOT / "fitting" / "coco2017-keypoints.yaml"
TRAIN = "coco2017_keypoints/person_keypoints_train2017.json"


def _eft_command() -> list[str]:
    exe = Path(sys.executable).with_name("eft")
    return [str(exe)] if exe.exists() else [sys.executable, "-c",
                                              "import sys; from eft.cli import main; "
                                              "sys.exit(main())"]


def run(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    train = DATA / TRAIN
    if not train.is_file():
        raise SystemExit(f"COCO 2017 train keypoints not found: {train} (set EFT_TEST_DATA)")
    work = Path(tempfile.mkdtemp(prefix="bench_coco_job_"))
    out_dir = work / "out"
    cmd = [*_eft_command(), "fit", str(CONFIG), "-o", str(out_dir),
           "--workers", str(args.workers), "--set", f"datasets.0.path={train}"]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    for item in args.set or []:
        cmd += ["--set", item]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    try:
        # the job's progress bar and log go to this terminal (stderr); its summary is read
        # from the files it writes
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"eft fit failed ({proc.returncode}); its messages are above")
        summary = json.loads((out_dir / "summary.json").read_text())
        recipe = yaml.safe_load((out_dir / "config.yaml").read_text())["eft"]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    fitted = int(summary["fitted"])
    return {
        "command": "python scripts/bench_coco_job.py" + "".join(
            f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "eft_fit": " ".join(["eft", *cmd[len(_eft_command()):]]).replace(
            str(work), "TMP").replace(str(ROOT) + "/", "").replace(str(DATA), "$EFT_TEST_DATA"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"load {load:.1f} at start",
        "workers": args.workers,
        "limit": args.limit,
        "wall_s": round(wall, 1),
        "job_seconds": summary["seconds"],
        "fitted": fitted,
        "accepted": int(summary["accepted"]),
        "accept_rate": summary["accepted"] / max(fitted, 1),
        "rejected_by_flag": summary["rejected_by_flag"],
        "skipped_by_reason": summary["skipped_by_reason"],
        "failed_by_reason": summary["failed_by_reason"],
        "people_per_s": fitted / wall,
        "target_min": TARGET_MIN,
        "meets_target": args.limit is None and wall / 60 <= TARGET_MIN,
        "recipe": {k: recipe[k] for k in ("scope", "lr", "max_iters", "with_ankles",
                                          "mirror_average")},
    }


def report(r: dict) -> str:
    scope = "the whole file" if r["limit"] is None else f"the first {r['limit']:,} people"
    lines = [
        "# bench_coco_job: `eft fit` over COCO 2017 train, end to end", "",
        f"Command: `{r['command']}`, which runs `{r['eft_fit']}` ({scope}); {r['date']}; "
        f"{r['machine']}.  EFT recipe as resolved by the job: {json.dumps(r['recipe'])}.", "",
        "| measure | value |", "|---|---|",
        f"| wall clock, whole command | {r['wall_s'] / 60:.1f} min ({r['wall_s']:.0f} s) |",
        f"| job time (its summary: fitting and writing) | {r['job_seconds']:.0f} s |",
        f"| people fitted | {r['fitted']:,} |",
        f"| people per second (wall clock) | {r['people_per_s']:.1f} |",
        f"| accepted | {r['accepted']:,} ({100 * r['accept_rate']:.1f} %) |",
        f"| rejected, by flag | {json.dumps(r['rejected_by_flag'])} |",
        f"| skipped, by reason | {json.dumps(r['skipped_by_reason'])} |",
        f"| failed | {json.dumps(r['failed_by_reason'])} |",
        "",
    ]
    if r["limit"] is None:
        verdict = "met" if r["meets_target"] else "missed"
        lines.append(f"Target: the whole set in at most {r['target_min']:.0f} minutes on two "
                     f"cores: **{verdict}** ({r['wall_s'] / 60:.1f} min).")
    else:
        total = 128109
        lines.append(f"At this rate the whole set ({total:,} people) would take about "
                     f"{total / r['people_per_s'] / 60:.0f} min (target "
                     f"{r['target_min']:.0f}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="the first N people only")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="passed to eft fit --set (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the job's folder")
    ap.add_argument("--out", default="bench_coco_job",
                    help="results name under scripts/results, or a path with a folder")
    args = ap.parse_args(argv)
    r = run(args, argv)
    out = Path(args.out) if "/" in args.out else ROOT / "scripts" / "results" / args.out
    out.with_suffix(".json").write_text(json.dumps(r, indent=1))
    out.with_suffix(".md").write_text(report(r))
    print(report(r))
    return r


if __name__ == "__main__":
    main()
