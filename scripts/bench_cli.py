"""Benchmark the ``eft`` command's start-up: ``eft --help`` and ``eft --version``.

    python scripts/bench_cli.py            # 15 runs of each
    python scripts/bench_cli.py --runs 5

Each run is a fresh process (``.venv/bin/eft`` when present, else ``python -m eft.cli``),
timed wall-clock from start to exit; the table gives the median and the slowest.  For
scale, the same for ``python -c pass`` (the interpreter alone) and ``python -c "import
torch"`` (what the command used to load before it imported lazily).  The target: at most
0.5 s for ``--help`` and ``--version``.  Also records which heavy modules the command
line's parser imports (none expected).

Writes ``scripts/results/bench_cli.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.5
HEAVY = ("torch", "numpy", "h5py", "yaml", "PIL", "fastapi", "scipy")


def _eft() -> list[str]:
    script = Path(sys.executable).with_name("eft")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "eft.cli"]


def _time(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=ROOT)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    eft = _eft()
    cases = {
        "eft --help": eft + ["--help"],
        "eft --version": eft + ["--version"],
        "eft config show demo": eft + ["config", "show", "demo"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    _time(eft + ["--version"], 2)  # warm the file cache
    rows = {}
    for name, cmd in cases.items():
        t = _time(cmd, args.runs)
        rows[name] = {"median_s": round(statistics.median(t), 4), "max_s": round(max(t), 4),
                      "runs": len(t)}
        print(f"{name:28s} median {rows[name]['median_s']:.3f} s, max {rows[name]['max_s']:.3f} s")
    probe = ("import sys, json, eft.cli; eft.cli._build_parser(); "
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    heavy = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                      text=True, check=True, cwd=ROOT).stdout)
    ok = all(rows[k]["median_s"] <= TARGET_S for k in ("eft --help", "eft --version"))
    result = {"cases": rows, "heavy_modules_imported_by_parser": heavy, "target_s": TARGET_S,
              "meets_target": ok, "command": " ".join(eft),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_1min": round(os.getloadavg()[0], 2)}}
    res = ROOT / "scripts" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "bench_cli.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# `eft` start-up (`python scripts/bench_cli.py`)", "",
             f"{args.runs} fresh processes each, wall-clock; {os.cpu_count()} CPUs, load "
             f"{result['machine']['load_1min']}. Target: `--help` and `--version` <= "
             f"{TARGET_S} s ({'met' if ok else 'MISSED'}).", "",
             "| command | median s | max s |", "|---|---|---|"]
    lines += [f"| `{k}` | {v['median_s']:.3f} | {v['max_s']:.3f} |" for k, v in rows.items()]
    lines += ["", "Heavy modules imported by building the parser: "
              + (", ".join(heavy) if heavy else "none") + "."]
    (res / "bench_cli.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {res / 'bench_cli.json'} and .md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
