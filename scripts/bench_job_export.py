"""Benchmark a job's final-file export: committed parts -> every output format.

    OMP_NUM_THREADS=1 python scripts/bench_job_export.py JOB_COPY [--label NAME]
                                                         [--formats h5,eft-json]

``JOB_COPY`` is a *copy* of a complete ``eft fit`` output folder (its ``parts/`` and
``manifest.json``); the final files are written into it, so never point this at a folder
you want to keep as it is.  The script times the two steps ``eft fit`` / ``eft merge``
run when they (re)write the final files: reading every committed part
(``eft.jobs.runner.load_parts``) and ``eft.jobs.runner.finish`` (gathering the fits in id
order and writing each format of the job's config, or ``--formats``).  It uses only names
that exist before and after issue 16, so the same script times both trees
(``PYTHONPATH=OLD_TREE python scripts/bench_job_export.py ...``).

Writes scripts/results/bench_job_export[-LABEL].json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("job", type=Path)
    ap.add_argument("--label", default="")
    ap.add_argument("--formats", default=None, help="comma list (default: the job's)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    import eft
    from eft.jobs.config import config_from_dict
    from eft.jobs.runner import finish, load_parts
    from eft.jobs.store import Manifest

    folder = args.job
    manifest = Manifest.load(folder)
    config = config_from_dict(manifest.config, source=str(folder / "manifest.json"))
    if args.formats:
        import dataclasses

        config = dataclasses.replace(config, output=dataclasses.replace(
            config.output, formats=tuple(args.formats.split(","))))
    skipped = json.loads((folder / "skipped.json").read_text())
    t0 = time.perf_counter()
    parts = load_parts(folder, manifest)
    t_read = time.perf_counter() - t0
    work = {i for p in parts for i in p.ids}
    t1 = time.perf_counter()
    summary = finish(folder, config, manifest, parts, work, [s["reason"] for s in skipped],
                     manifest.identity, manifest.config_hash)
    t_finish = time.perf_counter() - t1
    result = {
        "label": args.label, "eft": str(Path(eft.__file__).parent),
        "job": str(folder), "parts": len(parts), "fits": summary.fitted,
        "formats": list(config.output.formats),
        "read_parts_s": round(t_read, 2), "finish_s": round(t_finish, 2),
        "total_s": round(t_read + t_finish, 2), "threads": 1,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    name = "bench_job_export" + (f"-{args.label}" if args.label else "")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(
        f"# Job export ({args.label or 'current'})\n\n"
        f"`OMP_NUM_THREADS=1 python scripts/bench_job_export.py {folder}"
        f"{' --label ' + args.label if args.label else ''}` (eft package: "
        f"`{result['eft']}`; {result['date']})\n\n"
        "| parts | fits | formats | read parts s | finish s | total s |\n"
        "|---|---|---|---|---|---|\n"
        f"| {len(parts)} | {summary.fitted} | {', '.join(config.output.formats)} "
        f"| {t_read:.1f} | {t_finish:.1f} | {t_read + t_finish:.1f} |\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
