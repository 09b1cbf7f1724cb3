"""Tests for eft.models: HMR layout and checkpoints, the IEF head, the keypoint regressor,
mean parameters and the save/load registry."""

from __future__ import annotations

import argparse
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

from eft.errors import EftError
from eft.geometry.rotations import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_rot6d
from eft.models import (
    HMR,
    IEFHead,
    KeypointRegressor,
    LoadReport,
    RegressorOutput,
    default_mean_params,
    load_hmr_checkpoint,
    load_mean_params,
    load_regressor,
    mean_params_from_poses,
    save_regressor,
)
from eft.models import registry as registry_mod

HEAD_MODULES = ("fc1", "fc2", "decpose", "decshape", "deccam")


def _numel(params) -> int:
    return sum(p.numel() for p in params)


def _perturbed_state(model: torch.nn.Module, seed: int = 0) -> OrderedDict:
    """The model's state dict with every float entry changed (running_var kept > 0)."""
    gen = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for key, value in model.state_dict().items():
        value = value.clone()
        if key.endswith("running_var"):
            value *= 0.5 + torch.rand(value.shape, generator=gen)
        elif value.is_floating_point():
            value += 0.01 * torch.randn(value.shape, generator=gen)
        else:  # num_batches_tracked
            value += 7
        out[key] = value
    return out


def _zero_decoders(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name in ("decpose", "decshape", "deccam"):
            layer = getattr(model, name)
            layer.weight.zero_()
            layer.bias.zero_()


@pytest.fixture(scope="module")
def hmr() -> HMR:
    torch.manual_seed(0)
    return HMR().eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def _keypoints(batch: int = 3, seed: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    kp = torch.rand(batch, 49, 3, generator=gen) * 2 - 1
    kp[..., 2] = (torch.rand(batch, 49, generator=gen) > 0.3).float()
    return kp


# ----------------------------------------------------------------------------- HMR layout


def test_hmr_state_dict_matches_spin(hmr):
    sd = hmr.state_dict()
    assert len(sd) == 331
    assert len(list(hmr.parameters())) == 169
    assert _numel(hmr.parameters()) == 26_977_501
    assert _numel(hmr.backbone_parameters()) == 23_508_032
    assert _numel(hmr.head_parameters()) == 3_469_469
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.running_var": (256,),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.weight": (1024,),
        "layer4.2.bn3.running_var": (2048,),
        "layer4.2.bn3.num_batches_tracked": (),
        "fc1.weight": (1024, 2205),
        "fc2.weight": (1024, 1024),
        "decpose.weight": (144, 1024),
        "decshape.weight": (10, 1024),
        "deccam.bias": (3,),
        "init_pose": (1, 144),
        "init_shape": (1, 10),
        "init_cam": (1, 3),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith(("fc.", "head.", "backbone.")) for k in sd)
    assert sum(k.endswith("num_batches_tracked") for k in sd) == 53
    # the stride sits on the 3x3 conv (torchvision v1.5 / SPIN)
    assert hmr.layer2[0].conv2.stride == (2, 2) and hmr.layer2[0].conv1.stride == (1, 1)


def test_ief_head_standalone_has_spin_names():
    head = IEFHead(2048)
    assert _numel(head.parameters()) == 3_469_469
    assert {k.split(".")[0] for k in head.state_dict()} == {
        *HEAD_MODULES, "init_pose", "init_shape", "init_cam"}
    out = head.eval()(torch.randn(2, 2048))
    assert out.rotmat.shape == (2, 24, 3, 3)
    with pytest.raises(ValueError):
        head(torch.randn(2, 100))


# ----------------------------------------------------------------------------- checkpoints


def _assert_same_state(model: torch.nn.Module, state) -> None:
    own = model.state_dict()
    assert list(own) == list(state)
    for key, value in own.items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("prefix", ["", "module."])
def test_spin_checkpoint_round_trip(hmr, images, tmp_path, prefix):
    state = _perturbed_state(hmr, seed=3)
    ckpt = {
        "model": OrderedDict((prefix + k, v) for k, v in state.items()),
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5, "params": [0, 1, 2]}]},
        "epoch": 4,
        "batch_idx": 100,
        "batch_size": 64,
        "dataset_perm": torch.randperm(10),
        "total_step_count": 12345,
    }
    path = tmp_path / "spin.pt"
    torch.save(ckpt, path)

    fresh = HMR().eval()
    report = load_hmr_checkpoint(fresh, path)
    assert report == LoadReport() and report.clean
    _assert_same_state(fresh, state)
    if not prefix:  # one forward comparison is enough (identical state -> identical model)
        source = HMR().eval()
        source.load_state_dict(state)
        with torch.no_grad():
            a, b = source(images[:1]), fresh(images[:1])
        assert torch.equal(a.rotmat, b.rotmat)
        assert torch.equal(a.betas, b.betas) and torch.equal(a.cam, b.cam)
        assert torch.equal(a.pose6d, b.pose6d)

    # the same dict passed directly, and the raw state dict, load too
    assert load_hmr_checkpoint(HMR(), ckpt).clean
    assert load_hmr_checkpoint(HMR(), ckpt["model"]).clean

    loaded = load_regressor(path)
    assert isinstance(loaded, HMR) and not loaded.training
    assert loaded.eft_metadata == {"epoch": 4, "total_step_count": 12345}
    _assert_same_state(loaded, state)


