"""The error every training and evaluation problem the user can fix raises."""

from eft.errors import EftError

__all__ = ["TrainError"]


class TrainError(EftError):
    """A bad training config, dataset, checkpoint or evaluation file (one line, naming
    the file or config key)."""
