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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from eft.body.model import BodyModel
from eft.data.pose_variants import VARIANT_KINDS, pose_variants
from eft.data.synthetic import SyntheticConfig, SyntheticSet, generate
from eft.models.keypoint_regressor import KeypointRegressor

from .augment import AugmentConfig, crop_inputs
from .data import MixSampler, TrainSet, concat_sets
from .evaluate import evaluate_bodies, metrics_table
from .losses import LossWeights
from .trainer import OptimConfig, Trainer, TrainerConfig, latest_checkpoint

# Seed of the fixed validation set that pretraining and scripts/bench_prior.py share.
PRIOR_VAL_SEED = 20261122

#: The prior's training set type (kept under its first name).
TensorSet = TrainSet


def make_prior_set(poses, n: int, seed: int, body: BodyModel, progress: bool = False,
                   config: SyntheticConfig | None = None) -> SyntheticSet:
    """``n`` synthetic exemplars posed from ``poses`` (N,72), with the default generator."""
    return generate(poses, n, seed, config or SyntheticConfig(), body=body, progress=progress)


#: The v2 prior's synthetic people: every SPIN-49 slot annotated (the trainer then
#: restricts each sample's inputs to one real keypoint format), more camera pitch, more
#: bending and lying people, more truncation and whole-limb drops.
V2_SYNTHETIC = SyntheticConfig(annotate="all", upright_pitch_std_deg=15.0,
                               bending_fraction=0.1, lying_fraction=0.08,
                               truncation_prob=0.2, limb_drop_prob=0.1)


def make_prior_v2_sets(poses, n: int, n_variants: int, seed: int, body: BodyModel,
                       progress: bool = False) -> list[SyntheticSet]:
    """The v2 training people, all with :data:`V2_SYNTHETIC`: ``n`` posed from ``poses``
    (N, 72), then ``n_variants`` of each :data:`~eft.data.pose_variants.VARIANT_KINDS`
    (seated, kneeling, bending) made from them.  Deterministic in ``seed``."""
    import numpy as np

    base = np.asarray(poses, dtype=np.float64).reshape(-1, 72)
    sets = [generate(base, n, seed, V2_SYNTHETIC, body=body, progress=progress)]
    for k, kind in enumerate(VARIANT_KINDS):
        if n_variants > 0:
            varied = pose_variants(base, n_variants, seed + 1 + k, kind)
            sets.append(generate(varied, n_variants, seed + 101 + k, V2_SYNTHETIC, body=body,
                                 progress=progress))
    return sets


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
    # v2 additions (their defaults reproduce v1)
    format_prob: float = 0.0
    formats: tuple[str, ...] = ()
    hide_limb_prob: float = 0.0
    real_fraction: float = 0.0  # share of each batch drawn from real 2D-only labels
    pose_prior: float = 0.0  # GMM NLL hinge weight on the real samples' predictions
    pose_prior_floor: float = 0.0
    betas_prior: float = 0.0
    real_mask_prob: float = 0.0  # synthetic samples that take a real person's missing joints


#: Every keypoint format the readers produce, and the mixtures datasets combine.
INPUT_FORMATS: tuple[str, ...] = (
    "coco17", "mpii16", "lsp14", "h36m17_spin", "crowdpose14", "posetrack17", "openpose25",
    "openpose18", "coco17+openpose25", "mpii16+lsp14", "all")

#: The v2 prior's recipe (see PRIOR_CARD.md and scripts/pretrain_prior.py).
PRIOR_V2 = PriorTrainConfig(
    steps=24000, batch_size=256, lr=5e-4, format_prob=0.9, formats=INPUT_FORMATS,
    hide_limb_prob=0.3, real_fraction=0.4, pose_prior=5e-5, pose_prior_floor=0.0,
    betas_prior=0.01, extra_dropout=0.05)


def trainer_config(cfg: PriorTrainConfig, progress: bool = True,
                   device: str = "cpu") -> TrainerConfig:
    """The general trainer's settings for the prior's pretraining."""
    return TrainerConfig(
        optim=OptimConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                          weight_decay=cfg.weight_decay, optimizer="adamw", schedule="cosine",
                          lr_final_fraction=cfg.lr_final_fraction, seed=cfg.seed),
        loss=LossWeights(kp2d=cfg.w_kp2d, kp3d=cfg.w_kp3d, rotmat=cfg.w_rotmat,
                         betas=cfg.w_betas, cam=cfg.w_cam, openpose_2d=1.0, gt_2d=1.0,
                         overall=1.0, pose_prior=cfg.pose_prior,
                         pose_prior_floor=cfg.pose_prior_floor, betas_prior=cfg.betas_prior),
        augment=AugmentConfig(scale_range=cfg.scale_jitter, center_jitter=cfg.center_jitter,
                              flip_prob=0.0, rot_prob=0.0, kp_noise=cfg.kp_jitter,
                              kp_dropout=cfg.extra_dropout, color_range=(1.0, 1.0),
                              format_prob=cfg.format_prob, formats=cfg.formats,
                              hide_limb_prob=cfg.hide_limb_prob,
                              real_mask_prob=cfg.real_mask_prob),
        inputs="keypoints", device=device, amp="off", log_every=max(1, cfg.eval_every // 10),
        eval_every=cfg.eval_every, progress=progress)


def train_prior(
    model: KeypointRegressor,
    body: BodyModel,
    train: TrainSet,
    cfg: PriorTrainConfig,
    on_eval: Callable[[int, KeypointRegressor], dict] | None = None,
    progress: bool = True,
    real: TrainSet | None = None,
    out_dir: str | None = None,
) -> list[dict]:
    """Train ``model`` in place; returns the log (one dict per eval point).

    ``real``: 2D-only samples (real labels) that make up ``cfg.real_fraction`` of every
    batch.  ``out_dir``: where the trainer keeps checkpoints (resumable), or None."""
    sampler = None
    if real is not None and cfg.real_fraction > 0:
        sampler = MixSampler([len(train), len(real)],
                             [1.0 - cfg.real_fraction, cfg.real_fraction])
        train = concat_sets([train, real])
    tcfg = trainer_config(cfg, progress)
    if out_dir is not None:
        tcfg = replace(tcfg, checkpoint_every=cfg.eval_every)
    trainer = Trainer(model, body, train, tcfg, evaluate=on_eval,
                      sampler=sampler, out_dir=out_dir, desc="pretrain prior")
    last = None if out_dir is None else latest_checkpoint(Path(out_dir) / "checkpoints")
    if last is not None:
        trainer.load_checkpoint(last)
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


def real_2d_set(exemplars) -> TrainSet:
    """Real people with 2D labels only (``Exemplar``s from any reader) as training
    samples: the labels are both the input and the 2D target; no 3D targets."""
    import numpy as np

    ex = list(exemplars)
    return TrainSet.from_arrays(np.stack([e.keypoints for e in ex]),
                                np.stack([e.center for e in ex]),
                                np.array([e.scale for e in ex]),
                                ids=[e.id for e in ex])


__all__ = [
    "INPUT_FORMATS",
    "PRIOR_V2",
    "V2_SYNTHETIC",
    "make_prior_v2_sets",
    "real_2d_set",
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
