"""Benchmark fitting: accuracy of regressor / SMPLify / EFT / EFT-head, and EFT speed
against this CPU's roofline.

    python scripts/bench_fitting.py [--n 256] [--quick] [--regressor keypoint-prior-v1]

Accuracy runs on synthetic exemplars from the pose bank's unseen val clips (COCO-17
annotations with realistic noise, missing joints and truncation), starting from
``--regressor``: prior v1 by default, the model the engine figures have been tracked on
since the flat engine landed (``default`` for the shipped default prior;
``scripts/bench_prior_cost.py`` times every shipped prior side by side).  Speed runs,
in one process on one thread, every exemplar doing all 20 iterations: EFT's sequential
loop as it was before the flat engine (``torch.optim``'s single-tensor Adam, smplx's
sequential kinematic chain), the lean sequential loop (fused Adam, level-wise chain),
the ``torch.func`` batched path and the flat engine at B=64; and it measures the
roofline in the same run: matmul peak (GFLOP/s), streaming bandwidth (GB/s, the best of
``a += b`` and fused Adam far beyond the caches), the model's FLOPs and minimum bytes
per exemplar, and the fraction of the roofline each path reaches, plus where the flat
engine's time goes. ``--quick`` (fewer exemplars, no settings sweep) finishes in a few
minutes. Writes scripts/results/bench_fitting.json and bench_fitting.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from eft.body import BodyModel
from eft.fitting import (
    EFTConfig,
    FitTargets,
    fit,
    fit_batched,
    fit_flat,
    fit_sequential,
    fits_to_tensors,
    load_default_pose_prior,
    smplify,
)
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import load_regressor
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.prior import PRIOR_VAL_SEED, crop_inputs, evaluate_bodies, make_prior_set

RESULTS = Path(__file__).resolve().parent / "results"


def summarise(body, fits, gt_rot, gt_betas) -> dict:
    rot, betas = fits_to_tensors(fits)
    m = evaluate_bodies(body, rot, betas, gt_rot, gt_betas)
    px = np.array([f.quality.reproj_px for f in fits], dtype=float)
    m["median_px"] = float(np.nanmedian(px))
    m["accept_rate"] = float(np.mean([f.quality.accepted for f in fits]))
    m["mean_iterations"] = float(np.mean([f.quality.iterations for f in fits]))
    return m


#: EFT settings that fit the 2D keypoints harder than the defaults.
SWEEP = {
    "lr 6e-5": {"lr": 6e-5},
    "lr 1e-4": {"lr": 1e-4},
    "40 iters": {"max_iters": 40},
    "no early stop": {"stop_loss_2d": 0.0},
    "GT hips on": {"with_hips": True},
}


def pose_nll_calibration(body, fits, gt_rot, gt_betas, threshold) -> dict:
    """How the ``implausible_pose`` rule splits EFT fits: share flagged, and the 3D error
    of flagged vs kept fits; plus where the true val poses' NLLs lie."""
    prior = load_default_pose_prior()
    nll = np.array([f.quality.pose_nll for f in fits])
    flagged = nll > threshold
    out = {
        "threshold": threshold,
        "flagged_rate": float(flagged.mean()),
        "gt_pose_nll_p99_9": float(np.percentile(prior.nll(gt_rot).numpy(), 99.9)),
        "fit_pose_nll_p50_p90_p99": [float(np.percentile(nll, q)) for q in (50, 90, 99)],
    }
    for name, mask in (("flagged", flagged), ("kept", ~flagged)):
        if mask.any():
            sub = [f for f, m in zip(fits, mask, strict=True) if m]
            idx = torch.as_tensor(np.flatnonzero(mask))
            out[f"pa_mpjpe_{name}_mm"] = summarise(body, sub, gt_rot[idx],
                                                   gt_betas[idx])["pa_mpjpe_mm"]
    return out


