"""The trainer: one loop for every regressor eft trains (the prior included).

Each step draws a batch (:class:`~eft.train.data.MixSampler`), augments it
(:func:`~eft.train.augment.make_batch`), runs the model (under autocast when AMP is
on), computes :func:`~eft.train.losses.regression_loss` in float32 and takes an
optimiser and scheduler step.  Everything random comes from the trainer's
``torch.Generator`` and torch's global generator (dropout); both are in the
checkpoint with the model, optimiser, scheduler, AMP scaler, step and running loss,
so :meth:`Trainer.load_checkpoint` continues a run exactly where it stopped.

Outputs (when ``out_dir`` is given): ``log.jsonl`` (one JSON object per logged step,
``"kind": "train"`` or ``"eval"``), ``checkpoints/step_XXXXXXX.pt`` (the last
``keep_checkpoints``), ``metrics.csv`` (``log.jsonl`` as a table) and ``curves.png``
(with matplotlib, the ``viz`` extra), both redrawn with every checkpoint, and
``tensorboard/`` (every logged number as a scalar ``train/...`` or ``eval/...``, when the
``tensorboard`` package is installed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import torch
from torch import nn

from eft.body.fast import KeypointLBS
from eft.config_loader import plain
from eft.devices import DeviceError
from eft.devices import resolve_device as shared_resolve_device
from eft.fitting.pose_prior import load_default_pose_prior
from eft.models import architecture_of
from eft.models.registry import TRAINING_CHECKPOINT_FORMAT, TRAINING_CHECKPOINT_VERSION

from .augment import AugmentConfig, make_batch, real_drop_patterns
from .curves import plot_log, write_metrics_csv
from .data import MixSampler, TrainSet
from .errors import TrainError
from .losses import LossWeights, regression_loss, view_cycle_loss
from .meta import meta_eft_loss

__all__ = ["OptimConfig", "OutputSpec", "TrainerConfig", "Trainer", "resolve_device",
           "resolve_amp",
           "latest_checkpoint", "CHECKPOINT_FORMAT", "read_checkpoint_file"]

CHECKPOINT_FORMAT = TRAINING_CHECKPOINT_FORMAT
CHECKPOINT_VERSION = TRAINING_CHECKPOINT_VERSION


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule.

    Attributes:
        steps: optimiser steps in all.
        batch_size: samples per step.
        lr: learning rate (peak for ``cosine``).
        weight_decay: decoupled (AdamW) or L2 (Adam) weight decay.
        optimizer: ``adam`` (SPIN, EFT) or ``adamw``.
        schedule: ``constant`` or ``cosine`` (to ``lr * lr_final_fraction``).
        lr_final_fraction: end of the cosine schedule, as a fraction of ``lr``.
        grad_clip: clip the gradient norm to this (0: off).
        seed: seeds the batch draws, the augmentation and dropout.
    """

    steps: int = 10000
    batch_size: int = 64
    lr: float = 5e-5
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    schedule: Literal["constant", "cosine"] = "constant"
    lr_final_fraction: float = 0.05
    grad_clip: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:  # NaN too
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not 0 <= self.lr_final_fraction <= 1:
            raise ValueError("lr_final_fraction must lie in [0, 1]")


