"""mmhuman3d's keypoint conventions, by name: its 190-keypoint ``human_data`` and the
144-keypoint ``smplx`` of its 2021 files, and how their keypoints land in SPIN-49
(mmhuman3d's own ``smpl_49`` names); plus :func:`read_humandata_keypoints`, which reads
the people of a HumanData npz (keypoints, boxes, image paths) as exemplars to fit.

Keypoints are always placed by name: a keypoint the file lacks (mask 0, or a name the
convention does not have) stays unannotated, never borrowed by position.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from eft.data.exemplar import Exemplar

from .base import (
    ReaderError,
    ReadResult,
    Skipped,
    box_center_scale,
    box_problems,
    keypoint_box_center_scale,
    keypoint_skip_reasons,
)

__all__ = ["HUMAN_DATA_NAMES", "SMPLX_144_NAMES", "SPIN49_HUMAN_DATA", "SPIN49_TO_HUMAN_DATA",
           "mask_of", "convention_names", "keypoints_to_spin49", "read_humandata_keypoints"]


def _numbered(prefix: str, numbers) -> list[str]:
    return [f"{prefix}_{i}" for i in numbers]


def _hand(side: str) -> list[str]:
    return [n for finger in ("index", "middle", "pinky", "ring", "thumb")
            for n in _numbered(f"{side}_{finger}", (1, 2, 3))]


_OPENPOSE = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
             "left_elbow", "left_wrist", "pelvis", "right_hip", "right_knee", "right_ankle",
             "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear",
             "left_ear", "left_bigtoe", "left_smalltoe", "left_heel", "right_bigtoe",
             "right_smalltoe", "right_heel"]

#: mmhuman3d's ``HUMAN_DATA`` keypoint convention (190 names, in order).
HUMAN_DATA_NAMES: tuple[str, ...] = tuple(
    ["pelvis", "left_hip", "right_hip", "spine_1", "left_knee", "right_knee", "spine_2",
     "left_ankle", "right_ankle", "spine_3", "left_foot", "right_foot", "neck",
     "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow",
     "right_elbow", "left_wrist", "right_wrist", "jaw", "left_eyeball", "right_eyeball"]
    + _hand("left") + _hand("right")
    + ["nose", "right_eye", "left_eye", "right_ear", "left_ear", "left_bigtoe",
       "left_smalltoe", "left_heel", "right_bigtoe", "right_smalltoe", "right_heel"]
    + [f"{s}_{f}" for s in ("left", "right")
       for f in ("thumb", "index", "middle", "ring", "pinky")]
    + _numbered("right_eyebrow", range(1, 6)) + _numbered("left_eyebrow", range(5, 0, -1))
    + _numbered("nosebridge", range(1, 5))
    + ["right_nose_2", "right_nose_1", "nose_middle", "left_nose_1", "left_nose_2"]
    + _numbered("right_eye", range(1, 7)) + _numbered("left_eye", (4, 3, 2, 1, 6, 5))
    + ["right_mouth_1", "right_mouth_2", "right_mouth_3", "mouth_top", "left_mouth_3",
       "left_mouth_2", "left_mouth_1", "left_mouth_5", "left_mouth_4", "mouth_bottom",
       "right_mouth_4", "right_mouth_5"]
    + ["right_lip_1", "right_lip_2", "lip_top", "left_lip_2", "left_lip_1", "left_lip_3",
       "lip_bottom", "right_lip_3"]
    + _numbered("right_contour", range(1, 9)) + ["contour_middle"]
    + _numbered("left_contour", range(8, 0, -1))
    + ["right_hip_extra", "left_hip_extra", "neck_extra", "headtop", "pelvis_extra",
       "thorax_extra", "spine_extra", "jaw_extra", "head_extra"]
    + [f"{n}_openpose" for n in _OPENPOSE]
    + ["spine_4_3dhp", "left_clavicle_3dhp", "right_clavicle_3dhp", "left_hand_3dhp",
       "right_hand_3dhp", "left_toe_3dhp", "right_toe_3dhp", "head_h36m", "headtop_h36m",
       "head_bottom_pt", "left_hand", "right_hand"]
)
assert len(HUMAN_DATA_NAMES) == 190 and len(set(HUMAN_DATA_NAMES)) == 190

#: mmhuman3d's ``smplx`` keypoint convention (144 names): the first 144 of HUMAN_DATA.
#: Its 2021 files store ``keypoints2d`` in it.
SMPLX_144_NAMES: tuple[str, ...] = HUMAN_DATA_NAMES[:144]
#: Conventions by their keypoint count, for files that do not name theirs.
_CONVENTIONS = {190: HUMAN_DATA_NAMES, 144: SMPLX_144_NAMES}
#: Where a convention lacks the name of a SPIN-49 slot, the name that stands in for it
#: (the dataset hips/neck/head of ``human_data`` are plain SMPL-X joints in ``smplx``).
_STAND_INS = {"right_hip_extra": "right_hip", "left_hip_extra": "left_hip",
              "neck_extra": "neck"}

#: mmhuman3d's name of each SPIN-49 slot (its ``smpl_49`` convention), in SPIN-49 order.
SPIN49_HUMAN_DATA: tuple[str, ...] = tuple(
    [f"{n}_openpose" for n in _OPENPOSE]
    + ["right_ankle", "right_knee", "right_hip_extra", "left_hip_extra", "left_knee",
       "left_ankle", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
       "left_elbow", "left_wrist", "neck_extra", "headtop", "pelvis_extra", "thorax_extra",
       "spine_extra", "jaw_extra", "head_extra", "nose", "left_eye", "right_eye",
       "left_ear", "right_ear"])
#: (49,) index of each SPIN-49 slot in the 190 HUMAN_DATA keypoints.
SPIN49_TO_HUMAN_DATA: np.ndarray = np.array(
    [HUMAN_DATA_NAMES.index(n) for n in SPIN49_HUMAN_DATA], np.int64)
def mask_of(data: Mapping, key: str) -> np.ndarray | None:
    """The (K_full,) keypoint mask of ``key``: ``<key>_mask``, else 2021's ``mask``."""
    for name in (f"{key}_mask", "mask"):
        m = data.get(name)
        if m is not None:
            m = np.asarray(m).reshape(-1)
            if name == "mask" and m.size not in _CONVENTIONS:
                continue
            return m.astype(bool)
    return None


