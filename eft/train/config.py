"""Training run configuration: a typed tree of dataclasses read from YAML.

Configs live in ``fitting/training/`` (documented key by key in
``fitting/training/README.md``).  Unknown keys, wrong types and bad values raise
:class:`TrainConfigError` naming the file and the key, e.g.
``fitting/training/coco.yaml: optim.steps: expected an integer, got 'many'``.
``--set key.sub=value`` overrides (list items by index: ``datasets.0.weight=2``) are
applied to the raw mapping first and checked like the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eft import config_loader as loader
from eft.annotations.api import FORMATS as ANNOTATION_FORMATS
from eft.config_loader import ConfigKeyError, key_error_message

from .augment import AugmentConfig
from .errors import TrainError
from .losses import LossWeights
from .trainer import OptimConfig

__all__ = ["TrainConfigError", "SyntheticSpec", "DatasetSpec", "ValSpec", "ModelSpec",
           "OutputSpec", "TrainRunConfig", "load_train_config", "train_config_from_dict",
           "apply_override", "config_to_dict", "ANNOTATION_FORMATS"]

#: The seed of the synthetic val set (the prior's card, its benchmarks, ``eft eval``).
SYNTHETIC_VAL_SEED = 20261122


class TrainConfigError(TrainError):
    """A training config that cannot be used (one line, naming file and key)."""


@dataclass(frozen=True)
class SyntheticSpec:
    """Synthetic people made on the fly from the pose bank (no images).

    Attributes:
        n: how many.   seed: generator seed.
        clips: pose-bank split the poses come from (``train`` or ``val``).
        target: 2D supervision, ``annotated`` (noisy labels, like real data) or
            ``clean`` (exact projections).
        smpl: supervise with the true SMPL parameters.
        keypoints3d: supervise with the true 3D keypoints.
    """

    n: int
    seed: int = 0
    clips: Literal["train", "val"] = "train"
    target: Literal["annotated", "clean"] = "annotated"
    smpl: bool = True
    keypoints3d: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be >= 1")
        _at_least(self, seed=0)


def _at_least(obj: Any, **bounds: int) -> None:
    """ValueError ``"<key> must be >= <bound>"`` for the first field below its bound."""
    for name, low in bounds.items():
        value = getattr(obj, name)
        if value is not None and not value >= low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")


@dataclass(frozen=True)
class DatasetSpec:
    """One training source: an annotation file (``path``) or ``synthetic`` people.

    Attributes:
        path: annotation file (any format of ``eft.annotations``); relative paths are
            taken from the working directory.
        format: ``eft-json``, ``spin-npz``, ``h5``, ``humandata``; None = from the name.
        synthetic: :class:`SyntheticSpec` instead of a file.
        name: label in logs (default: the file stem / ``synthetic``).
        weight: share of every batch (normalised over the datasets).
        image_root: folder relative image paths are read from (image regressors).
        accepted_only: keep only fits their quality rules accepted.
        max_loss_2d, max_reproj_px, max_abs_beta, min_keypoints: quality thresholds.
        decisions: review decisions: ``eft review``'s database (applied only to the
            exact fits judged) or JSON (fit id -> accept/reject).
        decisions_any_file: match ``decisions`` by fit id alone, even where they judged
            another file's or an older fit.
        keypoints3d: use the fits' 3D keypoints as 3D targets too.
    """

    path: str | None = None
    format: str | None = None
    synthetic: SyntheticSpec | None = None
    name: str | None = None
    weight: float = 1.0
    image_root: str | None = None
    accepted_only: bool = False
    max_loss_2d: float | None = None
    max_reproj_px: float | None = None
    max_abs_beta: float | None = None
    min_keypoints: int | None = None
    decisions: str | None = None
    decisions_any_file: bool = False
    keypoints3d: bool = False

    def __post_init__(self) -> None:
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one of 'path' (an annotation file) or 'synthetic'")
        if self.format is not None and self.format not in ANNOTATION_FORMATS:
            raise ValueError(f"format must be one of {list(ANNOTATION_FORMATS)} or null, "
                             f"got {self.format!r}")
        if not self.weight >= 0:
            raise ValueError("weight must be >= 0")
        _at_least(self, max_loss_2d=0, max_reproj_px=0, max_abs_beta=0, min_keypoints=0)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return "synthetic" if self.path is None else Path(self.path).name.split(".")[0]


@dataclass(frozen=True)
class ValSpec:
    """One evaluation set, evaluated every ``output.eval_every`` steps.

    Attributes:
        kind: ``synthetic`` (pose-bank val clips), ``h36m`` (SPIN's
            ``h36m_valid_protocol1/2.npz``) or ``3dpw`` (SPIN's ``3dpw_test.npz``).
        n, seed: size and seed of a synthetic set.
        path: the npz file (h36m, 3dpw).
        image_root: image folder (HMR).
        smpl_dir: folder with SMPL_MALE / SMPL_FEMALE for 3DPW's ground truth.
        name: label (default: the kind).
    """

    kind: Literal["synthetic", "h36m", "3dpw"] = "synthetic"
    n: int = 1000
    seed: int = SYNTHETIC_VAL_SEED
    path: str | None = None
    image_root: str | None = None
    smpl_dir: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind != "synthetic" and self.path is None:
            raise ValueError(f"a {self.kind} val set needs 'path'")
        if self.n < 1:
            raise ValueError("n must be >= 1")
        _at_least(self, seed=0)

    @property
    def label(self) -> str:
        return self.name or self.kind


@dataclass(frozen=True)
class ModelSpec:
    """The regressor.

    Attributes:
        arch: ``keypoint_regressor`` (2D keypoints in) or ``hmr`` (image crops in).
        width, hidden: KeypointRegressor encoder width and IEF hidden size.
        n_iter: IEF iterations.  dropout: IEF dropout (None: the architecture's).
        init: start from this regressor (a file, or ``default`` for the shipped prior)
            instead of from scratch.
        mean_params: IEF start: ``data`` (mean pose and shape of the training targets,
            upright and facing the camera), ``default`` (rest pose) or an npz file.
    """

    arch: Literal["keypoint_regressor", "hmr"] = "keypoint_regressor"
    width: int = 256
    hidden: int = 256
    n_iter: int = 3
    dropout: float | None = None
    init: str | None = None
    mean_params: str = "data"

    def __post_init__(self) -> None:
        _at_least(self, width=1, hidden=1, n_iter=1, dropout=0)
        if self.dropout is not None and not self.dropout < 1:
            raise ValueError(f"dropout must be < 1, got {self.dropout!r}")


@dataclass(frozen=True)
class OutputSpec:
    """Where and how often.

    Attributes:
        dir: run folder (default ``runs/<config name>``).
        log_every: steps between log lines.   eval_every: steps between evaluations.
        checkpoint_every: steps between checkpoints (0: at the end only).
        keep_checkpoints: how many to keep.
        progress: show a progress bar.
    """

    dir: str | None = None
    log_every: int = 50
    eval_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        _at_least(self, log_every=1, eval_every=1, checkpoint_every=0, keep_checkpoints=1)


@dataclass(frozen=True)
class TrainRunConfig:
    """A whole ``eft train`` run (see ``fitting/training/README.md``)."""

    datasets: tuple[DatasetSpec, ...]
    model: ModelSpec = field(default_factory=ModelSpec)
    body_model: str | None = None
    val: tuple[ValSpec, ...] = ()
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    output: OutputSpec = field(default_factory=OutputSpec)
    device: str = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    img_res: int = 224
    workers: int = 0

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("datasets: give at least one dataset")
        if self.model.arch == "hmr":
            if any(d.synthetic is not None for d in self.datasets):
                raise ValueError("an hmr model trains on images; synthetic datasets have none")
            if any(v.kind == "synthetic" for v in self.val):
                raise ValueError("an hmr model cannot be evaluated on synthetic val sets "
                                 "(no images)")
        if not sum(d.weight for d in self.datasets) > 0:
            raise ValueError("datasets: the weights must not all be 0")
        if self.img_res < 1:
            raise ValueError(f"img_res must be >= 1 (crop side in px), got {self.img_res}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.optim.seed < 0:
            raise ValueError(f"optim.seed must be >= 0, got {self.optim.seed}")


# ---------------------------------------------------------------------------
# Reading (eft.config_loader: the same loader and messages as job configs)
# ---------------------------------------------------------------------------

def train_config_from_dict(data: Mapping[str, Any], source: str = "config") -> TrainRunConfig:
    """Validate a raw mapping into a :class:`TrainRunConfig`; errors name ``source``."""
    try:
        return loader.build(TrainRunConfig, data)
    except ConfigKeyError as exc:
        raise TrainConfigError(key_error_message(source, exc)) from None


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"optim.steps=100"`` -> (["optim", "steps"], 100) (the value read as YAML)."""
    return loader.parse_override(text, TrainConfigError, "optim.steps=100")


def apply_override(data: dict, text: str) -> dict:
    """Apply one ``--set`` override to a raw config mapping (in place; returned)."""
    keys, value = parse_override(text)
    return loader.apply_override(data, keys, value, TrainConfigError)


def load_train_config(path: str | os.PathLike, overrides: Sequence[str] = ()
                      ) -> TrainRunConfig:
    """Read and validate a training config file, with ``--set`` overrides."""
    raw = loader.read_yaml(path, TrainConfigError)
    for text in overrides:
        apply_override(raw, text)
    return train_config_from_dict(raw, str(Path(path).expanduser()))


#: A plain (YAML/JSON-able) copy of a config tree: tuples become lists.
config_to_dict = loader.plain
