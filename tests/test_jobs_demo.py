"""eft demo: a synthetic COCO dataset rendered with the open body model, fitted and
exported to every format, with overlays."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from eft.cli import main


def test_demo_end_to_end(tmp_path, capsys, one_thread):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--people", "5", "-q"]) == 0
    report = capsys.readouterr().out
    assert "fitted" in report and "overlays" in report and "PA-MPJPE" in report
    # the resume hint names the run's own resolved config, which loads back as this job
    assert f"eft fit {out / 'config.yaml'}" in report
    from eft.fitting.config import eft_preset
    from eft.jobs.config import config_from_dict, load_config
    from eft.jobs.demo import demo_config

    # eft.preset auto (the default) resolved: the demo's noisy labels keep open-prior
    asked = config_from_dict(demo_config(out))
    assert asked.eft_auto and asked.eft == eft_preset("open-prior")
    assert load_config(out / "config.yaml") == asked.replace(eft_auto=False)
    assert "recipe     open-prior (eft.preset auto" in report

    coco = json.loads((out / "dataset" / "person_keypoints_demo.json").read_text())
    assert len(coco["images"]) == len(coco["annotations"]) == 5
    assert coco["info"]["seed"] == 0  # the dataset records the seed that drew its people
    for im, ann in zip(coco["images"], coco["annotations"], strict=True):
        img = np.asarray(Image.open(out / "dataset" / "images" / im["file_name"]))
        assert img.shape == (im["height"], im["width"], 3)
        # the box is the rendered silhouette: pixels inside differ from the plain background
        x, y, w, h = (int(round(v)) for v in ann["bbox"])
        assert w > 10 and h > 10
        bg = img[0, 0].astype(int)
        inside = np.abs(img[y:y + h, x:x + w].astype(int) - bg).sum(-1) > 30
        outside = np.abs(img.astype(int) - bg).sum(-1) > 30
        assert inside.sum() == outside.sum() > 0.2 * w * h
        # labelled keypoints (noisy projections of the body) lie near the silhouette box
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
        lab = kp[kp[:, 2] > 0, :2]
        assert len(lab) == ann["num_keypoints"] > 0
        pad = 0.25 * max(w, h)
        assert np.all((lab[:, 0] > x - pad) & (lab[:, 0] < x + w + pad))
        assert np.all((lab[:, 1] > y - pad) & (lab[:, 1] < y + h + pad))

    from eft.annotations import read_annotations

    sets = {f: read_annotations(out / name) for f, name in (
        ("eft-json", "fits.json"), ("spin-npz", "fits.spin.npz"), ("h5", "fits.h5"),
        ("humandata", "fits.humandata.npz"))}
    n = len(sets["h5"])
    summary = json.loads((out / "summary.json").read_text())
    assert n == summary["fitted"] and n + sum(summary["skipped_by_reason"].values()) == 5
    for aset in sets.values():
        assert len(aset) == n
    np.testing.assert_allclose(sets["eft-json"][0].fit.betas, sets["h5"][0].fit.betas,
                               atol=1e-6)
    pngs = sorted((out / "overlays").glob("*.png"))
    # every rejected fit (up to 4) is drawn, then the 4 worst accepted ones
    from eft.jobs.overlays import overlay_choice, overlay_name

    fits = [a.fit for a in sets["h5"]]
    rejected = [f.exemplar_id for f in fits if not f.quality.accepted]
    chosen = [fits[k].exemplar_id for k in overlay_choice(fits, 4)]
    assert chosen[:len(rejected)] == sorted(rejected, key=chosen.index) and len(
        chosen) == min(len(rejected), 4) + min(n - len(rejected), 4)
    assert sorted(p.name for p in pngs) == sorted(overlay_name(i) for i in chosen)
    frac = {f.exemplar_id: f.quality.reproj_frac_bbox for f in fits}
    acc = [i for i in chosen if i not in rejected]
    assert [frac[i] for i in acc] == sorted((frac[i] for i in acc), reverse=True)
    rest = [frac[f.exemplar_id] for f in fits if f.quality.accepted
            and f.exemplar_id not in acc]
    assert not rest or min(frac[i] for i in acc) >= max(rest)
    assert Image.open(pngs[0]).size[0] > Image.open(pngs[0]).size[1]  # fit | side panel
