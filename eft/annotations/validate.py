"""Value checks of annotation files (``eft validate``): finite numbers, orthonormal
rotations, consistent derived fields, plausible ranges, unique ids.  Runs on column
batches, so an HDF5 file of any size is checked in bounded memory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from eft.fitting.config import FLAGS
from eft.geometry.cameras import FOCAL_LENGTH

from .columns import Columns, aa_to_rotmat, weak_to_cam_t
from .record import MALFORMED_QUALITY

__all__ = ["ValidationReport", "validate_columns", "ROT_TOL", "BETA_LIMIT"]

#: Tolerance of ``|R R^T - I|``, ``|det R - 1|`` and of rotmat vs axis-angle agreement.
ROT_TOL = 1e-4
#: ``|beta|`` above this is an error (EFT's acceptance filter uses 3; that is a warning).
BETA_LIMIT = 10.0
_EXAMPLES = 5


@dataclass
class _Tally:
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, ids: np.ndarray, bad: np.ndarray) -> None:
        idx = np.flatnonzero(bad)
        self.count += int(idx.size)
        for i in idx[: max(0, _EXAMPLES - len(self.examples))]:
            self.examples.append(str(ids[i]))


@dataclass
class ValidationReport:
    """Problems found, by check: ``errors`` make a file invalid, ``warnings`` do not."""

    count: int = 0
    errors: dict[str, _Tally] = field(default_factory=dict)
    warnings: dict[str, _Tally] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(t.count for t in self.errors.values())

    def _add(self, table: dict[str, _Tally], check: str, ids, bad) -> None:
        bad = np.asarray(bad, bool)
        if bad.any():
            table.setdefault(check, _Tally()).add(ids, bad)

    def error(self, check: str, ids, bad) -> None:
        self._add(self.errors, check, ids, bad)

    def warn(self, check: str, ids, bad) -> None:
        self._add(self.warnings, check, ids, bad)

    def lines(self) -> list[str]:
        out = []
        for kind, table in (("error", self.errors), ("warning", self.warnings)):
            for check, t in sorted(table.items()):
                more = " ..." if t.count > len(t.examples) else ""
                out.append(f"{kind}: {check}: {t.count} fit(s), e.g. "
                           f"{', '.join(t.examples)}{more}")
        return out


def _rows_all(a: np.ndarray) -> np.ndarray:
    return np.asarray(a.reshape(a.shape[0], -1).all(axis=1))


def validate_columns(batches: Iterable[Columns], missing: frozenset[str] = frozenset(),
                     focal_length: float = FOCAL_LENGTH, img_res: int = 224) -> ValidationReport:
    """Check every row of ``batches`` (see the module docstring); ``missing`` fields
    (what the file's format cannot hold) are not checked."""
    rep = ValidationReport()
    seen: set[str] = set()
    for c in batches:
        n = len(c)
        if n == 0:
            continue
        rep.count += n
        ids = c.fit_id
        # ids
        dup = np.zeros(n, bool)
        for i, fid in enumerate(ids):
            fid = str(fid)
            if fid in seen:
                dup[i] = True
            seen.add(fid)
        rep.error("duplicate fit id", ids, dup)
        rep.error("empty fit id", ids, np.array([not str(i) for i in ids]))
        # finite
        finite = {"rotmat": c.rotmat, "pose_aa": c.pose_aa, "betas": c.betas,
                  "center": c.center, "scale": c.scale}
        if "cam" not in missing:
            finite["cam_weak"] = c.cam_weak
            finite["cam_t"] = c.cam_t
        if "keypoints3d" not in missing:
            finite["keypoints3d"] = (c.keypoints3d[:, 25:] if "keypoints3d_openpose" in missing
                                     else c.keypoints3d)
        for name, arr in finite.items():
            rep.error(f"non-finite {name}", ids, ~_rows_all(np.isfinite(arr)))
        kp = c.keypoints2d
        conf = kp[..., 2]
        rep.error("non-finite keypoints2d confidence", ids, ~_rows_all(np.isfinite(conf)))
        rep.error("non-finite keypoints2d x,y (confidence > 0)", ids,
                  ((conf > 0) & ~np.isfinite(kp[..., :2]).all(-1)).any(axis=1))
        rep.error("keypoints2d confidence outside [0, 1]", ids,
                  ((conf < 0) | (conf > 1)).any(axis=1))
        # rotations
        rot = c.rotmat.astype(np.float64)
        with np.errstate(invalid="ignore"):
            gram = np.einsum("nkij,nkil->nkjl", rot, rot)
            ortho = np.abs(gram - np.eye(3)).reshape(n, -1).max(axis=1)
            det = np.linalg.det(rot.reshape(-1, 3, 3)).reshape(n, 24)
            rep.error(f"rotation matrix not orthonormal (|R^T R - I| > {ROT_TOL:g})", ids,
                      ~(ortho <= ROT_TOL))
            rep.error(f"rotation matrix not a rotation (|det - 1| > {ROT_TOL:g})", ids,
                      ~(np.abs(det - 1).max(axis=1) <= ROT_TOL))
            back = aa_to_rotmat(np.nan_to_num(c.pose_aa)).astype(np.float64)
            diff = np.abs(back - rot).reshape(n, -1).max(axis=1)
            rep.error(f"pose_aa and rotmat disagree (> {ROT_TOL:g})", ids, diff > ROT_TOL)
        # ranges
        with np.errstate(invalid="ignore"):
            rep.error("bbox scale <= 0", ids, c.scale <= 0)
            rep.error(f"|beta| > {BETA_LIMIT:g}", ids, np.abs(c.betas).max(axis=1) > BETA_LIMIT)
            rep.warn("|beta| > 3 (EFT rejects these)", ids,
                     (np.abs(c.betas).max(axis=1) > 3) & (np.abs(c.betas).max(axis=1)
                                                          <= BETA_LIMIT))
            if "cam" not in missing:
                rep.error("camera scale s <= 0", ids, c.cam_weak[:, 0] <= 0)
                expect = weak_to_cam_t(c.cam_weak, focal_length, img_res).astype(np.float64)
                rel = np.abs(expect - c.cam_t) / np.maximum(1.0, np.abs(expect))
                rep.error("cam_t disagrees with cam_weak", ids, rel.max(axis=1) > 1e-4)
        if "quality" not in missing:
            _check_quality(rep, c)
    return rep


def _check_quality(rep: ValidationReport, c: Columns) -> None:
    q, ids = c.quality, c.fit_id
    flags = q["flags"]
    unreadable = np.array([MALFORMED_QUALITY in f for f in flags], bool)
    special = np.array([("non_finite" in f) or ("skipped" in f) for f in flags],
                       bool) | unreadable
    with np.errstate(invalid="ignore"):
        for name in ("loss_2d_init", "loss_2d_final"):
            v = q[name]
            rep.error(f"quality.{name} negative", ids, v < 0)
            rep.error(f"quality.{name} not finite (fit not flagged non_finite/skipped)", ids,
                      ~np.isfinite(v) & ~special)
        for name in ("reproj_px", "reproj_frac_bbox", "max_abs_beta"):
            rep.error(f"quality.{name} negative", ids, q[name] < 0)
    rep.error("quality.iterations negative", ids, q["iterations"] < 0)
    rep.error("quality.n_valid_keypoints outside 0..24", ids,
              (q["n_valid_keypoints"] < 0) | (q["n_valid_keypoints"] > 24))
    rep.warn("unknown quality flag", ids, np.array(
        [any(x not in FLAGS and x != MALFORMED_QUALITY for x in f) for f in flags], bool))
    rep.warn(f"quality malformed in the source file (unknown, not accepted, flagged "
             f"{MALFORMED_QUALITY})", ids, unreadable)
    rep.warn("rejected fit in the file", ids, ~q["accepted"])
