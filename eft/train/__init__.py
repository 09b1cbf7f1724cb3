"""eft.train: training and evaluating body regressors.

* :mod:`~eft.train.trainer` - the one training loop (:class:`Trainer`): batches mixed
  from several datasets, augmentation, SPIN's losses, AMP on GPU, checkpoints with
  exact resume, JSONL log and PNG curves.
* :mod:`~eft.train.data` - :class:`TrainSet` (from annotation files, filtered by quality
  and review decisions, or from synthetic people) and :class:`MixSampler`.
* :mod:`~eft.train.augment` - keypoint and image augmentation (flip, rotation, scale,
  colour, extreme crops, truncation, noise, dropout).
* :mod:`~eft.train.losses` - :func:`regression_loss` and its :class:`LossWeights`.
* :mod:`~eft.train.evaluate` - MPJPE / PA-MPJPE on 14 and 24 joints; synthetic, H36M
  and 3DPW eval sets.
* :mod:`~eft.train.config`, :mod:`~eft.train.run`, :mod:`~eft.train.cli` - ``eft train
  CONFIG.yaml`` (configs in ``fitting/training/``) and ``eft eval``.
* :mod:`~eft.train.prior` - pretraining the shipped keypoint prior (one use of the
  trainer).

Submodules are imported on demand (``from eft.train.trainer import Trainer``).
"""
