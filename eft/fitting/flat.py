"""Flat batched EFT engine for the MLP/IEF keypoint regressors.

Same algorithm and results as :func:`~eft.fitting.engine.fit_sequential` (the readable
spec), organised for speed on a CPU, where the work is dominated by streaming every
exemplar's private weights, gradients and Adam moments through memory:

* **Flat state.**  Each exemplar's trained parameters live in one row of an (R, P)
  buffer, and so do its Adam moments; every layer is a view of it (``W`` (R, out, in),
  ``b`` (R, out)).  The IEF decoders ``decpose | decshape | deccam`` are stored as one
  (157, hidden) matrix.
* **Hand-written backward** through the Linear / LayerNorm / ReLU encoder blocks and the
  IEF loop (``baddbmm`` forwards, row-vector ``bmm`` backwards, the IEF weight gradients
  of all ``n_iter`` passes in one ``bmm``).  Autograd runs only on the small loss tail:
  the final IEF state (R, 157) -> 6D -> rotation matrices -> body keypoints ->
  projection -> :func:`~eft.fitting.losses.eft_loss`, for all live exemplars at once.
* **Fused Adam** (``torch._fused_adam_``, the kernel behind ``torch.optim.Adam(...,
  fused=True)``) on the flat rows.
* **Cache blocking.**  Per iteration, after the loss tail, the exemplars are processed in
  blocks of ``block`` rows: backward (into a block-sized gradient buffer), Adam, and the
  next forward, so a block's weights are still in cache when the forward reads them and
  gradients never reach DRAM (blocks of 8 measured ~6 % faster than none at B=64).

Exemplars that stop (loss below ``stop_loss_2d``, non-finite loss) leave the buffers:
live rows from the end move into their places, so only those rows are copied. Scopes:
``"all"``, ``"last_stage"`` and ``"head"`` (the trained encoder blocks are the last 0, 1
or all of them), and ``"bias"``, which runs a different, much cheaper loop
(:class:`_BiasEngine`): the weight matrices are shared, so every layer is one matrix
product for the whole chunk, autograd does the backward and Adam moves only the
exemplars' biases and LayerNorm gains/offsets.  The engine reads every size from the
modules (encoder widths, IEF hidden size, ``n_iter``) and the encoder input from
``model.prepare_input``, so any :class:`~eft.models.KeypointRegressor` configuration
works; :func:`supports` tells whether a model/scope can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from eft.body.fast import KeypointLBS
from eft.body.model import BodyModel
from eft.errors import EftError
from eft.geometry.rotations import rot6d_to_rotmat
from eft.models.ief import CAM_DIM, POSE6D_DIM, SHAPE_DIM, STATE_DIM
from eft.models.output import RegressorOutput
from eft.models.protocol import Regressor

from .config import EFTConfig
from .engine import (
    _fill_skipped,
    _full_params,
    _make_fits,
    _Raw,
    _record_pass,
    _start,
    input_kind,
    split_model,
)
from .losses import eft_loss
from .quality import PosePrior
from .records import Fit, FitTargets

__all__ = ["fit_flat"]

#: Exemplars per cache block (backward + Adam + next forward together).
DEFAULT_BLOCK = 8

_DECODERS = (("decpose", POSE6D_DIM), ("decshape", SHAPE_DIM), ("deccam", CAM_DIM))


@dataclass(frozen=True)
class _Block:
    """One trained encoder block Linear(in, out) -> LayerNorm(out) -> ReLU; ``key`` names
    its tensors ``{key}.w`` (out, in), ``{key}.b``, ``{key}.g`` (LayerNorm weight) and
    ``{key}.beta`` (LayerNorm bias) in the flat state."""

    key: str
    n_in: int
    n_out: int
    eps: float


@dataclass(frozen=True)
class _Layout:
    """The trained tensors of one model and scope.

    ``shapes``: state key -> per-exemplar shape, in storage order (``w1``/``b1`` fc1,
    ``w2``/``b2`` fc2, ``wd``/``bd`` the three decoders stacked, (157, hidden) / (157,)).
    ``names``: parameter name -> (state key, rows of it or None for all).
    """

    blocks: tuple[_Block, ...]
    n_feat: int  # IEF feature size F
    hidden: int
    n_iter: int
    shapes: dict[str, tuple[int, ...]]
    names: dict[str, tuple[str, slice | None]]

    @property
    def size(self) -> int:
        """P, trained values per exemplar."""
        return sum(int(np.prod(s)) for s in self.shapes.values())


# ``model: Any`` below: a module shaped like the KeypointRegressor (``encoder``, ``fc1``
# ... ``init_cam``, ``n_iter``, ``prepare_input``); :func:`supports` checks the shape.


def _encoder_blocks(model: Any) -> list[tuple[int, nn.Linear, nn.LayerNorm]]:
    """The encoder as (index of the Linear, Linear, LayerNorm) triples; raises
    :class:`EftError` for any other structure."""
    mods = list(model.encoder)
    if len(mods) % 3:
        raise EftError("encoder is not a sequence of Linear-LayerNorm-ReLU blocks")
    out = []
    for i in range(0, len(mods), 3):
        lin, norm, act = mods[i:i + 3]
        if not (type(lin) is nn.Linear and type(norm) is nn.LayerNorm
                and type(act) is nn.ReLU and lin.bias is not None
                and norm.weight is not None and norm.bias is not None
                and tuple(norm.normalized_shape) == (lin.out_features,)):
            raise EftError(f"encoder block {i // 3} is not Linear(bias)-LayerNorm(affine)-ReLU")
        out.append((i, lin, norm))
    return out


def _layout(model: Any, scope: str) -> _Layout:
    blocks = _encoder_blocks(model)
    n_train = {"all": len(blocks), "last_stage": 1, "head": 0}[scope]
    shapes: dict[str, tuple[int, ...]] = {}
    names: dict[str, tuple[str, slice | None]] = {}
    trained = []
    for k, (i, lin, norm) in enumerate(blocks[len(blocks) - n_train:]):
        key = f"e{k}"
        trained.append(_Block(key=key, n_in=lin.in_features, n_out=lin.out_features,
                              eps=float(norm.eps)))
        shapes[f"{key}.w"] = (lin.out_features, lin.in_features)
        for part in ("b", "g", "beta"):
            shapes[f"{key}.{part}"] = (lin.out_features,)
        names[f"encoder.{i}.weight"] = (f"{key}.w", None)
        names[f"encoder.{i}.bias"] = (f"{key}.b", None)
        names[f"encoder.{i + 1}.weight"] = (f"{key}.g", None)
        names[f"encoder.{i + 1}.bias"] = (f"{key}.beta", None)
    hidden = model.fc1.out_features
    n_feat = model.fc1.in_features - STATE_DIM
    if model.fc2.in_features != hidden or model.fc2.out_features != hidden or any(
            getattr(model, n).in_features != hidden or getattr(model, n).out_features != k
            for n, k in _DECODERS):
        raise EftError("IEF layer sizes do not chain")
    shapes.update({"w1": (hidden, n_feat + STATE_DIM), "b1": (hidden,),
                   "w2": (hidden, hidden), "b2": (hidden,),
                   "wd": (STATE_DIM, hidden), "bd": (STATE_DIM,)})
    names.update({"fc1.weight": ("w1", None), "fc1.bias": ("b1", None),
                  "fc2.weight": ("w2", None), "fc2.bias": ("b2", None)})
    start = 0
    for name, n in _DECODERS:
        names[f"{name}.weight"] = ("wd", slice(start, start + n))
        names[f"{name}.bias"] = ("bd", slice(start, start + n))
        start += n
    return _Layout(blocks=tuple(trained), n_feat=n_feat, hidden=hidden,
                   n_iter=int(model.n_iter), shapes=shapes, names=names)


def supports(model: nn.Module, scope: str = "all") -> bool:
    """Whether :func:`fit_flat` can fine-tune ``model`` in ``scope``: a keypoint
    :class:`~eft.models.protocol.Regressor` shaped like the
    :class:`~eft.models.KeypointRegressor` (``prepare_input``, an ``encoder`` of
    Linear-LayerNorm-ReLU blocks, the IEF head) whose trained parameters are exactly
    those of ``split_model(model, scope)``."""
    if (not isinstance(model, Regressor) or input_kind(model) != "keypoints"
            or scope not in ("all", "head", "last_stage", "bias")):
        return False
    try:
        if scope == "bias":
            return set(_BiasEngine.names_of(model)) == set(split_model(model, scope).trainable)
        layout = _layout(model, scope)
    except (EftError, AttributeError, TypeError):
        return False
    return set(layout.names) == set(split_model(model, scope).trainable)


class _Flat:
    """R rows of per-exemplar state in one flat buffer (R * P values), stored layer by
    layer: key -> (R, *shape) contiguous view, so a block of rows of one layer is
    contiguous (for ``bmm``'s output and for fused Adam)."""

    def __init__(self, layout: _Layout, rows: int, like: Tensor) -> None:
        self.data = torch.empty(rows * layout.size, dtype=like.dtype, device=like.device)
        self.views: dict[str, Tensor] = {}
        pos = 0
        for key, shape in layout.shapes.items():
            n = rows * int(np.prod(shape))
            self.views[key] = self.data[pos:pos + n].view(rows, *shape)
            pos += n

    def rows(self, a: int, b: int) -> dict[str, Tensor]:
        return {key: t[a:b] for key, t in self.views.items()}


class _Acts:
    """Saved activations of one forward for R rows (what the backward needs)."""

    def __init__(self, layout: _Layout, rows: int, like: Tensor) -> None:
        n, h = layout.n_iter, layout.hidden
        self.x_in = [like.new_empty(rows, b.n_in) for b in layout.blocks]
        self.z = [like.new_empty(rows, b.n_out) for b in layout.blocks]
        self.xhat = [like.new_empty(rows, b.n_out) for b in layout.blocks]
        self.mean = [like.new_empty(rows, 1) for b in layout.blocks]
        self.rstd = [like.new_empty(rows, 1) for b in layout.blocks]
        self.mask = [like.new_empty(rows, b.n_out, dtype=torch.bool) for b in layout.blocks]
        self.u = like.new_empty(rows, n, layout.n_feat + STATE_DIM)
        self.h1 = like.new_empty(rows, n, h)
        self.h2 = like.new_empty(rows, n, h)
        self.state = like.new_empty(rows, STATE_DIM)  # the last IEF state

    def tensors(self) -> list[Tensor]:
        return [*self.x_in, *self.z, *self.xhat, *self.mean, *self.rstd, *self.mask,
                self.u, self.h1, self.h2, self.state]


def _state_loss(state: Tensor, targets: Tensor, config: EFTConfig,
                fast: KeypointLBS) -> tuple[Tensor, Tensor, RegressorOutput]:
    """EFT's loss of IEF states (R, 157): ``(loss (R,), loss_2d (R,), output)``."""
    pose = state[:, :POSE6D_DIM]
    rotmat = rot6d_to_rotmat(pose.reshape(state.shape[0], -1, 6))
    out = RegressorOutput(rotmat=rotmat, betas=state[:, POSE6D_DIM:POSE6D_DIM + SHAPE_DIM],
                          cam=state[:, POSE6D_DIM + SHAPE_DIM:], pose6d=pose)
    loss, l2d = eft_loss(out, targets, config, fast)
    return loss, l2d, out


def _decoders(w: dict[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
    """(W (r, n, hidden), b (r, 1, n)) views of decpose, decshape, deccam."""
    out, start = [], 0
    for _, n in _DECODERS:
        out.append((w["wd"][:, start:start + n], w["bd"][:, start:start + n].unsqueeze(1)))
        start += n
    return out


class _Engine:
    """Forward / backward / Adam on blocks of flat rows for one model and scope.

    Every sum below adds its terms in the order autograd adds them in
    :func:`~eft.fitting.engine.fit_sequential` (the last use first), and every product has
    the orientation of the sequential loop's (``x @ W.T`` forward, ``g @ W`` backward), so
    the rounding is the same: weight gradients that nearly cancel, which Adam's
    normalised step would otherwise amplify, come out as in the reference.
    """

    def __init__(self, model: Any, layout: _Layout, config: EFTConfig,
                 lr: float) -> None:
        self.layout = layout
        self.config = config
        self.lr = lr
        p = next(model.parameters())
        self.init_state = torch.cat([model.init_pose.reshape(-1), model.init_shape.reshape(-1),
                                     model.init_cam.reshape(-1)]).to(p.dtype)

    # -- forward ---------------------------------------------------------------------
    def forward(self, w: dict[str, Tensor], x0: Tensor, acts: _Acts, r0: int) -> None:
        """Forward of the rows whose weights are ``w`` (key -> (r, ...)) on frozen inputs
        ``x0`` (r, in0); saves the activations at rows ``r0 .. r0 + r`` of ``acts``."""
        lay = self.layout
        r = x0.shape[0]
        rows = slice(r0, r0 + r)
        x = x0
        for k, blk in enumerate(lay.blocks):
            key = blk.key
            acts.x_in[k][rows] = x
            z = torch.baddbmm(w[f"{key}.b"].unsqueeze(1), x.unsqueeze(1),
                              w[f"{key}.w"].mT).squeeze(1)
            xhat, mean, rstd = torch.native_layer_norm(z, [blk.n_out], None, None, blk.eps)
            y = torch.addcmul(w[f"{key}.beta"], xhat, w[f"{key}.g"])
            acts.z[k][rows] = z
            acts.xhat[k][rows] = xhat
            acts.mean[k][rows] = mean
            acts.rstd[k][rows] = rstd
            acts.mask[k][rows] = y > 0
            x = torch.relu(y)
        w1t, w2t = w["w1"].mT, w["w2"].mT
        b1, b2 = w["b1"].unsqueeze(1), w["b2"].unsqueeze(1)
        decoders = [(wd.mT, bd) for wd, bd in _decoders(w)]
        u = acts.u[rows]
        u[:, :, : lay.n_feat] = x.unsqueeze(1)
        state = self.init_state.expand(r, STATE_DIM)
        for t in range(lay.n_iter):
            u[:, t, lay.n_feat:] = state
            h1 = torch.baddbmm(b1, u[:, t].unsqueeze(1), w1t)
            h2 = torch.baddbmm(b2, h1, w2t)
            d = torch.cat([torch.baddbmm(bd, h2, wdt) for wdt, bd in decoders], dim=2)
            acts.h1[rows, t] = h1.squeeze(1)
            acts.h2[rows, t] = h2.squeeze(1)
            state = d.squeeze(1) + state
        acts.state[rows] = state

    # -- loss tail (autograd) --------------------------------------------------------
    def tail(self, state: Tensor, targets: Tensor, fast: KeypointLBS,
             need_grad: bool) -> tuple[Tensor, Tensor | None, RegressorOutput]:
        """Loss of the final IEF states (R, 157): ``(loss_2d (R,), d loss / d state
        (R, 157) or None, output)``."""
        s = state.detach().requires_grad_(need_grad)
        with torch.set_grad_enabled(need_grad):
            loss, l2d, out = _state_loss(s, targets, self.config, fast)
            grad = torch.autograd.grad(loss.sum(), s)[0] if need_grad else None
        return l2d.detach(), grad, out.detach()

    # -- backward --------------------------------------------------------------------
    def backward(self, w: dict[str, Tensor], g_state: Tensor, acts: _Acts, r0: int,
                 grad: dict[str, Tensor]) -> None:
        """Gradients of the rows whose weights are ``w`` into ``grad`` (key -> (r, ...),
        contiguous) from ``g_state`` (r, 157), the loss gradient w.r.t. the final IEF
        state."""
        lay = self.layout
        r = g_state.shape[0]
        rows = slice(r0, r0 + r)
        h, n = lay.hidden, lay.n_iter
        decoders = _decoders(w)
        g_d = g_state.new_empty(r, n, STATE_DIM)
        g_h2 = g_state.new_empty(r, n, h)
        g_h1 = g_state.new_empty(r, n, h)
        g = g_state.unsqueeze(1)  # (r, 1, 157): gradient w.r.t. the state after pass t
        g_feat = None
        for t in range(n - 1, -1, -1):
            g_d[:, t] = g[:, 0]
            parts, start = [], 0
            for wd, _ in decoders:
                k = wd.shape[1]
                parts.append(torch.bmm(g[:, :, start:start + k], wd))
                start += k
            gh2 = parts[-1]
            for part in parts[-2::-1]:
                gh2 = gh2 + part
            g_h2[:, t] = gh2[:, 0]
            gh1 = torch.bmm(gh2, w["w2"])
            g_h1[:, t] = gh1[:, 0]
            if t > 0 or lay.blocks:
                gu = torch.bmm(gh1, w["w1"])
                if lay.blocks:
                    gf = gu[:, 0, : lay.n_feat]
                    g_feat = gf if g_feat is None else g_feat + gf
                if t > 0:
                    g = g + gu[:, :, lay.n_feat:]
        u, h1, h2 = acts.u[rows], acts.h1[rows], acts.h2[rows]
        for wk, bk, g_out, x_in in (("w1", "b1", g_h1, u), ("w2", "b2", g_h2, h1),
                                    ("wd", "bd", g_d, h2)):
            # the n outer products summed by one bmm over the passes, last pass first
            torch.bmm(g_out.flip(1).transpose(1, 2), x_in.flip(1), out=grad[wk])
            gb = grad[bk]
            gb.copy_(g_out[:, n - 1])
            for t in range(n - 2, -1, -1):
                gb.add_(g_out[:, t])
        g_a = g_feat
        for k in range(len(lay.blocks) - 1, -1, -1):
            blk = lay.blocks[k]
            key = blk.key
            assert g_a is not None  # set by the IEF backward when there are blocks
            g_y = torch.where(acts.mask[k][rows], g_a, 0.0)
            torch.mul(g_y, acts.xhat[k][rows], out=grad[f"{key}.g"])
            grad[f"{key}.beta"].copy_(g_y)
            g_z = torch.ops.aten.native_layer_norm_backward(
                g_y * w[f"{key}.g"], acts.z[k][rows], [blk.n_out], acts.mean[k][rows],
                acts.rstd[k][rows], None, None, [True, False, False])[0]
            torch.mul(g_z.unsqueeze(-1), acts.x_in[k][rows].unsqueeze(1),
                      out=grad[f"{key}.w"])
            grad[f"{key}.b"].copy_(g_z)
            if k > 0:
                g_a = torch.bmm(g_z.unsqueeze(1), w[f"{key}.w"]).squeeze(1)

    # -- Adam ------------------------------------------------------------------------
    def adam(self, w: dict[str, Tensor], grad: dict[str, Tensor], m: dict[str, Tensor],
             v: dict[str, Tensor], step: Tensor) -> None:
        """``torch.optim.Adam(fused=True)``'s kernel on every tensor of the block."""
        keys = list(w)
        b1, b2 = self.config.adam_betas
        torch._fused_adam_([w[k] for k in keys], [grad[k] for k in keys],
                           [m[k] for k in keys], [v[k] for k in keys], [],
                           [step] * len(keys), lr=self.lr, beta1=b1, beta2=b2,
                           weight_decay=self.config.weight_decay, eps=self.config.adam_eps,
                           amsgrad=False, maximize=False)


def _trained(w: dict[str, Tensor], layout: _Layout, j: int) -> dict[str, Tensor]:
    """Row ``j``'s trained tensors by parameter name."""
    return {name: w[key][j] if rows is None else w[key][j, rows]
            for name, (key, rows) in layout.names.items()}


class _Buffers:
    """Per-exemplar state for up to ``rows`` exemplars and a ``block``-row gradient,
    allocated once per fit and reused by every chunk."""

    def __init__(self, layout: _Layout, rows: int, block: int, like: Tensor) -> None:
        self.theta = _Flat(layout, rows, like)
        self.m = _Flat(layout, rows, like)
        self.v = _Flat(layout, rows, like)
        self.grad = _Flat(layout, min(block, rows), like)
        self.acts = _Acts(layout, rows, like)


def _run_chunk(engine: _Engine, model: Any, fast: KeypointLBS, x0: Tensor,
               targets: Tensor, rows: Tensor, raw: _Raw, bufs: _Buffers, block: int,
               keep_params: bool) -> None:
    """Fine-tune the exemplars ``rows`` (original indices; frozen inputs ``x0``,
    targets ``targets``) together."""
    lay, config = engine.layout, engine.config
    n = rows.numel()
    named = dict(model.named_parameters())
    theta, m, v, grad, acts = bufs.theta, bufs.m, bufs.v, bufs.grad, bufs.acts
    with torch.no_grad():
        for name, (key, part) in lay.names.items():
            dst = theta.views[key][:n]
            dst = dst if part is None else dst[:, part]
            dst.copy_(named[name].detach().expand_as(dst))
        for buf in (m, v):
            for t in buf.views.values():
                t[:n].zero_()
    step = torch.zeros((), dtype=torch.float32, device=x0.device)
    for a in range(0, n, block):
        b = min(a + block, n)
        engine.forward(theta.rows(a, b), x0[a:b], acts, a)
    x0, targets = x0.clone(), targets.clone()  # rows move in place below
    idx = rows.clone()  # original index of each live row
    live = n
    for it in range(config.max_iters):
        last = it == config.max_iters - 1
        l2d, g_state, out = engine.tail(acts.state[:live], targets[:live], fast,
                                        need_grad=not last)
        cur = idx[:live]
        stop = _record_pass(raw, cur, it, l2d, out.rotmat, out.betas, out.cam, config)
        n_stop = int(stop.sum())
        if raw.params is not None and n_stop:
            for j in torch.nonzero(stop).flatten().tolist():
                raw.params[int(cur[j])] = _full_params(model, _trained(theta.views, lay, j))
        if n_stop == live:
            break
        assert g_state is not None  # computed unless this was the last iteration
        if n_stop:
            # fill the stopped rows among the first ``live - n_stop`` with live rows from
            # the end: only those rows move (rows are independent; ``idx`` follows them)
            live -= n_stop
            pos = torch.nonzero(stop).flatten()
            holes = pos[pos < live]
            sources = torch.nonzero(~stop[live:]).flatten() + live
            for t in (*theta.views.values(), *m.views.values(), *v.views.values(),
                      *acts.tensors(), x0, targets, idx):
                t.index_copy_(0, holes, t.index_select(0, sources))
            g_state = g_state.index_copy(0, holes, g_state.index_select(0, sources))
        step += 1
        for a in range(0, live, block):
            b = min(a + block, live)
            w = theta.rows(a, b)
            g = grad.rows(0, b - a)
            engine.backward(w, g_state[a:b], acts, a, g)
            engine.adam(w, g, m.rows(a, b), v.rows(a, b), step)
            engine.forward(w, x0[a:b], acts, a)


class _BiasEngine:
    """Scope ``"bias"``: the weight matrices stay the pretrained ones, shared by every
    exemplar, and each exemplar owns only its biases and LayerNorm gains and offsets
    (4,253 values for the shipped prior, against 1.03 M in ``"all"``).  Every product is
    then one (R, in) x (in, out) matrix product for the whole chunk instead of R
    matrix-vector products over private weights, and autograd runs the backward: a row's
    loss depends on its own parameters only, so the gradient of the summed loss is each
    exemplar's own.
    """

    def __init__(self, model: Any, config: EFTConfig, lr: float) -> None:
        self.config = config
        self.lr = lr
        self.blocks = [(i, lin.weight.detach(), (lin.out_features,), float(norm.eps))
                       for i, lin, norm in _encoder_blocks(model)]
        self.n_iter = int(model.n_iter)
        self.w1 = model.fc1.weight.detach()
        self.w2 = model.fc2.weight.detach()
        self.wd = torch.cat([getattr(model, n).weight.detach() for n, _ in _DECODERS])
        p = next(model.parameters())
        self.init_state = torch.cat([model.init_pose.reshape(-1), model.init_shape.reshape(-1),
                                     model.init_cam.reshape(-1)]).to(p.dtype)
        self.names = self.names_of(model)

    @staticmethod
    def names_of(model: Any) -> tuple[str, ...]:
        """The parameters this engine trains, in storage order; raises :class:`EftError`
        for an encoder that is not Linear-LayerNorm-ReLU blocks."""
        names: list[str] = []
        for i, _, _ in _encoder_blocks(model):
            names += [f"encoder.{i}.bias", f"encoder.{i + 1}.weight", f"encoder.{i + 1}.bias"]
        return (*names, "fc1.bias", "fc2.bias", *(f"{n}.bias" for n, _ in _DECODERS))

    def forward(self, p: dict[str, Tensor], x0: Tensor) -> Tensor:
        """The final IEF state (R, 157) of the rows whose parameters are ``p`` (name ->
        (R, n)) on frozen inputs ``x0`` (R, in0)."""
        x = x0
        for i, w, shape, eps in self.blocks:
            z = torch.addmm(p[f"encoder.{i}.bias"], x, w.T)
            y = torch.layer_norm(z, shape, None, None, eps)
            x = torch.relu(torch.addcmul(p[f"encoder.{i + 1}.bias"], y,
                                         p[f"encoder.{i + 1}.weight"]))
        bd = torch.cat([p[f"{n}.bias"] for n, _ in _DECODERS], dim=1)
        state = self.init_state.expand(x.shape[0], STATE_DIM)
        for _ in range(self.n_iter):
            h1 = torch.addmm(p["fc1.bias"], torch.cat((x, state), dim=1), self.w1.T)
            h2 = torch.addmm(p["fc2.bias"], h1, self.w2.T)
            state = torch.addmm(bd, h2, self.wd.T) + state
        return state

    def adam(self, p: dict[str, Tensor], g: dict[str, Tensor], m: dict[str, Tensor],
             v: dict[str, Tensor], step: Tensor) -> None:
        """``torch.optim.Adam(fused=True)``'s kernel on every tensor."""
        b1, b2 = self.config.adam_betas
        torch._fused_adam_([p[k] for k in self.names], [g[k] for k in self.names],
                           [m[k] for k in self.names], [v[k] for k in self.names], [],
                           [step] * len(self.names), lr=self.lr, beta1=b1, beta2=b2,
                           weight_decay=self.config.weight_decay, eps=self.config.adam_eps,
                           amsgrad=False, maximize=False)


def _run_chunk_bias(engine: _BiasEngine, model: Any, fast: KeypointLBS, x0: Tensor,
                    targets: Tensor, rows: Tensor, raw: _Raw) -> None:
    """Fine-tune the exemplars ``rows`` (original indices; frozen inputs ``x0``,
    targets ``targets``) together in scope ``"bias"``."""
    config = engine.config
    named = dict(model.named_parameters())
    n = rows.numel()
    p = {k: named[k].detach().expand(n, *named[k].shape).clone() for k in engine.names}
    m = {k: torch.zeros_like(t) for k, t in p.items()}
    v = {k: torch.zeros_like(t) for k, t in p.items()}
    step = torch.zeros((), dtype=torch.float32, device=x0.device)
    idx = rows.clone()  # original index of each live row
    for it in range(config.max_iters):
        last = it == config.max_iters - 1
        for t in p.values():
            t.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            loss, l2d, out = _state_loss(engine.forward(p, x0), targets, config, fast)
            grads = torch.autograd.grad(loss.sum(), [p[k] for k in engine.names]) \
                if not last else None
        out = out.detach()
        stop = _record_pass(raw, idx, it, l2d.detach(), out.rotmat, out.betas, out.cam,
                            config)
        if raw.params is not None and bool(stop.any()):
            for j in torch.nonzero(stop).flatten().tolist():
                raw.params[int(idx[j])] = _full_params(
                    model, {k: t[j].detach() for k, t in p.items()})
        if bool(stop.all()):
            break
        assert grads is not None  # computed unless this was the last iteration
        # contiguous: the decoder biases' gradients are column slices of one (R, 157)
        # gradient, and the fused Adam kernel reads its tensors as dense
        g = {k: t.contiguous() for k, t in zip(engine.names, grads, strict=True)}
        p = {k: t.detach() for k, t in p.items()}
        if bool(stop.any()):  # the stopped rows leave every per-row tensor
            go = ~stop
            p, g, m, v = ({k: t[go] for k, t in d.items()} for d in (p, g, m, v))
            x0, targets, idx = x0[go], targets[go], idx[go]
        step += 1
        engine.adam(p, g, m, v, step)


def fit_flat(model: nn.Module, body: BodyModel | KeypointLBS, targets: FitTargets,
             config: EFTConfig | None = None, batch_size: int = 64, *,
             block: int = DEFAULT_BLOCK, pose_prior: PosePrior | None = None,
             with_vertices: bool = False, keep_params: bool = False,
             progress: bool = False) -> list[Fit]:
    """EFT with the flat engine: ``batch_size`` exemplars at a time, each with its own
    weights and Adam state, in cache blocks of ``block``; same arguments and results as
    :func:`~eft.fitting.engine.fit_sequential` (up to float rounding).  Needs a model that
    :func:`supports` accepts for ``config.scope``.

    Memory: 3 (R, P) buffers (weights, Adam moments) for R = ``batch_size`` plus a
    (``block``, P) gradient buffer, e.g. ~3.8 MB per exemplar for the shipped prior
    (P = 316,829).
    """
    config = config or EFTConfig()
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(block) < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if not supports(model, config.scope):
        raise EftError(f"the flat engine does not support a {type(model).__name__} in "
                       f"scope {config.scope!r}; use fit_batched")
    st = _start(model, body, targets, config, keep_params)
    split, prep, raw = st.split, st.prep, st.raw
    was_training = model.training
    try:
        model.eval()
        bias_engine, engine, bufs = None, None, None
        if config.scope == "bias":
            bias_engine = _BiasEngine(model, config, st.lr)
        else:
            layout = _layout(model, config.scope)
            engine = _Engine(model, layout, config, st.lr)
            n_todo = int((~prep.skipped).sum())
            bufs = _Buffers(layout, max(1, min(int(batch_size), n_todo)), int(block),
                            prep.targets)
        skipped = _fill_skipped(model, st, config)
        todo = torch.nonzero(~prep.skipped).flatten().to(st.device)
        with tqdm(total=st.batch, desc="EFT (flat)", disable=not progress) as bar:
            bar.update(int(skipped.numel()))
            for start in range(0, int(todo.numel()), int(batch_size)):
                rows = todo[start:start + int(batch_size)]
                with torch.no_grad():
                    if config.scope in ("all", "bias"):  # the frozen part is the input
                        x0 = cast(Any, model).prepare_input(prep.inputs[rows])
                    else:  # one row at a time, rounded as in fit_sequential
                        x0 = torch.cat([split.features(prep.inputs[i:i + 1])
                                        for i in rows.tolist()])
                    x0 = x0.contiguous()
                if bias_engine is not None:
                    _run_chunk_bias(bias_engine, model, st.fast, x0, prep.targets[rows],
                                    rows, raw)
                else:
                    assert engine is not None and bufs is not None
                    _run_chunk(engine, model, st.fast, x0, prep.targets[rows], rows, raw,
                               bufs, int(block), keep_params)
                bar.update(int(rows.numel()))
    finally:
        model.train(was_training)
    return _make_fits(model, body, st, config, pose_prior, with_vertices)
