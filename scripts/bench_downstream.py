"""The EFT paper's central claim on synthetic data: a regressor trained from scratch on
EFT pseudo-ground truth beats one trained on SMPLify fits.

    python scripts/bench_downstream.py                 # default size, ~21 min, 1 thread
    python scripts/bench_downstream.py --size large    # 4x the data, 3x the steps

1. The prior that makes the pseudo-labels, and the poses of an "in-the-wild" (ITW)
   training set, chosen by ``--itw-clips``:
   ``held-out`` (default): the pose bank's 88 *train* clips are split by clip into two
   seeded halves A and B; a fresh prior (``eft.train.prior.train_prior``, the shipped
   prior's trainer, fewer steps) is trained on synthetic people from A only and cached
   under ``--cache``; the ITW people are posed from B, which that prior never saw.
   ``train``: the shipped prior, ITW posed from all train clips (the prior has seen
   those poses).  ``val-split``: the shipped prior, ITW from half of the 16 val clips,
   evaluation on the other half.
2. The ITW set: synthetic people (default generator: COCO-17 labels with annotation
   noise, missing joints, truncation).  Only its 2D labels are used to make
   pseudo-ground truth.
3. Pseudo-ground truth four ways: (a) EFT from the prior, (b) the SMPLify baseline
   (initialised by the prior, as SPIN does), (c) the prior's regression alone, (d) the
   true SMPL parameters.  Fits are filtered as the export filters them (accepted by the
   quality rules) unless ``--no-filter``; the true ones are all kept.
4. A fresh KeypointRegressor is trained from scratch on each, with the same model,
   initialisation, losses (2D labels + SMPL rotations + betas + camera), augmentation,
   steps, batch size and seed (``eft.train.Trainer``).
5. All four are evaluated on the same val set: synthetic people from the pose bank's
   16 *val* clips (half of them with ``val-split``), which neither the prior nor any of
   the four has seen.

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
from eft.fitting import EFTConfig, FitTargets, fit, fits_to_tensors, smplify
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import KeypointRegressor, load_regressor, save_regressor
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.augment import AugmentConfig, crop_inputs
from eft.train.data import TrainSet, annotation_train_set, data_mean_params
from eft.train.evaluate import evaluate_bodies, evaluate_model, metrics_table, synthetic_eval_set
from eft.train.losses import LossWeights
from eft.train.prior import PRIOR_V1, PRIOR_VAL_SEED, make_prior_set, prior_config, train_prior
from eft.train.trainer import OptimConfig, OutputSpec, Trainer, TrainerConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"
#: Seed of the in-the-wild training set (distinct from the prior's own training seeds).
ITW_SEED = 777
SIZES = {  # n_train, steps, n_val
    "tiny": (300, 100, 200),
    "default": (5000, 2500, 1000),
    "large": (20000, 7500, 2000),
}
#: The held-out design's fresh prior: synthetic people from clip half A, steps.
PRIOR_SIZES = {
    "tiny": (2000, 200),
    "default": (40000, 5000),
    "large": (80000, 12000),
}
#: Seeds of the train-clip split and of the fresh prior's data (its training seed is --seed).
SPLIT_SEED = 7
PRIOR_DATA_SEED = 0
ITW_DESIGNS = ("held-out", "train", "val-split")
METHODS = ("eft", "smplify", "regressor", "gt")
METRIC_KEYS = ("mpjpe_mm", "pa_mpjpe_mm", "mpjpe24_mm", "pa_mpjpe24_mm")


def pseudo_ground_truth(prior, body, targets, centers, scales, ids, batch: int):
    """Fits of the ITW set by EFT, SMPLify and the prior alone: {method: [Fit]} and
    the seconds each took."""
    kw = dict(exemplar_ids=ids, centers=centers, scales=scales)
    ft = FitTargets(targets, ids=ids, centers=centers, scales=scales)
    cfg = EFTConfig()
    fits, seconds = {}, {}
    t = time.perf_counter()
    fits["eft"] = fit(prior, body, ft, cfg, batch_size=batch, progress=True)
    seconds["eft"] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        init = prior(targets)
    fits["smplify"] = smplify(body, targets, init=init, batch_size=1024, progress=True, **kw)
    seconds["smplify"] = time.perf_counter() - t
    t = time.perf_counter()
    fits["regressor"] = fit(prior, body, ft, cfg.replace(max_iters=1), batch_size=256,
                            progress=False)
    seconds["regressor"] = time.perf_counter() - t
    return fits, seconds


def fit_accuracy(body, fits, gt_rot, gt_betas) -> dict:
    """Pseudo-ground truth against the truth (mm), all fits and the accepted ones."""
    rot, betas = fits_to_tensors(fits)
    ok = np.array([f.quality.accepted for f in fits])
    out = {"all": evaluate_bodies(body, rot, betas, gt_rot, gt_betas),
           "accept_rate": float(ok.mean())}
    if ok.any():
        idx = torch.as_tensor(np.flatnonzero(ok))
        out["accepted"] = evaluate_bodies(body, rot[idx], betas[idx], gt_rot[idx], gt_betas[idx])
    return out


def split_train_clips(bank, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The bank's train clip ids in two disjoint halves (A, B), by a seeded permutation
    of the clips (a clip's mirrored poses stay with it); each half sorted."""
    clips = np.unique(bank.train().clip)
    perm = np.random.default_rng(seed).permutation(clips)
    half = len(perm) // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def clip_poses(bank, clips) -> np.ndarray:
    """(N, 72) poses of the bank's rows from ``clips``."""
    return bank.poses[np.isin(bank.clip, clips)]


