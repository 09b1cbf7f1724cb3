"""EFT JSON: the layout of EFT's released fits (``ver``, ``meta``, ``data[]``), plus our
per-fit extras (``fitId``, ``quality``, ``fit_keypoint_3d``, ``exemplar``) and per-file
extras (``format``, ``schema_version``, ``provenance``, ``missing``).  Readers written
for EFT's downloads ignore the extras; this reader reads both.

Float32 values are written with 9 significant digits (enough to get the same float32
back), float64 values (box, 2D keypoints, quality) exactly.  NaN is written as ``null``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._io import (
    FileHeader,
    atomic_path,
    check_schema_version,
    fsync_file,
    gc_paused,
    provenance_from_json,
    reading,
)
from .columns import (
    QUALITY_BOOL,
    QUALITY_FLOAT,
    QUALITY_INT,
    Columns,
    _object_array,
    meta_rest,
    openpose18_validity,
    rotmat_to_aa,
    unknown_quality,
    weak_to_cam_t,
)
from .errors import AnnotationError
from .provenance import Provenance
from .record import FORMAT_NAME, MALFORMED_QUALITY, SCHEMA_VERSION

__all__ = ["write_eft_json", "read_eft_json", "EFT_JSON_VERSION", "short_float32"]

#: The ``ver`` EFT's released files carry; kept so their readers accept ours.
EFT_JSON_VERSION = 0.1
_ROWS = 256  # rows serialised per write (bounds the memory of the Python lists)
_SHOWN_IDS = 5  # fit ids named in the malformed-quality warning

log = logging.getLogger("eft.annotations")


def short_float32(values: np.ndarray) -> np.ndarray:
    """float64 copy of float32 ``values`` rounded to 9 significant digits: it prints
    short and converts back to the same float32."""
    x = np.asarray(values, np.float32).astype(np.float64)
    out = x.copy()
    ax = np.abs(x)
    ok = np.isfinite(x) & (ax > 0)
    if not ok.any():
        return out
    k = 8 - np.floor(np.log10(ax[ok])).astype(np.int64)
    v = x[ok]
    pos = k >= 0
    res = np.empty_like(v)
    p10 = 10.0 ** np.abs(k)
    res[pos] = np.rint(v[pos] * p10[pos]) / p10[pos]
    res[~pos] = np.rint(v[~pos] / p10[~pos]) * p10[~pos]
    out[ok] = res
    return out


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _lists(arr: np.ndarray) -> list:
    """Row lists of ``arr``; rows with non-finite numbers get ``None`` there."""
    rows = arr.tolist()
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        for i in np.flatnonzero(bad):
            rows[i] = _nan_to_none(rows[i])
    return rows


_META_KEYS = ("annotId", "imageName", "subjectId")


def _person_dicts(c: Columns, lo: int, hi: int, missing: frozenset[str]) -> list[dict]:
    part = c.take(slice(lo, hi))
    n = len(part)
    pose = _lists(short_float32(part.rotmat))
    shape = _lists(short_float32(part.betas))
    cam = _lists(short_float32(part.cam_weak))
    kp3d = _lists(short_float32(part.keypoints3d))
    center = _lists(part.center)
    kp2d = _lists(part.keypoints2d)
    validity = openpose18_validity(part.keypoints2d).tolist()
    names = part.image_names()
    annot = part.annot_ids().tolist()
    q = part.quality
    qcols = {k: q[k].tolist() for k in QUALITY_FLOAT + QUALITY_INT + QUALITY_BOOL}
    out = []
    for i in range(n):
        meta = part.meta[i] if isinstance(part.meta[i], dict) else {}
        person: dict[str, Any] = {
            "parm_pose": pose[i],
            "parm_shape": shape[i],
            "parm_cam": cam[i],
            "bbox_scale": _nan_to_none(float(part.scale[i])),
            "bbox_center": center[i],
            "gt_keypoint_2d": kp2d[i],
            "joint_validity_openpose18": validity[i],
            "smpltype": "smpl",
            "annotId": annot[i] if annot[i] >= 0 else None,
            "imageName": names[i],
        }
        if meta.get("subjectId") is not None:
            person["subjectId"] = meta["subjectId"]
        person["fitId"] = str(part.fit_id[i])
        if "quality" not in missing:
            quality = {k: _nan_to_none(v[i]) for k, v in qcols.items()}
            quality["flags"] = list(q["flags"][i])
            person["quality"] = quality
        if "keypoints3d" not in missing:
            person["fit_keypoint_3d"] = kp3d[i]
        size = part.image_size[i]
        person["exemplar"] = {
            "source": str(part.source[i]),
            "imagePath": part.image_path[i],
            "imageSize": None if size[0] < 0 else [int(size[0]), int(size[1])],
            "meta": meta_rest(meta, annot[i], _META_KEYS),
        }
        out.append(person)
    return out


def _dataset_name(c: Columns, provenance: Provenance) -> str:
    if provenance.dataset:
        return str(provenance.dataset)
    names = {m.get("dataset") for m in c.meta if isinstance(m, dict)} - {None}
    return str(names.pop()) if len(names) == 1 else ""


def write_eft_json(columns: Columns, provenance: Provenance, path: str | os.PathLike,
                   missing: frozenset[str] = frozenset()) -> Path:
    """Write ``columns`` as EFT JSON (atomically), streaming ``_ROWS`` people at a time."""
    header = {
        "ver": EFT_JSON_VERSION,
        "meta": {"dbname": _dataset_name(columns, provenance),
                 "rawname": str(provenance.extra.get("rawname", ""))},
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "provenance": provenance.to_dict(),
        "missing": sorted(missing),
    }
    dump = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                            default=_default).encode
    with atomic_path(path) as tmp, gc_paused():
        with open(tmp, "w", encoding="utf-8") as fh:
            text = dump(header)
            fh.write(text[:-1] + ',"data":[\n')
            for lo in range(0, len(columns), _ROWS):
                people = _person_dicts(columns, lo, min(lo + _ROWS, len(columns)), missing)
                if lo:
                    fh.write(",\n")
                fh.write(",\n".join(dump(p) for p in people))
            fh.write("\n]}\n")
        fsync_file(tmp)
    return Path(path)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return _nan_to_none(obj.item())
    if isinstance(obj, np.ndarray):
        return _nan_to_none(obj.tolist())
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _none_to_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, list):
        return [_none_to_nan(v) for v in value]
    return value


def _field(people: list, key: str, shape: tuple[int, ...], dtype, path, offset: int = 0,
           default: Any = ...) -> np.ndarray:
    """Stack ``person[key]`` of every person as (N, *shape); one-line error naming the
    first bad person (``offset`` = index of ``people[0]`` in the file)."""
    values = []
    for i, p in enumerate(people):
        if key in p and p[key] is not None:
            values.append(p[key])
        elif default is not ...:
            values.append(default)
        else:
            raise AnnotationError(f"{path}: person {offset + i} has no '{key}'")
    try:
        arr = np.asarray(values, dtype=dtype)
        ok = arr.shape == (len(people), *shape)
    except (ValueError, TypeError):
        ok = False
    if not ok:
        for i, v in enumerate(values):
            try:
                a = np.asarray(_none_to_nan(v), dtype=dtype)
            except (ValueError, TypeError):
                a = None
            if a is None or a.shape != shape:
                got = "not numeric" if a is None else f"shape {a.shape}"
                raise AnnotationError(f"{path}: person {offset + i}: '{key}' must have shape "
                                      f"{shape}, got {got}")
        arr = np.asarray([_none_to_nan(v) for v in values], dtype=dtype)
    return arr


_DATA_OPEN = ',"data":['
_READ_ROWS = 1024


def _people_in_lines(fh, path) -> Iterator[dict] | None:
    """People of a file in our layout (header line, one person per line), read lazily;
    None when the file is laid out otherwise."""
    pos = fh.tell()
    first = fh.readline()
    if not (first.startswith("{") and first.rstrip("\n").endswith(_DATA_OPEN)):
        fh.seek(pos)
        return None

    def people() -> Iterator[dict]:
        for line in fh:
            line = line.strip()
            if line in ("]}", ""):
                continue
            yield json.loads(line[:-1] if line.endswith(",") else line)

    return people()


def _load(fh, path) -> tuple[dict, Iterable[dict]]:
    """``(top-level object without data, people)``: streamed line by line for files in
    our layout (bounded memory), else one ``json.load``."""
    pos = fh.tell()
    first = fh.readline()
    fh.seek(pos)
    if first.startswith("{") and first.rstrip("\n").endswith(_DATA_OPEN):
        header = json.loads(first.rstrip("\n")[: -len(_DATA_OPEN)] + "}")
        people = _people_in_lines(fh, path)
        if isinstance(header, dict) and people is not None:
            return header, people
        fh.seek(pos)
    doc = json.load(fh)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise AnnotationError(f"{path}: not an EFT JSON file (no 'data' list)")
    people = doc.pop("data")
    return doc, people


def _chunks(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_eft_json(path: str | os.PathLike) -> tuple[FileHeader, Columns]:
    """Read an EFT JSON file: ours or one of EFT's released files.  Files in our layout
    are parsed ``_READ_ROWS`` people at a time."""
    path = Path(path)
    with gc_paused(), reading(path, "EFT JSON"), open(path, encoding="utf-8") as fh:
        doc, people = _load(fh, path)
        ours = doc.get("format") == FORMAT_NAME or "schema_version" in doc
        version = check_schema_version(doc.get("schema_version"), path) if ours else None
        provenance = (provenance_from_json(doc.get("provenance"), path) if ours
                      else Provenance.unknown("EFT release file (no provenance)"))
        meta = doc.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        dbname = str(meta.get("dbname") or "")
        missing = set(doc.get("missing") or []) if ours else {"provenance", "exemplar_meta"}
        parts, offset = [], 0
        malformed: list[str] = []
        for chunk in _chunks(people, _READ_ROWS):
            parts.append(_parse_people(chunk, offset, path, provenance, dbname, missing,
                                       malformed))
            offset += len(chunk)
    columns = Columns.concat(parts)  # ids as the file gives them: never renumbered
    if malformed:
        shown = ", ".join(repr(f) for f in malformed[:_SHOWN_IDS])
        log.warning("%s: malformed 'quality' (a value of the wrong type) in %d fit(s), "
                    "read as unknown, not accepted, flagged %r: %s%s", path,
                    len(malformed), MALFORMED_QUALITY, shown,
                    " ..." if len(malformed) > _SHOWN_IDS else "")
    header = FileHeader(provenance=provenance, missing=frozenset(missing),
                        schema_version=version, count=len(columns), format="eft-json")
    return header, columns


def _parse_people(people: list, offset: int, path: Path, provenance: Provenance, dbname: str,
                  missing: set[str], malformed: list[str] | None = None) -> Columns:
    """Columns of one chunk of people; adds to ``missing`` what some of them lack, and to
    ``malformed`` the fit ids whose ``quality`` is there but unreadable."""
    for i, p in enumerate(people):
        if not isinstance(p, dict):
            raise AnnotationError(f"{path}: person {offset + i} is not an object")
    n = len(people)
    rotmat = _field(people, "parm_pose", (24, 3, 3), np.float32, path, offset)
    betas = _field(people, "parm_shape", (10,), np.float32, path, offset)
    cam = _field(people, "parm_cam", (3,), np.float32, path, offset)
    scale = _field(people, "bbox_scale", (), np.float64, path, offset)
    center = _field(people, "bbox_center", (2,), np.float64, path, offset)
    kp2d = _field(people, "gt_keypoint_2d", (49, 3), np.float64, path, offset)
    nan3d = np.full((49, 3), np.nan).tolist()
    if not all("fit_keypoint_3d" in p for p in people):
        missing.add("keypoints3d")
    kp3d = _field(people, "fit_keypoint_3d", (49, 3), np.float32, path, offset,
                  default=nan3d)
    quality = unknown_quality(kp2d, betas)
    with_q, known, bad = [], [], []
    for i, p in enumerate(people):
        if p.get("quality") is None:
            continue
        row = _quality_row(p["quality"])
        if row is None:
            bad.append(i)
        else:
            with_q.append(i)
            known.append(row)
    if len(with_q) + len(bad) < n:
        missing.add("quality")  # rows without any quality keep unknown_quality
    for k in quality:
        for i, row in zip(with_q, known, strict=True):
            quality[k][i] = row[k]
    for i in bad:  # unknown measures (NaN, recomputed |beta| and keypoint count), rejected
        quality["accepted"][i] = False
        quality["flags"][i] = (MALFORMED_QUALITY,)
    ids, sources, paths, sizes, metas = [], [], [], [], []
    bad_rows = set(bad)
    for i, p in enumerate(people):
        ex = p.get("exemplar") if isinstance(p.get("exemplar"), dict) else {}
        meta = dict(ex.get("meta") or {})
        for key in ("annotId", "imageName", "subjectId"):
            if p.get(key) is not None:
                meta[key] = p[key]
        if dbname and "dataset" not in meta:
            meta["dataset"] = dbname
        fid = p.get("fitId")
        if fid is None:
            fid = f"{dbname or 'eft'}/{p['annotId']}" if p.get("annotId") is not None else (
                f"{dbname or 'eft'}/{offset + i}")
        ids.append(str(fid))
        if malformed is not None and i in bad_rows:
            malformed.append(str(fid))
        sources.append(str(ex.get("source") or "spin49"))
        paths.append(ex.get("imagePath") or p.get("imageName"))
        size = ex.get("imageSize")
        sizes.append(size if isinstance(size, list) and len(size) == 2 else [-1, -1])
        metas.append(meta)
    return Columns(
        fit_id=_object_array(ids), rotmat=rotmat, pose_aa=rotmat_to_aa(rotmat), betas=betas,
        cam_weak=cam, cam_t=weak_to_cam_t(cam, provenance.focal_length, provenance.img_res),
        keypoints3d=kp3d, center=center, scale=scale, keypoints2d=kp2d, quality=quality,
        image_path=_object_array(paths), source=_object_array(sources),
        image_size=np.asarray(sizes, np.int64).reshape(n, 2), meta=_object_array(metas))


def _quality_row(d: Any) -> dict[str, Any] | None:
    """One person's quality record as column values, or None when it is malformed (not
    an object, or a value of the wrong type): that person's quality is then unknown and
    flagged :data:`~eft.annotations.record.MALFORMED_QUALITY`, the others' is kept."""
    if not isinstance(d, dict):
        return None
    row: dict[str, Any] = {}
    try:
        for k in QUALITY_FLOAT:
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                return None
            row[k] = math.nan if v is None else float(v)
        for k in QUALITY_INT:
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or not -2 ** 63 <= v < 2 ** 63):
                return None
            row[k] = int(v or 0)
        for k in QUALITY_BOOL:
            v = d.get(k)
            if v is not None and not isinstance(v, bool):
                return None
            row[k] = bool(v)
        flags = d.get("flags") or ()
        if isinstance(flags, str) or not isinstance(flags, (list, tuple)):
            return None
        row["flags"] = tuple(str(f) for f in flags)
    except (TypeError, ValueError, OverflowError):
        return None
    return row
