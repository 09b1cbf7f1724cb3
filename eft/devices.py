"""Torch device names from configuration: the one resolver ``eft fit`` jobs
(``devices:``) and ``eft train`` / ``eft eval`` (``device:``) use.

``auto`` means every visible CUDA device (else the CPU); ``cuda`` means ``cuda:0``;
``cpu``, ``mps`` and ``cuda:N`` are taken as they are, a CUDA device that does not
exist being a :class:`DeviceError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eft.errors import EftError

__all__ = ["DeviceError", "resolve_devices", "resolve_device", "cuda_device_count"]


class DeviceError(EftError):
    """A device that is not there (or not a device name torch knows)."""


def cuda_device_count() -> int:
    """Visible CUDA devices (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_devices(devices: Sequence[str],
                    cuda_count: Callable[[], int] | None = None) -> list[str]:
    """Concrete device names: ``["auto"]`` -> ``cuda:0..n-1`` (or ``["cpu"]``), ``cuda``
    -> ``cuda:0``.  ``cuda_count`` (default :func:`cuda_device_count`) is injectable
    for tests."""
    count = cuda_count or cuda_device_count
    devices = list(devices)
    if devices == ["auto"]:
        n = count()
        return [f"cuda:{i}" for i in range(n)] if n else ["cpu"]
    out = []
    for dev in devices:
        if dev == "cuda":
            dev = "cuda:0"
        if dev.startswith("cuda:"):
            n = count()
            idx = dev.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= n:
                have = ", ".join(f"cuda:{i}" for i in range(n)) or "none"
                raise DeviceError(f"{dev} is not available (CUDA devices: {have})")
        out.append(dev)
    return out


def resolve_device(spec: str, cuda_count: Callable[[], int] | None = None):
    """One ``torch.device``: ``auto`` -> the first CUDA device, else the CPU; anything
    else as :func:`resolve_devices` and torch read it."""
    import torch

    name = resolve_devices([spec], cuda_count)[0]
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"device {spec!r}: {exc}") from None
