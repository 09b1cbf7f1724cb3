"""Job configuration: a typed tree of dataclasses read from YAML (``fitting/*.yaml``).

Every key is documented in ``fitting/README.md``.  Unknown keys and bad values are
:class:`JobConfigError` s that name the key and the file, e.g.
``fitting/coco.yaml: eft.max_iters: expected an integer, got 'twenty'``.

Overrides (``--set key.sub=value`` and the CLI's shortcuts) are applied to the raw
mapping before validation, so they are checked exactly like the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eft import config_loader as loader
from eft.annotations.api import FORMATS as ANNOTATION_FORMATS
from eft.config_loader import (
    INT_LIMIT,
    ConfigKeyError,
    build,
    coerce,
    describe,
    join_key,
    key_error_message,
    plain,
)
from eft.data.readers import READERS
from eft.errors import EftError, did_you_mean
from eft.fitting.auto import AUTO_CHOICES, AUTO_PRESET
from eft.fitting.config import EFT_PRESETS, EFTConfig, QualityRules
from eft.models.registry import DEFAULT_SPEC, NAMED_PRIORS

__all__ = [
    "JobConfigError",
    "DatasetConfig",
    "OutputConfig",
    "JobConfig",
    "load_config",
    "config_from_dict",
    "apply_override",
    "parse_override",
    "ANNOTATION_FORMATS",
    "BACKENDS",
    "FIT_KEYS",
    "hash_dict",
]

#: Where the chunks run: this machine's processes, or a Dask distributed cluster.
BACKENDS: tuple[str, ...] = ("local", "dask")
#: Settings that decide the fits: a job resumes only with the same values.
FIT_KEYS: tuple[str, ...] = ("datasets", "body", "regressor", "eft", "mode", "batch_size",
                             "chunk_size", "seed")
#: ``eft`` settings added after jobs were first written, with the value that reproduces
#: the fits made before them: left out of the resume hash at that value, so a job
#: started by an earlier version resumes (``EFTConfig.smplify_blend`` and the
#: ``perspective_*`` keys, ``tilted_above_deg`` and ``w_pose_prior``, 2026-12-06;
#: ``smplify_init``, 2026-12-06, late; the weights only matter with steps;
#: ``skeleton_offsets``, 2026-12-07; ``robust_2d``, later that day; compared as plain
#: values, tuples as lists).
#: ``label_skeleton_keypoints`` (later that day) is read only with skeleton offsets, and
#: a folder fitted with offsets before it has it off (:func:`fit_view`).
LATER_EFT_KEYS: dict[str, Any] = {"smplify_blend": 0.0, "smplify_init": "regressor",
                                  "perspective_steps": 0,
                                  "perspective_pose_weight": 3e-3,
                                  "perspective_torso_weight": 0.1,
                                  "tilted_above_deg": 0.0, "w_pose_prior": 0.0,
                                  "skeleton_offsets": (), "robust_2d": 0.0}
#: Dataset kinds the job can read besides the readers' (``eft.data.readers``).
JOB_KINDS: tuple[str, ...] = ("synthetic",)


class JobConfigError(EftError):
    """A job configuration that cannot be used (unknown key, bad value, missing file)."""


@dataclass(frozen=True)
class DatasetConfig:
    """One annotation source.

    Attributes:
        kind: reader name (``coco``, ``crowdpose``, ``mpii``, ``lsp``, ``lspet``,
            ``posetrack``, ``openpose``, ``generic``) or ``synthetic`` (exemplars made from
            the pose bank, options ``n``, ``seed``, ``annotate``; no images).
        path: annotation file or folder (relative paths: from the working directory).
        image_root: folder of the images, when not the reader's default.
        name: id prefix / dataset name passed to the reader (``dataset=``) and recorded in
            the provenance.
        split: split name recorded in the provenance (``train``, ``val``...).
        options: further reader arguments, e.g. ``min_keypoints: 6``.
        eft: this dataset's own EFT settings (:class:`eft.fitting.EFTConfig`), None: the
            job's ``eft``.  In YAML a mapping of keys over the job's ``eft`` (its
            ``preset:`` replacing the job's); under the job's ``eft.preset: auto`` the
            run sets it for each dataset of several whose own pilot picks settings
            other than the job's (:mod:`eft.jobs.recipe`).
    """

    kind: str
    path: str | None = None
    image_root: str | None = None
    name: str | None = None
    split: str | None = None
    options: dict = field(default_factory=dict)
    eft: EFTConfig | None = None

    @property
    def label(self) -> str:
        """The dataset's name in logs and summaries: ``name``, else ``path``, else
        ``kind``."""
        return str(self.name or self.path or self.kind)

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS and self.path is None:
            raise ValueError(f"path: required for kind {self.kind!r}")


@dataclass(frozen=True)
class OutputConfig:
    """Where results go.

    Attributes:
        dir: output folder (manifest, ``parts/``, final files).  With ``--shard i/N``
            the shard writes into ``dir/shard-<i>-of-<N>``.
        formats: annotation formats written at the end, from :data:`ANNOTATION_FORMATS`.
        name: stem of the final files (``<name>.json``, ``<name>.h5``...).
        include: ``all`` fits (each with its quality record) or only ``accepted`` ones.
        overlays: number of overlay PNGs (image + fitted mesh + keypoints) drawn at the
            end for exemplars with images (0 = none).
    """

    dir: str = "annotations/out"
    formats: tuple[str, ...] = ("eft-json", "h5")
    name: str = "fits"
    include: Literal["all", "accepted"] = "all"
    overlays: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        bad = [f for f in self.formats if f not in ANNOTATION_FORMATS]
        if bad:
            raise ValueError(f"formats: unknown format(s) {bad}; known: {list(ANNOTATION_FORMATS)}")
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("formats: a format is listed twice")
        if (not self.name or any(c in self.name for c in "/\\\0")
                or self.name.startswith(".")):
            raise ValueError("name: must be a file stem (no '/', '\\' or leading '.'), "
                             f"got {self.name!r}")
        if self.overlays < 0:
            raise ValueError(f"overlays: must be >= 0, got {self.overlays}")


@dataclass(frozen=True)
class JobConfig:
    """A whole ``eft fit`` job.

    Attributes:
        datasets: the annotation sources, read in order; ids must be unique across them.
        body: ``open`` (the embedded open body model), ``default`` (``$EFT_BODY_MODEL``
            or the open model) or a SMPL ``.pkl``/``.npz`` file or folder.
        regressor: ``default`` (the shipped keypoint prior) or a checkpoint path (our
            regressor file or a SPIN/EFT HMR checkpoint; HMR fits from image crops).
        eft: EFT settings, :class:`eft.fitting.EFTConfig`, over the recipe ``eft.preset``
            (:data:`eft.fitting.config.EFT_PRESETS`, or ``auto``: the default for the
            shipped priors, else ``eft``, the published recipe) (``eft.rules``:
            :class:`eft.fitting.QualityRules`).  Under ``auto`` it holds ``open-prior``
            with the job's keys until the run picks the recipe.
        eft_auto: set by ``eft.preset: auto``: the run fits a pilot with ``eft`` and
            picks ``open-prior`` or ``open-prior-exact`` from how exact the labels look
            (:mod:`eft.jobs.recipe`); the config it writes has this cleared and the
            chosen recipe's settings in ``eft``.
        output: :class:`OutputConfig`.
        mode: ``batched`` (``torch.func``, per-exemplar weights) or ``sequential`` (EFT's
            loop).
        batch_size: exemplars fine-tuned at once inside a chunk.
        chunk_size: exemplars per unit of work: one task for a worker and one committed
            part file.  Chunks are fixed slices of the shard's exemplars sorted by id.
        seed: torch seed set before every chunk.
        limit: fit only the first ``limit`` exemplars (sorted by id) of the shard.
        shard: ``"i/N"``: fit shard i of N (0-based) into ``dir/shard-III-of-NNN``, as
            ``eft fit --shard i/N`` (which overrides it) does; a shard's ``config.yaml``
            records it, so ``eft fit`` of that file resumes the shard.  None: the whole
            job.
        check_images: decode every exemplar's image and record unreadable ones as
            failures even when the regressor reads keypoints only.
        devices: torch devices; ``auto`` = every visible GPU, else the CPU.  Local
            workers take one device each (round robin when there are more workers).
        workers: parallel workers; ``null`` = one per device.
        threads: torch threads per worker.
        backend: ``local`` (joblib processes on this machine; 1 worker runs in-process)
            or ``dask`` (joblib's Dask backend; needs ``pip install 'eft[cluster]'``).
        scheduler: Dask scheduler address ``tcp://HOST:PORT``; ``null`` starts a local
            Dask cluster of ``workers`` processes.
        recipe_per_dataset: under ``eft.preset: auto`` with several datasets, pilot each
            dataset on its own too and fit one whose own pilot picks other settings
            than the job's with those (its ``eft``); false: one recipe for the whole
            job, a dataset that reads otherwise only named in a warning (how jobs ran
            before 2026-12-07).  What it decides is written into the datasets' ``eft``,
            so it is not itself a fit key.
    """

    datasets: tuple[DatasetConfig, ...]
    body: str = "open"
    regressor: str = "default"
    eft: EFTConfig = field(default_factory=EFTConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mode: Literal["batched", "sequential"] = "batched"
    batch_size: int = 64
    chunk_size: int = 256
    seed: int = 0
    limit: int | None = None
    shard: str | None = None
    check_images: bool = True
    devices: tuple[str, ...] = ("cpu",)
    workers: int | None = None
    threads: int = 1
    backend: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    recipe_per_dataset: bool = True
    eft_auto: bool = field(default=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        object.__setattr__(self, "devices", tuple(self.devices))
        if not self.datasets:
            raise ValueError("datasets: at least one dataset is needed")
        for name in ("batch_size", "chunk_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit: must be >= 1, got {self.limit}")
        if self.shard is not None:
            parts = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(self.shard))
            if not parts or not int(parts[1]) < int(parts[2]):
                raise ValueError(f"shard: expected 'i/N' with 0 <= i < N, got {self.shard!r}")
            object.__setattr__(self, "shard", f"{int(parts[1])}/{int(parts[2])}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers: must be >= 1, got {self.workers}")
        if not 0 <= self.seed < INT_LIMIT:
            raise ValueError(f"seed: must be in [0, 2^63), got {self.seed}")
        if not self.devices:
            raise ValueError("devices: at least one device (or 'auto') is needed")
        if self.scheduler is not None and not self.scheduler.startswith(
                ("tcp://", "tls://", "inproc://", "ucx://")):
            raise ValueError(f"scheduler: expected tcp://HOST:PORT, got {self.scheduler!r}")
        for i, ds in enumerate(self.datasets):
            eft = ds.eft if ds.eft is not None else self.eft
            if (str(ds.kind).lower() == "openpose" and ds.options.get("gt_slots") is False
                    and not eft.openpose_weight > 0):
                raise ValueError(
                    f"datasets.{i}.options.gt_slots: false leaves the keypoints in the "
                    "OpenPose slots only, which the fit weighs 0 (eft.openpose_weight): "
                    "nobody would be fitted to their keypoints; drop gt_slots: false, or "
                    "set eft.openpose_weight (e.g. 1)")

    # -- views ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every setting (defaults included)."""
        return plain(self)

    def fit_dict(self) -> dict:
        """The settings that decide the fits (what a resumed run must share)."""
        return fit_view(self.to_dict())

    def own_recipes(self) -> list[tuple[int, EFTConfig]]:
        """(index, settings) of the datasets fitted with settings other than ``eft``."""
        return [(i, ds.eft) for i, ds in enumerate(self.datasets)
                if ds.eft is not None and ds.eft != self.eft]

    def replace(self, **changes: Any) -> JobConfig:
        return dataclasses.replace(self, **changes)


def fit_view(config: Mapping) -> dict:
    """The settings of a job config dict (:meth:`JobConfig.to_dict`, or a manifest's
    ``config``) that decide the fits, with :data:`LATER_EFT_KEYS` at their old values
    left out, ``smplify_init`` where no fit blends with SMPLify, and
    ``label_skeleton_keypoints`` where there are no skeleton offsets (in the job's
    ``eft`` and in each dataset's own), and a dataset's ``eft`` left out where it has
    none (as in jobs written before datasets could have one)."""
    fit = {k: config.get(k) for k in FIT_KEYS}
    fit["eft"] = _fit_eft(fit["eft"])
    if isinstance(fit["datasets"], list):
        fit["datasets"] = [
            {k: (_fit_eft(v) if k == "eft" else v) for k, v in d.items()
             if not (k == "eft" and v is None)} if isinstance(d, Mapping) else d
            for d in fit["datasets"]]
    return fit


def _fit_eft(eft: Mapping | None) -> dict:
    """An ``eft`` dict as :func:`fit_view` compares it."""
    eft = eft or {}
    blends = bool(eft.get("smplify_blend")) or bool(eft.get("tilted_above_deg"))
    unread = {"smplify_init"} if not blends else set()  # read only by a blend
    if not eft.get("skeleton_offsets"):
        unread.add("label_skeleton_keypoints")
    elif "label_skeleton_keypoints" not in eft:  # fitted with offsets before the option
        eft = {**eft, "label_skeleton_keypoints": False}
    return {k: v for k, v in eft.items()
            if not (k in LATER_EFT_KEYS and plain(v) == plain(LATER_EFT_KEYS[k]))
            and k not in unread}


def hash_dict(d: Mapping) -> str:
    """sha256 of the canonical JSON of ``d``."""
    text = json.dumps(plain(dict(d)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _build_rules(value: Any, key: str) -> QualityRules:
    if value is None:
        return QualityRules()
    if not isinstance(value, Mapping):
        raise ConfigKeyError(key, f"expected a mapping, got {describe(value)}")
    value = dict(value)
    preset = value.pop("preset", "default")
    if preset not in ("default", "strict"):
        raise ConfigKeyError(join_key(key, "preset"),
                        f"expected 'default' (EFT's IsValid) or 'strict', got {preset!r}")
    rules = build(QualityRules, value, key)
    if preset == "strict":
        given = {k: getattr(rules, k) for k in value}
        rules = QualityRules.strict(**given)
    return rules


def _build_eft(value: Any, key: str, default_preset: str = "eft") -> EFTConfig:
    """``eft:``: a preset (``preset:``, :data:`eft.fitting.config.EFT_PRESETS`) with the
    given keys on top."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigKeyError(key, f"expected a mapping, got {describe(value)}")
    value = dict(value)
    preset = value.pop("preset", default_preset)
    if preset == AUTO_PRESET:  # the pilot's recipe until the run picks (eft.jobs.recipe)
        preset = AUTO_CHOICES[0]
    elif preset not in EFT_PRESETS:
        names = [*EFT_PRESETS, AUTO_PRESET]
        raise ConfigKeyError(join_key(key, "preset"), f"expected one of {sorted(names)}, "
                             f"got {preset!r}{did_you_mean(str(preset), names)}")
    return build(EFTConfig, {**EFT_PRESETS[preset], **value}, key,
                  special={"rules": _build_rules})


def default_eft_preset(regressor: Any) -> str:
    """``"auto"`` (:mod:`eft.jobs.recipe`: ``open-prior``, or ``open-prior-exact`` for
    labels without annotation noise) for the shipped keypoint priors (``default`` or a
    name in :data:`eft.models.registry.NAMED_PRIORS`), ``"eft"`` (the published
    recipe) for any other regressor file."""
    shipped = isinstance(regressor, str) and (regressor == DEFAULT_SPEC
                                              or regressor in NAMED_PRIORS)
    return AUTO_PRESET if shipped else "eft"


def _build_datasets(value: Any, key: str, job_eft: Any = None,
                    default_preset: str = "eft") -> tuple[DatasetConfig, ...]:
    """``datasets:``; a dataset's ``eft`` (:func:`_build_dataset_eft`) over the job's
    ``job_eft`` mapping."""
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise ConfigKeyError(key, f"expected a list of datasets, got {describe(value)}")
    out = []
    for i, v in enumerate(value):
        own = None
        if isinstance(v, Mapping) and "eft" in v:
            v = dict(v)
            own = v.pop("eft")
        ds = build(DatasetConfig, v, join_key(key, i))
        if own is not None:
            ds = dataclasses.replace(ds, eft=_build_dataset_eft(
                own, join_key(join_key(key, i), "eft"), job_eft, default_preset))
        out.append(_check_reader_options(ds, join_key(key, i)))
    return tuple(out)


def _every_setting(eft: Mapping) -> bool:
    """Whether an ``eft`` mapping gives every :class:`EFTConfig` setting (a resolved
    ``config.yaml``'s: no preset is left to apply)."""
    return all(f.name in eft for f in dataclasses.fields(EFTConfig))


def _build_dataset_eft(value: Any, key: str, job_eft: Any,
                       default_preset: str) -> EFTConfig:
    """A dataset's ``eft:``: every setting (a resolved ``config.yaml``), else the job's
    ``eft`` mapping with these keys on top (a ``preset:`` here replaces the job's, the
    job's other keys staying on top of it unless the job's ``eft`` is a resolved one
    of every setting; it must name a recipe: ``auto`` is the job's choice)."""
    if not isinstance(value, Mapping):
        raise ConfigKeyError(key, f"expected a mapping, got {describe(value)}")
    if _every_setting(value):
        return _build_eft(value, key)
    base = dict(job_eft) if isinstance(job_eft, Mapping) else {}
    resolved = _every_setting(base)
    if "preset" in value:  # the dataset's recipe, with the job's own keys on top
        base = {} if resolved else {k: v for k, v in base.items() if k != "preset"}
    merged = {**base, **value}
    preset = merged.pop("preset", "eft" if resolved else default_preset)
    if preset == AUTO_PRESET:
        if "preset" not in value:  # keys on top of the job's auto
            _build_eft({**merged, "preset": "open-prior"}, key)  # a mistyped key first
            raise ConfigKeyError(key, "these keys go on top of a recipe, and the job's is "
                                 f"{AUTO_PRESET}: name this dataset's recipe too (e.g. "
                                 "preset: open-prior), or put the keys in the job's eft")
        raise ConfigKeyError(join_key(key, "preset"),
                             f"name a recipe ({', '.join(sorted(EFT_PRESETS))}): "
                             f"{AUTO_PRESET} is the job's eft.preset, and under it each "
                             "dataset of several is piloted on its own already")
    return _build_eft({**merged, "preset": preset}, key)


def _check_reader_options(ds: DatasetConfig, key: str) -> DatasetConfig:
    """``ds`` with its ``kind`` known and each reader option of the reader's type (from
    the reader's signature), so that ``min_keypoints: six`` is a config error naming the
    key rather than a traceback from inside the reader."""
    if ds.kind in JOB_KINDS:
        return ds
    import inspect

    reader = READERS.get(str(ds.kind).lower())
    if reader is None:
        raise ConfigKeyError(join_key(key, "kind"), f"unknown dataset kind {ds.kind!r}; known: "
                        f"{', '.join(sorted([*READERS, *JOB_KINDS]))}")
    func = getattr(reader, "func", reader)  # functools.partial
    params = inspect.signature(func).parameters
    hints = typing.get_type_hints(func)
    names = [n for n, p in params.items() if n not in ("path", "image_root")
             and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    options = dict(ds.options)
    for name, value in options.items():
        okey = join_key(join_key(key, "options"), str(name))
        if name not in names:
            raise ConfigKeyError(okey, f"unknown option of kind {ds.kind!r}"
                            f"{did_you_mean(name, names)}; valid: {', '.join(names)}")
        tp = hints.get(name, Any)
        try:
            options[name] = coerce(value, tp, okey)
        except TypeError:  # an annotation the config types do not cover: reader checks
            pass
    return dataclasses.replace(ds, options=options)


def _build_devices(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    out = coerce(value, tuple[str, ...], key)
    for i, dev in enumerate(out):
        if dev != "auto" and not (dev == "cpu" or dev == "cuda" or dev.startswith("cuda:")
                                  or dev == "mps"):
            raise ConfigKeyError(join_key(key, i),
                            f"expected auto, cpu, cuda or cuda:N, got {dev!r}")
    if "auto" in out and len(out) > 1:
        raise ConfigKeyError(key, "'auto' cannot be combined with other devices")
    return out


def config_from_dict(data: Any, source: str = "<config>") -> JobConfig:
    """Validate a plain mapping (as read from YAML) into a :class:`JobConfig`."""
    try:
        preset = "eft"
        if isinstance(data, Mapping):
            preset = default_eft_preset(data.get("regressor", "default"))
            data = {**data, "eft": data.get("eft")}  # the preset applies without `eft:` too
            given = data["eft"] if isinstance(data["eft"], Mapping) else {}
            # every setting given (a resolved config.yaml): no preset is left to pick
            complete = _every_setting(given)
            if "eft_auto" not in data or "preset" in given:
                data["eft_auto"] = (given.get("preset", preset) == AUTO_PRESET
                                    and not complete)
        job_eft = data.get("eft") if isinstance(data, Mapping) else None
        return build(JobConfig, data, "", special={
            "eft": lambda v, k: _build_eft(v, k, preset),
            "datasets": lambda v, k: _build_datasets(v, k, job_eft, preset),
            "devices": _build_devices})
    except ConfigKeyError as exc:
        raise JobConfigError(key_error_message(source, exc)) from None


# ---------------------------------------------------------------------------
# Overrides and files
# ---------------------------------------------------------------------------

def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"eft.max_iters=10"`` -> ``(["eft", "max_iters"], 10)``
    (:func:`eft.config_loader.parse_override`)."""
    return loader.parse_override(text, JobConfigError, "eft.max_iters=10")


def apply_override(data: dict, path: Sequence[str | int], value: Any) -> None:
    """Set ``data[path[0]][path[1]]... = value`` in place, creating mappings."""
    loader.apply_override(data, path, value, JobConfigError)


def read_yaml(path: str | os.PathLike) -> dict:
    """The YAML mapping in ``path`` (a :class:`JobConfigError` when unreadable)."""
    return loader.read_yaml(path, JobConfigError)


def load_config(path: str | os.PathLike,
                overrides: Sequence[tuple[Sequence[str | int], Any]] = ()) -> JobConfig:
    """Read and validate a job config; ``overrides`` (from :func:`parse_override`) are
    applied first."""
    data = read_yaml(path)
    for keys, value in overrides:
        apply_override(data, keys, value)
    return config_from_dict(data, source=str(path))
