"""HMR as trained by SPIN and fine-tuned by EFT: ResNet-50 features + the IEF head.

The state dict matches SPIN's ``models/hmr.py`` key for key (331 entries: 169
parameters, the BatchNorm buffers including ``num_batches_tracked``, and
``init_pose``/``init_shape``/``init_cam``), so SPIN and EFT checkpoints load without
renaming.  26,977,501 parameters: backbone 23,508,032 + head 3,469,469.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from eft.data.images import IMAGENET_MEAN, IMAGENET_STD
from eft.errors import EftError

from ._checkpoint import extract_state_dict, read_checkpoint, strip_module_prefix
from .ief import IEFMixin, MeanParamsLike
from .output import RegressorOutput
from .protocol import InputKind, RegressorSplit, Scope, ief_split
from .resnet import RESNET50_FEATURES, ResNet50

__all__ = ["HMR", "EFT_LR", "LoadReport", "load_hmr_checkpoint", "HMR_INPUT_SIZE", "IMAGENET_MEAN",
           "IMAGENET_STD"]

HMR_INPUT_SIZE = 224

#: EFT's learning rate (``--lr_eft`` default), HMR's :attr:`~HMR.eft_lr`.
EFT_LR = 5e-6


class HMR(IEFMixin, ResNet50):
    """SPIN/EFT body regressor.

    Input: (B, 3, 224, 224) crops, RGB scaled to [0, 1] then normalised with the
    ImageNet mean/std (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`).
    Output: :class:`RegressorOutput` (rotmat (B, 24, 3, 3), betas (B, 10),
    cam (B, 3) ``[s, tx, ty]``, pose6d (B, 144)).

    The ResNet-50 layers (``conv1``, ``bn1``, ``layer1``..``layer4``) and the IEF head
    (``fc1``, ``fc2``, ``decpose``, ``decshape``, ``deccam``, ``init_*``) are all
    registered on this module, giving SPIN's flat key names.

    As a :class:`~eft.models.protocol.Regressor`: reads image crops, EFT rate
    :data:`EFT_LR`; scopes ``"head"`` (ResNet-50 frozen | IEF head) and ``"last_stage"``
    (ResNet-50 up to ``layer3`` frozen | ``layer4`` + IEF head).
    """

    input_kind: InputKind = "image"
    eft_lr: float = EFT_LR

    def __init__(
        self, mean_params: MeanParamsLike = None, n_iter: int = 3, dropout: float = 0.5
    ) -> None:
        ResNet50.__init__(self)
        self._init_ief(RESNET50_FEATURES, hidden=1024, n_iter=n_iter, dropout=dropout,
                       mean_params=mean_params)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (besides the mean, which lives in the ``init_*`` buffers)."""
        return {"n_iter": self.n_iter, "dropout": float(self.drop1.p)}

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The ResNet-50 parameters (23,508,032 values)."""
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    def head_parameters(self) -> list[nn.Parameter]:
        """The IEF head parameters (3,469,469 values)."""
        mods = (self.fc1, self.fc2, self.decpose, self.decshape, self.deccam)
        return [p for m in mods for p in m.parameters()]

    # a regressor, not a feature extractor: the ResNet-50's forward is :meth:`features`
    def forward(  # type: ignore[override]
            self, images: Tensor, n_iter: int | None = None) -> RegressorOutput:
        return self.iterate(self.features(images), n_iter)

    def eft_split(self, scope: Scope) -> RegressorSplit:
        """The frozen and trained parts for ``scope`` (class docstring)."""
        return ief_split(self, scope, encode=self.features, iterate=self.iterate,
                         stage=(self.first_stages, self.last_stage, ("layer4",)))


@dataclass(frozen=True)
class LoadReport:
    """What happened to the keys of a checkpoint loaded into a model.

    Attributes:
        missing: model keys the checkpoint lacks (left as initialised).
        unexpected: checkpoint keys the model has no use for (ignored).
        shape_mismatch: ``"key: checkpoint (a, b) vs model (c, d)"`` entries skipped
            (only when loading with ``allow_shape_mismatch=True``; otherwise a mismatch
            raises).
    """

    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    shape_mismatch: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """True when every key matched."""
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def __str__(self) -> str:
        lines = []
        for name in ("missing", "unexpected", "shape_mismatch"):
            keys = getattr(self, name)
            lines.append(f"{name} ({len(keys)}): {', '.join(keys) if keys else '-'}")
        return "\n".join(lines)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def load_hmr_checkpoint(
    model: nn.Module,
    path_or_state: str | os.PathLike | Mapping[str, Any],
    *,
    trust: bool = False,
    allow_shape_mismatch: bool = False,
) -> LoadReport:
    """Load SPIN/EFT weights into ``model`` (normally :class:`HMR`).

    ``path_or_state`` is a file path, a SPIN/EFT training checkpoint dict (weights under
    ``'model'``; optimizer etc. are ignored), a dict with ``'state_dict'``, or a raw
    state dict.  A DataParallel ``module.`` prefix is stripped.  Files are read with
    ``torch.load(..., map_location='cpu', weights_only=True)``; ``trust=True`` allows the
    full unpickler, which old SPIN checkpoints need because they pickle the optimizer
    state with numpy objects -- only for files from a trusted source, since unpickling
    can run arbitrary code.

    Keys are matched like ``load_state_dict(strict=False)``: missing and unexpected keys
    are reported, not fatal.  A key present in both with a different shape raises
    :class:`EftError` naming every such key, unless ``allow_shape_mismatch=True``, in
    which case those keys are skipped and reported.
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        obj = read_checkpoint(path_or_state, trust=trust, map_location="cpu")
    else:
        obj = path_or_state
    state = strip_module_prefix(extract_state_dict(obj))
    own = model.state_dict()

    mismatch = [
        f"{k}: checkpoint {_shape(v)} vs model {_shape(own[k])}"
        for k, v in state.items()
        if k in own and _shape(v) != _shape(own[k])
    ]
    if mismatch and not allow_shape_mismatch:
        raise EftError(
            f"checkpoint does not fit the model: {len(mismatch)} shape mismatch(es): "
            + "; ".join(mismatch)
        )
    skipped = {entry.split(":", 1)[0] for entry in mismatch}
    filtered = type(state)((k, v) for k, v in state.items() if k not in skipped)
    meta = getattr(state, "_metadata", None)
    if meta is not None:
        filtered._metadata = meta  # type: ignore[attr-defined]
    result = model.load_state_dict(filtered, strict=False)
    missing = tuple(k for k in result.missing_keys if k not in skipped)
    return LoadReport(
        missing=missing,
        unexpected=tuple(result.unexpected_keys),
        shape_mismatch=tuple(mismatch),
    )


def is_hmr_state_dict(state: Mapping[str, Any]) -> bool:
    """Heuristic: does this (prefix-stripped) state dict look like SPIN's HMR?"""
    needed = ("conv1.weight", "layer4.2.bn3.running_var", "fc1.weight", "decpose.weight")
    return all(k in state for k in needed) and isinstance(state["fc1.weight"], torch.Tensor)
