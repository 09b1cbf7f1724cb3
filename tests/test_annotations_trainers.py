"""Annotation files that real trainers load whole (issue 14): image folders kept,
EFT's ``annotIds``, HumanData that NumPy 1.x loads, ``__data_len__``, mmhuman3d's 2021
layout, compound suffixes, self-describing HDF5, ids that are never renumbered and
quality that survives one malformed row."""

from __future__ import annotations

import json
import os
import pickletools
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from eft.annotations import Provenance, read_annotations
from eft.annotations.api import detect_format, read_columns
from eft.annotations.columns import _object_array
from eft.annotations.eft_json import write_eft_json
from eft.annotations.errors import AnnotationError
from eft.annotations.h5 import write_h5
from eft.annotations.humandata import (
    HUMAN_DATA_NAMES,
    SMPLX_144_NAMES,
    portable_pickle,
    read_humandata,
    write_humandata,
)
from eft.annotations.record import MALFORMED_QUALITY
from eft.annotations.spin_npz import read_spin_npz, write_spin_npz
from eft.annotations.synthetic import random_columns
from eft.body import joints as J
from eft.cli import main

PROV = Provenance.unknown("test")
#: Names as SPIN's files have them: COCO's folder, 3DPW's per-sequence frames (the same
#: file name in two sequences).
NAMES = ["train2014/COCO_train2014_000000000036.jpg",
         "imageFiles/courtyard_arguing_00/image_00000.jpg",
         "imageFiles/downtown_walking_00/image_00000.jpg",
         "val2017/000000000785.jpg"]


def _columns(n: int = 4, seed: int = 0):
    cols = random_columns(n, seed)
    metas = []
    for i, m in enumerate(cols.meta):
        metas.append({**m, "imageName": NAMES[i % len(NAMES)], "annotId": 1000 + i})
    cols.meta = _object_array(metas)
    return cols


# -- image folders ---------------------------------------------------------------------

