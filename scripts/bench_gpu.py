"""HMR-ResNet50 EFT speed on one GPU, through the project's API; prints JSON.

    python scripts/bench_gpu.py [--device cuda] [--budget 270] [--out FILE]
    python scripts/bench_gpu.py --device cpu --quick        # smoke test, seconds

Measures, in one process (random-weight HMR, seeded; 224 x 224 crops; every exemplar
runs all ``--iters`` iterations):

* ``fit_sequential`` exemplars/s, scopes ``all`` and ``head``;
* ``fit_batched`` (``torch.func.vmap``: per-exemplar weights, so convolutions become
  grouped convolutions) at B = 1, 2, 4, ... up to the memory limit (or ``--max-b``, or the
  time budget), scopes ``all`` and ``head``, with the peak memory of each;
* an exactness check: ``fit_batched`` against ``fit_sequential`` on the same exemplars;
* for scope ``all``, alternatives to the grouped convolutions: dense batch-1 EFT loops
  (each exemplar its own model copy and fused Adam) interleaved on several CUDA streams,
  one EFT step captured as a CUDA graph and replayed, and ``channels_last`` memory
  format (batched path and dense loop).

Every phase checks the time budget (default 270 s, so the whole run stays under 5
minutes) and records errors instead of stopping.  ``--quick`` (32 x 32 crops, 2
iterations, B <= 2) is the CI smoke test; on a CPU the CUDA-only alternatives are
reported as skipped.  Reference estimates for an H200: scope ``all`` ~471 GFLOP and
~517 MB per exemplar, roofline ~140-190 exemplars/s, max B ~240; scope ``head`` roofline
~1,700 exemplars/s, max B ~2,000.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from eft.body import BodyModel
from eft.fitting import (
    EFTConfig,
    FitTargets,
    eft_loss,
    fit_batched,
    fit_sequential,
    split_model,
)
from eft.fitting.engine import _keypoint_lbs
from eft.models import HMR

RESULTS = Path(__file__).resolve().parent / "results"


class Clock:
    """Wall-clock budget shared by every phase."""

    def __init__(self, budget: float) -> None:
        self.start = time.perf_counter()
        self.budget = budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random crops (n, 3, size, size) and targets (n, 49, 3): the 24 GT slots
    annotated at random crop-normalised positions."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    targets = torch.zeros(n, 49, 3)
    targets[:, 25:, :2] = torch.rand(n, 24, 2, generator=g) * 1.2 - 0.6
    targets[:, 25:, 2] = 1.0
    return images, targets


def timed(fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return None


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


# ---------------------------------------------------------------------------
# The project's paths
# ---------------------------------------------------------------------------

def sequential_speed(model, body, images, targets, cfg, device, clock, n) -> dict:
    if clock.left() < 10:
        return {"skipped": "time budget"}
    fit_sequential(model, body, FitTargets(targets[:1], images[:1]),
                   cfg.replace(max_iters=2))  # warm-up
    n = min(n, len(images))
    dt = timed(lambda: fit_sequential(model, body, FitTargets(targets[:n], images[:n]), cfg),
               device)
    return {"exemplars": n, "eps": n / dt}


def batched_sweep(model, body, size, cfg, device, clock, max_b) -> dict:
    """``fit_batched`` at B = 1, 2, 4, ... until out of memory, ``max_b`` or the budget."""
    out: dict = {"eps": {}, "peak_memory_gb": {}}
    b, last = 1, None
    while b <= max_b:
        # a run takes about b / best-rate-so-far seconds; stop when it would not fit
        best = max(out["eps"].values(), default=None)
        need = 5 + (2 * b / best if best else 5)
        if clock.left() < need:
            out["stopped"] = f"time budget before B={b}"
            break
        images, targets = make_data(b, size, seed=b)
        reset_peak(device)
        try:
            if last is None:  # warm-up (cuDNN autotuning, allocator)
                fit_batched(model, body, FitTargets(targets, images), cfg.replace(max_iters=2),
                            batch_size=b)
            dt = timed(lambda b=b, images=images, targets=targets: fit_batched(
                model, body, FitTargets(targets, images), cfg, batch_size=b), device)
        except Exception as exc:  # noqa: BLE001 - OOM is the expected end of the sweep
            if is_oom(exc):
                out["out_of_memory_at"] = b
                reset_peak(device)
                break
            out["error"] = f"B={b}: {type(exc).__name__}: {exc}"[:500]
            break
        out["eps"][str(b)] = b / dt
        out["peak_memory_gb"][str(b)] = peak_gb(device)
        log(f"  {cfg.scope} B={b}: {b / dt:.2f} exemplars/s")
        last = b
        b *= 2
    if out["eps"]:
        best_b = max(out["eps"], key=out["eps"].get)
        out["best_b"], out["best_eps"] = int(best_b), out["eps"][best_b]
    return out


def exactness(model, body, size, device) -> dict:
    """``fit_batched`` against ``fit_sequential``: max |difference| of rotations and
    cameras, max relative difference of betas, equal iteration counts and flags."""
    images, targets = make_data(3, size, seed=99)
    cfg = EFTConfig(lr=1e-4, max_iters=3, stop_loss_2d=0.0)
    seq = fit_sequential(model, body, FitTargets(targets, images), cfg)
    bat = fit_batched(model, body, FitTargets(targets, images), cfg, batch_size=3)
    rot = max(float(np.abs(a.rotmat - b.rotmat).max()) for a, b in zip(seq, bat, strict=True))
    cam = max(float(np.abs(a.cam_weak - b.cam_weak).max())
              for a, b in zip(seq, bat, strict=True))
    betas = max(float((np.abs(a.betas - b.betas) / (np.abs(a.betas) + 1e-6)).max())
                for a, b in zip(seq, bat, strict=True))
    same = all(a.quality.iterations == b.quality.iterations and a.quality.flags == b.quality.flags
               for a, b in zip(seq, bat, strict=True))
    return {"exemplars": 3, "iterations": 3, "max_abs_rotmat": rot, "max_abs_cam": cam,
            "max_rel_betas": betas, "same_iterations_and_flags": same,
            "ok": bool(same and rot < 1e-3 and cam < 1e-3 and betas < 1e-3)}


# ---------------------------------------------------------------------------
# Alternatives to the grouped convolutions (scope "all")
# ---------------------------------------------------------------------------

class Lane:
    """One exemplar's dense batch-1 EFT state: a model copy and its fused Adam."""

    def __init__(self, model, cfg, lr, device, memory_format=torch.contiguous_format,
                 capturable=False) -> None:
        self.model = copy.deepcopy(model).to(device, memory_format=memory_format).eval()
        names = set(split_model(self.model, cfg.scope).trainable)
        params = []
        for n, p in self.model.named_parameters():
            p.requires_grad_(n in names)
            if n in names:
                params.append(p)
        self.opt = torch.optim.Adam(params, lr=lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
                                    fused=True, capturable=capturable)
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def step(self, image, target, cfg, fast) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss, _ = eft_loss(self.model(image), target, cfg, fast)
        loss.sum().backward()
        self.opt.step()


