"""Evaluation: metrics against an independent numpy implementation, and the SPIN-format
H36M / 3DPW npz loaders on small files written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eft.body.joints import H36M_TO_J14
from eft.cli import main
from eft.geometry.rotations import axis_angle_to_rotmat
from eft.train.errors import TrainError
from eft.train.evaluate import (
    evaluate_bodies,
    evaluate_model,
    joint_metrics,
    load_3dpw_npz,
    load_h36m_npz,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _np_procrustes(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Similarity transform of p (N, 3) onto g (N, 3), by Umeyama's closed form."""
    mp, mg = p.mean(0), g.mean(0)
    p0, g0 = p - mp, g - mg
    u, s, vt = np.linalg.svd(g0.T @ p0)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    r = u @ fix @ vt
    scale = np.trace(np.diag(s) @ fix) / (p0 ** 2).sum()
    return scale * p0 @ r.T + mg


def _np_metrics(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    err = np.linalg.norm(pred - gt, axis=-1).mean(-1)
    pa = np.array([np.linalg.norm(_np_procrustes(p, g) - g, axis=-1).mean()
                   for p, g in zip(pred, gt, strict=True)])
    return float(err.mean() * 1000), float(pa.mean() * 1000)


def _random_bodies(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_rotmat(torch.randn(n, 24, 3, generator=g) * 0.4)
    betas = torch.randn(n, 10, generator=g)
    return rot, betas


def test_metrics_match_numpy(body):
    rot, betas = _random_bodies(6, 0)
    gt_rot, gt_betas = _random_bodies(6, 1)
    m = evaluate_bodies(body, rot, betas, gt_rot, gt_betas)
    with torch.no_grad():
        p, g = body(rot, betas), body(gt_rot, gt_betas)
        p14 = body.h36m_joints(p.vertices)[:, list(H36M_TO_J14)].double().numpy()
        g14 = body.h36m_joints(g.vertices)[:, list(H36M_TO_J14)].double().numpy()
    # independent centring: the mid-point of the LSP hips (rows 2 and 3)
    p14 -= (p14[:, 2] + p14[:, 3])[:, None] / 2
    g14 -= (g14[:, 2] + g14[:, 3])[:, None] / 2
    mp, pa = _np_metrics(p14, g14)
    assert m["mpjpe_mm"] == pytest.approx(mp, rel=1e-4)
    assert m["pa_mpjpe_mm"] == pytest.approx(pa, rel=1e-4)
    p24 = (p.joints - p.joints[:, :1]).double().numpy()
    g24 = (g.joints - g.joints[:, :1]).double().numpy()
    mp24, pa24 = _np_metrics(p24, g24)
    assert m["mpjpe24_mm"] == pytest.approx(mp24, rel=1e-4)
    assert m["pa_mpjpe24_mm"] == pytest.approx(pa24, rel=1e-4)
    assert 20 < pa < mp  # non-trivial numbers
    # a similarity transform of the ground truth has zero PA error but not zero MPJPE
    gt = torch.as_tensor(g14).float()
    r = axis_angle_to_rotmat(torch.tensor([[0.3, -0.5, 0.2]]))[0]
    moved = 1.3 * gt @ r.T + torch.tensor([0.1, 0.0, 0.2])
    same = joint_metrics(moved, gt)
    assert same["pa_mpjpe_mm"] < 1e-2 and same["mpjpe_mm"] > 50


def _write_h36m(path, n=5, joints=24, mm=False, with_part=True, seed=0):
    rng = np.random.default_rng(seed)
    s = np.concatenate([rng.normal(0, 0.3, (n, joints, 3)), np.ones((n, joints, 1))], -1)
    if mm:
        s[..., :3] *= 1000
    data = dict(imgname=np.array([f"S9/img_{i:06d}.jpg" for i in range(n)]),
                center=rng.uniform(400, 600, (n, 2)), scale=rng.uniform(0.8, 1.2, n), S=s)
    if with_part:
        part = np.zeros((n, 24, 3))
        part[:, :14, :2] = data["center"][:, None] + rng.normal(0, 40, (n, 14, 2))
        part[:, :14, 2] = 1
        data["part"] = part
    np.savez(path, **data)
    return s


@pytest.mark.parametrize("joints, mm", [(24, False), (17, True)])
def test_h36m_loader(tmp_path, joints, mm):
    path = tmp_path / "h36m_valid_protocol1.npz"
    s = _write_h36m(path, joints=joints, mm=mm)
    data = load_h36m_npz(path, image_root=tmp_path / "images")
    xyz = s[..., :3] / (1000 if mm else 1)
    # SPIN's rows [0..12, 18] of the 24 (row 13, the LSP head top, is empty in H36M)
    j14 = xyz[:, [*range(13), 18]] if joints == 24 else xyz[:, list(H36M_TO_J14)]
    j14 = j14 - (j14[:, 2:3] + j14[:, 3:4]) / 2
    assert np.allclose(data.gt14.numpy(), j14, atol=1e-6)
    assert data.gt24 is None and len(data) == 5
    assert data.image_paths[0] == str(tmp_path / "images" / "S9/img_000000.jpg")
    assert data.keypoints.shape == (5, 49, 3)
    assert torch.equal(data.keypoints[:, 25:39, 2], torch.ones(5, 14))
    assert data.keypoints[:, :25].abs().sum() == 0


def test_h36m_loader_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)), scale=np.ones(1))
    with pytest.raises(TrainError, match="lacks \\['S'\\]"):
        load_h36m_npz(path)
    np.savez(path, imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)), scale=np.ones(1),
             S=np.zeros((1, 9, 4)))
    with pytest.raises(TrainError, match="shape"):
        load_h36m_npz(path)
    with pytest.raises(TrainError, match="no such file"):
        load_h36m_npz(tmp_path / "missing.npz")


