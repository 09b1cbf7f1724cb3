"""``eft body check``: pose a body model in canonical poses, measure it, draw it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eft.body.joints import SMPL24_FLIP_PERM, SMPL24_NAMES, SMPL24_PARENTS
from eft.body.model import BodyModel, BodyOutput
from eft.body.poses import canonical_poses


@dataclass(frozen=True)
class CheckReport:
    """Numbers ``eft body check`` prints.

    Attributes:
        model: model name; ``content_hash``: sha256 of its file.
        stature_m: pose name -> vertex height span in metres.
        bone_mm: (24,) T-pose distance of each joint to its parent (root 0).
        mirror_mm: (24,) |x_left + x_right|, |dy|, |dz| norm of each joint with its
            mirror partner in the T-pose (0 for a symmetric model; centre joints
            measure |x|).
        keypoints_valid: number of valid keypoints of the 49.
        keypoints_finite: True if every valid keypoint is finite in every pose.
        anatomy_ok: head above neck above pelvis, left joints at +x (T-pose).
    """

    model: str
    content_hash: str
    keypoint_source: str
    stature_m: dict[str, float]
    bone_mm: np.ndarray
    mirror_mm: np.ndarray
    keypoints_valid: int
    keypoints_finite: bool
    anatomy_ok: bool
    missing: list[str]


def pose_all(model: BodyModel) -> tuple[list[str], BodyOutput]:
    """Run every canonical pose in one batch (mean shape)."""
    poses = canonical_poses()
    batch = torch.stack(list(poses.values())).to(torch.float32)
    with torch.no_grad():
        out = model(batch)
    return list(poses), out


def measure(model: BodyModel, names: list[str], out: BodyOutput) -> CheckReport:
    joints = out.joints[0].double().numpy()
    parents = np.array(SMPL24_PARENTS)
    bone = np.zeros(24)
    bone[1:] = np.linalg.norm(joints[1:] - joints[parents[1:]], axis=1) * 1000.0
    mirrored = joints[list(SMPL24_FLIP_PERM)] * np.array([-1.0, 1.0, 1.0])
    mirror = np.linalg.norm(joints - mirrored, axis=1) * 1000.0
    j = {n: joints[i] for i, n in enumerate(SMPL24_NAMES)}
    anatomy = bool(
        j["head"][1] > j["neck"][1] > j["pelvis"][1]
        and all(j[f"left_{p}"][0] > 0 > j[f"right_{p}"][0]
                for p in ("hip", "shoulder", "elbow", "wrist", "knee", "ankle")))
    verts = out.vertices.double().numpy()
    stature = {n: float(verts[i, :, 1].max() - verts[i, :, 1].min())
               for i, n in enumerate(names)}
    valid = out.keypoint_valid.numpy()
    finite = bool(np.isfinite(out.keypoints.numpy()[:, valid]).all())
    return CheckReport(model.name, model.content_hash, model.keypoint_source, stature, bone,
                       mirror, int(valid.sum()), finite, anatomy, list(model.missing_keypoints))


def format_report(rep: CheckReport) -> str:
    lines = [f"body model: {rep.model}  sha256 {rep.content_hash[:16]}",
             f"keypoints: {rep.keypoints_valid}/49 valid ({rep.keypoint_source}), "
             f"finite in every pose: {rep.keypoints_finite}",
             f"anatomy (head>neck>pelvis, left at +x): {'ok' if rep.anatomy_ok else 'FAILED'}",
             "stature per pose (m): " + ", ".join(f"{k} {v:.3f}" for k, v in rep.stature_m.items()),
             f"{'joint':<16}{'parent':<16}{'bone mm':>9}{'mirror mm':>11}"]
    for i, name in enumerate(SMPL24_NAMES):
        parent = SMPL24_NAMES[SMPL24_PARENTS[i]] if i else "-"
        lines.append(f"{name:<16}{parent:<16}{rep.bone_mm[i]:9.1f}{rep.mirror_mm[i]:11.1f}")
    for m in rep.missing:
        lines.append(f"unavailable keypoint: {m}")
    return "\n".join(lines)


def _draw_mesh(ax, verts: np.ndarray, faces: np.ndarray, axes: tuple[int, int, int],
               flip: tuple[float, float, float]) -> None:
    """Orthographic, painter's-algorithm shaded mesh; axes = (horizontal, up, depth)."""
    from matplotlib.collections import PolyCollection

    v = verts[:, list(axes)] * np.array(flip)
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    facing = normal[:, 2] > 0
    order = np.argsort(tri[facing, :, 2].mean(axis=1))
    shade = 0.35 + 0.6 * np.clip(normal[facing][order] @ np.array([0.3, 0.4, 0.87]), 0, 1)
    colors = np.stack([shade * 0.75, shade * 0.8, shade * 0.95], axis=1)
    ax.add_collection(PolyCollection(tri[facing][order][:, :, :2], facecolors=colors,
                                     edgecolors="none", antialiased=False))


def render_check(names: list[str], out: BodyOutput, faces: np.ndarray, path: Path) -> Path:
    """Front and side view of every pose with the valid 49 keypoints, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    verts = out.vertices.double().numpy()
    kps = out.keypoints.double().numpy()
    valid = out.keypoint_valid.numpy()
    views = (("front", (0, 1, 2), (1.0, 1.0, 1.0)),
             ("side (from left)", (2, 1, 0), (-1.0, 1.0, 1.0)))
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 7.5), squeeze=False)
    lo, hi = verts.reshape(-1, 3).min(0), verts.reshape(-1, 3).max(0)
    half = 0.55 * float((hi - lo).max())
    for col, name in enumerate(names):
        centre = 0.5 * (verts[col].min(0) + verts[col].max(0))
        for row, (vname, ax_ids, flip) in enumerate(views):
            ax = axes[row, col]
            _draw_mesh(ax, verts[col] - centre, faces, ax_ids, flip)
            k = (kps[col] - centre)[:, list(ax_ids)] * np.array(flip)
            op = valid.copy()
            op[25:] = False
            gt = valid.copy()
            gt[:25] = False
            ax.scatter(k[op, 0], k[op, 1], s=9, c="tab:red", zorder=3, label="OpenPose-25")
            ax.scatter(k[gt, 0], k[gt, 1], s=9, c="gold", marker="x", zorder=4, label="GT-24")
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name} - {vname}", fontsize=9)
    axes[0, 0].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_check(model_path=None, out_png: Path | None = Path("out/body_check.png")) -> CheckReport:
    """Load, pose, measure and (if ``out_png``) render; returns the report."""
    model = BodyModel.load(model_path)
    names, out = pose_all(model)
    report = measure(model, names, out)
    if out_png is not None:
        try:
            render_check(names, out, model.faces.numpy(), Path(out_png))
        except ImportError:
            raise SystemExit(
                "eft body check: drawing needs matplotlib: pip install 'eft[viz]'") from None
    return report

