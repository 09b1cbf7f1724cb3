"""Meta-EFT: training a prior for what EFT makes of it (first-order MAML through EFT).

EFT fine-tunes a copy of the prior for a few steps on each person's own keypoints and
keeps that copy's output; the prior's own output is only EFT's starting point.  The
meta-EFT term (``LossWeights.meta_eft``; the "first-order" form of model-agnostic
meta-learning, Finn et al. 2017) scores the prior where it is used:

1. ``LossWeights.meta_eft_samples`` samples of each batch are drawn (the trainer's
   generator);
2. EFT adapts the current network to each one's *input* keypoints, as a job would:
   :data:`META_EFT_RECIPE` (``open-prior``'s bias scope, rate and steps, without its
   mirror average and refit), through the project's own engine
   (:func:`~eft.fitting.fit` with ``keep_params``);
3. the adapted networks read the samples again (:func:`forward_with_offsets`: the
   shared weights plus each sample's own bias and LayerNorm offsets), and their output
   is scored by the training loss itself (:func:`~eft.train.losses.regression_loss`:
   3D for synthetic people, the hidden limb's 2D for real ones);
4. the offsets are held constant (first order), so the gradient of that score trains
   the shared weights and the biases the adaptation starts from.

It costs one EFT of ``meta_eft_samples`` people per step (about 3.5x a plain step of
prior v9's recipe at 64).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eft.body.fast import KeypointLBS
from eft.fitting import FitTargets, fit, split_model
from eft.fitting.config import EFTConfig, eft_preset
from eft.models.output import RegressorOutput

from .augment import Batch
from .losses import LossWeights, regression_loss

__all__ = ["META_EFT_RECIPE", "adapted_offsets", "forward_with_offsets", "meta_eft_loss"]

#: The EFT a meta-EFT step adapts with: ``open-prior`` without its mirror average and
#: its refit of tilted people (both are averages over fits, not one adapted network).
META_EFT_RECIPE: EFTConfig = eft_preset("open-prior", mirror_average=False,
                                        tilted_above_deg=0.0)


def adapted_offsets(model: nn.Module, fast: KeypointLBS, keypoints: Tensor,
                    config: EFTConfig = META_EFT_RECIPE) -> dict[str, Tensor]:
    """EFT of each sample (``keypoints`` (B, 49, 3) crop-normalised, read as the
    network's input and as EFT's targets) -> ``{parameter name: (B, *shape) offset}``
    of the parameters EFT tuned (``config.scope`` must be ``"bias"``), each sample's
    adapted value minus the network's.  No gradient; the model's mode is kept."""
    if config.scope != "bias":
        raise ValueError(f"meta-EFT adapts biases and LayerNorms (scope 'bias'), "
                         f"got scope {config.scope!r}")
    was_training = model.training
    try:
        fits = fit(model, fast, FitTargets(keypoints=keypoints.detach().float()), config,
                   keep_params=True, pose_prior=None, progress=False)
    finally:
        model.train(was_training)
    params = dict(model.named_parameters())
    out = {}
    for name in split_model(model, "bias").trainable:
        p = params[name].detach()
        tuned = torch.stack([torch.as_tensor(f.params[name]) for f in fits])  # type: ignore[index]
        out[name] = tuned.to(p) - p
    return out


def forward_with_offsets(model: nn.Module, inputs: Tensor,
                         offsets: dict[str, Tensor]) -> RegressorOutput:
    """``model(inputs)`` with sample ``i``'s Linear biases and LayerNorm gains and
    offsets moved by ``offsets[name][i]`` (:func:`adapted_offsets`): B adapted networks
    sharing their weights, in one pass.  Gradients reach the shared parameters; the
    offsets are constants."""
    handles = []

    def linear_hook(d: Tensor) -> Callable:
        return lambda mod, args, out: out + d

    def norm_hook(dg: Tensor, db: Tensor) -> Callable:
        def hook(mod, args, out):
            n = F.layer_norm(args[0], mod.normalized_shape, None, None, mod.eps)
            return (mod.weight + dg) * n + mod.bias + db
        return hook

    try:
        for name, module in model.named_modules():
            prefix = f"{name}." if name else ""
            if isinstance(module, nn.Linear) and f"{prefix}bias" in offsets:
                handles.append(module.register_forward_hook(
                    linear_hook(offsets[f"{prefix}bias"])))
            elif isinstance(module, nn.LayerNorm) and f"{prefix}weight" in offsets:
                handles.append(module.register_forward_hook(norm_hook(
                    offsets[f"{prefix}weight"], offsets[f"{prefix}bias"])))
        known = {f"{n}.{p}" if n else p for n, m in model.named_modules()
                 if isinstance(m, (nn.Linear, nn.LayerNorm))
                 for p in ("weight", "bias")}
        unknown = sorted(set(offsets) - known)
        if unknown:
            raise ValueError(f"offsets for parameters outside Linear / LayerNorm layers: "
                             f"{unknown[:3]}")
        return model(inputs)
    finally:
        for h in handles:
            h.remove()


def meta_eft_loss(model: nn.Module, fast: KeypointLBS, batch: Batch, w: LossWeights,
                  generator: torch.Generator, pose_prior=None) -> tuple[Tensor, float]:
    """The meta-EFT term (module docstring), unweighted, and its value: the training
    loss of ``w.meta_eft_samples`` samples of ``batch`` (all when fewer) read by their
    EFT-adapted networks (evaluation mode: EFT adapts without dropout).  Keypoint
    inputs only."""
    if batch.images is not None:
        raise ValueError("meta-EFT needs keypoint inputs")
    size = batch.keypoints.shape[0]
    take = torch.randperm(size, generator=generator)[:int(w.meta_eft_samples)]
    take = take.to(batch.keypoints.device)
    sub = Batch(**{k: (v[take] if isinstance(v, Tensor) else v)
                   for k, v in batch.__dict__.items()})
    offsets = adapted_offsets(model, fast, sub.keypoints)
    was_training = model.training
    model.eval()
    try:
        out = forward_with_offsets(model, sub.keypoints, offsets)
    finally:
        model.train(was_training)
    value, _ = regression_loss(out, fast, sub, w, pose_prior)
    return value, float(value.detach())
