"""Benchmark on real 2D labels: COCO val2017 and the MPII (Tompson) validation split.

    python scripts/bench_real2d.py                         # default prior, --n 1000
    python scripts/bench_real2d.py --regressor keypoint-prior-v1 --out bench_real2d_v1
    python scripts/bench_real2d.py --lr 1e-5 --max-iters 40 --with-ankles --out try
    python scripts/bench_real2d.py --set eft.stop_loss_2d=0 --methods regressor,eft
    python scripts/bench_real2d.py --full                  # every person (~10x longer)
    python scripts/bench_real2d.py --compare scripts/results/try.json \
        scripts/results/bench_real2d.json                  # paired differences A - B

Methods, all from the same regressor (``--regressor``, a keypoint prior: ``default``,
a shipped prior's name or a ``.pt`` file):

* ``mean``: the regressor's IEF starting point (``init_pose`` / ``init_shape``, the same
  body for everyone) with only the weak-perspective camera fitted to the visible
  keypoints, in closed form by weighted least squares with EFT's joint weights
  (:func:`eft.fitting.baselines.mean_pose_fits`);
* ``regressor``: the regressor's prediction from the visible keypoints (EFT with one
  forward pass, no update);
* ``smplify``: the SMPLify baseline (:func:`eft.fitting.smplify`, SPIN's settings),
  started from the regressor's prediction;
* ``eft``: Exemplar Fine-Tuning (:func:`eft.fitting.fit`) with the given settings
  (EFT's defaults; ``--lr``, ``--max-iters``, ``--with-ankles`` and ``--set eft.KEY=V``
  change them, checked as ``eft fit`` checks its ``eft:`` section).

Two passes per dataset, on seeded subsets (``--seed``) of ``--n`` people each:

1. **all labels**: people drawn from every person the reader keeps (>= 6 GT keypoints),
   each with the reader's crop (COCO: 1.2 x the person box; MPII: the file's
   centre/scale), every label visible.  Reported: acceptance rate under the project's
   quality rules (EFT's ``IsValid`` + the pose-NLL rule, :mod:`eft.fitting.quality`),
   the median reprojection error over the labelled GT keypoints in image px and as a
   fraction of ``box_side``, and percentiles of the fits' pose NLL under the shipped GMM
   (:mod:`eft.fitting.pose_prior`).
2. **held-out joints** (:mod:`eft.fitting.heldout`): people drawn from those with both
   arms and both legs labelled; person ``i`` of the subset hides limb ``i % 4`` (left
   arm, right arm, left leg, right leg: elbow + wrist, or knee + ankle + foot slots),
   the crop is built from the visible keypoints only (tight box, scale = 1.2 *
   max(w, h) / 200), every method fits the rest, and each hidden joint's error is the
   image-px distance between the fit's projected keypoint of the same SPIN-49 slot and
   the hidden label, divided by ``box_side``.  Reported pooled over hidden joints: mean,
   median, share below 0.1; per limb and per joint.

``box_side`` (both passes) = the longer side, in image px, of the tight box of all the
person's labelled keypoints (before hiding; no 1.2 margin): it depends on the person
only.  On COCO the held-out mean is also reported over the longer side of the
annotation's own ``bbox`` (``mean_annotation_box``; about 1.2x ``box_side``), the other
scale a reader of "a fraction of the box" may mean.  Writes
``scripts/results/<--out>.json`` and ``.md``.  One torch thread.

The JSON keeps the held-out people's ids and each method's per-person held-out error,
so two runs on the same people (same ``--n``, ``--seed``) compare pairwise with
``--compare A.json B.json`` (e.g. two priors, or two EFT settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from eft._files import file_sha256
from eft.body import BodyModel
from eft.body.joints import SPIN49_NAMES
from eft.data.readers import read_dataset
from eft.errors import EftError
from eft.fitting import (
    EFTConfig,
    SmplifyConfig,
    exemplar_batch,
    fit_method,
    load_default_pose_prior,
)
from eft.fitting.heldout import (
    LIMB_ORDER,
    HeldOut,
    held_out_errors,
    keypoint_box_side,
    limbs_labelled,
    make_held_out,
)
from eft.jobs.config import apply_override, config_from_dict, parse_override
from eft.models import KeypointRegressor, load_regressor, regressor_path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
#: Real third-party data: ../shared/data beside the repository, or $EFT_TEST_DATA.
DATA = Path(os.environ.get("EFT_TEST_DATA", REPO.parent / "shared" / "data"))
DATASETS = {
    "coco": ("coco", DATA / "coco2017_keypoints" / "person_keypoints_val2017.json"),
    "mpii": ("mpii", DATA / "mpii_2d" / "mpii_valid_tompson.h5"),
}
METHODS = ("mean", "regressor", "smplify", "eft")
NLL_PERCENTILES = (5, 25, 50, 75, 90, 95, 99)
DEFAULT_N = 1000
#: Datasets whose reader builds the crop as ``COCO_RESCALE`` x the annotation's own box,
#: so the box's longer side is ``scale * 200 / COCO_RESCALE`` (the COCO reader's default).
ANNOTATION_BOX = ("coco",)
COCO_RESCALE = 1.2


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

def eft_config(args: argparse.Namespace):
    """The EFTConfig from the shortcuts and ``--set eft.*``, validated like ``eft fit``'s
    ``eft:`` section (unknown keys and bad values are errors naming the key)."""
    data: dict = {"datasets": [{"kind": "coco", "path": "unused.json"}], "eft": {},
                  "regressor": args.regressor}
    if args.preset is not None:
        data["eft"]["preset"] = args.preset
    if args.lr is not None:
        data["eft"]["lr"] = args.lr
    if args.max_iters is not None:
        data["eft"]["max_iters"] = args.max_iters
    if args.with_ankles is not None:
        data["eft"]["with_ankles"] = args.with_ankles
    smplify_over = {}
    for text in args.set or []:
        path, value = parse_override(text)
        if path[0] == "eft":
            apply_override(data, path, value)
        elif path[0] == "smplify" and len(path) == 2:
            smplify_over[str(path[1])] = value
        else:
            raise SystemExit(f"--set {text!r}: only eft.KEY[.SUB]=V and smplify.KEY=V")
    try:
        cfg = config_from_dict(data, "--set").eft
    except EftError as exc:
        raise SystemExit(str(exc)) from None
    changed = {}
    for key, value in _flat(dataclasses.asdict(cfg)).items():
        if value != _flat(dataclasses.asdict(EFTConfig()))[key]:
            changed[key] = value
    fields = {f.name for f in dataclasses.fields(SmplifyConfig)}
    unknown = sorted(set(smplify_over) - fields)
    if unknown:
        raise SystemExit(f"--set smplify.{unknown[0]}: unknown; known: {sorted(fields)}")
    try:
        scfg = SmplifyConfig(rules=cfg.rules, with_hips=cfg.with_hips,
                             openpose_weight=cfg.openpose_weight, gt_weight=cfg.gt_weight,
                             **smplify_over)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"--set smplify.*: {exc}") from None
    return cfg, scfg, changed, smplify_over


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def subset(n_total: int, n: int | None, seed: int, name: str, what: str) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``n`` of ``n_total`` (all if None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{what}".encode())])
    return np.sort(rng.choice(n_total, size=n, replace=False))


def held_out_people(exemplars, name: str, n: int | None, seed: int) -> list[HeldOut]:
    """The held-out pass's people of dataset ``name``: a seeded subset (:func:`subset`)
    of ``n`` of the eligible ``exemplars`` (every arm and leg labelled), each hiding
    limb ``i % 4`` (:func:`eft.fitting.heldout.make_held_out`)."""
    eligible = np.flatnonzero(limbs_labelled(np.stack([e.keypoints for e in exemplars])))
    idx_held = eligible[subset(len(eligible), n, seed, name, "held_out")]
    return make_held_out([exemplars[i] for i in idx_held])


# ---------------------------------------------------------------------------
# Running the methods
# ---------------------------------------------------------------------------

def run_method(method, exemplars, model, body, cfg, scfg, prior, batch_size):
    return fit_method(method, model, body, exemplar_batch(exemplars), cfg,
                      smplify_config=scfg, batch_size=batch_size,
                      progress=method in ("eft", "smplify"), pose_prior=prior)


def percentiles(values: np.ndarray) -> dict:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {}
    return {f"p{q}": float(np.percentile(v, q)) for q in NLL_PERCENTILES}


def all_labels_metrics(fits, box_side: np.ndarray, max_pose_nll) -> dict:
    q = [f.quality for f in fits]
    px = np.array([x.reproj_px for x in q], dtype=float)
    flags: dict[str, int] = {}
    for x in q:
        for f in x.flags:
            flags[f] = flags.get(f, 0) + 1
    nll = np.array([x.pose_nll for x in q], dtype=float)
    return {
        "n": len(fits),
        "accept_rate": float(np.mean([x.accepted for x in q])),
        "flags": dict(sorted(flags.items())),
        "median_reproj_px": float(np.nanmedian(px)),
        "median_reproj_frac_box": float(np.nanmedian(px / box_side)),
        "median_reproj_frac_crop": float(np.nanmedian([x.reproj_frac_bbox for x in q])),
        "mean_iterations": float(np.mean([x.iterations for x in q])),
        "pose_nll": percentiles(nll),
        "pose_nll_above_rule": (float(np.mean(nll > max_pose_nll))
                                if max_pose_nll is not None else None),
    }


def held_out_metrics(fits, held, slots_ok,
                     annotation_side: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Held-out summary of one method's fits; ``annotation_side`` (len(held),), where
    given, adds ``mean_annotation_box``: the pooled mean error over that side instead."""
    errs = held_out_errors(held, fits, slots_ok)
    extra = {}
    if annotation_side is not None:
        on_box = [dataclasses.replace(h, box_side=float(a))
                  for h, a in zip(held, annotation_side, strict=True)]
        extra["mean_annotation_box"] = held_out_errors(on_box, fits, slots_ok).summary().mean
    by_joint = {}
    for slot, s in errs.by_slot().items():
        by_joint[SPIN49_NAMES[slot]] = s.as_dict()
    q = [f.quality for f in fits]
    return {
        **errs.summary().as_dict(),
        "by_limb": {k: v.as_dict() for k, v in errs.by_limb().items()},
        "by_joint": by_joint,
        "accept_rate": float(np.mean([x.accepted for x in q])),
        "median_visible_reproj_px": float(np.nanmedian([x.reproj_px for x in q])),
        "pose_nll": percentiles(np.array([x.pose_nll for x in q], dtype=float)),
        **extra,
    }, errs.per_person(len(held))


