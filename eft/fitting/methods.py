"""The fitting methods a benchmark compares, each by one name, from one regressor.

:func:`fit_method` runs one of :data:`METHODS` on a :class:`FitTargets` batch and returns
its :class:`Fit` s, so every benchmark (``scripts/bench_real2d.py``, ``tune_eft.py``,
``bench_eft_formats.py``) compares the same four things:

* ``"mean"``: the regressor's mean pose placed by a closed-form camera
  (:func:`~eft.fitting.baselines.mean_pose_fits`);
* ``"regressor"``: the regressor's own prediction (EFT stopped after its first forward
  pass, so it carries EFT's quality record);
* ``"smplify"``: the SMPLify baseline (:func:`~eft.fitting.smplify.smplify`) started
  from the regressor's prediction;
* ``"eft"``: Exemplar Fine-Tuning (:func:`~eft.fitting.engine.fit`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from eft.body.fast import KeypointLBS
from eft.body.model import BodyModel

from .baselines import mean_pose_fits
from .config import EFTConfig
from .engine import fit
from .records import Fit, FitTargets
from .smplify import SmplifyConfig, smplify

__all__ = ["METHODS", "fit_method", "fits_to_tensors"]

#: The method names :func:`fit_method` takes.
METHODS = ("mean", "regressor", "smplify", "eft")


def fit_method(method: str, model: nn.Module, body: BodyModel | KeypointLBS,
               targets: FitTargets, config: EFTConfig | None = None, *,
               smplify_config: SmplifyConfig | None = None, batch_size: int = 64,
               progress: bool = False, **kwargs) -> list[Fit]:
    """Fit ``targets`` (keypoints (B, 49, 3), crops, ids) by ``method`` from ``model``.

    Args:
        method: one of :data:`METHODS`.
        model: a keypoint regressor (its input is ``targets.keypoints``).
        config: EFT's settings (``"eft"``; the joint weights and acceptance rules of
            the others, the regressor's one forward pass without ``mirror_average``);
            ``None`` = EFT's published recipe.
        smplify_config: SMPLify's settings (``None`` = its defaults).
        batch_size: EFT exemplars per batch (the regressor's pass uses at least 64;
            SMPLify runs 256 at a time).
        progress: a progress bar for EFT and SMPLify.
        kwargs: passed on to the method (``pose_prior``, with each one's default).

    Returns one :class:`Fit` per exemplar, in order.
    """
    config = config or EFTConfig()
    if method == "mean":
        return mean_pose_fits(model, body, targets, config, **kwargs)
    if method == "regressor":  # one forward pass, never mirror-averaged, blended or refined
        single = config.replace(max_iters=1, mirror_average=False, smplify_blend=0.0,
                                perspective_steps=0, tilted_above_deg=0.0)
        return fit(model, body, targets, single,
                   batch_size=max(batch_size, 64), progress=False, **kwargs)
    if method == "eft":
        return fit(model, body, targets, config, batch_size=batch_size, progress=progress,
                   **kwargs)
    if method == "smplify":
        with torch.no_grad():
            init = model(targets.keypoints)
        return smplify(body, targets.keypoints, init=init,
                       config=smplify_config or SmplifyConfig(), batch_size=256,
                       progress=progress, exemplar_ids=targets.ids, centers=targets.centers,
                       scales=targets.scales, **kwargs)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def fits_to_tensors(fits: list[Fit]) -> tuple[Tensor, Tensor]:
    """(rotmat (N, 24, 3, 3), betas (N, 10)) float32 tensors of ``fits``."""
    rot = torch.as_tensor(np.stack([f.rotmat for f in fits]), dtype=torch.float32)
    betas = torch.as_tensor(np.stack([f.betas for f in fits]), dtype=torch.float32)
    return rot, betas