def test_3dpw_loader_and_eval(body, tmp_path):
    n = 4
    rot_aa = np.random.default_rng(1).normal(0, 0.3, (n, 72)).astype(np.float32)
    shape = np.random.default_rng(2).normal(0, 1, (n, 10)).astype(np.float32)
    path = tmp_path / "3dpw_test.npz"
    np.savez(path, imgname=np.array([f"downtown/image_{i:05d}.jpg" for i in range(n)]),
             center=np.full((n, 2), 500.0), scale=np.full(n, 1.0), pose=rot_aa, shape=shape,
             gender=np.array(["m", "f", "m", "f"]))
    with pytest.warns(UserWarning, match="gendered"):
        data = load_3dpw_npz(path, body)
    with torch.no_grad():
        out = body(torch.as_tensor(rot_aa).reshape(n, 24, 3), torch.as_tensor(shape))
        j14 = body.h36m_joints(out.vertices)[:, list(H36M_TO_J14)]
    j14 = j14 - (j14[:, 2:3] + j14[:, 3:4]) / 2
    assert torch.allclose(data.gt14, j14, atol=1e-5)
    assert torch.allclose(data.gt24, out.joints - out.joints[:, :1], atol=1e-5)
    assert data.keypoints is None
    from eft.models import load_regressor

    with pytest.raises(TrainError, match="needs 2D keypoints"):
        evaluate_model(load_regressor("default"), body, data)


