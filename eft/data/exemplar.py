"""The exemplar: one person to fit, as every dataset reader produces it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Exemplar:
    """One annotated person.

    Attributes:
        id: stable, unique id within its source (e.g. ``"coco2014/train/123456"``).
        image_path: image file, or None when there is no image (synthetic data).
        center: (2,) bbox centre in image pixels.
        scale: bbox side / 200 px (SPIN's convention: side = 1.2 * max(w, h)).
        keypoints: (49, 3) SPIN-49 keypoints in image pixels, third column the
            confidence in [0, 1] (0 = missing).
        source: the keypoint source format, e.g. ``"coco17"``, ``"mpii16"``, ``"synthetic"``.
        image_size: (W, H) in pixels when known.
        meta: anything else worth carrying (annotation id, image id, ...).
    """

    id: str
    image_path: str | None
    center: np.ndarray
    scale: float
    keypoints: np.ndarray
    source: str
    image_size: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if np.shape(self.center) != (2,):
            raise ValueError(
                f"exemplar {self.id}: center must be (2,), got {np.shape(self.center)}")
        if np.shape(self.keypoints) != (49, 3):
            raise ValueError(
                f"exemplar {self.id}: keypoints must be (49, 3), got {np.shape(self.keypoints)}")
        if not self.scale > 0:
            raise ValueError(f"exemplar {self.id}: scale must be > 0, got {self.scale}")


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth that only synthetic exemplars carry (camera frame, metres).

    Attributes:
        pose: (72,) SMPL axis-angle; joint 0 is the global orientation in the camera frame.
        betas: (10,) shape coefficients of the body model that generated it.
        joints3d: (24, 3) skeleton joints in the camera frame.
        keypoints3d: (49, 3) SPIN-49 keypoints in the camera frame.
        transl: (3,) translation added to the posed body to place it in the camera frame.
        focal: focal length in pixels; principal point at ``principal_point``.
        principal_point: (2,) pixels.
    """

    pose: np.ndarray
    betas: np.ndarray
    joints3d: np.ndarray
    keypoints3d: np.ndarray
    transl: np.ndarray
    focal: float
    principal_point: np.ndarray
