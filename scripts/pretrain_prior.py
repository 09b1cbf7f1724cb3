"""Train the embedded keypoint prior on the CPU (v9 by default, v1-v8 kept reproducible).

    python scripts/pretrain_prior.py                 # prior v9, the shipped default
    python scripts/pretrain_prior.py --recipe v8     # prior v8 (from v7; v9 starts here)
    python scripts/pretrain_prior.py --recipe v7     # prior v7 (from v6; v8 starts here)
    python scripts/pretrain_prior.py --recipe v6     # prior v6 (from v5; v7 starts here)
    python scripts/pretrain_prior.py --recipe v5     # prior v5 (from v4; v6 starts here)
    python scripts/pretrain_prior.py --recipe v4     # prior v4 (from scratch; v5 starts here)
    python scripts/pretrain_prior.py --recipe v3     # prior v3 (half v4's steps, no clip)
    python scripts/pretrain_prior.py --recipe v2     # prior v2 (width 256)
    python scripts/pretrain_prior.py --recipe v1 --out eft/models/assets/keypoint_prior_v1.pt
    python scripts/pretrain_prior.py --steps 500 --train-size 20000 --out /tmp/prior.pt

v1: synthetic exemplars (COCO-17 slots only) from the pose bank's *train* clips.
v2: synthetic exemplars with every slot annotated plus seated / kneeling / bending
variants, each sample's inputs restricted to one real keypoint format, hidden limbs,
and real 2D labels (COCO 2017 train, MPII train) as 2D-only samples with a GMM pose
prior hinge (``eft.train.prior.PRIOR_V2``).  v3: v2's recipe with a network twice as
wide (width 512, 3.2x the parameters).  v4: v3's network trained twice as long
(48,000 steps) with the gradient norm clipped at 5 (``eft.train.prior.PRIOR_V4``).
v5: v4's recipe again, started from v4's weights at half the peak rate with another
batch seed (``eft.train.prior.PRIOR_V5``; 96,000 steps in all).  v6: v5's recipe again
from v5's weights, batch seed 2 (``eft.train.prior.PRIOR_V6``; 144,000 steps in all).
v7: 12,000 more steps from v6's weights with 70 % of every batch real labels, each with a
limb hidden from its input (``eft.train.prior.PRIOR_V7``).  v8: v7's recipe again from
v7's weights, batch seed 4, the real people's hidden joints weighing 10x the others in
the 2D loss (``eft.train.prior.PRIOR_V8``).  v9: v8's recipe again from v8's weights,
batch seed 5, the real people's hidden joints counting their distance instead of its
square (``eft.train.prior.PRIOR_V9``).
``--init`` warm-starts any recipe from a shipped prior or a file.
``--cycle`` adds the view-cycle loss on the real samples (2D-3D self-supervision: each
real person's predicted body is turned to a random view, projected and lifted again, and
must come back the same); measured on v3's recipe and not shipped (README, "Prior
v3").  Validation uses the bank's *val* clips, which the prior never sees.  Writes the
checkpoint and a model card beside it; ``--work-dir`` keeps checkpoints so an
interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from eft.annotations import read_annotations
from eft.body import BodyModel
from eft.data.readers import read_dataset
from eft.models import KeypointRegressor, load_regressor, save_regressor
from eft.synthetic.exemplars import SyntheticSet, generate
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.data import (
    accepted_fit_poses,
    annotation_train_set,
    concat_sets,
    data_mean_params,
)
from eft.train.prior import (
    PRIOR_V1,
    PRIOR_V2,
    PRIOR_V2_REAL_FRACTION,
    PRIOR_V4,
    PRIOR_V5,
    PRIOR_V5_INIT,
    PRIOR_V6,
    PRIOR_V6_INIT,
    PRIOR_V7,
    PRIOR_V7_INIT,
    PRIOR_V7_REAL_FRACTION,
    PRIOR_V8,
    PRIOR_V8_INIT,
    PRIOR_V9,
    PRIOR_V9_INIT,
    PRIOR_VAL_SEED,
    V2_SYNTHETIC,
    TensorSet,
    config_dict,
    evaluate_mean_pose,
    evaluate_prior,
    make_prior_set,
    make_prior_v2_sets,
    metrics_table,
    prior_config,
    real_2d_set,
    train_prior,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EFT_TEST_DATA", ROOT.parent / "shared" / "data"))
#: Real 2D label sets the v2 recipe reads: name -> (reader kind, path under DATA).
#: MPII train leaves out the images of the Tompson validation split that
#: scripts/bench_real2d.py measures on.
REAL_LABELS = {
    "coco2017-train": ("coco", "coco2017_keypoints/person_keypoints_train2017.json", {}),
    "mpii-train": ("mpii", "mpii_2d/mpii_human_pose.csv",
                   {"exclude_images": "mpii_2d/mpii_valid_tompson.h5"}),
}


#: Encoder and IEF width of each recipe's network.
RECIPE_WIDTH = {"v1": 256, "v2": 256, "v3": 512, "v4": 512, "v5": 512, "v6": 512,
                "v7": 512, "v8": 512, "v9": 512}
#: Each recipe's training configuration (v3 is v2's with a wider network; v4 trains v3's
#: network twice as long, the gradient clipped).
RECIPE_CONFIG = {"v1": PRIOR_V1, "v2": PRIOR_V2, "v3": PRIOR_V2, "v4": PRIOR_V4,
                 "v5": PRIOR_V5, "v6": PRIOR_V6, "v7": PRIOR_V7,
                 "v8": PRIOR_V8, "v9": PRIOR_V9}
#: Recipes that start from a shipped prior's weights instead of from scratch.
RECIPE_INIT = {"v5": PRIOR_V5_INIT, "v6": PRIOR_V6_INIT, "v7": PRIOR_V7_INIT,
               "v8": PRIOR_V8_INIT, "v9": PRIOR_V9_INIT}
#: Share of every batch drawn from the real 2D labels, where a recipe differs from v2's.
RECIPE_REAL_FRACTION = {"v7": PRIOR_V7_REAL_FRACTION, "v8": PRIOR_V7_REAL_FRACTION,
                        "v9": PRIOR_V7_REAL_FRACTION}
#: The recipe of the shipped default prior.
DEFAULT_RECIPE = "v9"
#: Recipes with every input format and real 2D labels (v2's data).
REAL_RECIPES = ("v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=tuple(RECIPE_WIDTH), default=DEFAULT_RECIPE)
    ap.add_argument("--out", default=None,
                    help="checkpoint (default eft/models/assets/keypoint_prior_<recipe>.pt)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None,
                    help="peak learning rate (recipe value by default)")
    ap.add_argument("--train-size", type=int, default=None,
                    help="synthetic people (v1 80,000; v2 100,000 + 12,000 per variant)")
    ap.add_argument("--variants", type=int, default=12_000)
    ap.add_argument("--variant-repeat", type=int, default=1,
                    help="v2 recipes: the seated, kneeling and bent-over synthetic people "
                         "this many times over in the training set (default 1)")
    ap.add_argument("--real", default=",".join(REAL_LABELS),
                    help="v2: comma-separated real 2D label sets (empty: none)")
    ap.add_argument("--pseudo", action="append", default=[],
                    help="v2, EFT self-training: an annotation file of EFT fits of real "
                         "labels (eft fit output; repeatable). Its accepted fits become SMPL "
                         "targets, its rejected people 2D-only samples; replaces --real")
    ap.add_argument("--reposed", action="append", default=[],
                    help="v2 recipes: an annotation file of EFT fits (repeatable) whose "
                         "accepted fits' body poses pose extra synthetic people (the fits "
                         "as a pose bank), added to the synthetic training people")
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest for this small model on a shared CPU)")
    ap.add_argument("--data-cache", default=None,
                    help="folder to keep the generated synthetic sets in, for re-runs")
    ap.add_argument("--work-dir", default=None,
                    help="folder for training checkpoints; a rerun resumes from them")
    ap.add_argument("--width", type=int, default=None,
                    help="encoder and IEF width (v1, v2: 256; v3-v9: 512); from --init "
                         "a narrower prior, its encoder is widened to this, computing the "
                         "same function (KeypointRegressor.widened), the IEF head kept")
    ap.add_argument("--res-blocks", type=int, default=0,
                    help="residual blocks after the encoder; from --init a prior with "
                         "fewer, the missing ones are added computing the same function "
                         "(KeypointRegressor.deepened)")
    ap.add_argument("--real-mask-prob", type=float, default=None,
                    help="v2: share of synthetic samples that take a real person's missing "
                         "joints (calibrated missingness; recipe value by default)")
    ap.add_argument("--cycle", default=None, metavar="KP3D,ROTMAT",
                    help="view-cycle loss weights on real samples (2D-3D self-supervision; "
                         "recipe value by default)")
    ap.add_argument("--flip-prob", type=float, default=None,
                    help="left/right flip probability (recipe value by default)")
    ap.add_argument("--hide-limb-prob", type=float, default=None,
                    help="share of samples with one limb hidden (recipe value by default)")
    ap.add_argument("--hide-limb-prob-2d", type=float, default=None,
                    help="share of the 2D-only (real) samples with one limb hidden "
                         "(default: --hide-limb-prob's value)")
    ap.add_argument("--clean-input-prob", type=float, default=None,
                    help="share of the synthetic samples whose inputs are their exact 2D "
                         "targets, without annotation noise (recipe value by default: 0)")
    ap.add_argument("--skeleton-jitter", type=float, default=None,
                    help="share of the synthetic samples whose input keypoints are "
                         "redrawn from a skeleton of other proportions (limb bones, hip "
                         "and shoulder widths, torso slots; recipe value by default: 0)")
    ap.add_argument("--hidden-2d", type=float, default=None,
                    help="2D-loss weight of real people's joints absent from the input, "
                         "x the others (recipe value by default; v8: 10)")
    ap.add_argument("--kp2d-distance", type=float, default=None,
                    help="> 0: real samples' 2D loss is the joints' distance with this "
                         "weight instead of the squared distance (recipe value by "
                         "default: 0, off)")
    ap.add_argument("--hidden-2d-distance", type=float, default=None,
                    help="> 0: real people's hidden joints count their distance with this "
                         "weight instead of the squared distance x kp2d x --hidden-2d "
                         "(recipe value by default: v9 40, others 0)")
    ap.add_argument("--kp3d-distance", type=float, default=None,
                    help="> 0: the 3D keypoint loss is each joint's distance with this "
                         "weight instead of the squared distance x kp3d (recipe value by "
                         "default: 0, off)")
    ap.add_argument("--meta-eft", type=float, default=None,
                    help="> 0: weight of the meta-EFT term (eft.train.meta: the loss of "
                         "samples read after EFT adapted the network to them; recipe "
                         "value by default: 0, off)")
    ap.add_argument("--meta-eft-samples", type=int, default=None,
                    help="samples per batch the meta-EFT term adapts to (default 64)")
    ap.add_argument("--real-fraction", type=float, default=None,
                    help="v2: share of every batch drawn from the real 2D labels (recipe "
                         f"value by default: {PRIOR_V2_REAL_FRACTION}; v7-v9 "
                         f"{PRIOR_V7_REAL_FRACTION})")
    ap.add_argument("--grad-clip", type=float, default=None,
                    help="gradient-norm clip, 0 = none (recipe value by default)")
    ap.add_argument("--init", default=None,
                    help="start from this regressor (a shipped prior's name or a file) "
                         "instead of from scratch (recipe value by default: v5 starts "
                         "from keypoint-prior-v4)")
    ap.add_argument("--no-card", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    v2 = args.recipe in REAL_RECIPES  # v2's data and inputs
    args.width = args.width or RECIPE_WIDTH[args.recipe]
    base = RECIPE_CONFIG[args.recipe]  # --seed shifts the recipe's optimiser seed
    cfg = prior_config(base, seed=base.optim.seed + args.seed, steps=args.steps,
                       batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every,
                       real_mask_prob=args.real_mask_prob,
                       cycle=(None if args.cycle is None
                              else tuple(float(v) for v in args.cycle.split(","))),
                       flip_prob=args.flip_prob, grad_clip=args.grad_clip,
                       hide_limb_prob=args.hide_limb_prob,
                       hide_limb_prob_2d=args.hide_limb_prob_2d,
                       hidden_2d=args.hidden_2d, kp2d_distance=args.kp2d_distance,
                       hidden_2d_distance=args.hidden_2d_distance,
                       clean_input_prob=args.clean_input_prob,
                       skeleton_jitter_prob=args.skeleton_jitter,
                       kp3d_distance=args.kp3d_distance, meta_eft=args.meta_eft,
                       meta_eft_samples=args.meta_eft_samples)
    real_fraction = RECIPE_REAL_FRACTION.get(args.recipe, PRIOR_V2_REAL_FRACTION) if v2 else 0.0
    if args.real_fraction is not None:
        if not v2 or not 0.0 <= args.real_fraction < 1.0:
            ap.error("--real-fraction needs a v2-family recipe and 0 <= value < 1")
        real_fraction = args.real_fraction
    if args.variant_repeat < 1:
        ap.error("--variant-repeat must be at least 1")
    if args.reposed and not v2:
        ap.error("--reposed needs a v2-family recipe")
    train_size = args.train_size or (100_000 if v2 else 80_000)
    out_path = args.out or str(ROOT / f"eft/models/assets/keypoint_prior_{args.recipe}.pt")

    body = BodyModel.load()
    bank = load_pose_bank()
    train_poses, val_poses = bank.train().poses, bank.val().poses
    print(f"pose bank: {len(train_poses)} train / {len(val_poses)} val poses")
    if v2:
        train_sets = [_cached(args.data_cache, f"v2train_{train_size}_{args.variants}_"
                              f"{args.seed}_{i}", None) for i in range(4)]
        if any(t is None for t in train_sets):
            train_sets = make_prior_v2_sets(train_poses, train_size, args.variants, args.seed,
                                            body, progress=True)
            for i, t in enumerate(train_sets):
                _cached(args.data_cache, f"v2train_{train_size}_{args.variants}_"
                        f"{args.seed}_{i}", lambda t=t: t)
        # --variant-repeat K: the seated, kneeling and bent-over people K times over
        parts = ([TensorSet.from_synthetic(t) for t in train_sets[:1]]
                 + [TensorSet.from_synthetic(t) for t in train_sets[1:]] * args.variant_repeat)
        if args.reposed:  # the fits' poses through the same generator
            fit_poses = np.concatenate([accepted_fit_poses(read_annotations(p))
                                        for p in args.reposed])
            print(f"reposed fits: {len(fit_poses)} poses")
            parts.append(TensorSet.from_synthetic(generate(
                fit_poses, len(fit_poses), args.seed + 7, V2_SYNTHETIC, body=body,
                progress=True)))
        train_t = concat_sets(parts)
    else:
        train = _cached(args.data_cache, f"train_{train_size}_{args.seed}",
                        lambda: make_prior_set(train_poses, train_size, args.seed, body, True))
        train_t = TensorSet.from_synthetic(train)
    val = _cached(args.data_cache, f"val_{args.val_size}_{PRIOR_VAL_SEED}",
                  lambda: make_prior_set(val_poses, args.val_size, PRIOR_VAL_SEED, body, True))
    val_t = TensorSet.from_synthetic(val)
    vals = {"val": val_t}
    if v2:
        v2val = [_cached(args.data_cache, f"v2val_{args.val_size}_{PRIOR_VAL_SEED}_{i}", None)
                 for i in range(4)]
        if any(t is None for t in v2val):
            v2val = make_prior_v2_sets(val_poses, args.val_size, 300, PRIOR_VAL_SEED, body)
            for i, t in enumerate(v2val):
                _cached(args.data_cache, f"v2val_{args.val_size}_{PRIOR_VAL_SEED}_{i}",
                        lambda t=t: t)
        vals["val_all_slots"] = TensorSet.from_synthetic(v2val[0])
        vals["val_variants"] = concat_sets([TensorSet.from_synthetic(t) for t in v2val[1:]])

    real, real_counts = None, {}
    if v2 and args.pseudo:  # EFT self-training: the accepted fits as pseudo-ground truth
        sets = []
        for path in args.pseudo:
            aset = read_annotations(path)
            acc = annotation_train_set(aset, accepted_only=True)
            rest = [a.exemplar for a in aset.annotations if not a.fit.quality.accepted]
            sets += [acc] + ([real_2d_set(rest)] if rest else [])
            real_counts[Path(path).parent.name] = {"accepted": len(acc), "2d_only": len(rest)}
            print(f"pseudo-labels {path}: {len(acc)} accepted fits, {len(rest)} 2D-only")
        real = concat_sets(sets)
    elif v2 and args.real:
        sets = []
        for name in args.real.split(","):
            kind, rel, opts = REAL_LABELS[name]
            opts = {k: DATA / v for k, v in opts.items()}
            res = read_dataset(kind, DATA / rel, min_keypoints=6, **opts)
            real_counts[name] = len(res.exemplars)
            sets.append(real_2d_set(res.exemplars))
            print(f"real 2D labels {name}: {len(res.exemplars)} people")
        real = concat_sets(sets)
    t_data = time.perf_counter() - t0

    # IEF starts from the bank's mean body pose, upright and facing the camera.
    mean = data_mean_params(train_t)
    slots = None
    if v2:  # the slots the synthetic inputs ever fill: every other slot is ignored
        seen = (train_t.kp_px[..., 2] > 0).any(0)
        slots = torch.nonzero(seen).flatten().tolist()
    # Small on purpose: every exemplar fine-tunes its own copy during EFT.
    torch.manual_seed(args.seed)  # the initial weights follow --seed
    init = args.init or RECIPE_INIT.get(args.recipe)
    if init is None:
        model = KeypointRegressor(width=args.width, hidden=args.width, mean_params=mean,
                                  input_slots=slots, res_blocks=args.res_blocks)
    else:  # a warm start: the network, its IEF start and its input slots as they were
        model = load_regressor(init)
        if not isinstance(model, KeypointRegressor) or model.width > args.width:
            raise SystemExit(f"--init {init}: not a KeypointRegressor of width at most "
                             f"{args.width}")
        if model.width < args.width:  # the same function in a wider encoder
            print(f"widening {init}'s encoder from {model.width} to {args.width}")
            model = model.widened(args.width, seed=args.seed)
        if len(model.res) < args.res_blocks:  # the same function, deeper
            print(f"adding {args.res_blocks - len(model.res)} residual blocks to {init}")
            model = model.deepened(args.res_blocks - len(model.res))
        model.train()
        print(f"starting from {init}")

    def on_eval(step, m):
        return {f"{k}_{name}" if name != "val" else k: v
                for name, data in vals.items()
                for k, v in evaluate_prior(m, body, data).items()}

    log = train_prior(model, body, train_t, cfg, on_eval=on_eval, real=real,
                      out_dir=args.work_dir, real_fraction=real_fraction)
    t_total = time.perf_counter() - t0
    finals = {name: evaluate_prior(model, body, data) for name, data in vals.items()}
    floor = evaluate_mean_pose(model, body, val_t)
    for name, final in finals.items():
        print(f"{name} (prior):  " + json.dumps({k: round(v, 1) for k, v in final.items()}))
    print("val (mean pose): " + json.dumps({k: round(v, 1) for k, v in floor.items()}))

    meta = {
        "description": f"eft keypoint prior {args.recipe}: KeypointRegressor pretrained on "
                       + ("synthetic exemplars and real 2D labels" if v2 else
                          "synthetic exemplars"),
        "recipe": args.recipe, "width": args.width, "res_blocks": len(model.res),
        "init": init,
        "train_size": int(len(train_t)), "val_size": args.val_size,
        "real_2d": real_counts,
        "train_clips": int(len(set(bank.train().clip.tolist()))),
        "val_clips": int(len(set(bank.val().clip.tolist()))),
        "config": config_dict(cfg), "real_fraction": real_fraction,
        "seconds_total": round(t_total, 1),
        "seconds_data": round(t_data, 1), "val": finals["val"], "val_mean_pose": floor,
        "val_extra": {k: v for k, v in finals.items() if k != "val"},
        "body_model": body.name, "body_model_sha256": body.content_hash,
        "torch": str(torch.__version__), "machine": platform.machine(),
        "threads": args.threads,
    }
    out = save_regressor(model, out_path, **meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {t_total / 60:.1f} min")
    (out.parent / f"prior_train_log_{args.recipe}.json").write_text(json.dumps(log, indent=1))
    if not args.no_card:
        write_card(out.parent / f"PRIOR_CARD_{args.recipe}.md", meta, log, model)


def _cached(folder: str | None, name: str, make) -> SyntheticSet | None:
    """``make()``, or its copy saved under ``folder`` by an earlier run (``make=None``:
    the copy or None)."""
    path = None if folder is None else Path(folder) / f"{name}.npz"
    if path is not None and path.is_file():
        return SyntheticSet.load(path)
    if make is None:
        return None
    data = make()
    if path is None:
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data.save(path)
    return data


def write_card(path: Path, meta: dict, log: list[dict], model: KeypointRegressor) -> None:
    n_params = sum(p.numel() for p in model.parameters())
    v, f = meta["val"], meta["val_mean_pose"]
    rows = "\n".join(
        f"| {e['step']} | {e['seconds'] / 60:.1f} | {e['loss']:.4f} | {e['mpjpe_mm']:.1f} | "
        f"{e['pa_mpjpe_mm']:.1f} |" for e in log)
    cfg = meta["config"]
    optim, loss, aug = cfg["optim"], cfg["loss"], cfg["augment"]
    recipe = meta.get("recipe", "v1")
    flips = f", left/right flips with p = {aug['flip_prob']}" if aug.get("flip_prob") else ""
    clip = (f", gradient norm clipped at {optim['grad_clip']:g}" if optim.get("grad_clip")
            else "")
    rebuild = (f" (the same recipe: `eft train fitting/training/keypoint-prior-{recipe}.yaml`)"
               if recipe in REAL_RECIPES else "")
    warm = (f", starting from `{meta['init']}`'s weights (a warm start: its network, "
            "IEF start and input slots; the steps below are this run's only)"
            if meta.get("init") else "")
    if recipe in REAL_RECIPES:
        real = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                         for k, v in meta.get("real_2d", {}).items()) or "none"
        data = f"""- Data: {meta['train_size']:,} synthetic exemplars
  (`eft.train.prior.V2_SYNTHETIC`: every SPIN-49 slot annotated, more camera pitch,
  10 % bending and 8 % lying people, 20 % truncation, whole-limb drops) posed from the
  pose bank's {meta['train_clips']} *train* clips (CMU motion capture), a quarter of them
  seated, kneeling or bent over (`eft.synthetic.pose_variants`); plus real 2D labels as
  2D-only samples ({meta['real_fraction']:.0%} of every batch): {real} people (MPII train
  without the images of the Tompson validation split).
