"""``eft train``: configs (errors name file and key), annotation datasets with mixing and
filters, outputs, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from eft.annotations import AnnotationSet, Provenance, write_annotations
from eft.annotations.synthetic import random_columns
from eft.cli import main
from eft.train.config import TrainConfigError, load_train_config, train_config_from_dict
from eft.train.data import accepted_fit_poses, annotation_train_set

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "fitting" / "training"


def _aset(n: int, seed: int) -> AnnotationSet:
    cols = random_columns(n, seed)
    return AnnotationSet(cols.to_annotations(), Provenance.unknown("test"))


def test_shipped_configs_are_valid():
    files = sorted(CONFIG_DIR.glob("*.yaml"))
    assert files, CONFIG_DIR
    for f in files:
        cfg = load_train_config(f)
        assert cfg.datasets


@pytest.mark.parametrize("raw, message", [
    ({}, "datasets: required key is missing"),
    ({"datasets": []}, "give at least one dataset"),
    ({"datasets": [{"path": "a.json"}], "optimm": {}}, "optimm: unknown key .did you mean 'optim'"),
    ({"datasets": [{"path": "a.json"}], "optim": {"steps": "many"}},
     "optim.steps: expected an integer, got 'many'"),
    ({"datasets": [{"path": "a.json"}], "optim": {"lr": -1.0}}, "optim.lr: lr must be > 0"),
    ({"datasets": [{"path": "a.json", "synthetic": {"n": 3}}]}, "exactly one of"),
    ({"datasets": [{"path": "a.json", "format": "csv"}]}, "format must be one of"),
    ({"datasets": [{"path": "a.json", "weight": 0}]}, "weights must not all be 0"),
    ({"datasets": [{"synthetic": {"n": 3}}], "model": {"arch": "hmr"}},
     "synthetic datasets have none"),
    ({"datasets": [{"path": "a.json"}], "augment": {"flip_prob": 2}}, "flip_prob"),
    ({"datasets": [{"path": "a.json"}], "loss": {"kp2d": -1}}, "kp2d"),
    ({"datasets": [{"path": "a.json"}], "amp": "fp8"}, "amp: expected one of"),
    ({"datasets": [{"path": "a.json"}], "val": [{"kind": "h36m"}]}, "needs 'path'"),
    ({"datasets": [{"path": "a.json"}], "augment": {"formats": ["coco17", "nope"]}},
     "augment.formats: unknown keypoint format 'nope'; known formats: aic14"),
])
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(TrainConfigError, match=message.replace("(", r"\(").replace(
            "[", r"\[")) as err:
        train_config_from_dict(raw, "x.yaml")
    assert str(err.value).startswith("x.yaml: ") and "\n" not in str(err.value)


def test_cli_config_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [{path: a.json}]\noptim: {stepz: 3}\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "optim.stepz: unknown key (did you mean 'steps'?)" in err
    bad.write_text("datasets: [\n")
    assert main(["train", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "none.yaml")]) == 2
    ok = tmp_path / "ok.yaml"
    ok.write_text("datasets: [{path: missing.json}]\n")
    assert main(["train", str(ok), "--out", str(tmp_path / "run")]) == 2
    assert "no such annotation file" in capsys.readouterr().err
    assert main(["train", str(ok), "--set", "datasets.3.weight=2"]) == 2
    assert "no list item" in capsys.readouterr().err


def test_filters_and_review_hook():
    aset = _aset(40, 1)
    acc = [a.fit.quality.accepted for a in aset]
    assert 0 < sum(acc) < 40
    assert len(annotation_train_set(aset)) == 40
    assert len(annotation_train_set(aset, accepted_only=True)) == sum(acc)
    px = [a.fit.quality.reproj_px for a in aset]
    assert len(annotation_train_set(aset, max_reproj_px=8.0)) == sum(p <= 8 for p in px)
    rejected = next(a.id for a in aset if a.fit.quality.accepted)
    rescued = next(a.id for a in aset if not a.fit.quality.accepted)
    kept = annotation_train_set(aset, accepted_only=True,
                                decisions={rejected: "reject", rescued: "accept"})
    assert rejected not in kept.ids and rescued in kept.ids and len(kept) == sum(acc)
    ids = set(aset.ids[:5])
    assert set(annotation_train_set(aset, accepted_ids=ids).ids) == ids
    from eft.annotations import Selection

    sel = Selection(accepted_only=True, decisions={rejected: "reject", rescued: "accept"})
    assert annotation_train_set(aset, sel).ids == kept.ids
    assert len(annotation_train_set(aset, sel, decisions=None)) == sum(acc)
    data = annotation_train_set(aset, image_root="/data/coco")
    assert data.image_paths[0].startswith("/data/coco/images/")
    a0 = aset[0]
    assert np.allclose(data.rotmat[0].numpy(), a0.fit.rotmat)
    assert np.allclose(data.kp_px[0].numpy(), a0.exemplar.keypoints)
    assert bool(data.has_smpl.all()) and not bool(data.has_kp3d.any())


def test_accepted_fit_poses_are_the_accepted_fits_rotations():
    """The fits as a pose bank: one axis-angle row per accepted fit, whose rotations
    are the fit's own (round trip), and a clear error when none is accepted."""
    import torch

    from eft.geometry.rotations import axis_angle_to_rotmat
    from eft.train.errors import TrainError

    aset = _aset(40, 1)
    acc = [a for a in aset if a.fit.quality.accepted]
    poses = accepted_fit_poses(aset)
    assert poses.shape == (len(acc), 72) and poses.dtype == np.float64
    back = axis_angle_to_rotmat(torch.as_tensor(poses).reshape(-1, 24, 3)).numpy()
    want = np.stack([np.asarray(a.fit.rotmat, np.float64) for a in acc])
    assert np.abs(back - want).max() < 1e-5
    none = AnnotationSet([a for a in aset if not a.fit.quality.accepted],
                         Provenance.unknown("test"))
    with pytest.raises(TrainError, match="no accepted fits"):
        accepted_fit_poses(none)


