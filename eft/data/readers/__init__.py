"""Dataset readers: annotation files -> :class:`~eft.data.exemplar.Exemplar` s.

Every reader returns a :class:`ReadResult` (the exemplars, in a stable order with
stable ids, plus every skipped person and the reason), takes ``(path, image_root=None,
*, dataset=..., min_keypoints=6, ...)`` and maps keypoints by joint name into SPIN-49.
:func:`read_dataset` picks one by kind (:data:`READERS`), as ``eft fit`` configs do.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from .base import (
    ReaderError,
    ReadResult,
    Skipped,
    box_center_scale,
    cached_image_size,
    count_gt_keypoints,
    keypoint_box_center_scale,
    keypoint_skip_reason,
    keypoint_skip_reasons,
    left_right_swap_warning,
)
from .coco import read_coco
from .generic import read_generic
from .humandata import read_humandata_keypoints
from .lsp import read_lsp
from .mpii import read_mpii
from .openpose import read_openpose
from .posetrack import read_posetrack

log = logging.getLogger("eft.data")

__all__ = ["ReaderError", "ReadResult", "Skipped", "box_center_scale",
           "keypoint_box_center_scale", "keypoint_skip_reason", "keypoint_skip_reasons",
           "count_gt_keypoints",
           "read_coco", "read_mpii", "read_lsp", "read_posetrack", "read_openpose",
           "read_generic", "read_humandata_keypoints", "left_right_swap_warning", "READERS",
           "read_dataset", "fill_image_sizes"]

# kind -> reader.  CrowdPose (like AI Challenger, mmpose's H36M and MPI-INF-3DHP files)
# is COCO's layout: read_coco reads it, by the category's keypoint names.
READERS: dict[str, Callable[..., ReadResult]] = {
    "coco": read_coco,
    "crowdpose": partial(read_coco, dataset="crowdpose"),
    "mpii": read_mpii,
    "lsp": partial(read_lsp, variant="lsp"),
    "lspet": partial(read_lsp, variant="lspet"),
    "posetrack": read_posetrack,
    "openpose": read_openpose,
    "generic": read_generic,
    "humandata": read_humandata_keypoints,
}


def fill_image_sizes(result: ReadResult) -> int:
    """Give every exemplar of ``result`` that has no ``image_size`` but an image file on
    disk the size in that file's header (each image opened once), in place: the image
    camera of :mod:`eft.fitting.perspective` needs it, and readers whose annotation
    files carry no size (MPII, LSP, OpenPose, HumanData) leave it out.  Returns how many
    exemplars were given one."""
    cache: dict[Path, tuple[int, int] | None] = {}
    filled = 0
    for i, e in enumerate(result.exemplars):
        if e.image_size is not None or not e.image_path:
            continue
        size = cached_image_size(e.image_path, cache)
        if size is not None:
            result.exemplars[i] = dataclasses.replace(e, image_size=size)
            filled += 1
    return filled


def read_dataset(kind: str, path: str | os.PathLike,
                 image_root: str | os.PathLike | None = None, **options) -> ReadResult:
    """Read one dataset with the reader of ``kind`` (a key of :data:`READERS`).

    ``options`` are that reader's keyword arguments (``dataset``, ``min_keypoints``, ...);
    an unknown kind or option is a :class:`ReaderError` naming the valid ones.
    """
    reader = READERS.get(str(kind).lower())
    if reader is None:
        raise ReaderError(f"unknown dataset kind {kind!r}; known kinds: "
                          f"{', '.join(sorted(READERS))}")
    sig = inspect.signature(reader)
    try:
        sig.bind(path, image_root, **options)
    except TypeError:
        names = [p for p in sig.parameters if p not in ("path", "image_root")]
        unknown = sorted(set(options) - set(names))
        raise ReaderError(f"dataset kind {kind!r}: unknown option(s) {unknown}; "
                          f"valid: {', '.join(names)}") from None
    result = reader(path, image_root, **options)
    fill_image_sizes(result)
    if result.exemplars:
        label = f"{kind} dataset {options.get('dataset') or Path(path).name}"
        doubt = left_right_swap_warning(np.stack([e.keypoints for e in result.exemplars]),
                                        label=label)
        if doubt is not None:
            log.warning("%s", doubt)
            result.warnings.append(doubt)
    return result
