"""Saving and loading body regressors by name or path.

Our file format (written by :func:`save_regressor`) is a ``torch.save``-d dict::

    {"format": "eft-regressor", "version": 1,
     "arch": "keypoint_regressor" | "hmr",
     "config": {...constructor arguments...},
     "state_dict": {...},            # includes the init_* mean buffers
     "metadata": {...}}              # whatever the caller passed, plain values only

It loads with ``torch.load(weights_only=True)``.  :func:`load_regressor` also reads
SPIN/EFT HMR checkpoints (recognised by their keys) and the shipped keypoint priors by
name (:data:`NAMED_PRIORS`: ``"keypoint-prior-v1"``, ``"keypoint-prior-v2"``,
``"keypoint-prior-v3"``, ``"keypoint-prior-v4"``, ``"keypoint-prior-v5"``,
``"keypoint-prior-v6"``,
``"keypoint-prior-v8"``, ``"keypoint-prior-v9"``), with ``"default"`` naming :data:`DEFAULT_PRIOR`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from eft._files import file_sha256
from eft.errors import EftError, did_you_mean

from ._checkpoint import extract_state_dict, read_checkpoint, strip_module_prefix
from .hmr import HMR, is_hmr_state_dict, load_hmr_checkpoint
from .keypoint_regressor import KeypointRegressor

__all__ = [
    "ARCHITECTURES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DEFAULT_SPEC",
    "default_prior_path",
    "named_prior_path",
    "regressor_path",
    "NAMED_PRIORS",
    "DEFAULT_PRIOR",
    "load_regressor",
    "save_regressor",
    "architecture_of",
    "checkpoint_sha256",
    "state_dict_sha256",
    "body_mismatch",
    "shipped_prior_name",
    "TRAINING_CHECKPOINT_FORMAT",
    "TRAINING_CHECKPOINT_VERSION",
]

FORMAT_NAME = "eft-regressor"
FORMAT_VERSION = 1
#: ``eft train``'s checkpoints (``checkpoints/step_*.pt``: the model and the whole
#: training state); :func:`load_regressor` reads their model too.
TRAINING_CHECKPOINT_FORMAT = "eft-train-checkpoint"
TRAINING_CHECKPOINT_VERSION = 1
DEFAULT_SPEC = "default"
#: Shipped keypoint priors: name -> file under ``eft/models/assets``.
NAMED_PRIORS: dict[str, str] = {
    "keypoint-prior-v1": "keypoint_prior_v1.pt",
    "keypoint-prior-v2": "keypoint_prior_v2.pt",
    "keypoint-prior-v3": "keypoint_prior_v3.pt",
    "keypoint-prior-v4": "keypoint_prior_v4.pt",
    "keypoint-prior-v5": "keypoint_prior_v5.pt",
    "keypoint-prior-v6": "keypoint_prior_v6.pt",
    "keypoint-prior-v7": "keypoint_prior_v7.pt",
    "keypoint-prior-v8": "keypoint_prior_v8.pt",
    "keypoint-prior-v9": "keypoint_prior_v9.pt",
}
#: ``eft_metadata`` key :func:`load_regressor` adds to a prior it loaded by name.
SHIPPED_KEY = "shipped_as"
#: The prior ``"default"`` names.
DEFAULT_PRIOR = "keypoint-prior-v9"
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "hmr": HMR,
    "keypoint_regressor": KeypointRegressor,
}


#: Suffixes that name a checkpoint file (a spec without one, and without a folder, that
#: names no file is taken for a mistyped prior name).
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".tar", ".bin")


def named_prior_path(name: str) -> Path:
    """Where the shipped prior ``name`` (a key of :data:`NAMED_PRIORS`) lives."""
    return Path(str(resources.files("eft.models"))) / "assets" / NAMED_PRIORS[name]


def default_prior_path() -> Path:
    """Where the default keypoint prior (:data:`DEFAULT_PRIOR`) lives."""
    return named_prior_path(DEFAULT_PRIOR)


def regressor_path(spec: str | os.PathLike) -> Path:
    """A regressor spec (``"default"``, a name in :data:`NAMED_PRIORS` or a path) as a path.

    Raises :class:`~eft.errors.EftError` for an empty spec, or one that names no file and
    looks like a mistyped prior name (no folder, no checkpoint suffix), listing the
    names with the nearest."""
    if isinstance(spec, str) and spec == DEFAULT_SPEC:
        return default_prior_path()
    if isinstance(spec, str) and spec in NAMED_PRIORS:
        return named_prior_path(spec)
    path = Path(spec).expanduser()
    if isinstance(spec, str) and (not spec.strip() or (
            not path.exists() and "/" not in spec and os.sep not in spec
            and path.suffix.lower() not in _CHECKPOINT_SUFFIXES)):
        names = [DEFAULT_SPEC, *NAMED_PRIORS]
        raise EftError(f"unknown regressor {spec!r}: neither a shipped prior "
                       f"({', '.join(names)}) nor a file{did_you_mean(spec, names)}")
    return path


def architecture_of(model: nn.Module) -> str:
    """The registry name of ``model``'s class (``"hmr"`` or ``"keypoint_regressor"``)."""
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise EftError(
        f"cannot save a {type(model).__name__}: known architectures are "
        f"{sorted(ARCHITECTURES)}"
    )


