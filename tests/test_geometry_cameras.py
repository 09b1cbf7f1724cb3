"""Tests for eft.geometry.cameras and eft.geometry.crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eft import geometry as G

SETTINGS = settings(max_examples=50, deadline=None)
F64 = torch.float64


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def _floats(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


seeds = st.integers(0, 2**31 - 1)
cams = st.tuples(_floats(0.2, 3.0), _floats(-2.0, 2.0), _floats(-2.0, 2.0)).map(t64)
focals = _floats(100.0, 1e4)
resolutions = st.sampled_from([224, 256, 500])
centers = st.tuples(_floats(-500.0, 2500.0), _floats(-500.0, 2500.0)).map(t64)
scales = _floats(0.05, 10.0)
rotations = st.one_of(st.just(0.0), _floats(-180.0, 180.0))


def _points(seed: int, shape, lo: float, hi: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=F64)


# ----------------------------------------------------------------------------- cameras


def test_weak_perspective_hand_example():
    pts = t64([[[1.0, 2.0, 3.0], [0.0, -1.0, 7.0]]])
    cam = t64([[2.0, 0.1, -0.2]])
    out = G.weak_perspective_project(pts, cam)
    torch.testing.assert_close(out, t64([[[2.1, 3.8], [0.1, -2.2]]]))


def test_perspective_project_hand_example():
    pts = t64([[1.0, 2.0, 10.0], [0.0, 0.0, 5.0]])
    out = G.perspective_project(pts, t64([0.0, 0.0, 0.0]), 100.0, t64([50.0, 60.0]))
    torch.testing.assert_close(out, t64([[60.0, 80.0], [50.0, 60.0]]))
    # Translation is added before the division; no principal point -> centred offsets.
    out = G.perspective_project(pts, t64([1.0, 0.0, 10.0]), t64(100.0))
    torch.testing.assert_close(out, t64([[10.0, 10.0], [100.0 / 15.0, 0.0]]))
    # Optional rotation: +90 deg about z maps x onto y before translating.
    rz = t64([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = G.perspective_project(t64([[1.0, 0.0, 0.0]]), t64([0.0, 0.0, 2.0]), 4.0, rotation=rz)
    torch.testing.assert_close(out, t64([[0.0, 2.0]]))


def test_weak_to_perspective_hand_example():
    t = G.weak_to_perspective_translation(t64([0.5, 0.25, -0.1]), 5000.0, 224)
    torch.testing.assert_close(t, t64([0.5, -0.2, 2 * 5000.0 / (224 * 0.5)]))


@SETTINGS
@given(cams, focals, resolutions)
def test_weak_perspective_translation_round_trip(cam, focal, res):
    t = G.weak_to_perspective_translation(cam, focal, res)
    torch.testing.assert_close(G.perspective_translation_to_weak(t, focal, res), cam)
    cam_back = G.perspective_translation_to_weak(t, t64(focal), t64(float(res)))
    torch.testing.assert_close(G.weak_to_perspective_translation(cam_back, focal, res), t)


@SETTINGS
@given(seeds, st.tuples(_floats(0.5, 1.5), _floats(-0.5, 0.5), _floats(-0.5, 0.5)).map(t64))
def test_perspective_matches_weak_perspective_at_large_depth(seed, cam):
    """Body-sized cloud (|X| <= 1 m), f = 5000, 224 crop: tz >= 29.8 m, so the
    normalised-coordinate error |weak| * |Z| / (Z + tz) is below 0.1 (about 11 crop px);
    shrinking the cloud 1000x brings it below 1e-4."""
    focal, res = 5000.0, 224
    pts = _points(seed, (17, 3), -1.0, 1.0)
    t = G.weak_to_perspective_translation(cam, focal, res)
    c = t64([res / 2, res / 2])
    for extent, tol in ((1.0, 0.1), (1e-3, 1e-4)):
        weak = G.weak_perspective_project(pts * extent, cam)
        px = G.perspective_project(pts * extent, t, focal, c)
        persp = G.crop_px_to_norm(px, res)
        assert (persp - weak).abs().max() < tol
        # Exact relation between the two models: persp = weak * tz / (Z + tz).
        tz = t[2]
        torch.testing.assert_close(persp, weak * tz / (pts[:, 2:] * extent + tz))
    # Points on the Z = 0 plane project identically.
    flat = pts.clone()
    flat[:, 2] = 0.0
    px = G.perspective_project(flat, t, focal, c)
    torch.testing.assert_close(G.crop_px_to_norm(px, res), G.weak_perspective_project(flat, cam))


def test_crop_norm_to_image_hand_example():
    out = G.crop_norm_to_image(t64([[1.0, -0.5], [0.0, 0.0]]), t64([100.0, 50.0]), 2.0)
    torch.testing.assert_close(out, t64([[300.0, -50.0], [100.0, 50.0]]))


@SETTINGS
@given(seeds, centers, scales)
def test_crop_norm_image_round_trip(seed, center, scale):
    x = _points(seed, (3, 6, 2), -1.5, 1.5)
    img = G.crop_norm_to_image(x, center, scale)
    torch.testing.assert_close(G.image_to_crop_norm(img, center, scale), x)
    y = _points(seed + 1, (3, 6, 2), -100.0, 2000.0)
    torch.testing.assert_close(G.crop_norm_to_image(G.image_to_crop_norm(y, center, t64(scale)),
                                                    center, scale), y)


@SETTINGS
@given(
    seeds,
    st.tuples(_floats(0.7, 1.2), _floats(-0.3, 0.3), _floats(-0.3, 0.3)).map(t64),
    st.tuples(_floats(0.0, 1920.0), _floats(0.0, 1080.0)).map(t64),
    _floats(100.0, 400.0),
)
def test_crop_cam_to_full_image_translation(seed, cam, center, bbox_px):
    """Body-sized cloud (|X|, |Y| <= 1 m, |Z| <= 0.3 m) in a 1920x1080 image with a
    100-400 px bbox and f = 5000: tz >= 20.8 m, so full-image perspective pixels agree
    with the weak-perspective crop pixels to within 2% of their distance from the image
    centre; exactly for the body origin and for points with Z = 0."""
    focal, scale = 5000.0, bbox_px / 200.0
    img_size = t64([1920.0, 1080.0])
    pp = img_size / 2
    pts = _points(seed, (25, 3), -1.0, 1.0) * t64([1.0, 1.0, 0.3])
    pts[0] = 0.0  # the body origin
    t = G.crop_cam_to_full_image_translation(cam, center, scale, img_size, focal)
    persp = G.perspective_project(pts, t, focal, pp)
    weak = G.crop_norm_to_image(G.weak_perspective_project(pts, cam), center, scale)
    torch.testing.assert_close(persp[0], weak[0], atol=1e-8, rtol=0)
    off = (weak - pp).norm(dim=-1)
    assert ((persp - weak).norm(dim=-1) <= 0.02 * off + 1e-8).all()
    # Exact relation: persp - pp = (weak - pp) * tz / (Z + tz).
    torch.testing.assert_close(persp - pp, (weak - pp) * t[2] / (pts[:, 2:] + t[2]))
    flat = pts.clone()
    flat[:, 2] = 0.0
    torch.testing.assert_close(
        G.perspective_project(flat, t, focal, pp),
        G.crop_norm_to_image(G.weak_perspective_project(flat, cam), center, scale),
    )


@SETTINGS
@given(cams, resolutions)
def test_full_image_translation_reduces_to_crop_translation(cam, res):
    """A 'crop' that is the whole res x res image gives weak_to_perspective_translation."""
    half = t64([res / 2, res / 2])
    t_full = G.crop_cam_to_full_image_translation(cam, half, res / 200.0, 2 * half, 5000.0)
    torch.testing.assert_close(t_full, G.weak_to_perspective_translation(cam, 5000.0, res))


def test_crop_cam_to_full_image_translation_broadcasts():
    cam = t64([[1.0, 0.1, 0.2], [0.8, 0.0, 0.0]])
    out = G.crop_cam_to_full_image_translation(cam, t64([300.0, 200.0]), 1.5,
                                               t64([640.0, 480.0]), t64([[5000.0], [1000.0]]))
    assert out.shape == (2, 2, 3)
    torch.testing.assert_close(out[1, 0, 2], t64(2 * 1000.0 / (300.0 * 1.0)))


# ----------------------------------------------------------------------------- crops


def test_bbox_to_center_scale_hand_example():
    center, scale = G.bbox_to_center_scale(t64([[10.0, 20.0, 100.0, 50.0],
                                                [0.0, 0.0, 30.0, 60.0]]))
    torch.testing.assert_close(center, t64([[60.0, 45.0], [15.0, 30.0]]))
    torch.testing.assert_close(scale, t64([0.6, 1.2 * 60.0 / 200.0]))
    _, s1 = G.bbox_to_center_scale(t64([0.0, 0.0, 30.0, 60.0]), rescale=1.0)
    torch.testing.assert_close(s1, t64(0.3))


def test_image_to_crop_hand_example():
    c = t64([100.0, 100.0])
    pts = t64([[100.0, 100.0], [200.0, 0.0], [200.0, 100.0]])
    torch.testing.assert_close(G.image_to_crop(pts, c, 1.0, 224),
                               t64([[112.0, 112.0], [224.0, 0.0], [224.0, 112.0]]))
    # rot = 90: content turns counter-clockwise on screen, so "right of centre" -> "up".
    out = G.image_to_crop(pts, c, 1.0, 224, 90.0)
    torch.testing.assert_close(out, t64([[112.0, 112.0], [0.0, 0.0], [112.0, 0.0]]))


def _spin_get_transform(center, scale, res, rot):
    """SPIN's utils/imutils.get_transform, re-typed as an independent reference."""
    h = 200 * scale
    t = np.zeros((3, 3))
    t[0, 0] = float(res) / h
    t[1, 1] = float(res) / h
    t[0, 2] = res * (-float(center[0]) / h + 0.5)
    t[1, 2] = res * (-float(center[1]) / h + 0.5)
    t[2, 2] = 1
    if rot != 0:
        rot = -rot
        rot_mat = np.zeros((3, 3))
        rot_rad = rot * np.pi / 180
        sn, cs = np.sin(rot_rad), np.cos(rot_rad)
        rot_mat[0, :2] = [cs, -sn]
        rot_mat[1, :2] = [sn, cs]
        rot_mat[2, 2] = 1
        t_mat = np.eye(3)
        t_mat[0, 2] = -res / 2
        t_mat[1, 2] = -res / 2
        t_inv = t_mat.copy()
        t_inv[:2, 2] *= -1
        t = t_inv @ rot_mat @ t_mat @ t
    return t