def paired(per_person: dict[str, np.ndarray]) -> dict:
    """``{a: {b: {"diff": mean(a - b), "se": ...}}}``: held-out mean error of method a
    minus method b, per person on the same people, with its standard error."""
    out = {}
    for a, ea in per_person.items():
        out[a] = {}
        for b, eb in per_person.items():
            if a == b:
                continue
            d = ea - eb
            d = d[np.isfinite(d)]
            out[a][b] = {"diff": float(d.mean()),
                         "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1
                         else float("nan")}
    return out


def bench_dataset(name, args, model, body, cfg, scfg, prior, methods) -> dict:
    kind, path = DATASETS[name]
    t0 = time.perf_counter()
    res = read_dataset(kind, path)
    exemplars = res.exemplars
    read_s = time.perf_counter() - t0
    n = None if args.full else args.n
    idx_all = subset(len(exemplars), n, args.seed, name, "all")
    people = [exemplars[i] for i in idx_all]
    box_all = np.array([keypoint_box_side(e.keypoints) for e in people])
    eligible = np.flatnonzero(limbs_labelled(np.stack([e.keypoints for e in exemplars])))
    held = held_out_people(exemplars, name, n, args.seed)
    held_people = [h.exemplar for h in held]
    annotation_side = None
    if name in ANNOTATION_BOX:
        scale_of = {e.id: e.scale for e in exemplars}
        annotation_side = np.array([scale_of[h.exemplar.id] * 200 / COCO_RESCALE
                                    for h in held])
    slots_ok = (body_keypoint_valid(body)).numpy()
    out = {
        "path": str(path.relative_to(REPO.parent)) if path.is_relative_to(REPO.parent)
        else str(path),
        "people_read": len(exemplars), "skipped_by_reader": res.skipped_by_reason(),
        "eligible_held_out": len(eligible), "n_all": len(people), "n_held_out": len(held),
        "limbs_hidden": {limb: sum(h.limb == limb for h in held) for limb in LIMB_ORDER},
        "read_seconds": read_s, "held_out_ids": [h.exemplar.id for h in held],
        "methods": {}, "seconds": {},
    }
    per_person = {}
    for method in methods:
        t = time.perf_counter()
        fits = run_method(method, people, model, body, cfg, scfg, prior, args.batch_size)
        t_all = time.perf_counter() - t
        t = time.perf_counter()
        hfits = run_method(method, held_people, model, body, cfg, scfg, prior,
                           args.batch_size)
        t_held = time.perf_counter() - t
        held_metrics, per_person[method] = held_out_metrics(hfits, held, slots_ok,
                                                            annotation_side)
        held_metrics["per_person"] = [round(float(v), 6) for v in per_person[method]]
        out["methods"][method] = {
            "all_labels": all_labels_metrics(fits, box_all, cfg.rules.max_pose_nll),
            "held_out": held_metrics,
        }
        out["seconds"][method] = {"all_labels": t_all, "held_out": t_held}
        m = out["methods"][method]
        tqdm.write(f"[{name}] {method:9s} accept {m['all_labels']['accept_rate']:.3f}  "
                   f"reproj {m['all_labels']['median_reproj_px']:.1f}px  held-out mean "
                   f"{m['held_out']['mean']:.4f} median {m['held_out']['median']:.4f} "
                   f"<0.1 {m['held_out']['share_below_0_1']:.3f}  "
                   f"({t_all:.1f}+{t_held:.1f} s)")
    out["held_out_paired"] = paired(per_person)
    if annotation_side is not None:
        out["annotation_box_over_box"] = float(np.median(
            annotation_side / np.array([h.box_side for h in held])))
    return out


