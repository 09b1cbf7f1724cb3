"""Column form of N annotations: one array per field, fits along axis 0.

Every writer turns annotations into :class:`Columns` and every reader produces them;
:meth:`Columns.to_annotations` builds the records as views into the column arrays (no
copy per fit).  Validation, filtering and summaries run on columns, vectorised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from eft.body import joints as J
from eft.data.exemplar import Exemplar
from eft.fitting.records import Fit, FitQuality
from eft.geometry.cameras import FOCAL_LENGTH, weak_to_perspective_translation
from eft.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

from ._io import gc_paused
from .errors import AnnotationError
from .record import Annotation

__all__ = [
    "Columns",
    "QUALITY_FLOAT",
    "QUALITY_INT",
    "QUALITY_BOOL",
    "QUALITY_NUMBERS",
    "QUALITY_FIELDS",
    "rotmat_to_aa",
    "aa_to_rotmat",
    "weak_to_cam_t",
    "openpose18_validity",
    "meta_rest",
]



def _quality_fields(kind: str) -> tuple[str, ...]:
    """The :class:`~eft.fitting.records.FitQuality` fields of one type, in declaration
    order (``kind`` is the annotation as written: ``"float"``, ``"int"``, ``"bool"``)."""
    return tuple(f.name for f in fields(FitQuality)
                 if (f.type if isinstance(f.type, str) else f.type.__name__) == kind)


#: The float, int and bool fields of :class:`~eft.fitting.records.FitQuality` (their
#: columns are float64, int64 and bool arrays).
QUALITY_FLOAT: tuple[str, ...] = _quality_fields("float")
QUALITY_INT: tuple[str, ...] = _quality_fields("int")
QUALITY_BOOL: tuple[str, ...] = _quality_fields("bool")
#: The numeric (float, int, bool) quality fields.
QUALITY_NUMBERS: tuple[str, ...] = QUALITY_FLOAT + QUALITY_INT + QUALITY_BOOL
#: Every :class:`~eft.fitting.records.FitQuality` field, ``flags`` last.
QUALITY_FIELDS: tuple[str, ...] = QUALITY_NUMBERS + ("flags",)
_QUALITY_DTYPE = {**dict.fromkeys(QUALITY_FLOAT, np.float64),
                  **dict.fromkeys(QUALITY_INT, np.int64), **dict.fromkeys(QUALITY_BOOL, bool)}
_QUALITY_PY = {**dict.fromkeys(QUALITY_FLOAT, float), **dict.fromkeys(QUALITY_INT, int),
               **dict.fromkeys(QUALITY_BOOL, bool)}

_CHUNK = 8192  # rows per torch conversion (bounds the float64 temporaries)


def rotmat_to_aa(rotmat: np.ndarray) -> np.ndarray:
    """(N, 24, 3, 3) -> (N, 72) float32 axis-angle (via :mod:`eft.geometry.rotations`)."""
    rotmat = np.asarray(rotmat)
    out = np.empty((rotmat.shape[0], 72), np.float32)
    for i in range(0, rotmat.shape[0], _CHUNK):
        r = torch.from_numpy(np.ascontiguousarray(rotmat[i:i + _CHUNK], np.float64))
        out[i:i + _CHUNK] = rotmat_to_axis_angle(r).reshape(-1, 72).numpy()
    return out


def aa_to_rotmat(aa: np.ndarray) -> np.ndarray:
    """(N, 72) axis-angle -> (N, 24, 3, 3) float32 rotation matrices."""
    aa = np.asarray(aa).reshape(-1, 24, 3)
    out = np.empty((aa.shape[0], 24, 3, 3), np.float32)
    for i in range(0, aa.shape[0], _CHUNK):
        a = torch.from_numpy(np.ascontiguousarray(aa[i:i + _CHUNK], np.float64))
        out[i:i + _CHUNK] = axis_angle_to_rotmat(a).numpy()
    return out


def weak_to_cam_t(cam: np.ndarray, focal: float = FOCAL_LENGTH, img_res: int = 224) -> np.ndarray:
    """(N, 3) ``[s, tx, ty]`` -> (N, 3) ``[tx/s, ty/s, 2 f / (img_res s)]`` float32
    (numpy front of :func:`eft.geometry.cameras.weak_to_perspective_translation`)."""
    t = torch.from_numpy(np.ascontiguousarray(cam, np.float64))
    return weak_to_perspective_translation(t, focal, img_res).numpy().astype(np.float32)


def openpose18_validity(keypoints2d: np.ndarray) -> np.ndarray:
    """(N, 49, 3) -> (N, 18) int: EFT's ``joint_validity_openpose18`` (the GT joint
    carrying each OpenPose-18 joint is annotated: confidence > 0)."""
    gt = np.asarray(keypoints2d)[:, 25:, 2]
    return (gt[:, list(J.OPENPOSE18_FROM_GT24)] > 0).astype(np.int64)


def _object_array(values: Sequence) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


@dataclass
class Columns:
    """N annotations as arrays (shapes below; float32 unless said otherwise).

    Attributes:
        fit_id: (N,) object, str: the fit's (= its exemplar's) id.
        rotmat: (N, 24, 3, 3) joint rotations, global orientation first.
        pose_aa: (N, 72) the same as axis-angle.
        betas: (N, 10).
        cam_weak: (N, 3) ``[s, tx, ty]``.
        cam_t: (N, 3) equivalent perspective translation.
        keypoints3d: (N, 49, 3) fitted SPIN-49 keypoints, metres (NaN when unknown).
        center: (N, 2) float64 bbox centre, image px.
        scale: (N,) float64 bbox side / 200.
        keypoints2d: (N, 49, 3) float64 annotated SPIN-49 keypoints, image px + conf.
        quality: :data:`QUALITY_FIELDS` -> (N,) arrays (float64, int64, bool; ``flags``
            object array of str tuples).
        image_path: (N,) object, str or None.
        source: (N,) object, str (keypoint source format, e.g. ``"coco17"``).
        image_size: (N, 2) int64 ``(W, H)``, -1 when unknown.
        meta: (N,) object, dict (``annotId``, ``imageName``, ``dataset``, ...).
    """

    fit_id: np.ndarray
    rotmat: np.ndarray
    pose_aa: np.ndarray
    betas: np.ndarray
    cam_weak: np.ndarray
    cam_t: np.ndarray
    keypoints3d: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    keypoints2d: np.ndarray
    quality: dict[str, np.ndarray]
    image_path: np.ndarray
    source: np.ndarray
    image_size: np.ndarray
    meta: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    def __len__(self) -> int:
        return int(self.fit_id.shape[0])

    # -- building -----------------------------------------------------------------------

    @classmethod
    def empty(cls) -> Columns:
        return cls.from_annotations([])

    @classmethod
    def from_annotations(cls, annotations: Sequence) -> Columns:
        """Stack :class:`~eft.annotations.Annotation` s (``.fit``, ``.exemplar``)."""
        return cls.from_fits([a.fit for a in annotations],
                             [a.exemplar for a in annotations])

    @classmethod
    def from_fits(cls, fits: Sequence[Fit], exemplars: Sequence[Exemplar]) -> Columns:
        """Stack fits and the exemplars they were fitted to (same order, same ids: the
        exemplar gives ``keypoints2d``, ``image_path``, ``source``, ``image_size`` and
        ``meta``; the fit everything else, ``center`` and ``scale`` included)."""
        n = len(fits)
        if len(exemplars) != n:
            raise AnnotationError(f"{n} fits but {len(exemplars)} exemplars")
        exs = exemplars

        def stack(values, shape, dtype):
            if n == 0:
                return np.zeros((0, *shape), dtype)
            try:
                out = np.stack([np.asarray(v, dtype) for v in values])
            except ValueError as exc:
                raise AnnotationError(f"fits have inconsistent shapes: {exc}") from None
            if out.shape[1:] != shape:
                raise AnnotationError(f"expected per-fit shape {shape}, got {out.shape[1:]}")
            return out

        qs = [f.quality for f in fits]
        quality: dict[str, np.ndarray] = {
            name: np.array([getattr(q, name) for q in qs], dtype)
            for name, dtype in _QUALITY_DTYPE.items()}
        quality["flags"] = _object_array([tuple(q.flags) for q in qs])
        sizes = np.array([e.image_size if e.image_size is not None else (-1, -1)
                          for e in exs], np.int64).reshape(n, 2)
        return cls(
            fit_id=_object_array([str(f.exemplar_id) for f in fits]),
            rotmat=stack((f.rotmat for f in fits), (24, 3, 3), np.float32),
            pose_aa=stack((np.reshape(f.pose_aa, 72) for f in fits), (72,), np.float32),
            betas=stack((f.betas for f in fits), (10,), np.float32),
            cam_weak=stack((f.cam_weak for f in fits), (3,), np.float32),
            cam_t=stack((f.cam_t for f in fits), (3,), np.float32),
            keypoints3d=stack((f.keypoints3d for f in fits), (49, 3), np.float32),
            center=stack((f.center for f in fits), (2,), np.float64),
            scale=np.array([f.scale for f in fits], np.float64),
            keypoints2d=stack((e.keypoints for e in exs), (49, 3), np.float64),
            quality=quality,
            image_path=_object_array([e.image_path for e in exs]),
            source=_object_array([str(e.source) for e in exs]),
            image_size=sizes,
            meta=_object_array([dict(e.meta) for e in exs]),
        )

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        parts = list(parts)
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "quality":
                values["quality"] = {k: np.concatenate([p.quality[k] for p in parts])
                                     for k in QUALITY_FIELDS}
            else:
                values[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
        return cls(**values)

    def take(self, index: np.ndarray | slice) -> Columns:
        """The rows ``index`` (bool mask, int indices or slice)."""
        values: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "quality":
                values["quality"] = {k: v[index] for k, v in self.quality.items()}
            else:
                values[f.name] = getattr(self, f.name)[index]
        return type(self)(**values)

    # -- records ------------------------------------------------------------------------

    def to_annotations(self) -> list:
        """:class:`~eft.annotations.Annotation` s whose arrays are views into the columns."""
        with gc_paused():
            return self._to_annotations()

    def quality_at(self, i: int) -> FitQuality:
        """Row ``i``'s :class:`~eft.fitting.records.FitQuality` (Python scalars)."""
        q = self.quality
        return FitQuality(**{k: _QUALITY_PY[k](q[k][i]) for k in QUALITY_NUMBERS},
                          flags=tuple(q["flags"][i]))

    def _to_annotations(self) -> list:
        out = []
        for i in range(len(self)):
            quality = self.quality_at(i)
            fid = str(self.fit_id[i])
            fit = Fit(exemplar_id=fid, rotmat=self.rotmat[i], pose_aa=self.pose_aa[i],
                      betas=self.betas[i], cam_weak=self.cam_weak[i], cam_t=self.cam_t[i],
                      keypoints3d=self.keypoints3d[i], center=self.center[i],
                      scale=float(self.scale[i]), quality=quality)
            size = self.image_size[i]
            try:
                ex = Exemplar(id=fid, image_path=self.image_path[i], center=self.center[i],
                              scale=float(self.scale[i]), keypoints=self.keypoints2d[i],
                              source=str(self.source[i]),
                              image_size=None if size[0] < 0 else (int(size[0]), int(size[1])),
                              meta=dict(self.meta[i]))
            except ValueError as exc:
                raise AnnotationError(f"fit {i} ({fid}): {exc}") from None
            out.append(Annotation(fit=fit, exemplar=ex))
        return out

    # -- derived fields -----------------------------------------------------------------

    def annot_ids(self) -> np.ndarray:
        """(N,) int64 ``meta["annotId"]``, -1 where there is none or it is no integer
        that int64 holds (e.g. a string, or an id of 2**63 or more)."""
        out = np.full(len(self), -1, np.int64)
        for i, m in enumerate(self.meta):
            v = m.get("annotId") if isinstance(m, dict) else None
            if v is not None:
                try:
                    out[i] = int(v)
                except (TypeError, ValueError, OverflowError):
                    pass
        return out

    def image_names(self) -> list[str]:
        """``meta["imageName"]``, else the basename of ``image_path``, else ``""``."""
        names = []
        for m, p in zip(self.meta, self.image_path, strict=True):
            name = m.get("imageName") if isinstance(m, dict) else None
            if not name and p:
                name = str(p).replace("\\", "/").rsplit("/", 1)[-1]
            names.append(str(name) if name else "")
        return names