@dataclass(frozen=True)
class OutputSpec:
    """Where and how often.

    Attributes:
        dir: run folder (default ``runs/<config name>``; ``eft train`` only).
        log_every: steps between log lines (``log.jsonl`` train entries, the bar's
            refresh).   eval_every: steps between evaluations (the last step is always
            evaluated).
        checkpoint_every: steps between checkpoints (0: at the end only).
        keep_checkpoints: how many to keep.
        progress: show a progress bar.
    """

    dir: str | None = None
    log_every: int = 50
    eval_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        for name, low in (("log_every", 1), ("eval_every", 1), ("checkpoint_every", 0),
                          ("keep_checkpoints", 1)):
            if not getattr(self, name) >= low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class TrainerConfig:
    """Everything the loop needs besides the model and the data.  ``eft train``'s
    :class:`~eft.train.config.TrainRunConfig` is one (with the data and model on top),
    so the run's configuration reaches the trainer as it is.

    Attributes:
        optim, loss, augment: :class:`OptimConfig`, :class:`LossWeights`,
            :class:`AugmentConfig`.
        output: :class:`OutputSpec` (log, evaluation and checkpoint intervals).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        amp: ``auto`` (bfloat16 autocast on CUDA, float16 + grad scaler where bfloat16
            is unsupported, off on CPU), ``off``, ``bf16`` or ``fp16``.
        img_res: crop side for image inputs.
        workers: threads reading images.
        inputs: ``keypoints`` (KeypointRegressor) or ``images`` (HMR).
    """

    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    output: OutputSpec = field(default_factory=OutputSpec)
    device: str = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    img_res: int = 224
    workers: int = 0
    inputs: Literal["keypoints", "images"] = "keypoints"

    def __post_init__(self) -> None:
        if self.inputs not in ("keypoints", "images"):
            raise ValueError(f"inputs must be 'keypoints' or 'images', got {self.inputs!r}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if self.img_res < 1:
            raise ValueError(f"img_res must be >= 1 (crop side in px), got {self.img_res}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.optim.seed < 0:
            raise ValueError(f"optim.seed must be >= 0, got {self.optim.seed}")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``; ``output=`` may be a dict of output fields to change
        (of the same class: a :class:`~eft.train.config.TrainRunConfig` stays one)."""
        out = changes.get("output")
        if isinstance(out, dict):
            changes["output"] = dataclasses.replace(self.output, **out)
        return dataclasses.replace(self, **changes)


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; anything else
    as torch reads it (:func:`eft.devices.resolve_device`, errors as :class:`TrainError`)."""
    try:
        return shared_resolve_device(spec)
    except DeviceError as exc:
        raise TrainError(f"device {spec!r}: {exc}") from None


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: no autocast)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``folder`` (``step_*.pt``), or None."""
    files = sorted(Path(folder).glob("step_*.pt"))
    return files[-1] if files else None


def read_checkpoint_file(path: str | os.PathLike) -> dict:
    """A trainer checkpoint as a dict (``weights_only`` load; one-line errors)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TrainError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainError(f"{path}: not a readable checkpoint ({msg})") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not an eft training checkpoint")
    if int(obj.get("version", 0)) > CHECKPOINT_VERSION:
        raise TrainError(f"{path}: checkpoint version {obj.get('version')} is newer than "
                         f"this eft (reads {CHECKPOINT_VERSION})")
    return obj


class Trainer:
    """Trains ``model`` on ``data`` (module docstring).

    Args:
        model: a regressor returning :class:`~eft.models.RegressorOutput`
            (:class:`~eft.models.KeypointRegressor` for keypoint inputs, HMR for images).
        body: the body model (or its :class:`~eft.body.fast.KeypointLBS`).
        data: the training samples (several datasets concatenated).
        config: :class:`TrainerConfig`.
        sampler: how batches are drawn (default: uniform over ``data``).
        out_dir: where logs, checkpoints and curves go (None: nowhere).
        evaluate: ``(step, model) -> {metric: value}``, called every ``eval_every``
            steps and at the last one (the model is in eval mode during the call).
        desc: the progress bar's label.
    """

    def __init__(self, model: nn.Module, body, data: TrainSet, config: TrainerConfig,
                 *, sampler: MixSampler | None = None, out_dir: str | os.PathLike | None = None,
                 evaluate: Callable[[int, nn.Module], dict] | None = None,
                 desc: str = "train") -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if config.inputs == "images" and not data.has_images:
            raise TrainError("image inputs need an image for every sample; this training "
                             "set has samples without images")
        self.data = data
        self.drop_bank = None
        if config.augment.real_mask_prob > 0:
            real = ~(data.has_smpl | data.has_kp3d)
            if not bool(real.any()):
                raise TrainError("augment.real_mask_prob > 0 draws missing-joint patterns "
                                 "from real 2D-only samples; this training set has none")
            self.drop_bank = real_drop_patterns(data.kp_px[real])
        self.sampler = sampler or MixSampler([len(data)])
        if sum(self.sampler.sizes) != len(data):
            raise ValueError("the sampler's sizes do not add up to the training set")
        self.model = model.to(self.device)
        fast = body if isinstance(body, KeypointLBS) else KeypointLBS(body)
        self.fast = fast.to(self.device)
        opt = config.optim
        torch.manual_seed(opt.seed)
        self.generator = torch.Generator().manual_seed(opt.seed)
        cls = torch.optim.AdamW if opt.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = cls(self.model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
        self.scheduler: torch.optim.lr_scheduler.LRScheduler
        if opt.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=opt.steps, eta_min=opt.lr * opt.lr_final_fraction)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        self.amp_dtype = resolve_amp(config.amp, self.device)
        self.scaler = (torch.amp.GradScaler(self.device.type)
                       if self.amp_dtype == torch.float16 else None)
        self.pose_prior = None
        if config.loss.pose_prior > 0:
            self.pose_prior = load_default_pose_prior().to(self.device)
        self.evaluate = evaluate
        self.desc = desc
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.step = 0
        self.running = 0.0
        self.seconds = 0.0
        self.history: list[dict] = []  # one entry per evaluation
        self.last_parts: dict[str, float] = {}
        self._warned_curves = False
        self._tb = None  # TensorBoard writer, made on the first log entry
        self._tb_missing = False

    # -- one step ---------------------------------------------------------------------

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self) -> tuple[float, dict[str, float]]:
        """One optimiser step; returns (loss, parts)."""
        cfg = self.config
        self.model.train()
        progress = self.step / max(1, cfg.optim.steps - 1)
        idx = self.sampler.sample(cfg.optim.batch_size, self.generator, progress)
        batch = make_batch(self.data, idx, cfg.augment, self.generator,
                           images=cfg.inputs == "images", img_res=cfg.img_res,
                           workers=cfg.workers, drop_bank=self.drop_bank).to(self.device)
        with self._autocast():
            out = self.model(batch.inputs)
        loss, parts = regression_loss(out, self.fast, batch, cfg.loss, self.pose_prior)
        if cfg.loss.cycle_kp3d > 0 or cfg.loss.cycle_rotmat > 0:
            with self._autocast():
                cycle, parts["cycle"] = view_cycle_loss(self.model, out, self.fast, batch,
                                                        cfg.loss, cfg.augment, self.generator)
            loss = loss + cfg.loss.overall * cycle
        if cfg.loss.meta_eft > 0:
            meta, parts["meta"] = meta_eft_loss(self.model, self.fast, batch, cfg.loss,
                                                self.generator, self.pose_prior)
            loss = loss + cfg.loss.meta_eft * meta
        if not torch.isfinite(loss):
            raise TrainError(f"the loss is not finite at step {self.step + 1} ({parts}); "
                             "lower the learning rate or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if cfg.optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        value = float(loss.detach())
        self.running = 0.98 * self.running + 0.02 * value if self.step > 1 else value
        self.last_parts = parts
        return value, parts

    # -- the loop ---------------------------------------------------------------------

    def run(self, until: int | None = None) -> list[dict]:
        """Train up to step ``until`` (default: ``optim.steps``); returns the
        evaluation history (one dict per evaluation: step, seconds, running loss,
        the last step's loss parts and the metrics)."""
        from tqdm import tqdm

        cfg = self.config
        until = cfg.optim.steps if until is None else min(int(until), cfg.optim.steps)
        start = time.perf_counter() - self.seconds
        bar = tqdm(total=cfg.optim.steps, initial=self.step, desc=self.desc,
                   disable=not cfg.output.progress, dynamic_ncols=True)
        try:
            while self.step < until:
                value, parts = self.train_step()
                self.seconds = time.perf_counter() - start
                bar.update(1)
                step = self.step
                if step % cfg.output.log_every == 0 or step == until:
                    bar.set_postfix(loss=f"{self.running:.4f}")
                    self._log({"kind": "train", "step": step, "seconds": self.seconds,
                               "loss": value, "loss_ema": self.running,
                               "lr": self.optimizer.param_groups[0]["lr"],
                               **{f"loss_{k}": v for k, v in parts.items()}})
                if self.evaluate is not None and (step % cfg.output.eval_every == 0
                                                  or step == cfg.optim.steps):
                    was = self.model.training
                    self.model.eval()
                    metrics = self.evaluate(step, self.model)
                    self.model.train(was)
                    entry = {"step": step, "seconds": self.seconds, "loss": self.running,
                             **{f"loss_{k}": v for k, v in parts.items()}, **metrics}
                    self.history.append(entry)
                    self._log({"kind": "eval", **entry})
                    bar.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in entry.items()))
                every = cfg.output.checkpoint_every
                if self.out_dir is not None and ((every and step % every == 0)
                                                 or step == cfg.optim.steps):
                    self.save_checkpoint()
                    self.write_curves()
        finally:
            bar.close()
            if self._tb is not None:
                self._tb.flush()
        return self.history

    # -- outputs ------------------------------------------------------------------------

    def _log(self, entry: dict) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        tb = self._tensorboard()
        if tb is not None:
            kind = entry.get("kind", "train")
            for key, value in entry.items():
                if key not in ("kind", "step") and isinstance(value, (int, float)) and (
                        not isinstance(value, bool)):
                    tb.add_scalar(f"{kind}/{key}", value, int(entry["step"]))

    def _tensorboard(self):
        """A TensorBoard ``SummaryWriter`` on ``out_dir/tensorboard``, or None when the
        ``tensorboard`` package is not installed (checked once)."""
        if self._tb is None and not self._tb_missing:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb_missing = True
                return None
            self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))
        return self._tb

    def write_curves(self) -> Path | None:
        """Write ``metrics.csv`` and plot ``log.jsonl`` into ``curves.png`` (the plot is
        skipped, with one warning, without matplotlib)."""
        if self.out_dir is None or not (self.out_dir / "log.jsonl").is_file():
            return None

        write_metrics_csv(self.out_dir / "log.jsonl", self.out_dir / "metrics.csv")
        try:
            return plot_log(self.out_dir / "log.jsonl", self.out_dir / "curves.png")
        except ImportError:
            if not self._warned_curves:
                warnings.warn("matplotlib is not installed: no curves.png (pip install "
                              "'eft[viz]')", stacklevel=2)
                self._warned_curves = True
            return None

    # -- checkpoints ------------------------------------------------------------------

    def state_dict(self) -> dict:
        try:
            config = self.model.config
            if not isinstance(config, dict):
                raise TypeError("the model's config is not a dict")
            arch, model_config = architecture_of(self.model), dict(config)
        except Exception:  # noqa: BLE001 - a model outside the registry still trains
            arch, model_config = None, None
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "step": self.step, "running": self.running, "seconds": self.seconds,
            "arch": arch, "model_config": model_config,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": rng, "history": self.history,
            "trainer_config": plain(self.config),
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Write the full training state (atomically); default
        ``out_dir/checkpoints/step_XXXXXXX.pt``, pruning to ``keep_checkpoints``."""
        if path is None:
            if self.out_dir is None:
                raise ValueError("no path and no out_dir to save the checkpoint in")
            folder = self.out_dir / "checkpoints"
            path = folder / f"step_{self.step:07d}.pt"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(self.state_dict(), fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if path.name.startswith("step_"):
            old = sorted(path.parent.glob("step_*.pt"))[:-self.config.output.keep_checkpoints]
            for f in old:
                f.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> int:
        """Restore everything from a checkpoint written by :meth:`save_checkpoint`;
        returns its step.  ``log.jsonl`` entries after that step are dropped."""
        ckpt = read_checkpoint_file(path)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            msg = str(exc).splitlines()[0]
            raise TrainError(f"{path}: does not fit this model/config ({msg})") from None
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step = int(ckpt["step"])
        self.running = float(ckpt["running"])
        self.seconds = float(ckpt["seconds"])
        self.history = list(ckpt.get("history") or [])
        if self.out_dir is not None and (self.out_dir / "log.jsonl").is_file():
            log = self.out_dir / "log.jsonl"
            keep = [line for line in log.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= self.step]
            log.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        return self.step

