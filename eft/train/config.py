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

from .errors import TrainError
from .trainer import OptimConfig, OutputSpec, TrainerConfig

__all__ = ["TrainConfigError", "SyntheticSpec", "DatasetSpec", "ValSpec", "ModelSpec",
           "LabelSource",
           "OutputSpec", "TrainRunConfig", "load_train_config", "train_config_from_dict",
           "apply_override", "config_to_dict", "ANNOTATION_FORMATS", "OptimConfig",
           "TrainerConfig", "SYNTHETIC_VAL_SEED"]

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
        generator: the people's generator settings, ``default``
            (:class:`eft.synthetic.exemplars.SyntheticConfig`) or ``prior-v2``
            (:data:`eft.train.prior.V2_SYNTHETIC`: every slot annotated, more pitch,
            bending, lying, truncation and limb drops).
        variants: with ``prior-v2``, this many more people for each pose variant
            (seated, kneeling, bending; ``eft.synthetic.pose_variants``), as the v2 prior.
    """

    n: int
    seed: int = 0
    clips: Literal["train", "val"] = "train"
    target: Literal["annotated", "clean"] = "annotated"
    smpl: bool = True
    keypoints3d: bool = False
    generator: Literal["default", "prior-v2"] = "default"
    variants: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be >= 1")
        _at_least(self, seed=0, variants=0)
        if self.variants and self.generator != "prior-v2":
            raise ValueError("variants: pose variants need generator: prior-v2")


@dataclass(frozen=True)
class LabelSource:
    """Real 2D labels read by a dataset reader (``eft.data.readers``): 2D-only
    training samples (the labels are input and 2D target; no 3D targets).

    Attributes:
        kind: reader name (``coco``, ``mpii``, ``lsp``, ...).
        path: annotation file or folder (relative paths: from the working directory).
        options: the reader's keyword arguments, e.g. ``min_keypoints: 6``,
            ``exclude_images: <file>``.
    """

    kind: str
    path: str
    options: dict = field(default_factory=dict)


def _at_least(obj: Any, **bounds: int) -> None:
    """ValueError ``"<key> must be >= <bound>"`` for the first field below its bound."""
    for name, low in bounds.items():
        value = getattr(obj, name)
        if value is not None and not value >= low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")


@dataclass(frozen=True)
class DatasetSpec:
    """One training source: an annotation file (``path``), ``synthetic`` people or real
    2D ``labels`` (one or more reader sources, sampled as one dataset).

    Attributes:
        path: annotation file (any format of ``eft.annotations``); relative paths are
            taken from the working directory.
        format: ``eft-json``, ``spin-npz``, ``h5``, ``humandata``; None = from the name.
        synthetic: :class:`SyntheticSpec` instead of a file.
        labels: :class:`LabelSource` s instead of a file.
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
    labels: tuple[LabelSource, ...] | None = None
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
        if sum(x is not None for x in (self.path, self.synthetic, self.labels)) != 1:
            raise ValueError("give exactly one of 'path' (an annotation file), 'synthetic' "
                             "or 'labels'")
        if self.labels is not None and not self.labels:
            raise ValueError("labels: give at least one label source")
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
        if self.path is not None:
            path = Path(self.path)
            stem = path.name.split(".")[0]
            # a job's output is fits.* in the job's folder: name it by the folder too
            return f"{path.parent.name}/{stem}" if stem == "fits" and path.parent.name \
                else stem
        return "synthetic" if self.synthetic is not None else "labels"


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
        input_slots: keypoint slots the KeypointRegressor reads: ``all`` 49, or ``data``,
            those any training input fills (the v2 prior's choice).
    """

    arch: Literal["keypoint_regressor", "hmr"] = "keypoint_regressor"
    width: int = 256
    hidden: int = 256
    n_iter: int = 3
    dropout: float | None = None
    init: str | None = None
    mean_params: str = "data"
    input_slots: Literal["all", "data"] = "all"

    def __post_init__(self) -> None:
        _at_least(self, width=1, hidden=1, n_iter=1, dropout=0)
        if self.dropout is not None and not self.dropout < 1:
            raise ValueError(f"dropout must be < 1, got {self.dropout!r}")


@dataclass(frozen=True, kw_only=True)
class TrainRunConfig(TrainerConfig):
    """A whole ``eft train`` run (see ``fitting/training/README.md``): the trainer's
    settings (:class:`~eft.train.trainer.TrainerConfig`: ``optim``, ``loss``,
    ``augment``, ``output``, ``device``, ``amp``, ``img_res``, ``workers``) with the data
    and the model.  The trainer takes it as it is; ``inputs`` follows ``model.arch``."""

    datasets: tuple[DatasetSpec, ...]
    model: ModelSpec = field(default_factory=ModelSpec)
    body_model: str | None = None
    val: tuple[ValSpec, ...] = ()
    inputs: Literal["keypoints", "images"] = field(default="keypoints", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs",
                           "images" if self.model.arch == "hmr" else "keypoints")
        super().__post_init__()
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
