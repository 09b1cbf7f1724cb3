"""Benchmark fitting: accuracy of regressor / SMPLify / EFT / EFT-head, and EFT speed.

    python scripts/bench_fitting.py [--n 256] [--speed-n 64]

Accuracy runs on synthetic exemplars from the pose bank's unseen val clips (COCO-17
annotations with realistic noise, missing joints and truncation), starting from the
shipped keypoint prior.  Speed runs sequential EFT (EFT's own loop) and batched EFT at
several batch sizes in one process on this CPU, with every exemplar doing all 20
iterations, and times a large matmul for the machine's peak.  Writes
scripts/results/bench_fitting.json and bench_fitting.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from eft.body import BodyModel
from eft.data.pose_bank import load_pose_bank
from eft.fitting import (
    EFTConfig,
    fit,
    fit_batched,
    fit_sequential,
    load_default_pose_prior,
    smplify,
)
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import load_regressor
from eft.train.prior import PRIOR_VAL_SEED, crop_inputs, evaluate_bodies, make_prior_set

RESULTS = Path(__file__).resolve().parent / "results"


def summarise(body, fits, gt_rot, gt_betas) -> dict:
    rot = torch.as_tensor(np.stack([f.rotmat for f in fits]), dtype=torch.float32)
    betas = torch.as_tensor(np.stack([f.betas for f in fits]), dtype=torch.float32)
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
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def model_flops_per_step(model, batch: int) -> float:
    """Approximate FLOPs of one EFT step (forward + backward = 3x forward) per batch."""
    n_mac = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    iters = getattr(model, "n_iter", 3)
    head = sum(p.numel() for n, p in model.named_parameters()
               if p.dim() == 2 and n.split(".")[0] in ("fc1", "fc2", "decpose", "decshape",
                                                       "deccam"))
    per_sample = 2 * ((n_mac - head) + head * iters)
    return 3 * per_sample * batch


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
    fit_sequential(model, body, images[:1], targets[:1], full)  # warm-up
    sync()
    t = time.perf_counter()
    fit_sequential(model, body, images, targets, full)
    sync()
    result = {"device": str(device), "model": "HMR-ResNet50, random weights", "iterations": 20,
              "sequential_eps": 4 / (time.perf_counter() - t), "batched_eps": {}}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    for b in (int(x) for x in args.hmr_speed.split(",")):
        images, targets = batch(2 * b)
        try:
            fit_batched(model, body, images[:b], targets[:b], full, batch_size=b)  # warm-up
            sync()
            t = time.perf_counter()
            fit_batched(model, body, images, targets, full, batch_size=b)
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
    ap.add_argument("--speed-n", type=int, default=64, help="exemplars per speed run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-sweep", action="store_true", help="skip the EFT settings sweep")
    ap.add_argument("--out", default=str(RESULTS / "bench_fitting.json"))
    ap.add_argument("--hmr-speed", default=None, metavar="B1,B2,...",
                    help="speed only: HMR-ResNet50 (random weights) EFT at these batch sizes "
                         "(20 iterations, scope 'all'), e.g. on a GPU; writes "
                         "bench_fitting_hmr_<device>.json")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.hmr_speed:
        hmr_speed(args)
        return
    body = BodyModel.load()
    model = load_regressor("default")
    data = make_prior_set(load_pose_bank().val().poses, args.n, PRIOR_VAL_SEED + 1, body)
    centers, scales = torch.as_tensor(data.center), torch.as_tensor(data.scale)
    targets = crop_inputs(torch.as_tensor(data.keypoints, dtype=torch.float32),
                          centers.float(), scales.float())
    ids = [str(i) for i in data.ids]
    gt_rot = torch.as_tensor(data.pose, dtype=torch.float32).reshape(-1, 24, 3)
    gt_rot, gt_betas = axis_angle_to_rotmat(gt_rot), torch.as_tensor(data.betas).float()
    kw = dict(exemplar_ids=ids, centers=centers, scales=scales)

    def initial(t):
        with torch.no_grad():
            return model(t)

    accuracy, timing, all_fits = {}, {}, {}
    cfg = EFTConfig()
    runs = {
        "regressor": lambda: fit(model, body, targets, targets,
                                 cfg.replace(max_iters=1), batch_size=64,
                                 progress=False, **kw),
        "smplify": lambda: smplify(body, targets, init=initial(targets), **kw),
        "eft": lambda: fit(model, body, targets, targets, cfg, batch_size=16, progress=True,
                           **kw),
        "eft_head": lambda: fit(model, body, targets, targets, cfg.replace(scope="head"),
                                batch_size=16, progress=True, **kw),
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
            fits = fit(model, body, targets, targets, cfg.replace(**over), batch_size=16,
                       progress=False, **kw)
            sweep[label] = summarise(body, fits, gt_rot, gt_betas)
            print("sweep", label, json.dumps({k: round(v, 2) for k, v in sweep[label].items()}))

    # Speed: every exemplar runs all 20 iterations (no early stop).
    full = cfg.replace(stop_loss_2d=0.0)
    sub = targets[: args.speed_n]
    skw = dict(exemplar_ids=ids[: args.speed_n], centers=centers[: args.speed_n],
               scales=scales[: args.speed_n])
    n_seq = min(16, args.speed_n)
    t = time.perf_counter()
    fit_sequential(model, body, sub[:n_seq], sub[:n_seq], full,
                   exemplar_ids=skw["exemplar_ids"][:n_seq], centers=skw["centers"][:n_seq],
                   scales=skw["scales"][:n_seq])
    seq_eps = n_seq / (time.perf_counter() - t)
    batched = {}
    for b in (1, 16, 64, 256):
        n = max(b, min(args.speed_n, 4 * b)) if b < 256 else 256
        tgt = targets[:n] if n <= len(targets) else targets.repeat(n // len(targets) + 1, 1, 1)[:n]
        t = time.perf_counter()
        fit_batched(model, body, tgt, tgt, full, batch_size=b)
        batched[str(b)] = n / (time.perf_counter() - t)
        print(f"batched B={b}: {batched[str(b)]:.1f} exemplars/s")
    t = time.perf_counter()
    smplify(body, sub, init=initial(sub), **skw)
    smplify_eps = args.speed_n / (time.perf_counter() - t)
    peak = matmul_peak_flops()
    achieved = batched["64"] * 20 * model_flops_per_step(model, 1)
    speed = {
        "sequential_eps": seq_eps, "batched_eps": batched,
        "ratio_b64": batched["64"] / seq_eps, "smplify_eps": smplify_eps,
        "matmul_peak_gflops": peak / 1e9, "achieved_gflops_b64": achieved / 1e9,
        "flop_fraction_of_matmul_peak": achieved / peak, "iterations": 20,
        "threads": args.threads,
    }
    print(json.dumps(speed, indent=1))
    result = {
        "accuracy": accuracy, "speed": speed, "pose_nll_rule": nll_rule, "sweep": sweep,
        "n": args.n, "speed_n": args.speed_n,
        "regressor": "default keypoint prior", "val_set": "synthetic, pose-bank val clips",
        "seconds": timing, "machine": platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": "python scripts/bench_fitting.py",
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
    speed = ["| mode | exemplars/s |", "|---|---|",
             f"| sequential (EFT's loop) | {s['sequential_eps']:.1f} |"]
    speed += [f"| batched B={b} | {v:.1f} |" for b, v in s["batched_eps"].items()]
    speed += [f"| SMPLify (B=64, 200 iters) | {s['smplify_eps']:.1f} |"]
    extra = ""
    q = r.get("pose_nll_rule")
    if q:
        extra += (f"\nPose-prior rule (`max_pose_nll = {q['threshold']:g}`): flags "
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
            "errors in mm, starting from the shipped keypoint prior.\n\n" + "\n".join(rows)
            + f"\n\nSpeed (20 iterations each, {s['threads']} thread): batched B=64 / sequential = "
            f"{s['ratio_b64']:.2f}x; B=64 reaches {s['achieved_gflops_b64']:.2f} GFLOP/s = "
            f"{s['flop_fraction_of_matmul_peak']:.1%} of this CPU's matmul peak "
            f"({s['matmul_peak_gflops']:.0f} GFLOP/s).\n\n" + "\n".join(speed) + "\n" + extra)


if __name__ == "__main__":
    main()
