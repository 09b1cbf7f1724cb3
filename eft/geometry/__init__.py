"""eft.geometry: rotations, cameras, crops and pose metrics (torch, batched over ``...``).

Submodules:

* :mod:`eft.geometry.rotations` - axis-angle / matrix / SPIN 6D / quaternion conversions.
* :mod:`eft.geometry.cameras` - weak perspective and perspective cameras, crop <-> image.
* :mod:`eft.geometry.crops` - bbox -> (center, scale), image <-> crop pixels.
* :mod:`eft.geometry.metrics` - Procrustes alignment, MPJPE, PA-MPJPE, PCK, 2D error.
"""

from . import cameras, crops, metrics, rotations
from .cameras import *  # noqa: F403
from .crops import *  # noqa: F403
from .metrics import *  # noqa: F403
from .rotations import *  # noqa: F403

__all__ = [*rotations.__all__, *cameras.__all__, *crops.__all__, *metrics.__all__]
