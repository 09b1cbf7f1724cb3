"""Importing SMPL-layout .pkl files without chumpy (and refusing anything else in a pickle)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from eft.body.joints import SMPL24_PARENTS
from eft.body.smpl_import import (
    REQUIRED_FIELDS,
    SafeModelUnpickler,
    SmplImportError,
    gender_from_filename,
    import_smpl,
    load_smpl_pkl,
    summarize,
    validate_smpl_fields,
)
from tests.helpers import require_module

V = 30  # a small SMPL-layout model: same fields and relations, fewer vertices
F = 40
SMPL_PKL_NAME = "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"


# --------------------------------------------------------------------------- fake chumpy / scipy

def _fake_class(module: str, name: str, init_state: bool = True) -> type:
    """A class that pickles like chumpy's: NEWOBJ(cls) + BUILD(__dict__ minus caches)."""

    def __init__(self, **state):
        self.__dict__.update(state)
        if init_state:  # what every chumpy object carries besides its terms
            self.__dict__.update(_dirty_vars=set(), _itr=None, _depends_on_deps={},
                                 _make_dense=False, _make_sparse=False,
                                 _parents=object(), _cache=object())

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_parents", None)  # chumpy drops its weakref caches when pickling
        d.pop("_cache", None)
        return d

    cls = type(name, (), {"__init__": __init__, "__getstate__": __getstate__})
    cls.__module__ = module
    cls.__qualname__ = name
    return cls


def _fake_module(name: str, *classes: type) -> types.ModuleType:
    mod = types.ModuleType(name)
    for c in classes:
        setattr(mod, c.__qualname__, c)
    return mod


Ch = _fake_class("chumpy.ch", "Ch")
Select = _fake_class("chumpy.reordering", "Select")
Add = _fake_class("chumpy.ch_ops", "add")
Dot = _fake_class("chumpy.ch_ops", "dot")
# scipy's csc_matrix as old scipy pickled it (module scipy.sparse.csc), without scipy
FakeCsc = _fake_class("scipy.sparse.csc", "csc_matrix", init_state=False)

FAKE_MODULES = {
    "chumpy": _fake_module("chumpy"),
    "chumpy.ch": _fake_module("chumpy.ch", Ch),
    "chumpy.reordering": _fake_module("chumpy.reordering", Select),
    "chumpy.ch_ops": _fake_module("chumpy.ch_ops", Add, Dot),
    "scipy.sparse.csc": _fake_module("scipy.sparse.csc", FakeCsc),
}
if importlib.util.find_spec("scipy") is None:  # pickle imports the parent packages too
    FAKE_MODULES["scipy"] = _fake_module("scipy")
    FAKE_MODULES["scipy.sparse"] = _fake_module("scipy.sparse")


@contextlib.contextmanager
def fake_modules():
    """Register the stand-in modules in sys.modules only while pickling."""
    saved = {name: sys.modules.get(name) for name in FAKE_MODULES}
    sys.modules.update(FAKE_MODULES)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def chumpy_is_absent() -> bool:
    return "chumpy" not in sys.modules and importlib.util.find_spec("chumpy") is None


def fake_csc(dense: np.ndarray) -> FakeCsc:
    rows, cols = np.nonzero(dense.T)  # column-major order: (col, row) pairs
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[1]))])
    return FakeCsc(_shape=dense.shape, maxprint=50, format="csc",
                   indices=cols.astype(np.int32), indptr=indptr.astype(np.int32),
                   data=dense.T[rows, cols])