def test_eval_command_on_h36m_file(tmp_path, capsys):
    path = tmp_path / "h36m_valid_protocol2.npz"
    _write_h36m(path, n=6)
    out = tmp_path / "eval.json"
    code = main(["eval", "default", "--h36m", str(path), "--synthetic", "20",
                 "--json", str(out), "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "h36m_valid_protocol2 (n=6)" in text and "PA-MPJPE-14" in text
    res = json.loads(out.read_text())["results"]
    h36m = res["h36m_valid_protocol2"]
    assert h36m["n"] == 6 and "mpjpe24_mm" not in h36m and h36m["pa_mpjpe_mm"] > 0
    synth = next(v for k, v in res.items() if k.startswith("synthetic"))
    assert synth["n"] == 20 and synth["pa_mpjpe_mm"] < synth["mpjpe_mm"]
    assert main(["eval", "default", "--h36m", str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


# -- a file laid out like SPIN's h36m_valid_protocol*.npz --------------------------------

def _spin_layout_h36m(body, path, n=6, seed=0, part17=False):
    """Write what SPIN's H36M preprocessing writes: S (N, 24, 4) with the 17 H36M joints
    in their SPIN GT rows (Thorax in the LSP neck row 12, Head in row 18), validity 1
    there and 0 in the rows H36M lacks (13 head top, 15 thorax, 19..23 face); returns
    the bodies' own 14 evaluation joints (pose_joints) and the file's S."""
    from eft.body import joints as J
    from eft.train.evaluate import pose_joints

    rot, betas = _random_bodies(n, seed)
    out = body(rot, betas)
    h17 = body.h36m_joints(out.vertices).double().numpy()  # SPIN's regressor order
    rows = {name: J.SPIN_GT24_INDEX[J.H36M17_TO_SPIN[name]] for name in J.H36M17_NAMES}
    rows["Thorax"] = J.SPIN_GT24_INDEX["Neck (LSP)"]
    s24 = np.zeros((n, 24, 4))
    for k, name in enumerate(J.H36M17_NAMES):
        s24[:, rows[name], :3] = h17[:, k] * 1000  # millimetres, as in SPIN's files
        s24[:, rows[name], 3] = 1
    rng = np.random.default_rng(seed)
    center = rng.uniform(400, 600, (n, 2))
    data = dict(imgname=np.array([f"S9_Directions_1.54138969_{i:06d}.jpg" for i in range(n)]),
                center=center, scale=rng.uniform(0.8, 1.2, n), S=s24)
    if part17:
        part = np.concatenate([center[:, None] + rng.normal(0, 40, (n, 17, 2)),
                               np.ones((n, 17, 1))], -1)
        data["part"] = part
    np.savez(path, **data)
    g14, _ = pose_joints(body, rot, betas)
    return g14, s24, data


def test_h36m_spin_layout_reads_rows_0_to_12_and_18(body, tmp_path):
    path = tmp_path / "h36m_valid_protocol2.npz"
    g14, s24, _ = _spin_layout_h36m(body, path)
    data = load_h36m_npz(path)
    # the bodies' own joints are the ground truth: zero error with the right rows
    np.testing.assert_allclose(data.gt14.numpy(), g14.numpy(), atol=1e-5)
    m = joint_metrics(g14, data.gt14, valid14=data.gt14_valid)
    assert m["mpjpe_mm"] < 0.01 and m["pa_mpjpe_mm"] < 0.01
    # what S[:, :14] (row 13: H36M has no LSP head top, zeros) would have given
    wrong = torch.as_tensor(s24[:, :14, :3] / 1000, dtype=torch.float32)
    wrong = wrong - wrong[:, 2:4].mean(1, keepdim=True)
    assert joint_metrics(g14, wrong)["mpjpe_mm"] > 30  # one joint in 14 at the hips


def test_h36m_validity_column_leaves_joints_out(body, tmp_path):
    path = tmp_path / "h36m.npz"
    g14, s24, data = _spin_layout_h36m(body, path)
    s24[0, 6, :3] = [5000.0, -5000.0, 9000.0]  # person 0's right wrist: garbage, invalid
    s24[0, 6, 3] = 0
    s24[1, 2, 3] = 0  # person 1's right hip invalid: no centre, left out entirely
    np.savez(path, **{**data, "S": s24})
    d = load_h36m_npz(path)
    assert not d.gt14_valid[0, 6] and d.gt14_valid[0].sum() == 13
    assert not d.gt14_valid[1].any() and d.gt14_valid[2:].all()
    m = joint_metrics(g14, d.gt14, valid14=d.gt14_valid)
    assert m["mpjpe_mm"] < 0.01 and m["pa_mpjpe_mm"] < 0.01


def test_h36m_17_joint_part_is_read(body, tmp_path):
    from eft.body import joints as J

    path = tmp_path / "h36m.npz"
    _, _, data = _spin_layout_h36m(body, path, part17=True)
    d = load_h36m_npz(path)
    kp = d.keypoints.numpy()
    for k, name in enumerate(J.H36M17_NAMES):
        slot = J.SPIN49_INDEX[J.H36M17_TO_SPIN[name]]
        np.testing.assert_allclose(kp[:, slot], data["part"][:, k], rtol=1e-6)
    assert kp[:, :25].sum() == 0


def test_eval_command_on_a_spin_layout_h36m_file(body, tmp_path, capsys):
    path = tmp_path / "h36m_valid_protocol1.npz"
    _spin_layout_h36m(body, path, part17=True)
    assert main(["eval", "default", "--h36m", str(path), "--json",
                 str(tmp_path / "r.json"), "--threads", "1"]) == 0
    res = json.loads((tmp_path / "r.json").read_text())["results"]["h36m_valid_protocol1"]
    assert res["n"] == 6 and np.isfinite(res["mpjpe_mm"])  # a 17-joint part is read


def test_a_regressor_used_with_another_body_model_is_named(tmp_path, capsys):
    """The shipped prior records the body it was trained with; ``eft eval`` with another
    body warns, naming both, and says nothing with its own."""
    from eft.models import body_mismatch, load_regressor
    from tests.helpers import other_body_model

    model = load_regressor("default")
    assert body_mismatch(model, "eft-open-body-v1") is None
    assert body_mismatch(model, "open_body_model.npz") is not None
    assert "'eft-open-body-v1'" in body_mismatch(model, "SMPL_NEUTRAL.pkl")
    assert body_mismatch(torch.nn.Linear(1, 1), "SMPL_NEUTRAL") is None  # nothing recorded
    other = other_body_model(tmp_path)
    argv = ["eval", "default", "--synthetic", "8", "--threads", "1"]
    assert main(argv) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(argv + ["--body", str(other)]) == 0
    err = capsys.readouterr().err
    assert "warning: the regressor was trained with body model 'eft-open-body-v1'" in err
    assert "'my-tall-body'" in err
