"""Annotation files: damaged and newer-schema files, atomic writes, HDF5 streaming,
and the ``eft export / inspect / validate`` commands (on synthetic annotations)."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from eft.annotations import (
    FORMATS,
    AnnotationError,
    AnnotationSet,
    H5Reader,
    H5Writer,
    Provenance,
    read_annotations,
    read_columns,
    write_annotations,
    write_columns,
)
from eft.annotations.synthetic import random_columns
from eft.cli import main

SUFFIX = {"eft-json": ".json", "spin-npz": ".npz", "h5": ".h5", "humandata": ".npz"}
PROV = Provenance.create(dataset="synthetic", split="test")


@pytest.fixture(scope="module")
def columns():
    return random_columns(40, seed=3)


@pytest.fixture(scope="module")
def aset(columns) -> AnnotationSet:
    return AnnotationSet(columns.to_annotations(), PROV)


@pytest.fixture()
def files(aset, tmp_path) -> dict[str, Path]:
    return {fmt: write_annotations(aset, tmp_path / f"a_{fmt}{SUFFIX[fmt]}", format=fmt)
            for fmt in FORMATS}


def _one_line_error(exc: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# -- damaged files --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_is_one_clear_error(files, fmt):
    path = files[fmt]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnnotationError) as exc:
        read_annotations(path, format=fmt)
    assert "corrupt, truncated" in _one_line_error(exc, path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_file_is_one_clear_error(files, fmt):
    path = files[fmt]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    middle = slice(len(data) // 4, len(data) // 4 + 4096)
    data[middle] = rng.integers(0, 256, len(data[middle]), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(AnnotationError) as exc:
        read_annotations(path, format=fmt)
    _one_line_error(exc, path)


def test_wrong_shape_names_the_person(files):
    path = files["eft-json"]
    doc = json.loads(path.read_text())
    doc["data"][3]["parm_cam"] = [1.0, 0.0]
    path.write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=r"person 3: 'parm_cam' must have shape \(3,\)"):
        read_annotations(path)


def test_non_finite_values_are_strict_json_nulls_and_come_back_nan(columns, tmp_path):
    bad = columns.take(slice(0, 5))
    bad.betas = bad.betas.copy()
    bad.betas[1, 4] = np.nan
    bad.quality = {k: v.copy() for k, v in bad.quality.items()}
    bad.quality["pose_nll"][:] = np.nan
    path = write_columns(bad, PROV, tmp_path / "nan.json")

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads(path.read_text(), parse_constant=no_constants)
    assert doc["data"][1]["parm_shape"][4] is None
    assert doc["data"][0]["quality"]["pose_nll"] is None
    _, back = read_columns(path)
    assert np.isnan(back.betas[1, 4]) and np.isnan(back.quality["pose_nll"]).all()
    np.testing.assert_array_equal(back.betas[0], bad.betas[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_fit_stays_a_failed_fit_in_every_format(columns, tmp_path, fmt):
    """SPIN npz writes a fit with non-finite parameters as zeros with ``has_smpl`` 0; it
    must read back as no fit (never a rest-pose target), as in the lossless formats."""
    from eft.train.data import TrainSet

    bad = columns.take(slice(0, 4))
    bad.pose_aa, bad.rotmat = bad.pose_aa.copy(), bad.rotmat.copy()
    bad.pose_aa[2, 5] = np.nan
    bad.rotmat[2, 1] = np.nan
    path = write_columns(bad, PROV, tmp_path / f"nan{SUFFIX[fmt]}", format=fmt)
    _, back = read_columns(path, format=fmt)
    assert not np.isfinite(back.rotmat[2]).all()
    assert np.isfinite(back.rotmat[[0, 1, 3]]).all()
    if fmt == "spin-npz":  # no quality kept: the failed row is told apart by has_smpl
        assert not back.quality["accepted"][2] and "non_finite" in back.quality["flags"][2]
        assert back.quality["accepted"][[0, 1, 3]].all()
    data = TrainSet.from_arrays(back.keypoints2d, back.center, back.scale,
                                rotmat=back.rotmat, betas=back.betas)
    assert data.has_smpl.tolist() == [True, True, False, True]


def test_missing_file_and_unknown_format(tmp_path, aset):
    with pytest.raises(AnnotationError, match="no such file"):
        read_annotations(tmp_path / "nope.h5")
    with pytest.raises(AnnotationError, match="cannot tell the format"):
        write_annotations(aset, tmp_path / "out.txt")
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        write_annotations(aset, tmp_path / "out.json", format="csv")


# -- newer schema ---------------------------------------------------------------------

def _bump_version(path: Path, fmt: str) -> None:
    if fmt == "eft-json":
        doc = json.loads(path.read_text())
        doc["schema_version"] = 2
        path.write_text(json.dumps(doc))
    elif fmt == "h5":
        with h5py.File(path, "r+") as f:
            f.attrs["schema_version"] = 2
    elif fmt == "spin-npz":
        with np.load(path) as npz:
            d = dict(npz)
        d["eft_schema_version"] = np.array(2)
        np.savez(path, **d)
    else:
        with np.load(path, allow_pickle=True) as npz:
            d = dict(npz)
        misc = d["misc"].item()
        misc["eft_schema_version"] = 2
        d["misc"] = misc
        np.savez_compressed(path, **d)


@pytest.mark.parametrize("fmt", FORMATS)
def test_newer_schema_version_is_refused(files, fmt):
    path = files[fmt]
    _bump_version(path, fmt)
    with pytest.raises(AnnotationError) as exc:
        read_annotations(path)
    msg = _one_line_error(exc, path)
    assert "schema version 2, newer than this eft reads (up to 1)" in msg


def test_humandata_reader_never_runs_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.npz"
    np.savez(path, smpl=np.array(Evil(), dtype=object), __temporal_len__=np.array(1))
    with pytest.raises(AnnotationError, match="refusing to load builtins.print"):
        read_annotations(path)


# -- atomic writes --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_write_leaves_the_old_file(aset, files, fmt, monkeypatch):
    path = files[fmt]
    before = path.read_bytes()
    from eft.annotations import columns as cols

    def boom(*a, **k):
        raise RuntimeError("disk full")

    # fail in the middle of writing: after the temporary file exists
    monkeypatch.setattr(cols, "openpose18_validity", boom)
    monkeypatch.setattr(np, "savez", boom)
    monkeypatch.setattr(np, "savez_compressed", boom)
    monkeypatch.setattr(H5Writer, "_flush", boom)
    import eft.annotations.eft_json as ej
    import eft.annotations.humandata as hd

    monkeypatch.setattr(hd, "portable_pickle", boom)  # HumanData's own npz writer

    monkeypatch.setattr(ej, "openpose18_validity", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_annotations(aset, path, format=fmt)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_h5_writer_drops_the_file_when_the_block_fails(tmp_path, columns):
    path = tmp_path / "stream.h5"
    with pytest.raises(ValueError, match="stop"), H5Writer(path, PROV) as w:
        w.append_columns(columns)
        raise ValueError("stop")
    assert list(tmp_path.iterdir()) == []


# -- HDF5 streaming -------------------------------------------------------------------

def test_h5_streaming_appends_equal_one_shot_write(tmp_path):
    parts = [random_columns(n, seed=s, id_offset=1000 * s) for s, n in enumerate((7, 300, 1,
                                                                                  50))]
    path = tmp_path / "stream.h5"
    with H5Writer(path, PROV, chunk_rows=64) as w:
        assert not path.exists()  # only appears when complete
        for p in parts:
            w.append_columns(p)
    header, back = read_columns(path)
    assert header.count == len(back) == 358
    expected = np.concatenate([p.rotmat for p in parts])
    np.testing.assert_array_equal(back.rotmat, expected)
    assert back.fit_id.tolist() == sum((p.fit_id.tolist() for p in parts), [])
    assert back.quality["flags"].tolist() == sum((p.quality["flags"].tolist()
                                                  for p in parts), [])
    with h5py.File(path) as f:
        ds = f["fits/rotmat"]
        assert ds.chunks == (64, 24, 3, 3) and ds.compression == "gzip"
        assert ds.maxshape[0] is None
    with H5Reader(path) as r:
        mid = r.read(300, 310)
    np.testing.assert_array_equal(mid.betas, back.betas[300:310])


def test_h5_strings_widen_when_a_longer_one_arrives(tmp_path):
    first = random_columns(30, seed=1)
    later = random_columns(30, seed=2, id_offset=30)
    later.image_path = later.image_path.copy()
    later.image_path[5] = "images/" + "é" * 300 + ".jpg"  # 600+ bytes of UTF-8
    later.meta = later.meta.copy()
    later.meta[7] = {**later.meta[7], "note": "x" * 1000}
    path = tmp_path / "wide.h5"
    with H5Writer(path, PROV, chunk_rows=16) as w:
        w.append_columns(first)
        w.append_columns(later)
    _, back = read_columns(path)
    assert back.image_path[35] == later.image_path[5]
    assert back.meta[37]["note"] == "x" * 1000
    assert back.image_path.tolist() == first.image_path.tolist() + later.image_path.tolist()
    with h5py.File(path) as f:  # plain h5py users read the strings as text
        assert f["exemplars/image_path"].asstr()[35] == later.image_path[5]
        assert f["fits/fit_id"].asstr()[0] == first.fit_id[0]


def _peak_bytes_streaming(path: Path, batch, repeats: int) -> int:
    tracemalloc.start()
    with H5Writer(path, PROV, chunk_rows=256) as w:
        for _ in range(repeats):
            w.append_columns(batch)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_h5_streaming_memory_does_not_grow_with_n(tmp_path):
    batch = random_columns(250, seed=5)
    small = _peak_bytes_streaming(tmp_path / "a.h5", batch, 4)     # 1,000 fits
    large = _peak_bytes_streaming(tmp_path / "b.h5", batch, 40)    # 10,000 fits
    assert large < 1.3 * small, (small, large)
    per_fit = sum(v.nbytes for v in (batch.rotmat, batch.keypoints2d, batch.keypoints3d)) / 250
    assert large < 0.2 * 10_000 * per_fit  # far below holding the fits in memory
    with H5Reader(tmp_path / "b.h5") as r:
        assert len(r) == 10_000


# -- commands -------------------------------------------------------------------------

def test_validate_exit_codes(files, tmp_path, columns, capsys):
    assert main(["validate", str(files["h5"])]) == 0
    assert "valid (h5, schema version 1, 40 fits" in capsys.readouterr().out
    bad = columns.take(slice(None))
    bad.rotmat = bad.rotmat.copy()
    bad.rotmat[2, 5] *= 1.1            # not orthonormal
    bad.betas = bad.betas.copy()
    bad.betas[7, 0] = np.nan           # not finite
    bad.fit_id = bad.fit_id.copy()
    bad.fit_id[9] = bad.fit_id[8]      # duplicate
    path = write_columns(bad, PROV, tmp_path / "bad.h5")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "not orthonormal" in out and bad.fit_id[2] in out
    assert "non-finite betas: 1 fit(s)" in out
    assert "duplicate fit id: 1 fit(s)" in out and "INVALID" in out
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(files["h5"].read_bytes()[:5000])
    assert main(["validate", str(truncated)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eft: error:") and "cut.h5" in err[0]


def test_corrupt_file_cli_prints_one_line_without_traceback(files):
    path = files["spin-npz"]
    path.write_bytes(path.read_bytes()[:300])
    proc = subprocess.run([sys.executable, "-m", "eft.cli", "inspect", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eft: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_inspect_prints_counts_histograms_reasons_and_provenance(files, columns, capsys):
    assert main(["inspect", str(files["h5"])]) == 0
    out = capsys.readouterr().out
    n_acc = int(columns.quality["accepted"].sum())
    assert f"fits: {len(columns)}" in out
    assert f"accepted: {n_acc} (" in out and f"rejected: {len(columns) - n_acc}" in out
    assert "final 2D loss" in out and "mean reprojection error (px)" in out
    assert "dataset: synthetic   split: test" in out and "camera: eft-weak-perspective" in out
    flags = [f for fl in columns.quality["flags"] for f in fl]
    if flags:
        top = max(set(flags), key=flags.count)
        assert f"{top} {flags.count(top)}" in out


def test_export_filters_and_records_it(files, columns, tmp_path, capsys):
    out = tmp_path / "acc.json"
    rejected = [str(i) for i, a in zip(columns.fit_id, columns.quality["accepted"],
                                       strict=True) if not a]
    accepted = [str(i) for i, a in zip(columns.fit_id, columns.quality["accepted"],
                                       strict=True) if a]
    review = tmp_path / "review.json"
    review.write_text(json.dumps({"decisions": {rejected[0]: "accept",
                                                accepted[0]: "reject"}}))
    assert main(["export", str(files["h5"]), "-o", str(out), "--accepted-only",
                 "--review", str(review)]) == 0
    assert f"{len(accepted)} of {len(columns)} fits" in capsys.readouterr().out
    back = read_annotations(out)
    assert set(back.ids) == set(accepted) - {accepted[0]} | {rejected[0]}
    assert back.provenance.extra["export"]["filters"]["accepted_only"] is True
    assert back.provenance.dataset == "synthetic"
    # h5 -> h5 streams; thresholds
    out2 = tmp_path / "px.h5"
    assert main(["export", str(files["h5"]), "-o", str(out2), "--max-reproj-px", "8"]) == 0
    _, c2 = read_columns(out2)
    assert (c2.quality["reproj_px"] <= 8).all()
    assert len(c2) == int((columns.quality["reproj_px"] <= 8).sum())
    # a lossy format says what it drops; no S with --no-keypoints3d
    out3 = tmp_path / "spin.npz"
    assert main(["export", str(out), "-o", str(out3), "--no-keypoints3d"]) == 0
    assert "not kept by spin-npz" in capsys.readouterr().out
    with np.load(out3) as npz:
        assert "S" not in npz.files and npz["pose"].shape == (len(back), 72)
    # and refuses quality filters on it
    assert main(["export", str(out3), "-o", str(tmp_path / "x.json"), "--accepted-only"]) == 2


def test_detect_format_sniffs_content(files, tmp_path):
    from eft.annotations import detect_format

    assert detect_format(files["humandata"]) == "humandata"
    assert detect_format(files["spin-npz"]) == "spin-npz"
    renamed = tmp_path / "fits.bin"
    renamed.write_bytes(files["h5"].read_bytes())
    assert detect_format(renamed) == "h5"
