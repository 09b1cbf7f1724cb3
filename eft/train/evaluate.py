"""Evaluation: MPJPE and PA-MPJPE on 14 LSP joints and on the 24 SMPL joints.

Protocol (SPIN's, with one stated difference):

* **14 joints**: the H36M joints regressed from the mesh (``BodyModel.h36m_joints``),
  in LSP order (``H36M_TO_J14``), both sides centred on the mid-point of the two hips.
  (SPIN centres predictions on the H36M pelvis row; the hips' mid-point is used here on
  both sides so that ground truth given as joints and as SMPL is treated alike.)
* **24 joints**: the SMPL skeleton joints, centred on the pelvis joint (SMPL ground
  truth only).
* PA = after a similarity Procrustes alignment per person.  Errors in millimetres.

Eval sets (:class:`EvalSet`): synthetic people from the pose bank's val clips,
SPIN's H36M npz files (``h36m_valid_protocol1/2.npz``: ``imgname``, ``center``,
``scale``, ``S`` (N, 24 or 17, 4) in metres, optional ``part`` / ``openpose``) and
SPIN's 3DPW npz (``imgname``, ``center``, ``scale``, ``pose`` (N, 72), ``shape``
(N, 10), ``gender``).  A keypoint regressor reads 2D keypoints (``part`` /
``openpose`` in the file); HMR reads the image crops (``image_root`` + ``imgname``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from eft.body import BodyModel
from eft.body.joints import H36M_TO_J14, LSP14_NAMES, to_spin49
from eft.geometry.metrics import mpjpe, pa_mpjpe, procrustes_align
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.models import HMR
from eft.render.charts import bar_chart
from eft.render.draw import grid, save_png
from eft.synthetic.exemplars import SyntheticConfig, generate
from eft.synthetic.pose_bank import load_pose_bank

from .augment import crop_inputs, image_batch
from .errors import TrainError

__all__ = ["EvalSet", "METRICS", "joint_metrics", "pose_joints", "evaluate_bodies",
           "predict", "evaluate_model", "synthetic_eval_set", "load_h36m_npz",
           "load_3dpw_npz", "metrics_table", "per_joint_mm", "per_joint_chart"]

#: Metric keys, in table order.
METRICS: tuple[str, ...] = ("mpjpe_mm", "pa_mpjpe_mm", "mpjpe24_mm", "pa_mpjpe24_mm")
_J14 = list(H36M_TO_J14)
#: Keypoint format of 17-joint H36M arrays in SPIN-layout files (SPIN's regressor order).
H36M_SPIN_FORMAT = "h36m17_spin"


@dataclass(frozen=True)
class EvalSet:
    """N people with 3D ground truth and what a regressor needs to see them.

    Attributes:
        name: label in tables.
        center: (N, 2) bbox centre, image px; scale: (N,) bbox side / 200.
        gt14: (N, 14, 3) LSP-order joints, metres, hips' mid-point at the origin.
        gt14_valid: (N, 14) bool, which of those joints the ground truth has (SPIN
            files' confidence column), or None: all.
        gt24: (N, 24, 3) SMPL joints, pelvis at the origin, or None.
        keypoints: (N, 49, 3) SPIN-49 2D keypoints, image px + conf, or None.
        image_paths: N image files, or None.
    """

    name: str
    center: Tensor
    scale: Tensor
    gt14: Tensor
    gt24: Tensor | None = None
    keypoints: Tensor | None = None
    image_paths: tuple[str, ...] | None = None
    gt14_valid: Tensor | None = None

    def __len__(self) -> int:
        return int(self.center.shape[0])


def _centre14(j14: Tensor) -> Tensor:
    return j14 - j14[:, 2:4].mean(1, keepdim=True)


@torch.no_grad()
def pose_joints(body, rotmat: Tensor, betas: Tensor, batch: int = 512
                ) -> tuple[Tensor, Tensor]:
    """Posed bodies -> (14 LSP joints centred on the hips (B, 14, 3), 24 SMPL joints
    centred on the pelvis (B, 24, 3)), metres."""
    j14, j24 = [], []
    for i in range(0, rotmat.shape[0], batch):
        out = body(rotmat[i:i + batch], betas[i:i + batch])
        j14.append(_centre14(body.h36m_joints(out.vertices)[:, _J14]))
        j24.append(out.joints - out.joints[:, :1])
    return torch.cat(j14), torch.cat(j24)


def joint_metrics(pred14: Tensor, gt14: Tensor, pred24: Tensor | None = None,
                  gt24: Tensor | None = None, valid14: Tensor | None = None,
                  ) -> dict[str, float]:
    """Mean errors in mm: ``mpjpe_mm`` / ``pa_mpjpe_mm`` on the (N, 14, 3) joints and,
    when both 24-joint sets are given, ``mpjpe24_mm`` / ``pa_mpjpe24_mm``.  Inputs are
    already centred (metres).  ``valid14`` (N, 14) bool: only those joints count (the
    Procrustes alignment uses them too); people without any are left out."""
    gt14 = gt14.to(pred14.dtype)
    if valid14 is not None:
        keep = valid14.any(1)
        pred14, gt14, valid14 = pred14[keep], gt14[keep], valid14[keep]
    e14, pa14 = mpjpe(pred14, gt14, valid14), pa_mpjpe(pred14, gt14, valid14)
    out = {"mpjpe_mm": float(e14.nanmean()) * 1000,
           "pa_mpjpe_mm": float(pa14.nanmean()) * 1000}
    if pred24 is not None and gt24 is not None:
        gt24 = gt24.to(pred24.dtype)
        out["mpjpe24_mm"] = float(mpjpe(pred24, gt24).mean()) * 1000
        out["pa_mpjpe24_mm"] = float(pa_mpjpe(pred24, gt24).mean()) * 1000
    return out


@torch.no_grad()
def evaluate_bodies(body, rotmat: Tensor, betas: Tensor, gt_rotmat: Tensor,
                    gt_betas: Tensor, batch: int = 512) -> dict[str, float]:
    """Errors (mm) of predicted against ground-truth SMPL bodies (module docstring)."""
    p14, p24 = pose_joints(body, rotmat, betas, batch)
    g14, g24 = pose_joints(body, gt_rotmat, gt_betas, batch)
    return joint_metrics(p14, g14, p24, g24)


@torch.no_grad()
def predict(model: nn.Module, data: EvalSet, batch: int = 256,
            device: str | torch.device = "cpu", img_res: int = 224) -> tuple[Tensor, Tensor]:
    """The regressor's (rotmat (N, 24, 3, 3), betas (N, 10)) for every person of
    ``data``, framed by its own box (no augmentation)."""
    was = model.training
    model.eval()
    if isinstance(model, HMR):
        paths = data.image_paths
        if paths is None:
            raise TrainError(f"{data.name}: an image regressor needs the images "
                             "(give the image folder)")

        def inputs(sl: slice, c: Tensor, s: Tensor) -> Tensor:
            n = c.shape[0]
            return image_batch(list(paths[sl]), c, s, torch.zeros(n),
                               torch.zeros(n, dtype=torch.bool), torch.ones(n, 3), img_res)
    else:
        keypoints = data.keypoints
        if keypoints is None:
            raise TrainError(f"{data.name}: a keypoint regressor needs 2D keypoints, and "
                             "this set has none (no 'part' or 'openpose' in the file)")

        def inputs(sl: slice, c: Tensor, s: Tensor) -> Tensor:
            return crop_inputs(keypoints[sl], c, s)
    rot, betas = [], []
    try:
        for i in range(0, len(data), batch):
            sl = slice(i, i + batch)
            x = inputs(sl, data.center[sl], data.scale[sl])
            out = model(x.to(device))
            rot.append(out.rotmat.float().cpu())
            betas.append(out.betas.float().cpu())
    finally:
        model.train(was)
    return torch.cat(rot), torch.cat(betas)


def evaluate_model(model: nn.Module, body, data: EvalSet, batch: int = 256,
                   device: str | torch.device = "cpu", img_res: int = 224,
                   per_joint: bool = False) -> dict[str, Any]:
    """``{"n": N, metric: mm ...}`` of ``model`` on ``data``; with ``per_joint`` also
    ``"per_joint"``: :func:`per_joint_mm` of the 14 LSP joints."""
    rot, betas = predict(model, data, batch, device, img_res)
    p14, p24 = pose_joints(body, rot, betas)
    out: dict[str, Any] = {"n": len(data), **joint_metrics(p14, data.gt14, p24, data.gt24,
                                                           data.gt14_valid)}
    if per_joint:
        out["per_joint"] = per_joint_mm(p14, data.gt14, data.gt14_valid)
    return out


def per_joint_mm(pred14: Tensor, gt14: Tensor, valid14: Tensor | None = None,
                 ) -> dict[str, list]:
    """Mean error of each of the 14 LSP joints over the people, mm: ``{"joints": names,
    "mpjpe_mm": [14], "pa_mpjpe_mm": [14]}`` (PA: after each person's Procrustes
    alignment, as in :func:`joint_metrics`; the joints' means average to its numbers).
    ``valid14`` (N, 14): each joint's mean over the people that have it (NaN: none)."""
    gt14 = gt14.to(pred14.dtype)
    w = (torch.ones(gt14.shape[:2], dtype=pred14.dtype) if valid14 is None
         else valid14.to(pred14.dtype))
    count = w.sum(0)
    raw = ((pred14 - gt14).norm(dim=-1) * w).sum(0) / count * 1000
    has = w.sum(1) > 0  # people without any valid joint: no alignment, weight 0
    aligned = pred14.clone()
    aligned[has] = procrustes_align(pred14[has], gt14[has],
                                    None if valid14 is None else w[has])
    pa = ((aligned - gt14).norm(dim=-1) * w).sum(0) / count * 1000
    return {"joints": list(LSP14_NAMES), "mpjpe_mm": [float(v) for v in raw],
            "pa_mpjpe_mm": [float(v) for v in pa]}


def per_joint_chart(rows: dict[str, dict], path: str | os.PathLike) -> Path:
    """A bar chart per eval set (``rows``: label -> :func:`evaluate_model` result with
    ``per_joint``) of the PA-MPJPE and MPJPE of each LSP joint, as one PNG."""
    charts = []
    for label, r in rows.items():
        pj = r["per_joint"]
        names = [n.replace("_", " ") for n in pj["joints"]]
        charts.append([bar_chart(names, pj["pa_mpjpe_mm"], unit=" mm",
                                 title=f"PA-MPJPE per joint: {label}"),
                       bar_chart(names, pj["mpjpe_mm"], unit=" mm",
                                 title=f"MPJPE per joint: {label}")])
    return save_png(grid(charts, gap=8), path)


def metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table of metrics, one row per label (missing metrics as ``-``)."""
    lines = ["| | MPJPE-14 | PA-MPJPE-14 | MPJPE-24 | PA-MPJPE-24 |", "|---|---|---|---|---|"]
    for label, r in rows.items():
        cells = [f"{r[c]:.1f}" if c in r else "-" for c in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Eval sets
# ---------------------------------------------------------------------------

def synthetic_eval_set(n: int, seed: int, body, poses: Any = None,
                       name: str | None = None) -> EvalSet:
    """``n`` synthetic people (default generator) posed from ``poses`` (default: the
    pose bank's val clips, which no shipped model was trained on)."""
    if poses is None:
        poses = load_pose_bank().val().poses
    s = generate(poses, n, seed, SyntheticConfig(), body=body)
    rot = axis_angle_to_rotmat(torch.as_tensor(s.pose, dtype=torch.float32).reshape(-1, 24, 3))
    g14, g24 = pose_joints(body, rot, torch.as_tensor(s.betas, dtype=torch.float32))
    return EvalSet(name=name or f"synthetic-val (seed {seed})",
                   center=torch.as_tensor(s.center, dtype=torch.float32),
                   scale=torch.as_tensor(s.scale, dtype=torch.float32),
                   gt14=g14, gt24=g24,
                   keypoints=torch.as_tensor(s.keypoints, dtype=torch.float32))


def _read_npz(path: str | os.PathLike, required: tuple[str, ...]) -> tuple[Path, dict]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise TrainError(f"{p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise TrainError(f"{p}: not a readable npz file ({str(exc).splitlines()[0]})") from None
    missing = [k for k in required if k not in data]
    if missing:
        raise TrainError(f"{p}: lacks {missing} (has {sorted(data)})")
    n = len(data[required[0]])
    for k in required:
        if len(data[k]) != n:
            raise TrainError(f"{p}: '{k}' has {len(data[k])} rows, '{required[0]}' has {n}")
    return p, data


def _keypoints_of(p: Path, data: dict, n: int) -> Tensor | None:
    """SPIN-49 keypoints from ``openpose`` (N, 25, 3) and ``part`` (N, 24, 3), or a
    17-joint ``part`` (N, 17, 3) in SPIN's H36M regressor order."""
    if "part" not in data and "openpose" not in data:
        return None
    kp = np.zeros((n, 49, 3), np.float32)
    for key, sl, size in (("openpose", slice(0, 25), 25), ("part", slice(25, 49), 24)):
        if key in data:
            arr = np.asarray(data[key], np.float32)
            if key == "part" and arr.shape == (n, 17, 3):
                kp[:, 25:] = to_spin49(arr, H36M_SPIN_FORMAT)[:, 25:]
                continue
            if arr.shape != (n, size, 3):
                shapes = f"({n}, {size}, 3)" + (f" or ({n}, 17, 3)" if key == "part" else "")
                raise TrainError(f"{p}: '{key}' must have shape {shapes}, got {arr.shape}")
            kp[:, sl] = arr
    return torch.as_tensor(np.nan_to_num(kp))


def _boxes(p: Path, data: dict, n: int) -> tuple[Tensor, Tensor]:
    center = np.asarray(data["center"], np.float32)
    scale = np.asarray(data["scale"], np.float32).reshape(-1)
    if center.shape != (n, 2) or scale.shape != (n,):
        raise TrainError(f"{p}: center must be ({n}, 2) and scale ({n},), got "
                         f"{center.shape} and {scale.shape}")
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise TrainError(f"{p}: scale must be finite and > 0")
    return torch.as_tensor(center), torch.as_tensor(scale)


def _images(data: dict, image_root: str | os.PathLike | None) -> tuple[str, ...] | None:
    if image_root is None:
        return None
    root = Path(image_root).expanduser()
    return tuple(str(root / str(name)) for name in data["imgname"])


#: Rows of SPIN's 24 ground-truth joints that hold the 14 evaluation joints of an H36M
#: file (SPIN's ``J24_TO_J14`` for H36M): the 12 limbs, the LSP neck (row 12, from H36M
#: Thorax) and "Head (H36M)" (row 18).  Row 13 "Top of Head (LSP)" is empty in H36M
#: files: H36M has no such joint.
SPIN24_TO_J14_H36M: tuple[int, ...] = (*range(13), 18)


def load_h36m_npz(path: str | os.PathLike, image_root: str | os.PathLike | None = None,
                  name: str | None = None) -> EvalSet:
    """SPIN's H36M eval file (``h36m_valid_protocol1.npz`` / ``...protocol2.npz``).

    ``S`` (N, 24, 4): SPIN's 24 ground-truth joints, of which rows
    :data:`SPIN24_TO_J14_H36M` (``[0..12, 18]``) are the 14 evaluation joints, or
    (N, 17, 3|4): the H36M-17 joints in SPIN's regressor order; metres (values in mm,
    detected by size, are converted).  The 4th column is each joint's validity: joints
    with 0 are left out of the errors, and a person whose hips (the centre) are not
    both valid is left out.  2D keypoints: ``part`` (N, 24, 3) SPIN's GT order or
    (N, 17, 3) H36M-17 in SPIN's regressor order, and ``openpose`` (N, 25, 3).
    """
    p, data = _read_npz(path, ("imgname", "center", "scale", "S"))
    n = len(data["imgname"])
    s = np.asarray(data["S"], np.float64)
    if s.ndim != 3 or s.shape[1] not in (17, 24) or s.shape[2] not in (3, 4):
        raise TrainError(f"{p}: 'S' must have shape (N, 24 or 17, 4), got {s.shape}")
    xyz = s[..., :3]
    rows = list(SPIN24_TO_J14_H36M) if s.shape[1] == 24 else _J14
    valid = (s[:, rows, 3] > 0) if s.shape[2] == 4 else np.ones((n, 14), bool)
    valid &= np.isfinite(xyz[:, rows]).all(-1)
    if valid.any() and np.median(np.abs(xyz[:, rows][valid])) > 20:  # millimetres
        xyz = xyz / 1000.0
    j14 = np.where(valid[..., None], xyz[:, rows], 0.0)
    valid &= valid[:, 2:4].all(1, keepdims=True)  # centred on the hips: need both
    if not valid.any():
        raise TrainError(f"{p}: no person has valid 3D hips in 'S' (validity column)")
    center, scale = _boxes(p, data, n)
    return EvalSet(name=name or p.stem, center=center, scale=scale,
                   gt14=_centre14(torch.as_tensor(j14, dtype=torch.float32)),
                   gt14_valid=torch.as_tensor(valid),
                   keypoints=_keypoints_of(p, data, n), image_paths=_images(data, image_root))


def _gender_codes(p: Path, values: np.ndarray) -> np.ndarray:
    codes = np.array([str(v.decode() if isinstance(v, bytes) else v).strip().lower()[:1]
                      for v in values])
    bad = sorted(set(codes) - {"m", "f", "n"})
    if bad:
        raise TrainError(f"{p}: gender values must be m/f (or n), got {bad}")
    return codes


def load_3dpw_npz(path: str | os.PathLike, body, image_root: str | os.PathLike | None = None,
                  smpl_dir: str | os.PathLike | None = None, name: str | None = None) -> EvalSet:
    """SPIN's 3DPW eval file (``3dpw_test.npz``): ground truth from ``pose`` (N, 72)
    and ``shape`` (N, 10) posed with the gendered SMPL models found in ``smpl_dir``
    (``SMPL_MALE`` / ``SMPL_FEMALE``), as SPIN does; without ``smpl_dir`` every person
    is posed with ``body`` (a warning says so)."""
    p, data = _read_npz(path, ("imgname", "center", "scale", "pose", "shape"))
    n = len(data["imgname"])
    pose = np.asarray(data["pose"], np.float32)
    shape = np.asarray(data["shape"], np.float32)
    if pose.shape != (n, 72) or shape.ndim != 2 or shape.shape[0] != n:
        raise TrainError(f"{p}: pose must be ({n}, 72) and shape ({n}, 10), got "
                         f"{pose.shape} and {shape.shape}")
    rot = axis_angle_to_rotmat(torch.as_tensor(pose).reshape(n, 24, 3))
    betas = torch.as_tensor(shape[:, :10])
    genders = (_gender_codes(p, data["gender"]) if "gender" in data
               else np.full(n, "n"))
    g14 = torch.zeros(n, 14, 3)
    g24 = torch.zeros(n, 24, 3)
    if smpl_dir is None:
        if np.any(genders != "n"):
            warnings.warn(f"{p.name}: no gendered SMPL models given (smpl_dir); the ground "
                          f"truth is posed with {getattr(body, 'name', 'the body model')}",
                          stacklevel=2)
        g14, g24 = pose_joints(body, rot, betas)
    else:
        for code, gender in (("m", "male"), ("f", "female"), ("n", "neutral")):
            rows = torch.as_tensor(np.flatnonzero(genders == code))
            if rows.numel() == 0:
                continue
            try:
                model = BodyModel.load(smpl_dir, gender=gender)
            except Exception as exc:  # noqa: BLE001 - reported as one line
                raise TrainError(f"{smpl_dir}: cannot load the {gender} SMPL model "
                                 f"({str(exc).splitlines()[0]})") from None
            a, b = pose_joints(model, rot[rows], betas[rows])
            g14[rows], g24[rows] = a, b
    center, scale = _boxes(p, data, n)
    return EvalSet(name=name or p.stem, center=center, scale=scale, gt14=g14, gt24=g24,
                   keypoints=_keypoints_of(p, data, n), image_paths=_images(data, image_root))