def smpl_fields(seed: int = 0) -> dict[str, np.ndarray]:
    """Random but valid SMPL-layout arrays with V vertices, in the official dtypes."""
    rng = np.random.default_rng(seed)
    weights = rng.random((V, 24)) ** 3
    weights /= weights.sum(axis=1, keepdims=True)
    j_reg = np.zeros((24, V))
    for j in range(24):
        idx = rng.choice(V, size=3, replace=False)
        w = rng.random(3)
        j_reg[j, idx] = w / w.sum()
    parents = np.array(SMPL24_PARENTS, dtype=np.int64)
    parents[0] = 4294967295  # the official files store the root's parent as uint32 -1
    faces = np.stack([rng.choice(V, size=3, replace=False) for _ in range(F)])
    return {
        "v_template": rng.normal(size=(V, 3)) * 0.3,
        "shapedirs": rng.normal(size=(V, 3, 10)) * 0.01,
        "posedirs": rng.normal(size=(V, 3, 207)) * 0.001,
        "J_regressor": j_reg,
        "weights": weights,
        "kintree_table": np.stack([parents, np.arange(24)]),
        "f": faces.astype(np.uint32),
    }


def official_style_dict(fields: dict[str, np.ndarray], **override) -> dict:
    """The dict an official SMPL pkl holds: chumpy arrays, a csc J_regressor, extras."""
    d = {
        "v_template": Ch(x=fields["v_template"]),
        "shapedirs": Ch(x=fields["shapedirs"]),
        "posedirs": fields["posedirs"],
        "J_regressor": fake_csc(fields["J_regressor"]),
        "weights": fields["weights"],
        "kintree_table": fields["kintree_table"],
        "f": fields["f"],
        "J": Ch(x=fields["J_regressor"] @ fields["v_template"]),
        "J_regressor_prior": fake_csc(fields["J_regressor"]),
        "weights_prior": fields["weights"],
        "vert_sym_idxs": np.arange(V),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "pose_training_info": {"num_poses": 1786, "num_subjects": 40},
    }
    d.update(override)
    return d


def write_pickle(path, obj, protocol: int = 2, old_numpy_names: bool = True) -> None:
    with fake_modules():
        data = pickle.dumps(obj, protocol=protocol)
    if old_numpy_names:  # the official files name numpy.core (numpy 1.x / Python 2)
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(data)
    assert chumpy_is_absent()


@pytest.fixture()
def fields():
    return smpl_fields()


@pytest.fixture()
def smpl_pkl(tmp_path, fields):
    path = tmp_path / SMPL_PKL_NAME
    write_pickle(path, official_style_dict(fields))
    return path


# --------------------------------------------------------------------------- happy path

def test_load_without_chumpy(smpl_pkl, fields):
    assert chumpy_is_absent()
    with pytest.raises(ImportError):
        importlib.import_module("chumpy")
    loaded = load_smpl_pkl(smpl_pkl)
    assert chumpy_is_absent()
    assert set(loaded) == set(REQUIRED_FIELDS)
    for k in REQUIRED_FIELDS:
        assert type(loaded[k]) is np.ndarray
        np.testing.assert_array_equal(loaded[k], fields[k], err_msg=k)
    assert validate_smpl_fields(loaded) == V


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_import_writes_plain_npz(tmp_path, fields, protocol):
    src = tmp_path / SMPL_PKL_NAME
    write_pickle(src, official_style_dict(fields), protocol=protocol)
    dst = tmp_path / "out" / "smpl_neutral.npz"
    summary = import_smpl(src, dst)
    assert not list(dst.parent.glob("*.tmp"))
    with np.load(dst, allow_pickle=False) as npz:
        assert set(npz.files) == set(REQUIRED_FIELDS)
        for k in REQUIRED_FIELDS:
            np.testing.assert_array_equal(npz[k], fields[k], err_msg=k)
        assert npz["f"].dtype == np.int64 and npz["kintree_table"].dtype == np.int64
        assert npz["J_regressor"].shape == (24, V)
    assert f"vertices V: {V}" in summary
    assert f"faces F: {F}" in summary
    assert "10 betas" in summary
    assert "gender (from file name): neutral" in summary
    assert f"{np.count_nonzero(fields['J_regressor'])} non-zeros" in summary
    assert str(dst) in summary