def compare(path_a: str, path_b: str) -> dict:
    """Paired held-out comparison of two result files made on the same people (same
    ``--n``, ``--seed``, datasets): for every method of A and every method of B, the
    mean over people of ``A - B`` (per-person mean error / box) and its standard error.
    Prints a Markdown table; returns ``{dataset: {"A:m - B:m": {"diff", "se"}}}``."""
    a, b = (json.loads(Path(p).read_text()) for p in (path_a, path_b))
    out: dict = {}
    lines = [f"A = {path_a} (`{a['command']}`)", f"B = {path_b} (`{b['command']}`)", "",
             "| dataset | A method | B method | A mean | B mean | A - B (± se, paired) |",
             "|---|---|---|---|---|---|"]
    for name in a["datasets"]:
        if name not in b["datasets"]:
            continue
        da, db = a["datasets"][name], b["datasets"][name]
        if da.get("held_out_ids") != db.get("held_out_ids"):
            raise SystemExit(f"{name}: the two runs held out different people (use the "
                             "same --n and --seed)")
        out[name] = {}
        for ma, va in da["methods"].items():
            for mb, vb in db["methods"].items():
                d = (np.asarray(va["held_out"]["per_person"], float)
                     - np.asarray(vb["held_out"]["per_person"], float))
                d = d[np.isfinite(d)]
                se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
                out[name][f"A:{ma} - B:{mb}"] = {"diff": float(d.mean()), "se": se}
                lines.append(f"| {name} | {ma} | {mb} | {va['held_out']['mean']:.4f} | "
                             f"{vb['held_out']['mean']:.4f} | {d.mean():+.4f} ± {se:.4f} |")
    print("\n".join(lines))
    return out