def dense_streams(model, body, size, cfg, device, clock, lanes: int,
                  memory_format=torch.contiguous_format) -> dict:
    """``lanes`` exemplars, each a dense batch-1 EFT loop, interleaved step by step on
    their own CUDA streams (plain sequential on a CPU)."""
    if clock.left() < 20:
        return {"skipped": "time budget"}
    fast = _keypoint_lbs(body, device)
    lr = cfg.resolve_lr(model)
    images, targets = make_data(lanes, size, seed=7)
    images = images.to(device).contiguous(memory_format=memory_format)
    targets = targets.to(device)
    reset_peak(device)
    pool = [Lane(model, cfg, lr, device, memory_format) for _ in range(lanes)]
    for lane in pool:  # the inputs were made on the default stream
        if lane.stream is not None:
            lane.stream.wait_stream(torch.cuda.current_stream(device))

    def run(iters):
        for _ in range(iters):
            for i, lane in enumerate(pool):
                if lane.stream is None:
                    lane.step(images[i:i + 1], targets[i:i + 1], cfg, fast)
                else:
                    with torch.cuda.stream(lane.stream):
                        lane.step(images[i:i + 1], targets[i:i + 1], cfg, fast)

    run(1)  # warm-up
    dt = timed(lambda: run(cfg.max_iters), device)
    return {"lanes": lanes, "eps": lanes / dt, "peak_memory_gb": peak_gb(device),
            "memory_format": str(memory_format).replace("torch.", "")}


