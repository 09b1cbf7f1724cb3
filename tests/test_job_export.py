"""A job's parts -> final files as columns: the same files as the record path
(``Fit`` lists -> ``AnnotationSet`` -> each format), and part files in the on-disk
layout existing job folders hold are read as they were."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from eft.annotations import AnnotationSet, Provenance, read_columns, write_annotations
from eft.data.exemplar import Exemplar
from eft.fitting.records import Fit, FitQuality
from eft.jobs import config_from_dict
from eft.jobs import runner as runner_mod
from eft.jobs.export import OUTPUT_SUFFIX
from eft.jobs.store import Failure, Manifest, Part, read_part, write_part

FORMATS = ["eft-json", "spin-npz", "h5", "humandata"]


def _record(i: int, rng, variant: int = 0):
    """A fit and its exemplar with every field varied (NaN losses, flags, no image)."""
    flags = (("high_reproj",), (), ("not_converged", "large_beta"))[i % 3]
    q = FitQuality(loss_2d_init=float(rng.random()), loss_2d_final=float(rng.random()) / 10,
                   reproj_px=math.nan if i == 4 else float(rng.random() * 20),
                   reproj_frac_bbox=float(rng.random()) / 10, iterations=int(3 + i),
                   converged=bool(i % 2), max_abs_beta=float(rng.random() * 2),
                   pose_nll=math.nan if i % 4 == 0 else float(rng.random()),
                   n_valid_keypoints=int(6 + i), accepted=not flags, flags=flags)
    fid = f"syn/{i:03d}"
    center = np.array([100.0 + i + variant, 80.5 - i])
    fit = Fit(fid, rng.normal(size=(24, 3, 3)).astype(np.float32),
              rng.normal(size=72).astype(np.float32), rng.normal(size=10).astype(np.float32),
              np.array([0.9, 0.1 * i, -0.1], np.float32), rng.normal(size=3).astype(np.float32),
              rng.normal(size=(49, 3)).astype(np.float32), center, 1.1 + 0.1 * i, q)
    kp = rng.normal(size=(49, 3)) * 50 + 100
    kp[:, 2] = rng.random(49) > 0.3
    ex = Exemplar(fid, None if i == 2 else f"img/{i}.jpg", center.copy(), 1.1 + 0.1 * i, kp,
                  "coco17", None if i == 3 else (640, 480),
                  {"annotId": 1000 + i, "imageName": f"{i}.jpg", "dataset": "syn"})
    return fit, ex


@pytest.fixture
def parts_and_records(tmp_path):
    """Three committed parts (out of chunk order, one id fitted twice, one id failed in
    an earlier chunk and fitted in a later one, one id outside the job's work) and the
    records they were made from."""
    rng = np.random.default_rng(7)
    recs = {i: _record(i, rng) for i in range(10)}
    dup = _record(5, rng, variant=1)  # a later chunk's second fit of syn/005: not kept
    groups = [(1, [7, 1, 5, 9]), (0, [4, 0, 8, 2]), (2, [6, 3])]
    parts = []
    for chunk, ids in groups:
        fits = [recs[i][0] for i in ids] + ([dup[0]] if chunk == 2 else [])
        exs = [recs[i][1] for i in ids] + ([dup[1]] if chunk == 2 else [])
        fails = [Failure(f"syn/9{chunk}", "bad_bbox", "x")]
        if chunk == 0:  # an earlier chunk's failure of syn/007 wins over chunk 1's fit
            fails.append(Failure("syn/007", "error", "boom"))
        path = tmp_path / "parts" / f"p{chunk}.npz"
        write_part(path, Part.from_fits(chunk, "h", fits, exs, failures=fails))
        parts.append(read_part(path))
    work = {f"syn/{i:03d}" for i in range(10) if i != 8} | {"syn/90", "syn/91", "syn/92"}
    return parts, recs, work


def _reference(parts_order, recs, work):
    """The record path: the first result per id in (chunk, min id) order, a chunk's fits
    before its failures; the fits sorted by id."""
    seen, fits, exs = set(), {}, {}
    for _chunk, ids, failed in parts_order:
        for i in ids:
            fid = f"syn/{i:03d}"
            if fid in work and fid not in seen:
                seen.add(fid)
                fits[fid], exs[fid] = recs[i]
        seen.update(failed)
    order = sorted(fits)
    return [fits[k] for k in order], [exs[k] for k in order]


@pytest.mark.parametrize("include", ["all", "accepted"])
def test_finish_writes_the_files_of_the_record_path(tmp_path, parts_and_records,
                                                    monkeypatch, include):
    parts, recs, work = parts_and_records
    out = tmp_path / "out"
    config = config_from_dict({
        "datasets": [{"kind": "synthetic", "name": "syn", "options": {"n": 4}}],
        "output": {"dir": str(out), "formats": FORMATS, "include": include}})
    prov = Provenance.unknown("fixed for the comparison")
    monkeypatch.setattr(runner_mod, "provenance_for", lambda *a, **k: prov)
    manifest = Manifest(config_hash="h", config={}, identity={})
    summary = runner_mod.finish(out, config, manifest, parts, work, ["too_few_keypoints"],
                                {}, "h")

    fits, exs = _reference([(0, [4, 0, 8, 2], ["syn/007"]), (1, [7, 1, 5, 9], []),
                            (2, [6, 3], [])], recs, work)
    assert summary.fitted == len(fits) == 8
    assert summary.accepted == sum(f.quality.accepted for f in fits)
    want_flags: dict[str, int] = {}
    for f in fits:
        for flag in () if f.quality.accepted else f.quality.flags:
            want_flags[flag] = want_flags.get(flag, 0) + 1
    assert summary.rejected_by_flag == want_flags
    assert summary.failed_by_reason == {"bad_bbox": 3, "error": 1}
    aset = AnnotationSet.from_fits(fits, exs, prov)
    if include == "accepted":
        aset = aset.filter(accepted_only=True)
    ref = tmp_path / "ref"
    ref.mkdir()
    for fmt in FORMATS:
        name = f"fits{OUTPUT_SUFFIX[fmt]}"
        write_annotations(aset, ref / name, format=fmt)
        assert (out / name).read_bytes() == (ref / name).read_bytes(), fmt
    _, cols = read_columns(out / "fits.json")
    assert list(cols.fit_id) == aset.ids and len(aset) == (8 if include == "all" else 2)


def _v1_part_bytes(fits, exs) -> bytes:
    """A part file in the layout existing job folders hold (format version 1), written
    key by key here, independently of eft.jobs.store."""
    arrays = {}
    for name in ("rotmat", "pose_aa", "betas", "cam_weak", "cam_t", "keypoints3d"):
        arrays[f"fit_{name}"] = np.stack([getattr(f, name) for f in fits]).astype(np.float32)
    arrays["fit_center"] = np.stack([f.center for f in fits]).astype(np.float64)
    arrays["fit_scale"] = np.array([f.scale for f in fits])
    for name in ("loss_2d_init", "loss_2d_final", "reproj_px", "reproj_frac_bbox",
                 "max_abs_beta", "pose_nll"):
        arrays[f"q_{name}"] = np.array([getattr(f.quality, name) for f in fits], np.float64)
    for name in ("iterations", "n_valid_keypoints"):
        arrays[f"q_{name}"] = np.array([getattr(f.quality, name) for f in fits], np.int64)
    for name in ("converged", "accepted"):
        arrays[f"q_{name}"] = np.array([getattr(f.quality, name) for f in fits], bool)
    arrays["ex_center"] = np.stack([e.center for e in exs])
    arrays["ex_scale"] = np.array([e.scale for e in exs])
    arrays["ex_keypoints"] = np.stack([e.keypoints for e in exs])
    rows = [{"id": e.id, "fit_id": f.exemplar_id, "image_path": e.image_path,
             "source": e.source, "image_size": list(e.image_size) if e.image_size else None,
             "meta": e.meta, "flags": list(f.quality.flags)}
            for f, e in zip(fits, exs, strict=True)]
    header = {"format": "eft-job-part", "version": 1, "chunk": 3, "config_hash": "c",
              "seconds": 2.5, "device": "cuda:0", "rows": rows,
              "failures": [{"id": "syn/099", "reason": "error", "detail": "boom"}]}
    arrays["header_json"] = np.array(json.dumps(header))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_existing_part_files_are_read(tmp_path):
    rng = np.random.default_rng(3)
    recs = [_record(i, rng) for i in range(5)]
    fits, exs = [r[0] for r in recs], [r[1] for r in recs]
    path = tmp_path / "part-000003-x.npz"
    path.write_bytes(_v1_part_bytes(fits, exs))
    part = read_part(path)
    assert (part.chunk, part.config_hash, part.seconds, part.device) == (3, "c", 2.5, "cuda:0")
    assert part.failures == [Failure("syn/099", "error", "boom")]
    assert part.ids == [f.exemplar_id for f in fits] + ["syn/099"]
    for a, b in zip(fits, part.fits, strict=True):
        for name in ("rotmat", "pose_aa", "betas", "cam_weak", "cam_t", "keypoints3d",
                     "center"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.exemplar_id, a.scale, repr(a.quality)) == (
            b.exemplar_id, b.scale, repr(b.quality))
    for a, b in zip(exs, part.exemplars, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        assert (a.id, a.image_path, a.image_size, a.meta, a.source) == (
            b.id, b.image_path, b.image_size, b.meta, b.source)
    # written again by this eft, it holds the same arrays and header
    write_part(tmp_path / "again.npz", part)
    with np.load(path) as old, np.load(tmp_path / "again.npz") as new:
        assert sorted(old.files) == sorted(new.files)
        for k in old.files:
            if k == "header_json":
                assert json.loads(str(old[k])) == json.loads(str(new[k]))
            else:
                np.testing.assert_array_equal(old[k], new[k], err_msg=k)
                assert old[k].dtype == new[k].dtype, k
