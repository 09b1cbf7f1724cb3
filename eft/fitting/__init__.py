"""eft.fitting: Exemplar Fine-Tuning (EFT) of a body regressor, one exemplar at a time.

* :func:`fit` / :func:`fit_flat` / :func:`fit_batched` / :func:`fit_sequential` - run EFT,
  get :class:`Fit` s.
* :class:`EFTConfig`, :class:`QualityRules` - loss weights, optimiser, stopping, filters.
* ``fit_exemplars(..., config="auto")`` - the recipe picked by a pilot fit from how exact
  the labels are (:mod:`eft.fitting.auto`).
* :func:`eft_loss` - EFT's per-exemplar loss; :func:`exemplar_batch` - targets from
  :class:`~eft.data.exemplar.Exemplar` s.
* :func:`rejudge` / :func:`apply_rules` - re-apply other acceptance rules to fits.

* :func:`smplify` / :class:`SmplifyConfig` - the batched SMPLify-style baseline.
* :func:`fit_method` - mean pose, regressor, SMPLify or EFT by name (benchmarks).
* :class:`GMMPosePrior` / :func:`load_default_pose_prior` - pose prior fitted on the bank.

Records (:class:`Fit`, :class:`FitQuality`) live in :mod:`eft.fitting.records`.
"""

from . import auto as _auto
from . import config as _config
from . import engine as _engine
from . import flat as _flat
from . import losses as _losses
from . import methods as _methods
from . import pose_prior as _pose_prior
from . import quality as _quality
from . import records as _records
from . import smplify as _smplify
from .auto import *  # noqa: F403
from .config import *  # noqa: F403
from .engine import *  # noqa: F403
from .flat import *  # noqa: F403
from .losses import *  # noqa: F403
from .methods import *  # noqa: F403
from .pose_prior import *  # noqa: F403
from .quality import *  # noqa: F403
from .records import *  # noqa: F403
from .smplify import *  # noqa: F403

__all__ = [
    *_config.__all__,
    *_auto.__all__,
    *_records.__all__,
    *_pose_prior.__all__,
    *_smplify.__all__,
    *_losses.__all__,
    *_quality.__all__,
    *_engine.__all__,
    *_flat.__all__,
    *_methods.__all__,
]
