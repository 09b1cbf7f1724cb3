"""The result every body regressor returns."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["RegressorOutput"]


@dataclass(frozen=True)
class RegressorOutput:
    """SMPL parameters and a weak-perspective camera predicted for a batch of B crops.

    Attributes:
        rotmat: (B, 24, 3, 3) SMPL joint rotations (global orientation first), acting on
            column vectors.
        betas: (B, 10) SMPL shape coefficients.
        cam: (B, 3) weak-perspective camera ``[s, tx, ty]`` in EFT's convention: a body
            point ``X`` lands at ``s * X[:2] + [tx, ty]`` in crop-normalised ``[-1, 1]``
            coordinates (translation added after scaling).
        pose6d: (B, 144) the raw 6D pose the regressor produced (24 x 6, SPIN's column
            convention), before Gram-Schmidt; ``None`` when not available.
    """

    rotmat: Tensor
    betas: Tensor
    cam: Tensor
    pose6d: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.rotmat.shape[0])

    @property
    def global_orient(self) -> Tensor:
        """(B, 1, 3, 3) root rotation."""
        return self.rotmat[:, :1]

    @property
    def body_pose(self) -> Tensor:
        """(B, 23, 3, 3) rotations of the 23 non-root joints."""
        return self.rotmat[:, 1:]

    def detach(self) -> RegressorOutput:
        """Copy with every tensor detached from the autograd graph."""
        return RegressorOutput(
            rotmat=self.rotmat.detach(),
            betas=self.betas.detach(),
            cam=self.cam.detach(),
            pose6d=None if self.pose6d is None else self.pose6d.detach(),
        )