def cuda_graph(model, body, size, cfg, device, clock) -> dict:
    """One dense batch-1 EFT step (forward, loss, backward, fused Adam) captured as a CUDA
    graph and replayed ``max_iters`` times per exemplar."""
    if device.type != "cuda":
        return {"skipped": "needs CUDA"}
    if clock.left() < 20:
        return {"skipped": "time budget"}
    fast = _keypoint_lbs(body, device)
    lane = Lane(model, cfg, cfg.resolve_lr(model), device, capturable=True)
    image, target = make_data(1, size, seed=11)
    image, target = image.to(device), target.to(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            lane.step(image, target, cfg, fast)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    lane.opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss, _ = eft_loss(lane.model(image), target, cfg, fast)
        loss.sum().backward()
        lane.opt.step()
    graph.replay()
    reps = 5

    def run():
        for _ in range(reps * cfg.max_iters):
            graph.replay()

    dt = timed(run, device)
    return {"eps": reps / dt, "replays_per_exemplar": cfg.max_iters}


def channels_last_batched(model, body, size, cfg, device, clock, b: int) -> dict:
    if clock.left() < 20:
        return {"skipped": "time budget"}
    cl = copy.deepcopy(model).to(device, memory_format=torch.channels_last)
    images, targets = make_data(b, size, seed=5)
    images = images.contiguous(memory_format=torch.channels_last)
    reset_peak(device)
    fit_batched(cl, body, FitTargets(targets[:1], images[:1]), cfg.replace(max_iters=2),
                batch_size=1)
    dt = timed(lambda: fit_batched(cl, body, FitTargets(targets, images), cfg, batch_size=b),
               device)
    return {"b": b, "eps": b / dt, "peak_memory_gb": peak_gb(device)}


def guarded(name: str, fn, device) -> dict:
    log(f"{name} ...")
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a failed alternative is a result, not a crash
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny smoke test (seconds on a CPU)")
    ap.add_argument("--budget", type=float, default=270.0, help="seconds for the whole run")
    ap.add_argument("--iters", type=int, default=20, help="EFT iterations per exemplar")
    ap.add_argument("--max-b", type=int, default=4096)
    ap.add_argument("--lanes", type=int, default=8, help="CUDA streams for the dense loops")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    size, seq_n = 224, 4
    if args.quick:
        size, args.iters, args.max_b, args.lanes, seq_n = 32, 2, 2, 2, 1
    if device.type == "cpu":
        torch.set_num_threads(1)
    clock = Clock(args.budget)
    torch.manual_seed(0)
    body = BodyModel.load()
    model = HMR().to(device)
    result: dict = {
        "device": str(device), "model": "HMR-ResNet50, random weights (seed 0)",
        "crop_px": size, "iterations": args.iters, "quick": args.quick,
        "machine": platform.machine(), "torch": torch.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        result["device_name"] = props.name
        result["device_memory_gb"] = props.total_memory / 2**30
        torch.backends.cudnn.benchmark = True
    result["exactness"] = guarded("exactness", lambda: exactness(model, body, size, device),
                                  device)
    for scope in ("all", "head"):
        cfg = EFTConfig(max_iters=args.iters, stop_loss_2d=0.0, scope=scope)
        images, targets = make_data(seq_n, size, seed=3)
        result[f"sequential_{scope}"] = guarded(
            f"sequential {scope}", lambda cfg=cfg, images=images, targets=targets:
            sequential_speed(model, body, images, targets, cfg, device, clock, seq_n), device)
        result[f"batched_{scope}"] = guarded(
            f"batched {scope}", lambda cfg=cfg: batched_sweep(
                model, body, size, cfg, device, clock, args.max_b), device)
        seq = result[f"sequential_{scope}"].get("eps")
        best = result[f"batched_{scope}"].get("best_eps")
        if seq and best:
            result[f"batched_vs_sequential_{scope}"] = best / seq
    cfg = EFTConfig(max_iters=args.iters, stop_loss_2d=0.0, scope="all")
    best_b = result["batched_all"].get("best_b", 1)
    alternatives = {
        "grouped_conv_vmap": {"b": best_b, "eps": result["batched_all"].get("best_eps")},
        "dense_streams": guarded("dense loops on streams", lambda: dense_streams(
            model, body, size, cfg, device, clock, args.lanes), device),
        "cuda_graph": guarded("CUDA graph", lambda: cuda_graph(
            model, body, size, cfg, device, clock), device),
        "channels_last_batched": guarded("channels_last batched", lambda: channels_last_batched(
            model, body, size, cfg, device, clock, best_b), device),
        "channels_last_dense_streams": guarded("channels_last dense", lambda: dense_streams(
            model, body, size, cfg, device, clock, args.lanes, torch.channels_last), device),
    }
    result["alternatives_all"] = alternatives
    peaks = [v for key in ("batched_all", "batched_head")
             for v in result[key].get("peak_memory_gb", {}).values() if v is not None]
    peaks += [v.get("peak_memory_gb") for v in alternatives.values()
              if v.get("peak_memory_gb") is not None]
    result["peak_memory_gb"] = max(peaks, default=None)
    result["seconds"] = time.perf_counter() - clock.start
    result["command"] = "python scripts/bench_gpu.py " + " ".join(argv or sys.argv[1:])
    text = json.dumps(result, indent=1, default=lambda x: None if isinstance(x, float)
                      and not math.isfinite(x) else str(x))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
