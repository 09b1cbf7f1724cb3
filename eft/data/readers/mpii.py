"""MPII Human Pose: the official ``mpii_human_pose_v1_u12_1.mat``, the common JSON form,
the Tompson validation split (``.h5``) and the one-person-per-image CSV.

**JSON form** (HRNet / mmpose ``train.json``, ``valid.json``): a list of people,
``{"image": "005808361.jpg", "center": [x, y], "scale": s, "joints": 16 x [x, y],
"joints_vis": 16 x 0/1}``.  Entries of one image are numbered in file order: id
``"mpii/<image stem>/<k>"``.

**Official .mat** (needs scipy: ``pip install eft[datasets]``): ``RELEASE.annolist(i)``
has ``image.name`` and the people ``annorect(j)`` with the head box ``x1, y1, x2, y2``,
``objpos.x/y``, ``scale`` and ``annopoints.point(k)`` with ``id`` (0..15, MPII order),
``x``, ``y``, ``is_visible``; ``RELEASE.img_train(i)`` is 1 for training images and
``RELEASE.single_person{i}`` lists (1-based) the well separated people.  Id
``"mpii/<image stem>/<j>"``, ``j`` the 0-based ``annorect`` index (so ids from the JSON
form and from the .mat need not agree).

**Tompson validation split** (``.h5``/``.hdf5``, the Stacked Hourglass ``valid.h5``):
arrays ``imgname`` (N,) bytes, ``part`` (N, 16, 2), ``visible`` (N, 16), ``center``
(N, 2), ``scale`` (N,), ``person`` (N,), ``index`` (N,) and ``normalize`` (N,) (PCKh
head size, kept as ``meta["head_size"]``).  ``index`` is the 0-based ``annolist`` index
and ``person`` the 0-based ``annorect`` index of the official .mat, so the id
``"mpii/<image stem>/<person>"`` is the .mat reader's id for the same person.  A joint
is unlabelled when its ``part`` is (0, 0) (coordinates are the official ones truncated
to whole pixels, so a labelled point on the border can have one zero coordinate);
``visible`` is MPII's ``is_visible`` (0 also for labelled but occluded joints), kept in
``meta["is_visible"]``.  ``center`` / ``scale`` are already Stacked Hourglass's
adjusted crop (official ``objpos`` moved down by ``15 * scale`` px, ``scale`` times
1.25), the values SPIN's ``mpii_train.npz`` and EFT use; ``crop="given"`` takes them as
they are.

**CSV form** (``.csv``, one person per image): columns ``ID`` (row number), ``NAME``
(image file), ``<joint>_X``, ``<joint>_Y`` for MPII's 16 joints named ``r ankle`` ...
``l wrist`` (mapped by name; -1, -1 = not labelled; no visibility flag), ``Scale``
(MPII's ``scale``, person height / 200 px), ``Activity``, ``Category``.  It has no
person centre: ``crop="given"`` uses the file's ``Scale`` as it is (as for the .mat)
and, in place of ``objpos``, **the centre of the labelled joints' box**
(``meta["center_from"] = "keypoints"``).  The row is the image's first ``annorect``
(every one of the 1,810 CSV people whose image's person 0 is in the Tompson split
equals that person to the pixel), so the id is ``"mpii/<image stem>/0"``, the .mat
reader's id for the same person; ``meta["csv_id"]`` keeps the ``ID`` column.  Framing
(crop side / longer side of the labelled joints' box, median and 10th percentile): CSV
``given`` 1.38 and 0.96 (one crop in ten is smaller than the joints), Tompson ``given``
1.59 and 1.17, ``crop="keypoints"`` 1.2 for everyone, COCO's box crops 1.47 and 1.30.

All forms are MATLAB 1-based: with ``one_based=True`` (default) one pixel is taken off
the keypoints and the centre, giving 0-based pixel coordinates (pixel centres at
integers, as everywhere in ``eft``); ``one_based=False`` keeps the numbers as written
(SPIN's ``mpii_train.npz`` does, a 1 px shift).

Every annotated joint gets confidence 1, occluded ones too (``is_visible`` /
``joints_vis`` only say whether the point is visible; SPIN and EFT fit all annotated
points); the visibility flags are kept in ``meta["is_visible"]`` for the .mat and .h5
forms.

Crop (``crop``): ``"given"`` (default) uses the file's ``center`` / ``objpos`` and
``scale`` as they are, like SPIN and EFT (MPII's ``scale`` is person height / 200 px,
so the crop side ``200 * scale`` is about the person's height); people without a usable
centre/scale fall back to the keypoint box (``meta["crop_from"] = "keypoints"``).
``"keypoints"`` always uses the box of the annotated keypoints times ``rescale``.

Skipped, with a reason: ``no_keypoints``, ``too_few_keypoints`` (< ``min_keypoints``,
counted over SPIN-49's GT slots), ``bad_keypoints`` (NaN, absurd or all at one point),
``bad_bbox`` (no usable crop, or an absurd one: a given centre or crop side ``200 *
scale`` beyond :data:`~eft.data.readers.base.MAX_ABS_KEYPOINT_PX`, or a side under 1 px),
``bad_annotation`` (malformed entry, e.g. an h5 ``person`` / ``index`` that is not a
whole number), ``held_out`` (image listed in ``exclude_images``).  A file that cannot be
read as a whole (not UTF-8, a CSV ``_X`` column without its ``_Y``, an h5 array that is
a group or not numbers) is a :class:`ReaderError`.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from eft.body import joints as J
from eft.data.exemplar import Exemplar

from . import _matlab as M
from .base import (
    ReaderError,
    ReadResult,
    Skipped,
    keypoint_box_center_scale,
    keypoint_skip_reasons,
)

__all__ = ["read_mpii"]

_FMT = "mpii16"
_NJ = 16
_CROPS = ("given", "keypoints")
_SPLITS = ("train", "test", "all")


def _next_person(per_image: dict[str, int], name: str) -> tuple[str, int]:
    """``(image stem, k)``: ``name``'s stem and how many people of that image came
    before this one (counted in ``per_image``, which is updated)."""
    k = per_image.get(name, 0)
    per_image[name] = k + 1
    return PurePosixPath(name).stem, k


def read_mpii(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    dataset: str = "mpii",
    min_keypoints: int = 6,
    crop: str = "given",
    rescale: float = 1.2,
    one_based: bool = True,
    split: str = "train",
    single_person_only: bool = False,
    exclude_images: str | os.PathLike | None = None,
) -> ReadResult:
    """Read MPII annotations: ``.json`` common form, the official ``.mat``, the Tompson
    validation split ``.h5`` or the ``.csv`` form (chosen by the file's suffix).

    Args:
        path: the ``.json``, ``.mat``, ``.h5`` / ``.hdf5`` or ``.csv`` file.
        image_root: folder of the images; default: the file's folder, or for the .mat
            ``<its folder>/../images`` when that exists, else its folder.
        dataset: id prefix and provenance name.
        min_keypoints: fewest annotated GT keypoints to keep a person (EFT: 6).
        crop: ``"given"`` (file centre/scale, SPIN) or ``"keypoints"`` (keypoint box).
        rescale: crop side / longer keypoint-box side, for ``crop="keypoints"`` and the
            fallback.
        one_based: the file's coordinates are MATLAB 1-based (subtract 1).
        split: .mat only - ``"train"`` (``img_train == 1``), ``"test"`` or ``"all"``.
        single_person_only: .mat only - keep only the people in ``single_person``.
        exclude_images: another MPII file (any form, e.g. the Tompson ``valid.h5``):
            every person in one of its images is skipped as ``held_out``, so a training
            read leaves out the validation split's images.
    """
    path = Path(path)
    if crop not in _CROPS:
        raise ReaderError(f"mpii: crop must be one of {_CROPS}, got {crop!r}")
    if split not in _SPLITS:
        raise ReaderError(f"mpii: split must be one of {_SPLITS}, got {split!r}")
    opts = dict(dataset=dataset, min_keypoints=min_keypoints, crop=crop, rescale=rescale,
                offset=1.0 if one_based else 0.0)
    out = _read_any(path, image_root, split=split, single_person_only=single_person_only,
                    **opts)
    if exclude_images is not None:
        out = _hold_out(out, Path(exclude_images))
    return out


def _read_any(path: Path, image_root: str | os.PathLike | None, *, split: str,
              single_person_only: bool, **opts) -> ReadResult:
    suffix = path.suffix.lower()
    if suffix == ".json":
        root = Path(image_root) if image_root is not None else path.parent
        return _read_json(path, root, **opts)
    if suffix == ".mat":
        if image_root is not None:
            root = Path(image_root)
        else:
            guess = path.parent.parent / "images"
            root = guess if guess.is_dir() else path.parent
        return _read_mat(path, root, split=split, single_person_only=single_person_only,
                         **opts)
    if suffix in (".h5", ".hdf5"):
        root = Path(image_root) if image_root is not None else path.parent
        return _read_h5(path, root, **opts)
    if suffix == ".csv":
        root = Path(image_root) if image_root is not None else path.parent
        return _read_csv(path, root, **opts)
    raise ReaderError(f"{path}: MPII annotations must be a .json, .mat, .h5 or .csv file")


def _hold_out(res: ReadResult, other: Path) -> ReadResult:
    """``res`` without the people whose image is one of ``other``'s (skipped as
    ``held_out``)."""
    held = _read_any(other, None, split="all", single_person_only=False, dataset="x",
                     min_keypoints=0, crop="keypoints", rescale=1.2, offset=0.0)
    stems = {i.split("/")[1] for i in [e.id for e in held.exemplars] +
             [s.id for s in held.skipped] if i.count("/") == 2}
    out = ReadResult(skipped=list(res.skipped))
    for e in res.exemplars:
        if e.id.split("/")[-2] in stems:
            out.skipped.append(Skipped(e.id, "held_out", f"image in {other.name}"))
        else:
            out.exemplars.append(e)
    return out


@dataclass
class _Row:
    """One person as read from the file (raw16: (16, 3) file coordinates, labelled)."""
    eid: str
    raw16: np.ndarray
    image_path: str
    name: str
    center: Any
    scale: Any
    meta: dict


class _Reading:
    """What a reader has read, in file order: skips (:meth:`skip`) and people
    (:meth:`person`).  :meth:`finish` checks every person's keypoints in one batch
    (:func:`~eft.data.readers.base.keypoint_skip_reasons`) and returns the result, its
    people and skips in file order."""

    def __init__(self) -> None:
        self.items: list[Skipped | _Row] = []

    def skip(self, skipped: Skipped) -> None:
        self.items.append(skipped)

    def person(self, eid: str, raw16: np.ndarray, image_path: str, name: str, center: Any,
               scale: Any, meta: dict) -> None:
        self.items.append(_Row(eid, raw16, image_path, name, center, scale, meta))

    def finish(self, *, min_keypoints: int, **opts) -> ReadResult:
        rows = [r for r in self.items if isinstance(r, _Row)]
        kps = np.stack([np.asarray(r.raw16, dtype=np.float64) for r in rows]) if rows \
            else np.zeros((0, _NJ, 3))
        kps[..., :2] -= opts["offset"]
        kps[~(kps[..., 2] > 0), :2] = 0.0  # missing joints (MPII writes -1, -1) -> zeros
        kps49 = J.to_spin49(kps, _FMT)
        why = iter(keypoint_skip_reasons(kps49, min_keypoints))
        out = ReadResult()
        j = 0
        for item in self.items:
            if isinstance(item, _Row):
                _person(out, item, kps49[j], next(why), **opts)
                j += 1
            else:
                out.skipped.append(item)
        return out


def _person(out: ReadResult, row: _Row, kps49: np.ndarray, why: tuple[str, str] | None, *,
            dataset: str, crop: str, rescale: float, offset: float) -> None:
    """Append one person (its SPIN-49 keypoints, image px, and why they are unusable, if
    they are: :meth:`_Reading.finish`) or its skip."""
    if why is not None:
        out.skipped.append(Skipped(row.eid, *why))
        return
    eid, center, scale = row.eid, row.center, row.scale
    crop_from = "keypoints"
    cs = None
    if crop == "given" and center is not None and scale is not None:
        try:
            c = np.asarray(center, dtype=np.float64).reshape(-1)
            s = float(scale)
        except (TypeError, ValueError):  # not numbers: no usable centre/scale
            c, s = np.zeros(0), float("nan")
        if c.shape == (2,) and np.all(np.isfinite(c)) and np.isfinite(s) and s > 0 \
                and np.all(c >= 0):  # MPII writes -1 for "no centre"
            cs, crop_from = (c - offset, s), "given"
    if cs is None:
        cs = keypoint_box_center_scale(kps49, rescale)
    if cs is None:
        out.skipped.append(Skipped(eid, "bad_bbox", "no centre/scale and no keypoint box"))
        return
    if out.skip_bad_crop(eid, cs[0], cs[1]):  # absurd: a given scale of 1e300, ...
        return
    out.exemplars.append(Exemplar(
        id=eid, image_path=row.image_path, center=np.asarray(cs[0], dtype=np.float64),
        scale=float(cs[1]), keypoints=kps49.astype(np.float64), source=_FMT,
        meta={"imageName": row.name, "dataset": dataset, "crop_from": crop_from,
              **row.meta},
    ))


def _read_json(path: Path, root: Path, **opts) -> ReadResult:
    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{path}: not a valid JSON file ({exc})") from None
    if not isinstance(entries, list) or (entries and not isinstance(entries[0], dict)):
        raise ReaderError(f"{path}: not an MPII JSON file (expected a list of people with "
                          "image, center, scale, joints, joints_vis)")
    dataset = opts["dataset"]
    out = _Reading()
    per_image: dict[str, int] = {}
    for i, entry in enumerate(entries):
        name = entry.get("image") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            out.skip(Skipped(f"{dataset}/#{i}", "bad_annotation", "no image name"))
            continue
        stem, k = _next_person(per_image, name)
        eid = f"{dataset}/{stem}/{k}"
        try:
            xy = np.asarray(entry["joints"], dtype=np.float64).reshape(_NJ, 2)
            vis = np.asarray(entry.get("joints_vis", [1] * _NJ), dtype=np.float64).reshape(_NJ)
        except (KeyError, TypeError, ValueError) as exc:
            out.skip(Skipped(eid, "bad_annotation", f"joints: {exc!r}"))
            continue
        raw = np.concatenate([xy, (vis > 0)[:, None].astype(np.float64)], axis=1)
        out.person(eid, raw, str(root / name), name, entry.get("center"),
                   entry.get("scale"), {"index": i})
    return out.finish(**opts)


def _points(rect: Any) -> tuple[np.ndarray, list[int]] | None:
    """(16, 3) [x, y, annotated] and the 16 is_visible flags of one annorect; None when
    it has no annopoints."""
    ap = M.field(rect, "annopoints")
    if ap is None:
        return None
    pts = M.as_list(M.field(ap, "point"))
    if not pts:
        return None
    raw = np.zeros((_NJ, 3))
    visible = [0] * _NJ
    for p in pts:
        jid, x, y = M.scalar(M.field(p, "id")), M.scalar(M.field(p, "x")), \
            M.scalar(M.field(p, "y"))
        if jid is None or x is None or y is None or not 0 <= jid < _NJ:
            continue
        j = int(jid)
        raw[j] = (x, y, 1.0)
        v = M.scalar(M.field(p, "is_visible"))
        visible[j] = int(v) if v is not None else 1
    return raw, visible


def _read_mat(path: Path, root: Path, *, split: str, single_person_only: bool,
              **opts) -> ReadResult:
    mat = M.load_mat(path)
    release = mat.get("RELEASE")
    annolist = M.as_list(M.field(release, "annolist")) if release is not None else []
    if not annolist:
        raise ReaderError(f"{path}: no RELEASE.annolist (not the official MPII .mat)")
    train = M.as_list(M.field(release, "img_train"))
    if len(train) != len(annolist):
        raise ReaderError(f"{path}: RELEASE.img_train has {len(train)} entries for "
                          f"{len(annolist)} images")
    single = M.as_list(M.field(release, "single_person"))
    dataset = opts["dataset"]
    out = _Reading()
    for i, item in enumerate(annolist):
        is_train = int(M.scalar(train[i]) or 0) == 1
        if (split == "train" and not is_train) or (split == "test" and is_train):
            continue
        image = M.field(item, "image")
        name = M.field(image, "name") if image is not None else None
        if not isinstance(name, str):
            out.skip(Skipped(f"{dataset}/#{i}", "bad_annotation", "no image name"))
            continue
        stem = PurePosixPath(name).stem
        singles = {int(s) - 1 for s in (M.as_list(single[i]) if i < len(single) else [])
                   if M.scalar(s) is not None}
        for j, rect in enumerate(M.as_list(M.field(item, "annorect"))):
            if single_person_only and j not in singles:
                continue
            eid = f"{dataset}/{stem}/{j}"
            pts = _points(rect)
            if pts is None:
                out.skip(Skipped(eid, "no_keypoints"))
                continue
            raw, visible = pts
            objpos = M.field(rect, "objpos")
            center = None
            if objpos is not None:
                ox, oy = M.scalar(M.field(objpos, "x")), M.scalar(M.field(objpos, "y"))
                center = None if ox is None or oy is None else (ox, oy)
            meta: dict[str, Any] = {"imageIndex": i, "rectIndex": j, "is_visible": visible,
                                    "train": is_train, "single_person": j in singles}
            head = [M.scalar(M.field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
            if all(h is not None for h in head):
                meta["head_box"] = [h - opts["offset"] for h in head]
            out.person(eid, raw, str(root / name), name, center,
                       M.scalar(M.field(rect, "scale")), meta)
    return out.finish(**opts)


def _read_h5(path: Path, root: Path, **opts) -> ReadResult:
    import h5py

    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    try:
        with h5py.File(path, "r") as f:
            if "imgname" not in f or "part" not in f:
                raise ReaderError(f"{path}: not an MPII h5 file (needs 'imgname' and "
                                  f"'part'; has {sorted(f)})")
            keys = [k for k in ("imgname", "part", "visible", "center", "scale", "person",
                                "index", "normalize") if k in f]
            for k in keys:
                if not isinstance(f[k], h5py.Dataset):
                    raise ReaderError(f"{path}: '{k}' is a {type(f[k]).__name__}, not an "
                                      "array (not an MPII h5 file)")
            arrays = {k: f[k][()] for k in keys}
    except OSError as exc:
        raise ReaderError(f"{path}: not a readable HDF5 file ({exc})") from None
    names = arrays["imgname"]
    if np.ndim(names) != 1:
        raise ReaderError(f"{path}: 'imgname' has shape {np.shape(names)}, expected (N,)")
    for k in arrays:
        if k != "imgname":
            try:
                arrays[k] = np.asarray(arrays[k], dtype=np.float64)
            except (TypeError, ValueError):
                raise ReaderError(f"{path}: '{k}' holds values that are not numbers "
                                  f"(dtype {np.asarray(arrays[k]).dtype})") from None
    part = arrays["part"]
    n = len(names)
    if part.shape != (n, _NJ, 2):
        raise ReaderError(f"{path}: 'part' has shape {part.shape}, expected ({n}, {_NJ}, 2)")
    for k, shape in (("visible", (n, _NJ)), ("center", (n, 2)), ("scale", (n,)),
                     ("person", (n,)), ("index", (n,)), ("normalize", (n,))):
        if k in arrays and np.shape(arrays[k]) != shape:
            raise ReaderError(f"{path}: '{k}' has shape {np.shape(arrays[k])}, "
                              f"expected {shape}")
    labelled = ~np.all(part == 0, axis=2)  # (N, 16); missing joints are written (0, 0)
    visible = arrays.get("visible")
    dataset = opts["dataset"]
    out = _Reading()
    per_image: dict[str, int] = {}
    for i in range(n):
        raw_name = names[i]
        try:
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        except UnicodeDecodeError:
            out.skip(Skipped(f"{dataset}/#{i}", "bad_annotation",
                             f"row {i}: imgname {raw_name!r} is not UTF-8"))
            continue
        stem, nth = _next_person(per_image, name)
        whole = {k: _whole(arrays[k][i]) for k in ("person", "index") if k in arrays}
        wrong = [f"{k} {arrays[k][i]:g}" for k, v in whole.items() if v is None]
        if wrong:
            out.skip(Skipped(f"{dataset}/{stem}/#{i}", "bad_annotation",
                             f"row {i}: not a whole number >= 0: {', '.join(wrong)}"))
            continue
        j = whole.get("person", nth)
        eid = f"{dataset}/{stem}/{j}"
        raw = np.concatenate([part[i], labelled[i][:, None].astype(np.float64)], axis=1)
        meta: dict[str, Any] = {"row": i, "rectIndex": j}
        if "index" in whole:
            meta["imageIndex"] = whole["index"]
        if visible is not None:
            meta["is_visible"] = [int(v > 0) for v in visible[i]]
        if "normalize" in arrays:
            meta["head_size"] = float(arrays["normalize"][i])
        center = arrays["center"][i] if "center" in arrays else None
        scale = arrays["scale"][i] if "scale" in arrays else None
        out.person(eid, raw, str(root / name), name, center, scale, meta)
    return out.finish(**opts)


def _whole(value: float) -> int | None:
    """``value`` as an int when it is a whole number >= 0 (an index), else None."""
    if not (np.isfinite(value) and value >= 0 and value == np.floor(value)):
        return None
    return int(value)


def _csv_joint_name(name: str) -> str:
    """A CSV joint name (``"r ankle"``, ``"upper neck"``) as its MPII16 name
    (``"right_ankle"``, ``"upper_neck"``)."""
    side = {"r": "right", "l": "left"}
    head, _, rest = name.partition(" ")
    words = [side[head], rest] if head in side and rest else [name]
    return "_".join(words).replace(" ", "_")


def _read_csv(path: Path, root: Path, **opts) -> ReadResult:
    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    try:
        return _read_csv_rows(path, root, **opts)
    except UnicodeDecodeError as exc:
        raise ReaderError(f"{path}: not a UTF-8 text file (byte {exc.start}: "
                          f"{exc.reason}); save it as UTF-8") from None
    except csv.Error as exc:
        raise ReaderError(f"{path}: not a readable CSV file ({exc})") from None


def _read_csv_rows(path: Path, root: Path, **opts) -> ReadResult:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ReaderError(f"{path}: empty file")
        col = {h.strip(): c for c, h in enumerate(header)}
        names = {_csv_joint_name(h[:-2]): h[:-2] for h in col if h.endswith("_X")}
        missing = [n for n in J.MPII16_NAMES if n not in names] + \
            [f"{names[n]}_Y" for n in J.MPII16_NAMES if n in names
             and f"{names[n]}_Y" not in col] + \
            [c for c in ("NAME", "Scale") if c not in col]
        if missing:
            raise ReaderError(f"{path}: not an MPII CSV file (missing columns for "
                              f"{missing})")
        xcols = [col[f"{names[n]}_X"] for n in J.MPII16_NAMES]
        ycols = [col[f"{names[n]}_Y"] for n in J.MPII16_NAMES]
        c_name, c_scale, c_id = col["NAME"], col["Scale"], col.get("ID")
        extra = [(k.lower(), col[k]) for k in ("Activity", "Category") if k in col]
        dataset = opts["dataset"]
        out = _Reading()
        per_image: dict[str, int] = {}
        for i, row in enumerate(reader):
            name = row[c_name] if len(row) > c_name else ""
            if not name:
                out.skip(Skipped(f"{dataset}/#{i}", "bad_annotation", "no image name"))
                continue
            stem, k = _next_person(per_image, name)
            eid = f"{dataset}/{stem}/{k}"
            try:
                xy = np.array([[float(row[x]), float(row[y])] for x, y in
                               zip(xcols, ycols, strict=True)])
                scale = float(row[c_scale]) if row[c_scale].strip() else None
            except (IndexError, ValueError) as exc:
                out.skip(Skipped(eid, "bad_annotation", f"row {i}: {exc}"))
                continue
            lab = ~np.all(xy == -1.0, axis=1)  # -1, -1 = not labelled
            raw = np.concatenate([xy, lab[:, None].astype(np.float64)], axis=1)
            center = None
            ok = lab & np.all(np.isfinite(xy), axis=1)
            if ok.sum() >= 2:  # no objpos: the labelled joints' box centre
                center = (xy[ok].min(axis=0) + xy[ok].max(axis=0)) / 2.0
            meta: dict[str, Any] = {"row": i, "rectIndex": k, "center_from": "keypoints"}
            if c_id is not None and len(row) > c_id and row[c_id].strip().isdigit():
                meta["csv_id"] = int(row[c_id])
            meta.update({key: row[c] for key, c in extra if len(row) > c})
            out.person(eid, raw, str(root / name), name, center, scale, meta)
    return out.finish(**opts)
