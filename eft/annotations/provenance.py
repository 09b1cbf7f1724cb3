"""Provenance: how the fits of an annotation file were made.

Every file ``eft`` writes carries one :class:`Provenance` as a JSON object (see
``annotations/SCHEMA.md``): the body model (name + sha256), the regressor checkpoint hash,
the full fitting config, the package version, the camera convention, the source dataset
and split, and the creation time.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eft import __version__
from eft.geometry.cameras import FOCAL_LENGTH
from eft.models.registry import (
    ARCHITECTURES,
    DEFAULT_SPEC,
    NAMED_PRIORS,
    checkpoint_sha256,
    state_dict_sha256,
)

from .errors import AnnotationError

__all__ = ["Provenance", "CAMERA_CONVENTION", "config_to_dict", "config_from_dict"]

#: The camera convention every eft file uses (EFT's weak perspective on SPIN's crop).
CAMERA_CONVENTION: dict[str, Any] = {
    "name": "eft-weak-perspective",
    "parm_cam": "[s, tx, ty]; x_norm = s * X[:2] + [tx, ty] (translation after scaling)",
    "crop_to_image": "x_img = bbox_center + 100 * bbox_scale * x_norm",
    "crop": "square of side 200 * bbox_scale px centred at bbox_center, resized to img_res",
    "perspective_equivalent": "t = [tx / s, ty / s, 2 * focal_length / (img_res * s)]",
    "body_frame": "metres; crop camera axes: x right, y down, z away from the camera",
    "focal_length": FOCAL_LENGTH,
    "img_res": 224,
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _plain(value: Any) -> Any:
    """JSON-able copy: tuples -> lists, numpy scalars -> Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def config_to_dict(config: Any) -> dict[str, Any] | None:
    """``{"type": "module.Class", "values": {...}}`` for a dataclass config (nested
    dataclasses as dicts), ``{"type": None, "values": {...}}`` for a mapping."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        cls = type(config)
        return {"type": f"{cls.__module__}.{cls.__qualname__}",
                "values": _plain(dataclasses.asdict(config))}
    if isinstance(config, Mapping):
        return {"type": None, "values": _plain(config)}
    raise TypeError(f"config must be a dataclass or a mapping, got {type(config).__name__}")


def _rebuild(cls: type, values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        hint = hints.get(f.name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(
                value, Mapping):
            value = _rebuild(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> Any:
    """Inverse of :func:`config_to_dict`: the dataclass (only classes defined in ``eft``)
    or the plain dict."""
    if data is None:
        return None
    type_name, values = data.get("type"), data.get("values") or {}
    if not type_name:
        return dict(values)
    module_name, _, cls_name = str(type_name).rpartition(".")
    if not (module_name == "eft" or module_name.startswith("eft.")):
        raise AnnotationError(f"config type {type_name!r} is not an eft class")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
        return _rebuild(cls, values)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise AnnotationError(f"cannot rebuild config {type_name}: {exc}") from None


def _body_info(body: Any) -> dict[str, Any] | None:
    if body is None:
        return None
    if isinstance(body, Mapping):
        return _plain(body)
    name = getattr(body, "name", None)
    sha = getattr(body, "content_hash", None)
    if name is None:
        raise TypeError(f"body must be a BodyModel or a mapping, got {type(body).__name__}")
    return {"name": str(name), "sha256": None if sha is None else str(sha)}


def _regressor_info(regressor: Any) -> dict[str, Any] | None:
    """``{"name", "sha256", "hash_of", "arch"}``: a file's bytes for a path or
    ``"default"``, the state dict for a loaded module."""
    if regressor is None:
        return None
    if isinstance(regressor, Mapping):
        return _plain(regressor)

    if isinstance(regressor, (str, os.PathLike)):
        name = os.fspath(regressor)
        shipped = name == DEFAULT_SPEC or name in NAMED_PRIORS
        return {"name": name if shipped else os.path.basename(name),
                "sha256": checkpoint_sha256(regressor), "hash_of": "file", "arch": None}
    if hasattr(regressor, "state_dict"):
        arch = next((k for k, c in ARCHITECTURES.items() if type(regressor) is c),
                    type(regressor).__name__)
        return {"name": type(regressor).__name__, "sha256": state_dict_sha256(regressor),
                "hash_of": "state_dict", "arch": arch}
    raise TypeError("regressor must be a path, 'default', a module or a mapping, got "
                    f"{type(regressor).__name__}")


@dataclass(frozen=True)
class Provenance:
    """How a set of fits was made.

    Attributes:
        created: creation time, ISO 8601 UTC.
        eft_version: version of the ``eft`` package that made the fits.
        body_model: ``{"name", "sha256"}`` of the body model, or None when unknown.
        regressor: ``{"name", "sha256", "hash_of", "arch"}``: ``hash_of`` is ``"file"``
            (sha256 of the checkpoint file) or ``"state_dict"`` (of the loaded weights,
            :func:`eft.models.registry.state_dict_sha256`); None when unknown.
        config: the full fitting config, ``{"type": "eft.fitting.config.EFTConfig",
            "values": {...}}`` (:meth:`fitting_config` rebuilds it), or None.
        camera: the camera convention, :data:`CAMERA_CONVENTION` (focal length and crop
            resolution taken from the config when it has them).
        dataset: source dataset name (e.g. ``"coco2014"``), or None.
        split: source split (e.g. ``"train"``), or None.
        extra: anything else (plain JSON values).
    """

    created: str
    eft_version: str
    body_model: dict[str, Any] | None = None
    regressor: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    camera: dict[str, Any] = field(default_factory=lambda: dict(CAMERA_CONVENTION))
    dataset: str | None = None
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, *, body: Any = None, regressor: Any = None, config: Any = None,
               dataset: str | None = None, split: str | None = None,
               **extra: Any) -> Provenance:
        """Provenance for fits made now.

        Args:
            body: the :class:`~eft.body.BodyModel` (its ``name`` and ``content_hash``).
            regressor: the checkpoint path (or ``"default"``), or the loaded module.
            config: the :class:`~eft.fitting.EFTConfig` (or any dataclass / mapping).
            dataset, split: where the exemplars came from.
            extra: more plain values to record.
        """
        camera = dict(CAMERA_CONVENTION)
        for key in ("focal_length", "img_res"):
            if config is not None and hasattr(config, key):
                camera[key] = _plain(getattr(config, key))
        return cls(created=_now(), eft_version=__version__, body_model=_body_info(body),
                   regressor=_regressor_info(regressor), config=config_to_dict(config),
                   camera=camera, dataset=dataset, split=split, extra=_plain(dict(extra)))

    @classmethod
    def unknown(cls, note: str = "") -> Provenance:
        """Provenance of a file that carries none (e.g. EFT's released files)."""
        extra = {"note": note} if note else {}
        return cls(created=_now(), eft_version="unknown", camera=dict(CAMERA_CONVENTION),
                   extra=extra)

    def fitting_config(self) -> Any:
        """The recorded config rebuilt (e.g. an :class:`~eft.fitting.EFTConfig`), or None."""
        return config_from_dict(self.config)

    @property
    def focal_length(self) -> float:
        return float(self.camera.get("focal_length", CAMERA_CONVENTION["focal_length"]))

    @property
    def img_res(self) -> int:
        return int(self.camera.get("img_res", CAMERA_CONVENTION["img_res"]))

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        if not isinstance(data, Mapping):
            raise AnnotationError(f"provenance must be an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        unknown = {k: v for k, v in data.items() if k not in names}
        if unknown:  # written by a newer minor version: keep, do not lose
            values["extra"] = {**(values.get("extra") or {}), "unrecognised": unknown}
        values.setdefault("created", "unknown")
        values.setdefault("eft_version", "unknown")
        if values.get("camera") is None:
            values["camera"] = dict(CAMERA_CONVENTION)
        if values.get("extra") is None:
            values["extra"] = {}
        try:
            return cls(**values)
        except TypeError as exc:
            raise AnnotationError(f"bad provenance block: {exc}") from None
