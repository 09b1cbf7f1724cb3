"""The EFT paper's central claim on synthetic data: a regressor trained from scratch on
EFT pseudo-ground truth beats one trained on SMPLify fits.

    python scripts/bench_downstream.py                 # default size, ~15-25 min, 1 thread
    python scripts/bench_downstream.py --size large    # 4x the data, 3x the steps

1. An "in-the-wild" training set: synthetic people (default generator: COCO-17 labels
   with annotation noise, missing joints, truncation) posed from the pose bank's
   *train* clips.  Only its 2D labels are used to make pseudo-ground truth.
2. Pseudo-ground truth four ways: (a) EFT from the shipped prior, (b) the SMPLify
   baseline (initialised by the prior, as SPIN does), (c) the prior's regression alone,
   (d) the true SMPL parameters.  Fits are filtered as the export filters them
   (accepted by the quality rules) unless ``--no-filter``; the true ones are all kept.
3. A fresh KeypointRegressor is trained from scratch on each, with the same model,
   initialisation, losses (2D labels + SMPL rotations + betas + camera), augmentation,
   steps, batch size and seed (``eft.train.Trainer``).
4. All four are evaluated on the same val set: synthetic people from the pose bank's
   16 *val* clips, which neither the prior nor any of the four has seen.

Writes scripts/results/bench_downstream.json and bench_downstream.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from eft.annotations import AnnotationSet, Provenance
from eft.body import BodyModel
from eft.data.pose_bank import load_pose_bank
from eft.fitting import EFTConfig, fit, smplify
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import KeypointRegressor, load_regressor
from eft.train.augment import AugmentConfig, crop_inputs
from eft.train.data import TrainSet, annotation_train_set, data_mean_params
from eft.train.evaluate import evaluate_bodies, evaluate_model, metrics_table, synthetic_eval_set
from eft.train.losses import LossWeights
from eft.train.prior import PRIOR_VAL_SEED, make_prior_set
from eft.train.trainer import OptimConfig, Trainer, TrainerConfig

RESULTS = Path(__file__).resolve().parent / "results"
#: Seed of the in-the-wild training set (distinct from the prior's own training seeds).
ITW_SEED = 777
SIZES = {  # n_train, steps, n_val
    "tiny": (300, 100, 200),
    "default": (5000, 2500, 1000),
    "large": (20000, 7500, 2000),
}
METHODS = ("eft", "smplify", "regressor", "gt")
METRIC_KEYS = ("mpjpe_mm", "pa_mpjpe_mm", "mpjpe24_mm", "pa_mpjpe24_mm")


def pseudo_ground_truth(prior, body, targets, centers, scales, ids, batch: int):
    """Fits of the ITW set by EFT, SMPLify and the prior alone: {method: [Fit]} and
    the seconds each took."""
    kw = dict(exemplar_ids=ids, centers=centers, scales=scales)
    cfg = EFTConfig()
    fits, seconds = {}, {}
    t = time.perf_counter()
    fits["eft"] = fit(prior, body, targets, targets, cfg, batch_size=batch, progress=True, **kw)
    seconds["eft"] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        init = prior(targets)
    fits["smplify"] = smplify(body, targets, init=init, batch_size=1024, progress=True, **kw)
    seconds["smplify"] = time.perf_counter() - t
    t = time.perf_counter()
    fits["regressor"] = fit(prior, body, targets, targets, cfg.replace(max_iters=1),
                            batch_size=256, progress=False, **kw)
    seconds["regressor"] = time.perf_counter() - t
    return fits, seconds


def fit_accuracy(body, fits, gt_rot, gt_betas) -> dict:
    """Pseudo-ground truth against the truth (mm), all fits and the accepted ones."""
    rot = torch.as_tensor(np.stack([f.rotmat for f in fits]), dtype=torch.float32)
    betas = torch.as_tensor(np.stack([f.betas for f in fits]), dtype=torch.float32)
    ok = np.array([f.quality.accepted for f in fits])
    out = {"all": evaluate_bodies(body, rot, betas, gt_rot, gt_betas),
           "accept_rate": float(ok.mean())}
    if ok.any():
        idx = torch.as_tensor(np.flatnonzero(ok))
        out["accepted"] = evaluate_bodies(body, rot[idx], betas[idx], gt_rot[idx], gt_betas[idx])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--n-train", type=int, default=None, help="override the size's ITW set")
    ap.add_argument("--steps", type=int, default=None, help="override the size's steps")
    ap.add_argument("--n-val", type=int, default=None, help="override the size's val set")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--eft-batch", type=int, default=64, help="exemplars fitted together")
    ap.add_argument("--seed", type=int, default=0, help="training seed (same for all four)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="train each K times (seeds seed..seed+K-1); report mean and std")
    ap.add_argument("--no-filter", action="store_true",
                    help="train on every fit, not only the accepted ones")
    ap.add_argument("--itw-clips", choices=("train", "val-split"), default="train",
                    help="poses of the ITW set: the bank's train clips (the prior has seen "
                         "those poses), or half of the val clips (ITW) with the other half "
                         "for evaluation (nobody has seen either)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS / "bench_downstream.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_train, steps, n_val = SIZES[args.size]
    n_train = args.n_train or n_train
    steps = args.steps or steps
    n_val = args.n_val or n_val
    t0 = time.perf_counter()

    body = BodyModel.load()
    bank = load_pose_bank()
    prior = load_regressor("default")
    itw_poses, val_poses = bank.train().poses, bank.val().poses
    if args.itw_clips == "val-split":  # alternate val clips: ITW / evaluation
        vb = bank.val()
        clips = np.unique(vb.clip)
        itw_mask = np.isin(vb.clip, clips[0::2])
        itw_poses, val_poses = vb.poses[itw_mask], vb.poses[~itw_mask]
    print(f"ITW set: {n_train} synthetic people from {len(itw_poses)} poses "
          f"({args.itw_clips} clips, seed {ITW_SEED})")
    itw = make_prior_set(itw_poses, n_train, ITW_SEED, body, progress=True)
    val = synthetic_eval_set(n_val, PRIOR_VAL_SEED, body, poses=val_poses)
    centers = torch.as_tensor(itw.center)
    scales = torch.as_tensor(itw.scale)
    targets = crop_inputs(torch.as_tensor(itw.keypoints, dtype=torch.float32),
                          centers.float(), scales.float())
    ids = [str(i) for i in itw.ids]
    gt_rot = axis_angle_to_rotmat(torch.as_tensor(itw.pose, dtype=torch.float32)
                                  .reshape(-1, 24, 3))
    gt_betas = torch.as_tensor(itw.betas, dtype=torch.float32)
    t_data = time.perf_counter() - t0

    fits, fit_seconds = pseudo_ground_truth(prior, body, targets, centers, scales, ids,
                                            args.eft_batch)
    exemplars = list(itw.exemplars())
    train_sets: dict[str, TrainSet] = {}
    pseudo = {}
    for name in ("eft", "smplify", "regressor"):
        pseudo[name] = fit_accuracy(body, fits[name], gt_rot, gt_betas)
        aset = AnnotationSet.from_fits(fits[name], exemplars,
                                       Provenance.unknown(f"bench_downstream {name}"))
        train_sets[name] = annotation_train_set(aset, accepted_only=not args.no_filter)
        print(f"pseudo-GT {name}: {len(train_sets[name])} of {n_train} used; vs truth "
              + json.dumps({k: round(v, 1) for k, v in pseudo[name]["all"].items()}))
    train_sets["gt"] = TrainSet.from_synthetic(itw, target="annotated", with_smpl=True,
                                               with_kp3d=False)

    # One initialisation for all four: the bank's mean pose (train clips), upright.
    poses = torch.as_tensor(np.array(bank.train().poses[:20000]), dtype=torch.float32)
    mean_src = TrainSet.from_arrays(np.zeros((len(poses), 49, 3)), np.zeros((len(poses), 2)),
                                    np.ones(len(poses)),
                                    rotmat=axis_angle_to_rotmat(poses.reshape(-1, 24, 3)),
                                    betas=np.zeros((len(poses), 10)))
    seeds = [args.seed + r for r in range(args.repeats)]
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for seed in seeds:
        torch.manual_seed(seed)  # one initialisation per seed, shared by the four
        init_model = KeypointRegressor(width=256, hidden=256,
                                       mean_params=data_mean_params(mean_src))
        tcfg = TrainerConfig(
            optim=OptimConfig(steps=steps, batch_size=args.batch_size, lr=5e-4,
                              weight_decay=1e-4, optimizer="adamw", schedule="cosine",
                              seed=seed),
            loss=LossWeights(kp3d=0.0),
            augment=AugmentConfig(scale_range=(0.85, 1.3), center_jitter=0.08, flip_prob=0.5,
                                  rot_prob=0.0, kp_noise=0.005, kp_dropout=0.05),
            device="cpu", amp="off", eval_every=max(1, steps // 5), progress=True)
        for name in METHODS:
            model = copy.deepcopy(init_model)
            t = time.perf_counter()
            trainer = Trainer(model, body, train_sets[name], tcfg,
                              desc=f"train on {name} (seed {seed})",
                              evaluate=lambda step, m: evaluate_model(m, body, val))
            history = trainer.run()
            metrics = evaluate_model(model, body, val)
            runs[name].append({
                **{k: v for k, v in metrics.items() if k != "n"}, "seed": seed,
                "train_seconds": round(time.perf_counter() - t, 1),
                "curve": [{"step": e["step"], "pa_mpjpe_mm": round(e["pa_mpjpe_mm"], 2),
                           "mpjpe_mm": round(e["mpjpe_mm"], 2)} for e in history]})
            print(name, seed, json.dumps({k: round(v, 1) for k, v in metrics.items()}))
    results: dict = {}
    for name in METHODS:
        rs = runs[name]
        results[name] = {k: float(np.mean([r[k] for r in rs])) for k in METRIC_KEYS}
        results[name].update(n_train_used=len(train_sets[name]),
                             train_seconds=round(sum(r["train_seconds"] for r in rs), 1),
                             curve=rs[0]["curve"])
        if len(rs) > 1:
            results[name]["std"] = {k: float(np.std([r[k] for r in rs], ddof=1))
                                    for k in METRIC_KEYS}
            results[name]["per_seed"] = [{k: r[k] for k in ("seed", *METRIC_KEYS)}
                                         for r in rs]
        if name in pseudo:
            results[name]["pseudo_gt_vs_truth"] = pseudo[name]
            results[name]["fit_seconds"] = round(fit_seconds[name], 1)
    reference = evaluate_model(prior, body, val)
    result = {
        **results,
        "prior_reference": {k: v for k, v in reference.items() if k != "n"},
        "settings": {
            "size": args.size, "itw_clips": args.itw_clips, "n_train": n_train,
            "n_val": n_val, "steps": steps,
            "batch_size": args.batch_size, "seeds": seeds, "itw_seed": ITW_SEED,
            "val_seed": PRIOR_VAL_SEED, "filter": "all fits" if args.no_filter else
            "accepted fits only", "threads": args.threads,
            "itw_set": f"synthetic, pose-bank {args.itw_clips} clips, COCO-17 labels (default "
                       "generator)",
            "val_set": "synthetic, pose-bank val clips (unseen by the prior and all four)"
                       + (", the half not used for ITW" if args.itw_clips != "train" else ""),
            "model": "KeypointRegressor width 256 (same init for all)",
            "loss": "2D labels x5, rotmat x1, betas x0.001, camera x1 (x60); no 3D",
            "augment": "bbox scale x U(0.85,1.3), centre +-8%, flip 0.5, noise 0.005, "
                       "dropout 5%",
            "optim": "AdamW 5e-4 cosine, wd 1e-4",
        },
        "seconds": round(time.perf_counter() - t0, 1), "seconds_data": round(t_data, 1),
        "machine": platform.machine(), "torch": str(torch.__version__),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": "python scripts/bench_downstream.py"
                   + ("" if args.size == "default" else f" --size {args.size}")
                   + ("" if args.itw_clips == "train" else f" --itw-clips {args.itw_clips}")
                   + ("" if args.repeats == 1 else f" --repeats {args.repeats}"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    s = r["settings"]
    rows = {f"trained on {m} ({r[m]['n_train_used']} people)": r[m] for m in METHODS}
    rows["(the shipped prior itself, for reference)"] = r["prior_reference"]
    pseudo = ["| pseudo-GT | used | MPJPE-14 (all) | PA-MPJPE-14 (all) | PA-MPJPE-14 (used) | "
              "seconds |", "|---|---|---|---|---|---|"]
    for m in ("eft", "smplify", "regressor"):
        p = r[m]["pseudo_gt_vs_truth"]
        used = p.get("accepted", p["all"]) if s["filter"] == "accepted fits only" else p["all"]
        pseudo.append(f"| {m} | {r[m]['n_train_used']} | {p['all']['mpjpe_mm']:.1f} | "
                      f"{p['all']['pa_mpjpe_mm']:.1f} | {used['pa_mpjpe_mm']:.1f} | "
                      f"{r[m]['fit_seconds']:.0f} |")
    e, sm = r["eft"], r["smplify"]
    verdict = ("EFT beats SMPLify" if e["pa_mpjpe_mm"] < sm["pa_mpjpe_mm"]
               and e["mpjpe_mm"] < sm["mpjpe_mm"] else
               "EFT does NOT beat SMPLify on both metrics")
    seeds = s["seeds"]
    spread = ""
    if len(seeds) > 1:
        spread = (f"Means over {len(seeds)} training seeds; seed std of PA-MPJPE-14 / "
                  "MPJPE-14: " + ", ".join(
                      f"{m} {r[m]['std']['pa_mpjpe_mm']:.1f} / {r[m]['std']['mpjpe_mm']:.1f}"
                      for m in METHODS) + ".\n\n")
    return (
        f"# bench_downstream\n\n`{r['command']}` — {s['n_train']} synthetic in-the-wild people "
        f"({s['itw_clips']} clips, 2D labels only) -> pseudo-ground truth four ways -> a fresh "
        f"KeypointRegressor trained from scratch on each ({s['steps']} steps x "
        f"{s['batch_size']}, {s['filter']}), evaluated on {s['n_val']} people from unseen "
        f"val clips. Errors in mm. {r['seconds'] / 60:.1f} min on {s['threads']} thread(s).\n\n"
        + metrics_table(rows)
        + f"\n\n**{verdict}**: PA-MPJPE-14 {e['pa_mpjpe_mm']:.1f} vs {sm['pa_mpjpe_mm']:.1f}, "
        f"MPJPE-14 {e['mpjpe_mm']:.1f} vs {sm['mpjpe_mm']:.1f}.\n\n" + spread
        + "Pseudo-ground truth of the training set against the truth (mm):\n\n"
        + "\n".join(pseudo) + "\n")


if __name__ == "__main__":
    main()
