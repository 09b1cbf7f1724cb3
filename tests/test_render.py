"""eft.render: rasteriser, shading, cameras, drawing and fit views against independent
references (analytic point-in-triangle, cube areas, ray-plane depths, cos law)."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from eft.errors import EftError
from eft.render import (
    ANNOTATED_COLOR,
    FITTED_COLOR,
    RESIDUAL_COLOR,
    FitView,
    PerspectiveCamera,
    RenderError,
    WeakPerspectiveCamera,
    display_crop,
    draw_keypoint_comparison,
    draw_keypoints,
    overlay,
    rasterize,
    render_fit_panel,
    render_mesh,
    rotate_about_vertical,
    save_png,
    side_camera,
    skeleton_edges,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _inside_reference(tri: np.ndarray, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same-side test with edge cross products (float64): (inside, min |distance| to an
    edge line) for points px (N, 2) and a triangle (3, 2)."""
    signs, dist = [], []
    for i in range(3):
        a, b = tri[i], tri[(i + 1) % 3]
        e = b - a
        cross = e[0] * (px[:, 1] - a[1]) - e[1] * (px[:, 0] - a[0])
        signs.append(cross)
        dist.append(np.abs(cross) / np.linalg.norm(e))
    s = np.stack(signs)
    inside = (s >= 0).all(0) | (s <= 0).all(0)
    return inside, np.min(dist, axis=0)


def test_single_triangle_coverage_matches_point_in_triangle():
    rng = np.random.default_rng(0)
    h, w = 37, 53
    yy, xx = np.mgrid[0:h, 0:w]
    centres = np.stack((xx.ravel(), yy.ravel()), 1).astype(np.float64)
    checked = 0
    for _ in range(25):
        tri = rng.uniform(-15, 65, size=(3, 2))  # some triangles stick out of the image
        screen = torch.tensor(np.hstack((tri, np.ones((3, 1)))), dtype=torch.float32)[None]
        frags = rasterize(screen, torch.tensor([[0, 1, 2]]), (h, w))
        ref, dist = _inside_reference(tri.astype(np.float32).astype(np.float64), centres)
        clear = dist > 1e-4  # pixel centres that are not on an edge line
        got = frags.mask[0].numpy().ravel()
        assert np.array_equal(got[clear], ref[clear])
        checked += int(ref.sum())
        # The barycentrics reproduce the pixel centre.
        bary = frags.bary[0].numpy().reshape(-1, 3)[got]
        np.testing.assert_allclose(bary @ tri.astype(np.float32), centres[got], atol=2e-3)
        assert np.all(frags.face[0].numpy().ravel()[~got] == -1)
    assert checked > 2000


def test_shared_edge_leaves_no_crack_or_overlap_gap():
    # A square split along its diagonal: every pixel centre inside the square is covered.
    sq = torch.tensor([[2.3, 3.1, 0], [40.7, 3.1, 0], [40.7, 30.9, 0], [2.3, 30.9, 0]])
    frags = rasterize(sq[None], torch.tensor([[0, 1, 2], [0, 2, 3]]), (35, 45))
    m = frags.mask[0].numpy()
    assert m[4:31, 3:41].all() and m.sum() == 27 * 38


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_nearer_triangle_wins_regardless_of_order(order):
    near = [[5, 5, 1.0], [60, 8, 1.0], [20, 50, 1.0]]
    far = [[10, 2, 2.0], [55, 40, 2.0], [2, 45, 2.0]]
    tris = [near, far]
    verts = torch.tensor([tris[order[0]], tris[order[1]]], dtype=torch.float32).reshape(1, 6, 3)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    frags = rasterize(verts, faces, (64, 64))
    near_face = order.index(0)
    centres = np.stack(np.mgrid[0:64, 0:64][::-1], -1).reshape(-1, 2).astype(np.float64)
    in_near = _inside_reference(np.array(near)[:, :2], centres)[0].reshape(64, 64)
    in_far = _inside_reference(np.array(far)[:, :2], centres)[0].reshape(64, 64)
    both = in_near & in_far
    assert both.sum() > 300
    assert (frags.face[0].numpy()[both] == near_face).all()
    assert (frags.depth[0].numpy()[both] == 1.0).all()
    only_far = in_far & ~in_near
    assert (frags.face[0].numpy()[only_far] == 1 - near_face).all()