def matmul_peak_flops(n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of a large single-precision matmul (best of 3)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def stream_bandwidth(mb: int = 256, reps: int = 5) -> dict:
    """Streaming bandwidth beyond the caches, bytes/s, best of 3 each: a read-modify-write
    ``a += b`` over two ``mb`` MB buffers (3 bytes moved per byte of ``a``), and fused
    Adam over four ``mb / 4`` MB buffers (weights, gradient, two moments: 7 streams).
    The roofline uses the larger."""
    n = mb * 2**20 // 4
    a, b = torch.ones(n), torch.ones(n)
    p, g, m, v = (torch.ones(n // 4) for _ in range(4))
    step = torch.ones(())

    def adam():
        torch._fused_adam_([p], [g], [m], [v], [], [step], lr=1e-5, beta1=0.9, beta2=0.999,
                           weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)

    out = {}
    for name, run, moved in (("add", lambda: a.add_(b), 3 * 4 * n),
                             ("fused_adam", adam, 7 * 4 * (n // 4))):
        run()
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(reps):
                run()
            best = max(best, moved * reps / (time.perf_counter() - t))
        out[name] = best
    return out


def exemplar_cost(model, scope: str, iters: int) -> dict:
    """Work per exemplar of EFT with all ``iters`` iterations (``iters`` forwards,
    ``iters - 1`` updates): matmul FLOPs (forward 2 per MAC; backward 2 per MAC for the
    weight gradients and 2 for the input gradients, which the first trained layer does
    not need), Adam's elementwise FLOPs (~12 per value) and the minimum bytes (the
    pretrained weights read once; per update each trained value's weight and two Adam
    moments read and written once: gradients and activations can stay in cache)."""
    from eft.fitting.engine import split_model
    from eft.models.protocol import IEF_HEAD_MODULES

    trained = split_model(model, scope).trainable
    n_iter = getattr(model, "n_iter", 1)
    named = dict(model.named_parameters())

    def macs(name):
        reuse = n_iter if name.split(".")[0] in IEF_HEAD_MODULES else 1
        return named[name].numel() * reuse

    linear = [n for n in named if named[n].dim() == 2]
    fwd = sum(macs(n) for n in linear)
    bwd_w = sum(macs(n) for n in linear if n in trained)
    first = next(n for n in linear if n in trained)
    bwd_x = bwd_w - (macs(first) if first.split(".")[0] not in IEF_HEAD_MODULES else 0)
    p = sum(named[n].numel() for n in trained)
    return {
        "trained_params": p,
        "matmul_flops": 2 * fwd * iters + 2 * (bwd_w + bwd_x) * (iters - 1),
        "adam_flops": 12 * p * (iters - 1),
        "min_bytes": 4 * p * (1 + 6 * (iters - 1)),
        "state_bytes": 4 * 4 * p,
    }


@contextlib.contextmanager
def todays_sequential():
    """``fit_sequential`` as it ran before the flat engine: ``torch.optim.Adam``'s
    single-tensor loop and smplx's kinematic chain (23 sequential products, a ``.item()``
    per parent)."""
    from smplx.lbs import batch_rigid_transform

    import eft.body.fast as fast_module

    real_chain, real_adam = fast_module.rigid_transform_levels, torch.optim.Adam

    def chain(rot_mats, joints, parents, levels=None):
        return batch_rigid_transform(rot_mats, joints, torch.as_tensor(parents), rot_mats.dtype)

    class Adam(real_adam):
        def __init__(self, params, **kwargs):
            kwargs.update(fused=None, foreach=False)
            super().__init__(params, **kwargs)

    fast_module.rigid_transform_levels, torch.optim.Adam = chain, Adam
    try:
        yield
    finally:
        fast_module.rigid_transform_levels, torch.optim.Adam = real_chain, real_adam


def _rate(run, n: int) -> float:
    """Exemplars/s of ``run()`` on ``n`` exemplars."""
    t = time.perf_counter()
    run()
    return n / (time.perf_counter() - t)


def flat_phases(run) -> dict:
    """Where one flat-engine run spends its time: seconds in the engine's forward,
    backward, fused Adam and autograd loss tail, and the rest (bookkeeping, Python)."""
    from eft.fitting.flat import _Engine

    spent = dict.fromkeys(("forward", "backward", "adam", "tail"), 0.0)
    real = {name: getattr(_Engine, name) for name in spent}

    def timed(name):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = real[name](*a, **k)
            spent[name] += time.perf_counter() - t
            return out
        return wrapper

    for name in spent:
        setattr(_Engine, name, timed(name))
    try:
        t = time.perf_counter()
        run()
        total = time.perf_counter() - t
    finally:
        for name, fn in real.items():
            setattr(_Engine, name, fn)
    return {**spent, "other": total - sum(spent.values()), "total": total}


def speed_run(model, body, targets, args) -> dict:
    """EFT speed of every path at 20 iterations, the roofline, and their ratios; each
    path's best of ``reps`` interleaved runs (the machine is shared)."""
    full = EFTConfig(stop_loss_2d=0.0)
    load_before = os.getloadavg()
    n_seq = 4 if args.quick else 16
    reps = 1 if args.quick else 2

    def tgt(n):
        return targets[:n] if n <= len(targets) else targets.repeat(
            n // len(targets) + 1, 1, 1)[:n]

    def seq_today():
        with todays_sequential():
            fit_sequential(model, body, FitTargets(tgt(n_seq)), full)

    paths = {
        "sequential_today": (seq_today, n_seq),
        "sequential_lean": (lambda: fit_sequential(model, body, FitTargets(tgt(n_seq)), full),
                            n_seq),
        "vmap_b64": (lambda: fit_batched(model, body, FitTargets(tgt(64)), full, batch_size=64),
                     64),
        "flat_b64": (lambda: fit_flat(model, body, FitTargets(tgt(64)), full, batch_size=64), 64),
    }
    fit_flat(model, body, FitTargets(tgt(8)), full.replace(max_iters=2))  # warm-up
    rates = dict.fromkeys(paths, 0.0)
    for _ in range(reps):
        for name, (run, n) in paths.items():
            rates[name] = max(rates[name], _rate(run, n))
    phases = flat_phases(lambda: fit_flat(model, body, FitTargets(tgt(64)), full, batch_size=64))
    flat_other = {}
    for b in () if args.quick else (1, 16, 256):
        n = max(b, 64)
        flat_other[str(b)] = _rate(
            lambda b=b, n=n: fit_flat(model, body, FitTargets(tgt(n)), full, batch_size=b), n)
    head = {}
    if not args.quick:
        cfg = full.replace(scope="head")
        head["sequential_lean"] = _rate(
            lambda: fit_sequential(model, body, FitTargets(tgt(n_seq)), cfg), n_seq)
        head["flat_b64"] = _rate(
            lambda: fit_flat(model, body, FitTargets(tgt(64)), cfg, batch_size=64), 64)
    peak = matmul_peak_flops()
    streams = stream_bandwidth()
    bandwidth = max(streams.values())
    cost = exemplar_cost(model, "all", full.max_iters)
    t_compute = cost["matmul_flops"] / peak
    t_bytes = cost["min_bytes"] / bandwidth
    roofline = 1.0 / max(t_compute, t_bytes)
    return {
        "eps": rates, "flat_eps_other_b": flat_other, "head_scope_eps": head,
        "flat_b64_phases": phases,
        "ratio_flat_vs_sequential_today": rates["flat_b64"] / rates["sequential_today"],
        "ratio_flat_vs_sequential_lean": rates["flat_b64"] / rates["sequential_lean"],
        "ratio_vmap_vs_sequential_today": rates["vmap_b64"] / rates["sequential_today"],
        "ratio_lean_vs_today_sequential": rates["sequential_lean"] / rates["sequential_today"],
        "matmul_peak_gflops": peak / 1e9, "stream_bandwidth_gbs": bandwidth / 1e9,
        "stream_bandwidth_gbs_by_kernel": {k: v / 1e9 for k, v in streams.items()},
        "per_exemplar": cost, "roofline_compute_ms": 1e3 * t_compute,
        "roofline_bytes_ms": 1e3 * t_bytes, "roofline_eps": roofline,
        "fraction_of_roofline": {k: v / roofline for k, v in rates.items()},
        "iterations": full.max_iters, "threads": torch.get_num_threads(),
        "sequential_exemplars": n_seq, "best_of": reps,
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
    }


def hmr_speed(args) -> None:
    """Exemplars/s of batched EFT for HMR (random weights) on ``args.device`` at each batch
    size, against sequential EFT; stops at the first batch size that runs out of memory."""
    from eft.models import HMR

    device = torch.device(args.device)
    body = BodyModel.load()
    model = HMR().to(device)
    full = EFTConfig(stop_loss_2d=0.0)
    g = torch.Generator().manual_seed(0)
    data = make_prior_set(load_pose_bank().val().poses, 64, PRIOR_VAL_SEED + 1, body)
    kp = crop_inputs(torch.as_tensor(data.keypoints, dtype=torch.float32),
                     torch.as_tensor(data.center).float(), torch.as_tensor(data.scale).float())

    def batch(n):
        images = torch.randn(n, 3, 224, 224, generator=g)
        return images, kp.repeat(n // len(kp) + 1, 1, 1)[:n]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    images, targets = batch(4)
    fit_sequential(model, body, FitTargets(targets[:1], images[:1]), full)  # warm-up
    sync()
    t = time.perf_counter()
    fit_sequential(model, body, FitTargets(targets, images), full)
    sync()
    result = {"device": str(device), "model": "HMR-ResNet50, random weights", "iterations": 20,
              "sequential_eps": 4 / (time.perf_counter() - t), "batched_eps": {}}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    for b in (int(x) for x in args.hmr_speed.split(",")):
        images, targets = batch(2 * b)
        try:
            fit_batched(model, body, FitTargets(targets[:b], images[:b]), full,
                        batch_size=b)  # warm-up
            sync()
            t = time.perf_counter()
            fit_batched(model, body, FitTargets(targets, images), full, batch_size=b)
            sync()
        except torch.OutOfMemoryError:
            result["out_of_memory_at"] = b
            break
        result["batched_eps"][str(b)] = 2 * b / (time.perf_counter() - t)
        print(f"HMR batched B={b}: {result['batched_eps'][str(b)]:.2f} exemplars/s", flush=True)
    best = max(result["batched_eps"].values(), default=float("nan"))
    result["best_ratio"] = best / result["sequential_eps"]
    result["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    result["command"] = f"python scripts/bench_fitting.py --hmr-speed {args.hmr_speed}"
    print(json.dumps(result, indent=1))
    out = RESULTS / f"bench_fitting_hmr_{device.type}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="exemplars for accuracy")
    ap.add_argument("--quick", action="store_true",
                    help="32 exemplars for accuracy, no sweep, short speed runs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--regressor", default="keypoint-prior-v1",
                    help="name or file of the keypoint regressor to start from")
    ap.add_argument("--no-sweep", action="store_true", help="skip the EFT settings sweep")
    ap.add_argument("--out", default=str(RESULTS / "bench_fitting.json"))
    ap.add_argument("--hmr-speed", default=None, metavar="B1,B2,...",
                    help="speed only: HMR-ResNet50 (random weights) EFT at these batch sizes "
                         "(20 iterations, scope 'all'), e.g. on a GPU; writes "
                         "bench_fitting_hmr_<device>.json")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.n, args.no_sweep = min(args.n, 32), True
    if args.hmr_speed:
        hmr_speed(args)
        return
    body = BodyModel.load()
    model = load_regressor(args.regressor)
    data = make_prior_set(load_pose_bank().val().poses, args.n, PRIOR_VAL_SEED + 1, body)
    centers, scales = torch.as_tensor(data.center), torch.as_tensor(data.scale)
    targets = crop_inputs(torch.as_tensor(data.keypoints, dtype=torch.float32),
                          centers.float(), scales.float())
    ids = [str(i) for i in data.ids]
    gt_rot = torch.as_tensor(data.pose, dtype=torch.float32).reshape(-1, 24, 3)
    gt_rot, gt_betas = axis_angle_to_rotmat(gt_rot), torch.as_tensor(data.betas).float()
    kw = dict(exemplar_ids=ids, centers=centers, scales=scales)
    ft = FitTargets(targets, ids=ids, centers=centers, scales=scales)

    def initial(t):
        with torch.no_grad():
            return model(t)

    accuracy, timing, all_fits = {}, {}, {}
    cfg = EFTConfig()
    runs = {
        "regressor": lambda: fit(model, body, ft, cfg.replace(max_iters=1), batch_size=64,
                                 progress=False),
        "smplify": lambda: smplify(body, targets, init=initial(targets), **kw),
        "eft": lambda: fit(model, body, ft, cfg, batch_size=16, progress=True),
        "eft_head": lambda: fit(model, body, ft, cfg.replace(scope="head"), batch_size=16,
                                progress=True),
    }
    for name, run in runs.items():
        t = time.perf_counter()
        fits = all_fits[name] = run()
        timing[name] = time.perf_counter() - t
        accuracy[name] = summarise(body, fits, gt_rot, gt_betas)
        print(name, json.dumps({k: round(v, 3) for k, v in accuracy[name].items()}))

    nll_rule = pose_nll_calibration(body, all_fits["eft"], gt_rot, gt_betas,
                                    cfg.rules.max_pose_nll)
    print("pose NLL rule", json.dumps(nll_rule))
    sweep = {}
    if not args.no_sweep:  # does fitting the 2D keypoints harder help 3D?
        for label, over in SWEEP.items():
            fits = fit(model, body, ft, cfg.replace(**over), batch_size=16, progress=False)
            sweep[label] = summarise(body, fits, gt_rot, gt_betas)
            print("sweep", label, json.dumps({k: round(v, 2) for k, v in sweep[label].items()}))

    speed = speed_run(model, body, targets, args)
    sub = targets[:64]
    t = time.perf_counter()
    smplify(body, sub, init=initial(sub), **{k: v[:64] for k, v in kw.items()})
    speed["smplify_eps"] = len(sub) / (time.perf_counter() - t)
    print(json.dumps(speed, indent=1))
    result = {
        "accuracy": accuracy, "speed": speed, "pose_nll_rule": nll_rule, "sweep": sweep,
        "n": args.n, "quick": args.quick,
        "regressor": args.regressor, "val_set": "synthetic, pose-bank val clips",
        "seconds": timing, "machine": platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": "python scripts/bench_fitting.py" + (" --quick" if args.quick else "")
                   + (f" --regressor {args.regressor}"
                      if args.regressor != "keypoint-prior-v1" else ""),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    rows = ["| method | MPJPE-14 | PA-MPJPE-14 | MPJPE-24 | PA-MPJPE-24 | median px | "
            "accepted |", "|---|---|---|---|---|---|---|"]
    for name, m in r["accuracy"].items():
        rows.append(f"| {name} | {m['mpjpe_mm']:.1f} | {m['pa_mpjpe_mm']:.1f} | "
                    f"{m['mpjpe24_mm']:.1f} | {m['pa_mpjpe24_mm']:.1f} | {m['median_px']:.1f} | "
                    f"{m['accept_rate']:.0%} |")
    s = r["speed"]
    c = s["per_exemplar"]
    e = s["eps"]
    frac = s["fraction_of_roofline"]
    names = {"sequential_today": "sequential, as before the flat engine",
             "sequential_lean": "sequential, lean (fused Adam, level-wise chain)",
             "vmap_b64": "batched `torch.func` B=64", "flat_b64": "flat engine B=64"}
    speed = ["| path | exemplars/s | of roofline |", "|---|---|---|"]
    speed += [f"| {names[k]} | {v:.1f} | {frac[k]:.1%} |" for k, v in e.items()]
    speed += [f"| flat engine B={b} | {v:.1f} | {v / s['roofline_eps']:.1%} |"
              for b, v in s["flat_eps_other_b"].items()]
    speed += [f"| scope head, {k} | {v:.1f} | |" for k, v in s["head_scope_eps"].items()]
    speed += [f"| SMPLify (B=64, 200 iters) | {s['smplify_eps']:.1f} | |"]
    ph = s.get("flat_b64_phases")
    if ph:
        speed += ["", "Flat engine B=64, where the time goes (a separate run): " + ", ".join(
            f"{k} {v / ph['total']:.0%}" for k, v in ph.items() if k != "total")
            + f" of {ph['total']:.2f} s."]
    load = s["load_average_before_after"]
    head = (f"Speed (20 iterations each, {s['threads']} thread, best of {s['best_of']}, one "
            f"run): flat engine B=64 = {s['ratio_flat_vs_sequential_today']:.1f}x the "
            f"sequential loop as it was, {s['ratio_flat_vs_sequential_lean']:.1f}x the lean "
            f"sequential loop, {frac['flat_b64']:.0%} of the roofline.\n\n")
    roof = (f"Roofline, measured in the same run: matmul peak {s['matmul_peak_gflops']:.0f} "
            f"GFLOP/s, streaming bandwidth {s['stream_bandwidth_gbs']:.1f} GB/s (best of "
            f"`a += b` and fused Adam over buffers far beyond the caches). Per "
            f"exemplar (P = {c['trained_params']:,} trained values, 20 forwards, 19 updates): "
            f"{c['matmul_flops'] / 1e6:.0f} MFLOP of matmul ({s['roofline_compute_ms']:.2f} ms)"
            f" + {c['adam_flops'] / 1e6:.0f} MFLOP of elementwise Adam, and at least "
            f"{c['min_bytes'] / 1e6:.0f} MB of traffic ({s['roofline_bytes_ms']:.2f} ms): "
            f"roofline {s['roofline_eps']:.0f} exemplars/s. Load average before/after: "
            f"{load[0][0]:.2f} / {load[1][0]:.2f} (2 cores).\n\n")
    extra = ""
    q = r.get("pose_nll_rule")
    if q:
        extra += (f"\nGMM pose-prior rule (`max_pose_nll = {q['threshold']:g}`): flags "
                  f"{q['flagged_rate']:.1%} of EFT fits; their PA-MPJPE-14 is "
                  f"{q.get('pa_mpjpe_flagged_mm', float('nan')):.1f} mm against "
                  f"{q['pa_mpjpe_kept_mm']:.1f} mm for the rest. True val poses: 99.9th "
                  f"percentile NLL {q['gt_pose_nll_p99_9']:.1f}.\n")
    if r.get("sweep"):
        extra += ("\nEFT settings that fit the 2D keypoints harder (PA-MPJPE-14 / median px):"
                  "\n\n| setting | PA-MPJPE-14 | median px |\n|---|---|---|\n")
        base = r["accuracy"]["eft"]
        extra += f"| defaults | {base['pa_mpjpe_mm']:.1f} | {base['median_px']:.1f} |\n"
        for label, m in r["sweep"].items():
            extra += f"| {label} | {m['pa_mpjpe_mm']:.1f} | {m['median_px']:.1f} |\n"
    return (f"# bench_fitting\n\n`{r['command']}` — {r['n']} synthetic exemplars (unseen clips), "
            f"errors in mm, starting from `{r['regressor']}`.\n\n" + "\n".join(rows)
            + "\n\n" + head + roof + "\n".join(speed) + "\n" + extra)


if __name__ == "__main__":
    main()
