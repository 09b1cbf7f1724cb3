"""Import an official SMPL model file (.pkl) without chumpy, and validate SMPL-layout models.

The official SMPL pickles were written by Python 2 and hold some arrays as chumpy
objects (``chumpy.ch.Ch``; occasionally ``chumpy.reordering.Select`` or a
``chumpy.ch_ops`` expression) and ``J_regressor`` as a ``scipy.sparse.csc_matrix``.
chumpy does not run on current numpy/Python, and unpickling runs whatever callables
the file names.  So this module unpickles with an allow-list: numpy's array
reconstruction, stand-ins for scipy's csc/csr matrices and for chumpy classes, and
nothing else.  Any other global in the file (``os.system``, ``builtins.eval``, ...)
is refused with :class:`SmplImportError` before it can be called.  Neither chumpy
nor scipy is needed.

The result is written as a plain ``.npz`` (loadable with ``allow_pickle=False``)
holding exactly the fields a SMPL body model needs.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from eft.body.joints import SMPL24_PARENTS
from eft.errors import EftError

NUM_JOINTS = 24
NUM_POSE_BASIS = 9 * (NUM_JOINTS - 1)  # 207
MIN_BETAS = 10

REQUIRED_FIELDS: tuple[str, ...] = (
    "v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
)
# Keypoint regressors a model file may carry beside SMPL's fields (SPIN's extra 9 and
# H36M-17, the open model's anatomical COCO); kept when present, checked by the loader.
OPTIONAL_FIELDS: tuple[str, ...] = ("J_regressor_extra", "J_regressor_h36m", "J_regressor_coco")


class SmplImportError(EftError):
    """A model file that cannot be imported; the message is one line and names the problem.

    An :class:`eft.errors.EftError` (hence an ``Exception``), so the CLI prints it as one line.
    """


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------
# Stand-ins for the classes an official SMPL pickle refers to.
# ---------------------------------------------------------------------------

_MAX_DENSE_ENTRIES = 1 << 28  # a dense J_regressor larger than this is not a body model


class _SparseStandIn:
    """Records a pickled scipy csc/csr matrix (data, indices, indptr, shape)."""

    scipy_class = "scipy.sparse.csc_matrix"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise SmplImportError(f"unexpected pickled state for {self.scipy_class}")
        self.state = state

    def to_dense(self) -> np.ndarray:
        st = getattr(self, "state", None)
        if st is None:
            raise SmplImportError(f"pickled {self.scipy_class} has no state")
        try:
            shape = tuple(int(s) for s in st.get("_shape", st.get("shape")))
            data = np.asarray(st["data"])
            indices = np.asarray(st["indices"], dtype=np.int64)
            indptr = np.asarray(st["indptr"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as e:
            raise SmplImportError(
                f"pickled {self.scipy_class} is incomplete ({_one_line(e)})"
            ) from None
        if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] > _MAX_DENSE_ENTRIES:
            raise SmplImportError(f"pickled {self.scipy_class} has an implausible shape {shape}")
        csc = self.scipy_class.rsplit(".", 1)[-1].startswith("csc")
        n_major, n_minor = (shape[1], shape[0]) if csc else shape
        if (
            data.ndim != 1 or indices.shape != data.shape or indptr.shape != (n_major + 1,)
            or indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr) < 0)
            or (len(indices) and (indices.min() < 0 or indices.max() >= n_minor))
        ):
            raise SmplImportError(f"pickled {self.scipy_class} is inconsistent")
        dense = np.zeros(shape, dtype=data.dtype if data.size else np.float64)
        major = np.repeat(np.arange(n_major), np.diff(indptr))
        rows, cols = (indices, major) if csc else (major, indices)
        np.add.at(dense, (rows, cols), data)  # duplicates add up, as in scipy
        return dense


_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "csc_array", "csr_array"}
_sparse_classes: dict[str, type] = {}


def _sparse_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _sparse_classes:
        _sparse_classes[key] = type(name, (_SparseStandIn,), {"scipy_class": key})
    return _sparse_classes[key]


class _ChumpyStandIn:
    """Records a pickled chumpy object: chumpy pickles ``__dict__`` as the state."""

    chumpy_class = "chumpy.ch.Ch"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0]
        if not isinstance(state, dict):
            raise SmplImportError(f"unexpected pickled state for {self.chumpy_class}")
        self.state = state


_chumpy_classes: dict[str, type] = {}


def _chumpy_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _chumpy_classes:
        _chumpy_classes[key] = type(name, (_ChumpyStandIn,), {"chumpy_class": key})
    return _chumpy_classes[key]


def _chumpy_value(obj: _ChumpyStandIn, field: str, depth: int = 0) -> np.ndarray:
    """The array a chumpy object stands for.

    ``Ch`` keeps its value in ``x``.  The few expressions that appear in SMPL-family
    files (add/subtract/multiply, Select, Reshape, transpose) are evaluated from their
    operands; anything else is refused rather than guessed.
    """
    if depth > 64:
        raise SmplImportError(f"field '{field}': chumpy expression nested too deeply")
    st = getattr(obj, "state", None)
    kind = obj.chumpy_class.rsplit(".", 1)[-1]
    if st is None:
        raise SmplImportError(f"field '{field}': pickled {obj.chumpy_class} has no state")

    def term(key: str) -> np.ndarray:
        if key not in st:
            raise SmplImportError(
                f"field '{field}': pickled {obj.chumpy_class} lacks its operand '{key}'"
            )
        return _as_array(st[key], field, depth + 1)

    if kind == "Ch":
        return term("x")
    if kind in ("add", "subtract", "multiply"):
        return getattr(np, kind)(term("a"), term("b"))
    if kind == "Select":
        out = term("a").ravel()[np.asarray(st.get("idxs"), dtype=np.int64)]
        shape = st.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    if kind == "Reshape":
        return term("a").reshape(st.get("newshape"))
    if kind == "transpose":
        return np.transpose(term("a"), st.get("axes"))
    raise SmplImportError(
        f"field '{field}' is a chumpy expression ({obj.chumpy_class}) that cannot be "
        "evaluated without chumpy; re-save the model with plain numpy arrays"
    )


def _as_array(value: Any, field: str, depth: int = 0) -> np.ndarray:
    """Plain numpy array for a loaded field value (ndarray, stand-in, or number list)."""
    if isinstance(value, _ChumpyStandIn):
        arr = _chumpy_value(value, field, depth)
    elif isinstance(value, _SparseStandIn):
        arr = value.to_dense()
    elif isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple, int, float, np.generic)):
        arr = np.asarray(value)
    else:
        raise SmplImportError(
            f"field '{field}' holds a {type(value).__name__}, not an array"
        )
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise SmplImportError(f"field '{field}' is not a numeric array (dtype {arr.dtype})")
    return np.array(arr)  # own, writeable, C-contiguous copy


# ---------------------------------------------------------------------------
# The restricted unpickler.
# ---------------------------------------------------------------------------

def _numpy_multiarray() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _numpy_numeric() -> Any:
    try:
        from numpy._core import numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import numeric  # type: ignore[no-redef]
    return numeric


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles of bytes use it; latin-1 only."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise SmplImportError(f"refused class _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1), for our stand-in classes only."""
    if base is not object or not (
        isinstance(cls, type) and issubclass(cls, (_ChumpyStandIn, _SparseStandIn))
    ):
        raise SmplImportError("refused class copyreg._reconstructor for a non-model object")
    return object.__new__(cls)


