"""eft.models: body regressors that EFT fine-tunes per exemplar.

* :class:`HMR` - SPIN/EFT's ResNet-50 + IEF image regressor (SPIN checkpoint layout).
* :class:`KeypointRegressor` - a small keypoints -> SMPL regressor for fast CPU fitting.
* :class:`IEFHead` / :class:`IEFMixin` - the shared iterative-error-feedback head.
* :class:`Regressor` - what EFT needs from a regressor (input kind, EFT learning rate,
  frozen/trained split per scope).
* :func:`load_regressor` / :func:`save_regressor` - files, SPIN checkpoints, ``"default"``.

Every regressor returns a :class:`RegressorOutput` (rotmat (B, 24, 3, 3), betas (B, 10),
cam (B, 3) ``[s, tx, ty]``, pose6d (B, 144)).
"""

from . import hmr, ief, keypoint_regressor, output, protocol, registry, resnet
from .hmr import *  # noqa: F403
from .ief import *  # noqa: F403
from .keypoint_regressor import *  # noqa: F403
from .output import *  # noqa: F403
from .protocol import *  # noqa: F403
from .registry import *  # noqa: F403
from .resnet import *  # noqa: F403

__all__ = [
    *output.__all__,
    *protocol.__all__,
    *ief.__all__,
    *resnet.__all__,
    *hmr.__all__,
    *keypoint_regressor.__all__,
    *registry.__all__,
]
