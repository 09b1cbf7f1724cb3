"""Body models (through smplx) and joint conventions."""

from eft.body.model import (
    BodyModel,
    BodyModelError,
    BodyModelWarning,
    BodyOutput,
    default_model_path,
    resolve_model_path,
)

__all__ = [
    "BodyModel",
    "BodyModelError",
    "BodyModelWarning",
    "BodyOutput",
    "default_model_path",
    "resolve_model_path",
]
