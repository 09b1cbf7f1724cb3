"""eft.jobs without fitting: configs, shards, chunks, device slots, part files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eft.jobs import (
    JobConfigError,
    Shard,
    config_from_dict,
    load_config,
    parse_shard,
    plan_chunks,
    select_shard,
    shard_of,
)
from eft.jobs.config import parse_override
from eft.jobs.devices import claim_slot, device_for_slot, resolve_devices
from eft.jobs.store import Failure, Part, atomic_write_json, read_part, write_part

REPO = Path(__file__).resolve().parents[1]
MINIMAL = {"datasets": [{"kind": "synthetic", "options": {"n": 4}}]}


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["coco", "mpii", "openpose", "demo"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "fitting" / f"{name}.yaml")
    assert cfg.datasets and cfg.datasets[0].path.startswith(("datasets/", "annotations/"))
    assert set(cfg.output.formats) <= {"eft-json", "spin-npz", "h5", "humandata"}


@pytest.mark.parametrize("path", sorted((REPO / "fitting").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_job_configs_leave_the_recipe_to_auto(path):
    """A shipped job config names no EFT setting beside its quality rules: a key there
    would go on top of the recipe `auto` picks for every dataset (coco.yaml once set
    scope: all and 20 steps, which made the pilot read annotated labels as exact)."""
    import yaml

    eft = yaml.safe_load(path.read_text()).get("eft") or {}
    assert set(eft) <= {"rules"}, f"{path.name}: eft keys {sorted(set(eft) - {'rules'})}"
    assert load_config(path).eft_auto


def test_demo_yaml_is_the_demo_job():
    from eft.jobs.demo import demo_config

    assert load_config(REPO / "fitting" / "demo.yaml") == config_from_dict(
        demo_config("annotations/demo"))


def test_mpii_strict_preset_is_efts_isvalid_strict():
    rules = load_config(REPO / "fitting" / "mpii.yaml").eft.rules
    assert (rules.max_abs_beta, rules.max_loss_2d, rules.max_initial_loss_2d) == (
        1.0, 3e-4, 0.04)


def test_values_reach_eftconfig(tmp_path):
    p = _write(tmp_path, """