def machine() -> str:
    """CPU model, core count and load, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, load {load:.1f} at start"


def body_keypoint_valid(body) -> torch.Tensor:
    """(49,) bool: SPIN-49 keypoints the body model defines."""
    from eft.body.fast import KeypointLBS

    return KeypointLBS(body).kp_total > 0.5


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def _f(v, spec=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else \
        format(v, spec)


def markdown(r: dict) -> str:
    lines = [
        "# bench_real2d: real 2D labels (COCO val2017, MPII Tompson val)",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Regressor `{r['regressor']}` (`{r['regressor_file']}`, sha256 "
        f"{r['regressor_sha256'][:12]}); EFT settings that differ from EFT's defaults: "
        f"{json.dumps(r['eft_overrides'], default=str)} (lr resolved: {r['eft_lr']}); "
        f"SMPLify overrides {json.dumps(r['smplify_overrides'])}; seed {r['seed']}; "
        f"n = {r['n'] if r['n'] is not None else 'all'} people per pass and dataset. "
        f"Machine: {r['machine']}, {r['threads']} torch thread(s); {r['date']}; "
        f"total {r['total_seconds']:.0f} s.",
        "",
        "`box` = longer side of the tight box of all the person's labelled keypoints "
        "(image px, no margin). Held-out: person i hides limb i % 4 (left arm, right "
        "arm, left leg, right leg), crop from the visible keypoints only; error = "
        "projected fitted keypoint of the same slot vs the hidden label, / box, pooled "
        "over hidden joints. `mean` = the regressor's IEF start (init_pose, "
        "init_shape) for everyone, only the weak camera fitted, by closed-form weighted "
        "least squares on the visible keypoints (EFT's joint weights: GT hips off, "
        "ankles on). `regressor` = one forward pass from the visible keypoints; "
        "`smplify` starts from it. Pose NLL: shipped GMM (eft.fitting.pose_prior), nats.",
        "",
    ]
    for name, d in r["datasets"].items():
        lines += [
            f"## {name} ({d['path']})",
            "",
            f"{d['people_read']} people read, {d['eligible_held_out']} with both arms and "
            f"legs labelled; all-labels pass on {d['n_all']}, held-out pass on "
            f"{d['n_held_out']} ({', '.join(f'{k} {v}' for k, v in d['limbs_hidden'].items())}).",
            "",
            "| method | accepted | reproj px (median) | reproj / box | held-out mean (± se) "
            "| median | share < 0.1 | pose NLL p50 / p90 / p99 | seconds (all + held-out) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for m, v in d["methods"].items():
            a, h = v["all_labels"], v["held_out"]
            nll = a["pose_nll"]
            s = d["seconds"][m]
            lines.append(
                f"| {m} | {_f(a['accept_rate'])} | {_f(a['median_reproj_px'], '.1f')} | "
                f"{_f(a['median_reproj_frac_box'], '.4f')} | {_f(h['mean'], '.4f')} ± "
                f"{_f(h['mean_se'], '.4f')} | "
                f"{_f(h['median'], '.4f')} | {_f(h['share_below_0_1'])} | "
                f"{_f(nll.get('p50'), '.1f')} / {_f(nll.get('p90'), '.1f')} / "
                f"{_f(nll.get('p99'), '.1f')} | "
                f"{s['all_labels']:.1f} + {s['held_out']:.1f} |")
        pairs = d.get("held_out_paired", {})
        if "eft" in pairs:
            lines += ["", "Held-out mean error, EFT minus each other method, paired over the "
                      "same people (negative: EFT better): " + "; ".join(
                          f"{b} {v['diff']:+.4f} ± {v['se']:.4f}"
                          for b, v in pairs["eft"].items()) + "."]
        if "annotation_box_over_box" in d:
            lines += ["", "Held-out mean error over the annotation's own box (the longer "
                      "side of COCO's `bbox`, median "
                      f"{d['annotation_box_over_box']:.2f}x `box`): " + "; ".join(
                          f"{m} {_f(v['held_out'].get('mean_annotation_box'), '.4f')}"
                          for m, v in d["methods"].items()) + "."]
        lines += ["", "Held-out mean error / box by hidden joint:", ""]
        joints = sorted({j for v in d["methods"].values() for j in v["held_out"]["by_joint"]},
                        key=SPIN49_NAMES.index)
        lines += ["| method | " + " | ".join(joints) + " |",
                  "|---|" + "---|" * len(joints)]
        for m, v in d["methods"].items():
            bj = v["held_out"]["by_joint"]
            lines.append(f"| {m} | " + " | ".join(
                _f(bj[j]["mean"], ".4f") if j in bj else "-" for j in joints) + " |")
        lines += ["", "Acceptance flags (all-labels pass):", ""]
        for m, v in d["methods"].items():
            lines.append(f"- {m}: {json.dumps(v['all_labels']['flags'])}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regressor", default="default",
                    help="'default', a shipped prior's name or a .pt file (keypoint prior)")
    ap.add_argument("--n", type=int, default=DEFAULT_N,
                    help=f"people per pass and dataset (seeded subset; {DEFAULT_N})")
    ap.add_argument("--full", action="store_true", help="every person (ignores --n)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--datasets", default="coco,mpii", help="comma-separated: coco,mpii")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default=None,
                    help="EFT recipe (eft.fitting.config.EFT_PRESETS); default as eft fit "
                         "chooses it: 'open-prior' for the shipped priors, else 'eft'")
    ap.add_argument("--lr", type=float, default=None, help="EFT learning rate")
    ap.add_argument("--max-iters", type=int, default=None, help="EFT iterations at most")
    ap.add_argument("--with-ankles", dest="with_ankles", action="store_true", default=None,
                    help="GT ankles in EFT's 2D loss (EFT's recipe leaves them out)")
    ap.add_argument("--no-ankles", dest="with_ankles", action="store_false",
                    help="GT ankles out of the 2D loss (EFT's recipe)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="eft.KEY=VALUE (any EFTConfig key, as in eft fit's eft: section, "
                         "e.g. eft.stop_loss_2d=0, eft.rules.max_pose_nll=null) or "
                         "smplify.KEY=VALUE; repeatable")
    ap.add_argument("--batch-size", type=int, default=16, help="EFT exemplars per batch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench_real2d",
                    help="results name: writes scripts/results/<out>.json and .md "
                         "(a path with a folder, e.g. /tmp/x/try, writes /tmp/x/try.json)")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                    help="only compare two result files (paired held-out differences on "
                         "the same people) and exit")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    bad += [d for d in datasets if d not in DATASETS]
    if bad or not methods or not datasets:
        ap.error(f"unknown method/dataset {bad}; methods: {METHODS}, datasets: "
                 f"{tuple(DATASETS)}")
    if args.n < 1:
        ap.error("--n must be >= 1")
    torch.set_num_threads(args.threads)
    cfg, scfg, eft_over, smplify_over = eft_config(args)

    t_start = time.perf_counter()
    body = BodyModel.load()
    model = load_regressor(args.regressor)
    if not isinstance(model, KeypointRegressor):
        raise SystemExit(f"{args.regressor}: a {type(model).__name__}; this benchmark has "
                         "no images and needs a keypoint regressor")
    prior = load_default_pose_prior()
    result = {
        "command": "python scripts/bench_real2d.py" + "".join(
            " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "regressor": args.regressor,
        "regressor_file": regressor_path(args.regressor).name,
        "regressor_sha256": file_sha256(regressor_path(args.regressor)),
        "regressor_metadata": {k: v for k, v in getattr(model, "eft_metadata", {}).items()
                               if isinstance(v, (str, int, float, bool))},
        "eft_overrides": eft_over, "smplify_overrides": smplify_over,
        "eft_config": dataclasses.asdict(cfg), "eft_lr": cfg.resolve_lr(model),
        "seed": args.seed, "n": None if args.full else args.n, "methods_run": methods,
        "threads": args.threads,
        "machine": machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__, "datasets": {},
    }
    for name in tqdm(datasets, desc="datasets"):
        result["datasets"][name] = bench_dataset(name, args, model, body, cfg, scfg, prior,
                                                 methods)
    result["total_seconds"] = time.perf_counter() - t_start
    out = Path(args.out)
    out = RESULTS / f"{args.out}.json" if len(out.parts) == 1 else out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return result


def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (tuple, set)):
        return list(v)
    return str(v)


if __name__ == "__main__":
    main()