def _cube(side: float):
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    v *= side / 2
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    return v, np.array(faces)


def _rotation(rx, ry, rz) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (f(a) for a in (rx, ry, rz) for f in (math.cos, math.sin))
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


@pytest.mark.parametrize("angles", [(0.3, 0.5, 0.1), (0.9, -0.4, 1.2), (0.0, 0.0, 0.0)])
def test_cube_silhouette_area_and_depth(angles):
    side, px_per_m = 1.0, 120.0
    v, faces = _cube(side)
    rot = _rotation(*angles)
    v = v @ rot.T
    # Orthographic view down +z: projected area = side^2 * sum_i |z-component of axis i|.
    area = side**2 * np.abs(rot[2]).sum() * px_per_m**2
    cam = WeakPerspectiveCamera([1.0, 0.0, 0.0], (100.0, 100.0), px_per_m / 100.0)
    out = render_mesh(v, faces, cam, (200, 200), shading="flat", supersample=4)
    assert out.alpha.sum().item() == pytest.approx(area, rel=0.01)
    # The ray through the centre pixel enters the cube at z = -side / (2 max_i |R[2, i]|).
    sharp = render_mesh(v, faces, cam, (200, 200), shading="flat")
    assert sharp.depth[0, 100, 100].item() == pytest.approx(
        -side / (2 * np.abs(rot[2]).max()), abs=1e-6)
    assert abs(int(sharp.mask.sum()) - area) < 0.02 * area


def test_perspective_depth_is_ray_plane_intersection():
    # A slanted quad; depth at each covered pixel must equal the ray-plane intersection.
    quad = np.array([[-1, -1, 4.0], [1, -1, 6.0], [1, 1, 6.0], [-1, 1, 4.0]])
    cam = PerspectiveCamera(100.0, (40.0, 40.0), (0.0, 0.0, 0.0))
    out = render_mesh(quad, np.array([[0, 1, 2], [0, 2, 3]]), cam, (80, 80), shading="flat")
    rows, cols = np.nonzero(out.mask[0].numpy())
    assert len(rows) > 500
    # Plane z = 5 + x; ray (u, v, 1) * t with u = (col - 40) / 100: t = 5 / (1 - u).
    u = (cols - 40.0) / 100.0
    np.testing.assert_allclose(out.depth[0].numpy()[rows, cols], 5.0 / (1.0 - u), rtol=1e-5)
    # Perspective-correct barycentrics: interpolated x equals the ray's x.
    fr = rasterize(cam.project(torch.tensor(quad)[None]),
                   torch.tensor([[0, 1, 2], [0, 2, 3]]), (80, 80), perspective=True)
    assert np.array_equal(fr.mask[0].numpy(), out.mask[0].numpy())
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    hit = fr.face[0].numpy()[rows, cols]
    x_interp = (fr.bary[0].numpy()[rows, cols] * quad[faces[hit], 0]).sum(1)
    np.testing.assert_allclose(x_interp, u * 5.0 / (1.0 - u), atol=1e-5)


@pytest.mark.parametrize("degrees", [0.0, 30.0, 60.0, 85.0])
@pytest.mark.parametrize("shading", ["lambert", "smooth"])
def test_lambert_shade_is_cosine_of_light_angle(degrees, shading):
    # A square facing the camera (normal -z); light tilted by `degrees` from the normal.
    quad = np.array([[-1, -1, 0.0], [1, -1, 0.0], [1, 1, 0.0], [-1, 1, 0.0]])
    t = math.radians(degrees)
    cam = WeakPerspectiveCamera([1.0, 0.0, 0.0], (20.0, 20.0), 0.15)
    out = render_mesh(quad, np.array([[0, 1, 2], [0, 2, 3]]), cam, (40, 40),
                      color=(1.0, 1.0, 1.0), shading=shading, ambient=0.0,
                      light=(math.sin(t), 0.0, -math.cos(t)))
    rgb = out.rgb[0][out.mask[0]]
    assert len(rgb) > 500
    np.testing.assert_allclose(rgb.numpy(), math.cos(t), atol=1e-5)


