"""The one error every annotation reader and writer raises."""

from eft.errors import EftError

__all__ = ["AnnotationError"]


class AnnotationError(EftError):
    """A bad, corrupt, truncated or newer-schema annotation file, or a set that cannot be
    written in the requested format.  The message is one line, naming the file."""
