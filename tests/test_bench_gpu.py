"""scripts/bench_gpu.py runs end to end on a CPU in quick mode (the CI smoke test of the
GPU benchmark) and reports what it promises."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_bench_gpu_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_gpu.py"), "--device", "cpu",
         "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result == json.loads(out.read_text())
    assert result["device"] == "cpu" and result["quick"]
    ex = result["exactness"]
    assert ex["ok"] and ex["same_iterations_and_flags"]
    assert ex["max_abs_rotmat"] < 1e-3 and ex["max_rel_betas"] < 1e-3
    for scope in ("all", "head"):
        assert result[f"sequential_{scope}"]["eps"] > 0
        eps = result[f"batched_{scope}"]["eps"]
        assert set(eps) == {"1", "2"} and all(v > 0 for v in eps.values())
        assert math.isfinite(result[f"batched_vs_sequential_{scope}"])
    alt = result["alternatives_all"]
    assert alt["cuda_graph"] == {"skipped": "needs CUDA"}
    for name in ("dense_streams", "channels_last_batched", "channels_last_dense_streams"):
        assert alt[name]["eps"] > 0, alt[name]
    assert result["seconds"] < 120