def meta_rest(meta: Any, annot_id: int, stored: Sequence[str]) -> dict:
    """``meta`` without the keys ``stored`` in fields of their own, for a writer's
    free-form meta record.  An ``annotId`` that the int64 ``annot_id`` field cannot hold
    (``annot_id`` < 0 from :meth:`Columns.annot_ids`: a string, or an int of 2**63 or
    more) stays in the record, so that it is not lost."""
    if not isinstance(meta, dict):
        return {}
    value = meta.get("annotId")
    keep = annot_id < 0 and isinstance(value, (str, int)) and not isinstance(value, bool)
    return {k: v for k, v in meta.items() if k not in stored or (keep and k == "annotId")}


def unknown_quality(keypoints2d: np.ndarray, betas: np.ndarray) -> dict[str, np.ndarray]:
    """Quality columns for a file that has none: NaN losses, 0 iterations, accepted
    (the file's publisher kept them), with what can be recomputed (``max_abs_beta``,
    ``n_valid_keypoints``)."""
    n = keypoints2d.shape[0]
    q: dict[str, np.ndarray] = {k: np.full(n, math.nan) for k in QUALITY_FLOAT}
    with np.errstate(invalid="ignore"):
        q["max_abs_beta"] = np.abs(np.asarray(betas, np.float64)).max(axis=1) if n else (
            np.zeros(0))
    gt = np.asarray(keypoints2d)[:, 25:]
    q["iterations"] = np.zeros(n, np.int64)
    q["n_valid_keypoints"] = ((gt[..., 2] > 0) & np.isfinite(gt[..., :2]).all(-1)).sum(
        axis=1).astype(np.int64)
    q["converged"] = np.zeros(n, bool)
    q["accepted"] = np.ones(n, bool)
    q["flags"] = _object_array([()] * n)
    return q
