"""Reading MATLAB ``.mat`` annotation files (MPII, LSP/LSPet) through scipy.

scipy is an optional dependency (``pip install eft[datasets]``).  Files are loaded with
``squeeze_me=True, struct_as_record=False``: structs become attribute objects and
MATLAB's 1x1 arrays become scalars, so a struct array of one element arrives as a
bare struct and an empty field as an empty array; :func:`as_list` and :func:`scalar`
undo that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import ReaderError

__all__ = ["load_mat", "as_list", "scalar", "field"]


def load_mat(path: Path) -> dict[str, Any]:
    """The variables of a ``.mat`` file (v4-v7.2); a clear ReaderError when scipy is
    missing, the file is absent or it is not a MATLAB file."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ReaderError(f"{path}: reading .mat files needs scipy; "
                          "install it with: pip install eft[datasets]") from None
    if not path.is_file():
        raise ReaderError(f"{path}: no such annotation file")
    try:
        return loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        raise ReaderError(f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; "
                          "re-save it with save(..., '-v7')") from None
    except (ValueError, TypeError, OSError) as exc:
        raise ReaderError(f"{path}: not a readable .mat file ({exc})") from None


def as_list(value: Any) -> list:
    """A MATLAB struct array / cell array as a Python list ([] for an empty field, a
    one-element list for a squeezed-away 1x1)."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel()) if value.size else []
    return [value]


def scalar(value: Any) -> float | None:
    """A MATLAB number (possibly a 1x1 array, a numeric string, or empty) as a float;
    None when empty or not a number."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.ravel()[0]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def field(struct: Any, name: str) -> Any:
    """``struct.name``, or None when the struct lacks the field or it is empty."""
    value = getattr(struct, name, None)
    if isinstance(value, np.ndarray) and value.size == 0:
        return None
    return value
