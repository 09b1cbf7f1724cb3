"""Which torch device each worker uses.

``devices: auto`` means every visible CUDA device (else the CPU).  With several devices
on one node the job runs one worker per device: each worker process claims a *slot*
the first time it runs a chunk - the lowest free number, taken by creating
``<slot dir>/<n>`` with ``O_EXCL``, so two processes can never take the same one - and
uses ``devices[slot % len(devices)]`` for the rest of its life.  A run uses a fresh slot
folder, so claims of an earlier run never count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from eft.devices import DeviceError
from eft.devices import resolve_devices as shared_resolve_devices

from .config import JobConfigError

__all__ = ["resolve_devices", "default_workers", "claim_slot", "device_for_slot"]


def resolve_devices(devices: Sequence[str],
                    cuda_count: Callable[[], int] | None = None) -> list[str]:
    """Concrete device names (:func:`eft.devices.resolve_devices`); a CUDA device that
    does not exist is a :class:`JobConfigError` naming ``devices``."""
    try:
        return shared_resolve_devices(devices, cuda_count)
    except DeviceError as exc:
        raise JobConfigError(f"devices: {exc}") from None


def default_workers(devices: Sequence[str]) -> int:
    """One worker per device."""
    return max(1, len(devices))


def claim_slot(slot_dir: str | os.PathLike, limit: int = 4096) -> int:
    """The lowest slot number not yet claimed in ``slot_dir`` (claims it)."""
    folder = Path(slot_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(limit):
        try:
            fd = os.open(folder / str(n), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return n
    raise RuntimeError(f"{folder}: no free worker slot")  # pragma: no cover


def device_for_slot(devices: Sequence[str], slot: int) -> str:
    """``devices[slot % len(devices)]``: workers beyond the device count share them."""
    return devices[slot % len(devices)]
