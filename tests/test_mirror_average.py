"""``EFTConfig.mirror_average``: EFT of each exemplar and of its mirror image, averaged.

Independent references: mirroring twice is the identity; the average is equivariant
(the averaged fit of the mirror image is the mirror of the averaged fit, which holds only
if the mirror, its inverse and the averaging are all right); its reported 2D loss is
EFT's loss of the averaged body recomputed here; and it is the chordal mean of the two
single fits computed here by hand from ``fit_sequential``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eft.body.fast import KeypointLBS
from eft.body.joints import flip_smpl_rotmat
from eft.errors import EftError
from eft.fitting import EFTConfig, FitTargets, exemplar_batch, fit, fit_flat, mirror_targets
from eft.fitting.engine import fit_sequential
from eft.fitting.losses import eft_loss, sanitize_keypoints
from eft.models import load_regressor
from eft.models.output import RegressorOutput
from eft.synthetic.exemplars import SyntheticConfig, generate

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = EFTConfig(lr=3e-4, max_iters=5, scope="bias", with_ankles=True, mirror_average=True)
FLIP_CAM = np.array([1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def prior():
    return load_regressor("default")


@pytest.fixture(scope="module")
def targets(body) -> FitTargets:
    g = torch.Generator().manual_seed(4)
    poses = (torch.randn(6, 72, generator=g, dtype=torch.float64) * 0.3).numpy()
    cfg = SyntheticConfig(truncation_prob=0.0)
    return exemplar_batch(list(generate(poses, 6, seed=4, config=cfg, body=body).exemplars()))


def test_mirror_targets_is_an_involution_that_swaps_sides(targets):
    once = mirror_targets(targets)
    twice = mirror_targets(once)
    assert torch.equal(sanitize_keypoints(twice.keypoints), sanitize_keypoints(targets.keypoints))
    assert once.ids == targets.ids
    # SPIN-49 slot 27 is the right hip, 28 the left hip (GT slots): swapped and x negated
    kp, m = targets.keypoints, once.keypoints
    assert torch.equal(m[:, 27, 0], -kp[:, 28, 0]) and torch.equal(m[:, 27, 1], kp[:, 28, 1])


def test_averaged_fit_is_mirror_equivariant(body, prior, targets):
    a = fit(prior, body, targets, CFG, progress=False, pose_prior=None)
    b = fit(prior, body, mirror_targets(targets), CFG, progress=False, pose_prior=None)
    for fa, fb in zip(a, b, strict=True):
        back = flip_smpl_rotmat(torch.as_tensor(fb.rotmat)[None])[0].numpy()
        np.testing.assert_allclose(back, fa.rotmat, atol=2e-5)
        np.testing.assert_allclose(fb.betas, fa.betas, atol=2e-5)
        np.testing.assert_allclose(fb.cam_weak * FLIP_CAM, fa.cam_weak, atol=2e-5)
        assert fa.quality.loss_2d_final == pytest.approx(fb.quality.loss_2d_final, rel=1e-3)


def test_average_is_the_chordal_mean_of_the_two_sequential_fits(body, prior, targets):
    got = fit(prior, body, targets, CFG, progress=False, pose_prior=None)
    single = CFG.replace(mirror_average=False)
    direct = fit_sequential(prior, body, targets, single)
    mirrored = fit_sequential(prior, body, mirror_targets(targets), single)
    fast = KeypointLBS(body)
    for g, d, m in zip(got, direct, mirrored, strict=True):
        back = flip_smpl_rotmat(torch.as_tensor(m.rotmat, dtype=torch.float64)[None])[0]
        mean = 0.5 * (torch.as_tensor(d.rotmat, dtype=torch.float64) + back)
        u, _, vh = np.linalg.svd(mean.numpy())  # projection onto SO(3), joint by joint
        ref = np.stack([uj @ np.diag([1.0, 1.0, np.linalg.det(uj @ vj)]) @ vj
                        for uj, vj in zip(u, vh, strict=True)])
        np.testing.assert_allclose(g.rotmat, ref, atol=2e-5)
        np.testing.assert_allclose(g.betas, 0.5 * (d.betas + m.betas), atol=2e-5)
        np.testing.assert_allclose(g.cam_weak, 0.5 * (d.cam_weak + m.cam_weak * FLIP_CAM),
                                   atol=2e-5)
        assert g.quality.iterations == d.quality.iterations
        assert g.quality.loss_2d_init == pytest.approx(d.quality.loss_2d_init, rel=1e-5)
    # the reported 2D loss is EFT's loss of the averaged body
    out = RegressorOutput(rotmat=torch.as_tensor(np.stack([f.rotmat for f in got])),
                          betas=torch.as_tensor(np.stack([f.betas for f in got])),
                          cam=torch.as_tensor(np.stack([f.cam_weak for f in got])))
    _, l2d = eft_loss(out, sanitize_keypoints(targets.keypoints), single, fast)
    np.testing.assert_allclose([f.quality.loss_2d_final for f in got], l2d.numpy(), rtol=1e-4)
    # averaging two fits of the labels still fits them about as well as either one
    assert np.mean([f.quality.loss_2d_final for f in got]) < 1.5 * np.mean(
        [f.quality.loss_2d_final for f in direct])


def test_keypoint_inputs_are_mirrored_as_keypoints(body, prior, targets):
    """A keypoint regressor given its keypoints as explicit ``inputs`` fits exactly as
    without them, mirror average included (its inputs mirror like the keypoints)."""
    explicit = FitTargets(targets.keypoints, targets.keypoints.clone(), targets.ids,
                          targets.centers, targets.scales)
    assert torch.equal(mirror_targets(explicit).inputs, mirror_targets(targets).keypoints)
    a = fit(prior, body, targets, CFG, progress=False, pose_prior=None)
    b = fit(prior, body, explicit, CFG, progress=False, pose_prior=None)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_allclose(fb.rotmat, fa.rotmat, atol=1e-6)


def test_mirror_average_refuses_what_it_cannot_do(body, prior, targets):
    with pytest.raises(EftError, match="keep_params"):
        fit(prior, body, targets, CFG, progress=False, keep_params=True)
    with pytest.raises(EftError, match="applied by eft.fitting.fit"):
        fit_flat(prior, body, targets, CFG)


def test_jobs_take_mirror_average_from_the_eft_section():
    from eft.jobs.config import config_from_dict

    ds = [{"kind": "coco", "path": "x.json"}]
    cfg = config_from_dict({"datasets": ds, "eft": {"mirror_average": True}}).eft
    assert cfg.mirror_average and cfg.scope == "bias"  # on top of open-prior
