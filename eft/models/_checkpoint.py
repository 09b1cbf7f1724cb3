"""Reading checkpoint files safely, and unwrapping the state dict inside them."""

from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from eft.errors import EftError

DATAPARALLEL_PREFIX = "module."


def _culprit(exc: BaseException) -> str:
    """The 'Unsupported global: X' part of torch's weights-only error, if there is one."""
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return f" (it refused {match.group(1)})" if match else ""


def read_checkpoint(
    path: str | os.PathLike, *, trust: bool = False, map_location: Any = "cpu"
) -> Any:
    """``torch.load`` with ``weights_only=True``; plain unpickling only when ``trust``.

    ``weights_only=True`` refuses arbitrary Python objects, so a malicious file cannot
    run code.  Some genuine checkpoints still need the full unpickler: old SPIN/EFT
    training checkpoints store the optimizer state and bookkeeping (``dataset_perm``,
    options) with numpy arrays and other objects.  Those load only with
    ``trust=True``, which the caller must pass for files from a source they trust.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise EftError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust:
            raise EftError(
                f"{path} contains Python objects beyond tensors and plain containers, so it "
                f"was not loaded with the safe loader{_culprit(exc)}. Old SPIN/EFT checkpoints "
                "pickle their optimizer state this way. If you trust the file's source, "
                "load it with trust=True (this unpickles arbitrary objects and can run code)."
            ) from exc
    except OSError as exc:  # the file itself: permissions, I/O
        raise EftError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - torch's reader raises many kinds on a bad file
        raise EftError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); is it "
                       "a torch checkpoint?") from exc
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # any unpickling failure means a bad file
        raise EftError(f"cannot read checkpoint {path}: {exc}") from exc


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: ``obj['model']`` (SPIN/EFT training
    checkpoints), ``obj['state_dict']`` (our format and others) or ``obj`` itself."""
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and _is_state_dict(obj[key]):
                return obj[key]
        keys = ", ".join(sorted(map(str, obj.keys()))[:12])
        raise EftError(
            "checkpoint holds no state dict (looked for a tensor mapping, or one under "
            f"'model' or 'state_dict'); top-level keys: {keys}"
        )
    raise EftError(f"checkpoint is a {type(obj).__name__}, not a state dict or checkpoint dict")


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel's ``module.`` prefix from every key that has it.

    The ``_metadata`` attribute (module versions, used by BatchNorm loading) follows.
    """
    n = len(DATAPARALLEL_PREFIX)

    def strip(key: str) -> str:
        return key[n:] if key.startswith(DATAPARALLEL_PREFIX) else key

    out: dict[str, torch.Tensor] = OrderedDict((strip(k), v) for k, v in state.items())
    meta = getattr(state, "_metadata", None)
    if meta is not None:
        new_meta = OrderedDict()
        for key, value in meta.items():
            if key == "module":
                new_meta[""] = value
            elif key.startswith(DATAPARALLEL_PREFIX):
                new_meta[strip(key)] = value
            else:
                new_meta.setdefault(key, value)
        out._metadata = new_meta  # type: ignore[attr-defined]
    return out