datasets: [{kind: synthetic, options: {n: 4}}]
eft: {max_iters: 7, stop_loss_2d: 2e-5, scope: head, rules: {max_abs_beta: 2}}
batch_size: 5
devices: cpu
""")
    cfg = load_config(p)
    assert cfg.eft.max_iters == 7 and cfg.eft.scope == "head"
    assert cfg.eft.stop_loss_2d == 2e-5  # YAML 1.1 reads "2e-5" as a string
    assert cfg.eft.rules.max_abs_beta == 2.0 and cfg.eft.rules.max_loss_2d == 1e-3
    assert cfg.batch_size == 5 and cfg.devices == ("cpu",)


@pytest.mark.parametrize("text, key, words", [
    ("datasets: [{kind: synthetic}]\nbatchsize: 3\n", "batchsize", "unknown key"),
    ("datasets: [{kind: synthetic}]\neft: {max_iter: 3}\n", "eft.max_iter", "unknown key"),
    ("datasets: [{kind: synthetic}]\neft: {max_iters: twenty}\n", "eft.max_iters",
     "expected an integer"),
    ("datasets: [{kind: synthetic}]\neft: {scope: everything}\n", "eft.scope",
     "expected one of"),
    ("datasets: [{kind: synthetic}]\neft: {max_iters: 0}\n", "eft.max_iters", ">= 1"),
    ("datasets: [{kind: synthetic}]\neft: {rules: {reject_flags: [bogus]}}\n", "eft.rules",
     "bogus"),
    ("datasets: [{kind: synthetic}]\neft: {rules: {preset: lax}}\n", "eft.rules.preset",
     "strict"),
    ("datasets: [{kind: coco}]\n", "datasets[0].path", "required for kind"),
    ("datasets: [{kind: synthetic, pth: x}]\n", "datasets[0].pth", "unknown key"),
    ("datasets: []\n", "datasets", "at least one"),
    ("eft: {}\n", "datasets", "required"),
    ("datasets: [{kind: synthetic}]\noutput: {formats: [h5, csv]}\n", "output.formats",
     "csv"),
    ("datasets: [{kind: synthetic}]\ndevices: [gpu0]\n", "devices[0]", "cuda:N"),
    ("datasets: [{kind: synthetic}]\nbackend: spark\n", "backend", "expected one of"),
    ("datasets: [{kind: synthetic}]\nscheduler: localhost:8786\n", "scheduler", "tcp://"),
    ("datasets: [{kind: synthetic}]\ncheck_images: yes please\n", "check_images",
     "true or false"),
    ("datasets: [{kind: synthetic}]\nlimit: -3\n", "limit", ">= 1"),
])
def test_bad_config_names_file_and_key(tmp_path, text, key, words):
    p = _write(tmp_path, text)
    with pytest.raises(JobConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: {key}: "), msg
    assert words in msg and "\n" not in msg


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(JobConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    p = _write(tmp_path, "datasets: [kind: {\n")
    with pytest.raises(JobConfigError, match=r"not valid YAML \(line"):
        load_config(p)
    # a key given twice is refused (YAML alone would keep the last one silently)
    p = _write(tmp_path, "datasets:\n  - kind: coco\n    path: a.json\n    path: b.json\n")
    with pytest.raises(JobConfigError, match=r"\(line 4\): key 'path' given twice "
                       r"\(lines 3 and 4\)"):
        load_config(p)
    p = _write(tmp_path, "datasets: [{kind: coco, path: a.json}]\neft: {lr: 1, lr: 2}\n")
    with pytest.raises(JobConfigError, match="key 'lr' given twice"):
        load_config(p)
    p = _write(tmp_path, "datasets: [{kind: coco, path: a.json}, {kind: coco, path: b.json,"
               " name: b}]\n")
    assert [d.path for d in load_config(p).datasets] == ["a.json", "b.json"]
    # merge keys still share settings (a merged key given again is an override, not twice)
    p = _write(tmp_path, "datasets:\n  - &b {kind: coco, path: a.json, options: "
               "{min_keypoints: 8}}\n  - {<<: *b, path: b.json, name: b}\n")
    cfg = load_config(p)
    assert [(d.path, d.options["min_keypoints"]) for d in cfg.datasets] == [
        ("a.json", 8), ("b.json", 8)]


def test_overrides(tmp_path):
    p = _write(tmp_path, "datasets: [{kind: coco, path: a.json}]\n")
    cfg = load_config(p, [parse_override("eft.max_iters=9"),
                          parse_override("datasets.0.path=b.json"),
                          parse_override("output.formats=[h5]"),
                          parse_override("eft.rules.max_pose_nll=null"),
                          (["devices"], "cuda:0,cuda:1")])
    assert cfg.eft.max_iters == 9 and cfg.datasets[0].path == "b.json"
    assert cfg.output.formats == ("h5",) and cfg.eft.rules.max_pose_nll is None
    assert cfg.devices == ("cuda:0", "cuda:1")
    with pytest.raises(JobConfigError, match="KEY=VALUE"):
        parse_override("eft.max_iters")
    with pytest.raises(JobConfigError, match="no list item 3"):
        load_config(p, [parse_override("datasets.3.path=x")])
    with pytest.raises(JobConfigError, match="eft.max_iters: expected an integer"):
        load_config(p, [parse_override("eft.max_iters=many")])


def test_fit_dict_excludes_runtime_keys():
    a = config_from_dict(MINIMAL)
    b = config_from_dict({**MINIMAL, "workers": 4, "backend": "dask", "limit": 3,
                          "output": {"dir": "elsewhere", "formats": ["h5"]}})
    c = config_from_dict({**MINIMAL, "eft": {"max_iters": 3}})
    assert a.fit_dict() == b.fit_dict()
    assert a.fit_dict() != c.fit_dict()
    json.dumps(a.to_dict())  # plain JSON


# ---------------------------------------------------------------------------
# Shards and chunks
# ---------------------------------------------------------------------------

def test_parse_shard():
    assert parse_shard("3/8") == Shard(3, 8) and parse_shard(" 0 / 1 ") == Shard(0, 1)
    for bad in ("8/8", "1", "a/b", "-1/3", "0/0"):
        with pytest.raises(JobConfigError):
            parse_shard(bad)
    assert Shard(3, 8).folder == "shard-003-of-008"


@given(st.lists(st.text(min_size=1, max_size=12), max_size=60, unique=True),
       st.integers(1, 7))
def test_shards_partition_the_ids(ids, n):
    parts = [select_shard(ids, Shard(i, n)) for i in range(n)]
    flat = [x for p in parts for x in p]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
    # keyed by id, not position: any order or subset gives the same assignment
    rev = [select_shard(list(reversed(ids))[: len(ids) // 2], Shard(i, n)) for i in range(n)]
    for i in range(n):
        assert set(rev[i]) <= set(parts[i])


def test_shard_of_is_a_fixed_hash():
    # independent reference: sha1 of the id, first 8 bytes big-endian, mod N
    import hashlib

    for eid in ("coco/1", "mpii/000001163/0", "synthetic/s0/0000003"):
        ref = int(hashlib.sha1(eid.encode()).hexdigest()[:16], 16) % 5
        assert shard_of(eid, 5) == ref
    counts = np.bincount([shard_of(f"x/{i}", 4) for i in range(4000)], minlength=4)
    assert counts.min() > 900  # roughly balanced


def test_chunks_are_fixed_slices_of_sorted_ids():
    ids = [f"d/{i:03d}" for i in range(10)]
    chunks = plan_chunks(list(reversed(ids)), 4)
    assert chunks == [tuple(ids[0:4]), tuple(ids[4:8]), tuple(ids[8:10])]
    assert plan_chunks(ids[:6], 4)[0] == chunks[0]  # a prefix keeps its chunks


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------

def test_resolve_devices_with_fake_cuda():
    assert resolve_devices(["auto"], lambda: 0) == ["cpu"]
    assert resolve_devices(["auto"], lambda: 3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert resolve_devices(["cuda"], lambda: 1) == ["cuda:0"]
    assert resolve_devices(["cuda:1", "cpu"], lambda: 2) == ["cuda:1", "cpu"]
    with pytest.raises(JobConfigError, match="cuda:2 is not available"):
        resolve_devices(["cuda:2"], lambda: 2)


def test_one_worker_per_device(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    devices = ("cuda:0", "cuda:1", "cuda:2")
    slots = str(tmp_path / "slots")
    with ThreadPoolExecutor(6) as pool:  # O_EXCL claims: concurrent claimers never collide
        got = list(pool.map(lambda _: claim_slot(slots), range(6)))
    assert sorted(got) == list(range(6))
    assert [device_for_slot(devices, s) for s in range(4)] == [*devices, "cuda:0"]


def test_worker_keeps_its_device_for_the_run(tmp_path, monkeypatch):
    from eft.fitting import EFTConfig
    from eft.jobs import worker

    monkeypatch.setattr(worker, "_SLOT", {})

    def setup(run_id):
        return worker.WorkerSetup(run_id, "h", "open", "default", EFTConfig(), "batched", 4,
                                  0, 1, ("cuda:0", "cuda:1"), str(tmp_path / run_id), False)

    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "0").touch()  # another worker of run r1 holds slot 0
    assert worker._device(setup("r1")) == "cuda:1"
    assert worker._device(setup("r1")) == "cuda:1"  # kept, not re-claimed
    assert worker._device(setup("r2")) == "cuda:0"  # a new run claims afresh
    in_process = setup("r3").__class__(**{**setup("r3").__dict__, "slot_dir": None})
    assert worker._device(in_process) == "cuda:0"


# ---------------------------------------------------------------------------
# Part files and atomic writes
# ---------------------------------------------------------------------------

def _fake_part():
    from eft.data.exemplar import Exemplar
    from eft.fitting.records import Fit, FitQuality

    rng = np.random.default_rng(0)
    fits, exs = [], []
    for i in range(3):
        q = FitQuality(1e-3 * i, 1e-4, 5.0, 0.02, 7, True, 0.5, float("nan"), 12,
                       i != 1, ("not_converged",) if i == 1 else ())
        fits.append(Fit(f"d/{i}", rng.normal(size=(24, 3, 3)).astype(np.float32),
                        rng.normal(size=72).astype(np.float32),
                        rng.normal(size=10).astype(np.float32),
                        np.array([0.9, 0.1, -0.1], np.float32), np.ones(3, np.float32),
                        rng.normal(size=(49, 3)).astype(np.float32),
                        np.array([10.5, 20.25]), 1.25, q))
        exs.append(Exemplar(f"d/{i}", None if i == 0 else f"img/{i}.jpg",
                            np.array([10.5, 20.25]), 1.25, rng.normal(size=(49, 3)),
                            "coco17", (640, 480) if i else None, {"annotId": i}))
    return Part.from_fits(5, "abc", fits, exs,
                          failures=[Failure("d/9", "missing_image", "img/9.jpg")], seconds=1.5)


def test_part_round_trip(tmp_path):
    part = _fake_part()
    write_part(tmp_path / "p.npz", part)
    back = read_part(tmp_path / "p.npz")
    assert back.chunk == 5 and back.config_hash == "abc" and back.failures == part.failures
    for a, b in zip(part.fits, back.fits, strict=True):
        for name in ("rotmat", "pose_aa", "betas", "cam_weak", "cam_t", "keypoints3d",
                     "center"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.scale == b.scale and a.exemplar_id == b.exemplar_id
        assert repr(a.quality) == repr(b.quality)  # NaN-safe equality
    for a, b in zip(part.exemplars, back.exemplars, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        assert (a.id, a.image_path, a.image_size, a.meta, a.source) == (
            b.id, b.image_path, b.image_size, b.meta, b.source)
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporaries left


def test_damaged_part_is_a_clear_error(tmp_path):
    from eft.jobs.store import JobStoreError

    write_part(tmp_path / "p.npz", _fake_part())
    data = (tmp_path / "p.npz").read_bytes()
    (tmp_path / "p.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(JobStoreError, match="not a readable part file"):
        read_part(tmp_path / "p.npz")


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": float("nan")})  # not valid JSON: refused
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


# ---------------------------------------------------------------------------
# Nonsense values are refused with one line naming the key (issue 14)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("override, key, words", [
    ("eft.lr=inf", "eft.lr", "finite"),
    ("eft.loss_scale=nan", "eft.loss_scale", "finite"),
    ("eft.w_keypoints_2d=inf", "eft.w_keypoints_2d", "finite"),
    ("eft.focal_length=.nan", "eft.focal_length", "finite"),
    ("eft.rules.max_loss_2d=inf", "eft.rules.max_loss_2d", "finite"),
    ("eft.rules.max_pose_nll=nan", "eft.rules.max_pose_nll", "finite"),
    ("eft.rules.max_pose_nll=-.inf", "eft.rules.max_pose_nll", "finite"),
    ("eft.img_res=0", "eft.img_res", ">= 1"),
    ("eft.img_res=-224", "eft.img_res", ">= 1"),
    ("eft.focal_length=0", "eft.focal_length", "> 0"),
    ("eft.loss_scale=-60", "eft.loss_scale", "> 0"),
    ("eft.w_betas=-1", "eft.w_betas", ">= 0"),
    ("eft.adam_eps=0", "eft.adam_eps", "> 0"),
    ("seed=9223372036854775808", "seed", "2^63"),
    ("batch_size=99999999999999999999", "batch_size", "2^63"),
    ("datasets.0.options.min_keypoints=six", "datasets[0].options.min_keypoints",
     "expected an integer"),
    ("datasets.0.options.min_keypionts=6", "datasets[0].options.min_keypionts",
     "unknown option"),
    ("datasets.0.kind=cocoa", "datasets[0].kind", "unknown dataset kind"),
])
def test_nonsense_values_are_refused(tmp_path, override, key, words):
    p = _write(tmp_path, "datasets: [{kind: coco, path: a.json}]\n")
    with pytest.raises(JobConfigError) as exc:
        load_config(p, [parse_override(override)])
    msg = str(exc.value)
    assert msg.startswith(f"{p}: {key}: "), msg
    assert words in msg and "\n" not in msg


def test_reader_options_are_coerced_to_the_readers_types(tmp_path):
    p = _write(tmp_path, "datasets: [{kind: coco, path: a.json, "
                         "options: {min_keypoints: 4, rescale: 1e-0}}]\n")
    assert load_config(p).datasets[0].options == {"min_keypoints": 4, "rescale": 1.0}


def test_non_finite_values_are_not_written_anywhere():
    """The dataclasses refuse them too (API use, not only YAML)."""
    from eft.fitting import EFTConfig, QualityRules

    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="loss_scale must be a finite number > 0"):
            EFTConfig(loss_scale=bad)
    for bad in (float("nan"), -1.0, -float("inf")):
        with pytest.raises(ValueError, match="max_abs_beta"):
            QualityRules(max_abs_beta=bad)
    assert QualityRules(max_initial_loss_2d=float("inf")).max_initial_loss_2d == float("inf")
    assert EFTConfig(loss_scale=np.float32(60.0)).loss_scale == 60.0


def test_binary_config_and_file_as_output_dir_are_one_line_cli_errors(tmp_path, capsys):
    from eft.cli import main

    binary = tmp_path / "job.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["fit", str(binary), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a YAML text file" in err and "\n" not in err, err
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"datasets: \x00\x01\x02\n")
    assert main(["fit", str(nul), "-q"]) == 2
    assert "not a YAML text file" in capsys.readouterr().err

    job = _write(tmp_path, "datasets: [{kind: synthetic, options: {n: 2}}]\n")
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    for out in (a_file, a_file / "sub"):
        assert main(["fit", str(job), "-q", "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("eft: error: output.dir: ") and "is not a folder" in err
        assert "\n" not in err
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("options, message", [
    ({"n": -5}, "n: must be an integer >= 1, got -5"),
    ({"n": "ten"}, "n: expected an integer, got 'ten'"),
    ({"seed": -1}, "seed: must be an integer >= 0, got -1"),
    ({"nn": 3}, "nn: unknown key"),
    ({"margin": "wide"}, "margin: expected a number, got 'wide'"),
    ({"poses": "test"}, "poses must be train, val or all"),
])
def test_bad_synthetic_options_are_one_config_error(options, message):
    from eft.jobs.config import DatasetConfig
    from eft.jobs.sources import read_one

    with pytest.raises(JobConfigError, match="dataset syn: synthetic options: "
                       + message.replace("(", r"\(")):
        read_one(DatasetConfig(kind="synthetic", name="syn", options=options))


@pytest.mark.parametrize("name", ["", "..", ".hidden", "a/b", "a\\b"])
def test_output_name_is_a_plain_file_stem(name):
    with pytest.raises(JobConfigError, match=r"output\.name: must be a file stem"):
        config_from_dict({**MINIMAL, "output": {"name": name}})
    assert config_from_dict({**MINIMAL, "output": {"name": "fits.v2"}}).output.name == "fits.v2"


def test_an_output_dir_below_a_file_is_one_config_error(tmp_path):
    from eft.jobs import run_job

    (tmp_path / "taken").write_text("a file")
    for out in (tmp_path / "taken", tmp_path / "taken" / "deeper" / "out"):
        cfg = config_from_dict({**MINIMAL, "output": {"dir": str(out)}, "devices": ["cpu"]})
        with pytest.raises(JobConfigError, match=f"output.dir: {tmp_path / 'taken'} exists "
                           "and is not a folder"):
            run_job(cfg, progress=False)


def test_openpose_without_gt_slots_needs_the_openpose_weight(tmp_path):
    """``gt_slots: false`` leaves OpenPose keypoints in slots the fit weighs 0 by
    default: such a job would fit nobody, so its config is refused with the two ways out;
    either of them loads (job-wide or the dataset's own ``eft``)."""
    ds = {"kind": "openpose", "path": str(tmp_path), "options": {"gt_slots": False}}
    base = {"datasets": [ds], "output": {"dir": str(tmp_path / "out")}}
    with pytest.raises(JobConfigError, match=r"datasets\.0\.options\.gt_slots: false .*"
                       r"drop gt_slots: false, or set eft\.openpose_weight"):
        config_from_dict(base)
    assert config_from_dict({**base, "eft": {"openpose_weight": 1.0}}).eft.openpose_weight == 1
    own = config_from_dict({**base, "datasets": [
        {**ds, "eft": {"preset": "open-prior", "openpose_weight": 0.5}}]})
    assert own.datasets[0].eft.openpose_weight == 0.5
    assert config_from_dict({**base, "datasets": [{**ds, "options": {}}]}).datasets[0]
