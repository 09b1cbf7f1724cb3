"""SPIN-49 keypoints without skinning the mesh.

Linear blend skinning is linear in the vertices, and so is the keypoint map
``keypoints = W_v @ vertices + W_j @ joints``.  Contracting ``W_v`` with the
skinning weights ahead of time leaves, per keypoint k and joint j, a 3-vector
that depends linearly on the betas (and on the pose-corrective features), so::

    kp_k = sum_j  A_j[:3,:3] @ P[k,j] + A_j[:3,3] * c[k,j]   (+ W_j @ posed joints)

with ``A_j`` smplx's relative joint transforms.  This is exact, pose correctives
included, and costs O(49 * 24) per body instead of O(V * 24).
"""

from __future__ import annotations

import torch
from smplx.lbs import batch_rigid_transform
from torch import Tensor, nn

from eft.body.model import BodyModel


class KeypointLBS(nn.Module):
    """Precontracted keypoint path of a :class:`BodyModel` (same outputs, no mesh).

    ``forward(rotmats (B,24,3,3), betas (B,nb), transl (B,3) | None)`` returns
    ``(keypoints (B,49,3), joints (B,24,3))``.
    """

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
        posed_joints, rel = batch_rigid_transform(rotmats, rest_joints, self.parents, dtype)
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