- Inputs: each sample is restricted to one keypoint format with p = {aug['format_prob']}
  ({', '.join(aug['formats'])}); one limb's elbow+wrist or knee+ankle+foot is hidden
  from the input with p = {aug['hide_limb_prob']}""" + (
            f" (real people: p = {aug['hide_limb_prob_2d']})"
            if aug.get("hide_limb_prob_2d") is not None else "") + f""" and the box rebuilt from
  the rest.
  The network reads only the {len(model.input_slots or ())} slots the training inputs
  fill (`input_slots`); any other slot is ignored.
- Real samples: 2D reprojection of every labelled joint (hidden ones included""" + (
            f", those x{loss['hidden_2d']:g}" if loss.get("hidden_2d", 1.0) != 1.0
            else "") + (
            f"; the hidden ones count their distance instead of its square, weight "
            f"{loss['hidden_2d_distance']:g}" if loss.get("hidden_2d_distance", 0.0) > 0
            else "") + f"""), plus
  the GMM pose prior's NLL above {loss['pose_prior_floor']} nats x{loss['pose_prior']} and
  mean(betas^2) x{loss['betas_prior']}.
""" + (f"""- View cycle (2D-3D self-supervision) on the real samples: each predicted body is
  turned about its pelvis (yaw uniform in +-{aug['cycle_yaw_deg']:g} degrees, pitch std
  {aug['cycle_pitch_std_deg']:g}), projected, framed by its present joints' box and read
  again; the second reading's 3D keypoints must equal the turned first ones
  (x{loss['cycle_kp3d']:g}) and its body-joint rotations the first ones
  (x{loss['cycle_rotmat']:g}).