def test_checkpoint_report_and_shape_mismatch(hmr):
    state = OrderedDict(hmr.state_dict())
    del state["deccam.bias"]
    state["fc.weight"] = torch.zeros(1000, 2048)
    report = load_hmr_checkpoint(HMR(), state)
    assert report.missing == ("deccam.bias",)
    assert report.unexpected == ("fc.weight",)
    assert report.shape_mismatch == ()
    text = str(report).splitlines()
    assert len(text) == 3
    assert text[0].startswith("missing (1): deccam.bias")
    assert text[1].startswith("unexpected (1): fc.weight")
    assert text[2] == "shape_mismatch (0): -"

    bad = OrderedDict(hmr.state_dict())
    bad["decpose.weight"] = torch.zeros(72, 1024)
    bad["init_pose"] = torch.zeros(1, 72)
    with pytest.raises(EftError, match="decpose.weight") as info:
        load_hmr_checkpoint(HMR(), bad)
    assert "init_pose" in str(info.value)
    report = load_hmr_checkpoint(HMR(), bad, allow_shape_mismatch=True)
    assert report.missing == () and len(report.shape_mismatch) == 2
    assert sorted(e.split(":")[0] for e in report.shape_mismatch) == [
        "decpose.weight", "init_pose"]


def test_untrusted_pickle_needs_trust(hmr, tmp_path):
    path = tmp_path / "old.pt"
    ckpt = {"model": hmr.state_dict(), "options": argparse.Namespace(lr=5e-5),
            "dataset_perm": np.arange(5)}
    torch.save(ckpt, path)
    with pytest.raises(EftError, match="trust=True") as info:
        load_hmr_checkpoint(HMR(), path)
    assert "refused argparse.Namespace" in str(info.value)
    assert load_hmr_checkpoint(HMR(), path, trust=True).clean
    with pytest.raises(EftError, match="not found"):
        load_hmr_checkpoint(HMR(), tmp_path / "missing.pt")
    with pytest.raises(EftError, match="no state dict"):
        load_hmr_checkpoint(HMR(), {"epoch": 1})


# ----------------------------------------------------------------------------- output contract


def _check_output(out: RegressorOutput, batch: int) -> None:
    assert out.rotmat.shape == (batch, 24, 3, 3)
    assert out.betas.shape == (batch, 10)
    assert out.cam.shape == (batch, 3)
    assert out.pose6d is not None and out.pose6d.shape == (batch, 144)
    eye = torch.eye(3).expand(batch, 24, 3, 3)
    rtr = out.rotmat.transpose(-1, -2) @ out.rotmat
    assert torch.allclose(rtr, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(out.rotmat), torch.ones(batch, 24), atol=1e-5)
    assert out.global_orient.shape == (batch, 1, 3, 3)
    assert out.body_pose.shape == (batch, 23, 3, 3)