def test_flat_shading_and_per_vertex_colour():
    tri = np.array([[0, 0, 0.0], [1, 0, 0.0], [0, 1, 0.0]])
    colors = np.eye(3)
    cam = WeakPerspectiveCamera([1.0, 0.0, 0.0], (0.0, 0.0), 0.3)
    out = render_mesh(tri, np.array([[0, 1, 2]]), cam, (31, 31), color=colors, shading="flat")
    fr = rasterize(cam.project(torch.tensor(tri, dtype=torch.float32)[None]),
                   torch.tensor([[0, 1, 2]]), (31, 31))
    m = out.mask[0]
    np.testing.assert_allclose(out.rgb[0][m].numpy(), fr.bary[0][m].numpy(), atol=1e-6)


def _posed(body, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(n, 24, 3, generator=g)
    pose[:, 0] = torch.tensor([math.pi, 0.0, 0.0])  # into the crop frame (y down)
    with torch.no_grad():
        return body(pose).vertices


def test_mesh_silhouette_bbox_matches_projected_vertices(body):
    verts = _posed(body, 1)[0]
    cam = WeakPerspectiveCamera.crop(np.array([0.85, 0.05, -0.02]), 256)
    xy = cam.project(verts[None])[0, :, :2].numpy()
    lo, hi = xy.min(0), xy.max(0)
    # Pixel centres can miss a thin tip by up to ~1.5 px; quarter-pixel samples by < 1 px.
    for ss, tol in ((1, 1.5), (4, 1.0)):
        out = render_mesh(verts, body.faces, cam, (256, 256), supersample=ss)
        rows, cols = np.nonzero(out.mask[0].numpy())
        got_lo, got_hi = np.array([cols.min(), rows.min()]), np.array([cols.max(), rows.max()])
        assert (got_lo >= lo - 0.5).all() and (got_hi <= hi + 0.5).all()  # never outside
        assert (np.abs(got_lo - lo) <= tol).all() and (np.abs(got_hi - hi) <= tol).all()


def test_batched_equals_one_by_one(body):
    verts = _posed(body, 3, seed=1)
    cams = np.array([[0.9, 0.0, 0.0], [0.7, 0.1, -0.1], [1.1, -0.05, 0.1]])
    batch = render_mesh(verts, body.faces, WeakPerspectiveCamera.crop(cams, 160), (160, 160))
    for i in range(3):
        one = render_mesh(verts[i], body.faces, WeakPerspectiveCamera.crop(cams[i], 160),
                          (160, 160))
        assert torch.equal(batch.face[i], one.face[0])
        assert torch.equal(batch.rgb[i], one.rgb[0])
        assert torch.equal(batch.depth[i], one.depth[0])


def test_weak_and_equivalent_perspective_cameras_agree(body):
    # EFT's perspective equivalent (f = 5000, t = [tx/s, ty/s, 2f/(res s)]) draws nearly
    # the same silhouette as the weak camera.
    verts = _posed(body, 1, seed=2)
    s, tx, ty = 0.9, 0.05, -0.03
    weak = render_mesh(verts, body.faces, WeakPerspectiveCamera.crop([s, tx, ty], 224),
                       (224, 224)).mask[0]
    persp_cam = PerspectiveCamera(5000.0, (112.0, 112.0), (tx / s, ty / s, 2 * 5000 / (224 * s)))
    persp = render_mesh(verts, body.faces, persp_cam, (224, 224)).mask[0]
    iou = (weak & persp).sum() / (weak | persp).sum()
    assert iou > 0.97


def test_body_silhouette_covers_fit_keypoints(coco_fits, body):
    _, fits = coco_fits
    size = 256
    covered = total = 0
    for fit in fits:
        view = FitView.from_fit(fit)
        out = render_mesh(view.vertices, body.faces, WeakPerspectiveCamera.crop(view.cam, size),
                          (size, size))
        mask = out.mask[0].numpy()
        kp = view.to_crop(view.projected_keypoints(), size)
        r, c = np.round(kp[:, 1]).astype(int), np.round(kp[:, 0]).astype(int)
        ok = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        # Joints lie inside the body, surface landmarks on it: allow one pixel.
        pad = np.pad(mask, 1)
        near = np.zeros_like(mask)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                near |= pad[1 + dr: 1 + dr + size, 1 + dc: 1 + dc + size]
        covered += int(near[r[ok], c[ok]].sum())
        total += int(ok.sum())
    assert total > 300
    assert covered == total


def test_draw_keypoints_colours_the_keypoint_pixel():
    img = np.zeros((50, 60, 3), np.uint8)
    kp = np.array([[10.4, 20.6, 1.0], [40.0, 10.0, 0.9], [30.2, 44.7, 0.0]])
    out = draw_keypoints(img, kp, edges=[(0, 1)], color=(255, 0, 0), radius=1)
    assert tuple(out[21, 10]) == (255, 0, 0) and tuple(out[10, 40]) == (255, 0, 0)
    assert tuple(out[45, 30]) == (0, 0, 0)  # confidence 0: not drawn
    assert tuple(out[15, 25]) == (255, 0, 0)  # on the bone between the two
    assert img.sum() == 0  # input untouched


def test_keypoint_comparison_colours_and_residual_line():
    img = np.full((80, 80, 3), 30, np.uint8)
    ann = np.zeros((49, 3))
    fit = np.zeros((49, 2))
    ann[26] = (20.0, 20.0, 1.0)
    fit[26] = (60.0, 20.0)
    ann[27] = (20.0, 60.0, 0.0)  # not annotated: neither set draws it
    fit[27] = (60.0, 60.0)
    out = draw_keypoint_comparison(img, ann, fit, radius=2)
    assert tuple(out[20, 20]) == ANNOTATED_COLOR
    assert tuple(out[20, 60]) == FITTED_COLOR
    assert tuple(out[20, 40]) == RESIDUAL_COLOR
    assert tuple(out[60, 60]) == (30, 30, 30) and tuple(out[60, 20]) == (30, 30, 30)


def test_skeleton_edges_by_name():
    coco = skeleton_edges("coco17")
    from eft.body.joints import COCO17_NAMES

    named = {frozenset((COCO17_NAMES[a], COCO17_NAMES[b])) for a, b in coco}
    assert frozenset(("left_knee", "left_ankle")) in named
    assert frozenset(("left_shoulder", "left_hip")) in named
    assert all(0 <= i < 17 for e in coco for i in e)
    with pytest.raises(RenderError):
        skeleton_edges("nope")


def test_overlay_alpha():
    img = np.full((4, 4, 3), 100, np.uint8)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1, 1] = (200, 0, 0, 255)
    rgba[2, 2] = (200, 0, 0, 51)
    out = overlay(img, rgba, opacity=0.5)
    assert tuple(out[1, 1]) == (150, 50, 50)
    assert tuple(out[2, 2]) == (110, 90, 90)
    assert tuple(out[0, 0]) == (100, 100, 100)


