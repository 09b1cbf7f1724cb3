"""What a worker does with one chunk: check the exemplars, load image crops when the
regressor needs them, run EFT, and return the chunk's :class:`~eft.jobs.store.Part`.

A worker process loads the body model and the regressor once (cached per process and
device) and keeps them for every chunk it runs.  Problems with single exemplars never
stop the chunk; each becomes a :class:`~eft.jobs.store.Failure` with a reason:

* ``bad_bbox`` - a non-finite box centre or scale;
* ``bad_keypoints`` - an annotated keypoint with NaN/inf coordinates or confidence;
* ``missing_image`` / ``unreadable_image`` - the image cannot be found or decoded
  (checked when the regressor reads images, or with ``check_images``);
* ``non_finite_fit`` - EFT produced NaN/inf parameters;
* ``error`` - anything else raised while fitting that exemplar alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from eft.body import BodyModel
from eft.data.exemplar import Exemplar
from eft.data.images import crop_image, load_image, normalize_crop
from eft.fitting import fit_exemplars
from eft.fitting.config import EFTConfig
from eft.models import KeypointRegressor, load_regressor

from .devices import claim_slot, device_for_slot
from .parent_watch import watch_parent
from .store import Failure, Part

__all__ = ["WorkerSetup", "ChunkTask", "run_chunk", "check_exemplar"]

log = logging.getLogger("eft.jobs")


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs besides the chunk (sent with every task; small).

    Attributes:
        run_id: unique per run (device slots are claimed per run).
        config_hash: the job's config hash (stamped into each part).
        body, regressor: specs as in the job config.
        eft: EFT settings.
        mode, batch_size, seed, threads: as in the job config.
        devices: concrete device names.
        slot_dir: folder for device-slot claims; None = in-process, ``devices[0]``.
        check_images: decode images even when the regressor does not read them.
        recipes: further EFT settings (datasets with an ``eft`` of their own), named by
            :attr:`ChunkTask.recipes`.
    """

    run_id: str
    config_hash: str
    body: str
    regressor: str
    eft: EFTConfig
    mode: str
    batch_size: int
    seed: int
    threads: int
    devices: tuple[str, ...]
    slot_dir: str | None
    check_images: bool
    recipes: tuple[EFTConfig, ...] = ()

    def eft_of(self, recipe: int) -> EFTConfig:
        """The settings of recipe number ``recipe``: 0 ``eft``, k ``recipes[k - 1]``."""
        return self.eft if recipe == 0 else self.recipes[recipe - 1]


@dataclass(frozen=True)
class ChunkTask:
    """Chunk ``index``: the exemplars still to fit in it, and the recipe of each
    (:meth:`WorkerSetup.eft_of`; empty: all 0)."""

    index: int
    exemplars: tuple[Exemplar, ...]
    recipes: tuple[int, ...] = ()

    def recipe_of(self, i: int) -> int:
        return self.recipes[i] if self.recipes else 0


# torch.func transforms are not thread-safe: threaded workers (a Dask worker with several
# threads, or processes=False) take turns fitting
_FIT_LOCK = threading.Lock()

# per-process caches
_SLOT: dict[str, int] = {}
_MODELS: dict[tuple[str, str], Any] = {}
_BODIES: dict[str, Any] = {}


def _device(setup: WorkerSetup) -> str:
    if setup.slot_dir is None:
        return setup.devices[0]
    slot = _SLOT.get(setup.run_id)
    if slot is None:
        slot = claim_slot(setup.slot_dir)
        _SLOT.clear()
        _SLOT[setup.run_id] = slot
        log.debug("worker %d took slot %d -> %s", os.getpid(), slot,
                  device_for_slot(setup.devices, slot))
    return device_for_slot(setup.devices, slot)


def _body(spec: str):
    if spec not in _BODIES:
        _BODIES[spec] = BodyModel.load(None if spec == "default" else spec)
    return _BODIES[spec]


def _model(spec: str, device: str):
    key = (spec, device)
    if key not in _MODELS:
        _MODELS[key] = load_regressor(spec, map_location=device)
    return _MODELS[key]


def needs_images(model) -> bool:
    """Whether the regressor reads image crops (everything but the keypoint regressor)."""
    return not isinstance(model, KeypointRegressor)


def check_exemplar(e: Exemplar) -> Failure | None:
    """A :class:`Failure` for an exemplar that cannot be fitted as it is, else None."""
    center = np.asarray(e.center, dtype=np.float64)
    if not (np.all(np.isfinite(center)) and np.isfinite(e.scale) and e.scale > 0):
        return Failure(e.id, "bad_bbox", f"center {center.tolist()}, scale {e.scale}")
    kp = np.asarray(e.keypoints, dtype=np.float64)
    conf = kp[:, 2]
    bad = ~np.isfinite(conf) | ((conf > 0) & ~np.all(np.isfinite(kp[:, :2]), axis=1))
    if bad.any():
        return Failure(e.id, "bad_keypoints",
                       f"{int(bad.sum())} annotated keypoints with NaN/inf values")
    return None