def _assert_is_mean(out: RegressorOutput, model) -> None:
    batch = out.rotmat.shape[0]
    mean_rot = rot6d_to_rotmat(model.init_pose.reshape(24, 6)).expand(batch, 24, 3, 3)
    assert torch.allclose(out.rotmat, mean_rot, atol=1e-6)
    assert torch.allclose(out.pose6d, model.init_pose.expand(batch, -1))
    assert torch.allclose(out.betas, model.init_shape.expand(batch, -1))
    assert torch.allclose(out.cam, model.init_cam.expand(batch, -1))


def test_hmr_output_contract(hmr, images):
    with torch.no_grad():
        out = hmr(images)
        again = hmr(images)
    _check_output(out, 2)
    assert torch.equal(out.rotmat, again.rotmat) and torch.equal(out.cam, again.cam)

    model = HMR().eval()
    _zero_decoders(model)
    with torch.no_grad():  # a small crop keeps this fast; the head sees pooled features
        _assert_is_mean(model(torch.randn(2, 3, 64, 64)), model)
    with pytest.raises(ValueError):
        model(torch.randn(1, 4, 224, 224))


def test_keypoint_regressor_output_contract():
    torch.manual_seed(0)
    model = KeypointRegressor().eval()
    assert 300_000 < _numel(model.encoder.parameters()) < 500_000
    assert _numel(model.parameters()) == 1_026_717
    sd = model.state_dict()
    for key in ("fc1.weight", "decpose.weight", "init_pose", "init_shape", "init_cam"):
        assert key in sd
    kp = _keypoints()
    with torch.no_grad():
        out, again = model(kp), model(kp)
    _check_output(out, 3)
    assert torch.equal(out.rotmat, again.rotmat) and torch.equal(out.betas, again.betas)

    _zero_decoders(model)
    with torch.no_grad():
        _assert_is_mean(model(kp), model)
    with pytest.raises(ValueError):
        model(torch.zeros(2, 17, 3))


def test_keypoint_regressor_ignores_missing_joints():
    torch.manual_seed(0)
    model = KeypointRegressor().eval()
    kp = _keypoints(batch=2)
    missing = kp[..., 2] == 0
    assert missing.any()
    moved = kp.clone()
    moved[..., 0][missing] = 5.0
    moved[..., 1][missing] = float("nan")
    with torch.no_grad():
        a, b = model(kp), model(moved)
    assert torch.equal(a.rotmat, b.rotmat) and torch.equal(a.cam, b.cam)
    # ... while a visible joint does matter
    visible = moved.clone()
    idx = torch.nonzero(~missing[0])[0, 0]
    visible[0, idx, 0] += 0.5
    with torch.no_grad():
        assert not torch.equal(model(visible).rotmat[0], a.rotmat[0])


def test_keypoint_regressor_reads_presence_not_the_confidence_value():
    """A detector's confidences in (0, 1] feed the network as 1 (every prior was trained
    on 0/1), negative and NaN ones as missing; the input equals the binary one's."""
    torch.manual_seed(0)
    model = KeypointRegressor().eval()
    kp = _keypoints(batch=3)
    present = kp[..., 2] > 0
    soft = kp.clone()
    soft[..., 2][present] = torch.rand(int(present.sum())) * 0.9 + 0.05
    soft[..., 2][~present] = torch.where(torch.rand(int((~present).sum())) < 0.5,
                                         torch.tensor(-0.3), torch.tensor(float("nan")))
    binary = kp.clone()
    binary[..., 2] = present.float()
    assert torch.equal(model.prepare_input(soft), model.prepare_input(binary))
    with torch.no_grad():
        assert torch.equal(model(soft).rotmat, model(binary).rotmat)


def test_keypoint_regressor_backward_and_n_iter():
    model = KeypointRegressor(width=64, hidden=64, n_iter=2)
    out = model(_keypoints(batch=2), n_iter=1)
    (out.rotmat.sum() + out.cam.sum() + out.betas.sum()).backward()
    assert model.encoder[0].weight.grad is not None
    assert model.fc1.weight.grad is not None