def test_imported_npz_runs_in_smplx(tmp_path, smpl_pkl, fields):
    smplx = pytest.importorskip("smplx")
    dst = tmp_path / "smpl.npz"
    import_smpl(smpl_pkl, dst)
    with np.load(dst, allow_pickle=False) as npz:
        struct = smplx.utils.Struct(**dict(npz))
    vertex_ids = {"nose": 0, "reye": 1, "leye": 2, "rear": 3, "lear": 4, "LBigToe": 5,
                  "LSmallToe": 6, "LHeel": 7, "RBigToe": 8, "RSmallToe": 9, "RHeel": 10}
    model = smplx.SMPL(model_path="unused", data_struct=struct, vertex_ids=vertex_ids,
                       use_hands=False, dtype=torch.float64)
    with torch.no_grad():
        rest = model()
        posed = model(betas=torch.full((1, 10), 0.5, dtype=torch.float64),
                      body_pose=torch.full((1, 69), 0.1, dtype=torch.float64))
    assert rest.vertices.shape == (1, V, 3)
    assert torch.isfinite(posed.vertices).all() and torch.isfinite(posed.joints).all()
    # zero pose and shape give back the template: the arrays went through unchanged
    np.testing.assert_allclose(rest.vertices[0].numpy(), fields["v_template"], atol=1e-12)
    np.testing.assert_allclose(
        rest.joints[0, :24].numpy(), fields["J_regressor"] @ fields["v_template"], atol=1e-6
    )


def test_imported_model_loads_through_body_model(tmp_path, smpl_pkl, fields):
    """Both the converted npz and the chumpy pkl itself load through BodyModel."""
    from eft.body import BodyModel, BodyModelWarning

    dst = tmp_path / "SMPL_NEUTRAL.npz"
    import_smpl(smpl_pkl, dst)
    for src in (dst, smpl_pkl):
        with pytest.warns(BodyModelWarning):  # no vertex ids / J_regressor_extra for V=30
            body = BodyModel.load(src)
        assert chumpy_is_absent()
        body = body.double()
        with torch.no_grad():
            out = body(torch.zeros(1, 24, 3, dtype=torch.float64))
        np.testing.assert_allclose(out.vertices[0].numpy(), fields["v_template"], atol=1e-12)
        np.testing.assert_allclose(
            out.joints[0].numpy(), fields["J_regressor"] @ fields["v_template"], atol=1e-6)
        # skeleton-based SPIN keypoints are defined even without the extras
        assert int(body.keypoint_valid.sum()) > 0


def test_npz_input_is_validated_and_reimported(tmp_path, smpl_pkl, fields):
    first = tmp_path / "a.npz"
    import_smpl(smpl_pkl, first)
    second = tmp_path / "b.npz"
    summary = import_smpl(first, second)
    assert "gender (from file name): unknown" in summary
    with np.load(second, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["weights"], fields["weights"])


def test_real_scipy_csc_matrix(tmp_path, fields):
    sp = require_module("scipy.sparse", "pip install -e '.[datasets]'")
    for kind in (sp.csc_matrix, sp.csr_matrix):
        path = tmp_path / f"{kind.__name__}.pkl"
        write_pickle(path, official_style_dict(fields, J_regressor=kind(fields["J_regressor"])))
        np.testing.assert_array_equal(load_smpl_pkl(path)["J_regressor"], fields["J_regressor"])


