"""Pretraining the embedded keypoint prior on synthetic exemplars, and evaluating it.

The prior is a :class:`~eft.models.KeypointRegressor` trained from scratch, on the
CPU, on synthetic people (``eft.data.synthetic``) posed from the motion-capture
pose bank.  It is one use of the general trainer (:mod:`eft.train.trainer`):
:class:`PriorTrainConfig` holds the prior's settings and :func:`trainer_config` maps
them onto a :class:`~eft.train.trainer.TrainerConfig`: SPIN's loss terms with the 2D
keypoints supervised by their noise-free projections (all 49, weight 1) and 3D
keypoints from the ground truth; AdamW with a cosine schedule; per-step augmentation
of the keypoints by bbox framing jitter (scale and centre), extra joint dropout and
small jitter, on top of the generator's annotation noise, missing joints and
truncation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from eft.body.model import BodyModel
from eft.data.synthetic import SyntheticConfig, SyntheticSet, generate
from eft.models.keypoint_regressor import KeypointRegressor

from .augment import AugmentConfig, crop_inputs
from .data import TrainSet
from .evaluate import evaluate_bodies, metrics_table
from .losses import LossWeights
from .trainer import OptimConfig, Trainer, TrainerConfig

# Seed of the fixed validation set that pretraining and scripts/bench_prior.py share.
PRIOR_VAL_SEED = 20261122

#: The prior's training set type (kept under its first name).
TensorSet = TrainSet


def make_prior_set(poses, n: int, seed: int, body: BodyModel, progress: bool = False,
                   config: SyntheticConfig | None = None) -> SyntheticSet:
    """``n`` synthetic exemplars posed from ``poses`` (N,72), with the default generator."""
    return generate(poses, n, seed, config or SyntheticConfig(), body=body, progress=progress)


@dataclass(frozen=True)
class PriorTrainConfig:
    """Training hyper-parameters (SPIN's loss weights, rescaled for a small model)."""

    steps: int = 12000
    batch_size: int = 256
    lr: float = 5e-4
    lr_final_fraction: float = 0.05  # cosine decay to lr * this
    weight_decay: float = 1e-4
    w_rotmat: float = 1.0
    w_betas: float = 0.01
    w_kp3d: float = 5.0
    w_kp2d: float = 5.0
    w_cam: float = 1.0
    scale_jitter: tuple[float, float] = (0.85, 1.3)  # multiplies the bbox scale
    center_jitter: float = 0.08  # of the bbox side
    extra_dropout: float = 0.05  # extra fraction of annotated joints dropped per step
    kp_jitter: float = 0.005  # crop-normalised std of extra jitter
    eval_every: int = 1000
    seed: int = 0


def trainer_config(cfg: PriorTrainConfig, progress: bool = True,
                   device: str = "cpu") -> TrainerConfig:
    """The general trainer's settings for the prior's pretraining."""
    return TrainerConfig(
        optim=OptimConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                          weight_decay=cfg.weight_decay, optimizer="adamw", schedule="cosine",
                          lr_final_fraction=cfg.lr_final_fraction, seed=cfg.seed),
        loss=LossWeights(kp2d=cfg.w_kp2d, kp3d=cfg.w_kp3d, rotmat=cfg.w_rotmat,
                         betas=cfg.w_betas, cam=cfg.w_cam, openpose_2d=1.0, gt_2d=1.0,
                         overall=1.0),
        augment=AugmentConfig(scale_range=cfg.scale_jitter, center_jitter=cfg.center_jitter,
                              flip_prob=0.0, rot_prob=0.0, kp_noise=cfg.kp_jitter,
                              kp_dropout=cfg.extra_dropout, color_range=(1.0, 1.0)),
        inputs="keypoints", device=device, amp="off", log_every=max(1, cfg.eval_every // 10),
        eval_every=cfg.eval_every, progress=progress)


def train_prior(
    model: KeypointRegressor,
    body: BodyModel,
    train: TrainSet,
    cfg: PriorTrainConfig,
    on_eval: Callable[[int, KeypointRegressor], dict] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` in place; returns the log (one dict per eval point)."""
    trainer = Trainer(model, body, train, trainer_config(cfg, progress), evaluate=on_eval,
                      desc="pretrain prior")
    return trainer.run()


@torch.no_grad()
def evaluate_prior(model: KeypointRegressor, body: BodyModel, data: TrainSet,
                   batch: int = 512) -> dict[str, float]:
    """Prior's errors on ``data`` (inputs framed by the exemplars' own bbox)."""
    model.eval()
    rot, betas = [], []
    for i in range(0, len(data), batch):
        sl = slice(i, i + batch)
        out = model(crop_inputs(data.kp_px[sl], data.center[sl], data.scale[sl]))
        rot.append(out.rotmat)
        betas.append(out.betas)
    return evaluate_bodies(body, torch.cat(rot), torch.cat(betas), data.rotmat, data.betas, batch)


@torch.no_grad()
def evaluate_mean_pose(model: KeypointRegressor, body: BodyModel, data: TrainSet
                       ) -> dict[str, float]:
    """The floor: the regressor's mean parameters (its IEF starting point) for everyone."""
    from eft.geometry.rotations import rot6d_to_rotmat

    n = len(data)
    rot = rot6d_to_rotmat(model.init_pose.reshape(1, 24, 6)).expand(n, -1, -1, -1)
    return evaluate_bodies(body, rot, model.init_shape.expand(n, -1), data.rotmat, data.betas)


def config_dict(cfg: PriorTrainConfig) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


__all__ = [
    "PRIOR_VAL_SEED",
    "make_prior_set",
    "metrics_table",
    "PriorTrainConfig",
    "TensorSet",
    "config_dict",
    "crop_inputs",
    "evaluate_bodies",
    "evaluate_mean_pose",
    "evaluate_prior",
    "train_prior",
    "trainer_config",
]
