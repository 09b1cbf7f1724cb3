"""The GMM pose prior: a Gaussian mixture over SMPL body poses (SMPLify's pose prior,
refitted).  Not to be confused with the pretrained keypoint regressor, "the prior"
(``keypoint-prior-v1``/``v2``, :mod:`eft.train.prior`).

SMPLify (Bogo et al. 2016) and SPIN's SMPLify baseline penalise the body pose with
the negative log-likelihood of a Gaussian mixture fitted to motion-capture poses:
8 components, full covariances, over the 69 axis-angle numbers of joints 1..23 (the
global orientation is not part of it).  :class:`GMMPosePrior` is that prior, fitted
by :func:`fit_gmm` (EM) on the training poses of the project's CMU pose bank
(:mod:`eft.synthetic.pose_bank`); ``scripts/build_pose_prior.py`` builds the shipped
``eft/fitting/assets/pose_prior_gmm.npz`` (see ``POSE_PRIOR.md`` there) and
:func:`load_default_pose_prior` loads it.

Dimensions.  Axis-angle numbers that are constant in the bank (the retargeting leaves
the feet, head and hands at rest, 15 of the 69) carry no information and would make
the covariances singular; they are dropped (``active_dims`` lists the ones kept), so
the prior neither rewards nor penalises them.  The rest gets a full-covariance mixture
with ``reg * I`` added to every covariance.

Negative log-likelihood (nats, normalising constants included, over the active
dimensions), two flavours (``mode``):

* ``"logsumexp"`` (default): the mixture's true NLL,
  ``-log sum_k w_k N(x; mu_k, S_k)``.
* ``"max"``: SMPLify's ``MaxMixturePrior``, the NLL of the single best component,
  ``-max_k log(w_k N(x; mu_k, S_k))``.  It is never below the true NLL and at most
  ``log K`` above it; its gradient is that of one Gaussian.  (SMPLify also rescales the
  component weights by ``sqrt(det S_min)``, a constant shift per component that we do
  not copy: here every component keeps its exact normalisation.)

The module is callable with the project's pose-prior convention,
``prior(rotmats (B, 24, 3, 3)) -> nll (B,)`` (see :data:`eft.fitting.quality.PosePrior`),
and :meth:`GMMPosePrior.nll` also takes axis-angle body poses (B, 69) directly, which is
what an optimiser over axis-angle should use (no rotation-matrix round trip).

Everything derived from the pose bank carries the CMU acknowledgement
(:data:`eft.synthetic.pose_bank.ACKNOWLEDGEMENT`); it is stored in the npz (``meta``).
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from eft.errors import EftError
from eft.geometry.rotations import rotmat_to_axis_angle

__all__ = [
    "BODY_POSE_DIM",
    "NLL_MODES",
    "GMMFit",
    "GMMPosePrior",
    "fit_gmm",
    "default_pose_prior_path",
    "load_default_pose_prior",
]

#: Axis-angle numbers of the 23 body joints (SMPL joints 1..23).
BODY_POSE_DIM = 69
NLL_MODES: tuple[str, ...] = ("logsumexp", "max")
_LOG_2PI = math.log(2.0 * math.pi)
_FORMAT = "eft-gmm-pose-prior-v1"


# ---------------------------------------------------------------------------
# EM (numpy, float64)
# ---------------------------------------------------------------------------

class GMMFit:
    """What :func:`fit_gmm` returns.

    Attributes:
        weights: (K,) mixture weights (sum 1).
        means: (K, D) component means.
        covariances: (K, D, D) covariances, regulariser included.
        log_likelihood: mean log-likelihood per sample after the last iteration.
        iterations: EM iterations run.
        converged: the mean log-likelihood changed by less than ``tol`` in the last one.
        history: mean log-likelihood after every iteration.
    """

    def __init__(self, weights, means, covariances, log_likelihood, iterations, converged,
                 history) -> None:
        self.weights = weights
        self.means = means
        self.covariances = covariances
        self.log_likelihood = float(log_likelihood)
        self.iterations = int(iterations)
        self.converged = bool(converged)
        self.history = list(history)


def _component_log_density(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(N, D) samples -> (N, K) ``log N(x; mu_k, S_k)``."""
    n, d = x.shape
    out = np.empty((n, means.shape[0]))
    for k in range(means.shape[0]):
        chol = np.linalg.cholesky(covs[k])  # S = L L^T
        z = (x - means[k]) @ np.linalg.inv(chol).T  # rows L^-1 (x - mu)
        maha = np.einsum("nd,nd->n", z, z)
        logdet = 2.0 * np.log(np.diag(chol)).sum()
        out[:, k] = -0.5 * (maha + logdet + d * _LOG_2PI)
    return out


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int) -> np.ndarray:
    """k-means++ seeding + ``iters`` Lloyd iterations -> (N,) labels."""
    n = x.shape[0]
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(x[rng.choice(n, p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    sq = (x ** 2).sum(1)[:, None]
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        dist = sq - 2.0 * x @ c.T + (c ** 2).sum(1)[None]
        labels = dist.argmin(1)
        for j in range(k):
            members = labels == j
            if members.any():
                c[j] = x[members].mean(0)
            else:  # re-seed an empty cluster at the point farthest from its centre
                far = dist[np.arange(n), labels].argmax()
                c[j] = x[far]
    return labels


def _m_step(x: np.ndarray, resp: np.ndarray, reg: float):
    nk = resp.sum(0) + 1e-10
    weights = nk / nk.sum()
    means = (resp.T @ x) / nk[:, None]
    d = x.shape[1]
    covs = np.empty((resp.shape[1], d, d))
    for k in range(resp.shape[1]):
        diff = x - means[k]
        covs[k] = (resp[:, k, None] * diff).T @ diff / nk[k] + reg * np.eye(d)
        covs[k] = 0.5 * (covs[k] + covs[k].T)
    return weights, means, covs


def fit_gmm(
    x: np.ndarray,
    n_components: int = 8,
    *,
    reg: float = 1e-3,
    seed: int = 0,
    max_iter: int = 300,
    tol: float = 1e-6,
    kmeans_iters: int = 20,
) -> GMMFit:
    """Fit a full-covariance Gaussian mixture to ``x`` (N, D) by EM.

    Initialisation: k-means++ seeding and ``kmeans_iters`` Lloyd iterations (numpy
    generator seeded with ``seed``), hard assignments -> first M-step.  EM then runs until
    the mean log-likelihood per sample improves by less than ``tol`` or ``max_iter``
    iterations.  ``reg`` is added to the diagonal of every covariance in every M-step
    (a floor of ``sqrt(reg)`` on each component's standard deviations).  Deterministic
    for a given ``seed``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < n_components:
        raise ValueError(f"need (N, D) samples with N >= {n_components}, got {x.shape}")
    if not reg > 0:
        raise ValueError(f"reg must be > 0, got {reg!r}")
    rng = np.random.default_rng(seed)
    labels = _kmeans(x, n_components, rng, kmeans_iters)
    resp = np.zeros((x.shape[0], n_components))
    resp[np.arange(x.shape[0]), labels] = 1.0
    weights, means, covs = _m_step(x, resp, reg)
    history: list[float] = []
    converged = False
    for _ in range(max_iter):
        log_p = _component_log_density(x, means, covs) + np.log(weights)[None]
        log_norm = _logsumexp(log_p, axis=1)
        history.append(float(log_norm.mean()))
        resp = np.exp(log_p - log_norm[:, None])
        weights, means, covs = _m_step(x, resp, reg)
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            converged = True
            break
    final = _logsumexp(_component_log_density(x, means, covs) + np.log(weights)[None], axis=1)
    return GMMFit(weights, means, covs, float(final.mean()), len(history), converged, history)


# ---------------------------------------------------------------------------
# The prior
# ---------------------------------------------------------------------------

class GMMPosePrior(nn.Module):
    """Gaussian mixture over the active axis-angle dimensions of the SMPL body pose.

    Args:
        means: (K, D) component means over the active dimensions.
        covariances: (K, D, D) covariances (positive definite).
        weights: (K,) mixture weights (renormalised to sum 1).
        active_dims: (D,) indices into the 69 body-pose numbers (joint ``j`` in 1..23,
            axis ``a``: index ``3 * (j - 1) + a``); default all 69.
        mode: default NLL flavour, one of :data:`NLL_MODES` (module docstring).
        meta: free-form provenance (JSON-serialisable), saved with the prior.

    ``prior(x)`` == ``prior.nll(x)``: rotation matrices (B, 24, 3, 3) (the project's
    pose-prior callable) or any form :meth:`body_pose` accepts.  Buffers are float32;
    the NLL is differentiable.
    """

    # buffers (registered in __init__), declared for type checkers
    means: Tensor
    inv_chol: Tensor
    log_coef: Tensor
    active_dims: Tensor

    def __init__(self, means, covariances, weights, active_dims=None, *,
                 mode: str = "logsumexp", meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        means = np.asarray(means, dtype=np.float64)
        covs = np.asarray(covariances, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if means.ndim != 2:
            raise EftError(f"means must be (K, D), got {means.shape}")
        k, d = means.shape
        if covs.shape != (k, d, d) or weights.shape != (k,):
            raise EftError(f"covariances must be ({k}, {d}, {d}) and weights ({k},); got "
                           f"{covs.shape} and {weights.shape}")
        if active_dims is None:
            active_dims = np.arange(BODY_POSE_DIM)
        active = np.asarray(active_dims, dtype=np.int64).reshape(-1)
        if active.shape != (d,) or active.min(initial=0) < 0 or (
                active.max(initial=0) >= BODY_POSE_DIM) or len(np.unique(active)) != d:
            raise EftError(f"active_dims must be {d} distinct indices in 0..68")
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(covs))
                and np.all(weights > 0) and np.all(np.isfinite(weights))):
            raise EftError("GMM parameters must be finite with positive weights")
        if mode not in NLL_MODES:
            raise EftError(f"mode must be one of {NLL_MODES}, got {mode!r}")
        weights = weights / weights.sum()
        try:
            chol = np.linalg.cholesky(covs)  # S = L L^T
        except np.linalg.LinAlgError as exc:
            raise EftError(f"GMM covariances are not positive definite ({exc})") from None
        # precision = S^-1 = L^-T L^-1: (x - mu)^T S^-1 (x - mu) = |L^-1 (x - mu)|^2
        inv_chol = np.linalg.inv(chol)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
        log_coef = np.log(weights) - 0.5 * (logdet + d * _LOG_2PI)
        self.mode = mode
        self.meta = dict(meta or {})
        self._weights64 = weights
        self._means64 = means
        self._covs64 = covs
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float32))
        self.register_buffer("inv_chol", torch.as_tensor(inv_chol, dtype=torch.float32))
        self.register_buffer("log_coef", torch.as_tensor(log_coef, dtype=torch.float32))
        self.register_buffer("active_dims", torch.as_tensor(active))

    # -- properties ---------------------------------------------------------------

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        """Active dimensions D."""
        return int(self.means.shape[1])

    @property
    def weights(self) -> np.ndarray:
        return self._weights64.copy()

    @property
    def covariances(self) -> np.ndarray:
        return self._covs64.copy()

    def mean_body_pose(self) -> Tensor:
        """(69,) the mixture mean as an axis-angle body pose (dropped dims 0)."""
        mean = (self._weights64[:, None] * self._means64).sum(0)
        out = torch.zeros(BODY_POSE_DIM, dtype=torch.float32)
        out[self.active_dims.cpu()] = torch.as_tensor(mean, dtype=torch.float32)
        return out.to(self.means.device)

    # -- evaluation ---------------------------------------------------------------

    @staticmethod
    def body_pose(pose: Tensor) -> Tensor:
        """Any pose form -> (B, 69) axis-angle of joints 1..23.

        Accepts rotation matrices (B, 24, 3, 3) or (B, 23, 3, 3), axis-angle (B, 72) /
        (B, 24, 3) (global orientation first, dropped) or (B, 69) / (B, 23, 3).
        """
        pose = torch.as_tensor(pose)
        if pose.dim() == 4 and pose.shape[-2:] == (3, 3) and pose.shape[1] in (23, 24):
            rot = pose[:, -23:]
            return rotmat_to_axis_angle(rot).reshape(pose.shape[0], BODY_POSE_DIM)
        if pose.dim() == 3 and pose.shape[-1] == 3 and pose.shape[1] in (23, 24):
            return pose[:, -23:].reshape(pose.shape[0], BODY_POSE_DIM)
        if pose.dim() == 2 and pose.shape[1] in (72, BODY_POSE_DIM):
            return pose[:, -BODY_POSE_DIM:]
        raise ValueError(
            "pose must be rotmats (B, 24|23, 3, 3) or axis-angle (B, 72|69) / (B, 24|23, 3); "
            f"got {tuple(pose.shape)}")

    def component_log_prob(self, pose: Tensor) -> Tensor:
        """(B, K) ``log(w_k N(x; mu_k, S_k))`` over the active dimensions."""
        x = self.body_pose(pose).to(self.means.dtype)[:, self.active_dims]
        diff = x[:, None, :] - self.means[None]  # (B, K, D)
        z = torch.einsum("kij,bkj->bki", self.inv_chol, diff)
        return self.log_coef[None] - 0.5 * (z * z).sum(-1)

    def nll(self, pose: Tensor, mode: str | None = None) -> Tensor:
        """(B,) negative log-likelihood in nats (``mode``: :data:`NLL_MODES`, default
        ``self.mode``)."""
        mode = self.mode if mode is None else mode
        log_p = self.component_log_prob(pose)
        if mode == "logsumexp":
            return -torch.logsumexp(log_p, dim=1)
        if mode == "max":
            return -log_p.amax(dim=1)
        raise ValueError(f"mode must be one of {NLL_MODES}, got {mode!r}")

    def forward(self, pose: Tensor) -> Tensor:
        return self.nll(pose)

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """(n, 69) axis-angle body poses drawn from the mixture (dropped dims 0)."""
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.num_components, size=n, p=self._weights64)
        z = rng.standard_normal((n, self.dim))
        chol = np.linalg.cholesky(self._covs64)
        x = self._means64[comp] + np.einsum("nij,nj->ni", chol[comp], z)
        out = torch.zeros(n, BODY_POSE_DIM, dtype=torch.float32)
        out[:, self.active_dims.cpu()] = torch.as_tensor(x, dtype=torch.float32)
        return out.to(self.means.device)

    # -- construction / io --------------------------------------------------------

    @classmethod
    def fit(cls, poses: np.ndarray, n_components: int = 8, *, reg: float = 1e-3,
            seed: int = 0, max_iter: int = 300, tol: float = 1e-6,
            const_std: float = 1e-6, mode: str = "logsumexp",
            meta: dict[str, Any] | None = None) -> tuple[GMMPosePrior, GMMFit]:
        """Fit to (N, 72) or (N, 69) axis-angle poses (joint 0 dropped); dimensions whose
        standard deviation is ``<= const_std`` are left out.  Returns the prior and the
        EM record."""
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] not in (72, BODY_POSE_DIM):
            raise ValueError(f"poses must be (N, 72) or (N, 69), got {poses.shape}")
        x = poses[:, -BODY_POSE_DIM:]
        active = np.flatnonzero(x.std(0) > const_std)
        em = fit_gmm(x[:, active], n_components, reg=reg, seed=seed, max_iter=max_iter,
                     tol=tol)
        prior = cls(em.means, em.covariances, em.weights, active, mode=mode, meta=meta)
        return prior, em

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` (no pickles): ``means``, ``covariances``, ``weights``,
        ``active_dims`` (float64 / int64), ``mode``, ``format`` and ``meta`` (JSON)."""
        np.savez_compressed(
            Path(path), means=self._means64, covariances=self._covs64,
            weights=self._weights64, active_dims=self.active_dims.cpu().numpy(),
            mode=np.array(self.mode), format=np.array(_FORMAT),
            meta=np.array(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def load(cls, path: str | os.PathLike, mode: str | None = None) -> GMMPosePrior:
        """Read a prior written by :meth:`save`; ``mode`` overrides the stored one."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise EftError(f"pose prior not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as exc:  # zipfile / OSError / ValueError for a damaged file
            raise EftError(f"{p} is not a readable pose prior .npz ({exc})") from None
        missing = [k for k in ("means", "covariances", "weights", "active_dims")
                   if k not in arrays]
        if missing:
            raise EftError(f"{p} is not a GMM pose prior: missing {', '.join(missing)}")
        meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
        stored = str(arrays["mode"]) if "mode" in arrays else "logsumexp"
        return cls(arrays["means"], arrays["covariances"], arrays["weights"],
                   arrays["active_dims"], mode=mode or stored, meta=meta)

    def extra_repr(self) -> str:
        return f"components={self.num_components}, dims={self.dim}/69, mode={self.mode!r}"


def default_pose_prior_path() -> Path:
    """Path of the GMM pose prior shipped in the package (``eft/fitting/assets``)."""
    return Path(str(resources.files("eft.fitting") / "assets" / "pose_prior_gmm.npz"))


_DEFAULT_CACHE: dict[str, GMMPosePrior] = {}


def load_default_pose_prior(mode: str | None = None) -> GMMPosePrior:
    """The shipped prior (``eft/fitting/assets/pose_prior_gmm.npz``), cached per mode.

    Raises :class:`~eft.errors.EftError` when the file is missing (an install without
    the package data entry ``"eft.fitting" = ["assets/*"]``; rebuild it with
    ``scripts/build_pose_prior.py``).  Do not modify the returned module in place.
    """
    key = mode or ""
    if key not in _DEFAULT_CACHE:
        path = default_pose_prior_path()
        if not path.is_file():
            raise EftError(
                f"pose prior not found: {path} (the package was installed without its data "
                "files: reinstall it, or build the prior with scripts/build_pose_prior.py)")
        _DEFAULT_CACHE[key] = GMMPosePrior.load(path, mode=mode)
    return _DEFAULT_CACHE[key]