def test_chumpy_expressions_are_evaluated(tmp_path, fields):
    sd = fields["shapedirs"]
    half = Ch(x=sd / 2)
    expr = Add(a=half, b=Ch(x=sd - sd / 2))
    flat = Ch(x=fields["v_template"].ravel())
    select = Select(a=flat, idxs=np.arange(3 * V), preferred_shape=(V, 3))
    path = tmp_path / "ops.pkl"
    write_pickle(path, official_style_dict(fields, shapedirs=expr, v_template=select))
    loaded = load_smpl_pkl(path)
    np.testing.assert_allclose(loaded["shapedirs"], sd, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(loaded["v_template"], fields["v_template"])


def test_unknown_chumpy_op_refused_only_where_needed(tmp_path, fields):
    dot = Dot(a=Ch(x=np.eye(3)), b=Ch(x=fields["v_template"].T))
    extra = tmp_path / "extra.pkl"
    write_pickle(extra, official_style_dict(fields, J=dot))  # not a field we need
    load_smpl_pkl(extra)
    needed = tmp_path / "needed.pkl"
    write_pickle(needed, official_style_dict(fields, v_template=dot))
    with pytest.raises(SmplImportError, match=r"field 'v_template' is a chumpy expression "
                                              r"\(chumpy\.ch_ops\.dot\)"):
        load_smpl_pkl(needed)


def test_python2_style_pickle():
    """Protocol 0 as Python 2 wrote it: copy_reg, __builtin__, str array data (latin1)."""
    arr = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    raw = "".join(f"\\x{b:02x}" for b in arr.tobytes()).encode()
    array_pickle = (
        b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\ntS'b'\ntR"
        b"(I1\n(I2\nI3\ntcnumpy\ndtype\n(S'f8'\nI0\nI1\ntR(I3\nS'<'\nNNNI-1\nI-1\nI0\ntb"
        b"I00\nS'" + raw + b"'\ntb"
    )
    ch_pickle = (
        b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\nc__builtin__\nobject\nNtR"
        b"(dS'x'\n" + array_pickle + b"sS'_dirty_vars'\nc__builtin__\nset\n((ltRsb"
    )
    data = b"(dS'shapedirs'\n" + ch_pickle + b"sS'plain'\n" + array_pickle + b"s."
    out = SafeModelUnpickler(io.BytesIO(data), encoding="latin1").load()
    np.testing.assert_array_equal(out["plain"], arr)
    np.testing.assert_array_equal(out["shapedirs"].state["x"], arr)
    assert chumpy_is_absent()


@pytest.mark.parametrize(
    ("name", "gender"),
    [(SMPL_PKL_NAME, "neutral"), ("SMPL_NEUTRAL.pkl", "neutral"), ("SMPL_FEMALE.pkl", "female"),
     ("SMPL_MALE.pkl", "male"), ("basicModel_f_lbs_10_207_0_v1.0.0.pkl", "female"),
     ("basicmodel_m_lbs_10_207_0_v1.0.0.pkl", "male"), ("model.pkl", "unknown"), (None, "unknown")],
)
def test_gender_from_filename(name, gender):
    assert gender_from_filename(name) == gender


def test_summarize_without_source(fields):
    text = summarize(fields)
    assert "gender (from file name): unknown" in text and f"vertices V: {V}" in text


# --------------------------------------------------------------------------- refusals

def test_not_a_pickle(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a model\n")
    rnd = tmp_path / "random.pkl"
    rnd.write_bytes(b"\x00" + np.random.default_rng(0).bytes(4096))
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    for path in (text, rnd, empty):
        with pytest.raises(SmplImportError, match="is not a pickle file") as info:
            load_smpl_pkl(path)
        assert "\n" not in str(info.value)


def test_truncated_pickle(tmp_path, smpl_pkl):
    data = smpl_pkl.read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 10):
        path = tmp_path / f"cut{cut}.pkl"
        path.write_bytes(data[:cut])
        with pytest.raises(SmplImportError, match="is not a pickle file"):
            load_smpl_pkl(path)


def test_unreadable(tmp_path):
    with pytest.raises(SmplImportError, match="cannot read"):
        load_smpl_pkl(tmp_path / "missing.pkl")
    with pytest.raises(SmplImportError, match="cannot read"):
        load_smpl_pkl(tmp_path)


def test_non_dict_pickle(tmp_path):
    path = tmp_path / "list.pkl"
    write_pickle(path, [np.zeros(3)])
    with pytest.raises(SmplImportError, match="does not hold a model dictionary.*list"):
        load_smpl_pkl(path)


def test_missing_field(tmp_path, fields):
    d = official_style_dict(fields)
    del d["weights"]
    path = tmp_path / "noweights.pkl"
    write_pickle(path, d)
    with pytest.raises(SmplImportError, match="missing field 'weights'"):
        import_smpl(path, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def _bad(fields, key, value):
    out = dict(fields)
    out[key] = value
    return out


@pytest.mark.parametrize(
    ("key", "make", "message"),
    [
        ("v_template", lambda f: f["v_template"][:10],
         r"field 'v_template' has shape \(10, 3\), expected \(V, 3\) where V=30"),
        ("v_template", lambda f: f["v_template"][:, :2], r"expected \(V, 3\)"),
        ("shapedirs", lambda f: f["shapedirs"][..., :9], r"expected \(V, 3, >=10\)"),
        ("posedirs", lambda f: f["posedirs"][..., :200], r"expected \(V, 3, 207\)"),
        ("J_regressor", lambda f: f["J_regressor"][:23], r"expected \(24, V\)"),
        ("weights", lambda f: f["weights"][:, :23], r"expected \(V, 24\)"),
        ("kintree_table", lambda f: f["kintree_table"][:, :23], r"expected \(2, 24\)"),
        ("f", lambda f: f["f"][:, :2], r"expected \(F, 3\)"),
        ("f", lambda f: f["f"].astype(np.float64), "expected integers"),
        ("f", lambda f: f["f"] + V, r"vertex indices in .*expected \[0, 29\]"),
        ("kintree_table", lambda f: f["kintree_table"][:, ::-1].copy(), "kinematic tree"),
        ("posedirs", lambda f: np.full_like(f["posedirs"], np.nan), "NaN"),
    ],
)
def test_wrong_fields(tmp_path, fields, key, make, message):
    bad = _bad(fields, key, make(fields))
    with pytest.raises(SmplImportError, match=message) as info:
        validate_smpl_fields(bad)
    assert "\n" not in str(info.value)
    # the same error through the file path, from a pickle
    path = tmp_path / "bad.pkl"
    write_pickle(path, official_style_dict(fields, **{key: bad[key]}))
    with pytest.raises(SmplImportError, match=message):
        import_smpl(path, tmp_path / "bad.npz")


def test_npz_with_object_array_refused(tmp_path, fields):
    path = tmp_path / "obj.npz"
    np.savez(path, **{**fields, "weights": np.array([None, 1], dtype=object)})
    with pytest.raises(SmplImportError, match="not a plain-array .npz"):
        load_smpl_pkl(path)


class _RunsCommand:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_refused(tmp_path, fields, protocol):
    import os

    marker = tmp_path / "pwned"
    attacks = {
        "posix.system": _RunsCommand(os.system, f"touch {marker}"),
        "builtins.eval": _RunsCommand(eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": _RunsCommand(exec, f"open({str(marker)!r}, 'w').close()"),
    }
    for refused, payload in attacks.items():
        # at top level, and hidden inside a chumpy object's state
        for obj in ({"v_template": payload}, official_style_dict(fields, J=Ch(x=payload))):
            path = tmp_path / "evil.pkl"
            write_pickle(path, obj, protocol=protocol)
            with pytest.raises(SmplImportError, match=f"refused class {refused}"):
                import_smpl(path, tmp_path / "evil.npz")
            assert not marker.exists()
    assert not (tmp_path / "evil.npz").exists()


def test_refused_reconstructor_and_codecs():
    # copyreg._reconstructor may only build our stand-ins, _codecs.encode only latin-1
    evil = b"ccopy_reg\n_reconstructor\n(c__builtin__\nobject\nc__builtin__\nobject\nNtR."
    with pytest.raises(SmplImportError, match="refused"):
        SafeModelUnpickler(io.BytesIO(evil), encoding="latin1").load()
    evil = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(SmplImportError, match="refused"):
        SafeModelUnpickler(io.BytesIO(evil), encoding="latin1").load()


def test_inconsistent_sparse_refused(tmp_path, fields):
    bad = fake_csc(fields["J_regressor"])
    bad.indptr = bad.indptr[:-1]
    path = tmp_path / "badcsc.pkl"
    write_pickle(path, official_style_dict(fields, J_regressor=bad))
    with pytest.raises(SmplImportError, match=r"scipy\.sparse\.csc\.csc_matrix is inconsistent"):
        load_smpl_pkl(path)
    huge = fake_csc(fields["J_regressor"])
    huge._shape = (10**6, 10**6)
    write_pickle(path, official_style_dict(fields, J_regressor=huge))
    with pytest.raises(SmplImportError, match="implausible shape"):
        load_smpl_pkl(path)


def test_broken_chumpy_select_is_a_clean_error(tmp_path, fields):
    select = Select(a=Ch(x=np.zeros(5)), idxs=np.arange(3 * V), preferred_shape=(V, 3))
    path = tmp_path / "badselect.pkl"
    write_pickle(path, official_style_dict(fields, v_template=select))
    with pytest.raises(SmplImportError, match="field 'v_template' cannot be read as an array"):
        load_smpl_pkl(path)


def test_regressors_carried_in_a_pickle_are_used(tmp_path, fields):
    """SPIN's extra and H36M regressors stored inside the pickle (sparse or dense) load with
    it, survive ``import_smpl``, and give the same body as the same arrays beside it."""
    from eft.body import BodyModel, BodyModelWarning

    rng = np.random.default_rng(3)
    extra = rng.random((9, V))
    extra /= extra.sum(1, keepdims=True)
    h36m = rng.random((17, V))
    h36m /= h36m.sum(1, keepdims=True)
    src = tmp_path / SMPL_PKL_NAME
    write_pickle(src, official_style_dict(
        fields, J_regressor_extra=fake_csc(extra), J_regressor_h36m=h36m))
    loaded = load_smpl_pkl(src)
    np.testing.assert_array_equal(loaded["J_regressor_extra"], extra)
    np.testing.assert_array_equal(loaded["J_regressor_h36m"], h36m)
    dst = tmp_path / "out" / "smpl.npz"
    import_smpl(src, dst)
    with np.load(dst, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["J_regressor_extra"], extra)
        np.testing.assert_array_equal(npz["J_regressor_h36m"], h36m)
    plain = tmp_path / "plain"  # the required fields only, the regressors as SPIN's .npy
    plain.mkdir()
    write_pickle(plain / SMPL_PKL_NAME, official_style_dict(fields))
    np.save(plain / "J_regressor_extra.npy", extra)
    np.save(plain / "J_regressor_h36m.npy", h36m)
    pose = torch.as_tensor(rng.normal(0, 0.3, (2, 24, 3)))
    outs = []
    for path in (src, dst, plain / SMPL_PKL_NAME):
        with pytest.warns(BodyModelWarning):  # V=30: no landmark vertex ids
            body = BodyModel.load(path).double()
        assert body.h36m_regressor is not None
        with torch.no_grad():
            out = body(pose)
        outs.append((out.keypoints.numpy(), body.h36m_joints(out.vertices).numpy()))
    for kp, hj in outs[1:]:
        np.testing.assert_array_equal(kp, outs[0][0])
        np.testing.assert_array_equal(hj, outs[0][1])
    # the extras count: without them more keypoints are masked invalid
    write_pickle(tmp_path / "bare.pkl", official_style_dict(fields))
    with pytest.warns(BodyModelWarning):
        bare = BodyModel.load(tmp_path / "bare.pkl")
        full = BodyModel.load(src)
    assert int(full.keypoint_valid.sum()) > int(bare.keypoint_valid.sum())
