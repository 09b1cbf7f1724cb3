"""Test helpers shared by several test modules.

The fixture rule: a test whose real data, optional package or shipped asset is missing
is skipped with the reason shown (``-ra``), except on CI (``CI=true``), where it fails.
:func:`require` is the one place that implements it; test bodies call it (or
:func:`require_file` / :func:`require_module`) instead of ``pytest.skip``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from eft.review.background import live_server

__all__ = ["live_server", "load_script", "on_ci", "require", "require_file",
           "require_module", "test_data_dir"]

_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (once per session, registered as
    ``<name>_under_test`` so its dataclasses and pickles resolve)."""
    import sys

    key = f"{name}_under_test"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, _SCRIPTS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def on_ci() -> bool:
    """Whether the tests run on CI (``CI=true``, any case)."""
    return os.environ.get("CI", "").lower() == "true"


def require(ok: bool, reason: str, *, module_level: bool = False) -> None:
    """Nothing when ``ok``; else fail on CI, skip (visibly, with ``reason``) elsewhere.

    ``module_level``: called while a test module is imported (skips the whole module)."""
    if ok:
        return
    if on_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def require_file(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` when it is a file; else :func:`require` fails or skips the test."""
    path = Path(path)
    require(path.is_file(), f"{what + ' ' if what else ''}{path} not found")
    return path


def require_module(name: str, extra: str = "", *, module_level: bool = False) -> ModuleType:
    """The imported module ``name``; else :func:`require` fails or skips (``extra``: the
    install hint shown with the reason)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        hint = f" ({extra})" if extra else ""
        require(False, f"{name} is not installed{hint}", module_level=module_level)
        raise  # unreachable: require raised


def test_data_dir() -> Path:
    """Folder of third-party test data: $EFT_TEST_DATA, else <repo>/../shared/data;
    :func:`require` fails or skips when it is missing."""
    env = os.environ.get("EFT_TEST_DATA")
    root = Path(__file__).resolve().parents[1]
    path = Path(env).expanduser() if env else root.parent / "shared" / "data"
    how = "$EFT_TEST_DATA" if env else "default location; set $EFT_TEST_DATA to override"
    require(path.is_dir(), f"test data folder {path} not found ({how})")
    return path


test_data_dir.__test__ = False  # a helper, not a test (its name starts with "test")


#: A standing person in image px, by SPIN-49 name: the held-out-joint tests' fixture
#: (twelve limb joints, then the face).
STANDING_PERSON: dict[str, tuple[float, float]] = {
    "Right Ankle": (110, 400), "Right Knee": (112, 320), "Right Hip": (115, 240),
    "Left Hip": (145, 240), "Left Knee": (148, 320), "Left Ankle": (150, 400),
    "Right Wrist": (80, 230), "Right Elbow": (90, 180), "Right Shoulder": (105, 130),
    "Left Shoulder": (155, 130), "Left Elbow": (170, 180), "Left Wrist": (180, 230),
    "Nose": (130, 100), "Left Eye": (135, 95), "Right Eye": (125, 95),
}


def small_mixed_trainset(body):
    """24 synthetic people (3D and 2D targets) + 16 of their labels as real 2D-only
    samples, and a 60/40 sampler over them: a tiny training set for trainer tests."""
    import torch

    from eft.synthetic.exemplars import generate
    from eft.train.data import MixSampler, TrainSet, concat_sets

    g = torch.Generator().manual_seed(0)
    poses = (torch.randn(24, 72, generator=g) * 0.3).numpy()
    synth = TrainSet.from_synthetic(generate(poses, 24, 0, body=body), target="annotated",
                                    with_kp3d=True)
    real = TrainSet.from_arrays(synth.kp_px[:16].numpy(), synth.center[:16].numpy(),
                                synth.scale[:16].numpy())
    return concat_sets([synth, real]), MixSampler([24, 16], [0.6, 0.4])


def check_loss_term_run(body, folder, loss, part: str, steps: int) -> None:
    """A small run (:func:`small_mixed_trainset`) with ``loss`` (a ``LossWeights`` that
    switches on the term logged as ``part``) logs the term, and stopped half way,
    checkpointed and resumed into a differently seeded network it ends with the
    uninterrupted run's weights, bit for bit; with the default weights the term is not
    computed at all."""
    import copy
    import dataclasses

    import torch

    from eft.models import KeypointRegressor
    from eft.train.augment import AugmentConfig
    from eft.train.losses import LossWeights
    from eft.train.trainer import OptimConfig, OutputSpec, Trainer, TrainerConfig

    data, sampler = small_mixed_trainset(body)
    half_way = steps // 2
    cfg = TrainerConfig(
        optim=OptimConfig(steps=steps, batch_size=8, lr=1e-3, optimizer="adamw", seed=2),
        loss=loss,
        augment=AugmentConfig(flip_prob=0.5, rot_prob=0.0, hide_limb_prob=0.3),
        device="cpu", amp="off",
        output=OutputSpec(progress=False, log_every=2, eval_every=half_way,
                          checkpoint_every=0))
    torch.manual_seed(1)
    init = KeypointRegressor(width=32, hidden=32)
    full = Trainer(copy.deepcopy(init), body, data, cfg, sampler=sampler)
    full.run()
    assert full.last_parts[part] > 0
    half = Trainer(copy.deepcopy(init), body, data, cfg, sampler=sampler, out_dir=folder)
    half.run(until=half_way)
    ckpt = half.save_checkpoint()
    torch.manual_seed(999)
    resumed = Trainer(KeypointRegressor(width=32, hidden=32), body, data, cfg,
                      sampler=sampler, out_dir=folder)
    resumed.load_checkpoint(ckpt)
    resumed.run()
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k
    off = dataclasses.replace(cfg, loss=LossWeights())
    t = Trainer(copy.deepcopy(init), body, data, off, sampler=sampler)
    t.train_step()
    assert part not in t.last_parts


def other_body_model(folder: Path, name: str = "my-tall-body") -> Path:
    """The open body model renamed ``name`` and 1.3x as tall, written to ``folder`` (a
    body the shipped priors were not trained with)."""
    import numpy as np

    from eft.body.model import resolve_model_path

    with np.load(resolve_model_path(None), allow_pickle=False) as z:
        fields = {k: z[k] for k in z.files}
    fields["model_name"] = np.array(name)
    fields["v_template"] = fields["v_template"] * 1.3
    path = Path(folder) / "tall.npz"
    np.savez(path, **fields)
    return path


def auto_job_on_generic_file(folder: Path, people, fmt: str, batch: int,
                             extra: list[dict] | None = None):
    """``eft fit``'s default (``eft.preset: auto``) on ``people`` written as a generic
    JSON file of ``fmt`` keypoints (person ids ``p000``...; ``extra``: each record's
    other fields), keeping an h5 file: (the job's result, its output folder)."""
    import json

    import numpy as np

    from eft.body.joints import KEYPOINT_FORMATS
    from eft.jobs import config_from_dict, run_job

    slots = list(KEYPOINT_FORMATS[fmt].spin_indices)
    recs = [{"image": f"img/{i:03d}.jpg", "person_id": f"p{i:03d}",
             "keypoints": np.asarray(e.keypoints)[slots].reshape(-1).tolist(),
             **(extra[i] if extra else {})} for i, e in enumerate(people)]
    path = folder / "studio.json"
    path.write_text(json.dumps({"keypoint_format": fmt, "people": recs}))
    out = folder / "out"
    result = run_job(config_from_dict({
        "datasets": [{"kind": "generic", "path": str(path), "name": "studio"}],
        "output": {"dir": str(out), "formats": ["h5"]}, "check_images": False,
        "devices": ["cpu"], "batch_size": batch, "chunk_size": batch}), progress=False)
    return result, out
