"""Annotation formats on real fits: the COCO sample fitted by EFT (``coco_fits``).

Round trips through every format against the original fits, the EFT JSON layout read the
way tools for EFT's downloads read it, projection into the image with EFT's formula,
the SCHEMA.md snippet, provenance, and filters."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eft.annotations import (
    FORMATS,
    AnnotationError,
    AnnotationSet,
    Provenance,
    read_annotations,
    write_annotations,
)
from eft.annotations.humandata import HUMAN_DATA_NAMES
from eft.body import joints as J
from eft.fitting import EFTConfig, QualityRules
from eft.geometry.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

REPO = Path(__file__).resolve().parents[1]
SUFFIX = {"eft-json": ".json", "spin-npz": ".npz", "h5": ".h5", "humandata": ".npz"}
CONFIG = EFTConfig()


@pytest.fixture(scope="module")
def aset(coco_fits, body) -> AnnotationSet:
    exemplars, fits = coco_fits
    prov = Provenance.create(body=body, regressor="keypoint-prior-v1", config=CONFIG,
                             dataset="coco", split="val2014", note="test")
    return AnnotationSet.from_fits(fits, exemplars, prov)


@pytest.fixture(scope="module")
def written(aset, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt in FORMATS:
        out[fmt] = write_annotations(aset, root / f"fits_{fmt}{SUFFIX[fmt]}", format=fmt)
    return out


def _angle_between(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Angle (rad) of R1^T R2, via quaternions (accurate near zero, unlike arccos)."""
    rel = np.einsum("...ji,...jk->...ik", r1.astype(np.float64), r2.astype(np.float64))
    return np.linalg.norm(rotmat_to_axis_angle(torch.from_numpy(rel)).numpy(), axis=-1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_format(aset, written, fmt):
    back = read_annotations(written[fmt])  # format sniffed (humandata vs spin npz)
    assert back.source_format == fmt
    assert back.ids == aset.ids
    lossless = fmt in ("eft-json", "h5")
    assert (back.missing == frozenset()) if lossless else ("quality" in back.missing)
    for a, b in zip(aset, back, strict=True):
        fa, fb = a.fit, b.fit
        np.testing.assert_allclose(fb.betas, fa.betas, rtol=0, atol=1e-6)
        np.testing.assert_allclose(fb.cam_weak, fa.cam_weak, rtol=0, atol=1e-6)
        np.testing.assert_allclose(fb.cam_t, fa.cam_t, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fb.center, fa.center, rtol=0, atol=1e-6)
        assert fb.scale == pytest.approx(fa.scale, abs=1e-9)
        np.testing.assert_allclose(b.exemplar.keypoints, a.exemplar.keypoints, atol=1e-4)
        # rotations: the stored representation back exactly, the other one derived
        np.testing.assert_allclose(fb.rotmat, fa.rotmat, rtol=0, atol=1e-5)
        assert _angle_between(fb.rotmat, fa.rotmat).max() < 1e-5
        aa_as_rot = axis_angle_to_rotmat(torch.from_numpy(fb.pose_aa.reshape(24, 3))
                                         .double()).numpy()
        np.testing.assert_allclose(aa_as_rot, fa.rotmat, atol=1e-5)
        rot_as_aa = rotmat_to_axis_angle(torch.from_numpy(fb.rotmat).double()).numpy()
        np.testing.assert_allclose(rot_as_aa.reshape(72), fa.pose_aa, atol=1e-5)
        assert b.exemplar.meta["annotId"] == a.exemplar.meta["annotId"]
        assert b.exemplar.meta["imageName"] == a.exemplar.meta["imageName"]
        gt3d = slice(None) if lossless or fmt == "humandata" else slice(25, 49)
        np.testing.assert_allclose(fb.keypoints3d[gt3d], fa.keypoints3d[gt3d], atol=1e-6)
        if lossless:
            assert fb.quality == fa.quality or _same_quality(fb.quality, fa.quality)
            assert b.exemplar.meta == a.exemplar.meta
            assert b.exemplar.image_size == a.exemplar.image_size
            assert b.exemplar.source == a.exemplar.source
    assert back.provenance.to_dict() == aset.provenance.to_dict()
    assert back.provenance.fitting_config() == CONFIG


def _same_quality(q1, q2) -> bool:
    d1, d2 = q1.__dict__, q2.__dict__
    return all(d1[k] == d2[k] or (d1[k] != d1[k] and d2[k] != d2[k]) for k in d1)


@pytest.mark.parametrize("fmt", ["eft-json", "humandata"])
def test_read_back_parameters_pose_the_same_mesh(aset, written, body, fmt):
    """Vertices from the read-back pose and shape equal the fit's own mesh."""
    back = read_annotations(written[fmt])
    rot = torch.from_numpy(np.stack([a.fit.rotmat for a in back]))
    betas = torch.from_numpy(np.stack([a.fit.betas for a in back]))
    with torch.no_grad():
        verts = body(rot, betas).vertices.numpy()
    expected = np.stack([a.fit.vertices for a in aset])
    assert np.abs(verts - expected).max() < 1e-5  # metres


def test_eft_json_has_the_released_fields(aset, written, shared_data):
    """Read with plain json, as a tool written for EFT's downloads would."""
    doc = json.loads(written["eft-json"].read_text())
    assert doc["ver"] == 0.1 and doc["meta"]["dbname"] == "coco"
    coco = json.loads((shared_data / "coco_sample" / "test_coco.json").read_text())
    anns = {a["id"]: a for a in coco["annotations"]}
    images = {i["id"]: i["file_name"] for i in coco["images"]}
    assert len(doc["data"]) == len(aset)
    for person, a in zip(doc["data"], aset, strict=True):
        assert np.shape(person["parm_pose"]) == (24, 3, 3)
        assert np.shape(person["parm_shape"]) == (10,)
        assert np.shape(person["parm_cam"]) == (3,)
        assert np.shape(person["bbox_center"]) == (2,)
        assert isinstance(person["bbox_scale"], float)
        assert np.shape(person["gt_keypoint_2d"]) == (49, 3)
        assert person["smpltype"] == "smpl"
        # annotId is the COCO *annotation* id; imageName that annotation's image
        ann = anns[person["annotId"]]
        assert person["imageName"] == images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert person["bbox_center"] == pytest.approx([x + w / 2, y + h / 2])
        assert person["bbox_scale"] == pytest.approx(1.2 * max(w, h) / 200)
        # GT keypoints in image px: COCO's keypoints at SPIN's GT slots
        kp = np.array(ann["keypoints"], float).reshape(17, 3)
        gt = np.array(person["gt_keypoint_2d"])
        for coco_name, (u, v, vis) in zip(J.COCO17_NAMES, kp, strict=True):
            slot = J.SPIN49_INDEX[J.COCO17_TO_SPIN[coco_name]]
            if vis > 0:
                assert gt[slot].tolist() == [u, v, 1.0]
        # joint_validity_openpose18: the OpenPose-18 joint's GT keypoint is annotated
        validity = person["joint_validity_openpose18"]
        assert len(validity) == 18 and set(validity) <= {0, 1}
        for name, ok in zip(J.OPENPOSE18_NAMES, validity, strict=True):
            slot = J.SPIN49_INDEX[J.OPENPOSE18_TO_GT[name]]
            assert ok == int(gt[slot, 2] > 0)
        assert person["fitId"] == a.id and set(person["quality"]) >= {"accepted", "flags"}


def _project(person: dict, body) -> np.ndarray:
    with torch.no_grad():
        X = body(torch.tensor([person["parm_pose"]]),
                 torch.tensor([person["parm_shape"]])).keypoints[0].double().numpy()
    s, tx, ty = person["parm_cam"]
    return np.array(person["bbox_center"]) + 100 * person["bbox_scale"] * (
        s * X[:, :2] + np.array([tx, ty]))


def test_projection_from_eft_json_reproduces_the_fits_reprojection(aset, written, body):
    doc = json.loads(written["eft-json"].read_text())
    valid = body.keypoint_valid.numpy()
    for person, a in zip(doc["data"], aset, strict=True):
        f = a.fit
        x_img = _project(person, body)
        own = f.center + 100 * f.scale * (f.cam_weak[0] * f.keypoints3d[:, :2].astype(float)
                                          + f.cam_weak[1:])
        assert np.abs(x_img - own).max() < 0.01  # px
        gt = np.array(person["gt_keypoint_2d"])
        use = (gt[:, 2] > 0) & valid
        use[:25] = False
        err = np.linalg.norm(x_img - gt[:, :2], axis=1)[use].mean()
        assert err == pytest.approx(f.quality.reproj_px, abs=0.005)


def test_schema_snippet_projects_like_the_fit(aset, written, body):
    text = (REPO / "annotations" / "SCHEMA.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    snippet = next(b for b in blocks if "x_img" in b)
    code = [line for line in snippet.strip().splitlines() if line.strip()]
    assert len(code) == 5
    scope: dict = {}
    exec(snippet.replace("fits.json", str(written["eft-json"])), scope)
    f = aset[0].fit
    own = f.center + 100 * f.scale * (f.cam_weak[0] * f.keypoints3d[:, :2].astype(float)
                                      + f.cam_weak[1:])
    assert np.abs(np.asarray(scope["x_img"]) - own).max() < 0.01


def test_released_eft_file_without_our_extras_is_read(aset, tmp_path):
    """A file with only the fields of EFT's downloads (built here by hand)."""
    data = []
    for a in aset:
        f, e = a.fit, a.exemplar
        data.append({"parm_pose": f.rotmat.tolist(), "parm_shape": f.betas.tolist(),
                     "parm_cam": f.cam_weak.tolist(), "bbox_scale": f.scale,
                     "bbox_center": f.center.tolist(), "gt_keypoint_2d": e.keypoints.tolist(),
                     "joint_validity_openpose18": [1] * 18, "smpltype": "smpl",
                     "annotId": e.meta["annotId"], "imageName": e.meta["imageName"]})
    path = tmp_path / "COCO2014-Part-ver01.json"
    path.write_text(json.dumps({"ver": 0.1, "meta": {"dbname": "COCO2014-Part"},
                                "data": data}))
    back = read_annotations(path)
    assert {"quality", "keypoints3d", "provenance"} <= back.missing
    assert back.ids == [f"COCO2014-Part/{a.exemplar.meta['annotId']}" for a in aset]
    assert back.provenance.eft_version == "unknown"
    for a, b in zip(aset, back, strict=True):
        np.testing.assert_allclose(b.fit.rotmat, a.fit.rotmat, atol=1e-7)
        np.testing.assert_allclose(b.fit.pose_aa, a.fit.pose_aa, atol=1e-5)
        assert b.fit.quality.accepted and np.isnan(b.fit.quality.loss_2d_final)
        assert b.fit.quality.max_abs_beta == pytest.approx(np.abs(a.fit.betas).max())
        assert b.fit.quality.n_valid_keypoints == a.fit.quality.n_valid_keypoints
        assert np.isnan(b.fit.keypoints3d).all()
        assert b.exemplar.meta["dataset"] == "COCO2014-Part"
    with pytest.raises(AnnotationError, match="no fit quality"):
        back.filter(accepted_only=True)


def test_spin_npz_layout(aset, written):
    with np.load(written["spin-npz"], allow_pickle=False) as npz:  # no pickles inside
        d = {k: npz[k] for k in npz.files}
    n = len(aset)
    kps = np.stack([a.exemplar.keypoints for a in aset])
    assert d["imgname"].tolist() == [a.exemplar.meta["imageName"] for a in aset]
    np.testing.assert_array_equal(d["part"], kps[:, 25:])
    np.testing.assert_array_equal(d["openpose"], kps[:, :25])
    assert d["center"].shape == (n, 2) and d["scale"].shape == (n,)
    assert d["pose"].shape == (n, 72) and d["shape"].shape == (n, 10)
    assert (d["has_smpl"] == 1).all()
    assert d["S"].shape == (n, 24, 4) and (d["S"][..., 3] == 1).all()
    np.testing.assert_allclose(d["S"][..., :3], np.stack([a.fit.keypoints3d[25:] for a in aset]),
                               atol=1e-6)
    np.testing.assert_allclose(d["pose"], np.stack([a.fit.pose_aa for a in aset]), atol=1e-6)


def test_humandata_layout(aset, written):
    """Loaded the way mmhuman3d's HumanData.load does (np.load with pickles)."""
    with np.load(written["humandata"], allow_pickle=True) as npz:
        d = {k: npz[k] for k in npz.files}
    n = len(aset)
    assert int(d["__data_len__"]) == n and bool(d["__keypoints_compressed__"])
    assert "__temporal_len__" not in d  # mmhuman3d >= 0.6 renamed it __data_len__
    smpl = d["smpl"].item()
    assert smpl["global_orient"].shape == (n, 3) and smpl["body_pose"].shape == (n, 23, 3)
    assert smpl["betas"].shape == (n, 10)
    np.testing.assert_allclose(smpl["body_pose"].reshape(n, 69),
                               np.stack([a.fit.pose_aa[3:] for a in aset]), atol=1e-6)
    mask = d["keypoints2d_mask"]
    assert mask.shape == (190,) and mask.sum() == 49
    assert d["bbox_xywh"].shape == (n, 5)
    # decompress like HumanData: values fill the mask's slots in index order
    full = np.zeros((n, 190, 3))
    full[:, mask.astype(bool)] = d["keypoints2d"]
    kps = np.stack([a.exemplar.keypoints for a in aset])
    for spin_name, hd_name in (("Right Ankle", "right_ankle"), ("OP Nose", "nose_openpose"),
                               ("Top of Head (LSP)", "headtop"),
                               ("Pelvis (MPII)", "pelvis_extra"), ("Left Ear", "left_ear")):
        np.testing.assert_allclose(full[:, HUMAN_DATA_NAMES.index(hd_name)],
                                   kps[:, J.SPIN49_INDEX[spin_name]], atol=1e-3)
    side = d["bbox_xywh"][:, 2]
    np.testing.assert_allclose(side, 200 * np.array([a.fit.scale for a in aset]))


def test_provenance_records_how_the_fits_were_made(aset, body):
    p = aset.provenance
    assert p.body_model == {"name": body.name, "sha256": body.content_hash}
    from eft.models.registry import named_prior_path

    prior = named_prior_path("keypoint-prior-v1")
    assert p.regressor["sha256"] == hashlib.sha256(prior.read_bytes()).hexdigest()
    assert p.regressor["hash_of"] == "file"
    assert p.config["type"] == "eft.fitting.config.EFTConfig"
    assert p.config["values"]["rules"]["max_abs_beta"] == CONFIG.rules.max_abs_beta
    assert p.fitting_config() == CONFIG
    from eft import __version__

    assert p.eft_version == __version__
    assert p.camera["focal_length"] == CONFIG.focal_length and p.camera["img_res"] == 224
    assert (p.dataset, p.split, p.extra) == ("coco", "val2014", {"note": "test"})
    created = dt.datetime.fromisoformat(p.created)
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 3600
    assert Provenance.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_provenance_of_a_loaded_regressor_hashes_its_weights():
    from eft.models import load_regressor

    model = load_regressor("default")
    p1 = Provenance.create(regressor=model)
    assert p1.regressor["hash_of"] == "state_dict" and p1.regressor["arch"] == (
        "keypoint_regressor")
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert Provenance.create(regressor=model).regressor["sha256"] != p1.regressor["sha256"]


def test_filters(aset):
    accepted = [a.id for a in aset if a.fit.quality.accepted]
    assert 0 < len(accepted) < len(aset)  # the sample has both
    assert aset.filter(accepted_only=True).ids == accepted
    rejected = next(a.id for a in aset if not a.fit.quality.accepted)
    decisions = {rejected: "accept", accepted[0]: "reject"}
    got = aset.filter(accepted_only=True, decisions=decisions).ids
    assert rejected in got and accepted[0] not in got and len(got) == len(accepted)
    px = sorted(a.fit.quality.reproj_px for a in aset)[len(aset) // 2]
    assert all(a.fit.quality.reproj_px <= px for a in aset.filter(max_reproj_px=px))
    strict = aset.filter(rules=QualityRules.strict(), accepted_only=True)
    assert all(np.abs(a.fit.betas).max() <= 1.0 for a in strict)
    assert all(a.fit.quality.loss_2d_final <= 3e-4 for a in strict)
    assert len(strict) < len(accepted)


def test_a_selection_is_passed_whole(aset):
    """``filter`` takes a Selection (keywords replace its fields); records that carry
    the criteria (QualityCriteria subclasses) make one with ``Selection.of``; the
    columns path keeps the same ids as the record path."""
    import dataclasses

    from eft.annotations.filters import QualityCriteria, Selection

    px = sorted(a.fit.quality.reproj_px for a in aset)[len(aset) // 2]
    sel = Selection(accepted_only=True, max_reproj_px=px)
    want = [a.id for a in aset
            if a.fit.quality.accepted and a.fit.quality.reproj_px <= px]
    assert aset.filter(sel).ids == want
    assert sel.apply(aset.columns()).fit_id.tolist() == want
    assert aset.filter(sel, accepted_only=False).ids == [
        a.id for a in aset if a.fit.quality.reproj_px <= px]
    assert sel.criteria() == {"accepted_only": True, "max_reproj_px": px}

    @dataclasses.dataclass(frozen=True)
    class Spec(QualityCriteria):
        path: str = "x.json"

    spec = Spec(accepted_only=True, max_reproj_px=px)
    assert Selection.of(spec, ids=frozenset(want[:2])) == dataclasses.replace(
        sel, ids=frozenset(want[:2]))
    assert not Selection().active and Selection(min_keypoints=3).active