def test_image_folders_survive_spin_npz_and_humandata(tmp_path):
    cols = _columns()
    spin = write_spin_npz(cols, PROV, tmp_path / "a.npz")
    with np.load(spin, allow_pickle=False) as npz:
        assert npz["imgname"].tolist() == NAMES
    _, back = read_spin_npz(spin)
    assert back.image_names() == NAMES
    hd = write_humandata(back, PROV, tmp_path / "b.humandata.npz")
    with np.load(hd, allow_pickle=False) as npz:
        assert npz["image_path"].tolist() == NAMES
    _, back2 = read_humandata(hd)
    assert back2.image_names() == NAMES
    # and back into a SPIN npz again: still unique, still with folders
    write_spin_npz(back2, PROV, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert npz["imgname"].tolist() == NAMES and len(set(NAMES)) == len(NAMES)


def test_readers_keep_the_path_below_the_image_root(tmp_path, shared_data):
    """A real COCO file whose file_name carries a folder, and the generic reader."""
    from eft.data.readers import read_coco, read_generic

    doc = json.loads((shared_data / "coco_sample" / "test_coco.json").read_text())
    for img in doc["images"]:
        img["file_name"] = "val2017/" + img["file_name"]
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    res = read_coco(tmp_path / "coco.json", tmp_path)
    assert res.exemplars and all(e.meta["imageName"].startswith("val2017/")
                                 for e in res.exemplars)
    spread = np.column_stack([30.0 + np.arange(17), 50.0 + 3 * np.arange(17),
                              np.full(17, 2.0)]).ravel().tolist()  # not all on one point
    records = [{"image": NAMES[1], "keypoint_format": "coco17", "bbox": [10, 10, 50, 100],
                "keypoints": spread},
               {"image": NAMES[2], "keypoint_format": "coco17", "bbox": [10, 10, 50, 100],
                "keypoints": spread}]
    (tmp_path / "g.json").write_text(json.dumps(records))
    gen = read_generic(tmp_path / "g.json", tmp_path, min_keypoints=1)
    assert [e.meta["imageName"] for e in gen.exemplars] == NAMES[1:3]


# -- EFT's loader reads annotIds ---------------------------------------------------------

def test_spin_npz_has_the_annotIds_efts_loader_reads(tmp_path):
    cols = _columns()
    path = write_spin_npz(cols, PROV, tmp_path / "a.npz")
    with np.load(path, allow_pickle=False) as npz:
        # what EFT's BaseDataset does: annotIds beside imgname, same length
        assert "annotIds" in npz.files
        assert npz["annotIds"].tolist() == [1000, 1001, 1002, 1003]
        assert len(npz["annotIds"]) == len(npz["imgname"])
    _, back = read_spin_npz(path)
    assert back.annot_ids().tolist() == [1000, 1001, 1002, 1003]


# -- HumanData: no NumPy-2-only pickles, __data_len__ -----------------------------------

def _pickle_globals(raw: bytes) -> set[tuple[str, str]]:
    out, strings = set(), []
    for op, arg, _ in pickletools.genops(raw):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        if op.name == "GLOBAL":
            mod, name = arg.split(" ", 1)
            out.add((mod, name))
        elif op.name == "STACK_GLOBAL":
            out.add((strings[-2], strings[-1]))
    return out


def test_humandata_holds_plain_arrays_and_portable_pickles_only(tmp_path):
    path = write_humandata(_columns(), PROV, tmp_path / "a.npz")
    pickled = []
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            with zf.open(member) as fp:
                version = np.lib.format.read_magic(fp)
                _, _, dtype = (np.lib.format.read_array_header_1_0(fp) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(fp))
                if dtype.hasobject:
                    pickled.append(member)
                    globs = _pickle_globals(fp.read())
                    # NumPy 2 names numpy._core.multiarray._reconstruct, which NumPy
                    # < 1.26 cannot import; ours names numpy.ndarray / numpy.dtype only
                    assert globs <= {("numpy", "ndarray"), ("numpy", "dtype")}, (member, globs)
    # only the dicts HumanData.fromfile needs as dicts are pickled
    assert sorted(pickled) == ["misc.npy", "smpl.npy"]
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            if f"{key}.npy" not in pickled:
                npz[key]  # loads without pickles
        assert int(npz["__data_len__"]) == 4 and "__temporal_len__" not in npz.files
    # what HumanData.load does: np.load with pickles, .item() of 0-d arrays
    with np.load(path, allow_pickle=True) as npz:
        smpl = npz["smpl"].item()
    assert smpl["body_pose"].shape == (4, 23, 3) and smpl["body_pose"].flags.writeable


def test_portable_pickle_round_trips_arrays():
    import pickle

    value = {"a": np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],
             "b": np.array(["x", "yz"]), "c": [1, "two", np.float64(3.5)]}
    back = pickle.loads(portable_pickle(value))
    np.testing.assert_array_equal(back["a"], value["a"])
    assert back["a"].dtype == np.float32 and back["b"].tolist() == ["x", "yz"]
    assert back["c"][:2] == [1, "two"] and float(back["c"][2]) == 3.5


@pytest.mark.skipif(not os.environ.get("EFT_NUMPY1_PYTHON"),
                    reason="set EFT_NUMPY1_PYTHON to a python with numpy < 1.26 to load "
                           "the HumanData file there")