def convention_names(data: Mapping, key: str, k: int) -> tuple[str, ...]:
    """Keypoint names of a HumanData keypoint array with ``k`` stored keypoints: from
    ``<key>_convention`` or the mask's / the array's length (190 ``human_data``, 144
    ``smplx``).  Stored (compressed) arrays hold the masked names only."""
    conv = data.get(f"{key}_convention")
    mask = mask_of(data, key)
    full_len = mask.size if mask is not None else k
    if conv is not None and str(conv) in ("human_data", "smplx"):
        full = HUMAN_DATA_NAMES if str(conv) == "human_data" else SMPLX_144_NAMES
    elif full_len in _CONVENTIONS:
        full = _CONVENTIONS[full_len]
    else:
        raise ValueError(f"'{key}' has {k} keypoints in an unknown convention "
                         f"({str(conv) if conv is not None else 'none named'}); "
                         "known: human_data (190), smplx (144)")
    if k == len(full):
        return full
    if mask is None or mask.size != len(full) or int(mask.sum()) != k:
        raise ValueError(f"compressed '{key}' ({k} keypoints) without a matching mask")
    return tuple(n for n, m in zip(full, mask, strict=True) if m)


def keypoints_to_spin49(raw: np.ndarray, names: Sequence[str],
                        present: np.ndarray | None = None) -> np.ndarray:
    """(N, 49, D) SPIN-49 slots of keypoints ``raw`` (N, K, D) named ``names`` (mmhuman3d
    names), mapped by name; slots without a keypoint get zeros.  ``present``: (K,) bool,
    which of the K are real (a 190-long mask)."""
    index = {n: j for j, n in enumerate(names)}
    ok = np.ones(len(names), bool) if present is None else np.asarray(present, bool)
    out = np.zeros((raw.shape[0], 49, raw.shape[2]))
    for slot, name in enumerate(SPIN49_HUMAN_DATA):
        j = index.get(name)
        if (j is None or not ok[j]) and name in _STAND_INS:
            j = index.get(_STAND_INS[name])
        if j is not None and ok[j]:
            out[:, slot] = raw[:, j]
    return out