def _image_failure(e: Exemplar, exc: BaseException) -> Failure:
    if isinstance(exc, FileNotFoundError) or (
            e.image_path is not None and not os.path.exists(e.image_path)):
        return Failure(e.id, "missing_image", str(e.image_path))
    text = str(exc)  # ImageError names the file already
    return Failure(e.id, "unreadable_image", text if str(e.image_path) in text
                   else f"{e.image_path}: {text}")


def _crop_tensor(image, e: Exemplar, res: int):
    """(3, res, res) ImageNet-normalised crop of ``e`` (SPIN's HMR input)."""
    return normalize_crop(crop_image(image, e.center, e.scale, res=res))


def _fit(exemplars, model, body, setup: WorkerSetup, inputs):
    return fit_exemplars(exemplars, model, body, setup.eft, inputs=inputs, mode=setup.mode,
                         batch_size=setup.batch_size, progress=False)


def _finite(fit) -> bool:
    return bool(np.all(np.isfinite(fit.rotmat)) and np.all(np.isfinite(fit.betas))
                and np.all(np.isfinite(fit.cam_weak)) and np.all(np.isfinite(fit.keypoints3d)))


def _fit_all(ok, inputs, model, body, setup, index, failures):
    """Fit ``ok`` together; if that raises, one by one, recording the culprits.
    Returns ``(fits, exemplars fitted)``."""
    if not ok:
        return [], []
    try:
        return _fit(ok, model, body, setup, inputs), ok
    except Exception as exc:  # noqa: BLE001 - find the culprit(s) one at a time
        log.warning("chunk %d: fitting failed (%s); fitting its exemplars one by one",
                    index, exc)
    fits, kept = [], []
    for i, e in enumerate(ok):
        try:
            fits.extend(_fit([e], model, body, setup,
                             None if inputs is None else inputs[i:i + 1]))
            kept.append(e)
        except Exception as exc1:  # noqa: BLE001
            failures.append(Failure(e.id, "error", f"{type(exc1).__name__}: {exc1}"))
    return fits, kept


def run_chunk(setup: WorkerSetup, task: ChunkTask) -> Part:
    """Fit one chunk; never raises for a single exemplar's problem.  In a worker process
    (``setup.slot_dir`` set) it first makes sure the process ends with its parent
    (:func:`~eft.jobs.parent_watch.watch_parent`)."""
    import torch

    if setup.slot_dir is not None:
        watch_parent()
    t0 = time.perf_counter()
    torch.set_num_threads(setup.threads)
    device = _device(setup)
    with _FIT_LOCK:
        body = _body(setup.body)
        model = _model(setup.regressor, device)
    with_images = needs_images(model)
    failures: list[Failure] = []
    ok: list[Exemplar] = []
    ok_recipe: list[int] = []
    crops = []
    for k, e in enumerate(task.exemplars):
        recipe = task.recipe_of(k)
        bad = check_exemplar(e)
        if bad is not None:
            failures.append(bad)
            continue
        if e.image_path is not None and (with_images or setup.check_images):
            try:
                image = load_image(e.image_path)
                if with_images:
                    crops.append(_crop_tensor(image, e, setup.eft_of(recipe).img_res))
            except Exception as exc:  # noqa: BLE001 - any image problem is per item
                failures.append(_image_failure(e, exc))
                continue
        elif with_images:
            failures.append(Failure(e.id, "missing_image",
                                    "the regressor needs images; the exemplar has none"))
            continue
        elif setup.check_images and e.meta.get("imageId") is not None:
            # a COCO-style file names its images: this person's entry names none
            failures.append(Failure(e.id, "missing_image", f"image {e.meta['imageId']!r} "
                                    "has no file_name (check_images is on)"))
            continue
        ok.append(e)
        ok_recipe.append(recipe)
    fits: list = []
    fitted: list[Exemplar] = []
    for recipe in sorted(set(ok_recipe)):  # each recipe's exemplars together, in order
        rows = [i for i, r in enumerate(ok_recipe) if r == recipe]
        inputs = torch.stack([crops[i] for i in rows]) if with_images and crops else None
        with _FIT_LOCK:
            torch.set_num_threads(setup.threads)
            torch.manual_seed(setup.seed)
            own = setup if recipe == 0 else dataclasses.replace(
                setup, eft=setup.eft_of(recipe))
            got, kept = _fit_all([ok[i] for i in rows], inputs, model, body, own,
                                 task.index, failures)
        fits.extend(got)
        fitted.extend(kept)
    if len(set(ok_recipe)) > 1:  # back in the chunk's order
        pos = {e.id: i for i, e in enumerate(ok)}
        order = sorted(range(len(fitted)), key=lambda j: pos[fitted[j].id])
        fits, fitted = [fits[j] for j in order], [fitted[j] for j in order]
    good_fits, good_ex = [], []
    for f, e in zip(fits, fitted, strict=True):
        if _finite(f):
            good_fits.append(f)
            good_ex.append(e)
        else:
            failures.append(Failure(e.id, "non_finite_fit", "EFT returned NaN/inf parameters"))
    failures.sort(key=lambda f: f.id)
    return Part.from_fits(task.index, setup.config_hash, good_fits, good_ex,
                          failures=failures, seconds=time.perf_counter() - t0,
                          device=device)