""" if loss.get('cycle_kp3d', 0) or loss.get('cycle_rotmat', 0) else "")
        title = (f"prior {recipe} (`keypoint_prior_{recipe}.pt`, `keypoint-prior-{recipe}`"
                 + (", the default)" if recipe == DEFAULT_RECIPE else ")"))
    else:
        data = f"""- Data: {meta['train_size']:,} synthetic exemplars (`eft.synthetic.exemplars`,
  default config: varied cameras and orientations, COCO-OKS-scaled annotation noise, missing joints,
  truncation), posed from the pose bank's {meta['train_clips']} *train* clips (CMU motion capture).
"""
        title = "prior v1 (`keypoint_prior_v1.pt`, `keypoint-prior-v1`)"
    extra = meta.get("val_extra") or {}
    extra_text = ""
    if extra:
        extra_text = ("\nBeside it, the v2 validation sets (same val clips, "
                      "`V2_SYNTHETIC`: all slots; and the seated/kneeling/bending variants):"
                      "\n\n" + metrics_table(extra) + "\n")
    path.write_text(f"""# Model card: the embedded keypoint {title}

A `KeypointRegressor` ({n_params:,} parameters): SPIN-49 2D keypoints (crop-normalised,
with confidence) -> SMPL-layout rotations, betas and a weak-perspective camera, through
SPIN's 3-step iterative error feedback.
Body model: `{meta['body_model']}` (sha256 `{meta['body_model_sha256'][:16]}…`).