def read_humandata_keypoints(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    dataset: str = "humandata",
    min_keypoints: int = 6,
    rescale: float = 1.2,
) -> ReadResult:
    """The people of an mmhuman3d HumanData npz, to fit: ``keypoints2d`` (any
    convention, mapped by name), ``bbox_xywh`` (the crop; else the keypoints' box) and
    ``image_path`` (relative to ``image_root``, default the file's folder).  Only plain
    arrays are read (never the pickled ``smpl`` / ``meta`` dicts).  Ids
    ``"<dataset>/<row>"``.  A person whose box is unusable (non-finite, a side <= 0) is
    cropped around its keypoints; one whose box or crop is absurd (beyond
    :data:`~eft.data.readers.base.MAX_ABS_KEYPOINT_PX`) is skipped as ``bad_bbox``.  A
    file that is not a readable npz (truncated, not a zip) or whose arrays have the wrong
    shape or type is a :class:`ReaderError`.

    Args:
        path: the ``.npz``.
        image_root: folder the image paths are relative to.
        dataset: id prefix and provenance name.
        min_keypoints: fewest annotated GT keypoints (SPIN-49 slots 25..48) to keep.
        rescale: crop side / longer box side.
    """
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: no such HumanData file")
    root = Path(image_root) if image_root is not None else path.parent
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head.startswith(b"PK") and not head.startswith(b"\x93NUMPY"):
        raise ReaderError(f"{path}: not an npz archive (HumanData is numpy's .npz; this "
                          f"file starts {head!r})")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ReaderError(f"{path}: a single .npy array, not an npz archive of "
                              "HumanData arrays")
        with loaded as z:
            keys = set(z.files)
            data = {k: z[k] for k in ("keypoints2d", "keypoints2d_mask", "mask",
                                      "keypoints2d_convention", "bbox_xywh", "image_path")
                    if k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ReaderError(f"{path}: not a readable npz file ({str(exc) or type(exc).__name__}); "
                          "re-save it with numpy.savez") from None
    if "keypoints2d" not in data:
        raise ReaderError(f"{path}: no 'keypoints2d' (not a HumanData file with 2D "
                          f"keypoints; keys: {sorted(keys)})")
    for k in ("keypoints2d", "bbox_xywh"):
        if k in data:
            try:
                data[k] = np.asarray(data[k], np.float64)
            except (TypeError, ValueError):
                raise ReaderError(f"{path}: '{k}' holds values that are not numbers "
                                  f"(dtype {data[k].dtype})") from None
    raw = data["keypoints2d"]
    if raw.ndim != 3 or raw.shape[2] not in (2, 3):
        raise ReaderError(f"{path}: 'keypoints2d' must be (N, K, 3), got {raw.shape}")
    if raw.shape[2] == 2:
        raw = np.concatenate([raw, np.ones((*raw.shape[:2], 1))], axis=2)
    try:
        names = convention_names(data, "keypoints2d", raw.shape[1])
    except ValueError as exc:
        raise ReaderError(f"{path}: {exc}") from None
    mask = mask_of(data, "keypoints2d")
    present = mask if mask is not None and mask.size == raw.shape[1] else None
    kps49 = keypoints_to_spin49(raw, names, present)
    n = len(kps49)
    if "image_path" in data and np.ndim(data["image_path"]) != 1:
        raise ReaderError(f"{path}: 'image_path' has shape {np.shape(data['image_path'])}, "
                          f"expected ({n},): one path per person")
    images = [str(p) for p in data["image_path"]] if "image_path" in data else [""] * n
    boxes = data.get("bbox_xywh")
    if len(images) != n or (boxes is not None and (boxes.ndim != 2 or len(boxes) != n
                                                   or boxes.shape[1] < 4)):
        raise ReaderError(f"{path}: image_path / bbox_xywh do not have {n} rows")
    reasons = keypoint_skip_reasons(kps49, min_keypoints)
    box_why = box_problems(boxes[:, :4]) if boxes is not None else [None] * n
    out = ReadResult()
    for i in range(n):
        eid = f"{dataset}/{i}"
        reason = reasons[i]
        if reason is not None:
            out.skipped.append(Skipped(eid, *reason))
            continue
        cs = None
        if boxes is not None:
            x, y, w, h = boxes[i, :4]
            usable = bool(np.isfinite(boxes[i, :4]).all() and w > 0 and h > 0)
            why = box_why[i]
            if usable and why is not None:  # finite but absurd: a corrupt box
                out.skipped.append(Skipped(eid, "bad_bbox", why))
                continue
            if usable:
                cs = box_center_scale(x, y, w, h, rescale)
        if cs is None:
            cs = keypoint_box_center_scale(kps49[i], rescale)
        if cs is None:
            out.skipped.append(Skipped(eid, "bad_bbox", "no usable box"))
            continue
        if out.skip_bad_crop(eid, cs[0], cs[1]):
            continue
        name = images[i].replace("\\", "/")
        out.exemplars.append(Exemplar(
            id=eid, image_path=str(root / name) if name else None, center=cs[0],
            scale=cs[1], keypoints=kps49[i], source="humandata",
            meta={"imageName": name, "row": i, "dataset": dataset}))
    return out
