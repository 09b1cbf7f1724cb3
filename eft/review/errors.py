"""The error the review app raises for bad input, files or settings."""

from eft.errors import EftError

__all__ = ["ReviewError"]


class ReviewError(EftError):
    """A bad review database, annotation file, image root, host/token setting or
    request value.  The message is one line."""
