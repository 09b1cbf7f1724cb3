"""Dataset readers: annotation files -> :class:`~eft.data.exemplar.Exemplar` s.

Every reader returns a :class:`ReadResult` (the exemplars, in a stable order with
stable ids, plus every skipped person and the reason).
"""

from .base import ReaderError, ReadResult, Skipped, box_center_scale, count_gt_keypoints
from .coco import read_coco

__all__ = ["ReaderError", "ReadResult", "Skipped", "box_center_scale",
           "count_gt_keypoints", "read_coco"]