@pytest.mark.parametrize("scale", [0.3, 2.9])  # crop upsampled / box-filtered down
def test_display_crop_samples_the_crop_geometry(scale):
    # A linear ramp image: any correct resampling returns the ramp at the mapped point.
    h, w = 400, 500
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack((xx * 0.45, yy * 0.55, np.full_like(xx, 7)), -1).round().astype(np.uint8)
    center, size = np.array([251.3, 198.7]), 64
    crop = display_crop(img, center, scale, size).astype(np.float64)
    k = 200 * scale / size
    cc, rr = np.meshgrid(np.arange(size), np.arange(size))
    x, y = center[0] + (cc - size / 2) * k, center[1] + (rr - size / 2) * k
    inner = (x > 2 + k) & (x < w - 3 - k) & (y > 2 + k) & (y < h - 3 - k)
    assert inner.sum() > 1000
    np.testing.assert_allclose(crop[..., 0][inner], 0.45 * x[inner], atol=1.6)
    np.testing.assert_allclose(crop[..., 1][inner], 0.55 * y[inner], atol=1.6)
    outside = (x < -k - 2) | (y < -k - 2) | (x > w + k + 1) | (y > h + k + 1)
    assert (crop[outside] == 128).all()


def test_side_view_rotation_and_camera():
    v = np.array([[1.0, 0.0, 0.0], [-1.0, 2.0, 0.0], [0.0, 1.0, 4.0]])
    r = rotate_about_vertical(v, 90.0)
    c = 0.5 * (v.min(0) + v.max(0))
    np.testing.assert_allclose(r[:, 1], v[:, 1])
    np.testing.assert_allclose(np.linalg.norm((r - c)[:, [0, 2]], axis=1),
                               np.linalg.norm((v - c)[:, [0, 2]], axis=1))
    np.testing.assert_allclose(r[0] - c, [2.0, -1.0, 1.0])  # x -> z, z -> -x
    cam = side_camera(r, [2.0, 0.3, 0.1])
    xn = cam[0] * r[:, :2] + cam[1:]
    assert np.abs(xn).max() <= 0.96 + 1e-9
    assert xn[:, 0].min() == pytest.approx(-xn[:, 0].max())


