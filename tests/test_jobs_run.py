"""eft fit end to end: kill and resume, changed configs, bad inputs, shards and merge,
local worker processes and the Dask backend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from eft.body.joints import COCO17_NAMES
from eft.cli import main
from eft.jobs import JobStoreError, Manifest, config_from_dict, merge_outputs, run_job
from eft.jobs.config import load_config
from eft.jobs.sharding import Shard
from tests.helpers import require_module

REPO = Path(__file__).resolve().parents[1]
N = 16


def job_dict(out: Path, n: int = N, **extra) -> dict:
    d = {"datasets": [{"kind": "synthetic", "name": "syn", "options": {"n": n, "seed": 3}}],
         "eft": {"max_iters": 8},
         "output": {"dir": str(out), "formats": ["h5"]},
         "batch_size": 4, "chunk_size": 4, "devices": ["cpu"]}
    d.update(extra)
    return d


def fits_of(folder: Path):
    """{id: fit} of a job's final h5 file (read back through eft.annotations)."""
    from eft.annotations import read_annotations

    aset = read_annotations(folder / "fits.h5")
    ids = aset.ids
    assert len(ids) == len(set(ids)), "duplicate fits"
    assert ids == sorted(ids), "final file not in id order"
    return {a.id: a.fit for a in aset}


def assert_same_fits(a: dict, b: dict, atol: float = 0.0):
    assert list(a) == list(b)
    for k in a:
        for name in ("rotmat", "betas", "cam_weak", "keypoints3d"):
            np.testing.assert_allclose(getattr(a[k], name), getattr(b[k], name), rtol=0,
                                       atol=atol, err_msg=f"{k}.{name}")
        assert a[k].quality.accepted == b[k].quality.accepted


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread):
    """An uninterrupted in-process run of the synthetic job."""
    out = tmp_path_factory.mktemp("ref")
    result = run_job(config_from_dict(job_dict(out)), progress=False)
    assert result.summary.fitted == N and result.manifest.complete
    return out, fits_of(out)


def test_summary_reports_the_median_reprojection(reference):
    """The summary's reprojection line is the median of the fits' own
    ``reproj_frac_bbox``, recomputed here from the final file."""
    from eft.annotations import read_annotations
    from eft.jobs.summary import Summary, summarize

    ref_dir, ref_fits = reference
    want = float(np.nanmedian([f.quality.reproj_frac_bbox for f in ref_fits.values()]))
    cols = read_annotations(ref_dir / "fits.h5").columns()
    got = summarize(len(ref_fits), cols, [], []).reproj_median
    assert got == pytest.approx(want, rel=1e-6) and 0 < want < 1
    text = Summary(fitted=1, accepted=1, reproj_median=want).format()
    assert f"reproj     median {want:.4f} of the box side" in text
    assert "reproj" not in Summary(fitted=0).format()
    # the hint: labels unlike what the recipe was made for, either way
    from eft.jobs.summary import ANNOTATED_LABELS_ABOVE, EXACT_LABELS_BELOW

    def line(recipe, r):
        return Summary(fitted=1, accepted=1, reproj_median=r, recipe=recipe).format()

    assert "open-prior-exact fits such labels better" in line("open-prior",
                                                              EXACT_LABELS_BELOW / 2)
    assert "look" not in line("open-prior", 0.02)
    assert "use eft.preset open-prior" in line("open-prior-exact", ANNOTATED_LABELS_ABOVE * 1.5)
    assert "look" not in line("open-prior-exact", EXACT_LABELS_BELOW / 2)
    assert "look" not in line(None, 0.001) and "look" not in line("eft", 0.05)