_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Metadata must load under ``weights_only=True``: plain values, lists, dicts, tensors."""
    if isinstance(value, _PLAIN) or isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise EftError(f"metadata key {where}[{key!r}] must be a str or int")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise EftError(
        f"metadata {where} is a {type(value).__name__}; use str/int/float/bool/None, "
        "lists, dicts or tensors (convert numpy arrays with .tolist() or torch.as_tensor)"
    )


def save_regressor(model: nn.Module, path: str | os.PathLike, **metadata: Any) -> Path:
    """Write ``model`` (HMR or KeypointRegressor) to ``path`` in our format, atomically.

    The file is written to a temporary name in the same folder and renamed over
    ``path``, so readers never see a half-written file.  ``metadata`` (e.g.
    ``trained_on="coco"``, ``steps=1000``) is stored as given.  Returns the path.
    """
    arch = architecture_of(model)
    for key, value in metadata.items():
        _check_plain(value, key)
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "arch": arch,
        "config": dict(cast(Any, model).config),  # HMR / KeypointRegressor (arch above)
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata),
    }
    dst = Path(path).expanduser()
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is not a secret
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def _build_from_payload(payload: Mapping[str, Any], source: str) -> nn.Module:
    arch = payload.get("arch")
    if arch not in ARCHITECTURES:
        raise EftError(f"{source}: unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    version = payload.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EftError(
            f"{source}: file format version {version!r} is newer than this eft "
            f"(reads up to {FORMAT_VERSION}); upgrade eft"
        )
    config = payload.get("config") or {}
    if not isinstance(config, Mapping):
        raise EftError(f"{source}: 'config' must be a dict, got {type(config).__name__}")
    try:
        model = ARCHITECTURES[arch](**config)
    except TypeError as exc:
        raise EftError(f"{source}: config does not fit {arch}: {exc}") from exc
    state = payload.get("state_dict")
    if not isinstance(state, Mapping):
        raise EftError(f"{source}: no 'state_dict' in the file")
    report = load_hmr_checkpoint(model, state)  # refuses shape mismatches
    if report.missing or report.unexpected:
        raise EftError(f"{source}: state dict does not match {arch}:\n{report}")
    meta = payload.get("metadata") or {}
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    meta.pop(SHIPPED_KEY, None)  # only loading by name marks a shipped prior
    _set_metadata(model, meta)
    return model


def _build_from_training_checkpoint(obj: Mapping[str, Any], source: str) -> nn.Module:
    """The model of an ``eft train`` checkpoint (its ``arch``, ``model_config`` and
    ``model`` weights; metadata: the step and, where recorded, the body model)."""
    version = obj.get("version", TRAINING_CHECKPOINT_VERSION)
    if not isinstance(version, int) or version > TRAINING_CHECKPOINT_VERSION:
        raise EftError(f"{source}: training checkpoint version {version!r} is newer than "
                       f"this eft (reads up to {TRAINING_CHECKPOINT_VERSION}); upgrade eft")
    model = _build_from_payload({"arch": obj.get("arch"), "config": obj.get("model_config"),
                                 "state_dict": obj.get("model"), "metadata": {}}, source)
    meta: dict[str, Any] = {"trained_by": "eft train (a training checkpoint)"}
    if isinstance(obj.get("step"), int):
        meta["step"] = obj["step"]
    _set_metadata(model, meta)
    return model


def _load_spin_checkpoint(obj: Any, source: str) -> nn.Module:
    model = HMR()
    report = load_hmr_checkpoint(model, obj)
    if report.missing:
        raise EftError(
            f"{source}: looks like an HMR checkpoint but lacks {len(report.missing)} "
            f"weight(s): {', '.join(report.missing[:10])}"
            + (" ..." if len(report.missing) > 10 else "")
        )
    if report.unexpected:
        warnings.warn(
            f"{source}: ignored {len(report.unexpected)} unexpected key(s): "
            f"{', '.join(report.unexpected[:10])}",
            stacklevel=3,
        )
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("epoch", "total_step_count"):
            if isinstance(obj.get(key), (int, float)):
                meta[key] = obj[key]
    _set_metadata(model, meta)
    return model


def _set_metadata(model: nn.Module, meta: dict[str, Any]) -> None:
    """``model.eft_metadata = meta`` (a plain attribute: nn.Module's ``__setattr__``
    stores a dict as ``object.__setattr__`` does, which type checkers accept)."""
    object.__setattr__(model, "eft_metadata", meta)


def load_regressor(
    spec: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    trust: bool = False,
) -> nn.Module:
    """Load a body regressor, in eval mode, on ``map_location``.

    ``spec`` is ``"default"`` (the keypoint prior shipped with eft), a shipped prior's
    name (:data:`NAMED_PRIORS`) or a path to either a
    file written by :func:`save_regressor`, an ``eft train`` checkpoint
    (``checkpoints/step_*.pt``), or a SPIN/EFT HMR checkpoint (training checkpoint with
    ``'model'``, or a bare state dict, ``module.`` prefixes allowed).
    Files are read with ``weights_only=True``; ``trust=True`` permits the full unpickler
    for trusted old checkpoints that pickle numpy objects.

    The returned module's ``eft_metadata`` attribute holds the saved metadata (empty for
    SPIN checkpoints apart from ``epoch``/``total_step_count``); a prior loaded by name
    (or as ``"default"``) also carries its name under ``"shipped_as"``
    (:func:`shipped_prior_name`).
    """
    path = regressor_path(spec)
    if isinstance(spec, str) and (spec == DEFAULT_SPEC or spec in NAMED_PRIORS) \
            and not path.is_file():
        raise EftError(
            f"the keypoint prior {spec!r} is not installed (expected {path}). "
            "This eft build ships without it; pass a regressor file instead: one "
            "written by save_regressor, or a SPIN/EFT HMR checkpoint."
        )
    source = str(path)
    obj = read_checkpoint(path, trust=trust, map_location="cpu")
    if isinstance(obj, Mapping) and "arch" in obj and "state_dict" in obj:
        model = _build_from_payload(obj, source)
    elif isinstance(obj, Mapping) and obj.get("format") == TRAINING_CHECKPOINT_FORMAT:
        model = _build_from_training_checkpoint(obj, source)
    else:
        try:
            state = strip_module_prefix(extract_state_dict(obj))
        except EftError as exc:
            raise EftError(f"{source}: not a regressor file: {exc}") from exc
        if not is_hmr_state_dict(state):
            raise EftError(
                f"{source}: not a regressor file: neither our format (no 'arch'/'state_dict') "
                "nor a SPIN/EFT HMR checkpoint (no conv1/layer4/fc1/decpose weights)"
            )
        model = _load_spin_checkpoint(obj, source)
    if isinstance(spec, str) and (spec == DEFAULT_SPEC or spec in NAMED_PRIORS):
        name = DEFAULT_PRIOR if spec == DEFAULT_SPEC else spec
        _set_metadata(model, {**getattr(model, "eft_metadata", {}), SHIPPED_KEY: name})
    return model.to(torch.device(map_location)).eval()


def shipped_prior_name(model: nn.Module) -> str | None:
    """The shipped prior's name (a key of :data:`NAMED_PRIORS`) if :func:`load_regressor`
    loaded ``model`` by that name or as ``"default"``, else None (a regressor file,
    a SPIN checkpoint or a network built in code; a copy keeps the mark)."""
    name = (getattr(model, "eft_metadata", None) or {}).get(SHIPPED_KEY)
    return name if isinstance(name, str) and name in NAMED_PRIORS else None


def body_mismatch(model: nn.Module, body_name: str) -> str | None:
    """One line saying that ``model`` was trained with another body model than the one
    named ``body_name`` (its ``model_name``, or its file name), or None: when they agree,
    or the model does not record one (SPIN checkpoints).  Its outputs are that body's
    shape coefficients and joints, so a fit with another body is silently off."""
    trained = (getattr(model, "eft_metadata", None) or {}).get("body_model")
    if not isinstance(trained, str) or trained in (body_name, Path(body_name).stem):
        return None
    return (f"the regressor was trained with body model {trained!r} and is used with "
            f"{body_name!r}: its shape and pose outputs are meant for the other body")


def checkpoint_sha256(spec: str | os.PathLike) -> str:
    """sha256 (hex) of a regressor file's bytes; ``"default"`` and the names in
    :data:`NAMED_PRIORS` are the shipped priors."""
    path = regressor_path(spec)
    if not path.is_file():
        raise EftError(f"{path}: no such regressor file")
    return file_sha256(path)


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 (hex) of a module's state dict: every entry's name, dtype, shape and bytes,
    in name order.  Independent of the file it came from; equal for equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