def test_humandata_loads_on_numpy_1(tmp_path):
    path = write_humandata(_columns(), PROV, tmp_path / "a.npz")
    code = ("import sys, numpy as np; assert np.__version__ < '1.26', np.__version__; "
            "z = np.load(sys.argv[1], allow_pickle=True); "
            "s = z['smpl'].item(); m = z['misc'].item(); "
            "print(s['betas'].shape, len(m['eft_fit_id']), int(z['__data_len__']))")
    out = subprocess.run([os.environ["EFT_NUMPY1_PYTHON"], "-c", code, str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(4, 10) 4 4"


# -- mmhuman3d's 2021 layout -------------------------------------------------------------

def _layout_2021(tmp_path: Path, with_smpl: bool) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 3
    kp = np.zeros((n, 144, 3))
    kp[..., :2] = rng.uniform(0, 500, (n, 144, 2))
    kp[..., 2] = 1.0
    mask = np.zeros(144, np.uint8)
    for name in ("right_ankle", "left_knee", "right_hip", "left_hip", "nose", "left_ear",
                 "right_wrist", "neck"):
        mask[SMPLX_144_NAMES.index(name)] = 1
    kp[:, mask == 0, 2] = 0.0
    data = {"image_path": np.array(NAMES[:n]), "bbox_xywh": rng.uniform(10, 200, (n, 4)),
            "config": np.array("coco"), "keypoints2d": kp, "mask": mask}
    path = tmp_path / "coco_2021.npz"
    if with_smpl:
        smpl = {"global_orient": np.zeros((n, 3), np.float32),
                "body_pose": rng.normal(0, 0.2, (n, 23, 3)).astype(np.float32),
                "betas": rng.normal(0, 1, (n, 10)).astype(np.float32)}
        np.savez(path, smpl=smpl, **data)
    else:
        np.savez(path, **data)
    return path, kp


def test_humandata_2021_layout_without_smpl_says_it_holds_no_fits(tmp_path):
    path, _ = _layout_2021(tmp_path, with_smpl=False)
    assert detect_format(path) == "humandata"  # was: "not a SPIN npz (no 'imgname')"
    with pytest.raises(AnnotationError) as err:
        read_annotations(path)
    msg = str(err.value)
    assert "without SMPL fits" in msg and "keypoints2d (3 people x 144)" in msg
    assert "\n" not in msg


def test_humandata_2021_layout_with_smpl_is_read_by_keypoint_name(tmp_path):
    path, kp = _layout_2021(tmp_path, with_smpl=True)
    _, cols = read_columns(path)
    assert len(cols) == 3 and cols.image_names() == NAMES[:3]
    k2 = cols.keypoints2d
    for spin, name in (("Right Ankle", "right_ankle"), ("Left Knee", "left_knee"),
                       ("Nose", "nose"), ("Left Ear", "left_ear"),
                       ("Right Wrist", "right_wrist"),
                       ("Right Hip", "right_hip"), ("Left Hip", "left_hip")):
        np.testing.assert_allclose(k2[:, J.SPIN49_INDEX[spin]], kp[:, SMPLX_144_NAMES.index(name)])
    # a keypoint the file does not have stays unannotated, never borrowed by position
    assert (k2[:, J.SPIN49_INDEX["Top of Head (LSP)"], 2] == 0).all()
    assert (k2[:, J.SPIN49_INDEX["Left Ankle"], 2] == 0).all()


# -- compound suffix -----------------------------------------------------------------------

def test_export_honours_the_humandata_npz_suffix(tmp_path, capsys):
    src = write_eft_json(_columns(), PROV, tmp_path / "a.json")
    assert detect_format(tmp_path / "x.humandata.npz", for_writing=True) == "humandata"
    assert detect_format(tmp_path / "x.npz", for_writing=True) == "spin-npz"
    dst = tmp_path / "out.humandata.npz"
    assert main(["export", str(src), "-o", str(dst)]) == 0
    assert "(humandata)" in capsys.readouterr().out
    with zipfile.ZipFile(dst) as zf:
        assert "smpl.npy" in zf.namelist() and "imgname.npy" not in zf.namelist()


# -- self-describing HDF5 ------------------------------------------------------------------

def test_every_hdf5_dataset_describes_itself(tmp_path):
    import h5py

    path = write_h5(_columns(), PROV, tmp_path / "a.h5")
    seen = []
    with h5py.File(path, "r") as f:
        conv = json.loads(f.attrs["camera_convention"])
        assert conv["name"] == "eft-weak-perspective" and conv["focal_length"] == 5000.0

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                seen.append(name)
                assert "unit" in obj.attrs and obj.attrs["description"], name
        f.visititems(visit)
        kp = f["exemplars/keypoints2d"].attrs
        assert json.loads(kp["columns"]) == ["x", "y", "confidence"]
        assert json.loads(kp["joint_names"]) == list(J.SPIN49_NAMES)
        assert kp["unit"] == "pixels (image)"
        assert json.loads(f["fits/rotmat"].attrs["joint_names"]) == list(J.SMPL24_NAMES)
        assert f["fits/keypoints3d"].attrs["unit"] == "metres"
        assert json.loads(f["fits/cam_weak"].attrs["columns"]) == ["s", "tx", "ty"]
    from eft.annotations.h5 import _LAYOUT

    assert len(seen) == len(_LAYOUT) == 28


# -- ids are never renumbered ------------------------------------------------------------

def _json_with_duplicate(tmp_path) -> Path:
    path = write_eft_json(_columns(5), PROV, tmp_path / "dup.json")
    lines = path.read_text().splitlines()
    people = [json.loads(line.rstrip(",")) for line in lines[1:-1]]
    people[3]["fitId"] = people[1]["fitId"]
    body = ",\n".join(json.dumps(p) for p in people)
    path.write_text(lines[0] + "\n" + body + "\n" + lines[-1] + "\n")
    return path


def test_duplicated_fit_id_is_an_error_not_a_renumbering(tmp_path, capsys):
    path = _json_with_duplicate(tmp_path)
    with pytest.raises(AnnotationError, match="appears more than once"):
        read_annotations(path)
    assert main(["validate", str(path)]) == 1
    assert "duplicate fit id" in capsys.readouterr().out
    assert main(["export", str(path), "-o", str(tmp_path / "x.npz")]) == 2
    assert "--dedupe" in capsys.readouterr().err
    out = tmp_path / "dedup.json"
    assert main(["export", str(path), "-o", str(out), "--dedupe"]) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 fits" in printed and "left out 1 row(s)" in printed and "row 3" in printed
    orig = random_columns(5, 0).fit_id.tolist()
    assert read_annotations(out).ids == [orig[i] for i in (0, 1, 2, 4)]


def test_one_malformed_quality_row_keeps_the_others(tmp_path):
    cols = _columns(5)
    path = write_eft_json(cols, PROV, tmp_path / "q.json")
    lines = path.read_text().splitlines()
    people = [json.loads(line.rstrip(",")) for line in lines[1:-1]]
    people[2]["quality"]["loss_2d_final"] = "not a number"
    people[4]["quality"]["flags"] = "not_converged"
    path.write_text(lines[0] + "\n" + ",\n".join(json.dumps(p) for p in people) + "\n"
                    + lines[-1] + "\n")
    header, back = read_columns(path)
    assert "quality" not in header.missing  # the file's quality stays usable
    for i in (0, 1, 3):
        assert back.quality["loss_2d_final"][i] == cols.quality["loss_2d_final"][i]
        assert back.quality["accepted"][i] == cols.quality["accepted"][i]
        assert back.quality["flags"][i] == cols.quality["flags"][i]
    for i in (2, 4):  # unknown, not accepted, flagged
        assert np.isnan(back.quality["loss_2d_final"][i]) and not back.quality["accepted"][i]
        assert back.quality["flags"][i] == (MALFORMED_QUALITY,)


def test_humandata_names_cover_spin49():
    """The names the readers map by: every SPIN-49 slot has a HUMAN_DATA name."""
    from eft.annotations.humandata import SPIN49_HUMAN_DATA

    assert len(SPIN49_HUMAN_DATA) == 49
    assert set(SPIN49_HUMAN_DATA) <= set(HUMAN_DATA_NAMES)