## Training
{data}- Per-step augmentation: bbox scale x U{tuple(aug['scale_range'])}, centre shift up to
  {aug['center_jitter']} of the box, {aug['kp_dropout']:.0%} extra joint dropout,
  keypoint jitter {aug['kp_noise']}{flips}.
- Loss (SPIN's terms): rotmat MSE x{loss['rotmat']}, betas MSE x{loss['betas']}, 3D
  keypoints x{loss['kp3d']}, 2D keypoints x{loss['kp2d']}, exp(-10 s)^2 x{loss['cam']}.
- AdamW lr {optim['lr']} (cosine to {optim['lr_final_fraction']} of it),
  batch {optim['batch_size']}, {optim['steps']:,} steps, seed {optim['seed']}{clip}{warm};
  {meta['seconds_total'] / 60:.1f} min in all
  ({meta['seconds_data']:.0f} s generating data) on a {meta['machine']} CPU,
  {meta['threads']} torch thread(s), torch {meta['torch']}.
- Rebuild: `python scripts/pretrain_prior.py --recipe {recipe}`{rebuild}.

## Validation
{meta['val_size']:,} synthetic exemplars from the bank's {meta['val_clips']} *val* clips
(never seen in training), same generator. Errors in mm; 14 = LSP joints from the H36M
regressor (pelvis = mid-hip), 24 = skeleton joints (pelvis-centred); PA = after similarity
Procrustes.

{metrics_table({'prior': v, 'mean pose (floor)': f})}
{extra_text}
Training curve (val, 14 joints):

| step | minutes | train loss | MPJPE | PA-MPJPE |
|---|---|---|---|---|
{rows}

## Limits
Trained on synthetic keypoints of one body model (`{meta['body_model']}`) and on CMU
motion capture only: everyday motions, dance, sports. Real detector/annotator error
patterns beyond the simulated ones, children, and poses absent from the bank are out of
distribution; EFT fine-tuning is what adapts it to each exemplar.

Derived from CMU motion capture data: "The data used in this project was obtained from
mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217."
""" + (f"""
Prior {recipe} is also derived from real 2D keypoint annotations: COCO dataset,
cocodataset.org, CC BY 4.0 (COCO 2017 train person keypoints), and the MPII Human Pose
annotations (Simplified BSD). No image was used.
""" if recipe in REAL_RECIPES else ""))


if __name__ == "__main__":
    main()