def _wait_for_parts(folder: Path, count: int, proc: subprocess.Popen, timeout=60.0) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        parts = list((folder / "parts").glob("part-*.npz")) if folder.is_dir() else []
        if len(parts) >= count:
            return len(parts)
        if proc.poll() is not None:
            pytest.fail(f"eft fit ended (rc {proc.returncode}) before {count} part(s)")
        time.sleep(0.01)
    pytest.fail("timed out waiting for part files")


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, reference):
    ref_dir, ref_fits = reference
    out = tmp_path / "out"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump(job_dict(out)))
    cmd = [sys.executable, "-m", "eft.cli", "fit", str(cfg), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_parts(out, 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    manifest = Manifest.load(out)
    assert manifest is not None and not manifest.complete
    committed = len(list((out / "parts").glob("*.npz")))
    assert 1 <= committed < N // 4  # the job really was cut short
    result = run_job(config_from_dict(job_dict(out)), progress=False)
    s = result.summary
    assert s.fitted == N and s.failed == 0
    assert s.fitted_this_run == N - 4 * committed  # only what was missing
    # every exemplar in exactly one committed part
    assert sum(p.n_fits + p.n_failed for p in result.manifest.parts) == N
    assert_same_fits(fits_of(out), ref_fits)  # fixed chunks: bit-for-bit equal
    assert not list(out.rglob("*.tmp"))


def test_orphan_part_is_adopted_and_temporaries_removed(tmp_path, reference):
    ref_dir, ref_fits = reference
    out = tmp_path / "out"
    shutil.copytree(ref_dir, out)
    manifest = Manifest.load(out)
    # a kill between renaming a part and listing it, plus a half-written temporary
    manifest.parts = manifest.parts[:-1]
    manifest.complete = False
    manifest.save(out)
    (out / "parts" / ".part-000009-x.npz.abc.tmp").write_bytes(b"half")
    (out / "fits.h5").unlink()
    result = run_job(config_from_dict(job_dict(out)), progress=False)
    assert result.summary.fitted_this_run == 0 and result.summary.fitted == N
    assert len(result.manifest.parts) == N // 4 and result.manifest.complete
    assert not list(out.rglob("*.tmp"))
    assert_same_fits(fits_of(out), ref_fits)


def test_damaged_part_is_refitted(tmp_path, reference):
    ref_dir, ref_fits = reference
    out = tmp_path / "out"
    shutil.copytree(ref_dir, out)
    victim = sorted((out / "parts").glob("*.npz"))[1]
    victim.write_bytes(victim.read_bytes()[:100])
    result = run_job(config_from_dict(job_dict(out)), progress=False)
    assert result.summary.fitted_this_run == 4
    assert_same_fits(fits_of(out), ref_fits)


def test_changed_config_is_refused_unless_force(tmp_path, reference, capsys):
    ref_dir, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref_dir, out)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump(job_dict(out)))
    rc = main(["fit", str(cfg), "-q", "--set", "eft.max_iters=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "another configuration" in err[0] and "eft.max_iters: 8 -> 3" in err[0]
    assert "--force" in err[0]
    # the old configuration's results in two formats (a resume: formats are runtime)
    assert main(["fit", str(cfg), "-q", "--set", "output.formats=[h5,eft-json]"]) == 0
    before = Manifest.load(out)
    assert set(before.outputs.values()) == {"fits.h5", "fits.json"}
    (out / "overlays").mkdir(exist_ok=True)
    (out / "overlays" / "old.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")  # not the job's: kept
    assert main(["fit", str(cfg), "-q", "--set", "eft.max_iters=3", "--force",
                 "--set", "output.formats=[h5]"]) == 0
    # no final file, overlay or summary of the discarded configuration is left
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        [".lock", "config.yaml", "fits.h5", "manifest.json", "pilot.json", "skipped.json",
         "summary.json", "notes.txt"])
    # the discarded job drew no overlays (output.overlays 0): a folder of that name is
    # not its own, and stays
    assert (out / "overlays" / "old.png").is_file()
    after = Manifest.load(out)
    assert after.config_hash != before.config_hash and after.config["eft"]["max_iters"] == 3
    assert after.summary["fitted_this_run"] == N
    # runtime settings (workers, output formats, limit) do not block a resume
    assert main(["fit", str(cfg), "-q", "--set", "eft.max_iters=3", "--workers", "1",
                 "--set", "output.formats=[h5,eft-json]"]) == 0
    assert Manifest.load(out).summary["fitted_this_run"] == 0
    assert (out / "fits.json").is_file()


def _bad_coco(shared_data: Path, tmp_path: Path) -> Path:
    """The COCO sample (14 people, 2 without keypoints) with a missing image (1 person), a
    truncated JPEG (2 people), a zero-area box, a malformed entry and NaN keypoints."""
    src = shared_data / "coco_sample"
    data = json.loads((src / "test_coco.json").read_text())
    images = tmp_path / "images"
    images.mkdir()
    for im in data["images"]:
        shutil.copy(src / im["file_name"], images / im["file_name"])
    (images / "000000000785.jpg").unlink()  # missing: person 442619
    raw = (images / "000000040083.jpg").read_bytes()
    (images / "000000040083.jpg").write_bytes(raw[: len(raw) // 3])  # 198196, 230195
    anns = {a["id"]: a for a in data["annotations"]}
    anns[460541]["bbox"] = [10, 10, 0, 0]  # zero-area box
    anns[488308]["keypoints"] = anns[488308]["keypoints"][:-3]  # malformed entry
    kp = anns[437295]["keypoints"]
    labelled = next(j for j in range(17) if kp[3 * j + 2] > 0)
    kp[3 * labelled] = float("nan")  # NaN coordinate of a labelled keypoint
    path = tmp_path / "bad_coco.json"
    path.write_text(json.dumps(data))  # NaN written as the JSON extension NaN
    return path


def test_bad_inputs_are_recorded_and_the_job_finishes(shared_data, tmp_path, one_thread,
                                                      capsys):
    ann = _bad_coco(shared_data, tmp_path)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump({
        "datasets": [{"kind": "coco", "path": str(ann), "image_root": str(tmp_path / "images"),
                      "name": "coco"}],
        "eft": {"max_iters": 3}, "output": {"dir": str(tmp_path / "out"), "formats": ["h5"]},
        "batch_size": 8, "chunk_size": 4}))
    assert main(["fit", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "failed     3 (unreadable_image 2, missing_image 1)" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    failed, skipped = summary["failed_by_reason"], summary["skipped_by_reason"]
    assert failed["missing_image"] == 1 and failed["unreadable_image"] == 2
    assert skipped["bad_bbox"] == 1 and skipped["bad_annotation"] == 1
    assert skipped["no_keypoints"] == 2
    assert failed.get("bad_keypoints", 0) + skipped.get("bad_keypoints", 0) == 1
    assert summary["fitted"] == 6  # 14 people - 2 without keypoints - 6 bad ones
    manifest = Manifest.load(tmp_path / "out")
    reasons = {f["id"]: f["reason"] for p in manifest.parts for f in p.failures}
    assert reasons["coco/442619"] == "missing_image"
    assert reasons["coco/198196"] == reasons["coco/230195"] == "unreadable_image"
    details = {f["id"]: f["detail"] for p in manifest.parts for f in p.failures}
    assert details["coco/198196"].count("000000040083.jpg") == 1  # the path named once
    rows = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert [s["id"] for s in rows] == sorted(s["id"] for s in rows)  # as a merge writes it
    listed = {s["id"]: s["reason"] for s in rows}
    assert listed["coco/460541"] == "bad_bbox" and listed["coco/488308"] == "bad_annotation"
    assert (reasons.get("coco/437295") or listed.get("coco/437295")) == "bad_keypoints"
    assert set(fits_of(tmp_path / "out")) == {f"coco/{i}" for i in (
        1717641, 1724673, 467657, 531914, 533949, 543117)}
    # the missing image turns up: a resume fits its person (and its chunk) again
    shutil.copy(shared_data / "coco_sample" / "000000000785.jpg", tmp_path / "images")
    assert main(["fit", str(cfg), "-q"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "missing_image" not in summary["failed_by_reason"]
    assert 1 <= summary["fitted_this_run"] <= 4 and summary["fitted"] == 7
    assert "coco/442619" in fits_of(tmp_path / "out")
    assert main(["fit", str(cfg), "-q"]) == 0  # then nothing is left to do
    assert json.loads((tmp_path / "out" / "summary.json").read_text())[
        "fitted_this_run"] == 0
    # a mistyped image folder is one error, not a job of missing images
    capsys.readouterr()
    assert main(["fit", str(cfg), "-q", "-o", str(tmp_path / "out2"), "--set",
                 f"datasets.0.image_root={tmp_path / 'imagez'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "datasets[0].image_root" in err[0] and "imagez" in err[0]
    assert not (tmp_path / "out2" / "fits.h5").exists()


def test_unreadable_or_empty_dataset_is_an_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump({"datasets": [{"kind": "coco", "path": str(bad)}],
                                   "output": {"dir": str(tmp_path / "out")}}))
    assert main(["fit", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json" in err[0] and "JSON" in err[0]
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [0, 0, 5, 5], "keypoints": [0] * 51, "num_keypoints": 0},
                        {"id": 6, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [0, 0, 5, 5], "num_keypoints": 2,
                         "keypoints": [1, 1, 2, 4, 4, 2] + [0] * 45}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]}))
    cfg.write_text(yaml.safe_dump({"datasets": [{"kind": "coco", "path": str(empty)}],
                                   "output": {"dir": str(tmp_path / "out2")}}))
    assert main(["fit", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert "no exemplars to fit" in err and "e.g. coco/6: too_few_keypoints, 2 < 6" in err
    # keypoint names no format has: one line naming them (never read by their count)
    doc = json.loads(empty.read_text())
    doc["categories"][0]["keypoints"] = [str(i) for i in range(17)]
    empty.write_text(json.dumps(doc))
    assert main(["fit", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown layout" in err[0] and "'16'" in err[0]


def test_merge_of_two_shards_equals_the_unsharded_run(tmp_path, reference, capsys):
    _, ref_fits = reference
    base = tmp_path / "sharded"
    config = config_from_dict(job_dict(base))
    dirs = []
    for i in range(2):
        r = run_job(config, shard=Shard(i, 2), progress=False)
        dirs.append(r.output_dir)
        assert r.output_dir == base / f"shard-00{i}-of-002"
    n0 = Manifest.load(dirs[0]).n_work
    assert 0 < n0 < N and n0 + Manifest.load(dirs[1]).n_work == N
    with pytest.raises(JobStoreError, match=r"shard\(s\) \[1\] of 2 are missing"):
        merge_outputs(dirs[:1], tmp_path / "merged")
    assert main(["merge", *map(str, dirs), "-o", str(tmp_path / "merged"), "-q"]) == 0
    merged = fits_of(tmp_path / "merged")
    # chunks group exemplars differently than in the unsharded run: float rounding only
    assert_same_fits(merged, ref_fits, atol=1e-5)
    assert Manifest.load(tmp_path / "merged").summary["fitted"] == N
    # shards of another config are refused
    other = run_job(config_from_dict(job_dict(tmp_path / "other", eft={"max_iters": 2})),
                    shard=Shard(1, 2), progress=False)
    with pytest.raises(JobStoreError, match=r"different configs: .*other/shard-001-of-002 "
                       r"differs from .*sharded/shard-000-of-002 in eft.max_iters"):
        merge_outputs([dirs[0], other.output_dir], tmp_path / "merged2")
    assert not (tmp_path / "merged2").exists()  # a refused merge leaves no folder
    # forced, the files say no one config made them, and which inputs did
    from eft.annotations import read_annotations

    merge_outputs([dirs[0], other.output_dir], tmp_path / "mixed", force=True)
    job = read_annotations(tmp_path / "mixed" / "fits.h5").provenance.extra["job"]
    assert job["config_hash"].startswith("mixed:")
    assert [m["folder"] for m in job["merged_from"]] == [str(dirs[0]), str(other.output_dir)]
    assert [m["config"]["eft"]["max_iters"] for m in job["merged_from"]] == [8, 2]
    # a shard given twice is named; a shard run with --limit fitted part of its shard
    for force in (False, True):  # their people clash: no --force merges them
        with pytest.raises(JobStoreError, match=r"a shard is given twice: 1/2 in .*shard-001"):
            merge_outputs([dirs[0], dirs[1], dirs[1]], tmp_path / "m3", force=force)
    assert not (tmp_path / "m3").exists()
    limited = run_job(config_from_dict(job_dict(tmp_path / "lim", limit=2)),
                      shard=Shard(1, 2), progress=False)
    with pytest.raises(JobStoreError, match=r"run with --limit.*lim/shard-001-of-002 \(limit 2\)"):
        merge_outputs([dirs[0], limited.output_dir], tmp_path / "m4")
    # a shard's config.yaml names its shard: eft fit of that file resumes the shard
    assert load_config(dirs[1] / "config.yaml").shard == "1/2"
    assert main(["fit", str(dirs[1] / "config.yaml"), "-q"]) == 0
    assert Manifest.load(dirs[1]).summary["fitted_this_run"] == 0
    assert not (base / "manifest.json").exists()  # not the whole job into the parent
    # the merged folder is the unsharded job's output: eft fit resumes into it, from
    # the job's config or from the config.yaml the merge wrote there
    assert load_config(tmp_path / "merged" / "config.yaml").output.dir == str(
        tmp_path / "merged")
    r = run_job(config_from_dict(job_dict(tmp_path / "merged")), progress=False)
    assert r.summary.fitted_this_run == 0 and r.summary.fitted == N
    r = run_job(load_config(tmp_path / "merged" / "config.yaml"), progress=False)
    assert r.summary.fitted_this_run == 0 and r.output_dir == tmp_path / "merged"


def test_local_worker_processes(tmp_path, reference):
    _, ref_fits = reference
    out = tmp_path / "out"
    r = run_job(config_from_dict(job_dict(out, workers=2, limit=8)), progress=False)
    assert r.summary.fitted == 8 and r.summary.fitted_this_run == 8
    first = {k: ref_fits[k] for k in sorted(ref_fits)[:8]}
    assert_same_fits(fits_of(out), first)  # same chunks, same numbers


def _distributed_or_skip():
    require_module("distributed", "pip install 'eft[cluster]'")


def test_dask_backend_on_a_local_cluster(tmp_path, reference):
    _distributed_or_skip()
    from distributed import LocalCluster

    _, ref_fits = reference
    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        cfg = config_from_dict(job_dict(out, backend="dask",
                                        scheduler=cluster.scheduler_address))
        r = run_job(cfg, progress=False)
    assert r.summary.fitted == N
    assert_same_fits(fits_of(out), ref_fits)


def test_dask_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    cfg = config_from_dict(job_dict(tmp_path / "out", n=4, backend="dask"))
    with pytest.raises(Exception, match=r"pip install 'eft\[cluster\]'"):
        run_job(cfg, progress=False)


def test_worker_records_per_item_failures(monkeypatch, one_thread):
    """NaN keypoints / box, a NaN fit and an exemplar that makes EFT raise: each is one
    failure with its reason, and the chunk's other exemplars are fitted."""
    import dataclasses

    from eft.fitting import EFTConfig
    from eft.jobs import worker
    from eft.jobs.config import DatasetConfig
    from eft.jobs.sources import read_one

    ex = read_one(DatasetConfig(kind="synthetic", name="w", options={"n": 6})).exemplars
    kp = ex[0].keypoints.copy()
    kp[np.argmax(kp[:, 2] > 0), 0] = np.nan  # a labelled keypoint at NaN
    ex[0] = dataclasses.replace(ex[0], keypoints=kp)
    ex[1] = dataclasses.replace(ex[1], center=np.array([np.nan, 3.0]))
    real_fit = worker._fit

    def flaky_fit(exemplars, model, body, setup, inputs):
        if any(e.id == ex[2].id for e in exemplars):
            raise RuntimeError("boom")
        fits = real_fit(exemplars, model, body, setup, inputs)
        return [dataclasses.replace(f, betas=f.betas * np.nan) if f.exemplar_id == ex[3].id
                else f for f in fits]

    monkeypatch.setattr(worker, "_fit", flaky_fit)
    setup = worker.WorkerSetup("t", "h", "open", "default", EFTConfig(max_iters=2),
                               "batched", 8, 0, 1, ("cpu",), None, False)
    part = worker.run_chunk(setup, worker.ChunkTask(0, tuple(ex)))
    reasons = {f.id: f.reason for f in part.failures}
    assert reasons == {ex[0].id: "bad_keypoints", ex[1].id: "bad_bbox", ex[2].id: "error",
                       ex[3].id: "non_finite_fit"}
    assert [f.exemplar_id for f in part.fits] == [ex[4].id, ex[5].id]
    assert "boom" in next(f.detail for f in part.failures if f.reason == "error")


def test_image_regressor_gets_crops_and_bad_images_fail(shared_data, tmp_path, monkeypatch,
                                                        one_thread):
    """The HMR path: crops come from eft.data.images, a truncated image is a failure."""
    import dataclasses

    import torch

    from eft.data.images import crop_image, load_image, normalize_crop
    from eft.data.readers import read_coco
    from eft.fitting import EFTConfig
    from eft.jobs import worker
    from eft.models import HMR

    ex = read_coco(shared_data / "coco_sample" / "test_coco.json").exemplars[:3]
    broken = tmp_path / "broken.jpg"
    raw = Path(ex[2].image_path).read_bytes()
    broken.write_bytes(raw[: len(raw) // 4])
    ex[2] = dataclasses.replace(ex[2], image_path=str(broken))
    torch.manual_seed(0)
    model = HMR().eval()
    monkeypatch.setattr(worker, "_model", lambda spec, device: model)
    seen = {}
    real_fit = worker._fit

    def spy(exemplars, model, body, setup, inputs):
        seen["ids"], seen["inputs"] = [e.id for e in exemplars], inputs
        return real_fit(exemplars, model, body, setup, inputs)

    monkeypatch.setattr(worker, "_fit", spy)
    setup = worker.WorkerSetup("t", "h", "open", "hmr.pt", EFTConfig(max_iters=1, scope="head"),
                               "batched", 4, 0, 1, ("cpu",), None, False)
    part = worker.run_chunk(setup, worker.ChunkTask(0, tuple(ex)))
    assert [(f.id, f.reason) for f in part.failures] == [(ex[2].id, "unreadable_image")]
    assert seen["ids"] == [ex[0].id, ex[1].id] and len(part.fits) == 2
    want = normalize_crop(crop_image(load_image(ex[1].image_path), ex[1].center, ex[1].scale))
    assert seen["inputs"].shape == (2, 3, 224, 224)
    torch.testing.assert_close(seen["inputs"][1], want)


def test_edited_labels_are_fitted_again_on_resume(tmp_path, one_thread, caplog):
    """A dataset edited after some of its people were fitted: resuming refits the chunks
    whose labels changed (and only those), so the final file equals a fresh job's on
    the edited file, never a mix of old and new labels."""
    import logging

    from eft.body.joints import KEYPOINT_FORMATS
    from eft.synthetic.exemplars import SyntheticConfig, generate
    from eft.synthetic.pose_bank import load_pose_bank

    coco = KEYPOINT_FORMATS["coco17"]
    people = list(generate(load_pose_bank().val().poses, 16, 4, SyntheticConfig()).exemplars())
    kps = [np.asarray(e.keypoints)[list(coco.spin_indices)] for e in people]
    kps = [k for k in kps if (k[:, 2] > 0).sum() >= 12][:8]  # none skipped by the reader
    rows = [{"image": f"img{i}.jpg", "keypoints": k.ravel().tolist()}
            for i, k in enumerate(kps)]
    data = tmp_path / "people.json"

    def write(rows):
        data.write_text(json.dumps({"keypoint_format": "coco17", "people": rows}))

    def job(out):
        return config_from_dict({
            "datasets": [{"kind": "generic", "path": str(data), "name": "gen"}],
            "eft": {"preset": "open-prior"}, "check_images": False,
            "output": {"dir": str(out), "formats": ["h5"]},
            "batch_size": 4, "chunk_size": 4, "devices": ["cpu"]})

    write(rows)
    first = run_job(job(tmp_path / "out"), progress=False)
    assert first.summary.fitted_this_run == 8
    rows[5]["keypoints"][0] += 40.0  # one person of the second chunk moves
    write(rows)
    with caplog.at_level(logging.WARNING, logger="eft.jobs"):
        again = run_job(job(tmp_path / "out"), progress=False)
    assert again.summary.fitted_this_run == 4
    assert "the labels of 1 fitted people changed" in caplog.text
    fresh = run_job(job(tmp_path / "fresh"), progress=False)
    assert_same_fits(fits_of(tmp_path / "out"), fits_of(tmp_path / "fresh"), atol=1e-6)
    assert fresh.summary.fitted_this_run == 8
    # unchanged labels resume with nothing to do
    assert run_job(job(tmp_path / "out"), progress=False).summary.fitted_this_run == 0


@pytest.mark.parametrize("damage", [
    "[]",
    '{"format": "eft-job-manifest", "version": VERSION, "parts": "x"}',
    '{"format": "eft-job-manifest", "version": VERSION, "config_hash": "h", "config": "x",'
    ' "identity": {}}'])
def test_a_damaged_manifest_is_one_error_and_force_starts_over(tmp_path, reference, capsys,
                                                               damage):
    from eft.jobs.store import VERSION

    ref_dir, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref_dir, out)
    (out / "manifest.json").write_text(damage.replace("VERSION", json.dumps(VERSION)))
    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump(job_dict(out)))
    assert main(["fit", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest" in err[0] and str(out) in err[0], err
    assert main(["fit", str(cfg), "-q", "--force"]) == 0
    assert Manifest.load(out).summary["fitted_this_run"] == N


def test_an_image_entry_without_a_file_name_is_a_missing_image(shared_data, tmp_path):
    """With check_images on, a COCO person whose image entry names no file is a
    missing_image failure, not a fit without its image; keypoints alone (check_images
    off) fit it."""
    data = json.loads((shared_data / "coco_sample" / "test_coco.json").read_text())
    first = data["images"][0]
    del first["file_name"]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    people = [a["id"] for a in data["annotations"] if a["image_id"] == first["id"]
              and a.get("num_keypoints", 0) >= 6 and not a.get("iscrowd")]
    assert people

    def job(out, check):
        return config_from_dict({
            "datasets": [{"kind": "coco", "path": str(path), "name": "coco",
                          "image_root": str(shared_data / "coco_sample")}],
            "eft": {"preset": "open-prior"}, "check_images": check,
            "output": {"dir": str(out), "formats": ["h5"]}, "devices": ["cpu"]})

    checked = run_job(job(tmp_path / "a", True), progress=False)
    assert checked.summary.failed_by_reason.get("missing_image") == len(people)
    assert run_job(job(tmp_path / "b", False), progress=False).summary.failed_by_reason \
        .get("missing_image") is None


def test_a_body_model_other_than_the_regressors_is_named(tmp_path, one_thread, caplog):
    """A job whose body model is not the one its regressor was trained with warns,
    naming both (the fits would be silently off otherwise); its own body: no warning."""
    import logging

    from tests.helpers import other_body_model

    other = other_body_model(tmp_path)
    with caplog.at_level(logging.WARNING, logger="eft"):
        run_job(config_from_dict(job_dict(tmp_path / "own", n=4)), progress=False)
        assert "trained with body model" not in caplog.text
        run_job(config_from_dict(job_dict(tmp_path / "other", n=4, body=str(other))),
                progress=False)
    assert "trained with body model 'eft-open-body-v1'" in caplog.text
    assert "'my-tall-body'" in caplog.text


def test_a_folder_another_job_writes_is_refused_before_the_pilot(tmp_path, monkeypatch):
    """The lock is taken before the datasets are read and the pilot fitted: a second job
    on one output folder is told at once, and the folder is left as it was; a job
    stopped by an error before writing anything leaves no folder behind."""
    import eft.jobs.runner as runner
    from eft.jobs.store import job_lock

    out = tmp_path / "out"

    def no_reading(config):
        raise AssertionError("read the datasets of a job that cannot run")

    monkeypatch.setattr(runner, "_read_sources", no_reading)
    with job_lock(out):
        with pytest.raises(JobStoreError, match="another eft job is writing"):
            run_job(config_from_dict(job_dict(out, n=4)), progress=False)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert not out.exists()  # the holder made it and wrote nothing: tidied
    with pytest.raises(AssertionError, match="read the datasets"):
        run_job(config_from_dict(job_dict(out, n=4)), progress=False)
    assert not out.exists()


def test_a_resume_with_other_threads_warns(tmp_path, one_thread, caplog):
    """Threads move fits at float rounding: a resume that fits the rest with another
    number says so (the same number: no warning)."""
    import logging

    out = tmp_path / "out"
    run_job(config_from_dict(job_dict(out, n=8, limit=4)), progress=False)
    with caplog.at_level(logging.WARNING, logger="eft"):
        run_job(config_from_dict(job_dict(out, n=8, threads=2)), progress=False)
    assert "resuming with threads 1 -> 2" in caplog.text
    caplog.clear()
    out2 = tmp_path / "out2"
    run_job(config_from_dict(job_dict(out2, n=8, limit=4)), progress=False)
    with caplog.at_level(logging.WARNING, logger="eft"):
        run_job(config_from_dict(job_dict(out2, n=8)), progress=False)
    assert "resuming with" not in caplog.text


def test_a_resumed_job_reuses_its_pilots_pick(tmp_path, one_thread, monkeypatch):
    """The pilot is deterministic: a re-run of a job (a resume, a shard started again)
    takes the pick kept in pilot.json instead of fitting the pilot again, and ends as
    the first run did; other labels or settings miss the kept pick."""
    import dataclasses

    import eft.jobs.recipe as recipe
    from eft.fitting.auto import PresetChoice
    from eft.jobs.recipe import PILOT_FILE, PilotCache, pilot_sample
    from eft.jobs.runner import _read_sources, job_identity

    out = tmp_path / "out"
    config = config_from_dict(job_dict(out, n=12))
    first = run_job(config, progress=False)
    first_fits = fits_of(out)
    kept = json.loads((out / PILOT_FILE).read_text())["picks"]
    assert len(kept) == 1
    choice = PresetChoice.from_dict(next(iter(kept.values())))
    assert choice.to_dict() == next(iter(kept.values()))
    assert first.summary.recipe_auto["preset"] == choice.preset

    def no_pilot(*args, **kwargs):
        raise AssertionError("the pilot was fitted again")

    monkeypatch.setattr(recipe, "_fit_pilot", no_pilot)
    again = run_job(config, force=True, progress=False)  # refits everything, not the pilot
    assert again.summary.recipe_auto == first.summary.recipe_auto
    assert_same_fits(fits_of(out), first_fits)  # bit-equal
    cache = PilotCache.load(out, job_identity(config))
    pilot = pilot_sample(_read_sources(config).exemplars)
    key = cache.key(config, pilot)
    assert cache.get(key) is not None
    moved = [dataclasses.replace(pilot[0], keypoints=pilot[0].keypoints + 1e-3), *pilot[1:]]
    assert cache.key(config, moved) != key
    assert cache.key(config.replace(batch_size=2), pilot) != key
    assert PilotCache.load(out, {**job_identity(config), "regressor": {}}).key(
        config, pilot) != key


def test_a_jobs_config_yaml_run_from_elsewhere_names_the_fix(tmp_path, one_thread,
                                                              monkeypatch, capsys):
    """A job's own config.yaml with a relative output.dir, run from another folder, would
    start the job over in a new folder: one line says to run it from its folder or -o."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    cfg = tmp_path / "a" / "job.yaml"
    cfg.write_text(yaml.safe_dump(job_dict(Path("out"), n=4)))
    assert main(["fit", str(cfg), "-q"]) == 0
    assert main(["fit", str(cfg), "-q", "--shard", "1/2"]) == 0
    monkeypatch.chdir(tmp_path / "b")
    capsys.readouterr()
    written = tmp_path / "a" / "out" / "config.yaml"
    assert main(["fit", str(written), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"or add -o {tmp_path / 'a' / 'out'}" in err and len(err.strip().splitlines()) == 1
    shard_cfg = tmp_path / "a" / "out" / "shard-001-of-002" / "config.yaml"
    assert main(["fit", str(shard_cfg), "-q"]) == 2
    assert f"or add -o {tmp_path / 'a' / 'out'}" in capsys.readouterr().err
    assert not (tmp_path / "b" / "out").exists()
    assert main(["fit", str(written), "-q", "-o", str(tmp_path / "a" / "out")]) == 0
    assert main(["fit", str(shard_cfg), "-q", "-o", str(tmp_path / "a" / "out")]) == 0
    assert Manifest.load(tmp_path / "a" / "out" / "shard-001-of-002").summary[
        "fitted_this_run"] == 0
