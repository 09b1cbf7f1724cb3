"""Pretraining the embedded keypoint prior on synthetic exemplars, and evaluating it.

The prior is a :class:`~eft.models.KeypointRegressor` trained from scratch, on the
CPU, on synthetic people (``eft.data.synthetic``) posed from the motion-capture
pose bank.  Losses follow SPIN's recipe (rotation matrices, betas, 3D keypoints,
2D keypoints through the weak-perspective camera, camera-scale regulariser).
Augmentation happens per step on the keypoints: bbox framing jitter (scale and
centre), extra joint dropout and small jitter, on top of the generator's
annotation noise, missing joints and truncation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from eft.body.fast import KeypointLBS
from eft.body.joints import H36M_TO_J14
from eft.body.model import BodyModel
from eft.data.synthetic import SyntheticConfig, SyntheticSet, generate
from eft.geometry.cameras import (
    image_to_crop_norm,
    perspective_project,
    weak_perspective_project,
)
from eft.geometry.metrics import mpjpe, pa_mpjpe
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models.keypoint_regressor import KeypointRegressor

# Seed of the fixed validation set that pretraining and scripts/bench_prior.py share.
PRIOR_VAL_SEED = 20261122


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


@dataclass(frozen=True)
class TensorSet:
    """A synthetic set as tensors for training (n exemplars).

    Attributes:
        kp_px: (n,49,3) annotated keypoints, image px + confidence.
        clean_px: (n,49,2) noise-free projection of the ground-truth keypoints.
        center: (n,2); scale: (n,) bbox as in the exemplars.
        rotmat: (n,24,3,3) ground-truth rotations (camera frame); betas: (n,10).
        kp3d: (n,49,3) ground-truth keypoints relative to the pelvis joint.
    """

    kp_px: Tensor
    clean_px: Tensor
    center: Tensor
    scale: Tensor
    rotmat: Tensor
    betas: Tensor
    kp3d: Tensor

    @classmethod
    def from_synthetic(cls, s: SyntheticSet) -> TensorSet:
        kp3d_cam = torch.as_tensor(s.keypoints3d, dtype=torch.float64)
        clean = perspective_project(
            kp3d_cam, kp3d_cam.new_zeros(len(s), 3), torch.as_tensor(s.focal, dtype=torch.float64),
            torch.as_tensor(s.principal_point, dtype=torch.float64))
        pelvis = torch.as_tensor(s.joints3d[:, :1], dtype=torch.float64)
        return cls(
            kp_px=torch.as_tensor(s.keypoints, dtype=torch.float32),
            clean_px=clean.float(),
            center=torch.as_tensor(s.center, dtype=torch.float32),
            scale=torch.as_tensor(s.scale, dtype=torch.float32),
            rotmat=axis_angle_to_rotmat(torch.as_tensor(s.pose, dtype=torch.float32)
                                        .reshape(-1, 24, 3)),
            betas=torch.as_tensor(s.betas, dtype=torch.float32),
            kp3d=(kp3d_cam - pelvis).float(),
        )

    def __len__(self) -> int:
        return self.kp_px.shape[0]


def crop_inputs(kp_px: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """(n,49,3) image px + conf -> crop-normalised [-1,1] + conf (missing stay 0)."""
    xy = image_to_crop_norm(kp_px[..., :2], center, scale)
    conf = kp_px[..., 2:3]
    return torch.cat([xy * (conf > 0), conf], dim=-1)


def _augment(data: TensorSet, idx: Tensor, cfg: PriorTrainConfig, g: torch.Generator):
    n = idx.shape[0]
    lo, hi = cfg.scale_jitter
    scale = data.scale[idx] * (lo + (hi - lo) * torch.rand(n, generator=g))
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * cfg.center_jitter * 200.0 * scale[:, None]
    center = data.center[idx] + shift
    inputs = crop_inputs(data.kp_px[idx], center, scale)
    drop = torch.rand(n, 49, generator=g) < cfg.extra_dropout
    inputs[..., :2] += torch.randn(n, 49, 2, generator=g) * cfg.kp_jitter
    inputs = inputs * (~drop & (inputs[..., 2] > 0))[..., None]
    target2d = image_to_crop_norm(data.clean_px[idx], center, scale)
    return inputs, target2d


def prior_loss(model_out, fast: KeypointLBS, target2d: Tensor, rotmat: Tensor, betas: Tensor,
               kp3d: Tensor, cfg: PriorTrainConfig) -> tuple[Tensor, dict[str, float]]:
    """SPIN-style loss of a batch; returns (total, parts)."""
    kp, joints = fast(model_out.rotmat, model_out.betas)
    pred3d = kp - joints[:, :1]
    pred2d = weak_perspective_project(kp, model_out.cam)
    parts = {
        "rotmat": ((model_out.rotmat - rotmat) ** 2).mean(),
        "betas": ((model_out.betas - betas) ** 2).mean(),
        "kp3d": ((pred3d - kp3d) ** 2).sum(-1).mean(),
        "kp2d": ((pred2d - target2d) ** 2).sum(-1).mean(),
        "cam": (torch.exp(-10.0 * model_out.cam[:, 0]) ** 2).mean(),
    }
    total = (cfg.w_rotmat * parts["rotmat"] + cfg.w_betas * parts["betas"]
             + cfg.w_kp3d * parts["kp3d"] + cfg.w_kp2d * parts["kp2d"] + cfg.w_cam * parts["cam"])
    return total, {k: float(v.detach()) for k, v in parts.items()}


def train_prior(
    model: KeypointRegressor,
    body: BodyModel,
    train: TensorSet,
    cfg: PriorTrainConfig,
    on_eval: Callable[[int, KeypointRegressor], dict] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` in place; returns the log (one dict per eval point)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    fast = KeypointLBS(body)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=cfg.steps, eta_min=cfg.lr * cfg.lr_final_fraction)
    log: list[dict] = []
    start = time.perf_counter()
    bar = tqdm(range(1, cfg.steps + 1), desc="pretrain prior", disable=not progress)
    running = 0.0
    for step in bar:
        model.train()
        idx = torch.randint(len(train), (cfg.batch_size,), generator=g)
        inputs, target2d = _augment(train, idx, cfg, g)
        out = model(inputs)
        loss, parts = prior_loss(out, fast, target2d, train.rotmat[idx], train.betas[idx],
                                 train.kp3d[idx], cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        bar.set_postfix(loss=f"{running:.4f}")
        if on_eval is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            entry = {"step": step, "seconds": time.perf_counter() - start, "loss": running,
                     **{f"loss_{k}": v for k, v in parts.items()}, **on_eval(step, model)}
            log.append(entry)
            bar.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in entry.items()))
    return log


@torch.no_grad()
def evaluate_bodies(body: BodyModel, rotmat: Tensor, betas: Tensor, gt_rotmat: Tensor,
                    gt_betas: Tensor, batch: int = 512) -> dict[str, float]:
    """MPJPE / PA-MPJPE (mm) on the 14 LSP joints (H36M regressor) and the 24 joints.

    Both sides are pelvis-centred (14: mid-hip of the H36M joints; 24: pelvis joint).
    """
    sums = {"mpjpe_mm": [], "pa_mpjpe_mm": [], "mpjpe24_mm": [], "pa_mpjpe24_mm": []}
    j14 = list(H36M_TO_J14)
    for i in range(0, rotmat.shape[0], batch):
        sl = slice(i, i + batch)
        pred, gt = body(rotmat[sl], betas[sl]), body(gt_rotmat[sl], gt_betas[sl])
        p14, g14 = body.h36m_joints(pred.vertices)[:, j14], body.h36m_joints(gt.vertices)[:, j14]
        p14 = p14 - p14[:, 2:4].mean(1, keepdim=True)
        g14 = g14 - g14[:, 2:4].mean(1, keepdim=True)
        p24 = pred.joints - pred.joints[:, :1]
        g24 = gt.joints - gt.joints[:, :1]
        sums["mpjpe_mm"].append(mpjpe(p14, g14) * 1000)
        sums["pa_mpjpe_mm"].append(pa_mpjpe(p14, g14) * 1000)
        sums["mpjpe24_mm"].append(mpjpe(p24, g24) * 1000)
        sums["pa_mpjpe24_mm"].append(pa_mpjpe(p24, g24) * 1000)
    return {k: float(torch.cat(v).mean()) for k, v in sums.items()}


@torch.no_grad()
def evaluate_prior(model: KeypointRegressor, body: BodyModel, data: TensorSet,
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
def evaluate_mean_pose(model: KeypointRegressor, body: BodyModel, data: TensorSet
                       ) -> dict[str, float]:
    """The floor: the regressor's mean parameters (its IEF starting point) for everyone."""
    from eft.geometry.rotations import rot6d_to_rotmat

    n = len(data)
    rot = rot6d_to_rotmat(model.init_pose.reshape(1, 24, 6)).expand(n, -1, -1, -1)
    return evaluate_bodies(body, rot, model.init_shape.expand(n, -1), data.rotmat, data.betas)


def metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table of :func:`evaluate_bodies` results, one row per label."""
    cols = ("mpjpe_mm", "pa_mpjpe_mm", "mpjpe24_mm", "pa_mpjpe24_mm")
    lines = ["| | MPJPE-14 | PA-MPJPE-14 | MPJPE-24 | PA-MPJPE-24 |", "|---|---|---|---|---|"]
    lines += [f"| {label} | " + " | ".join(f"{r[c]:.1f}" for c in cols) + " |"
              for label, r in rows.items()]
    return "\n".join(lines)


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
    "prior_loss",
    "train_prior",
]

