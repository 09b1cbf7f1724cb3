"""SPIN-49 keypoints without skinning the mesh.

Linear blend skinning is linear in the vertices, and so is the keypoint map
``keypoints = W_v @ vertices + W_j @ joints``.  Contracting ``W_v`` with the
skinning weights ahead of time leaves, per keypoint k and joint j, a 3-vector
that depends linearly on the betas (and on the pose-corrective features), so::

    kp_k = sum_j  A_j[:3,:3] @ P[k,j] + A_j[:3,3] * c[k,j]   (+ W_j @ posed joints)

with ``A_j`` smplx's relative joint transforms.  This is exact, pose correctives
included, and costs O(49 * 24) per body instead of O(V * 24).

The kinematic chain (:func:`rigid_transform_levels`) is evaluated level by level of the
tree: one batched 4x4 product per depth (8 for SMPL) instead of smplx's 23 sequential
products, each of which also reads its parent index with a ``.item()``.  Every entry is
the same 4-term dot product in the same order as in
:func:`smplx.lbs.batch_rigid_transform`, so the results are identical bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eft.body.model import BodyModel


def kinematic_levels(parents: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """The tree ``parents`` (J,) (root first, ``parents[0]`` ignored) split by depth.

    Returns, for each depth d >= 1, ``(joints, parent_positions)``: the joints at depth d
    and, for each, the position of its parent in the concatenation of the earlier levels'
    joints (root first), which is the order :func:`rigid_transform_levels` builds.
    """
    parents = [int(p) for p in parents]
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        if not 0 <= parents[j] < j:
            raise ValueError(f"joint {j}'s parent {parents[j]} does not come before it")
        depth[j] = depth[parents[j]] + 1
    order = [0]
    levels = []
    for d in range(1, max(depth, default=0) + 1):
        joints = [j for j in range(1, len(parents)) if depth[j] == d]
        position = {j: i for i, j in enumerate(order)}
        levels.append((joints, [position[parents[j]] for j in joints]))
        order += joints
    return levels


def rigid_transform_levels(rot_mats: Tensor, joints: Tensor, parents: Sequence[int],
                           levels: list[tuple[list[int], list[int]]] | None = None,
                           ) -> tuple[Tensor, Tensor]:
    """:func:`smplx.lbs.batch_rigid_transform`, one batched product per tree level.

    Args:
        rot_mats: (B, J, 3, 3) local joint rotations.
        joints: (B, J, 3) rest joint locations.
        parents: (J,) parent indices as Python ints (``parents[0]`` is the root's).
        levels: :func:`kinematic_levels` of ``parents`` (computed when None).

    Returns:
        ``(posed_joints (B, J, 3), rel_transforms (B, J, 4, 4))``, bit-identical to
        smplx's.
    """
    if levels is None:
        levels = kinematic_levels(parents)
    device = joints.device
    joints = joints.unsqueeze(-1)  # (B, J, 3, 1)
    idx = torch.tensor(list(parents[1:]), dtype=torch.long, device=device)
    rel_joints = torch.cat((joints[:, :1], joints[:, 1:] - joints[:, idx]), dim=1)
    local = torch.cat((F.pad(rot_mats, [0, 0, 0, 1]),
                       F.pad(rel_joints, [0, 0, 0, 1], value=1)), dim=3)  # (B, J, 4, 4)
    order = [0]
    for level_joints, _ in levels:
        order += level_joints
    # the local transforms in level order: each level is a contiguous slice
    local = local.index_select(1, torch.tensor(order, dtype=torch.long, device=device))
    pieces = [local[:, :1]]
    start = 1
    for level_joints, parent_pos in levels:
        world = torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]
        stop = start + len(level_joints)
        par = torch.tensor(parent_pos, dtype=torch.long, device=device)
        pieces.append(torch.matmul(world.index_select(1, par), local[:, start:stop]))
        start = stop
    inverse = [0] * len(order)
    for position, j in enumerate(order):
        inverse[j] = position
    transforms = torch.cat(pieces, dim=1).index_select(
        1, torch.tensor(inverse, dtype=torch.long, device=device))
    posed_joints = transforms[:, :, :3, 3]
    joints_homogen = F.pad(joints, [0, 0, 0, 1])
    rel_transforms = transforms - F.pad(torch.matmul(transforms, joints_homogen),
                                        [3, 0, 0, 0, 0, 0, 0, 0])
    return posed_joints, rel_transforms


class KeypointLBS(nn.Module):
    """Precontracted keypoint path of a :class:`BodyModel` (same outputs, no mesh).

    ``forward(rotmats (B,24,3,3), betas (B,nb), transl (B,3) | None)`` returns
    ``(keypoints (B,49,3), joints (B,24,3))``.
    """

    # buffers (registered in __init__), declared for type checkers
    c: Tensor
    p_template: Tensor
    p_shape: Tensor
    p_pose: Tensor | None
    j_template: Tensor
    j_shape: Tensor
    kp_joint_weights: Tensor
    kp_total: Tensor
    parents: Tensor

    def __init__(self, body: BodyModel) -> None:
        super().__init__()
        smpl = body.smpl
        w_v = body.kp_vertex_weights.double()  # (49, V)
        lbs_w = smpl.lbs_weights.double()  # (V, 24)
        v_t = smpl.v_template.double()  # (V, 3)
        shapedirs = smpl.shapedirs.double()  # (V, 3, nb)
        posedirs = smpl.posedirs.double()  # (207, V*3)
        j_reg = smpl.J_regressor.double()  # (24, V)
        m = w_v[:, None, :] * lbs_w.T[None]  # (49, 24, V)
        self.register_buffer("c", m.sum(-1).float())
        self.register_buffer("p_template", torch.einsum("kjv,vc->kjc", m, v_t).float())
        self.register_buffer("p_shape", torch.einsum("kjv,vcb->kjcb", m, shapedirs).float())
        pd = posedirs.reshape(posedirs.shape[0], -1, 3)  # (207, V, 3)
        self.has_correctives = bool(pd.abs().max() > 0)
        p_pose = torch.einsum("kjv,pvc->kjcp", m, pd) if self.has_correctives else None
        self.register_buffer("p_pose", None if p_pose is None else p_pose.float())
        self.register_buffer("j_template", (j_reg @ v_t).float())  # (24, 3)
        self.register_buffer("j_shape", torch.einsum("jv,vcb->jcb", j_reg, shapedirs).float())
        self.register_buffer("kp_joint_weights", body.kp_joint_weights.clone())
        # total weight of each keypoint (1 for defined ones, 0 for masked ones)
        self.register_buffer("kp_total", self.c.sum(1) + body.kp_joint_weights.sum(1))
        self.register_buffer("parents", smpl.parents.clone())
        self._parents = [int(p) for p in smpl.parents.tolist()]
        self._levels = kinematic_levels(self._parents)
        self.num_betas = body.num_betas

    def forward(self, rotmats: Tensor, betas: Tensor | None = None,
                transl: Tensor | None = None) -> tuple[Tensor, Tensor]:
        batch = rotmats.shape[0]
        dtype = self.c.dtype
        rotmats = rotmats.reshape(batch, 24, 3, 3).to(dtype)
        if betas is None:
            betas = rotmats.new_zeros(batch, self.num_betas)
        betas = betas.to(dtype)[:, : self.num_betas]
        if betas.shape[1] < self.num_betas:
            betas = torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[1]))
        rest_joints = self.j_template + torch.einsum("jcb,nb->njc", self.j_shape, betas)
        posed_joints, rel = rigid_transform_levels(rotmats, rest_joints, self._parents,
                                                   self._levels)
        p = self.p_template + torch.einsum("kjcb,nb->nkjc", self.p_shape, betas)
        if self.p_pose is not None:
            eye = torch.eye(3, dtype=dtype, device=rotmats.device)
            feat = (rotmats[:, 1:] - eye).reshape(batch, -1)
            p = p + torch.einsum("kjcp,np->nkjc", self.p_pose, feat)
        kp = (torch.einsum("njrc,nkjc->nkr", rel[:, :, :3, :3], p)
              + torch.einsum("njr,kj->nkr", rel[:, :, :3, 3], self.c)
              + torch.einsum("kj,njr->nkr", self.kp_joint_weights, posed_joints))
        if transl is not None:
            kp = kp + transl.to(dtype)[:, None] * self.kp_total[:, None]
            posed_joints = posed_joints + transl.to(dtype)[:, None]
        return kp, posed_joints
