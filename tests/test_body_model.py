"""BodyModel on a synthetic SMPL-layout file: SPIN's keypoint map and LBS closed forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from eft.body import BodyModel, BodyModelError, BodyModelWarning
from eft.body.joints import SMPL24_PARENTS, SPIN49_INDEX, SPIN_EXTRA9_NAMES
from eft.body.model import SMPL_VERTEX_IDS
from eft.geometry.rotations import axis_angle_to_rotmat

V = 6890  # SMPL's vertex count, so SPIN's vertex ids apply


def fake_smpl_fields(seed: int = 0, num_vertices: int = V) -> dict[str, np.ndarray]:
    """A random but well-formed SMPL-layout model (not a body, just the algebra)."""
    rng = np.random.default_rng(seed)
    v_template = rng.normal(size=(num_vertices, 3)) * 0.3
    j_reg = np.zeros((24, num_vertices))
    for j in range(24):
        idx = rng.choice(num_vertices, size=8, replace=False)
        w = rng.random(8)
        j_reg[j, idx] = w / w.sum()
    weights = rng.random((num_vertices, 24)) ** 4
    weights /= weights.sum(1, keepdims=True)
    kintree = np.stack([np.array(SMPL24_PARENTS), np.arange(24)]).astype(np.int64)
    return {
        "v_template": v_template.astype(np.float32),
        "shapedirs": (rng.normal(size=(num_vertices, 3, 10)) * 0.01).astype(np.float32),
        "posedirs": (rng.normal(size=(num_vertices, 3, 207)) * 0.001).astype(np.float32),
        "J_regressor": j_reg.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": rng.integers(0, num_vertices, size=(100, 3)).astype(np.int64),
    }


def dense_regressor(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    reg = np.zeros((rows, V), dtype=np.float32)
    for r in range(rows):
        idx = rng.choice(V, size=5, replace=False)
        reg[r, idx] = 0.2
    return reg


@pytest.fixture()
def smpl_dir(tmp_path):
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **fake_smpl_fields())
    return tmp_path


def random_pose(batch: int, seed: int, scale: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 24, 3, generator=g) * scale


def test_missing_extra_regressor_is_named_and_masked(smpl_dir):
    with pytest.warns(BodyModelWarning) as record:
        body = BodyModel.load(smpl_dir)
    message = str(record[0].message)
    assert "J_regressor_extra" in message
    for name in SPIN_EXTRA9_NAMES:
        assert name in message
    valid = body.keypoint_valid.numpy()
    assert valid.sum() == 49 - 9
    assert not valid[[SPIN49_INDEX[n] for n in SPIN_EXTRA9_NAMES]].any()
    out = body(random_pose(2, 0))
    assert torch.all(out.keypoints[:, ~body.keypoint_valid] == 0)
    with pytest.raises(BodyModelError, match="J_regressor_h36m"):
        body.h36m_joints(out.vertices)


def test_spin_keypoint_map_matches_direct_computation(smpl_dir):
    extra, h36m = dense_regressor(9, 1), dense_regressor(17, 2)
    np.save(smpl_dir / "J_regressor_extra.npy", extra)
    np.save(smpl_dir / "J_regressor_h36m.npy", h36m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        body = BodyModel.load(smpl_dir)
    assert bool(body.keypoint_valid.all())
    assert body.keypoint_source == "SPIN"
    out = body(random_pose(3, 1), betas=torch.randn(3, 10))
    v, j, k = out.vertices, out.joints, out.keypoints
    ex = torch.einsum("rv,bvc->brc", torch.from_numpy(extra), v)
    expected = {
        "OP Nose": v[:, SMPL_VERTEX_IDS["nose"]],
        "OP RShoulder": j[:, 17], "OP MidHip": j[:, 0], "OP LAnkle": j[:, 7],
        "OP RHeel": v[:, SMPL_VERTEX_IDS["RHeel"]], "Right Ankle": j[:, 8],
        "Left Wrist": j[:, 20], "Right Hip": ex[:, 0], "Left Hip": ex[:, 1],
        "Top of Head (LSP)": ex[:, 3], "Head (H36M)": ex[:, 8],
        "Left Eye": v[:, SMPL_VERTEX_IDS["leye"]], "Right Ear": v[:, SMPL_VERTEX_IDS["rear"]],
    }
    for name, ref in expected.items():
        torch.testing.assert_close(k[:, SPIN49_INDEX[name]], ref, msg=name)
    torch.testing.assert_close(
        body.h36m_joints(v), torch.einsum("rv,bvc->brc", torch.from_numpy(h36m), v))


def test_lbs_closed_forms(smpl_dir):
    fields = fake_smpl_fields()
    with pytest.warns(BodyModelWarning):
        body = BodyModel.load(smpl_dir / "SMPL_NEUTRAL.npz")
    body = body.double()
    vt = torch.from_numpy(fields["v_template"]).double()
    jr = torch.from_numpy(fields["J_regressor"]).double()
    sd = torch.from_numpy(fields["shapedirs"]).double()
    zero = torch.zeros(1, 24, 3, dtype=torch.float64)
    out = body(zero)
    torch.testing.assert_close(out.vertices[0], vt)
    torch.testing.assert_close(out.joints[0], jr @ vt)
    betas = torch.linspace(-2, 2, 10, dtype=torch.float64)[None]
    shaped = vt + torch.einsum("vck,k->vc", sd, betas[0])
    torch.testing.assert_close(body(zero, betas).vertices[0], shaped)
    # A global rotation alone turns the body rigidly about the root joint.
    pose = zero.clone()
    pose[0, 0] = torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64)
    rot = axis_angle_to_rotmat(pose[0, 0])
    root = (jr @ vt)[0]
    torch.testing.assert_close(body(pose).vertices[0], (vt - root) @ rot.T + root)
    transl = torch.tensor([[0.1, 0.2, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(body(zero, transl=transl).vertices[0], vt + transl)


def test_pose_formats_agree(smpl_dir):
    with pytest.warns(BodyModelWarning):
        body = BodyModel.load(smpl_dir)
    aa = random_pose(2, 3)
    a = body(aa).vertices
    torch.testing.assert_close(body(aa.reshape(2, 72)).vertices, a)
    torch.testing.assert_close(body(axis_angle_to_rotmat(aa)).vertices, a)
    # Short betas are zero-padded.
    b5 = torch.randn(2, 5)
    torch.testing.assert_close(
        body(aa, b5).vertices, body(aa, torch.cat([b5, torch.zeros(2, 5)], 1)).vertices)
    with pytest.raises(ValueError, match="pose must be"):
        body(torch.zeros(2, 23, 3))


def test_bad_paths_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(BodyModelError, match="not found"):
        BodyModel.load(tmp_path / "nope.pkl")
    with pytest.raises(BodyModelError, match="SMPL_FEMALE"):
        BodyModel.load(tmp_path, gender="female")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(BodyModelError, match="not a readable"):
        BodyModel.load(tmp_path / "bad.npz")
    fields = fake_smpl_fields()
    del fields["weights"]
    np.savez(tmp_path / "partial.npz", **fields)
    with pytest.raises(BodyModelError, match="weights"):
        BodyModel.load(tmp_path / "partial.npz")


def test_env_var_selects_model(smpl_dir, monkeypatch):
    monkeypatch.setenv("EFT_BODY_MODEL", str(smpl_dir / "SMPL_NEUTRAL.npz"))
    with pytest.warns(BodyModelWarning):
        body = BodyModel.load()
    assert body.name == "SMPL_NEUTRAL"
    assert body.num_vertices == V
    assert len(body.content_hash) == 64


def _broken(fields: dict, what: str) -> dict:
    f = {k: np.array(v) for k, v in fields.items()}
    if what == "shapedirs":
        f["shapedirs"] = f["shapedirs"][..., :5]
    elif what == "v_template":
        f["v_template"][3, 1] = np.nan
    elif what == "f":
        f["f"][0, 0] = V + 5
    elif what == "kintree_table":
        f["kintree_table"] = f["kintree_table"][:, ::-1].copy()
    elif what == "weights":
        f["weights"] = f["weights"][:, :20]
    elif what == "text":
        f["v_template"] = np.full((V, 3), "a")
    elif what == "J_regressor_extra":
        f["J_regressor_extra"] = dense_regressor(9, 1)[:, :100]
    elif what == "vertex_ids":
        f["vertex_ids_names"] = np.array(["nose"])
        f["vertex_ids"] = np.array([V + 1])
    return f


@pytest.mark.parametrize("what, words", [
    ("shapedirs", "field 'shapedirs' has shape (6890, 3, 5)"),
    ("v_template", "field 'v_template' contains NaN or infinite values"),
    ("f", "field 'f' has vertex indices"),
    ("kintree_table", "not SMPL's kinematic tree"),
    ("weights", "field 'weights' has shape"),
    ("text", "field 'v_template' holds <U1 values, not numbers"),
    ("J_regressor_extra", "J_regressor_extra must be (9, 6890) numbers"),
    ("vertex_ids", "vertex_ids must be 1 integers in [0, 6890)"),
])
def test_a_broken_model_file_is_one_error_at_load(tmp_path, what, words):
    """A model file with a field of the wrong shape or values fails when it is loaded,
    naming the file and the field, not in the first forward pass (or with NaN bodies)."""
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **_broken(fake_smpl_fields(), what))
    with pytest.raises(BodyModelError) as exc:
        BodyModel.load(path)
    assert str(exc.value).startswith(str(path)) and words in str(exc.value), str(exc.value)


def test_the_file_kind_is_read_from_its_bytes(tmp_path):
    """A pickle named .npz, an .npz named .PKL or without a suffix load as what they
    are, equal to the same arrays under their usual name."""
    import pickle

    fields = fake_smpl_fields()
    np.savez(tmp_path / "ref.npz", **fields)
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(fields, protocol=2))
    np.savez(tmp_path / "zip.npz", **fields)
    (tmp_path / "zip.npz").rename(tmp_path / "ZIP.PKL")
    (tmp_path / "plain").write_bytes((tmp_path / "ref.npz").read_bytes())
    pose = random_pose(2, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BodyModelWarning)
        want = BodyModel.load(tmp_path / "ref.npz")(pose).vertices
        for name in ("pickle.npz", "ZIP.PKL", "plain"):
            got = BodyModel.load(tmp_path / name)(pose).vertices
            torch.testing.assert_close(got, want, rtol=0, atol=0)
