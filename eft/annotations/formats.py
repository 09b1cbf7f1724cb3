"""The annotation file formats' names (light: the CLI reads them without loading numpy
or torch)."""

from __future__ import annotations

#: Every annotation format eft reads and writes.
FORMATS: tuple[str, ...] = ("eft-json", "spin-npz", "h5", "humandata")

__all__ = ["FORMATS"]