@SETTINGS
@given(seeds, centers, scales, resolutions, rotations)
def test_image_to_crop_matches_spin_transform(seed, center, scale, res, rot):
    pts = _points(seed, (7, 2), -200.0, 2200.0)
    mat = _spin_get_transform(center.numpy(), scale, res, rot)
    homog = np.concatenate([pts.numpy(), np.ones((7, 1))], axis=1)
    ref = torch.from_numpy((homog @ mat.T)[:, :2])
    torch.testing.assert_close(G.image_to_crop(pts, center, scale, res, rot), ref)


@SETTINGS
@given(seeds, centers, scales, resolutions, rotations)
def test_image_crop_round_trip_with_rotation(seed, center, scale, res, rot):
    pts = _points(seed, (2, 9, 2), -200.0, 2200.0)
    crop = G.image_to_crop(pts, center, scale, res, rot)
    torch.testing.assert_close(G.crop_to_image(crop, center, scale, res, rot), pts)
    cp = _points(seed + 7, (2, 9, 2), -50.0, 300.0)
    back = G.image_to_crop(G.crop_to_image(cp, center, scale, res, rot), center, scale, res, rot)
    torch.testing.assert_close(back, cp)


def test_batched_rotation_angles():
    pts = t64([[[200.0, 100.0]], [[200.0, 100.0]]])
    center = t64([100.0, 100.0])
    rot = t64([90.0, -90.0])
    out = G.image_to_crop(pts, center, 1.0, 224, rot)
    torch.testing.assert_close(out, t64([[[112.0, 0.0]], [[112.0, 224.0]]]))
    torch.testing.assert_close(G.crop_to_image(out, center, 1.0, 224, rot), pts)


