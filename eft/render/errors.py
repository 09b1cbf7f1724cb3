"""Errors of :mod:`eft.render`."""

from eft.errors import EftError


class RenderError(EftError, ValueError):
    """Bad input to the renderer (shapes, sizes, unknown options)."""