def test_fit_panel_png_from_real_fit(coco_fits, body, tmp_path):
    exemplars, fits = coco_fits
    ex, fit = exemplars[0], fits[0]
    image = np.asarray(Image.open(ex.image_path).convert("RGB"))
    panel = render_fit_panel(image, fit, body.faces, ex.keypoints, size=192)
    assert panel.shape == (192, 2 * 192 + 4, 3) and panel.dtype == np.uint8
    crop = display_crop(image, fit.center, fit.scale, 192)
    changed = np.abs(panel[:, :192].astype(int) - crop).sum(-1) > 0
    assert 0.05 < changed.mean() < 0.9  # the mesh covers part of the crop
    side = panel[:, 196:]
    assert (side[-1, :] == 255).all() and (side < 250).any()  # white background, a body
    # The same panel from plain arrays and from a fit-like object without vertices.
    like = SimpleNamespace(vertices=None, rotmat=fit.rotmat, betas=fit.betas,
                           cam_weak=fit.cam_weak, center=fit.center, scale=fit.scale,
                           keypoints3d=fit.keypoints3d)
    again = render_fit_panel(image, like, body.faces, ex.keypoints, size=192, body=body)
    assert np.abs(again.astype(int) - panel).mean() < 1.0
    path = save_png(panel, tmp_path / "sub" / "panel.png")
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (2 * 192 + 4, 192) and im.mode == "RGB"
        assert np.array_equal(np.asarray(im), panel)


def test_bad_inputs_are_one_line_render_errors(body):
    cam = WeakPerspectiveCamera([1.0, 0.0, 0.0])
    with pytest.raises(RenderError, match="vertices"):
        render_mesh(np.zeros((5, 2)), [[0, 1, 2]], cam, (8, 8))
    with pytest.raises(RenderError, match="faces index"):
        render_mesh(np.zeros((3, 3)), [[0, 1, 3]], cam, (8, 8))
    with pytest.raises(RenderError, match="shading"):
        render_mesh(np.zeros((3, 3)), [[0, 1, 2]], cam, (8, 8), shading="phong")
    with pytest.raises(RenderError, match="cam"):
        render_mesh(np.zeros((2, 3, 3)), [[0, 1, 2]], WeakPerspectiveCamera(np.ones((3, 3))),
                    (8, 8))
    with pytest.raises(RenderError, match="no vertices"):
        FitView.from_fit(SimpleNamespace(vertices=None))
    with pytest.raises(RenderError, match="uint8"):
        overlay(np.zeros((4, 4, 3)), np.zeros((4, 4, 4), np.uint8))
    assert issubclass(RenderError, EftError)


def test_body_check_png_needs_no_matplotlib(tmp_path, monkeypatch, capsys):
    from eft.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any import of it now fails
    png = tmp_path / "check.png"
    assert main(["body", "check", "-o", str(png)]) == 0
    assert "anatomy (head>neck>pelvis, left at +x): ok" in capsys.readouterr().out
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 1000 and im.height > 500
        a = np.asarray(im.convert("RGB"))
    assert (a < 200).any(axis=-1).mean() > 0.05  # bodies drawn, not a blank page
