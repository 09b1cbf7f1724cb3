"""What EFT needs from a body regressor: :class:`Regressor`.

A regressor declares, besides being a :class:`torch.nn.Module` that maps inputs to a
:class:`RegressorOutput`:

* ``input_kind``: ``"keypoints"`` - it reads the (B, 49, 3) crop-normalised keypoints
  + confidence that are also EFT's targets (missing joints may be NaN; the engine zeroes
  them) - or ``"image"`` - it reads (B, 3, H, W) normalised crops given separately.
* ``eft_lr``: the Adam learning rate EFT uses for it when the config sets none.
* ``eft_split(scope)``: a :class:`RegressorSplit` - the frozen ``features`` part, run
  once per exemplar without gradients, the trained ``head`` part, and the modules whose
  parameters are trained - for each scope of :data:`SCOPES`.

The fitting engine only talks to this interface, so a new regressor is added in
``eft.models`` alone.  BatchNorm weights and biases are never trained, whatever the split
names (the engine drops them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from torch import Tensor, nn

from eft.errors import EftError

from .output import RegressorOutput

__all__ = ["Regressor", "RegressorSplit", "InputKind", "Scope", "SCOPES", "INPUT_KINDS",
           "IEF_HEAD_MODULES", "whole_model_split", "ief_split"]

Scope = Literal["all", "head", "last_stage", "bias"]
#: Trainable scopes: every weight except BatchNorm affine ("all", EFT), only the IEF head
#: ("head"), the last encoder stage plus the head ("last_stage"), or every bias and
#: LayerNorm affine parameter with the weight matrices shared by all exemplars
#: ("bias"; the engine makes this split itself, ``eft_split`` never sees it).
SCOPES: tuple[str, ...] = ("all", "head", "last_stage", "bias")

InputKind = Literal["keypoints", "image"]
INPUT_KINDS: tuple[str, ...] = ("keypoints", "image")

#: The IEF head's trained modules (SPIN's names), shared by every IEF regressor.
IEF_HEAD_MODULES: tuple[str, ...] = ("fc1", "fc2", "decpose", "decshape", "deccam")


@dataclass(frozen=True)
class RegressorSplit:
    """A regressor cut into a frozen part and a trained part, for one scope.

    Attributes:
        features: ``features(inputs (B, ...)) -> (B, ...)`` the frozen part (the
            identity when everything is trained).
        head: ``head(features) -> RegressorOutput`` the trained part; it must read the
            regressor's own parameters (the engine swaps them per exemplar).
        trained: names of the submodules (as in ``named_modules()``) whose parameters
            are trained; ``("",)`` is the whole regressor.
    """

    features: Callable[[Tensor], Tensor]
    head: Callable[[Tensor], RegressorOutput]
    trained: tuple[str, ...]


def _identity(x: Tensor) -> Tensor:
    return x


def whole_model_split(model: Callable[[Tensor], RegressorOutput]) -> RegressorSplit:
    """Scope ``"all"``: nothing frozen, ``model`` itself is the head."""

    def head(x: Tensor) -> RegressorOutput:  # a function, not the module itself
        return model(x)

    return RegressorSplit(features=_identity, head=head, trained=("",))


def ief_split(
    model: Callable[[Tensor], RegressorOutput],
    scope: str,
    *,
    encode: Callable[[Tensor], Tensor],
    iterate: Callable[[Tensor], RegressorOutput],
    stage: tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], tuple[str, ...]],
) -> RegressorSplit:
    """The split of an encoder + IEF head regressor for ``scope``: ``"all"`` the whole
    model; ``"head"`` ``encode`` frozen | ``iterate`` (the IEF head) trained;
    ``"last_stage"`` the encoder up to its last stage frozen | that stage and the IEF head
    trained, with ``stage = (up_to_last_stage, last_stage, names of the last stage's
    modules)``."""
    if scope == "all":
        return whole_model_split(model)
    if scope == "head":
        return RegressorSplit(encode, iterate, IEF_HEAD_MODULES)
    if scope == "last_stage":
        frozen, last, names = stage

        def head(features: Tensor) -> RegressorOutput:
            return iterate(last(features))

        return RegressorSplit(frozen, head, (*names, *IEF_HEAD_MODULES))
    raise EftError(f"unknown scope {scope!r}")


@runtime_checkable
class Regressor(Protocol):
    """A body regressor EFT can fine-tune (module docstring).  The :class:`nn.Module`
    members listed are the ones the engine uses."""

    input_kind: InputKind
    eft_lr: float
    training: bool

    def __call__(self, inputs: Tensor) -> RegressorOutput: ...

    def eft_split(self, scope: Scope) -> RegressorSplit: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def named_modules(self) -> Iterator[tuple[str, nn.Module]]: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...
