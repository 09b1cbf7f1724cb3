"""``eft train``: a whole run from a :class:`~eft.train.config.TrainRunConfig`.

Builds the datasets (annotation files, filtered by quality and review decisions, or
synthetic people), the model, the val sets and the :class:`~eft.train.trainer.Trainer`;
writes into the run folder::

    config.yaml          the validated config (of the latest start or resume; a resume
                         with changed settings keeps the earlier one beside it as
                         config.until_step_XXXXXXX.yaml)
    log.jsonl            train and eval entries
    metrics.csv          the same as a table (one row per entry)
    curves.png           training curves (matplotlib)
    tensorboard/         the same entries as TensorBoard scalars (when installed)
    checkpoints/         step_XXXXXXX.pt, full training state (resume)
    model.pt             the trained regressor (``eft.models.load_regressor`` reads it)
    results.json         the final evaluation
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from eft.annotations import AnnotationError
from eft.annotations.decisions import load_bound_decisions
from eft.body import BodyModel
from eft.config_loader import changed_keys
from eft.data.readers import read_dataset
from eft.errors import EftError
from eft.models import (
    HMR,
    KeypointRegressor,
    architecture_of,
    load_regressor,
    save_regressor,
)
from eft.models.ief import MeanParamsLike
from eft.synthetic.exemplars import SyntheticConfig, generate
from eft.synthetic.pose_bank import load_pose_bank

from .config import (
    DatasetSpec,
    LabelSource,
    SyntheticSpec,
    TrainRunConfig,
    ValSpec,
    config_to_dict,
)
from .data import (
    MixSampler,
    TrainSet,
    annotation_train_set,
    concat_sets,
    data_mean_params,
    load_annotation_set,
)
from .errors import TrainError
from .evaluate import EvalSet, evaluate_model, load_3dpw_npz, load_h36m_npz, synthetic_eval_set
from .prior import make_prior_v2_sets, real_2d_set
from .trainer import Trainer, latest_checkpoint, read_checkpoint_file

__all__ = ["build_dataset", "build_datasets", "build_model", "build_val_sets",
           "make_evaluator", "data_mean_params", "run_training", "RunResult"]


def _poses(clips: str):
    bank = load_pose_bank()
    return (bank.train() if clips == "train" else bank.val()).poses


def build_dataset(spec: DatasetSpec, body, accepted_ids: set[str] | None = None,
                  log: Callable[[str], None] = print) -> TrainSet:
    """One dataset of the config as training samples.

    ``accepted_ids`` is the review hook: when given, an annotation dataset keeps only
    these fit ids (on top of the spec's own filters)."""
    if spec.synthetic is not None:
        return _synthetic_set(spec.label, spec.synthetic, body, log)
    if spec.labels is not None:
        return _labels_set(spec.label, spec.labels, log)

    if spec.path is None:  # DatasetSpec refuses this
        raise TrainError(f"dataset {spec.label}: give 'path', 'synthetic' or 'labels'")
    aset = load_annotation_set(spec.path, spec.format)
    if spec.keypoints3d and "keypoints3d" in aset.missing:
        raise TrainError(f"dataset {spec.label}: keypoints3d is on, but {spec.path} holds "
                         "no 3D keypoints")
    if spec.keypoints3d and "keypoints3d_openpose" in aset.missing:
        warnings.warn(f"dataset {spec.label}: {spec.path} holds the 3D keypoints of the 24 "
                      "GT slots only; the 3D loss averages over all 49 slots, so its people "
                      "weigh about half of those of a file with all 49 (h5, EFT JSON)",
                      stacklevel=2)
    decisions = None
    if spec.decisions is not None:
        bound = load_bound_decisions(spec.decisions, any_file=spec.decisions_any_file)
        decisions = bound.resolve_columns(aset.columns())
        log(f"dataset {spec.label}: {bound.report()}")
    try:
        return annotation_train_set(
            aset, image_root=spec.image_root, accepted_only=spec.accepted_only,
            max_loss_2d=spec.max_loss_2d, max_reproj_px=spec.max_reproj_px,
            max_abs_beta=spec.max_abs_beta, min_keypoints=spec.min_keypoints,
            decisions=decisions, accepted_ids=accepted_ids,
            use_keypoints3d=spec.keypoints3d, body=body)
    except (TrainError, AnnotationError) as exc:
        raise TrainError(f"{spec.path}: {exc}") from None


def _synthetic_set(label: str, s: SyntheticSpec, body, log: Callable[[str], None]
                   ) -> TrainSet:
    """Synthetic people as :class:`SyntheticSpec` says (``prior-v2``: the v2 prior's
    generator and pose variants, :func:`eft.train.prior.make_prior_v2_sets`)."""
    t0 = time.perf_counter()
    extra = f" + {s.variants} per pose variant" if s.variants else ""
    log(f"dataset {label}: generating {s.n}{extra} synthetic people (seed {s.seed}) ...")
    if s.generator == "prior-v2":
        made = make_prior_v2_sets(_poses(s.clips), s.n, s.variants, s.seed, body)
    else:
        made = [generate(_poses(s.clips), s.n, s.seed, SyntheticConfig(), body=body)]
    log(f"dataset {label}: generated in {time.perf_counter() - t0:.1f} s")
    return concat_sets([TrainSet.from_synthetic(m, target=s.target, with_smpl=s.smpl,
                                                with_kp3d=s.keypoints3d) for m in made])


def _labels_set(label: str, sources: tuple[LabelSource, ...], log: Callable[[str], None]
                ) -> TrainSet:
    """Real 2D labels from dataset readers as 2D-only samples, one set."""
    sets = []
    for src in sources:
        try:
            res = read_dataset(src.kind, Path(src.path).expanduser(), **src.options)
        except (EftError, OSError) as exc:
            raise TrainError(f"dataset {label}: {src.path}: {exc}") from None
        if not res.exemplars:
            raise TrainError(f"dataset {label}: {src.path}: no people")
        log(f"dataset {label}: {len(res.exemplars)} people with 2D labels from {src.path}")
        sets.append(real_2d_set(res.exemplars))
    return concat_sets(sets)


def build_datasets(cfg: TrainRunConfig, body, accepted_ids: set[str] | None = None,
                   log: Callable[[str], None] = print) -> tuple[TrainSet, MixSampler]:
    """All datasets concatenated, and the sampler that mixes them by weight."""
    sets = []
    for spec in cfg.datasets:
        data = build_dataset(spec, body, accepted_ids, log)
        log(f"dataset {spec.label}: {len(data)} samples, weight {spec.weight:g}")
        sets.append(data)
    if cfg.model.arch == "hmr":
        for spec, data in zip(cfg.datasets, sets, strict=True):
            if not data.has_images:
                raise TrainError(f"dataset {spec.label}: an hmr model needs an image for "
                                 "every sample (set image_root?)")
    return concat_sets(sets), MixSampler([len(s) for s in sets], [d.weight for d in cfg.datasets])


def build_model(cfg: TrainRunConfig, data: TrainSet | None = None) -> nn.Module:
    """A fresh regressor (or the ``init`` one) as the config describes."""
    m = cfg.model
    if m.init is not None:
        model = load_regressor(m.init)
        if architecture_of(model) != m.arch:
            raise TrainError(f"model.init {m.init} is a {architecture_of(model)}, but "
                             f"model.arch is {m.arch}")
        return model
    mean: MeanParamsLike
    if m.mean_params == "data":
        mean = data_mean_params(data) if data is not None else None
    elif m.mean_params == "default":
        mean = None
    else:
        mean = str(Path(m.mean_params).expanduser())
    kw: dict[str, Any] = {} if m.dropout is None else {"dropout": m.dropout}
    if m.arch == "hmr":
        return HMR(mean_params=mean, n_iter=m.n_iter, **kw)
    if m.input_slots == "data" and data is not None:  # the slots any input ever fills
        kw["input_slots"] = torch.nonzero((data.kp_px[..., 2] > 0).any(0)).flatten().tolist()
    return KeypointRegressor(width=m.width, hidden=m.hidden, n_iter=m.n_iter,
                             mean_params=mean, **kw)


def build_val_sets(specs: tuple[ValSpec, ...], body,
                   log: Callable[[str], None] | None = None) -> list[tuple[str, EvalSet]]:
    out = []
    for v in specs:
        t0 = time.perf_counter()
        if log is not None:
            log(f"val set {v.label}: preparing ...")
        if v.kind == "synthetic":
            data = synthetic_eval_set(v.n, v.seed, body)
        elif v.path is None:  # ValSpec refuses this
            raise TrainError(f"val set {v.label}: a {v.kind} val set needs 'path'")
        elif v.kind == "h36m":
            data = load_h36m_npz(v.path, v.image_root)
        else:
            data = load_3dpw_npz(v.path, body, v.image_root, v.smpl_dir)
        out.append((v.label, data))
        if log is not None:
            log(f"val set {v.label}: {len(data)} people in {time.perf_counter() - t0:.1f} s")
    return out


def make_evaluator(val_sets: list[tuple[str, EvalSet]], body, device, img_res: int = 224,
                   log: Callable[[str], None] | None = None,
                   ) -> Callable[[int, nn.Module], dict] | None:
    """``(step, model) -> metrics``: one set gives plain keys (``pa_mpjpe_mm``), several
    prefix them with the set's label (``h36m/pa_mpjpe_mm``).  ``log``: told when each
    set's evaluation starts."""
    if not val_sets:
        return None
    body_cpu = body

    def evaluate(step: int, model: nn.Module) -> dict:
        out = {}
        for label, data in val_sets:
            if log is not None:
                log(f"step {step}: evaluating on {label} ({len(data)} people) ...")
            m = evaluate_model(model, body_cpu, data, device=device, img_res=img_res)
            m.pop("n", None)
            prefix = "" if len(val_sets) == 1 else f"{label}/"
            out.update({prefix + k: v for k, v in m.items()})
        return out

    return evaluate


@dataclass(frozen=True)
class RunResult:
    """What a run produced: the folder, the model file, the last step and evaluation."""

    out_dir: Path
    model_path: Path
    step: int
    metrics: dict


def run_training(cfg: TrainRunConfig, *, out_dir: str | os.PathLike,
                 resume: bool = False, overwrite: bool = False,
                 accepted_ids: set[str] | None = None, progress: bool | None = None,
                 log: Callable[[str], None] = print) -> RunResult:
    """Train as ``cfg`` says into ``out_dir`` (module docstring).

    ``resume``: continue from the latest checkpoint in ``out_dir``; without it a
    folder that already has checkpoints is refused unless ``overwrite``.
    ``accepted_ids``: the review hook of :func:`build_dataset`."""
    out = Path(out_dir).expanduser()
    ckpt_dir = out / "checkpoints"
    last = latest_checkpoint(ckpt_dir) if ckpt_dir.is_dir() else None
    if last is not None and not resume and not overwrite:
        raise TrainError(f"{out} already holds checkpoints: pass --resume to continue or "
                         "--overwrite to start again")
    if resume and last is None:
        raise TrainError(f"{out}: no checkpoint to resume from")
    if overwrite and not resume:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        shutil.rmtree(out / "tensorboard", ignore_errors=True)
        for name in ("log.jsonl", "metrics.csv", "curves.png", "model.pt", "results.json"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    body = BodyModel.load(cfg.body_model)
    data, sampler = build_datasets(cfg, body, accepted_ids, log)
    torch.manual_seed(cfg.optim.seed)  # the initial weights follow the run's seed
    model = build_model(cfg, data)
    val_sets = build_val_sets(cfg.val, body, log)
    if progress is not None:
        cfg = cfg.replace(output={"progress": progress})
    trainer = Trainer(model, body, data, cfg, sampler=sampler, out_dir=out,
                      evaluate=None, desc=f"train {out.name}")
    say = log
    if cfg.output.progress and log is print:  # keep the progress bar intact
        from tqdm import tqdm

        say = tqdm.write
    trainer.evaluate = make_evaluator(val_sets, body, trainer.device, cfg.img_res, say)
    changed: list[str] = []
    kept_note = ""
    if resume and last is not None:  # resume without a checkpoint was refused above
        ckpt = read_checkpoint_file(last)
        saved = dict(ckpt.get("trainer_config") or {})
        now = json.loads(json.dumps(config_to_dict(cfg)))
        for d in (saved, now):
            d.pop("progress", None)  # older checkpoints kept it at the top level
            (d.get("output") or {}).pop("progress", None)
        changed = [key for key, _, _ in changed_keys(saved, now)]
        if changed and (out / "config.yaml").is_file():
            # config.yaml names the settings in force from here on; the ones the steps
            # so far ran under stay beside it
            kept = out / f"config.until_step_{int(ckpt.get('step', 0)):07d}.yaml"
            (out / "config.yaml").replace(kept)
            kept_note = f"; the earlier settings are kept in {kept.name}"
    (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False),
                                     encoding="utf-8")
    if resume and last is not None:
        if changed:
            warnings.warn(f"{last}: resuming with settings changed since the checkpoint "
                          f"({', '.join(changed)}); the optimiser and schedule state come "
                          f"from the checkpoint{kept_note}", stacklevel=2)
        step = trainer.load_checkpoint(last)
        log(f"resumed from {last} (step {step})")
    trainer.run()
    metrics = trainer.history[-1] if trainer.history else {}
    model_path = save_regressor(
        trainer.model.cpu(), out / "model.pt", trained_by="eft train", step=trainer.step,
        datasets=[d.label for d in cfg.datasets], body_model=body.name,
        metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    (out / "results.json").write_text(json.dumps(
        {"step": trainer.step, "seconds": trainer.seconds, "n_train": len(data),
         "metrics": metrics}, indent=1) + "\n", encoding="utf-8")
    return RunResult(out, model_path, trainer.step, metrics)