def test_keypoint_regressor_widened_keeps_the_function():
    torch.manual_seed(0)
    model = KeypointRegressor(width=32, hidden=48, input_slots=list(range(0, 49, 2))).eval()
    for p in model.parameters():  # LayerNorm affines away from 1 / 0 too
        p.data.add_(0.1 * torch.randn_like(p))
    wide = model.widened(96, seed=1)
    assert wide.width == 96 and wide.ief_hidden == 48 and wide.input_slots == model.input_slots
    assert wide.encoder[0].weight.shape == (96, 49 * 3) and wide.fc1.weight.shape == (48, 96 + 157)
    kp = _keypoints(batch=4)
    with torch.no_grad():
        a, b = model(kp), wide(kp)
    for x, y in ((a.rotmat, b.rotmat), (a.betas, b.betas), (a.cam, b.cam)):
        torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-5)
    # a unit and its copies get different gradients, so training can pull them apart
    out = wide(kp)
    (out.rotmat[..., 0].sum() + out.betas.square().sum() + out.cam.sum()).backward()
    g = wide.encoder[3].weight.grad
    assert g.abs().max() > 1e-4
    assert not torch.allclose(g[:32], g[32:64], rtol=0.01, atol=0.0)
    assert not torch.allclose(g[:32], g[64:], rtol=0.01, atol=0.0)
    assert not torch.equal(model.widened(96, seed=2).fc1.weight, wide.fc1.weight)
    with pytest.raises(ValueError, match="narrower"):
        model.widened(16)


def test_keypoint_regressor_deepened_keeps_the_function_then_learns(tmp_path):
    torch.manual_seed(0)
    model = KeypointRegressor(width=32, hidden=48).eval()
    deep = model.deepened(2)
    assert len(deep.res) == 2 and deep.config["res_blocks"] == 2
    assert "res_blocks" not in model.config  # old checkpoints' configs are unchanged
    assert _numel(deep.parameters()) == _numel(model.parameters()) + 2 * (
        2 * (32 * 32 + 32) + 2 * 2 * 32)
    kp = _keypoints()
    with torch.no_grad():
        a, b = model(kp), deep(kp)
    assert torch.equal(a.rotmat, b.rotmat) and torch.equal(a.cam, b.cam)
    # the closing LayerNorm's gain gets a gradient at once, and then the block acts
    out = deep(kp)
    (out.rotmat[..., 0].sum() + out.cam.sum()).backward()
    assert deep.res[0][-1].weight.grad.abs().max() > 0
    with torch.no_grad():
        for block in deep.res:
            block[-1].weight.add_(0.1)
        assert not torch.equal(deep(kp).rotmat, a.rotmat)
    # EFT's scopes: "last_stage" trains the encoder's last block, the residual blocks and
    # the head; "head" only the head, reading the residual blocks' features
    names = deep.eft_split("last_stage").trained
    assert {"res.0", "res.1", "encoder.3", "fc1"} <= set(names)
    with torch.no_grad():
        split = deep.eft_split("head")
        torch.testing.assert_close(split.head(split.features(kp)).rotmat, deep(kp).rotmat)
        split = deep.eft_split("last_stage")
        torch.testing.assert_close(split.head(split.features(kp)).rotmat, deep(kp).rotmat)
    deeper = deep.eval().deepened(1)
    assert len(deeper.res) == 3
    with torch.no_grad():
        assert torch.equal(deeper(kp).rotmat, deep(kp).rotmat)
    # the config travels with the checkpoint
    loaded = load_regressor(save_regressor(deep, tmp_path / "deep.pt"))
    with torch.no_grad():
        assert torch.equal(loaded(kp).rotmat, deep(kp).rotmat)
    with pytest.raises(ValueError):
        model.deepened(-1)


# ----------------------------------------------------------------------------- mean params


