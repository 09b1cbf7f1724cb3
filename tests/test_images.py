"""Image loading in every awkward mode, EXIF rotation, broken files; crops vs geometry."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from eft.data.images import ImageError, crop_image, image_file_size, load_image, normalize_crop
from eft.errors import EftError
from eft.geometry.crops import image_to_crop


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A 30 x 40 test pattern (H, W, 3) uint8: gradients plus a bright marker."""
    y, x = np.mgrid[0:30, 0:40]
    a = np.stack([x * 6, y * 8, (x + y) * 3], axis=2).astype(np.uint8)
    a[4, 7] = 255
    return a


def test_coco_sample_jpeg(shared_data):
    meta = json.loads((shared_data / "coco_sample" / "test_coco.json").read_text())
    for im in meta["images"]:
        path = shared_data / "coco_sample" / im["file_name"]
        a = load_image(path)
        assert a.shape == (im["height"], im["width"], 3) and a.dtype == np.uint8
        with Image.open(path) as ref:
            np.testing.assert_array_equal(a, np.asarray(ref.convert("RGB")))
        assert image_file_size(path) == (im["width"], im["height"])
    for name in ("mpii_sample/052475643.jpg", "crowdpose_sample/103319.jpg"):
        a = load_image(shared_data / name)
        assert a.ndim == 3 and a.shape[2] == 3 and a.flags["C_CONTIGUOUS"]
        assert image_file_size(shared_data / name) == (a.shape[1], a.shape[0])
    assert image_file_size(shared_data / "mpii_sample" / "missing.jpg") is None
    assert image_file_size(shared_data / "coco_sample" / "test_coco.json") is None


def _save(tmp_path, img: Image.Image, name: str, **kw) -> str:
    p = tmp_path / name
    img.save(p, **kw)
    return p


