"""Pictures: Pillow charts (eft.render.charts), ``eft inspect --png / --json``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eft.annotations import Provenance
from eft.annotations.api import read_columns, write_columns
from eft.annotations.synthetic import random_columns
from eft.cli import main
from eft.render.charts import CHART_COLORS, bar_chart, histogram_chart, histogram_counts


def test_histogram_counts_match_numpy():
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, 500)
    v[:7] = np.nan
    edges, counts, n_nan = histogram_counts(v, 20)
    ref, ref_edges = np.histogram(v[np.isfinite(v)], bins=20)
    np.testing.assert_allclose(edges, ref_edges)
    assert counts.tolist() == ref.tolist() and n_nan == 7
    lv = rng.lognormal(-6, 1, 300)
    edges, counts, _ = histogram_counts(lv, 12, log=True)
    ref, _ = np.histogram(np.clip(lv, edges[0], edges[-1]), bins=edges)  # ends: clipped in
    assert counts.tolist() == ref.tolist() and counts.sum() == 300
    np.testing.assert_allclose(np.diff(np.log10(edges)), np.diff(np.log10(edges))[0])


def _bar_pixels(img: np.ndarray, color) -> np.ndarray:
    return np.all(img == np.array(color, np.uint8), axis=-1)


def test_charts_draw_what_they_count():
    img = histogram_chart([np.array([1.0, 1.0, 2.0]), np.array([3.0])], title="t", bins=3,
                          names=("a", "b"))
    blue, red = _bar_pixels(img, CHART_COLORS[0]), _bar_pixels(img, CHART_COLORS[1])
    assert blue.sum() > 0 and red.sum() > 0
    cols_b = np.flatnonzero(blue[40:].any(axis=0))  # below the legend
    cols_r = np.flatnonzero(red[40:].any(axis=0))
    assert cols_r.min() > cols_b.max()  # the rejected value is the largest: rightmost bin
    # bar heights: bin 0 holds 2 values, bin 1 one value
    h = blue[40:].sum(axis=0)
    assert h[cols_b[0]] == pytest.approx(2 * h[cols_b[-1]], rel=0.1)
    bars = bar_chart(["x", "y"], [10.0, 40.0], title="errors", unit=" mm")
    b = _bar_pixels(bars, CHART_COLORS[0])
    rows = [np.flatnonzero(b[y]).size for y in range(b.shape[0])]
    lengths = sorted({r for r in rows if r})
    assert lengths[-1] == pytest.approx(4 * lengths[0], rel=0.05)


@pytest.fixture
def small_file(tmp_path):
    cols = random_columns(9, seed=4)
    q = dict(cols.quality)
    q["accepted"] = np.array([True] * 6 + [False] * 3)
    q["flags"] = np.empty(9, dtype=object)
    q["flags"][:] = [()] * 6 + [("implausible_pose",)] * 3
    cols = dataclasses.replace(cols, quality=q)
    return write_columns(cols, Provenance.create(), tmp_path / "fits.json"), cols


def test_inspect_json_lists_the_worst_fits(small_file, capsys):
    path, cols = small_file
    assert main(["inspect", str(path), "--json", "--worst", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fits"] == 9 and report["accepted"] == 6
    assert report["rejected_by_reason"] == {"implausible_pose": 3}
    back = read_columns(path)[1]
    for key in ("loss_2d_final", "reproj_px", "max_abs_beta", "pose_nll"):
        m = report["measures"][key]
        v = np.asarray(back.quality[key], np.float64)
        want = [str(back.fit_id[i]) for i in np.argsort(-v, kind="stable")[:3]]
        assert [w["id"] for w in m["worst"]] == want
        h = m["histogram"]
        assert sum(h["accepted"]) == 6 and sum(h["rejected"]) == 3
        assert len(h["edges"]) == len(h["accepted"]) + 1


def test_inspect_png_draws_a_contact_sheet(small_file, tmp_path, capsys):
    path, _ = small_file
    png = tmp_path / "sheet.png"
    assert main(["inspect", str(path), "--png", str(png), "--worst", "2"]) == 0
    out = capsys.readouterr().out
    assert "accepted: 6" in out and f"wrote {png}" in out
    img = np.asarray(Image.open(png).convert("RGB"))
    # 4 rows of fit tiles (180 px + a 34 px caption) above two rows of histograms
    assert img.shape[0] > 4 * (180 + 34) + 2 * 200 and img.shape[1] >= 150 + 2 * 180
    assert _bar_pixels(img, CHART_COLORS[1]).sum() > 100  # rejected fits are shown
    # the images are not there: each tile says so (red plate)
    assert _bar_pixels(img, (160, 20, 20)).sum() > 8 * 50


def test_per_joint_errors_average_to_the_eval_metrics(tmp_path):
    import torch

    from eft.train.evaluate import joint_metrics, per_joint_chart, per_joint_mm

    g = torch.Generator().manual_seed(0)
    gt = torch.randn(20, 14, 3, generator=g, dtype=torch.float64) * 0.3
    pred = gt + torch.randn(20, 14, 3, generator=g, dtype=torch.float64) * 0.05
    pred[:, 13] += 0.2  # one joint far off: it must stand out
    pj = per_joint_mm(pred, gt)
    means = joint_metrics(pred, gt)
    assert np.mean(pj["mpjpe_mm"]) == pytest.approx(means["mpjpe_mm"], rel=1e-9)
    assert np.mean(pj["pa_mpjpe_mm"]) == pytest.approx(means["pa_mpjpe_mm"], rel=1e-9)
    assert int(np.argmax(pj["mpjpe_mm"])) == 13 and pj["joints"][13] == "head_top"
    png = per_joint_chart({"set a": {"per_joint": pj}, "set b": {"per_joint": pj}},
                          tmp_path / "pj.png")
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] > 2 * (34 + 14 * 18) and img.shape[1] > 2 * 500


def test_relative_image_paths_are_found_where_the_job_ran(tmp_path, monkeypatch):
    """A job writes image paths relative to the folder it ran in; the sheet looks them
    up there too (the file's folder minus the job's relative output.dir), from any
    working folder.  --images comes first, then the file's folder; an absolute or
    moved output folder adds nothing."""
    from types import SimpleNamespace

    from eft.annotations.pictures import image_roots

    def header(out_dir):
        return SimpleNamespace(provenance=Provenance.create(
            job={"config": {"output": {"dir": out_dir}}}))

    ran = tmp_path / "project"
    src = ran / "annotations" / "demo" / "fits.h5"
    monkeypatch.chdir(tmp_path)
    roots = image_roots(header("annotations/demo"), None, src)
    assert roots == [src.parent, ran, tmp_path]
    assert image_roots(header("annotations/demo"), "imgs", src)[0] == Path("imgs")
    for other in ("elsewhere/demo", str(src.parent), "../demo"):
        assert image_roots(header(other), None, src) == [src.parent, tmp_path]
    assert image_roots(SimpleNamespace(provenance=Provenance.create()), None, src) == [
        src.parent, tmp_path]
    shard = ran / "annotations" / "demo" / "shard-001-of-004" / "fits.h5"  # a shard's file
    assert image_roots(header("annotations/demo"), None, shard) == [shard.parent, ran,
                                                                   tmp_path]
