"""eft.synthetic: people made up from motion capture, with exact ground truth.

* :mod:`~eft.synthetic.pose_bank` - the shipped bank of SMPL poses retargeted from CMU
  motion capture (``assets/pose_bank.npz``, see ``assets/POSE_BANK.md``):
  :func:`load_pose_bank` and its train/val clip split.
* :mod:`~eft.synthetic.exemplars` - synthetic "in-the-wild" exemplars posed from bank
  poses: :func:`generate`, :class:`SyntheticConfig`, :class:`SyntheticSet`.
* :mod:`~eft.synthetic.pose_variants` - seated, kneeling and bent-over variants of bank
  poses.
* :mod:`~eft.synthetic.mocap` - build time only: BVH reading and retargeting, which
  ``scripts/build_pose_bank.py`` uses to make the bank (nothing else imports it).
"""
from eft._lazy import lazy_exports

_EXPORTS = {
    "PoseBank": "pose_bank",
    "PoseBankError": "pose_bank",
    "load_pose_bank": "pose_bank",
    "SyntheticConfig": "exemplars",
    "SyntheticSet": "exemplars",
    "generate": "exemplars",
    "VARIANT_KINDS": "pose_variants",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
