"""A small body regressor from 2D keypoints, for fast per-exemplar fine-tuning on CPU.

Input: (B, 49, 3) SPIN-49 keypoints ``[x, y, conf]`` in crop-normalised ``[-1, 1]``
coordinates.  ``conf <= 0`` marks a missing joint: its x, y are replaced by 0 (so any
value there, NaN included, is ignored) and the network is fed whether each joint is
present (0 or 1, whatever the confidence's value) so it can tell "missing" from "at
the crop centre".  ``input_slots`` (optional) lists
the slots the network was trained to read; any other slot is treated as missing, so a
slot never seen in training cannot feed its untrained first-layer weights.

Network: flatten (49 * 3) -> MLP encoder (Linear, LayerNorm, ReLU) x 2 -> ``res_blocks``
residual blocks ``f + LayerNorm(Linear(ReLU(LayerNorm(Linear(f)))))`` (none by default)
-> the same IEF loop as HMR (:class:`~eft.models.ief.IEFMixin`, hidden ``hidden``) ->
:class:`RegressorOutput`.  The head keeps SPIN's names (``fc1`` ... ``init_pose``).
With the defaults it has 1,026,717 parameters.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from .ief import IEFMixin, MeanParamsLike
from .output import RegressorOutput
from .protocol import InputKind, RegressorSplit, Scope, ief_split

__all__ = ["KeypointRegressor", "NUM_KEYPOINTS", "KEYPOINT_REGRESSOR_LR"]

NUM_KEYPOINTS = 49

#: EFT learning rate of the :class:`KeypointRegressor`: the smallest rate at which most
#: clean synthetic fits reach EFT's threshold within 20 steps (median 7); the
#: measurements are in :mod:`eft.fitting.config`'s docstring.
KEYPOINT_REGRESSOR_LR = 3e-5


class KeypointRegressor(IEFMixin, nn.Module):
    """2D keypoints (B, K, 3) -> SMPL rotations, betas and weak-perspective camera.

    Args:
        num_keypoints: K, 49 for SPIN's keypoint order.
        width: encoder width.
        hidden: IEF hidden size.
        n_iter: IEF iterations.
        dropout: IEF dropout (after ``fc1`` and ``fc2``).
        mean_params: IEF starting point, see :func:`~eft.models.ief.coerce_mean_params`.
        input_slots: indices of the keypoint slots the network reads (None: all).
        res_blocks: residual blocks after the encoder (:meth:`deepened` adds them to a
            trained network without changing its function).

    As a :class:`~eft.models.protocol.Regressor`: reads the keypoints (EFT's targets),
    EFT rate :data:`KEYPOINT_REGRESSOR_LR`; scopes ``"head"`` (encoder frozen | IEF
    head) and ``"last_stage"`` (encoder up to its last Linear-LayerNorm-ReLU block
    frozen | that block + IEF head).
    """

    input_kind: InputKind = "keypoints"
    eft_lr: float = KEYPOINT_REGRESSOR_LR

    def __init__(
        self,
        num_keypoints: int = NUM_KEYPOINTS,
        width: int = 512,
        hidden: int = 512,
        n_iter: int = 3,
        dropout: float = 0.1,
        mean_params: MeanParamsLike = None,
        input_slots: list[int] | tuple[int, ...] | None = None,
        res_blocks: int = 0,
    ) -> None:
        super().__init__()
        self.num_keypoints = int(num_keypoints)
        if input_slots is not None:
            slots = sorted({int(i) for i in input_slots})
            if not slots or slots[0] < 0 or slots[-1] >= self.num_keypoints:
                raise ValueError(f"input_slots must be indices in 0..{self.num_keypoints - 1}")
            self.input_slots: tuple[int, ...] | None = tuple(slots)
            mask = torch.zeros(self.num_keypoints, 1)
            mask[list(slots)] = 1.0
            self.register_buffer("slot_mask", mask, persistent=False)
        else:
            self.input_slots = None
            self.slot_mask = None
        self.width = int(width)
        self.encoder = nn.Sequential(
            nn.Linear(self.num_keypoints * 3, self.width),
            nn.LayerNorm(self.width),
            nn.ReLU(),
            nn.Linear(self.width, self.width),
            nn.LayerNorm(self.width),
            nn.ReLU(),
        )
        self.res = nn.ModuleList(_residual_block(self.width) for _ in range(int(res_blocks)))
        self._init_ief(self.width, hidden=hidden, n_iter=n_iter, dropout=dropout,
                       mean_params=mean_params)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (besides the mean, which lives in the ``init_*`` buffers)."""
        cfg: dict[str, Any] = {
            "num_keypoints": self.num_keypoints,
            "width": self.width,
            "hidden": self.ief_hidden,
            "n_iter": self.n_iter,
            "dropout": float(self.drop1.p),
        }
        if self.input_slots is not None:
            cfg["input_slots"] = list(self.input_slots)
        if len(self.res):
            cfg["res_blocks"] = len(self.res)
        return cfg

    def prepare_input(self, keypoints: Tensor) -> Tensor:
        """(B, K, 3) -> (B, 3K) network input: each joint's x, y and whether it is
        present (1 where ``conf > 0``, else 0, with x, y set to 0).

        The network reads presence, not the confidence's value: every prior was trained
        on labels of confidence 0 or 1, and a detector's confidences in between (an
        OpenPose file's, by default kept by its reader) would feed it inputs it never
        saw (synthetic val people with confidences drawn from U(0.5, 1) / U(0.1, 1):
        80.1 / 103.8 mm PA-MPJPE-14 for the regressor against 71.8 with confidence 1;
        one-off probe, 2026-12-07).  The confidence still weighs each joint in EFT's
        2D loss."""
        if keypoints.dim() != 3 or tuple(keypoints.shape[1:]) != (self.num_keypoints, 3):
            raise ValueError(
                f"keypoints must have shape (B, {self.num_keypoints}, 3), "
                f"got {tuple(keypoints.shape)}"
            )
        conf = torch.nan_to_num(keypoints[..., 2:], nan=0.0)
        present = conf > 0
        if self.slot_mask is not None:
            present = present & (self.slot_mask > 0)
        xy = torch.where(present, keypoints[..., :2], torch.zeros_like(keypoints[..., :2]))
        return torch.cat((xy, present.to(xy.dtype)), dim=-1).flatten(1)

    def encode(self, keypoints: Tensor) -> Tensor:
        """(B, K, 3) -> (B, width) features for the IEF head."""
        return self._residual(self.encoder(self.prepare_input(keypoints)))

    def _residual(self, features: Tensor) -> Tensor:
        for block in self.res:
            features = features + block(features)
        return features

    def forward(self, keypoints: Tensor, n_iter: int | None = None) -> RegressorOutput:
        return self.iterate(self.encode(keypoints), n_iter)

    def widened(self, width: int, seed: int = 0) -> KeypointRegressor:
        """A copy with a wider encoder (``width`` >= the current one) computing the same
        function (Net2WiderNet): every new unit of each encoder block copies an old one,
        and the weights reading a copied unit are split between the unit and its copies
        in random shares summing to one (drawn from ``seed``), so the copies' gradients
        differ and training can pull them apart.  A LayerNorm over a layer whose units
        all appear equally often keeps its mean and variance, so the output is unchanged
        up to float rounding when ``width`` is a multiple of the current width, and close
        to it otherwise.  The IEF head, its start and the input slots are kept.
        """
        old = self.width
        if width < old:
            raise ValueError(f"width {width} is narrower than the current {old}")
        gen = torch.Generator().manual_seed(int(seed))
        src = torch.arange(width) % old  # new unit j copies old unit src[j]
        share = torch.rand(width, generator=gen) + 0.5
        totals = torch.zeros(old).index_add_(0, src, share)
        share = share / totals[src]  # per old unit, its copies' shares sum to 1
        cfg = dict(self.config, width=width)
        new = KeypointRegressor(**cfg, mean_params=self.mean_params())
        with torch.no_grad():
            new.load_state_dict({k: v for k, v in self.state_dict().items()
                                 if not (k.startswith("encoder.") or k == "fc1.weight")},
                                strict=False)
            first = True
            for mod, dst in zip(self.encoder, new.encoder, strict=True):
                if isinstance(mod, nn.Linear) and isinstance(dst, nn.Linear):
                    w = mod.weight if first else mod.weight[:, src] * share
                    dst.weight.copy_(w[src])
                    dst.bias.copy_(mod.bias[src])
                    first = False
                elif isinstance(mod, nn.LayerNorm) and isinstance(dst, nn.LayerNorm):
                    dst.weight.copy_(mod.weight[src])
                    dst.bias.copy_(mod.bias[src])
            w = self.fc1.weight
            new.fc1.weight.copy_(torch.cat((w[:, :old][:, src] * share, w[:, old:]), dim=1))
        new.train(self.training)
        return new

    def deepened(self, blocks: int = 1) -> KeypointRegressor:
        """A copy with ``blocks`` more residual blocks after the encoder, computing the
        same function: each new block's closing LayerNorm starts with gain and bias zero,
        so the block adds nothing until training moves them; its Linears keep their random
        start (torch's global generator).  Zeroing the last Linear instead fails: Adam's
        first steps move all of its weights by the learning rate with one sign per row
        (their inputs are >= 0 after the ReLU), and the sum over 512 inputs breaks the
        network within three steps; a gain moves each feature by the learning rate only."""
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        cfg = dict(self.config, res_blocks=len(self.res) + int(blocks))
        new = KeypointRegressor(**cfg, mean_params=self.mean_params())
        with torch.no_grad():
            for block in list(new.res)[len(self.res):]:
                closing = cast(nn.LayerNorm, cast(nn.Sequential, block)[-1])
                nn.init.zeros_(closing.weight)  # the closing LayerNorm's gain and bias
                nn.init.zeros_(closing.bias)
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("res.") for k in missing)
        new.train(self.training)
        return new

    def eft_split(self, scope: Scope) -> RegressorSplit:
        """The frozen and trained parts for ``scope`` (class docstring)."""
        last = len(self.encoder) - 3  # the last Linear-LayerNorm-ReLU block

        def up_to_last(keypoints: Tensor) -> Tensor:
            return self.encoder[:last](self.prepare_input(keypoints))

        def last_block(features: Tensor) -> Tensor:
            return self._residual(self.encoder[last:](features))

        names = (f"encoder.{last}", f"encoder.{last + 1}",
                 *(f"res.{i}" for i in range(len(self.res))))
        return ief_split(self, scope, encode=self.encode, iterate=self.iterate,
                         stage=(up_to_last, last_block, names))


def _residual_block(width: int) -> nn.Sequential:
    """Linear -> LayerNorm -> ReLU -> Linear -> LayerNorm, width in and out (added to its
    input)."""
    return nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(),
                         nn.Linear(width, width), nn.LayerNorm(width))
