"""Pretraining the embedded keypoint prior on synthetic exemplars, and evaluating it.

The prior is a :class:`~eft.models.KeypointRegressor` trained from scratch, on the
CPU, on synthetic people (``eft.synthetic.exemplars``) posed from the motion-capture
pose bank.  It is one use of the general trainer (:mod:`eft.train.trainer`): its recipes
:data:`PRIOR_V1` and :data:`PRIOR_V2` are :class:`~eft.train.trainer.TrainerConfig` s,
passed to the trainer as they are: SPIN's loss terms with the 2D keypoints supervised
by their noise-free projections (all 49, weight 1) and 3D keypoints from the ground
truth; AdamW with a cosine schedule; per-step augmentation of the keypoints by bbox
framing jitter (scale and centre), extra joint dropout and small jitter, on top of the
generator's annotation noise, missing joints and truncation.  The v2 recipe with its
data is also the training config ``fitting/training/keypoint-prior-v2.yaml``, which
``eft train`` runs; prior v3 is the same recipe with a network twice as wide
(``keypoint-prior-v3.yaml``), prior v4, :data:`PRIOR_V4`, trains v3's network twice
as long with the gradient clipped (``keypoint-prior-v4.yaml``), prior v5, :data:`PRIOR_V5`,
continues from v4's weights for a second cycle of v4's recipe
(``keypoint-prior-v5.yaml``), prior v6, :data:`PRIOR_V6`, runs a third cycle from v5's
(``keypoint-prior-v6.yaml``), prior v7, :data:`PRIOR_V7`, a short fourth cycle from
v6's with more real people per batch, every one with a hidden limb
(``keypoint-prior-v7.yaml``), and prior v8 (the default), :data:`PRIOR_V8`, v7's recipe
again from v7's weights with the real people's hidden joints weighing more in the 2D
loss (``keypoint-prior-v8.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from eft.body.model import BodyModel
from eft.config_loader import plain
from eft.geometry.rotations import rot6d_to_rotmat
from eft.models.keypoint_regressor import KeypointRegressor
from eft.synthetic.exemplars import SyntheticConfig, SyntheticSet, generate
from eft.synthetic.pose_variants import VARIANT_KINDS, pose_variants

from .augment import AugmentConfig, crop_inputs
from .config import SYNTHETIC_VAL_SEED
from .data import MixSampler, TrainSet, concat_sets
from .evaluate import evaluate_bodies, metrics_table
from .losses import LossWeights
from .trainer import OptimConfig, OutputSpec, Trainer, TrainerConfig, latest_checkpoint

#: Seed of the fixed validation set that pretraining and scripts/bench_prior.py share
#: (the one synthetic validation seed, :data:`eft.train.config.SYNTHETIC_VAL_SEED`).
PRIOR_VAL_SEED = SYNTHETIC_VAL_SEED

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
    (N, 72), then ``n_variants`` of each :data:`~eft.synthetic.pose_variants.VARIANT_KINDS`
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


#: Every keypoint format the readers produce, and the mixtures datasets combine.
INPUT_FORMATS: tuple[str, ...] = (
    "coco17", "mpii16", "lsp14", "h36m17_spin", "crowdpose14", "posetrack17", "openpose25",
    "openpose18", "coco17+openpose25", "mpii16+lsp14", "all")

#: The v1 prior's recipe: SPIN's loss weights rescaled for a small model, AdamW with a
#: cosine decay to 5 % of the rate, box jitter, extra joint dropout and keypoint jitter.
PRIOR_V1 = TrainerConfig(
    optim=OptimConfig(steps=12000, batch_size=256, lr=5e-4, weight_decay=1e-4,
                      optimizer="adamw", schedule="cosine", lr_final_fraction=0.05, seed=0),
    loss=LossWeights(kp2d=5.0, kp3d=5.0, rotmat=1.0, betas=0.01, cam=1.0, openpose_2d=1.0,
                     gt_2d=1.0, overall=1.0),
    augment=AugmentConfig(scale_range=(0.85, 1.3), center_jitter=0.08, flip_prob=0.0,
                          rot_prob=0.0, kp_noise=0.005, kp_dropout=0.05,
                          color_range=(1.0, 1.0)),
    output=OutputSpec(log_every=100, eval_every=1000, checkpoint_every=1000),
    device="cpu", amp="off", inputs="keypoints")

#: The v2 prior's recipe, also v3's at width 512 (see PRIOR_CARD_v2.md / _v3.md,
#: scripts/pretrain_prior.py and fitting/training/keypoint-prior-v2.yaml / -v3.yaml):
#: every input format, hidden limbs, the GMM hinge on real samples, twice the steps.
PRIOR_V2 = PRIOR_V1.replace(
    optim=replace(PRIOR_V1.optim, steps=24000),
    loss=replace(PRIOR_V1.loss, pose_prior=5e-5, pose_prior_floor=0.0, betas_prior=0.01),
    augment=replace(PRIOR_V1.augment, format_prob=0.9, formats=INPUT_FORMATS,
                    hide_limb_prob=0.3, real_mask_prob=0.0))
#: Share of each v2 (v3, v4) batch drawn from real 2D-only labels.
PRIOR_V2_REAL_FRACTION = 0.4
#: The v4 prior's recipe (the default's; width 512, like v3): v2's with twice the steps
#: and the gradient norm clipped at 5, which keeps the run from diverging (see
#: PRIOR_CARD_v4.md and fitting/training/keypoint-prior-v4.yaml).
PRIOR_V4 = PRIOR_V2.replace(optim=replace(PRIOR_V2.optim, steps=48000, grad_clip=5.0))
#: The v5 prior's recipe: v4's, started from v4's weights (:data:`PRIOR_V5_INIT`) for a
#: second cosine cycle at half the peak rate, so the network sees 96,000 steps in all;
#: seed 1, so the second cycle draws other batches than the first
#: (see fitting/training/keypoint-prior-v5.yaml).
PRIOR_V5 = PRIOR_V4.replace(optim=replace(PRIOR_V4.optim, lr=2.5e-4, seed=1))
#: The regressor the v5 recipe starts from.
PRIOR_V5_INIT = "keypoint-prior-v4"
#: The v6 prior's recipe: v5's once more, started from v5's weights
#: (:data:`PRIOR_V6_INIT`) for a third cosine cycle (144,000 steps in all), seed 2 for
#: the batches (see fitting/training/keypoint-prior-v6.yaml).
PRIOR_V6 = PRIOR_V5.replace(optim=replace(PRIOR_V5.optim, seed=2))
#: The regressor the v6 recipe starts from.
PRIOR_V6_INIT = "keypoint-prior-v5"
#: The v7 prior's recipe: a short fourth cycle (12,000 steps at v6's peak rate, batch
#: seed 3) from v6's weights (:data:`PRIOR_V7_INIT`) that trains on the real labels'
#: task, placing a hidden limb: :data:`PRIOR_V7_REAL_FRACTION` of every batch is real
#: 2D labels, each with one limb hidden from its input (``hide_limb_prob_2d`` 1); the
#: synthetic people keep v6's 0.3 (see fitting/training/keypoint-prior-v7.yaml).
PRIOR_V7 = PRIOR_V6.replace(optim=replace(PRIOR_V6.optim, steps=12000, seed=3),
                            augment=replace(PRIOR_V6.augment, hide_limb_prob_2d=1.0))
#: The regressor the v7 recipe starts from.
PRIOR_V7_INIT = "keypoint-prior-v6"
#: Share of each v7 (and v8) batch drawn from real 2D-only labels.
PRIOR_V7_REAL_FRACTION = 0.7
#: The v8 prior's recipe: v7's once more from v7's weights (:data:`PRIOR_V8_INIT`),
#: batch seed 4, with the real people's hidden joints (the limb their input lacks)
#: weighing ``hidden_2d`` times the others in the 2D loss, so the cycle spends its
#: gradient on placing the hidden limb (see fitting/training/keypoint-prior-v8.yaml).
PRIOR_V8 = PRIOR_V7.replace(optim=replace(PRIOR_V7.optim, seed=4),
                            loss=replace(PRIOR_V7.loss, hidden_2d=10.0))
#: The regressor the v8 recipe starts from.
PRIOR_V8_INIT = "keypoint-prior-v7"
#: The v9 prior's recipe: v8's once more from v8's weights (:data:`PRIOR_V9_INIT`),
#: batch seed 5, with the real people's hidden joints counting their distance instead
#: of its square (``hidden_2d_distance``, in place of v8's x10 squares): the square's
#: best guess for a joint the input lacks is the mean of where it may be, drawn towards
#: its parent (a foreshortened limb), the distance's the median (see
#: fitting/training/keypoint-prior-v9.yaml).
PRIOR_V9 = PRIOR_V8.replace(optim=replace(PRIOR_V8.optim, seed=5),
                            loss=replace(PRIOR_V8.loss, hidden_2d=1.0,
                                         hidden_2d_distance=40.0))
#: The regressor the v9 recipe starts from.
PRIOR_V9_INIT = "keypoint-prior-v8"


def prior_config(base: TrainerConfig = PRIOR_V1, *, steps: int | None = None,
                 batch_size: int | None = None, lr: float | None = None,
                 eval_every: int | None = None, seed: int | None = None,
                 real_mask_prob: float | None = None,
                 cycle: tuple[float, float] | None = None,
                 flip_prob: float | None = None,
                 grad_clip: float | None = None,
                 hide_limb_prob: float | None = None,
                 hide_limb_prob_2d: float | None = None,
                 hidden_2d: float | None = None,
                 kp2d_distance: float | None = None,
                 hidden_2d_distance: float | None = None,
                 clean_input_prob: float | None = None,
                 skeleton_jitter_prob: float | None = None,
                 kp3d_distance: float | None = None,
                 meta_eft: float | None = None,
                 meta_eft_samples: int | None = None) -> TrainerConfig:
    """``base`` with another budget: ``eval_every`` also sets the log interval (a tenth)
    and the checkpoint interval (the same), as the recipes have them.  ``cycle``:
    the view-cycle weights ``(cycle_kp3d, cycle_rotmat)`` (:func:`~eft.train.losses.
    view_cycle_loss`); ``flip_prob``: left/right flips of every sample; ``grad_clip``:
    the gradient-norm clip (0: none); ``hide_limb_prob``: share of samples with one limb
    hidden from the input (``hide_limb_prob_2d``: of the 2D-only samples, when set);
    ``hidden_2d``, ``kp2d_distance``, ``hidden_2d_distance``: the 2D loss's weight on
    real people's joints absent from the input, its distance form on real labels, and
    on those absent joints only (:class:`~eft.train.losses.LossWeights`);
    ``clean_input_prob``: share of the 3D-supervised samples read from their exact 2D
    targets, ``skeleton_jitter_prob``: share of them whose input is redrawn from a
    skeleton of other proportions (:class:`~eft.train.augment.AugmentConfig`);
    ``kp3d_distance``: the 3D
    keypoint loss's distance form (:class:`~eft.train.losses.LossWeights`);
    ``meta_eft``, ``meta_eft_samples``: the meta-EFT term's weight and samples per batch
    (:mod:`eft.train.meta`)."""
    o = base.optim
    cfg = base.replace(optim=replace(
        o, steps=o.steps if steps is None else steps,
        batch_size=o.batch_size if batch_size is None else batch_size,
        lr=o.lr if lr is None else lr, seed=o.seed if seed is None else seed,
        grad_clip=o.grad_clip if grad_clip is None else grad_clip))
    if eval_every is not None:
        cfg = cfg.replace(output={"eval_every": eval_every, "checkpoint_every": eval_every,
                                  "log_every": max(1, eval_every // 10)})
    if real_mask_prob is not None:
        cfg = cfg.replace(augment=replace(cfg.augment, real_mask_prob=real_mask_prob))
    if flip_prob is not None:
        cfg = cfg.replace(augment=replace(cfg.augment, flip_prob=flip_prob))
    if hide_limb_prob is not None:
        cfg = cfg.replace(augment=replace(cfg.augment, hide_limb_prob=hide_limb_prob))
    if hide_limb_prob_2d is not None:
        cfg = cfg.replace(augment=replace(cfg.augment, hide_limb_prob_2d=hide_limb_prob_2d))
    if clean_input_prob is not None:
        cfg = cfg.replace(augment=replace(cfg.augment, clean_input_prob=clean_input_prob))
    if skeleton_jitter_prob is not None:
        cfg = cfg.replace(augment=replace(cfg.augment,
                                          skeleton_jitter_prob=skeleton_jitter_prob))
    if hidden_2d is not None:
        cfg = cfg.replace(loss=replace(cfg.loss, hidden_2d=float(hidden_2d)))
    if kp3d_distance is not None:
        cfg = cfg.replace(loss=replace(cfg.loss, kp3d_distance=float(kp3d_distance)))
    if kp2d_distance is not None:
        cfg = cfg.replace(loss=replace(cfg.loss, kp2d_distance=float(kp2d_distance)))
    if meta_eft is not None:
        cfg = cfg.replace(loss=replace(cfg.loss, meta_eft=float(meta_eft)))
    if meta_eft_samples is not None:
        cfg = cfg.replace(loss=replace(cfg.loss, meta_eft_samples=int(meta_eft_samples)))
    if hidden_2d_distance is not None:
        cfg = cfg.replace(loss=replace(cfg.loss,
                                       hidden_2d_distance=float(hidden_2d_distance)))
    if cycle is not None:
        cfg = cfg.replace(loss=replace(cfg.loss, cycle_kp3d=float(cycle[0]),
                                       cycle_rotmat=float(cycle[1])))
    return cfg


def train_prior(
    model: KeypointRegressor,
    body: BodyModel,
    train: TrainSet,
    cfg: TrainerConfig,
    on_eval: Callable[[int, nn.Module], dict] | None = None,
    progress: bool = True,
    real: TrainSet | None = None,
    out_dir: str | None = None,
    real_fraction: float = 0.0,
) -> list[dict]:
    """Train ``model`` in place as ``cfg`` says (:data:`PRIOR_V1`, :data:`PRIOR_V2` or
    :func:`prior_config`); returns the log (one dict per eval point).

    ``real``: 2D-only samples (real labels) that make up ``real_fraction`` of every
    batch (:data:`PRIOR_V2_REAL_FRACTION` for v2).  ``out_dir``: where the trainer keeps
    checkpoints (``out_dir/checkpoints``; a call with the same folder resumes), or None."""
    sampler = None
    if real is not None and real_fraction > 0:
        sampler = MixSampler([len(train), len(real)], [1.0 - real_fraction, real_fraction])
        train = concat_sets([train, real])
    trainer = Trainer(model, body, train, cfg.replace(output={"progress": progress}),
                      evaluate=on_eval, sampler=sampler, out_dir=out_dir,
                      desc="pretrain prior")
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
    n = len(data)
    rot = rot6d_to_rotmat(model.init_pose.reshape(1, 24, 6)).expand(n, -1, -1, -1)
    return evaluate_bodies(body, rot, model.init_shape.expand(n, -1), data.rotmat, data.betas)


def config_dict(cfg: TrainerConfig) -> dict:
    """The recipe as plain nested values (for model cards and checkpoints' metadata)."""
    return plain(cfg)


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
    "PRIOR_V1",
    "PRIOR_V2",
    "PRIOR_V2_REAL_FRACTION",
    "PRIOR_V4",
    "PRIOR_V5",
    "PRIOR_V5_INIT",
    "PRIOR_V6",
    "PRIOR_V6_INIT",
    "PRIOR_V7",
    "PRIOR_V7_INIT",
    "PRIOR_V7_REAL_FRACTION",
    "PRIOR_V8",
    "PRIOR_V8_INIT",
    "PRIOR_V9",
    "PRIOR_V9_INIT",
    "prior_config",
    "V2_SYNTHETIC",
    "make_prior_v2_sets",
    "real_2d_set",
    "PRIOR_VAL_SEED",
    "make_prior_set",
    "metrics_table",
    "TensorSet",
    "config_dict",
    "crop_inputs",
    "evaluate_bodies",
    "evaluate_mean_pose",
    "evaluate_prior",
    "train_prior",
]