def test_default_mean_params():
    params = default_mean_params()
    assert params["pose"].shape == (144,) and params["pose"].dtype == np.float32
    rot = rot6d_to_rotmat(torch.from_numpy(params["pose"]).reshape(24, 6))
    assert torch.allclose(rot[0], torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    assert torch.allclose(rot[1:], torch.eye(3).expand(23, 3, 3))
    assert np.array_equal(params["shape"], np.zeros(10, np.float32))
    assert np.allclose(params["cam"], [0.9, 0.0, 0.0])
    model = KeypointRegressor()
    assert torch.equal(model.init_pose, torch.from_numpy(params["pose"])[None])


def test_load_mean_params_npz(tmp_path):
    gen = np.random.default_rng(0)
    pose = rotmat_to_rot6d(axis_angle_to_rotmat(torch.randn(24, 3, dtype=torch.float64)))
    pose = pose.reshape(144).numpy()
    shape, cam = gen.normal(size=10), np.array([0.8, 0.1, -0.2])
    path = tmp_path / "smpl_mean_params.npz"
    np.savez(path, pose=pose, shape=shape, cam=cam)
    params = load_mean_params(path)
    assert np.allclose(params["pose"], pose, atol=1e-6)
    assert np.allclose(params["shape"], shape, atol=1e-6)
    model = KeypointRegressor(mean_params=path)
    assert np.allclose(model.init_cam.numpy()[0], cam)
    assert np.allclose(model.mean_params()["shape"], shape, atol=1e-6)

    np.savez(tmp_path / "bad.npz", pose=pose[:100], shape=shape, cam=cam)
    with pytest.raises(EftError, match="pose"):
        load_mean_params(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", pose=pose)
    with pytest.raises(EftError, match="shape"):
        load_mean_params(tmp_path / "short.npz")


def test_mean_params_from_poses():
    angle = 0.4
    about_z = torch.tensor([[0.0, 0.0, angle], [0.0, 0.0, -angle]], dtype=torch.float64)
    rot = axis_angle_to_rotmat(about_z)[:, None].expand(2, 24, 3, 3)
    params = mean_params_from_poses(rot)
    mean = rot6d_to_rotmat(torch.from_numpy(params["pose"]).double().reshape(24, 6))
    assert torch.allclose(mean, torch.eye(3, dtype=torch.float64).expand(24, 3, 3), atol=1e-6)
    assert np.allclose(params["cam"], [0.9, 0.0, 0.0])

    # one pose -> its own rotation; betas are averaged
    single = axis_angle_to_rotmat(torch.randn(1, 24, 3, dtype=torch.float64))
    params = mean_params_from_poses(single.numpy(), np.full((1, 10), 0.5))
    got = rot6d_to_rotmat(torch.from_numpy(params["pose"]).double().reshape(24, 6))
    assert torch.allclose(got, single[0], atol=1e-6)
    assert np.allclose(params["shape"], 0.5)

    # the chordal mean is a proper rotation even for widely spread poses
    spread = axis_angle_to_rotmat(math.pi * 0.9 * torch.randn(50, 24, 3, dtype=torch.float64))
    mean = torch.from_numpy(mean_params_from_poses(spread)["pose"]).reshape(24, 6)
    model = IEFHead(8, hidden=16, mean_params={"pose": mean})
    r = rot6d_to_rotmat(model.init_pose.reshape(24, 6))
    assert torch.allclose(torch.linalg.det(r), torch.ones(24), atol=1e-5)

    with pytest.raises(EftError):
        mean_params_from_poses(torch.zeros(3, 24, 3))
    with pytest.raises(EftError):
        mean_params_from_poses(single, torch.zeros(2, 10))


def test_set_mean_params_moves_the_start():
    model = KeypointRegressor(width=32, hidden=32).eval()
    _zero_decoders(model)
    target = axis_angle_to_rotmat(0.3 * torch.randn(24, 3))
    model.set_mean_params({"pose": target, "shape": torch.ones(10), "cam": [1.1, 0.1, 0.2]})
    with torch.no_grad():
        out = model(_keypoints(batch=1))
    assert torch.allclose(out.rotmat[0], target, atol=1e-5)
    assert torch.allclose(out.cam[0], torch.tensor([1.1, 0.1, 0.2]))
    with pytest.raises(EftError):
        model.set_mean_params({"pose": torch.zeros(144)})


# ----------------------------------------------------------------------------- registry


def test_save_load_keypoint_regressor(tmp_path):
    torch.manual_seed(0)
    model = KeypointRegressor(width=128, hidden=96, n_iter=2, dropout=0.2).eval()
    model.load_state_dict(_perturbed_state(model, seed=5))
    path = save_regressor(model, tmp_path / "sub" / "prior.pt", note="test", steps=3,
                          extra={"lr": 1e-4, "tags": ["a", "b"]})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["prior.pt"]  # no temp file left
    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == "keypoint_regressor"
    assert raw["config"] == {"num_keypoints": 49, "width": 128, "hidden": 96, "n_iter": 2,
                             "dropout": 0.2}

    loaded = load_regressor(path)
    assert isinstance(loaded, KeypointRegressor) and not loaded.training
    assert loaded.eft_metadata == {"note": "test", "steps": 3,
                                   "extra": {"lr": 1e-4, "tags": ["a", "b"]}}
    kp = _keypoints()
    with torch.no_grad():
        assert torch.equal(model(kp).rotmat, loaded(kp).rotmat)

    with pytest.raises(EftError, match="metadata"):
        save_regressor(model, tmp_path / "x.pt", bad=np.zeros(3))
    with pytest.raises(EftError, match="cannot save"):
        save_regressor(torch.nn.Linear(2, 2), tmp_path / "y.pt")


def test_save_load_hmr(hmr, images, tmp_path):
    path = save_regressor(hmr, tmp_path / "hmr.pt", trained_on="unit test")
    loaded = load_regressor(str(path))
    assert isinstance(loaded, HMR) and loaded.config == hmr.config
    _assert_same_state(loaded, hmr.state_dict())
    small = images[:1, :, :64, :64]
    with torch.no_grad():
        assert torch.equal(hmr(small).cam, loaded(small).cam)


def test_load_regressor_errors(tmp_path, monkeypatch):
    missing = tmp_path / "assets" / "keypoint_prior.pt"
    monkeypatch.setattr(registry_mod, "default_prior_path", lambda: missing)
    with pytest.raises(EftError, match="prior 'default' is not installed") as info:
        load_regressor("default")
    assert str(missing) in str(info.value)
    monkeypatch.setattr(registry_mod, "named_prior_path", lambda name: tmp_path / name)
    with pytest.raises(EftError, match="prior 'keypoint-prior-v1' is not installed"):
        load_regressor("keypoint-prior-v1")

    save_regressor(KeypointRegressor(width=16, hidden=16), missing)
    assert isinstance(load_regressor("default"), KeypointRegressor)

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(EftError, match="not a regressor file"):
        load_regressor(other)
    with pytest.raises(EftError, match="not found"):
        load_regressor(tmp_path / "nope.pt")
    # a mistyped prior name is not taken for a file: the names, and the nearest one
    with pytest.raises(EftError, match=r"unknown regressor 'keypoint-prior-v99': neither a "
                       r"shipped prior \(default, keypoint-prior-v1, .*\(did you mean"):
        load_regressor("keypoint-prior-v99")
    with pytest.raises(EftError, match="unknown regressor ''"):
        load_regressor("")
    text = tmp_path / "notes.pt"
    text.write_text("hello\n")  # not a torch file: one error, whatever torch raises
    with pytest.raises(EftError, match=r"cannot read checkpoint .*notes.pt \(.*\); is it a "
                       "torch checkpoint"):
        load_regressor(text)
    torch.save({"arch": "transformer", "config": {}, "state_dict": {}}, other)
    with pytest.raises(EftError, match="unknown architecture"):
        load_regressor(other)
    model = KeypointRegressor(width=16, hidden=16)
    torch.save({"arch": "keypoint_regressor", "config": {"width": 32, "hidden": 16},
                "state_dict": model.state_dict()}, other)
    with pytest.raises(EftError, match="shape mismatch"):
        load_regressor(other)
