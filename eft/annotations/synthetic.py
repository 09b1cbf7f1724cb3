"""Random but well-formed annotation columns, for tests and the format benchmark."""

from __future__ import annotations

import numpy as np

from eft.fitting.config import FLAGS

from .columns import Columns, _object_array, aa_to_rotmat, rotmat_to_aa, weak_to_cam_t

__all__ = ["random_columns"]


def random_columns(n: int, seed: int = 0, *, id_offset: int = 0) -> Columns:
    """``n`` synthetic annotations with valid values (rotations, positive scales,
    finite numbers, GT keypoints only).  Values come from ``seed``; ids and annotation
    ids are numbered from ``id_offset`` (use distinct offsets for batches of one file).
    """
    rng = np.random.default_rng(seed)
    aa = rng.normal(0.0, 0.35, (n, 72)).astype(np.float32)
    aa[:, :3] = rng.normal(0.0, 1.2, (n, 3))
    rotmat = aa_to_rotmat(aa)
    pose_aa = rotmat_to_aa(rotmat)
    betas = np.clip(rng.normal(0, 1, (n, 10)), -3.5, 3.5).astype(np.float32)
    cam = np.stack([rng.uniform(0.6, 1.2, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n)],
                   axis=1).astype(np.float32)
    center = rng.uniform(100, 900, (n, 2))
    scale = rng.uniform(0.4, 3.0, n)
    kp2d = np.empty((n, 49, 3))
    kp2d[..., :2] = center[:, None] + 100 * scale[:, None, None] * rng.uniform(-1, 1,
                                                                               (n, 49, 2))
    kp2d[..., 2] = (rng.random((n, 49)) < 0.6).astype(np.float64)
    kp2d[:, :25] = 0.0
    kp3d = rng.normal(0, 0.4, (n, 49, 3)).astype(np.float32)
    loss_init = rng.lognormal(-5.5, 1.0, n)
    loss = loss_init * rng.uniform(0.05, 1.0, n)
    flag_pool = np.array(FLAGS[:5], dtype=object)
    picks = rng.random((n, len(flag_pool))) < 0.04
    flags = [tuple(str(f) for f in flag_pool[row]) for row in picks]
    flags_arr = _object_array(flags)
    reproj = rng.gamma(2.0, 4.0, n)
    quality = {
        "loss_2d_init": loss_init, "loss_2d_final": loss, "reproj_px": reproj,
        "reproj_frac_bbox": reproj / (200 * scale), "max_abs_beta": np.abs(betas).max(1)
        .astype(np.float64), "pose_nll": rng.normal(80, 20, n),
        "iterations": rng.integers(1, 21, n).astype(np.int64),
        "n_valid_keypoints": (kp2d[:, 25:, 2] > 0).sum(1).astype(np.int64),
        "converged": rng.random(n) < 0.6,
        "accepted": np.array([not f for f in flags]),
        "flags": flags_arr,
    }
    ids = [f"synthetic/{seed}/{id_offset + i}" for i in range(n)]
    metas = [{"annotId": int(seed * 10_000_000 + id_offset + i),
              "imageName": f"{seed:04d}_{(id_offset + i) // 3:09d}.jpg",
              "dataset": "synthetic"} for i in range(n)]
    return Columns(
        fit_id=_object_array(ids), rotmat=rotmat, pose_aa=pose_aa, betas=betas,
        cam_weak=cam, cam_t=weak_to_cam_t(cam), keypoints3d=kp3d, center=center,
        scale=scale, keypoints2d=kp2d, quality=quality,
        image_path=_object_array([f"images/{m['imageName']}" for m in metas]),
        source=_object_array(["coco17"] * n),
        image_size=np.tile(np.array([[1000, 1000]], np.int64), (n, 1)),
        meta=_object_array(metas))
