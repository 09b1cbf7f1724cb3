"""``eft body check``: pose a body model in canonical poses, measure it, draw it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eft.body.joints import SMPL24_FLIP_PERM, SMPL24_NAMES, SMPL24_PARENTS
from eft.body.model import BodyModel, BodyOutput
from eft.body.poses import canonical_poses
from eft.render import draw_keypoints, framing_camera, grid, label, render_mesh, save_png


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


# Body frame (y up, the body faces +z) -> the renderer's camera frame (x right, y down,
# looking down +z), for a viewer in front of the body and one at its left (+x) side.
_VIEWS: tuple[tuple[str, np.ndarray], ...] = (
    ("front", np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])),
    ("side (from left)", np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])),
)


def render_check(names: list[str], out: BodyOutput, faces: np.ndarray, path: Path,
                 tile: int = 288) -> Path:
    """Front and side view of every pose with the valid 49 keypoints, saved as PNG.

    Drawn with :mod:`eft.render` (the project's one renderer; this command-line tool
    sits above both the body and the render layers): one column per pose, rows front /
    side, a common scale, OpenPose-25 keypoints as red dots and the 24 ground-truth
    keypoints as gold crosses.
    """
    verts = out.vertices.double()
    kps = out.keypoints.double()
    valid = out.keypoint_valid.numpy()
    extent = 1.1 * float((verts.reshape(-1, 3).amax(0) - verts.reshape(-1, 3).amin(0)).max())
    rows = []
    for vname, rot in _VIEWS:
        r = torch.from_numpy(rot)
        v_cam, k_cam = verts @ r.T, kps @ r.T
        camera = framing_camera(v_cam, (tile, tile), margin=0.03, extent=extent)
        images = render_mesh(v_cam, faces, camera, (tile, tile), supersample=2)
        k_px = camera.project(k_cam)[..., :2].numpy()
        row = []
        for col, name in enumerate(names):
            im = images.image(col)
            conf = np.zeros((49, 1))
            conf[:25, 0] = valid[:25]
            im = draw_keypoints(im, np.hstack((k_px[col], conf)), edges=(),
                                color=(214, 39, 40), radius=2.5)
            conf = np.zeros((49, 1))
            conf[25:, 0] = valid[25:]
            im = draw_keypoints(im, np.hstack((k_px[col], conf)), edges=(),
                                color=(230, 190, 0), radius=2.5, width=1, marker="cross")
            row.append(label(im, f"{name} - {vname}", size=12))
        rows.append(row)
    body = grid(rows)
    legend = label(np.full((22, body.shape[1], 3), 255, np.uint8),
                   "red dots: OpenPose-25 keypoints   gold crosses: GT-24 keypoints", size=12)
    return save_png(grid([[body], [legend]]), path)


def run_check(model_path=None, out_png: Path | None = Path("out/body_check.png")) -> CheckReport:
    """Load, pose, measure and (if ``out_png``) render; returns the report."""
    model = BodyModel.load(model_path)
    names, out = pose_all(model)
    report = measure(model, names, out)
    if out_png is not None:
        render_check(names, out, model.faces.numpy(), Path(out_png))
    return report

