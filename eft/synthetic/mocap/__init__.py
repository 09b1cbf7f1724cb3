"""eft.synthetic.mocap: motion-capture reading and retargeting, used only to build the
pose bank (``scripts/build_pose_bank.py``); the library never imports it (an
import-linter contract in ``pyproject.toml`` checks that).

* :mod:`~eft.synthetic.mocap.bvh` - BVH files: hierarchy, channels, forward kinematics.
* :mod:`~eft.synthetic.mocap.skeleton_maps` - which BVH joint is which SMPL joint, per
  skeleton family.
* :mod:`~eft.synthetic.mocap.retarget` - SMPL poses that reproduce a clip's joint
  positions.
"""
