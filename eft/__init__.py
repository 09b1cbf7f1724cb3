"""eft: Exemplar Fine-Tuning pseudo-annotation pipeline for 3D human pose."""

__version__ = "0.1.0"