_PY2_MODULES = {"copy_reg": "copyreg", "__builtin__": "builtins"}
_SAFE_BUILTINS: dict[str, type] = {"object": object, "set": set, "frozenset": frozenset}


class SafeModelUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy arrays, sparse and chumpy stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        multiarray = _numpy_multiarray()
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "_reconstruct":
                return multiarray._reconstruct
            if name == "scalar":
                return multiarray.scalar
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _numpy_numeric()._frombuffer  # protocol-5 arrays (Python 3 re-saves)
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if module == "copyreg" and name == "_reconstructor":
            return _reconstructor
        if module == "builtins" and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]  # chumpy's state holds a set (_dirty_vars)
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and (
            name in _SPARSE_NAMES
        ):
            return _sparse_class(module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _chumpy_class(module, name)
        raise SmplImportError(
            f"refused class {module}.{name}: a SMPL model file has no reason to contain it"
        )


# ---------------------------------------------------------------------------
# Loading and validation.
# ---------------------------------------------------------------------------

def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            obj = SafeModelUnpickler(fh, encoding="latin1").load()
    except SmplImportError:
        raise
    except OSError as e:
        raise SmplImportError(f"cannot read {path}: {e.strerror or _one_line(e)}") from None
    except (EOFError, pickle.UnpicklingError) as e:
        msg = _one_line(e) or type(e).__name__
        if isinstance(e, EOFError) or "truncated" in msg:
            raise SmplImportError(
                f"{path} is not a pickle file or is truncated ({msg})"
            ) from None
        raise SmplImportError(f"{path} is not a pickle file ({msg})") from None
    except Exception as e:  # corrupt opcodes surface as many exception types
        raise SmplImportError(
            f"{path} is not a pickle file or is corrupt ({type(e).__name__}: {_one_line(e)})"
        ) from None
    if not isinstance(obj, dict):
        raise SmplImportError(
            f"{path} does not hold a model dictionary (it unpickles to {type(obj).__name__})"
        )
    return obj


def _load_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except OSError as e:
        raise SmplImportError(f"cannot read {path}: {e.strerror or _one_line(e)}") from None
    except ValueError as e:
        raise SmplImportError(f"{path} is not a plain-array .npz ({_one_line(e)})") from None
    except Exception as e:
        raise SmplImportError(
            f"{path} is not a valid .npz file ({type(e).__name__}: {_one_line(e)})"
        ) from None


def load_smpl_pkl(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the required fields of a SMPL-layout model as plain numpy arrays.

    Accepts an official SMPL ``.pkl`` (chumpy / scipy objects handled without those
    packages) or an ``.npz`` (read with ``allow_pickle=False``).  Only the fields in
    ``REQUIRED_FIELDS`` are returned, with those of ``OPTIONAL_FIELDS`` the file holds;
    regressors are dense.  Shapes are not checked here; see :func:`validate_smpl_fields`.
    """
    path = Path(path)
    if not path.is_file():
        why = "not a regular file" if path.exists() else "no such file"
        raise SmplImportError(f"cannot read {path}: {why}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    raw = _load_npz(path) if magic.startswith(b"PK") else _load_pickle(path)
    missing = [k for k in REQUIRED_FIELDS if k not in raw]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        names = ", ".join(f"'{k}'" for k in missing)
        raise SmplImportError(f"missing field{plural} {names} in {path}")
    out = {}
    for k in REQUIRED_FIELDS + tuple(k for k in OPTIONAL_FIELDS if k in raw):
        try:
            out[k] = _as_array(raw[k], k)
        except SmplImportError:
            raise
        except (ValueError, TypeError, IndexError) as e:  # e.g. a chumpy Select gone wrong
            raise SmplImportError(
                f"field '{k}' cannot be read as an array ({type(e).__name__}: {_one_line(e)})"
            ) from None
    return out


def _shape_error(field: str, arr: np.ndarray, expected: str, num_verts: int | None) -> None:
    where = f" where V={num_verts}" if num_verts is not None and "V" in expected else ""
    raise SmplImportError(
        f"field '{field}' has shape {tuple(arr.shape)}, expected {expected}{where}"
    )


def validate_smpl_fields(fields: dict[str, np.ndarray]) -> int:
    """Check the SMPL-layout relations between the fields; return the vertex count V.

    v_template (V,3), shapedirs (V,3,>=10), posedirs (V,3,207), J_regressor (24,V),
    weights (V,24), kintree_table (2,24) with SMPL's parents, f (F,3) integer with
    vertex indices in [0, V).  V is the value most fields agree on, so a message names
    the odd field out.  All float fields must be finite.
    """
    missing = [k for k in REQUIRED_FIELDS if k not in fields]
    if missing:
        raise SmplImportError(f"missing field '{missing[0]}'")
    a = {k: np.asarray(fields[k]) for k in REQUIRED_FIELDS}
    for k, v in a.items():
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise SmplImportError(f"field '{k}' holds {v.dtype} values, not numbers")

    # V as voted by every field that carries it.
    votes = []
    for k, axis in (("v_template", 0), ("shapedirs", 0), ("posedirs", 0), ("weights", 0),
                    ("J_regressor", 1)):
        if a[k].ndim > axis:
            votes.append(int(a[k].shape[axis]))
    num_verts = Counter(votes).most_common(1)[0][0] if votes else None
    V = num_verts

    def check(k: str, ok: bool, expected: str) -> None:
        if not ok:
            _shape_error(k, a[k], expected, V)

    s = {k: a[k].shape for k in a}
    check("v_template", s["v_template"] == (V, 3), "(V, 3)")
    check("shapedirs", len(s["shapedirs"]) == 3 and s["shapedirs"][:2] == (V, 3)
          and s["shapedirs"][2] >= MIN_BETAS, f"(V, 3, >={MIN_BETAS})")
    check("posedirs", s["posedirs"] == (V, 3, NUM_POSE_BASIS), f"(V, 3, {NUM_POSE_BASIS})")
    check("J_regressor", s["J_regressor"] == (NUM_JOINTS, V), f"({NUM_JOINTS}, V)")
    check("weights", s["weights"] == (V, NUM_JOINTS), f"(V, {NUM_JOINTS})")
    check("kintree_table", s["kintree_table"] == (2, NUM_JOINTS), f"(2, {NUM_JOINTS})")
    check("f", len(s["f"]) == 2 and s["f"][1] == 3 and s["f"][0] > 0, "(F, 3)")

    for k in REQUIRED_FIELDS:
        if np.issubdtype(a[k].dtype, np.floating) and not np.all(np.isfinite(a[k])):
            raise SmplImportError(f"field '{k}' contains NaN or infinite values")
    for k in ("f", "kintree_table"):
        if not np.issubdtype(a[k].dtype, np.integer):
            raise SmplImportError(f"field '{k}' has dtype {a[k].dtype}, expected integers")
    assert V is not None  # without a vertex count the shape checks above have raised
    if a["f"].min() < 0 or a["f"].max() >= V:
        raise SmplImportError(
            f"field 'f' has vertex indices in [{a['f'].min()}, {a['f'].max()}], "
            f"expected [0, {V - 1}]"
        )
    kt = a["kintree_table"].astype(np.int64)
    if not np.array_equal(kt[1], np.arange(NUM_JOINTS)) or not np.array_equal(
        kt[0, 1:], np.asarray(SMPL24_PARENTS[1:])
    ):
        raise SmplImportError(
            "field 'kintree_table' is not SMPL's kinematic tree "
            f"(parents {kt[0, 1:].tolist()}, expected {list(SMPL24_PARENTS[1:])})"
        )
    return int(V)


def _normalised(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Same values in the dtypes we store: integer fields as int64, floats as they were."""
    out = {}
    for k in REQUIRED_FIELDS + tuple(k for k in OPTIONAL_FIELDS if k in fields):
        arr = np.ascontiguousarray(fields[k])
        if k in ("f", "kintree_table"):
            arr = arr.astype(np.int64)
        out[k] = arr
    return out


def gender_from_filename(name: str | os.PathLike[str] | None) -> str:
    """'neutral' / 'female' / 'male' from a model file name (SMPL pkls don't store it)."""
    if name is None:
        return "unknown"
    stem = Path(name).name.lower()
    if "neutral" in stem:
        return "neutral"
    if "female" in stem or re.search(r"(^|[_\-.])f([_\-.]|$)", stem):
        return "female"
    if "male" in stem or re.search(r"(^|[_\-.])m([_\-.]|$)", stem):
        return "male"
    return "unknown"


def summarize(fields: dict[str, np.ndarray], source: str | os.PathLike[str] | None = None) -> str:
    """Multi-line human-readable summary of (validated) SMPL-layout fields."""
    V = int(fields["v_template"].shape[0])
    jreg = np.asarray(fields["J_regressor"])
    w_sum = np.asarray(fields["weights"]).sum(axis=1)
    j_sum = jreg.sum(axis=1)
    lines = [
        f"SMPL-layout body model{f' from {source}' if source is not None else ''}",
        f"  gender (from file name): {gender_from_filename(source)}",
        f"  vertices V: {V}",
        f"  faces F: {int(fields['f'].shape[0])}",
        f"  joints: {NUM_JOINTS} (SMPL kinematic tree)",
        f"  shape basis: {int(fields['shapedirs'].shape[2])} betas",
        f"  pose basis: {int(fields['posedirs'].shape[2])} (= 23 joints x 9)",
        f"  J_regressor: dense {tuple(jreg.shape)}, {int(np.count_nonzero(jreg))} non-zeros, "
        f"row sums [{j_sum.min():.6f}, {j_sum.max():.6f}], min entry {jreg.min():.6g}",
        f"  weights: row sums [{w_sum.min():.6f}, {w_sum.max():.6f}], "
        f"min entry {np.asarray(fields['weights']).min():.6g}",
        f"  template extent (m): {np.ptp(fields['v_template'], axis=0).round(4).tolist()}",
    ]
    return "\n".join(lines)


def import_smpl(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Read a SMPL .pkl (or .npz), validate it, write a plain .npz to `dst`; return a summary.

    The output holds ``REQUIRED_FIELDS`` and the ``OPTIONAL_FIELDS`` the source has
    (regressors dense, f and kintree_table int64; values unchanged) and loads with
    ``np.load(allow_pickle=False)``.
    `dst` is written atomically (temporary file in the same folder, then renamed).
    """
    src, dst = Path(src), Path(dst)
    loaded = load_smpl_pkl(src)
    validate_smpl_fields(loaded)
    fields = _normalised(loaded)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **fields)  # type: ignore[arg-type]
        with np.load(tmp, allow_pickle=False) as check:  # re-read what we wrote
            for k in fields:
                if not np.array_equal(check[k], fields[k]):
                    raise SmplImportError(f"field '{k}' did not survive writing {dst}")
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return summarize(fields, src) + f"\n  written to: {dst}"
