"""eft.geometry: rotations, cameras, crops and pose metrics (torch, batched over ``...``).

Submodules:

* :mod:`eft.geometry.rotations` - axis-angle / matrix / SPIN 6D / quaternion conversions.
* :mod:`eft.geometry.cameras` - weak perspective and perspective cameras, crop <-> image.
* :mod:`eft.geometry.crops` - bbox -> (center, scale), image <-> crop pixels.
* :mod:`eft.geometry.metrics` - Procrustes alignment, MPJPE, PA-MPJPE, PCK, 2D error.
"""

from .cameras import (
    crop_cam_to_full_image_translation,
    crop_norm_to_image,
    image_to_crop_norm,
    perspective_project,
    perspective_translation_to_weak,
    weak_perspective_project,
    weak_to_perspective_translation,
)
from .crops import (
    bbox_to_center_scale,
    crop_px_to_norm,
    crop_to_image,
    image_to_crop,
    norm_to_crop_px,
)
from .metrics import (
    mpjpe,
    pa_mpjpe,
    pck,
    procrustes_align,
    procrustes_params,
    reprojection_error_px,
)
from .rotations import (
    axis_angle_to_quaternion,
    axis_angle_to_rotmat,
    quaternion_to_axis_angle,
    quaternion_to_rotmat,
    rot6d_to_rotmat,
    rotmat_geodesic_angle,
    rotmat_to_axis_angle,
    rotmat_to_quaternion,
    rotmat_to_rot6d,
    skew,
)

__all__ = [
    # rotations
    "axis_angle_to_rotmat",
    "rotmat_to_axis_angle",
    "rot6d_to_rotmat",
    "rotmat_to_rot6d",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "quaternion_to_rotmat",
    "rotmat_to_quaternion",
    "rotmat_geodesic_angle",
    "skew",
    # cameras
    "weak_perspective_project",
    "weak_to_perspective_translation",
    "perspective_translation_to_weak",
    "perspective_project",
    "crop_norm_to_image",
    "image_to_crop_norm",
    "crop_cam_to_full_image_translation",
    # crops
    "bbox_to_center_scale",
    "image_to_crop",
    "crop_to_image",
    "crop_px_to_norm",
    "norm_to_crop_px",
    # metrics
    "procrustes_params",
    "procrustes_align",
    "mpjpe",
    "pa_mpjpe",
    "pck",
    "reprojection_error_px",
]