def test_train_from_two_annotation_formats(tmp_path, capsys):
    """Two files (eft-json and h5), mixed 3:1, filtered, a review decision file; the run
    writes its outputs, refuses to clobber, and resumes."""
    a, b = tmp_path / "a.json", tmp_path / "b.h5"
    write_annotations(_aset(30, 2), a)
    write_annotations(_aset(20, 3), b)
    reject = _aset(30, 2).ids[0]
    (tmp_path / "review.json").write_text(json.dumps({reject: "reject"}))
    cfg = {
        "model": {"width": 32, "hidden": 32},
        "datasets": [
            {"path": str(a), "weight": 3, "accepted_only": True,
             "decisions": str(tmp_path / "review.json")},
            {"path": str(b), "format": "h5", "weight": 1, "max_reproj_px": 100.0},
        ],
        "val": [{"kind": "synthetic", "n": 16}],
        "optim": {"steps": 4, "batch_size": 8, "lr": 1e-3},
        "output": {"eval_every": 2, "checkpoint_every": 0, "log_every": 1},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    argv = ["train", str(path), "--out", str(out), "--no-progress", "--threads", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    n_a = sum(x.fit.quality.accepted for x in _aset(30, 2) if x.id != reject)
    assert f"dataset a: {n_a} samples, weight 3" in text
    assert "dataset b: 20 samples, weight 1" in text
    for name in ("config.yaml", "log.jsonl", "model.pt", "results.json"):
        assert (out / name).is_file(), name
    from eft.models import load_regressor

    assert load_regressor(out / "model.pt").config["width"] == 32
    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in entries if e["kind"] == "eval"] == [2, 4]
    assert "pa_mpjpe_mm" in json.loads((out / "results.json").read_text())["metrics"]
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=r"changed since the checkpoint \(optim.steps\)"):
        assert main(argv + ["--resume", "--steps", "6"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["steps"] == 6
    kept = yaml.safe_load((out / "config.until_step_0000004.yaml").read_text())
    assert kept["optim"]["steps"] == 4  # the settings the first four steps ran under
    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in entries if e["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    # the trained checkpoint evaluates through `eft eval` too
    ckpt = sorted((out / "checkpoints").glob("step_*.pt"))[-1]
    assert main(["eval", str(ckpt), "--synthetic", "8"]) == 0
    assert ckpt.with_suffix(".eval.png").is_file()  # the per-joint chart, beside it
    # and load_regressor (eft fit's regressor) reads it: the final model's weights
    import torch

    from eft.models import load_regressor

    from_ckpt, final = load_regressor(ckpt), load_regressor(out / "model.pt")
    assert from_ckpt.eft_metadata["step"] == 6
    for (k, a), (_, b) in zip(from_ckpt.state_dict().items(), final.state_dict().items(),
                              strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("raw, message", [
    ({"optim": {"lr": float("inf")}}, "optim.lr: expected a finite number, got inf"),
    ({"optim": {"lr": float("nan")}}, "optim.lr: expected a finite number, got nan"),
    ({"loss": {"overall": float("nan")}}, "loss.overall: expected a finite number"),
    ({"loss": {"kp2d": "inf"}}, "loss.kp2d: expected a finite number"),
    ({"augment": {"kp_noise": float("inf")}}, "augment.kp_noise: expected a finite"),
    ({"optim": {"seed": 2 ** 63}}, "optim.seed: expected an integer in"),
    ({"optim": {"seed": -1}}, "optim.seed must be >= 0"),
    ({"img_res": 0}, "img_res must be >= 1"),
    ({"img_res": -224}, "img_res must be >= 1"),
    ({"workers": -1}, "workers must be >= 0"),
    ({"model": {"width": 0}}, "model.width: width must be >= 1"),
    ({"model": {"dropout": 1.5}}, "model.dropout: dropout must be < 1"),
    ({"output": {"log_every": 0}}, "output.log_every: log_every must be >= 1"),
    ({"optim": {"batch_size": 0}}, "optim.batch_size: batch_size must be >= 1, got 0"),
    ({"optim": {"steps": 0}}, "optim.steps: steps must be >= 1, got 0"),
    ({"optim": {"grad_clip": -1}}, "optim.grad_clip: grad_clip must be >= 0"),
    ({"val": [{"kind": "synthetic", "seed": -3}]}, "val[0].seed: seed must be >= 0"),
])
def test_nonsense_train_values_are_refused(raw, message):
    raw = {"datasets": [{"path": "a.json"}], **raw}
    with pytest.raises(TrainConfigError) as err:
        train_config_from_dict(raw, "x.yaml")
    assert str(err.value).startswith("x.yaml: ") and "\n" not in str(err.value)
    assert message in str(err.value), str(err.value)


def test_numbers_parse_alike_in_job_and_training_configs(tmp_path):
    """``1e-4`` (YAML 1.1 reads it as a string) is a number in both kinds of config,
    from the file and from ``--set``: one loader, one number parser."""
    from eft.jobs.config import load_config, parse_override

    train = tmp_path / "train.yaml"
    train.write_text("datasets: [{synthetic: {n: 3}}]\noptim: {lr: 1e-4, grad_clip: 2E+1}\n")
    assert yaml.safe_load(train.read_text())["optim"]["lr"] == "1e-4"  # the YAML quirk
    cfg = load_train_config(train)
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.grad_clip == 20.0
    assert load_train_config(train, ["optim.lr=3e-5"]).optim.lr == 3e-5
    job = tmp_path / "job.yaml"
    job.write_text("datasets: [{kind: synthetic}]\neft: {lr: 1e-4}\n")
    assert load_config(job).eft.lr == 1e-4
    assert load_config(job, [parse_override("eft.lr=3e-5")]).eft.lr == 3e-5
    with pytest.raises(TrainConfigError, match=r"optim.lr: expected a number, got 'fast'"):
        load_train_config(train, ["optim.lr=fast"])


def test_binary_train_config_is_one_line(tmp_path, capsys):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)))
    assert main(["train", str(binary)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a YAML text file" in err and "\n" not in err


def test_three_d_keypoints_per_file_format(tmp_path):
    """``keypoints3d: true`` on a file with only the 24 GT slots' 3D keypoints (SPIN npz)
    warns that its people weigh about half; on a file with none it is one error."""
    import warnings

    from eft.annotations import read_annotations
    from eft.body import BodyModel
    from eft.train.config import DatasetSpec
    from eft.train.errors import TrainError
    from eft.train.run import build_dataset

    aset = _aset(6, 4)
    full = write_annotations(aset, tmp_path / "a.h5")
    spin = write_annotations(aset, tmp_path / "a.spin.npz", format="spin-npz")
    bare = write_annotations(read_annotations(spin), tmp_path / "bare.npz", format="spin-npz",
                             keypoints3d=False)
    body = BodyModel.load()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h5 = build_dataset(DatasetSpec(path=str(full), keypoints3d=True), body)
    with pytest.warns(UserWarning, match="24 GT slots only"):
        npz = build_dataset(DatasetSpec(path=str(spin), keypoints3d=True), body)
    assert bool(h5.has_kp3d.all()) and bool(npz.has_kp3d.all())
    np.testing.assert_allclose(npz.kp3d[:, 25:].numpy(), h5.kp3d[:, 25:].numpy(), atol=1e-5)
    with pytest.raises(TrainError, match="holds no 3D keypoints"):
        build_dataset(DatasetSpec(path=str(bare), keypoints3d=True), body)


def test_a_keypoint_with_nan_is_unlabelled_not_a_point_at_the_origin():
    from eft.train.data import TrainSet

    kp = np.full((2, 49, 3), 100.0, np.float32)
    kp[..., 2] = 1.0
    kp[0, 30, 0] = np.nan  # x lost, confidence still 1
    kp[1, 31, 2] = np.inf
    data = TrainSet.from_arrays(kp, np.zeros((2, 2)), np.ones(2))
    for t in (data.kp_px, data.target_px):
        assert t[0, 30].tolist() == [0.0, 0.0, 0.0] and t[1, 31].tolist() == [0.0, 0.0, 0.0]
        assert float(t[..., 2].sum()) == 2 * 49 - 2


def test_an_empty_file_and_a_file_filtered_empty_say_which(tmp_path):
    from eft.train.errors import TrainError

    empty = AnnotationSet([], Provenance.unknown("test"))
    with pytest.raises(TrainError, match="the file holds no fits"):
        annotation_train_set(empty)
    aset = _aset(4, 1)
    with pytest.raises(TrainError, match="no annotations left after filtering"):
        annotation_train_set(aset, ids=frozenset({"nobody"}))


def test_datasets_are_labelled_by_file_and_a_jobs_fits_by_its_folder():
    from eft.train.config import DatasetSpec

    assert DatasetSpec(path="runs/a.json").label == "a"
    assert DatasetSpec(path="annotations/coco2017-train/fits.h5").label == \
        "coco2017-train/fits"
    assert DatasetSpec(path="annotations/mpii/fits.spin.npz").label == "mpii/fits"
    assert DatasetSpec(path="fits.h5", name="mine").label == "mine"