def test_modes(tmp_path, rgb):
    gray = (rgb.astype(int).sum(2) // 3).astype(np.uint8)
    # grayscale and 1-bit -> three equal channels
    a = load_image(_save(tmp_path, Image.fromarray(gray, "L"), "l.png"))
    np.testing.assert_array_equal(a, np.repeat(gray[..., None], 3, 2))
    bw = gray > 100
    a = load_image(_save(tmp_path, Image.fromarray(bw), "b.png"))
    np.testing.assert_array_equal(a, np.repeat(bw[..., None], 3, 2) * 255)
    # palette: exact when the image has few colours
    few = (rgb // 64 * 64).astype(np.uint8)
    pal = Image.fromarray(few).quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    a = load_image(_save(tmp_path, pal, "p.png"))
    np.testing.assert_array_equal(a, np.asarray(pal.convert("RGB")))
    assert np.abs(a.astype(int) - few).max() <= 8
    # CMYK: lossless TIFF round trip is exact; CMYK JPEG is close
    cmyk = Image.fromarray(rgb).convert("CMYK")
    np.testing.assert_array_equal(load_image(_save(tmp_path, cmyk, "c.tif")), rgb)
    a = load_image(_save(tmp_path, cmyk, "c.jpg", quality=98))
    assert np.abs(a.astype(float) - rgb).mean() < 4
    # 16-bit grayscale: scaled to 8 bits
    g16 = gray.astype(np.uint16) * 257
    img16 = Image.fromarray(g16)
    assert img16.mode.startswith("I;16")
    p16 = _save(tmp_path, img16, "g16.png")
    with Image.open(p16) as reread:
        assert reread.mode in ("I;16", "I")  # a 16-bit file on disk
    np.testing.assert_array_equal(load_image(p16), np.repeat(gray[..., None], 3, 2))
    # float
    f = Image.fromarray((gray / 255.0).astype(np.float32), "F")
    np.testing.assert_array_equal(load_image(_save(tmp_path, f, "f.tif")),
                                  np.repeat(gray[..., None], 3, 2))


def test_alpha(tmp_path, rgb):
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    alpha[:, 20:] = 255
    alpha[:, 10:20] = 128
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    p = _save(tmp_path, rgba, "a.png")
    a = load_image(p)  # composited on black
    want = np.rint(rgb * (alpha[..., None] / 255.0)).astype(np.uint8)
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(load_image(p, background=None), rgb)  # alpha dropped
    white = load_image(p, background=(255, 255, 255))
    assert (white[:, :10] == 255).all() and (white[:, 20:] == rgb[:, 20:]).all()
    # gray + alpha, and palette transparency
    la = Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA")
    a = load_image(_save(tmp_path, la, "la.png"))
    assert (a[:, :10] == 0).all() and (a[:, 20:, 1] == rgb[:, 20:, 0]).all()
    pal = Image.fromarray((rgb // 128 * 128).astype(np.uint8)).quantize(colors=8)
    idx = np.asarray(pal)[0, 0]
    pal.info["transparency"] = int(idx)
    a = load_image(_save(tmp_path, pal, "pt.png", transparency=int(idx)))
    clear = np.asarray(pal) == idx
    assert clear.any() and (a[clear] == 0).all()


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation(tmp_path, orientation):
    """The marker lands where the EXIF rotation puts it (viewer's view)."""
    H, W, (mx, my) = 30, 48, (9, 5)
    stored = np.full((H, W, 3), 20, np.uint8)
    stored[my - 2:my + 3, mx - 2:mx + 3] = 250
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = _save(tmp_path, img, f"o{orientation}.jpg", exif=exif.tobytes(), quality=95)
    a = load_image(p)
    # expected position of the stored pixel (x, y) after the rotation, written out
    expected = {1: ((W, H), (mx, my)), 3: ((W, H), (W - 1 - mx, H - 1 - my)),
                6: ((H, W), (H - 1 - my, mx)), 8: ((H, W), (my, W - 1 - mx))}[orientation]
    (w, h), (ex, ey) = expected
    assert a.shape[:2] == (h, w)
    assert image_file_size(p) == (w, h)  # the header alone gives the viewer's size
    bright = a[..., 0] > 128
    ys, xs = np.nonzero(bright)
    assert abs(xs.mean() - ex) < 0.5 and abs(ys.mean() - ey) < 0.5


def test_broken_files(tmp_path, shared_data):
    data = (shared_data / "coco_sample" / "000000000785.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="truncated") as info:
        load_image(cut)
    assert time.perf_counter() - t0 < 5
    assert isinstance(info.value, EftError) and "\n" not in str(info.value)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(buf, "PNG")
    png = tmp_path / "cut.png"
    png.write_bytes(buf.getvalue()[:-40])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(png)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ImageError, match="not an image"):
        load_image(junk)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="no such image"):
        load_image(tmp_path / "missing.jpg")


# --- crops ----------------------------------------------------------------------------

def _blob(h, w, p, sigma):
    y, x = np.mgrid[0:h, 0:w]
    return np.exp(-((x - p[0]) ** 2 + (y - p[1]) ** 2) / (2 * sigma**2))


def _centroid(a):
    y, x = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    return np.array([(a * x).sum() / a.sum(), (a * y).sum() / a.sum()])


@pytest.mark.parametrize("center,scale,res,rot,sigma", [
    ((150.0, 100.0), 0.8, 224, 0.0, 2.0),    # upsampling (160 px -> 224)
    ((140.5, 90.25), 2.5, 128, 0.0, 6.0),    # downsampling by 3.9 (box prefilter)
    ((160.0, 110.0), 1.1, 224, 30.0, 3.0),   # rotated crop
    ((150.0, 90.0), 0.5, 64, -75.0, 2.5),  # mild downsampling, no prefilter
])
def test_crop_puts_points_where_geometry_says(center, scale, res, rot, sigma):
    p = np.array([171.3, 77.6])
    img = _blob(200, 300, p, sigma)[..., None].repeat(3, 2).astype(np.float32)
    crop = crop_image(img, center, scale, res, rot=rot)
    assert crop.shape == (res, res, 3) and crop.dtype == np.float32
    want = image_to_crop(torch.tensor(p)[None], torch.tensor(center), scale, res, rot)[0]
    got = _centroid(crop[..., 0])
    assert np.abs(got - want.numpy()).max() < 0.2, (got, want)
    # the blob's mass is conserved (up to the change of pixel area)
    area = (res / (200.0 * scale)) ** 2
    assert crop[..., 0].sum() == pytest.approx(img[..., 0].sum() * area, rel=0.03)


def test_crop_identity_and_padding(rgb):
    # a crop whose pixels coincide with the image's returns the image itself
    big = np.tile(rgb, (3, 3, 1))  # 90 x 120
    res = 64
    crop = crop_image(big, (res / 2, res / 2), res / 200.0, res)
    assert crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, big[:res, :res])
    # offset by whole pixels: a shifted window
    crop = crop_image(big, (res / 2 + 5, res / 2 + 7), res / 200.0, res)
    np.testing.assert_array_equal(crop, big[7:7 + res, 5:5 + res])
    # outside the image: zeros; inside: the image
    crop = crop_image(big, (0.0, 0.0), res / 200.0, res)
    assert (crop[: res // 2 - 1].max() == 0) and (crop[:, : res // 2 - 1].max() == 0)
    np.testing.assert_array_equal(crop[res // 2:, res // 2:], big[: res // 2, : res // 2])
    # entirely off the image
    assert crop_image(big, (-500.0, -500.0), 0.3, 32).max() == 0
    # uint8 (Pillow box filter) and float (torch) prefilters agree when shrinking 4x
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (301, 257, 3), dtype=np.uint8)
    a = crop_image(noisy, (130.3, 150.7), 4.4, 200, rot=10.0).astype(int)
    b = crop_image(noisy.astype(np.float32), (130.3, 150.7), 4.4, 200, rot=10.0)
    assert np.abs(a - b).max() <= 1.0
    # grayscale in, grayscale out
    assert crop_image(big[..., 0], (40.0, 40.0), 0.4).shape == (224, 224)
    with pytest.raises(ValueError, match="scale"):
        crop_image(big, (1.0, 1.0), 0.0)


def test_normalize_crop():
    crop = np.zeros((224, 224, 3), np.uint8)
    crop[..., 0] = 255
    crop[..., 1] = 128
    t = normalize_crop(crop)
    assert t.shape == (3, 224, 224) and t.dtype == torch.float32
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet, as HMR expects
    for c, v in enumerate((1.0, 128 / 255, 0.0)):
        assert float(t[c, 5, 7]) == pytest.approx((v - mean[c]) / std[c], rel=1e-6)
    f = normalize_crop(crop.astype(np.float32) / 255.0)
    torch.testing.assert_close(f, t)
