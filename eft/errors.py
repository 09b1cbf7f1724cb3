"""Exceptions the user can act on.  The CLI prints them as one line, no traceback."""


class EftError(Exception):
    """Base class of every error caused by bad input, files or configuration."""
