"""eft.fitting: Exemplar Fine-Tuning (EFT) of a body regressor, one exemplar at a time.

* :func:`fit` / :func:`fit_batched` / :func:`fit_sequential` - run EFT, get :class:`Fit` s.
* :class:`EFTConfig`, :class:`QualityRules` - loss weights, optimiser, stopping, filters.
* :func:`eft_loss` - EFT's per-exemplar loss; :func:`exemplar_batch` - targets from
  :class:`~eft.data.exemplar.Exemplar` s.
* :func:`rejudge` / :func:`apply_rules` - re-apply other acceptance rules to fits.

Note: ``eft.fitting.fit`` is the function :func:`fit`; the module defining
:class:`Fit` and :class:`FitQuality` is still importable as ``eft.fitting.fit``
(``from eft.fitting.fit import Fit``).
"""

from . import config as _config
from . import eft as _eft
from . import fit as _fit
from . import losses as _losses
from . import quality as _quality
from .config import *  # noqa: F403
from .eft import *  # noqa: F403
from .fit import *  # noqa: F403
from .losses import *  # noqa: F403
from .quality import *  # noqa: F403

__all__ = [
    *_config.__all__,
    *_fit.__all__,
    *_losses.__all__,
    *_quality.__all__,
    *_eft.__all__,
]