@SETTINGS
@given(seeds, centers, scales, resolutions)
def test_crops_consistent_with_camera_normalisation(seed, center, scale, res):
    pts = _points(seed, (11, 2), -200.0, 2200.0)
    via_crop = G.crop_px_to_norm(G.image_to_crop(pts, center, scale, res), res)
    torch.testing.assert_close(via_crop, G.image_to_crop_norm(pts, center, scale))
    xn = _points(seed + 3, (11, 2), -1.2, 1.2)
    torch.testing.assert_close(G.crop_to_image(G.norm_to_crop_px(xn, res), center, scale, res),
                               G.crop_norm_to_image(xn, center, scale))
    torch.testing.assert_close(G.norm_to_crop_px(G.crop_px_to_norm(pts, res), res), pts)


def test_norm_helpers_hand_example():
    torch.testing.assert_close(G.crop_px_to_norm(t64([0.0, 112.0, 224.0])), t64([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(G.norm_to_crop_px(t64([-1.0, 0.5]), 256), t64([0.0, 192.0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_crop_helpers_differentiable(dtype):
    pts = torch.tensor([[150.0, 80.0]], dtype=dtype, requires_grad=True)
    rot = torch.tensor(30.0, dtype=dtype, requires_grad=True)
    out = G.crop_to_image(G.image_to_crop(pts, torch.tensor([100.0, 90.0], dtype=dtype), 1.3,
                                          224, rot), torch.tensor([100.0, 90.0], dtype=dtype),
                          1.3, 224, rot)
    out.sum().backward()
    torch.testing.assert_close(pts.grad, torch.ones_like(pts))
    assert rot.grad is not None and abs(rot.grad.item()) < 1e-3
    assert math.isfinite(rot.grad.item())


def test_one_focal_length_default():
    """SPIN/EFT's 5000 px on the 224 px crop is defined once and every default uses it."""
    import inspect

    from eft.annotations.columns import weak_to_cam_t
    from eft.annotations.provenance import CAMERA_CONVENTION
    from eft.annotations.validate import validate_columns
    from eft.fitting.config import EFTConfig
    from eft.fitting.smplify import SmplifyConfig

    assert G.FOCAL_LENGTH == 5000.0
    defaults = [inspect.signature(f).parameters[name].default for f, name in (
        (G.weak_to_perspective_translation, "focal"),
        (G.perspective_translation_to_weak, "focal"),
        (G.perspective_project, "focal"),
        (G.crop_cam_to_full_image_translation, "focal"),
        (weak_to_cam_t, "focal"),
        (validate_columns, "focal_length"))]
    defaults += [EFTConfig().focal_length, SmplifyConfig().focal_length,
                 CAMERA_CONVENTION["focal_length"]]
    assert all(d is G.FOCAL_LENGTH for d in defaults), defaults
