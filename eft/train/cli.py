"""``eft train CONFIG.yaml`` and ``eft eval MODEL``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eft._argtypes import integer_at_least
from eft.shipped import find_config

from .errors import TrainError


def _train(args: argparse.Namespace) -> int:
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    import torch

    from .config import load_train_config
    from .run import run_training

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"optim.steps={args.steps}")
    if args.device is not None:
        overrides.append(f"device={args.device}")

    cfg = load_train_config(find_config(args.config), overrides)
    out = args.out or cfg.output.dir or str(Path("runs") / Path(args.config).stem)
    try:
        result = run_training(cfg, out_dir=out, resume=args.resume,
                              overwrite=args.overwrite,
                              progress=False if args.no_progress else None)
    except KeyboardInterrupt:
        # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
        import sys

        from .trainer import latest_checkpoint

        ckpt_dir = Path(out) / "checkpoints"
        last = latest_checkpoint(ckpt_dir) if ckpt_dir.is_dir() else None
        saved = f"last checkpoint {last}" if last is not None else "no checkpoint saved yet"
        how = ("rerun the same command to start again" if last is None
               else "rerun the same command to resume" if args.resume
               else "rerun the same command with --resume to continue")
        print(f"eft train: interrupted; {saved}; {how}", file=sys.stderr)
        return 130
    shown = {k: round(v, 1) for k, v in result.metrics.items()
             if k.endswith("_mm") and isinstance(v, float)}
    if shown:
        print("final eval: " + json.dumps(shown))
    print(f"wrote {result.model_path} (step {result.step}); log, curves and checkpoints in "
          f"{result.out_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    import torch

    from eft.body import BodyModel
    from eft.models import body_mismatch, load_regressor

    from .evaluate import (
        evaluate_model,
        load_3dpw_npz,
        load_h36m_npz,
        metrics_table,
        per_joint_chart,
        synthetic_eval_set,
    )
    from .trainer import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    body = BodyModel.load(args.body)
    model = load_regressor(args.model).to(device)
    mismatch = body_mismatch(model, body.name)
    if mismatch:
        print(f"warning: {mismatch}", file=sys.stderr)
    sets = []
    for path in args.h36m or []:
        sets.append(load_h36m_npz(path, args.image_root))
    for path in args.pw3d or []:
        sets.append(load_3dpw_npz(path, body, args.image_root, args.smpl_dir))
    if args.synthetic or not sets:
        # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
        from .config import SYNTHETIC_VAL_SEED

        seed = SYNTHETIC_VAL_SEED if args.seed is None else args.seed
        sets.append(synthetic_eval_set(args.synthetic or 1000, seed, body))
    rows = {}
    for data in sets:
        if len(data) == 0:
            raise TrainError(f"{data.name}: no people to evaluate")
        rows[data.name] = evaluate_model(model, body, data, batch=args.batch_size,
                                         device=device, img_res=args.img_res,
                                         per_joint=True)
    print(f"model: {args.model}; errors in mm (14 = LSP joints from the H36M regressor, "
          "24 = SMPL joints; PA = after Procrustes)")
    print(metrics_table({f"{k} (n={v['n']})": v for k, v in rows.items()}))
    chart = args.chart
    if chart is None:  # beside the JSON, else beside the model file
        if args.json:
            chart = str(Path(args.json).with_suffix(".png"))
        elif Path(args.model).is_file():
            chart = str(Path(args.model).with_suffix(".eval.png"))
    if chart:
        print(f"wrote {per_joint_chart(rows, chart)} (error per joint)")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"model": str(args.model), "results": rows}, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    """Add ``eft train`` and ``eft eval`` (imports nothing heavy: ``eft --help`` stays
    fast)."""
    tr = subparsers.add_parser(
        "train", help="train a regressor from annotation files (config in fitting/training/)",
        description="Train a fresh (or fine-tune a) body regressor as CONFIG says; see "
                    "fitting/training/README.md.")
    tr.add_argument("config", help="training config, e.g. fitting/training/synthetic_demo.yaml, "
                                   "or a shipped one: training/synthetic_demo")
    tr.add_argument("--out", default=None,
                    help="run folder (default: output.dir, else runs/<config name>)")
    tr.add_argument("--resume", action="store_true",
                    help="continue from the run folder's latest checkpoint")
    tr.add_argument("--overwrite", action="store_true",
                    help="start again in a run folder that already has checkpoints")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a config key, e.g. --set optim.steps=500 (repeatable)")
    tr.add_argument("--steps", type=integer_at_least(1), default=None,
                    help="shortcut for optim.steps")
    tr.add_argument("--device", default=None, help="shortcut for device (auto, cpu, cuda)")
    tr.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(func=_train)

    ev = subparsers.add_parser(
        "eval", help="MPJPE / PA-MPJPE of a regressor (synthetic, H36M, 3DPW)",
        description="Evaluate a regressor: MPJPE and PA-MPJPE (mm) on 14 LSP joints and on "
                    "the 24 SMPL joints.  With no set named, 1000 synthetic people from "
                    "the pose bank's val clips.")
    ev.add_argument("model", help="'default' (shipped prior), a regressor file, a SPIN/EFT "
                                  "checkpoint or an eft train checkpoint")
    ev.add_argument("--synthetic", type=integer_at_least(0), default=0, metavar="N",
                    help="N synthetic people from the pose bank's val clips")
    ev.add_argument("--seed", type=int, default=None,
                    help="synthetic set seed (default: the fixed validation seed, as in "
                         "training)")
    ev.add_argument("--h36m", action="append", metavar="NPZ",
                    help="SPIN's h36m_valid_protocol1/2.npz (repeatable)")
    ev.add_argument("--3dpw", dest="pw3d", action="append", metavar="NPZ",
                    help="SPIN's 3dpw_test.npz (repeatable)")
    ev.add_argument("--image-root", default=None, help="image folder (image regressors)")
    ev.add_argument("--smpl-dir", default=None,
                    help="folder with SMPL_MALE/SMPL_FEMALE for 3DPW's ground truth")
    ev.add_argument("--body", default=None, help="body model (default: the open body model)")
    ev.add_argument("--batch-size", type=integer_at_least(1), default=256)
    ev.add_argument("--img-res", type=integer_at_least(1), default=224)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("--json", default=None, help="also write the results here")
    ev.add_argument("--chart", default=None, metavar="PNG",
                    help="bar chart of the PA-MPJPE and MPJPE of each LSP joint, per set "
                         "(default: beside --json as .png, else MODEL.eval.png for a model "
                         "file; '' for none)")
    ev.set_defaults(func=_eval)