def fresh_prior(poses, n: int, steps: int, seed: int, body, val, cache: Path | None,
                key: dict):
    """A KeypointRegressor trained from scratch on ``n`` synthetic people posed from
    ``poses``, exactly as the shipped prior v1 (``train_prior``, ``PRIOR_V1``) but
    for ``steps``; read from ``cache`` when an earlier run with the same ``key`` (plain
    settings, incl. the clip names) saved it there.  Returns (model, info)."""
    name = "prior_{split}_s{split_seed}_n{n}_steps{steps}_seed{seed}.pt".format(**key)
    path = cache / name if cache is not None else None
    if path is not None and path.is_file():
        model = load_regressor(path)
        meta = model.eft_metadata
        if meta.get("key") == key:
            print(f"fresh prior: cached {path}")
            return model, {**{k: v for k, v in meta.items() if k != "key"},
                           "cached": _shown(path)}
        print(f"fresh prior: {path} was trained with other settings; training again")
    t = time.perf_counter()
    data = TrainSet.from_synthetic(make_prior_set(poses, n, PRIOR_DATA_SEED, body,
                                                  progress=True))
    t_data = time.perf_counter() - t
    # The initialisation from ``seed``: torch's global generator starts from a different
    # seed in every process, so an unseeded init made each run's prior (and its early
    # curve: 93.5 vs 136.9 mm at step 1000, same code) a different one.
    torch.manual_seed(seed)
    model = KeypointRegressor(width=256, hidden=256, mean_params=data_mean_params(data))
    cfg = prior_config(PRIOR_V1, steps=steps, eval_every=max(1, steps // 5), seed=seed)
    log = train_prior(model, body, data, cfg, on_eval=lambda step, m: evaluate_model(m, body, val))
    model.eval()
    info = {"train_size": n, "n_poses": len(poses), "steps": steps, "seed": seed,
            "data_seed": PRIOR_DATA_SEED,
            "val": {k: v for k, v in evaluate_model(model, body, val).items() if k != "n"},
            "curve": [{"step": e["step"], "pa_mpjpe_mm": round(e["pa_mpjpe_mm"], 2),
                       "mpjpe_mm": round(e["mpjpe_mm"], 2)} for e in log],
            "seconds": round(time.perf_counter() - t, 1), "seconds_data": round(t_data, 1)}
    if path is not None:
        save_regressor(model, path, key=key, **info)
        info["cached"] = f"written to {_shown(path)}"
    return model, info


def shipped_prior_info(prior) -> dict:
    """Steps, data size and val accuracy of the shipped prior, from its metadata."""
    meta = getattr(prior, "eft_metadata", {})
    return {"train_size": meta.get("train_size"),
            "steps": meta.get("config", {}).get("steps"),
            "val_card": meta.get("val")}


def held_out_design(bank, body, val, args):
    """Split the train clips into halves A and B, train (or read) the fresh prior on A.
    Returns (prior, prior info, A's poses, B's poses, clip split info)."""
    clips_a, clips_b = split_train_clips(bank)
    poses_a, poses_b = clip_poses(bank, clips_a), clip_poses(bank, clips_b)
    names_a = [bank.clip_names[c] for c in clips_a]
    split = {"seed": SPLIT_SEED, "clips_a": len(clips_a), "clips_b": len(clips_b),
             "poses_a": len(poses_a), "poses_b": len(poses_b), "names_a": names_a,
             "names_b": [bank.clip_names[c] for c in clips_b]}
    n, steps = PRIOR_SIZES[args.size]
    n, steps = args.prior_train_size or n, args.prior_steps or steps
    print(f"train clips split {len(clips_a)} / {len(clips_b)} (seed {SPLIT_SEED}): fresh "
          f"prior on {n} people from {len(poses_a)} poses of half A, {steps} steps")
    key = {"split": "heldout", "split_seed": SPLIT_SEED, "n": n, "steps": steps,
           "seed": args.seed, "init": "seeded", "clips_a": names_a,
           "body": body.content_hash}  # "init": priors cached with an unseeded init retrain
    prior, info = fresh_prior(poses_a, n, steps, args.seed, body, val,
                              Path(args.cache) if args.cache else None, key)
    info["kind"] = "fresh, trained on clip half A only"
    return prior, info, poses_a, poses_b, split


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
    ap.add_argument("--itw-clips", choices=ITW_DESIGNS, default="held-out",
                    help="held-out: a fresh prior trained on half of the bank's train clips, "
                         "ITW posed from the other half; train: the shipped prior, ITW from "
                         "the train clips (the prior has seen those poses); val-split: the "
                         "shipped prior, ITW from half of the val clips, evaluation on the "
                         "other half")
    ap.add_argument("--prior-steps", type=int, default=None,
                    help="held-out: the fresh prior's steps (default: by --size)")
    ap.add_argument("--prior-train-size", type=int, default=None,
                    help="held-out: the fresh prior's synthetic people (default: by --size)")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench_downstream"),
                    help="held-out: folder the fresh prior is kept in for re-runs ('' for none)")
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
    itw_poses, val_poses = bank.train().poses, bank.val().poses
    mean_poses = itw_poses  # the downstream models' IEF start: the prior's training poses
    split = None
    if args.itw_clips == "val-split":  # alternate val clips: ITW / evaluation
        vb = bank.val()
        clips = np.unique(vb.clip)
        itw_mask = np.isin(vb.clip, clips[0::2])
        itw_poses, val_poses = vb.poses[itw_mask], vb.poses[~itw_mask]
    val = synthetic_eval_set(n_val, PRIOR_VAL_SEED, body, poses=val_poses)
    t_prior = time.perf_counter()
    if args.itw_clips == "held-out":  # fresh prior on train-clip half A, ITW from half B
        prior, prior_info, mean_poses, itw_poses, split = held_out_design(
            bank, body, val, args)
    else:
        prior = load_regressor("default")
        prior_info = {"kind": "shipped (eft/models/assets/keypoint_prior.pt)",
                      **shipped_prior_info(prior)}
    t_prior = time.perf_counter() - t_prior
    print(f"ITW set: {n_train} synthetic people from {len(itw_poses)} poses "
          f"({args.itw_clips} clips, seed {ITW_SEED})")
    itw = make_prior_set(itw_poses, n_train, ITW_SEED, body, progress=True)
    centers = torch.as_tensor(itw.center)
    scales = torch.as_tensor(itw.scale)
    targets = crop_inputs(torch.as_tensor(itw.keypoints, dtype=torch.float32),
                          centers.float(), scales.float())
    ids = [str(i) for i in itw.ids]
    gt_rot = axis_angle_to_rotmat(torch.as_tensor(itw.pose, dtype=torch.float32)
                                  .reshape(-1, 24, 3))
    gt_betas = torch.as_tensor(itw.betas, dtype=torch.float32)
    t_data = time.perf_counter() - t0 - t_prior

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

    # One initialisation for all four: the mean pose of the prior's training clips
    # (held-out: half A only), upright.
    poses = torch.as_tensor(np.array(mean_poses[:20000]), dtype=torch.float32)
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
            device="cpu", amp="off",
            output=OutputSpec(eval_every=max(1, steps // 5), checkpoint_every=0, progress=True))
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
    design = {
        "held-out": "fresh prior trained on half A of the train clips; ITW posed from half "
                    "B (unseen by the prior); eval on the 16 val clips",
        "train": "shipped prior; ITW posed from all train clips (seen by the prior); eval "
                 "on the 16 val clips",
        "val-split": "shipped prior; ITW posed from 8 val clips; eval on the other 8",
    }[args.itw_clips]
    out = Path(args.out)
    command = ("python scripts/bench_downstream.py"
               + ("" if args.size == "default" else f" --size {args.size}")
               + ("" if args.itw_clips == "held-out" else f" --itw-clips {args.itw_clips}")
               + ("" if args.prior_steps is None else f" --prior-steps {args.prior_steps}")
               + ("" if args.prior_train_size is None
                  else f" --prior-train-size {args.prior_train_size}")
               + ("" if args.repeats == 1 else f" --repeats {args.repeats}")
               + ("" if out.resolve() == (RESULTS / "bench_downstream.json").resolve()
                  else f" --out {_shown(out)}"))
    result = {
        **results,
        "prior_reference": {k: v for k, v in reference.items() if k != "n"},
        "prior": prior_info,
        "clip_split": split,
        "settings": {
            "design": design,
            "size": args.size, "itw_clips": args.itw_clips, "n_train": n_train,
            "n_val": n_val, "steps": steps,
            "batch_size": args.batch_size, "seeds": seeds, "itw_seed": ITW_SEED,
            "val_seed": PRIOR_VAL_SEED, "filter": "all fits" if args.no_filter else
            "accepted fits only", "threads": args.threads,
            "itw_set": f"synthetic, pose-bank {args.itw_clips} clips, COCO-17 labels (default "
                       "generator)",
            "val_set": "synthetic, pose-bank val clips (unseen by the prior and all four)"
                       + (", the half not used for ITW" if args.itw_clips == "val-split"
                          else ""),
            "model": "KeypointRegressor width 256 (same init for all: IEF from the mean pose "
                     "of the prior's training clips)",
            "loss": "2D labels x5, rotmat x1, betas x0.001, camera x1 (x60); no 3D",
            "augment": "bbox scale x U(0.85,1.3), centre +-8%, flip 0.5, noise 0.005, "
                       "dropout 5%",
            "optim": "AdamW 5e-4 cosine, wd 1e-4",
        },
        "seconds": round(time.perf_counter() - t0, 1), "seconds_prior": round(t_prior, 1),
        "seconds_data": round(t_data, 1),
        "machine": platform.machine(), "torch": str(torch.__version__),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": command,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def prior_lines(r: dict) -> str:
    """Markdown: the design, what the prior was and (held-out) the clip split."""
    p, split = r.get("prior"), r.get("clip_split")
    if not p:
        return ""
    ref = r["prior_reference"]
    text = (f"Design: {r['settings']['design']}.\n\n"
            f"Prior: {p['kind']}, {p.get('train_size')} synthetic people, {p.get('steps')} "
            f"steps; on this val set {ref['pa_mpjpe_mm']:.1f} mm PA-MPJPE-14, "
            f"{ref['mpjpe_mm']:.1f} MPJPE-14")
    if "seconds" in p:
        text += f"; trained in {p['seconds'] / 60:.1f} min"
        if not str(p.get("cached", "written")).startswith("written"):
            text += " (by an earlier run: read from the cache)"
    text += ".\n\n"
    if split:
        text += (f"Clip split (seed {split['seed']}): half A {split['clips_a']} clips / "
                 f"{split['poses_a']} poses (prior), half B {split['clips_b']} clips / "
                 f"{split['poses_b']} poses (ITW); clip names in the JSON.\n\n")
    return text


def markdown(r: dict) -> str:
    s = r["settings"]
    rows = {f"trained on {m} ({r[m]['n_train_used']} people)": r[m] for m in METHODS}
    prior_label = ("the fresh half-A prior" if r.get("clip_split")
                   else "the shipped prior")
    rows[f"({prior_label} itself, for reference)"] = r["prior_reference"]
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
        + prior_lines(r) + metrics_table(rows)
        + f"\n\n**{verdict}**: PA-MPJPE-14 {e['pa_mpjpe_mm']:.1f} vs {sm['pa_mpjpe_mm']:.1f}, "
        f"MPJPE-14 {e['mpjpe_mm']:.1f} vs {sm['mpjpe_mm']:.1f}.\n\n" + spread
        + "Pseudo-ground truth of the training set against the truth (mm):\n\n"
        + "\n".join(pseudo) + "\n")


if __name__ == "__main__":
    main()
