"""Exemplar Fine-Tuning (Joo, Neverova, Vedaldi 2020): fit a body to each exemplar by
briefly fine-tuning the regressor on that exemplar alone.

Per exemplar, starting from the *same* pretrained weights every time: a fresh Adam
(weight decay 0), BatchNorm and dropout in eval mode with BatchNorm's affine weights
frozen, at most ``max_iters`` forward passes; stop at the first pass whose 2D loss is
below ``stop_loss_2d`` and keep *that pass's* prediction (EFT saves the outputs of the
stopping step's forward pass).  EFT also applies the Adam update of the stopping step,
which cannot change anything that is kept; it is skipped here.

Three implementations with the same results:

* :func:`fit_sequential` - EFT's original loop, one exemplar at a time with
  ``torch.optim.Adam`` (its fused kernel, same formulas): the reference.
* :func:`~eft.fitting.flat.fit_flat` - the fast engine for the MLP/IEF keypoint
  regressors (flat per-exemplar buffers, hand-written backward, fused Adam, cache
  blocks); :func:`fit` uses it by default when it supports the model.
* :func:`fit_batched` - B exemplars at once, each with its own copy of the trainable
  weights and its own Adam state: :func:`torch.func.vmap` over stacked per-exemplar
  parameters of :func:`torch.func.grad` of :func:`torch.func.functional_call`, and a
  vectorised Adam with ``torch.optim.Adam``'s formulas.  An exemplar that has stopped
  drops out of the batch (its parameters no longer change); the loop ends when all have
  stopped.

Trainable scope (``EFTConfig.scope``): ``"all"`` (EFT), ``"head"`` (the IEF head),
``"last_stage"`` (the last encoder stage + the head) or ``"bias"`` (every Linear /
convolution bias and LayerNorm / GroupNorm affine parameter of the whole regressor; the
weight matrices are shared by every exemplar, which the flat engine turns into one
matrix product per layer for the whole batch).  Each regressor
(:class:`~eft.models.protocol.Regressor`) declares how it splits into a frozen
``features(x)`` part and a trained ``head(features)`` part per scope; the frozen part
runs once per exemplar, without gradients.  In ``"all"`` every parameter except
BatchNorm's weight and bias is trained (LayerNorm's are trained; it has no running
statistics); any module returning a :class:`RegressorOutput` can be fine-tuned so.

Inputs (:class:`FitTargets`): a regressor of input kind ``"keypoints"`` reads the
crop-normalised keypoints (B, 49, 3) (the targets themselves; ``inputs=None`` means
that), an ``"image"`` one (HMR) reads ``inputs``, e.g. (B, 3, 224, 224) normalised
crops.  Targets are always (B, 49, 3) crop-normalised keypoints + confidence.

Degenerate exemplars - fewer than ``config.rules.min_valid_keypoints`` annotated GT
keypoints (all confidences zero, all keypoints NaN, a single keypoint), or a non-finite
model input - are not fine-tuned: they get the regressor's initial prediction and the
flags ``"skipped"`` (+ ``"too_few_keypoints"`` / ``"non_finite"``).  Non-finite keypoints
are treated as missing before anything is computed, so nothing non-finite enters the
batched computation.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from eft.body.fast import KeypointLBS
from eft.body.joints import SMPL24_NAMES, SPIN49_INDEX, flip_keypoints, flip_smpl_rotmat
from eft.body.model import BodyModel
from eft.data.exemplar import Exemplar
from eft.errors import EftError
from eft.geometry.cameras import (
    image_to_crop_norm,
    perspective_project,
    weak_to_perspective_translation,
)
from eft.geometry.rotations import nearest_rotation, rotmat_to_axis_angle
from eft.models.output import RegressorOutput
from eft.models.protocol import SCOPES, Regressor, whole_model_split
from eft.models.registry import shipped_prior_name

from .auto import (
    AUTO_CHOICES,
    AUTO_PRESET,
    auto_config,
    pilot_indices,
    run_pilots,
)
from .baselines import fit_weak_camera
from .calibrate import (
    OffsetRows,
    correct_targets,
    estimate_skeleton_offsets,
    in_label_skeleton,
    remeasure_skeleton_offsets,
)
from .config import MEASURE_OFFSETS, TILTED_REFIT, EFTConfig, eft_preset
from .losses import (
    count_valid_gt,
    eft_loss,
    keypoint_loss_2d,
    loss_weights,
    project,
    sanitize_keypoints,
)
from .perspective import crop_camera, image_camera, perspective_refine
from .pose_prior import load_default_pose_prior
from .quality import PosePrior, assess, pose_nll
from .records import Fit, FitTargets

__all__ = [
    "ModelSplit",
    "split_model",
    "trainable_parameter_names",
    "exemplar_batch",
    "input_kind",
    "fit_sequential",
    "fit_batched",
    "fit",
    "fit_exemplars",
    "mirror_targets",
]

# ---------------------------------------------------------------------------
# Model split: frozen features | trained head
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSplit:
    """A regressor cut into a frozen part and a trained part for one scope.

    Attributes:
        scope: the scope it was made for.
        features: ``features(inputs) -> Tensor`` - the frozen part (identity for
            ``"all"``); run once per exemplar without gradients.
        head: ``head(features) -> RegressorOutput`` - the fine-tuned part (it reads the
            model's own parameters, which the batched paths swap per exemplar).
        trainable: names (as in ``model.named_parameters()``) of the trained parameters.
    """

    scope: str
    features: Callable[[Tensor], Tensor]
    head: Callable[[Tensor], RegressorOutput]
    trainable: tuple[str, ...]


def _batchnorm_parameter_names(model: nn.Module) -> set[str]:
    names = set()
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for pname, _ in module.named_parameters(recurse=False):
                names.add(f"{mod_name}.{pname}" if mod_name else pname)
    return names


def _bias_parameter_names(model: nn.Module) -> tuple[str, ...]:
    """Scope ``"bias"``: every Linear / convolution bias and every LayerNorm / GroupNorm
    affine parameter (BatchNorm's stay frozen), in ``named_parameters()`` order."""
    names = []
    for mod_name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            wanted: tuple[str, ...] = ("bias",)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            wanted = ("weight", "bias")
        else:
            continue
        for pname, p in module.named_parameters(recurse=False):
            if pname in wanted and p is not None:
                names.append(f"{mod_name}.{pname}" if mod_name else pname)
    order = [n for n, _ in model.named_parameters()]
    return tuple(sorted(names, key=order.index))


def _names_under(model: nn.Module, prefixes: Sequence[str]) -> list[str]:
    return [n for n, _ in model.named_parameters()
            if any(p == "" or n == p or n.startswith(p + ".") for p in prefixes)]


def split_model(model: nn.Module, scope: str = "all") -> ModelSplit:
    """The :class:`ModelSplit` of ``model`` for ``scope`` (see the module docstring):
    the :class:`~eft.models.protocol.Regressor`'s own ``eft_split``; a module that is not
    one can only be fine-tuned whole (``"all"``).  BatchNorm weights and biases are never
    trainable.
    """
    if scope not in SCOPES:
        raise EftError(f"unknown scope {scope!r}")
    if scope == "bias":
        whole = whole_model_split(model)
        return ModelSplit(scope=scope, features=whole.features, head=whole.head,
                          trainable=_bias_parameter_names(model))
    if isinstance(model, Regressor):
        parts = model.eft_split(scope)  # type: ignore[arg-type]  # checked against SCOPES
    elif scope == "all":
        parts = whole_model_split(model)
    else:
        raise EftError(
            f"scope {scope!r} needs a Regressor (eft.models.protocol); a "
            f"{type(model).__name__} can only be fine-tuned with scope='all'")
    frozen_bn = _batchnorm_parameter_names(model)
    trainable = tuple(n for n in _names_under(model, parts.trained) if n not in frozen_bn)
    return ModelSplit(scope=scope, features=parts.features, head=parts.head,
                      trainable=trainable)


def trainable_parameter_names(model: nn.Module, scope: str = "all") -> tuple[str, ...]:
    """Names of the parameters EFT fine-tunes in ``scope``."""
    return split_model(model, scope).trainable


class _Head(nn.Module):
    """``head(features)`` of ``model`` as a module, for
    :func:`torch.func.functional_call` (parameter names get the prefix ``model.``)."""

    def __init__(self, model: nn.Module, head: Callable[[Tensor], RegressorOutput]):
        super().__init__()
        self.model = model
        self._head = head

    def forward(self, features: Tensor) -> RegressorOutput:
        return self._head(features)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def exemplar_batch(exemplars: Sequence[Exemplar], inputs: Tensor | None = None) -> FitTargets:
    """The :class:`FitTargets` of a list of exemplars: keypoints (B, 49, 3) float32
    crop-normalised + confidence, their centres (B, 2) and scales (B,) (float64; the crop
    is SPIN's ``200 * scale`` px square around ``center``, no rotation), ids, and the
    model ``inputs`` (image crops, or None for a keypoint regressor).  Non-finite
    keypoints stay as they are (the fit treats them as missing).
    """
    if len(exemplars) == 0:
        return FitTargets(torch.zeros(0, 49, 3), inputs, (),
                          torch.zeros(0, 2, dtype=torch.float64),
                          torch.zeros(0, dtype=torch.float64))
    kp = torch.as_tensor(np.stack([np.asarray(e.keypoints, dtype=np.float64)
                                   for e in exemplars]))
    centers = torch.as_tensor(np.stack([np.asarray(e.center, dtype=np.float64)
                                        for e in exemplars]))
    scales = torch.as_tensor([float(e.scale) for e in exemplars], dtype=torch.float64)
    xy = image_to_crop_norm(kp[..., :2], centers, scales)
    keypoints = torch.cat((xy, kp[..., 2:]), dim=-1).float()
    cameras = [image_camera(e) for e in exemplars]
    return FitTargets(keypoints, inputs, [str(e.id) for e in exemplars], centers, scales,
                      focals=torch.as_tensor([c[0] for c in cameras], dtype=torch.float64),
                      principal_points=torch.as_tensor([c[1] for c in cameras],
                                                       dtype=torch.float64))


_FAST_CACHE: weakref.WeakKeyDictionary[BodyModel, KeypointLBS] = weakref.WeakKeyDictionary()


def _keypoint_lbs(body: BodyModel | KeypointLBS, device: torch.device) -> KeypointLBS:
    """The (cached) :class:`KeypointLBS` of ``body`` on ``device``."""
    if isinstance(body, KeypointLBS):
        fast = body
    else:
        cached = _FAST_CACHE.get(body)
        fast = KeypointLBS(body) if cached is None else cached
        _FAST_CACHE[body] = fast
    if fast.c.device != device:
        fast = fast.to(device)
        if not isinstance(body, KeypointLBS):
            _FAST_CACHE[body] = fast
    return fast


@dataclass
class _Prepared:
    inputs: Tensor  # finite model inputs
    targets: Tensor  # (B, 49, 3) finite targets
    n_valid: Tensor  # (B,) int
    input_finite: Tensor  # (B,) bool
    skipped: Tensor  # (B,) bool
    centers: Tensor  # (B, 2) float64
    scales: Tensor  # (B,) float64
    ids: list[str]


def input_kind(model: nn.Module) -> str:
    """The regressor's ``input_kind``; ``"image"`` (inputs given separately) for a
    module that declares none."""
    return str(getattr(model, "input_kind", "image"))


def _prepare(model: nn.Module, fast: KeypointLBS, targets: FitTargets,
             config: EFTConfig) -> _Prepared:
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    batch = targets.batch
    keypoints = input_kind(model) == "keypoints"
    inputs = targets.inputs
    if inputs is None:
        if not keypoints:
            raise EftError(f"a {type(model).__name__} needs inputs (image crops)")
        inputs = targets.keypoints
    clean_targets = sanitize_keypoints(targets.keypoints.to(device, dtype))
    if keypoints:
        inputs = sanitize_keypoints(inputs.to(device, dtype))
        input_finite = torch.ones(batch, dtype=torch.bool, device=device)
    else:
        inputs = inputs.to(device, dtype)
        input_finite = torch.isfinite(inputs.reshape(batch, -1)).all(dim=1)
        inputs = _where_rows(input_finite, inputs, torch.zeros_like(inputs))
    n_valid = count_valid_gt(clean_targets, fast)
    skipped = (n_valid < config.rules.min_valid_keypoints) | ~input_finite
    return _Prepared(inputs, clean_targets, n_valid.cpu(), input_finite.cpu(), skipped.cpu(),
                     targets.center_tensor, targets.scale_tensor, targets.id_list)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

@dataclass
class _Raw:
    """Per-exemplar results of the fine-tuning loop (B rows)."""

    rotmat: Tensor
    betas: Tensor
    cam: Tensor
    loss_2d_init: Tensor
    loss_2d_final: Tensor
    iterations: Tensor
    converged: Tensor
    params: list[dict[str, np.ndarray] | None] | None = None  # kept parameters

    @classmethod
    def empty(cls, batch: int, like: Tensor) -> _Raw:
        def z(*shape):
            return like.new_zeros(batch, *shape)

        return cls(z(24, 3, 3), z(10), z(3), z(), z(),
                   torch.zeros(batch, dtype=torch.long, device=like.device),
                   torch.zeros(batch, dtype=torch.bool, device=like.device))


def _record_pass(raw: _Raw, idx: Tensor, it: int, l2d: Tensor, rotmat: Tensor,
                 betas: Tensor, cam: Tensor, config: EFTConfig) -> Tensor:
    """Record forward pass ``it`` (0-based) of the live exemplars ``idx`` (their 2D
    losses (R,) and prediction) into ``raw``; returns (R,) bool, which of them stop here
    (below ``stop_loss_2d``, non-finite, or the last pass)."""
    if it == 0:
        raw.loss_2d_init[idx] = l2d
    raw.loss_2d_final[idx] = l2d
    raw.rotmat[idx], raw.betas[idx], raw.cam[idx] = rotmat, betas, cam
    raw.iterations[idx] = it + 1
    hit = l2d < config.stop_loss_2d
    raw.converged[idx[hit]] = True
    stop = hit | ~torch.isfinite(l2d)
    return torch.ones_like(stop) if it == config.max_iters - 1 else stop


@dataclass
class _Start:
    """What every fitting path sets up first: the trainable split, the fast keypoint
    model, the prepared targets, the learning rate, the empty results (B rows; B
    parameter slots when ``keep_params``) and the model's device."""

    split: ModelSplit
    fast: KeypointLBS
    prep: _Prepared
    lr: float
    raw: _Raw
    device: torch.device

    @property
    def batch(self) -> int:
        return int(self.prep.targets.shape[0])


def _start(model: nn.Module, body: BodyModel | KeypointLBS, targets: FitTargets,
           config: EFTConfig, keep_params: bool) -> _Start:
    if config.mirror_average:
        raise EftError("mirror_average is applied by eft.fitting.fit (and the jobs), not "
                       "by the engines themselves")
    split = split_model(model, config.scope)
    device = next(model.parameters()).device
    fast = _keypoint_lbs(body, device)
    prep = _prepare(model, fast, targets, config)
    raw = _Raw.empty(prep.targets.shape[0], prep.targets)
    raw.params = [None] * targets.batch if keep_params else None
    return _Start(split, fast, prep, config.resolve_lr(model), raw, device)


def _fill_skipped(model: nn.Module, st: _Start, config: EFTConfig) -> Tensor:
    """Give the skipped exemplars the un-tuned prediction (and the pretrained parameters
    when kept); returns their indices."""
    skipped = torch.nonzero(st.prep.skipped).flatten()
    _initial(model, st.split, st.fast, st.prep, skipped.to(st.device), config, st.raw)
    if st.raw.params is not None and skipped.numel():
        untouched = _full_params(model, {})
        for i in skipped.tolist():
            st.raw.params[i] = copy.deepcopy(untouched)
    return skipped


def _initial(model: nn.Module, split: ModelSplit, fast: KeypointLBS, prep: _Prepared,
             rows: Tensor, config: EFTConfig, raw: _Raw) -> None:
    """Fill ``raw`` for ``rows`` with the un-tuned prediction (skipped exemplars)."""
    if rows.numel() == 0:
        return
    with torch.no_grad():
        out = split.head(split.features(prep.inputs[rows]))
        _, l2d = eft_loss(out, prep.targets[rows], config, fast)
    raw.rotmat[rows], raw.betas[rows], raw.cam[rows] = out.rotmat, out.betas, out.cam
    raw.loss_2d_init[rows] = l2d
    raw.loss_2d_final[rows] = l2d


def _full_params(model: nn.Module, trained: dict[str, Tensor]) -> dict[str, np.ndarray]:
    out = {}
    for name, p in model.named_parameters():
        value = trained[name] if name in trained else p
        out[name] = value.detach().cpu().numpy().copy()
    return out


def _make_fits(model: nn.Module, body: BodyModel | KeypointLBS, st: _Start,
               config: EFTConfig, pose_prior: PosePrior | None,
               with_vertices: bool, pred2d: Tensor | None = None) -> list[Fit]:
    """The :class:`Fit` records of ``st.raw``, scored by ``config``'s rules; ``pred2d``
    (B, 49, 2) crop-normalised: the fits' projected keypoints when they are not the
    weak camera's (``perspective_steps``)."""
    fast, prep, raw = st.fast, st.prep, st.raw
    with torch.no_grad():
        out = RegressorOutput(rotmat=raw.rotmat, betas=raw.betas, cam=raw.cam)
        kp3d, weak2d = project(out, fast)
        pred2d = weak2d if pred2d is None else pred2d
        finite = (torch.isfinite(raw.rotmat).flatten(1).all(1)
                  & torch.isfinite(raw.betas).all(1) & torch.isfinite(raw.cam).all(1)
                  & torch.isfinite(raw.loss_2d_final) & torch.isfinite(raw.loss_2d_init)
                  ).cpu() & prep.input_finite
        nll = pose_nll(pose_prior, raw.rotmat)
        qualities = assess(
            config.rules,
            loss_2d_init=raw.loss_2d_init.double().cpu(),
            loss_2d_final=raw.loss_2d_final.double().cpu(),
            iterations=raw.iterations.cpu(), converged=raw.converged.cpu(), betas=raw.betas,
            pred2d=pred2d, target=prep.targets, centers=prep.centers.to(pred2d.device),
            scales=prep.scales.to(pred2d.device), n_valid_keypoints=prep.n_valid,
            finite=finite, skipped=prep.skipped, nll=None if pose_prior is None else nll,
            keypoint_valid=fast.kp_total > 0.5)
        pose_aa = rotmat_to_axis_angle(raw.rotmat).reshape(-1, 72)
        cam_t = weak_to_perspective_translation(raw.cam, config.focal_length, config.img_res)
        vertices = None
        if with_vertices:
            if not isinstance(body, BodyModel):
                raise EftError("with_vertices=True needs a BodyModel, not a KeypointLBS")
            vertices = body(raw.rotmat, raw.betas).vertices

    def np32(t: Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy()

    rot, aa, betas, cam, ct, kp = map(np32, (raw.rotmat, pose_aa, raw.betas, raw.cam, cam_t,
                                             kp3d))
    verts = None if vertices is None else np32(vertices)
    fits = []
    for i, quality in enumerate(qualities):
        fits.append(Fit(
            exemplar_id=prep.ids[i], rotmat=rot[i], pose_aa=aa[i], betas=betas[i],
            cam_weak=cam[i], cam_t=ct[i], keypoints3d=kp[i],
            center=prep.centers[i].numpy().copy(), scale=float(prep.scales[i]),
            quality=quality, vertices=None if verts is None else verts[i],
            params=None if raw.params is None else raw.params[i]))
    return fits


# ---------------------------------------------------------------------------
# Sequential (reference) path
# ---------------------------------------------------------------------------

def fit_sequential(model: nn.Module, body: BodyModel | KeypointLBS,
                   targets: FitTargets, config: EFTConfig | None = None, *,
                   pose_prior: PosePrior | None = None, with_vertices: bool = False,
                   keep_params: bool = False, progress: bool = False) -> list[Fit]:
    """EFT's original algorithm, one exemplar after the other (the reference path).

    Args:
        model: the pretrained :class:`~eft.models.protocol.Regressor` (or for scope
            ``"all"`` any module returning :class:`RegressorOutput`).  Its weights,
            ``requires_grad`` flags and train/eval mode are restored on return.
        body: the body model (or its :class:`KeypointLBS`).
        targets: :class:`FitTargets` - keypoints (B, 49, 3), model inputs (None for a
            keypoint regressor), ids, crops.
        config: :class:`EFTConfig` (default EFT's).
        pose_prior: ``rotmats (B, 24, 3, 3) -> nll (B,)`` for ``FitQuality.pose_nll``.
        with_vertices: also pose the mesh (``Fit.vertices``).
        keep_params: return each exemplar's fine-tuned parameters (``Fit.params``).
        progress: show a tqdm bar.

    Returns:
        One :class:`Fit` per exemplar, in order.
    """
    config = config or EFTConfig()
    st = _start(model, body, targets, config, keep_params)
    split, fast, prep, lr, raw, device = st.split, st.fast, st.prep, st.lr, st.raw, st.device
    named = dict(model.named_parameters())
    trainable = [named[n] for n in split.trainable]
    backup = {n: p.detach().clone() for n, p in named.items()}
    flags = {n: p.requires_grad for n, p in named.items()}
    old_grads = {n: p.grad for n, p in named.items()}
    was_training = model.training
    try:
        model.eval()
        for name, p in named.items():
            p.requires_grad_(name in split.trainable)
        for i in tqdm(range(st.batch), desc="EFT (sequential)", disable=not progress):
            with torch.no_grad():  # every exemplar starts from the pretrained weights
                for name in split.trainable:
                    named[name].copy_(backup[name])
            if bool(prep.skipped[i]):
                _initial(model, split, fast, prep, torch.tensor([i], device=device), config,
                         raw)
                if raw.params is not None:
                    raw.params[i] = _full_params(model, {})
                continue
            optimizer = torch.optim.Adam(trainable, lr=lr, betas=config.adam_betas,
                                         eps=config.adam_eps, weight_decay=config.weight_decay,
                                         fused=True)
            with torch.no_grad():
                feats = split.features(prep.inputs[i:i + 1])
            target = prep.targets[i:i + 1]
            for it in range(config.max_iters):
                out = split.head(feats)
                loss, l2d = eft_loss(out, target, config, fast)
                value = l2d[0].item()
                if it == 0:
                    raw.loss_2d_init[i] = l2d[0].detach()
                raw.loss_2d_final[i] = l2d[0].detach()
                raw.rotmat[i], raw.betas[i], raw.cam[i] = (
                    out.rotmat[0].detach(), out.betas[0].detach(), out.cam[0].detach())
                raw.iterations[i] = it + 1
                if value < config.stop_loss_2d:
                    raw.converged[i] = True
                    break
                if it == config.max_iters - 1 or not np.isfinite(value):
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
            if raw.params is not None:
                raw.params[i] = _full_params(model, {})
    finally:
        with torch.no_grad():
            for name, p in named.items():
                p.copy_(backup[name])
                p.requires_grad_(flags[name])
                p.grad = old_grads[name]
        model.train(was_training)
    return _make_fits(model, body, st, config, pose_prior, with_vertices)


# ---------------------------------------------------------------------------
# Batched path
# ---------------------------------------------------------------------------

class _VectorAdam:
    """``torch.optim.Adam`` (non-amsgrad, non-maximize) on stacked per-exemplar
    parameters (R, ...): the same formulas and order of operations, one step count for
    all rows (rows that stop are removed with :meth:`keep`)."""

    def __init__(self, params: dict[str, Tensor], lr: float, betas: tuple[float, float],
                 eps: float, weight_decay: float) -> None:
        self.lr, self.betas, self.eps, self.wd = lr, betas, eps, weight_decay
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}
        self.t = 0

    def keep(self, mask: Tensor) -> None:
        self.m = {n: t[mask] for n, t in self.m.items()}
        self.v = {n: t[mask] for n, t in self.v.items()}

    @torch.no_grad()
    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        bc1 = 1.0 - b1 ** self.t
        bc2_sqrt = (1.0 - b2 ** self.t) ** 0.5
        step_size = self.lr / bc1
        for name, p in params.items():
            g = grads[name]
            if self.wd != 0:
                g = g.add(p, alpha=self.wd)
            m, v = self.m[name], self.v[name]
            m.lerp_(g, 1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)


def _run_chunk(model: nn.Module, split: ModelSplit, fast: KeypointLBS, prep: _Prepared,
               rows: Tensor, config: EFTConfig, lr: float, raw: _Raw,
               keep_params: bool) -> None:
    """Fine-tune the exemplars ``rows`` (original indices) together."""
    if rows.numel() == 0:
        return
    named = dict(model.named_parameters())
    stage = _Head(model, split.head)
    with torch.no_grad():
        feats = split.features(prep.inputs[rows])
    targets = prep.targets[rows]

    def one(params: dict[str, Tensor], feat: Tensor, target: Tensor):
        full = {"model." + n: p for n, p in params.items()}
        out = functional_call(stage, full, (feat[None],))
        loss, l2d = eft_loss(out, target[None], config, fast)
        return loss[0], (l2d[0], out.rotmat[0], out.betas[0], out.cam[0])

    step_fn = vmap(grad(one, has_aux=True))
    n = rows.numel()
    params = {name: named[name].detach().unsqueeze(0).expand(n, *named[name].shape).clone()
              for name in split.trainable}
    adam = _VectorAdam(params, lr, config.adam_betas, config.adam_eps, config.weight_decay)
    live = torch.arange(n, device=rows.device)  # positions (within rows) still tuned
    for it in range(config.max_iters):
        with torch.no_grad():
            grads, (l2d, rot, betas, cam) = step_fn(params, feats[live], targets[live])
        idx = rows[live]
        stop = _record_pass(raw, idx, it, l2d, rot, betas, cam, config)
        if raw.params is not None and bool(stop.any()):
            for j in torch.nonzero(stop).flatten().tolist():
                trained = {name: p[j] for name, p in params.items()}
                raw.params[int(idx[j])] = _full_params(model, trained)
        if bool(stop.all()):
            break
        if bool(stop.any()):
            go = ~stop
            live = live[go]
            params = {name: p[go] for name, p in params.items()}
            grads = {name: g[go] for name, g in grads.items()}
            adam.keep(go)
        adam.step(params, grads)


def fit_batched(model: nn.Module, body: BodyModel | KeypointLBS,
                targets: FitTargets, config: EFTConfig | None = None, batch_size: int = 64,
                *, pose_prior: PosePrior | None = None, with_vertices: bool = False,
                keep_params: bool = False, progress: bool = False) -> list[Fit]:
    """EFT on ``batch_size`` exemplars at a time, each with its own weights and Adam
    state; same results as :func:`fit_sequential` (up to float rounding) and the same
    arguments.

    Memory: each exemplar in a chunk holds a copy of the trainable weights plus two Adam
    moments and a gradient (4x the trainable size), e.g. ~16 MB per exemplar for the
    KeypointRegressor's 1.0 M parameters and ~430 MB for HMR in scope ``"all"``.

    Speed: this is the general path (any model, HMR included); on a GPU it runs one
    kernel per layer for B exemplars (grouped convolutions for HMR).  On a CPU it is not
    bound by memory bandwidth but by how it uses it, plus ``torch.func`` overhead: the
    ``x @ W.T`` batched products stream the weights at a fraction of the bandwidth, the
    vectorised Adam makes several passes with fresh temporaries, and vmap adds extra
    passes for the IEF weight gradients.  For the shipped keypoint prior, 1 thread,
    20 steps, B=64, ``scripts/bench_fitting.py`` measured 16.6 exemplars/s, 1.6x the
    sequential loop as it was and 10 % of the CPU's roofline, where the flat engine
    (:func:`~eft.fitting.flat.fit_flat`, which :func:`fit` uses for keypoint regressors)
    reached 51.2 exemplars/s (32 %), all in one run on a shared machine.
    """
    config = config or EFTConfig()
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    st = _start(model, body, targets, config, keep_params)
    split, fast, prep, lr, raw, device = st.split, st.fast, st.prep, st.lr, st.raw, st.device
    was_training = model.training
    try:
        model.eval()
        skipped = _fill_skipped(model, st, config)
        todo = torch.nonzero(~prep.skipped).flatten()
        with tqdm(total=st.batch, desc="EFT (batched)", disable=not progress) as bar:
            bar.update(int(skipped.numel()))
            for start in range(0, int(todo.numel()), int(batch_size)):
                rows = todo[start:start + int(batch_size)]
                _run_chunk(model, split, fast, prep, rows.to(device), config, lr, raw,
                           keep_params)
                bar.update(int(rows.numel()))
    finally:
        model.train(was_training)
    return _make_fits(model, body, st, config, pose_prior, with_vertices)


def fit(
    model: nn.Module,
    body: BodyModel | KeypointLBS,
    targets: FitTargets,
    config: EFTConfig | None = None,
    mode: str = "batched",
    batch_size: int = 64,
    progress: bool = True,
    **kwargs,
) -> list[Fit]:
    """EFT for B exemplars.

    ``mode``: ``"batched"`` (default) runs the flat engine
    (:func:`~eft.fitting.flat.fit_flat`) when it supports the model and scope (the
    MLP/IEF :class:`~eft.models.KeypointRegressor`), else :func:`fit_batched` (HMR);
    ``"flat"`` / ``"vmap"`` force one of them; ``"sequential"`` is
    :func:`fit_sequential`, EFT's loop.  ``kwargs`` as theirs (``pose_prior``,
    ``with_vertices``, ``keep_params``).
    Unless ``pose_prior`` is given (``None`` turns it off), every fit's
    ``quality.pose_nll`` is scored by the shipped GMM pose prior of the pose bank."""
    from .flat import fit_flat, supports  # lazy: flat builds on this module (import cycle)

    if mode not in ("batched", "flat", "vmap", "sequential"):
        raise ValueError(
            f"mode must be 'batched', 'flat', 'vmap' or 'sequential', got {mode!r}")
    if "pose_prior" not in kwargs:
        kwargs["pose_prior"] = load_default_pose_prior()
    config = config or EFTConfig()

    def run(t: FitTargets, cfg: EFTConfig, **kw) -> list[Fit]:
        if mode == "sequential":
            return fit_sequential(model, body, t, cfg, progress=progress, **kw)
        if mode == "flat" or (mode == "batched" and supports(model, cfg.scope)):
            return fit_flat(model, body, t, cfg, batch_size, progress=progress, **kw)
        return fit_batched(model, body, t, cfg, batch_size, progress=progress, **kw)

    def stages(t: FitTargets, cfg: EFTConfig, **kw) -> list[Fit]:
        if cfg.perspective_steps > 0:
            return _fit_perspective_refined(run, model, body, t, cfg, **kw)
        if cfg.smplify_blend > 0:
            return _fit_smplify_blended(run, model, body, t, cfg, **kw)
        if cfg.mirror_average:
            return _fit_mirror_averaged(run, model, body, t, cfg, **kw)
        return run(t, cfg, **kw)

    if targets.batch == 0:
        return []
    if config.skeleton_offsets == MEASURE_OFFSETS:  # measured on a pilot first
        pilot = targets.select(pilot_indices(targets.id_list).tolist())
        config = config.replace(skeleton_offsets=())
        quiet = {**kwargs, "pose_prior": None, "keep_params": False}
        recipe = config

        def refit(rows: OffsetRows) -> list[Fit]:
            cfg = recipe.replace(skeleton_offsets=rows, label_skeleton_keypoints=False)
            return fit(model, body, pilot, cfg, mode, batch_size, progress=False, **quiet)

        measured = estimate_skeleton_offsets(pilot, refit(()))
        config = config.replace(
            skeleton_offsets=remeasure_skeleton_offsets(pilot, measured, refit))
        logging.getLogger("eft.fitting").info(
            "skeleton offsets measured on a pilot of %d: %s", pilot.batch,
            ", ".join(r[0] for r in config.skeleton_offsets) or "none")
    reported: OffsetRows = ()
    if config.skeleton_offsets:  # the labels moved to the body model's joints first
        assert not isinstance(config.skeleton_offsets, str)
        if config.label_skeleton_keypoints:
            reported = config.skeleton_offsets
        first = config.replace(max_iters=1, mirror_average=False, smplify_blend=0.0,
                               perspective_steps=0, tilted_above_deg=0.0,
                               skeleton_offsets=())
        guess = run(targets, first, pose_prior=None)
        targets = correct_targets(targets, np.stack([f.keypoints3d for f in guess]),
                                  config.skeleton_offsets)
        config = config.replace(skeleton_offsets=())
    if config.tilted_above_deg > 0:
        if kwargs.get("keep_params"):
            raise EftError("keep_params cannot be combined with tilted_above_deg: a "
                           "tilted person's kept fit is a blend with SMPLify's")
        fits = stages(targets, config.replace(tilted_above_deg=0.0), **kwargs)
        rows = np.flatnonzero(tilt_deg(np.stack([f.rotmat[0] for f in fits]))
                              > config.tilted_above_deg)
        if len(rows):
            again = stages(targets.select(rows.tolist()), config.replace(**TILTED_REFIT),
                           **kwargs)
            for i, f in zip(rows.tolist(), again, strict=True):
                fits[i] = f
    else:
        fits = stages(targets, config, **kwargs)
    return in_label_skeleton(fits, reported)


def tilt_deg(global_rotmat: np.ndarray) -> np.ndarray:
    """(N,) degrees between the body's up axis and the image's up, from the fits' global
    rotations (N, 3, 3) in the camera frame (x right, y down): 0 for a person upright
    in the image (``diag(1, -1, -1)``), 90 lying, 180 upside down; NaN stays NaN."""
    up_y = np.asarray(global_rotmat, dtype=np.float64)[:, 1, 1]
    return np.degrees(np.arccos(np.clip(-up_y, -1.0, 1.0)))


#: ``EFTConfig.smplify_blend``: each SMPL limb joint whose rotation places one labelled
#: keypoint (its child), by the SPIN-49 ground-truth slot of that keypoint.  SMPLify's
#: rotation of such a joint counts only where the slot is labelled.
BLEND_GATES: dict[str, str] = {
    "left_hip": "Left Knee", "left_knee": "Left Ankle",
    "right_hip": "Right Knee", "right_knee": "Right Ankle",
    "left_shoulder": "Left Elbow", "left_elbow": "Left Wrist",
    "right_shoulder": "Right Elbow", "right_elbow": "Right Wrist",
}
#: Joints that keep EFT's rotation under ``smplify_blend``: no body keypoint of the
#: 14-joint skeletons depends on them, and SMPLify has only its pose prior there.
BLEND_EFT_ONLY: tuple[str, ...] = ("left_ankle", "right_ankle", "left_foot", "right_foot",
                                   "left_wrist", "right_wrist", "left_hand", "right_hand")


def blend_weights(targets: Tensor, share: float) -> Tensor:
    """(B, 24) SMPLify's weight per exemplar and joint under ``smplify_blend = share``
    (``targets``: (B, 49, 3) sanitised keypoints): ``share`` everywhere, 0 for
    :data:`BLEND_EFT_ONLY` and for a :data:`BLEND_GATES` joint whose keypoint is not
    labelled."""
    w = targets.new_full((targets.shape[0], len(SMPL24_NAMES)), float(share))
    for name in BLEND_EFT_ONLY:
        w[:, SMPL24_NAMES.index(name)] = 0.0
    for joint, slot in BLEND_GATES.items():
        labelled = targets[:, SPIN49_INDEX[slot], 2] > 0
        j = SMPL24_NAMES.index(joint)
        w[:, j] = torch.where(labelled, w[:, j], torch.zeros_like(w[:, j]))
    return w


def _fit_smplify_blended(run: Callable[..., list[Fit]], model: nn.Module,
                         body: BodyModel | KeypointLBS, targets: FitTargets,
                         config: EFTConfig, pose_prior: PosePrior | None = None,
                         with_vertices: bool = False, keep_params: bool = False) -> list[Fit]:
    """``EFTConfig.smplify_blend``: EFT's fits (mirror-averaged when the recipe says so)
    and SMPLify's from the regressor's prediction or from EFT's fits
    (``EFTConfig.smplify_init``), blended joint by joint
    (:func:`blend_weights`; rotations by their weighted chordal mean, betas and camera
    arithmetically); the blend is scored and accepted like any fit."""
    from .smplify import SmplifyConfig, smplify  # lazy: smplify is a peer module

    if keep_params:
        raise EftError("keep_params cannot be combined with smplify_blend: the kept fit "
                       "is not one fine-tuned regressor's output")
    base = config.replace(smplify_blend=0.0)
    if base.mirror_average:
        eft_fits = _fit_mirror_averaged(run, model, body, targets, base)
    else:
        eft_fits = run(targets, base, pose_prior=None)
    st = _start(model, body, targets, base.replace(mirror_average=False), False)
    raw, prep = st.raw, st.prep
    like = raw.rotmat
    rot_e = _stacked(eft_fits, "rotmat", like)
    betas_e, cam_e = _stacked(eft_fits, "betas", like), _stacked(eft_fits, "cam_weak", like)
    with torch.no_grad():
        init = model(prep.inputs)
    if config.smplify_init == "eft":  # EFT's fit where it is finite, else the guess
        ok = _finite_rows(rot_e, betas_e, cam_e)
        init = RegressorOutput(*(_where_rows(ok, e, g) for e, g in (
            (rot_e, init.rotmat), (betas_e, init.betas), (cam_e, init.cam))))
    smp = smplify(st.fast, prep.targets, init=init, config=SmplifyConfig(rules=config.rules),
                  pose_prior=None, batch_size=256)

    rot_s, betas_s = _stacked(smp, "rotmat", like), _stacked(smp, "betas", like)
    cam_s = _stacked(smp, "cam_weak", like)
    usable = _finite_rows(rot_s, betas_s, cam_s) & ~prep.skipped.to(rot_s.device)
    w = blend_weights(prep.targets, config.smplify_blend) * usable[:, None]
    rot_s, betas_s, cam_s = (_where_rows(usable, t, torch.zeros_like(t))
                             for t in (rot_s, betas_s, cam_s))
    share = float(config.smplify_blend) * usable.to(rot_s.dtype)[:, None]
    with torch.no_grad():
        ww = w[..., None, None]
        raw.rotmat = nearest_rotation((1 - ww) * rot_e + ww * rot_s)
        raw.betas = (1 - share) * betas_e + share * betas_s
        raw.cam = (1 - share) * cam_e + share * cam_s
        out = RegressorOutput(rotmat=raw.rotmat, betas=raw.betas, cam=raw.cam)
        raw.loss_2d_final = eft_loss(out, prep.targets, base, st.fast)[1]
    raw.loss_2d_init = torch.as_tensor([f.quality.loss_2d_init for f in eft_fits]).to(raw.cam)
    raw.iterations = torch.as_tensor([f.quality.iterations for f in eft_fits])
    raw.converged = torch.as_tensor([f.quality.converged for f in eft_fits])
    return _make_fits(model, body, st, base, pose_prior, with_vertices)


def _fit_perspective_refined(run: Callable[..., list[Fit]], model: nn.Module,
                             body: BodyModel | KeypointLBS, targets: FitTargets,
                             config: EFTConfig, pose_prior: PosePrior | None = None,
                             with_vertices: bool = False, keep_params: bool = False
                             ) -> list[Fit]:
    """``EFTConfig.perspective_steps``: the recipe's fits without the stage, then each one
    whose image camera is known (``targets.focals``, ``targets.principal_points``)
    refined under that camera (:func:`~eft.fitting.perspective.perspective_refine`);
    its weak-perspective crop camera is refitted to the refined body by least squares.
    The result is scored and accepted like any fit; ``iterations``, ``loss_2d_init``
    and ``converged`` are the unrefined fit's."""
    if keep_params:
        raise EftError("keep_params cannot be combined with perspective_steps: the kept "
                       "fit is not one fine-tuned regressor's output")
    base = config.replace(perspective_steps=0)
    if base.smplify_blend > 0:
        fits = _fit_smplify_blended(run, model, body, targets, base)
    elif base.mirror_average:
        fits = _fit_mirror_averaged(run, model, body, targets, base)
    else:
        fits = run(targets, base, pose_prior=None)
    plain = base.replace(mirror_average=False, smplify_blend=0.0)
    st = _start(model, body, targets, plain, False)
    raw, prep = st.raw, st.prep
    like = raw.rotmat
    rot, betas = _stacked(fits, "rotmat", like), _stacked(fits, "betas", like)
    cam = _stacked(fits, "cam_weak", like)
    focal = torch.as_tensor(targets.focals)
    centre = torch.as_tensor(targets.principal_points)
    known = (torch.isfinite(focal) & (focal > 0) & torch.isfinite(centre).all(1)
             & ~prep.skipped & torch.isfinite(rot).flatten(1).all(1).cpu()
             & torch.isfinite(betas).all(1).cpu())
    rows = torch.nonzero(known).flatten()
    if rows.numel():
        f_n, c_n = crop_camera(focal[rows], centre[rows], prep.centers[rows],
                               prep.scales[rows])
        r = rows.to(like.device)
        target = prep.targets[r]
        new_rot, new_betas, transl, points = perspective_refine(
            st.fast, rot[r], betas[r], target, f_n.to(like), c_n.to(like),
            steps=config.perspective_steps, pose_weight=config.perspective_pose_weight,
            openpose_weight=config.openpose_weight,
            torso_weight=config.perspective_torso_weight)
        with torch.no_grad():
            rot[r], betas[r] = new_rot, new_betas
            cam[r] = fit_weak_camera(points, target, loss_weights(target, plain, st.fast)).to(cam)
    with torch.no_grad():
        raw.rotmat, raw.betas, raw.cam = rot, betas, cam
        # every fit drawn by its own camera: refined ones through the image's
        _, pred2d = project(RegressorOutput(rotmat=rot, betas=betas, cam=cam), st.fast)
        if rows.numel():
            pred2d[r] = perspective_project(points, transl, f_n.to(like),
                                            c_n.to(like)).to(pred2d)
        raw.loss_2d_final = keypoint_loss_2d(pred2d, prep.targets.to(pred2d), plain, st.fast)
    raw.loss_2d_init = torch.as_tensor([f.quality.loss_2d_init for f in fits]).to(raw.cam)
    raw.iterations = torch.as_tensor([f.quality.iterations for f in fits])
    raw.converged = torch.as_tensor([f.quality.converged for f in fits])
    return _make_fits(model, body, st, plain, pose_prior, with_vertices, pred2d=pred2d)


def mirror_targets(targets: FitTargets) -> FitTargets:
    """The exemplars' left-right mirror images, same ids and crops: keypoints ``x -> -x``
    in crop-normalised coordinates with every left slot swapped with its right one, and
    image inputs (B, C, H, W) flipped along W (keypoint inputs (B, 49, 3), a keypoint
    regressor's own, mirrored like the keypoints)."""
    inputs = targets.inputs
    if inputs is not None:
        keypoint_inputs = inputs.dim() == 3 and tuple(inputs.shape[1:]) == (49, 3)
        inputs = flip_keypoints(inputs) if keypoint_inputs else torch.flip(inputs, dims=[-1])
    return FitTargets(flip_keypoints(targets.keypoints), inputs, targets.ids,
                      targets.centers, targets.scales)


def _finite_rows(*tensors: Tensor) -> Tensor:
    """(B,) True where every value of row b of every (B, ...) tensor is finite."""
    out = torch.isfinite(tensors[0]).flatten(1).all(1)
    for t in tensors[1:]:
        out = out & torch.isfinite(t).flatten(1).all(1)
    return out


def _where_rows(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Row b of ``a`` where the (B,) ``mask`` is True, else of ``b`` (both (B, ...))."""
    return torch.where(mask.reshape(-1, *[1] * (a.dim() - 1)), a, b)


def _stacked(fits: list[Fit], name: str, like: Tensor) -> Tensor:
    """(B, ...) the ``name`` arrays of ``fits`` stacked, with ``like``'s dtype and device."""
    return torch.as_tensor(np.stack([getattr(f, name) for f in fits])).to(like)


def _fit_mirror_averaged(run: Callable[..., list[Fit]], model: nn.Module,
                         body: BodyModel | KeypointLBS, targets: FitTargets,
                         config: EFTConfig, pose_prior: PosePrior | None = None,
                         with_vertices: bool = False, keep_params: bool = False) -> list[Fit]:
    """``EFTConfig.mirror_average``: fit the exemplars and their mirror images, mirror the
    second fits back (joints swapped, ``R -> M R M``, ``tx -> -tx``) and average the two
    (rotations by their chordal mean, betas and camera arithmetically); the average is
    scored and accepted like any fit."""
    if keep_params:
        raise EftError("keep_params cannot be combined with mirror_average: each "
                       "exemplar has two fine-tuned copies")
    base = config.replace(mirror_average=False)
    direct = run(targets, base, pose_prior=None)
    mirrored = run(mirror_targets(targets), base, pose_prior=None)
    st = _start(model, body, targets, base, False)
    raw = st.raw

    like = raw.rotmat
    cam_b = _stacked(mirrored, "cam_weak", like) * like.new_tensor([1.0, -1.0, 1.0])
    rot_b = flip_smpl_rotmat(_stacked(mirrored, "rotmat", like))
    with torch.no_grad():
        raw.rotmat = nearest_rotation(0.5 * (_stacked(direct, "rotmat", like) + rot_b))
        raw.betas = 0.5 * (_stacked(direct, "betas", like) + _stacked(mirrored, "betas", like))
        raw.cam = 0.5 * (_stacked(direct, "cam_weak", like) + cam_b)
        out = RegressorOutput(rotmat=raw.rotmat, betas=raw.betas, cam=raw.cam)
        raw.loss_2d_final = eft_loss(out, st.prep.targets, base, st.fast)[1]
    raw.loss_2d_init = torch.as_tensor([f.quality.loss_2d_init for f in direct]).to(raw.cam)
    raw.iterations = torch.as_tensor([f.quality.iterations for f in direct])
    raw.converged = torch.as_tensor([a.quality.converged and b.quality.converged
                                     for a, b in zip(direct, mirrored, strict=True)])
    return _make_fits(model, body, st, base, pose_prior, with_vertices)



def fit_exemplars(
    exemplars: Sequence[Exemplar],
    model: nn.Module,
    body: BodyModel | KeypointLBS,
    config: EFTConfig | str | None = None,
    inputs: Tensor | None = None,
    **kwargs,
) -> list[Fit]:
    """EFT for dataset exemplars: :func:`exemplar_batch` then :func:`fit`, with the
    exemplars' ids, crops (``center``, ``scale``) and keypoints.  ``inputs`` are the
    image crops for an image regressor (B, 3, 224, 224); a
    :class:`~eft.models.KeypointRegressor` reads the keypoints and needs none.
    ``config``: an :class:`EFTConfig`, a recipe name of
    :data:`~eft.fitting.config.EFT_PRESETS`, or ``"auto"``: ``open-prior`` or
    ``open-prior-exact``, picked by a pilot fit of up to 256 of the exemplars
    (:mod:`eft.fitting.auto`).  None is ``eft fit``'s default: ``"auto"`` for a shipped
    prior loaded by name (:func:`~eft.models.registry.shipped_prior_name`), EFT's
    published recipe for any other regressor.  ``kwargs`` go to :func:`fit` (``mode``,
    ``batch_size``, ``progress``, ...)."""
    if config is None:
        config = AUTO_PRESET if shipped_prior_name(model) is not None else "eft"
    if isinstance(config, str):
        if config == AUTO_PRESET and not exemplars:  # nobody to pilot, nothing to fit
            config = AUTO_CHOICES[0]
        config = (_auto_config(exemplars, model, body, inputs, kwargs)
                  if config == AUTO_PRESET else eft_preset(config, also=(AUTO_PRESET,)))
    return fit(model, body, exemplar_batch(exemplars, inputs), config, **kwargs)


def _auto_config(exemplars: Sequence[Exemplar], model: nn.Module,
                 body: BodyModel | KeypointLBS, inputs: Tensor | None,
                 kwargs: dict) -> EFTConfig:
    """The recipe ``"auto"`` picks for ``exemplars`` (:mod:`eft.fitting.auto`)."""
    idx = pilot_indices([e.id for e in exemplars])
    pilot = [exemplars[int(i)] for i in idx]
    pilot_inputs = None if inputs is None else inputs[torch.as_tensor(idx)]
    same = {k: kwargs[k] for k in ("mode", "batch_size") if k in kwargs}
    batch = exemplar_batch(pilot, pilot_inputs)

    def refit(cfg: EFTConfig, people: Sequence[Exemplar]) -> tuple[list[Fit], list[Exemplar]]:
        assert len(people) == len(pilot)  # every pilot person is fitted
        return fit(model, body, batch, cfg, progress=False, pose_prior=None, **same), pilot

    choice = run_pilots(pilot, refit)
    return auto_config(choice)
