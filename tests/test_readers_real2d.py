"""The real 2D label sets in ../shared/data, read in place: COCO 2017 person keypoints
(no images), the MPII CSV and the MPII Tompson validation h5.  Every value is checked
against the raw file read here independently (json / csv / h5py), and each file goes
through ``eft fit`` with its shipped config, keypoints only."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import pytest

from eft.body import joints as J
from eft.data.readers import keypoint_box_center_scale, read_dataset
from tests.helpers import require_file

REPO = Path(__file__).resolve().parents[1]
IDX = J.SPIN49_INDEX

# MPII joint order (file columns / part index 0..15), written out from the MPII docs.
MPII_SPIN = ["Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
             "Pelvis (MPII)", "Thorax (MPII)", "Neck (LSP)", "Top of Head (LSP)",
             "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow",
             "Left Wrist"]
CSV_NAMES = ["r ankle", "r knee", "r hip", "l hip", "l knee", "l ankle", "pelvis", "thorax",
             "upper neck", "head top", "r wrist", "r elbow", "r shoulder", "l shoulder",
             "l elbow", "l wrist"]
# COCO-17 order -> SPIN-49 names.
COCO_SPIN = ["Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear", "Left Shoulder",
             "Right Shoulder", "Left Elbow", "Right Elbow", "Left Wrist", "Right Wrist",
             "Left Hip", "Right Hip", "Left Knee", "Right Knee", "Left Ankle", "Right Ankle"]


def _file(shared_data: Path, rel: str) -> Path:
    return require_file(shared_data / rel, "real 2D label file")


@pytest.fixture(scope="module")
def h5_path(shared_data):
    return _file(shared_data, "mpii_2d/mpii_valid_tompson.h5")


@pytest.fixture(scope="module")
def csv_path(shared_data):
    return _file(shared_data, "mpii_2d/mpii_human_pose.csv")


@pytest.fixture(scope="module")
def coco_val_path(shared_data):
    return _file(shared_data, "coco2017_keypoints/person_keypoints_val2017.json")


@pytest.fixture(scope="module")
def h5_raw(h5_path):
    with h5py.File(h5_path, "r") as f:
        return {k: f[k][()] for k in f}


@pytest.fixture(scope="module")
def h5_read(h5_path):
    return read_dataset("mpii", h5_path)


@pytest.fixture(scope="module")
def csv_rows(csv_path):
    with open(csv_path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def csv_read(csv_path):
    return read_dataset("mpii", csv_path)


def _csv_xy(row: dict) -> np.ndarray:
    return np.array([[float(row[f"{n}_X"]), float(row[f"{n}_Y"])] for n in CSV_NAMES])


# --- MPII Tompson validation h5 --------------------------------------------------------

def test_h5_counts_ids_and_skips(h5_raw, h5_read, h5_path):
    n = len(h5_raw["imgname"])
    assert n == 2958
    labelled = (h5_raw["part"] != 0).any(axis=2).sum(axis=1)
    ids = [f"mpii/{PurePosixPath(m.decode()).stem}/{int(p)}"
           for m, p in zip(h5_raw["imgname"], h5_raw["person"], strict=True)]
    assert len(set(ids)) == n
    keep = labelled >= 6
    assert [e.id for e in h5_read.exemplars] == [i for i, k in zip(ids, keep, strict=True) if k]
    assert len(h5_read) == 2957
    assert [(s.id, s.reason) for s in h5_read.skipped] == \
        [(i, "too_few_keypoints") for i, k in zip(ids, keep, strict=True) if not k] == \
        [("mpii/043871155/2", "too_few_keypoints")]
    assert all(e.source == "mpii16" for e in h5_read.exemplars)
    # stable: a second read, and another crop, give the same ids in the same order
    again = read_dataset("mpii", h5_path, crop="keypoints", min_keypoints=0)
    assert [e.id for e in again.exemplars if e.id != "mpii/043871155/2"] == \
        [e.id for e in h5_read.exemplars]


@pytest.mark.parametrize("row", [0, 2, 293, 1856, 2957])
def test_h5_values_match_the_file(h5_raw, h5_read, row):
    by_id = {e.id: e for e in h5_read.exemplars}
    stem = PurePosixPath(h5_raw["imgname"][row].decode()).stem
    e = by_id[f"mpii/{stem}/{int(h5_raw['person'][row])}"]
    part, vis = h5_raw["part"][row], h5_raw["visible"][row]
    for j, name in enumerate(MPII_SPIN):
        got = e.keypoints[IDX[name]]
        if np.all(part[j] == 0):
            assert got.tolist() == [0.0, 0.0, 0.0], name
        else:  # labelled (occluded too: SPIN/EFT fit every labelled point), 1-based
            assert got.tolist() == [part[j, 0] - 1, part[j, 1] - 1, 1.0], name
    assert e.keypoints[25:].sum() == pytest.approx(
        (part[(part != 0).any(axis=1)] - 1).sum() + (part != 0).any(axis=1).sum())
    np.testing.assert_array_equal(e.center, h5_raw["center"][row] - 1)
    assert e.scale == h5_raw["scale"][row]
    assert e.meta["is_visible"] == [int(v) for v in vis]
    assert e.meta["imageIndex"] == int(h5_raw["index"][row])
    assert e.meta["head_size"] == h5_raw["normalize"][row]
    assert e.meta["crop_from"] == "given" and e.image_path.endswith(f"{stem}.jpg")


def test_h5_labelled_but_occluded_and_border_points(h5_raw, h5_read):
    by_id = {e.id: e for e in h5_read.exemplars}
    # row 2: ankles unlabelled (0, 0); right wrist and elbow labelled but not visible
    e = by_id["mpii/051423444/0"]
    assert h5_raw["visible"][2, 10] == 0 and e.keypoints[IDX["Right Wrist"], 2] == 1
    assert e.keypoints[IDX["Right Ankle"], 2] == 0 and e.keypoints[IDX["Left Ankle"], 2] == 0
    # row 293: head top at y = 0 in the file (truncated coordinate) is a labelled point
    stem = PurePosixPath(h5_raw["imgname"][293].decode()).stem
    e = by_id[f"mpii/{stem}/{int(h5_raw['person'][293])}"]
    assert h5_raw["part"][293, 9].tolist() == [325.0, 0.0]
    assert e.keypoints[IDX["Top of Head (LSP)"]].tolist() == [324.0, -1.0, 1.0]


def test_h5_one_based_false_keeps_numbers(h5_raw, h5_path):
    e = read_dataset("mpii", h5_path, one_based=False).exemplars[0]
    np.testing.assert_array_equal(e.keypoints[IDX["Right Ankle"], :2], h5_raw["part"][0, 0])
    np.testing.assert_array_equal(e.center, h5_raw["center"][0])


# --- MPII CSV --------------------------------------------------------------------------

def test_csv_counts_ids_and_skips(csv_rows, csv_read):
    assert len(csv_rows) == 17372
    ids = [f"mpii/{PurePosixPath(r['NAME']).stem}/0" for r in csv_rows]
    assert len(set(ids)) == len(ids)  # one person per image
    labelled = [int((~np.all(_csv_xy(r) == -1, axis=1)).sum()) for r in csv_rows]
    keep = [n >= 6 for n in labelled]
    assert [e.id for e in csv_read.exemplars] == [i for i, k in zip(ids, keep, strict=True) if k]
    assert len(csv_read) == 17371
    assert [(s.id, s.reason, s.detail) for s in csv_read.skipped] == \
        [("mpii/064932232/0", "too_few_keypoints", "3 < 6")]
    assert [e.meta["csv_id"] for e in csv_read.exemplars[:3]] == [1, 2, 3]


@pytest.mark.parametrize("row", [0, 1, 5, 12679, 17371])
def test_csv_values_match_the_file(csv_rows, csv_read, row):
    r = csv_rows[row]
    by_id = {e.id: e for e in csv_read.exemplars}
    e = by_id[f"mpii/{PurePosixPath(r['NAME']).stem}/0"]
    xy = _csv_xy(r)
    lab = ~np.all(xy == -1, axis=1)
    for j, name in enumerate(MPII_SPIN):
        want = [xy[j, 0] - 1, xy[j, 1] - 1, 1.0] if lab[j] else [0.0, 0.0, 0.0]
        assert e.keypoints[IDX[name]].tolist() == pytest.approx(want), name
    # no centre in the file: the labelled joints' box centre, the file's Scale
    np.testing.assert_allclose(e.center, (xy[lab].min(0) + xy[lab].max(0)) / 2 - 1)
    assert e.scale == float(r["Scale"])
    assert e.meta["center_from"] == "keypoints" and e.meta["csv_id"] == int(r["ID"])
    assert e.meta["activity"] == r["Activity"] and e.meta["category"] == r["Category"]


def test_csv_minus_one_is_unlabelled_only_as_a_pair(csv_rows, csv_read):
    # row 12679: head top at (857, -1), a real point just above the image
    r = csv_rows[12679]
    assert (r["head top_X"], r["head top_Y"]) == ("857", "-1")
    e = next(x for x in csv_read.exemplars if x.meta["csv_id"] == int(r["ID"]))
    assert e.keypoints[IDX["Top of Head (LSP)"]].tolist() == [856.0, -2.0, 1.0]
    # row 1: both ankles and knees are -1, -1
    e = csv_read.exemplars[1]
    assert csv_rows[1]["r ankle_X"] == "-1"
    assert e.keypoints[[IDX["Right Ankle"], IDX["Right Knee"], IDX["Left Knee"]], 2].tolist() \
        == [0.0, 0.0, 0.0]


def test_csv_keypoint_crop(csv_path, csv_read):
    res = read_dataset("mpii", csv_path, crop="keypoints", rescale=1.3)
    assert [e.id for e in res.exemplars] == [e.id for e in csv_read.exemplars]
    for e in res.exemplars[:50]:
        c, s = keypoint_box_center_scale(e.keypoints, 1.3)
        np.testing.assert_allclose(e.center, c)
        assert e.scale == pytest.approx(s) and e.meta["crop_from"] == "keypoints"


def test_csv_and_h5_ids_name_the_same_people(csv_read, h5_read):
    """The CSV row is its image's person 0: wherever the h5 holds that person, the two
    files agree on every joint (the h5 truncates to whole pixels) and the h5's scale is
    Stacked Hourglass's 1.25 x MPII's."""
    csv_by_id = {e.id: e for e in csv_read.exemplars}
    common = [e for e in h5_read.exemplars if e.id in csv_by_id]
    assert len(common) == 1810
    for h in common:
        c = csv_by_id[h.id]
        np.testing.assert_array_equal(c.keypoints[:, 2], h.keypoints[:, 2])
        lab = c.keypoints[:, 2] > 0
        # official coordinates, 1-based: the h5 holds trunc(x) - 1 where CSV holds x - 1
        np.testing.assert_array_equal(np.trunc(c.keypoints[lab, :2] + 1) - 1,
                                      h.keypoints[lab, :2], err_msg=h.id)
        assert h.scale == pytest.approx(1.25 * c.scale, rel=1e-8)


def test_csv_exclude_images_holds_out_the_validation_images(csv_path, csv_rows, h5_raw,
                                                            h5_path):
    res = read_dataset("mpii", csv_path, exclude_images=h5_path)
    val_images = {m.decode() for m in h5_raw["imgname"]}
    in_val = sum(r["NAME"] in val_images for r in csv_rows)
    assert in_val == 2723
    assert res.skipped_by_reason() == {"too_few_keypoints": 1, "held_out": in_val}
    assert len(res) == 17372 - 1 - in_val == 14648
    assert not {e.meta["imageName"] for e in res.exemplars} & val_images


# --- COCO 2017 --------------------------------------------------------------------------

def _coco_expected(raw: dict) -> tuple[list[int], list[int]]:
    """(kept, too-few) annotation ids, sorted: non-crowd people with >= 6 labelled
    keypoints and a box of positive size."""
    kept, few = [], []
    for a in sorted(raw["annotations"], key=lambda a: a["id"]):
        assert not a.get("iscrowd", 0)
        n = sum(v > 0 for v in a["keypoints"][2::3])
        (kept if n >= 6 else few).append(a["id"])
        if n >= 6:
            assert a["bbox"][2] > 0 and a["bbox"][3] > 0
    return kept, few


def _check_coco(res, raw: dict, prefix: str, picks: list[int]) -> None:
    kept, few = _coco_expected(raw)
    assert [e.id for e in res.exemplars] == [f"{prefix}/{i}" for i in kept]
    assert [(s.id, s.reason) for s in res.skipped] == \
        [(f"{prefix}/{i}", "too_few_keypoints") for i in few]
    images = {im["id"]: im for im in raw["images"]}
    anns = {a["id"]: a for a in raw["annotations"]}
    by_id = {e.id: e for e in res.exemplars}
    for k in picks:
        a = anns[kept[k]]
        e = by_id[f"{prefix}/{a['id']}"]
        kp = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
        for j, name in enumerate(COCO_SPIN):
            want = [kp[j, 0], kp[j, 1], 1.0] if kp[j, 2] > 0 else [kp[j, 0], kp[j, 1], 0.0]
            assert e.keypoints[IDX[name]].tolist() == want, name
        x, y, w, h = a["bbox"]
        np.testing.assert_allclose(e.center, [x + w / 2, y + h / 2])
        assert e.scale == pytest.approx(1.2 * max(w, h) / 200)
        im = images[a["image_id"]]
        assert e.image_size == (im["width"], im["height"])
        assert e.image_path.endswith(im["file_name"]) and e.meta["imageId"] == im["id"]


def test_coco_val2017(coco_val_path):
    raw = json.loads(coco_val_path.read_text())
    assert len(raw["annotations"]) == 6352
    res = read_dataset("coco", coco_val_path)
    assert len(res) == 5430 and res.skipped_by_reason() == {"too_few_keypoints": 922}
    _check_coco(res, raw, "coco", [0, 1, 777, 5429])
    assert [e.id for e in read_dataset("coco", coco_val_path).exemplars] == \
        [e.id for e in res.exemplars]


def test_coco_train2017(shared_data):
    """The whole train file (147k people): a few seconds with the batched reader."""
    path = _file(shared_data, "coco2017_keypoints/person_keypoints_train2017.json")
    raw = json.loads(path.read_text())
    assert len(raw["annotations"]) == 146921
    res = read_dataset("coco", path, dataset="coco2017")
    assert len(res) == 128109
    _check_coco(res, raw, "coco2017", [0, 64000, 128108])


# --- eft fit, keypoints only, with the shipped configs ---------------------------------

@pytest.mark.parametrize("config, rel, extra", [
    ("coco2017-val-keypoints.yaml", "coco2017_keypoints/person_keypoints_val2017.json", []),
    ("mpii-tompson-val.yaml", "mpii_2d/mpii_valid_tompson.h5", []),
    ("mpii-csv.yaml", "mpii_2d/mpii_human_pose.csv",
     ["datasets.0.options.exclude_images={h5}"]),
])
def test_eft_fit_real_labels(shared_data, tmp_path, one_thread, config, rel, extra):
    from eft.annotations import read_annotations
    from eft.cli import main
    from eft.jobs import load_config
    from eft.jobs.sources import read_one

    path = _file(shared_data, rel)
    h5 = shared_data / "mpii_2d" / "mpii_valid_tompson.h5"
    sets = [f"datasets.0.path={path}", *[x.format(h5=h5) for x in extra]]
    args = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "out"
    rc = main(["fit", str(REPO / "fitting" / config), "--limit", "4", "-o", str(out),
               "--device", "cpu", "--batch-size", "4", "--set", "eft.max_iters=3", "-q",
               "--set", "eft.preset=open-prior", *args])  # no pilot: the readers' test
    assert rc == 0
    cfg = load_config(REPO / "fitting" / config)
    assert cfg.check_images is False
    ds = cfg.datasets[0]
    ids = sorted(e.id for e in read_one(replace(ds, path=str(path), options={
        **ds.options, **({"exclude_images": str(h5)} if extra else {})})).exemplars)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fitted"] == 4 and summary["failed_by_reason"] == {}
    fits = read_annotations(out / "fits.h5")
    assert fits.ids == ids[:4]
    for a in fits:
        assert np.all(np.isfinite(a.fit.keypoints3d))


@pytest.mark.parametrize("config, rel, kind", [
    ("coco2017-keypoints.yaml", "coco2017_keypoints/person_keypoints_train2017.json", "coco"),
    ("coco2017-val-keypoints.yaml", "coco2017_keypoints/person_keypoints_val2017.json",
     "coco"),
    ("mpii-csv.yaml", "mpii_2d/mpii_human_pose.csv", "mpii"),
    ("mpii-tompson-val.yaml", "mpii_2d/mpii_valid_tompson.h5", "mpii"),
])
def test_real_label_configs(config, rel, kind):
    from eft.jobs import load_config

    cfg = load_config(REPO / "fitting" / config)
    (ds,) = cfg.datasets
    assert ds.kind == kind and ds.path == f"../shared/data/{rel}"
    assert cfg.check_images is False and cfg.regressor == "default"
    assert ds.options["min_keypoints"] == 6
    if config == "mpii-csv.yaml":
        assert ds.options["exclude_images"] == "../shared/data/mpii_2d/mpii_valid_tompson.h5"
