"""Small private helpers shared by the geometry modules."""

from __future__ import annotations

import torch

# Squared-angle threshold below which closed forms such as sin(t)/t are replaced by
# their Taylor series.  The series are kept to the t**4 term, so their truncation
# error is below t**6 / 5040 < 1e-21 here, and above the threshold the closed forms
# are well conditioned in float32 as well as float64 (no 1 - cos(t) cancellation is
# ever evaluated).
SMALL_ANGLE_SQ = 1e-6


def as_tensor_like(value, like: torch.Tensor) -> torch.Tensor:
    """Return ``value`` (Python number or tensor) as a tensor with ``like``'s dtype/device.

    Tensors keep their autograd history (``Tensor.to`` is differentiable).
    """
    if isinstance(value, torch.Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def check_last_dims(name: str, tensor: torch.Tensor, *dims: int) -> None:
    """Raise ``ValueError`` unless ``tensor``'s trailing dimensions equal ``dims``."""
    if tensor.dim() < len(dims) or tuple(tensor.shape[tensor.dim() - len(dims):]) != dims:
        want = "(..., " + ", ".join(str(d) for d in dims) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")


def check_points(name: str, tensor: torch.Tensor, dim: int) -> None:
    """Raise ``ValueError`` unless ``tensor`` has shape (..., N, dim)."""
    if tensor.dim() < 2 or tensor.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., N, {dim}), got {tuple(tensor.shape)}")
