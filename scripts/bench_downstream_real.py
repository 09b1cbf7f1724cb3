"""The EFT paper's central claim on real labels: a regressor trained from scratch on EFT
fits of real 2D labels beats one trained on SMPLify fits of the same people, and one
trained on synthetic data only.

    python scripts/bench_downstream_real.py --eft-fits annotations/coco2017-train/fits.h5
    python scripts/bench_downstream_real.py --eft-fits A.h5 --eft-fits B.h5 --n 40000

1. **People.** A seeded subset (``--n``) of the people in the EFT job outputs
   (``eft fit`` over COCO 2017 train / MPII train with the default prior, keypoints
   only).  Their EFT fits are read back from the files.
2. **SMPLify fits of the same people**, initialised by the same prior (SPIN's
   baseline), cached under ``--cache`` as an annotation file.
3. **Three regressors from scratch**, identical model, initialisation, losses (2D labels
   + SMPL rotations + betas + camera), augmentation, steps, batch size and seed
   (``eft.train.Trainer``): (a) on the accepted EFT fits, (b) on the accepted SMPLify
   fits, (c) on synthetic people only (the v1 generator, pose bank *train* clips, with
   their true SMPL parameters), as many samples as (a) has; and, as the paper trains
   (3D data plus EFT fits), (d) synthetic + EFT fits and (e) synthetic + SMPLify fits,
   half of every batch from each by default (``--mix-share``: the fits' share; same
   steps, so the same budget).  On request (``--arms``), the ``-reposed`` arms take the
   accepted fits' body poses only and pose synthetic people with them through the same
   generator as (c) (the fits as a pose bank), alone and mixed with (c): they separate
   the fits' real-label inputs from their poses.
4. **Evaluation**, the same for the three: PA-MPJPE-14 on synthetic people from the
   pose bank's *val* clips (the priors' validation set, ``PRIOR_VAL_SEED``, which none
   of them saw), and held-out joints on real COCO val2017 / MPII Tompson val people
   (the protocol of ``scripts/bench_real2d.py``; the regressor's own prediction).

Writes ``scripts/results/bench_downstream_real.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from eft.annotations import AnnotationSet, Provenance, read_annotations, write_annotations
from eft.body import BodyModel
from eft.data.readers import read_dataset
from eft.fitting import exemplar_batch, fit, fit_method
from eft.fitting.config import eft_preset
from eft.fitting.heldout import held_out_errors, sample_held_out
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import KeypointRegressor, load_regressor
from eft.models.registry import DEFAULT_PRIOR, state_dict_sha256
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.augment import AugmentConfig
from eft.train.data import (
    MixSampler,
    TrainSet,
    accepted_fit_poses,
    annotation_train_set,
    concat_sets,
    data_mean_params,
)
from eft.train.evaluate import evaluate_model, synthetic_eval_set
from eft.train.losses import LossWeights
from eft.train.prior import PRIOR_VAL_SEED, make_prior_set
from eft.train.trainer import OptimConfig, OutputSpec, Trainer, TrainerConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"
DATA = Path(os.environ.get("EFT_TEST_DATA", ROOT.parent / "shared" / "data"))
REAL_VAL = {
    "coco": ("coco", "coco2017_keypoints/person_keypoints_val2017.json"),
    "mpii": ("mpii", "mpii_2d/mpii_valid_tompson.h5"),
}
METHODS = ("eft", "smplify", "synthetic", "synthetic+eft", "synthetic+smplify")
#: Further arms, run on request (``--arms``): the accepted fits' body poses posed again
#: through the synthetic generator (the fits as a pose bank), alone and mixed.
REPOSED = ("eft-reposed", "smplify-reposed", "synthetic+eft-reposed",
           "synthetic+smplify-reposed")
#: Share of each batch the mixed arms draw from the fits (the rest is synthetic).
MIX_FIT_SHARE = 0.5


def load_people(paths: list[str], n: int | None, seed: int) -> AnnotationSet:
    """The EFT fits of a seeded subset of ``n`` people from the job outputs."""
    anns = []
    for p in paths:
        anns.extend(read_annotations(p).annotations)
    if n is not None and n < len(anns):
        pick = np.sort(np.random.default_rng(seed).choice(len(anns), n, replace=False))
        anns = [anns[i] for i in pick]
    return AnnotationSet(annotations=list(anns),
                         provenance=Provenance.unknown("bench_downstream_real eft"))


def smplify_fits(eft_set: AnnotationSet, prior, body, cache: Path | None) -> AnnotationSet:
    """SMPLify fits of the people of ``eft_set`` from ``prior`` (cached by their ids and
    the prior's weights)."""
    exemplars = [a.exemplar for a in eft_set.annotations]
    cached = smplify_cache_file(eft_set, prior, cache)
    if cached is not None:
        return read_annotations(cached)
    fits = []
    for i in range(0, len(exemplars), 4096):
        fits += fit_method("smplify", prior, body, exemplar_batch(exemplars[i:i + 4096]),
                           progress=True)
    aset = AnnotationSet.from_fits(fits, exemplars,
                                   Provenance.unknown("bench_downstream_real smplify"))
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        write_annotations(aset, _smplify_cache_path(eft_set, prior, cache))
    return aset


def _smplify_cache_path(eft_set: AnnotationSet, prior, cache: Path) -> Path:
    """Where the SMPLify fits of ``eft_set``'s people from ``prior`` are cached (keyed by
    the people's ids and the prior's weights, so stable across runs)."""
    ids = "\n".join(str(a.exemplar.id) for a in eft_set.annotations)
    ids_digest = hashlib.sha256(ids.encode()).hexdigest()[:12]
    return cache / f"smplify_{len(eft_set.annotations)}_{ids_digest}_" \
                   f"{state_dict_sha256(prior)[:12]}.h5"


def smplify_cache_file(eft_set: AnnotationSet, prior, cache: Path | None) -> Path | None:
    """The cached SMPLify fits for ``eft_set`` and ``prior``, or None."""
    if cache is None:
        return None
    path = _smplify_cache_path(eft_set, prior, cache)
    return path if path.is_file() else None


def held_out_sets(n: int, seed: int) -> dict:
    """Held-out-limb people (:func:`eft.fitting.heldout.sample_held_out`) per val set."""
    return {name: sample_held_out(read_dataset(kind, DATA / rel).exemplars, n, seed)
            for name, (kind, rel) in REAL_VAL.items()}


def held_out_score(model, body, held: dict) -> dict:
    """Mean hidden-joint error / keypoint box of the regressor's own prediction."""
    cfg = eft_preset("eft", max_iters=1)
    res = {}
    for name, people in held.items():
        fits = fit(model, body, exemplar_batch([h.exemplar for h in people]), cfg,
                   batch_size=256, progress=False)
        s = held_out_errors(people, fits).summary()
        res[name] = {"mean": s.mean, "median": s.median, "share_below_0_1": s.share_below_0_1,
                     "mean_se": s.mean_se}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eft-fits", action="append", required=True,
                    help="annotation file(s) written by eft fit (repeatable)")
    ap.add_argument("--prior", default="default", help="the prior the EFT job used")
    ap.add_argument("--n", type=int, default=30000, help="people (seeded subset)")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-held-out", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench_downstream_real"))
    ap.add_argument("--out", default="bench_downstream_real")
    ap.add_argument("--mix-share", type=float, default=MIX_FIT_SHARE,
                    help="share of each batch the mixed arms draw from the fits "
                         f"(default {MIX_FIT_SHARE})")
    ap.add_argument("--mix-share-final", type=float, default=None,
                    help="the fits' share at the last step: the share moves linearly from "
                         "--mix-share at the first step to this (default: fixed)")
    ap.add_argument("--arms", default=",".join(METHODS),
                    help=f"training sets to compare (default all: {','.join(METHODS)})")
    args = ap.parse_args()
    if not 0.0 < args.mix_share < 1.0:
        raise SystemExit(f"--mix-share must be between 0 and 1, got {args.mix_share}")
    if args.mix_share_final is not None and not 0.0 <= args.mix_share_final < 1.0:
        raise SystemExit("--mix-share-final must be at least 0 and below 1, got "
                         f"{args.mix_share_final}")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    body = BodyModel.load()
    prior = load_regressor(args.prior)
    cache = Path(args.cache) if args.cache else None

    eft_set = load_people(args.eft_fits, args.n, args.seed)
    n_people = len(eft_set.annotations)
    print(f"{n_people} people with EFT fits")
    t_smplify = time.perf_counter()
    smplify_cached = smplify_cache_file(eft_set, prior, cache) is not None
    smp_set = smplify_fits(eft_set, prior, body, cache)
    t_smplify = time.perf_counter() - t_smplify
    sets: dict[str, TrainSet] = {
        "eft": annotation_train_set(eft_set, accepted_only=True),
        "smplify": annotation_train_set(smp_set, accepted_only=True),
    }
    bank = load_pose_bank()
    synth = make_prior_set(bank.train().poses, len(sets["eft"]), args.seed, body,
                           progress=True)
    sets["synthetic"] = TrainSet.from_synthetic(synth, target="annotated", with_kp3d=False)
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(METHODS) - set(REPOSED))
    if unknown:
        raise SystemExit(f"--arms: unknown {unknown}; choose from {METHODS + REPOSED}")
    for src, aset in (("eft", eft_set), ("smplify", smp_set)):
        if any(f"{src}-reposed" in a.split("+") for a in arms):
            reposed = make_prior_set(accepted_fit_poses(aset), len(sets["eft"]),
                                     args.seed + 1, body, progress=True)
            sets[f"{src}-reposed"] = TrainSet.from_synthetic(reposed, target="annotated",
                                                            with_kp3d=False)
    for name, s in sets.items():
        print(f"train set {name}: {len(s)} samples")

    val = synthetic_eval_set(args.n_val, PRIOR_VAL_SEED, body, poses=bank.val().poses)
    held = held_out_sets(args.n_held_out, args.seed)
    poses = torch.as_tensor(np.array(bank.train().poses[:20000]), dtype=torch.float32)
    mean_src = TrainSet.from_arrays(np.zeros((len(poses), 49, 3)), np.zeros((len(poses), 2)),
                                    np.ones(len(poses)),
                                    rotmat=axis_angle_to_rotmat(poses.reshape(-1, 24, 3)),
                                    betas=np.zeros((len(poses), 10)))
    torch.manual_seed(args.seed)
    init_model = KeypointRegressor(width=256, hidden=256,
                                   mean_params=data_mean_params(mean_src))
    tcfg = TrainerConfig(
        optim=OptimConfig(steps=args.steps, batch_size=args.batch_size, lr=5e-4,
                          weight_decay=1e-4, optimizer="adamw", schedule="cosine",
                          seed=args.seed),
        loss=LossWeights(kp3d=0.0),
        augment=AugmentConfig(scale_range=(0.85, 1.3), center_jitter=0.08, flip_prob=0.5,
                              rot_prob=0.0, kp_noise=0.005, kp_dropout=0.05),
        device="cpu", amp="off",
        output=OutputSpec(eval_every=max(1, args.steps // 4), checkpoint_every=0,
                          progress=True))
    results = {}
    for name in arms:
        model = copy.deepcopy(init_model)
        t = time.perf_counter()
        parts = [sets[p] for p in name.split("+")]
        train_set, sampler = parts[0], None
        if len(parts) == 2:  # synthetic + fits, a fixed share of each batch
            train_set = concat_sets(parts)
            final = (None if args.mix_share_final is None
                     else [1 - args.mix_share_final, args.mix_share_final])
            sampler = MixSampler([len(p) for p in parts], [1 - args.mix_share, args.mix_share],
                                 final_weights=final)
        Trainer(model, body, train_set, tcfg, sampler=sampler, desc=f"train on {name}").run()
        model.eval()
        synth_metrics = evaluate_model(model, body, val)
        results[name] = {"train_samples": len(train_set),
                         "train_seconds": round(time.perf_counter() - t, 1),
                         "synthetic_val": synth_metrics,
                         "held_out": held_out_score(model, body, held)}
        print(name, json.dumps(results[name]), flush=True)

    out = {
        "command": "python scripts/bench_downstream_real.py " + " ".join(
            f"--eft-fits {p}" for p in args.eft_fits) + f" --n {args.n} --steps {args.steps}"
        + ("" if args.prior == "default" else f" --prior {args.prior}")
        + ("" if args.seed == 0 else f" --seed {args.seed}")
        + ("" if arms == list(METHODS) else f" --arms {args.arms}")
        + ("" if args.mix_share == MIX_FIT_SHARE else f" --mix-share {args.mix_share:g}")
        + ("" if args.mix_share_final is None
           else f" --mix-share-final {args.mix_share_final:g}")
        + ("" if args.out == "bench_downstream_real" else f" --out {args.out}"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, 1 torch thread",
        "people": n_people, "smplify_seconds": round(t_smplify, 1),
        "smplify_cached": smplify_cached,
        "prior": f"default ({DEFAULT_PRIOR})" if args.prior == "default" else args.prior,
        "mix_share": args.mix_share, "mix_share_final": args.mix_share_final,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seconds": round(time.perf_counter() - t0, 1), "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"{args.out}.md").write_text(markdown(out))
    print(markdown(out))


def _share_text(share: float, final: float | None = None) -> str:
    if final is not None:
        return (f"the fits' share of every batch moving linearly from {share:.0%} at the "
                f"first step to {final:.0%} at the last, the rest synthetic")
    if share == 0.5:
        return "half of every batch from each"
    return f"{share:.0%} of every batch from the fits, the rest synthetic"


def markdown(r: dict) -> str:
    res = r["results"]
    rows = ["| trained on | samples | synthetic val PA-MPJPE-14 | MPJPE-14 | held-out COCO "
            "| held-out MPII |", "|---|---|---|---|---|---|"]
    for name, x in res.items():
        h = x["held_out"]
        rows.append(f"| {name} | {x['train_samples']:,} | "
                    f"{x['synthetic_val']['pa_mpjpe_mm']:.1f} | "
                    f"{x['synthetic_val']['mpjpe_mm']:.1f} | "
                    f"{h['coco']['mean']:.4f} ± {h['coco']['mean_se']:.4f} | "
                    f"{h['mpii']['mean']:.4f} ± {h['mpii']['mean_se']:.4f} |")
    return (f"# bench_downstream_real: training on EFT fits of real labels\n\n"
            f"Command: `{r['command']}` ({r['date']}, {r['machine']}, "
            f"{r['seconds'] / 60:.0f} min; SMPLify "
            + ("read from the cache" if r.get("smplify_cached") else
               f"{r['smplify_seconds']:.0f} s") + ").\n\n"
            f"{r['people']:,} real people (COCO 2017 / MPII train, keypoints only) fitted "
            f"by EFT from `{r['prior']}` and by SMPLify from the same prior; "
            f"{len(res)} regressors from scratch, {r['steps']:,} steps x {r['batch_size']} "
            "each, same initialisation and seed (`synthetic+b`: "
            + _share_text(r.get("mix_share", MIX_FIT_SHARE), r.get("mix_share_final"))
            + "). "
            "Held-out: mean hidden-joint error / keypoint box "
            "(± standard error over people), lower is better.\n\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
