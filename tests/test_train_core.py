"""The trainer: it fits, it resumes exactly, it mixes datasets, AMP and HMR paths run."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from eft.models import HMR, KeypointRegressor
from eft.synthetic.exemplars import generate
from eft.train.augment import AugmentConfig
from eft.train.data import MixSampler, TrainSet, concat_sets
from eft.train.errors import TrainError
from eft.train.losses import LossWeights
from eft.train.trainer import OptimConfig, OutputSpec, Trainer, TrainerConfig, latest_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_set(body):
    g = torch.Generator().manual_seed(0)
    poses = (torch.randn(32, 72, generator=g) * 0.3).numpy()
    return TrainSet.from_synthetic(generate(poses, 48, 0, body=body), target="annotated",
                                   with_kp3d=True)


def _cfg(**optim) -> TrainerConfig:
    base = dict(steps=20, batch_size=16, lr=1e-3, optimizer="adamw", schedule="cosine",
                weight_decay=1e-4, seed=3)
    base.update(optim)
    return TrainerConfig(optim=OptimConfig(**base), loss=LossWeights(),
                         augment=AugmentConfig(truncation_prob=0.1, upper_body_prob=0.1,
                                               multilevel_prob=0.1),
                         device="cpu", amp="off",
                         output=OutputSpec(progress=False, log_every=5, eval_every=10,
                                           checkpoint_every=0))


def test_overfits_a_tiny_set(body, small_set):
    """No augmentation, 16 people, 150 steps: the total loss falls at least 5x, the 3D
    keypoint term 20x and the 2D term 5x (measured: 7x, 28x, 10x)."""
    data = small_set.subset(torch.arange(16))
    torch.manual_seed(0)
    model = KeypointRegressor(width=128, hidden=128, dropout=0.0)
    cfg = dataclasses.replace(_cfg(steps=150, lr=1e-3, schedule="constant"),
                              augment=AugmentConfig.none())
    trainer = Trainer(model, body, data, cfg)
    first, parts = trainer.train_step()
    trainer.run()
    last = trainer.last_parts
    assert trainer.running < first / 5, (first, trainer.running)
    assert last["kp3d"] < parts["kp3d"] / 20, (parts, last)
    assert last["kp2d"] < parts["kp2d"] / 5, (parts, last)


def test_resume_reproduces_the_uninterrupted_run(body, small_set, tmp_path):
    """20 steps in one go == 10 steps, checkpoint, a fresh process state, 10 more."""
    torch.manual_seed(1)
    init = KeypointRegressor(width=64, hidden=64)  # dropout on: the torch RNG matters
    cfg = _cfg(steps=20)
    evals = []
    full = Trainer(copy.deepcopy(init), body, small_set, cfg,
                   evaluate=lambda step, m: evals.append(step) or {"x_mm": float(step)})
    full.run()
    assert evals == [10, 20]

    half = Trainer(copy.deepcopy(init), body, small_set, cfg, out_dir=tmp_path / "b")
    half.run(until=10)
    ckpt = half.save_checkpoint()
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    torch.rand(100)
    other = KeypointRegressor(width=64, hidden=64)  # different weights before loading
    resumed = Trainer(other, body, small_set, cfg, out_dir=tmp_path / "b")
    assert resumed.load_checkpoint(ckpt) == 10
    resumed.run()
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k
    assert full.running == resumed.running
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step_0000020.pt"
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert [int(s.split('"step": ')[1].split(",")[0]) for s in lines] == [5, 10, 15, 20]


def test_bad_checkpoint_is_one_line_error(body, small_set, tmp_path):
    bad = tmp_path / "step_0000001.pt"
    bad.write_bytes(b"not a checkpoint")
    trainer = Trainer(KeypointRegressor(width=32, hidden=32), body, small_set, _cfg())
    with pytest.raises(TrainError, match="not a readable checkpoint"):
        trainer.load_checkpoint(bad)


def test_mix_sampler_shares_and_ranges():
    s = MixSampler([10, 1000, 5], [0.3, 0.6, 0.1])
    assert s.counts(64) == [19, 39, 6] and sum(s.counts(7)) == 7
    idx = s.sample(64, torch.Generator().manual_seed(0))
    assert ((idx < 10).sum(), ((idx >= 10) & (idx < 1010)).sum(), (idx >= 1010).sum()) == (
        19, 39, 6)
    assert idx.max() < 1015
    with pytest.raises(TrainError):
        MixSampler([3, 4], [0.0, -1.0])


def test_mix_sampler_schedule_moves_linearly():
    """Shares scheduled from 0.5 / 0.5 to 1 / 0: the fits' count falls linearly with
    progress (closed form), both ends are exact, and fixed shares ignore progress."""
    s = MixSampler([100, 50], [0.5, 0.5], final_weights=[1.0, 0.0])
    for t, second in ((0.0, 32), (0.25, 24), (0.5, 16), (1.0, 0), (2.0, 0)):
        assert s.counts(64, t) == [64 - second, second]
    idx = s.sample(64, torch.Generator().manual_seed(0), progress=1.0)
    assert bool((idx < 100).all())
    fixed = MixSampler([100, 50], [0.3, 0.7])
    assert fixed.counts(64, 0.0) == fixed.counts(64, 1.0) == [19, 45]
    with pytest.raises(TrainError):
        MixSampler([3, 4], [1, 1], final_weights=[0.0, 0.0])


def test_trainer_follows_the_share_schedule(body, small_set):
    """The trainer passes its progress to the sampler: with the second block scheduled
    from all to none, the first step draws only from it and the last only from the
    first block."""
    seen = []

    class Spy(MixSampler):
        def sample(self, batch_size, generator, progress=0.0):
            idx = super().sample(batch_size, generator, progress)
            seen.append((progress, int((idx >= 8).sum())))
            return idx

    trainer = Trainer(KeypointRegressor(width=32, hidden=32), body, small_set, _cfg(steps=3),
                      sampler=Spy([8, 40], [0, 1], final_weights=[1, 0]))
    trainer.run()
    b = trainer.config.optim.batch_size
    assert [p for p, _ in seen] == [0.0, 0.5, 1.0]
    assert seen[0][1] == b and seen[-1][1] == 0


def test_mixing_two_sets_trains_on_both(body, small_set):
    a, b = small_set.subset(torch.arange(8)), small_set.subset(torch.arange(8, 48))
    data = concat_sets([a, b])
    assert len(data) == 48 and data.ids[:8] == a.ids
    trainer = Trainer(KeypointRegressor(width=32, hidden=32), body, data, _cfg(steps=2),
                      sampler=MixSampler([8, 40], [1, 1]))
    trainer.run()
    assert trainer.step == 2


def test_autocast_path_runs(body, small_set):
    """AMP (bfloat16 autocast; on CUDA by default, asked for explicitly here on the CPU):
    the loss stays finite and the weights move."""
    model = KeypointRegressor(width=32, hidden=32)
    before = copy.deepcopy(model.state_dict())
    cfg = dataclasses.replace(_cfg(steps=3), amp="bf16")
    trainer = Trainer(model, body, small_set, cfg)
    assert trainer.amp_dtype == torch.bfloat16
    loss, parts = trainer.train_step()
    assert np.isfinite(loss) and all(np.isfinite(v) for v in parts.values())
    assert not torch.equal(before["fc1.weight"], model.state_dict()["fc1.weight"])


def test_hmr_trains_on_tiny_images(body, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    kp = np.zeros((3, 49, 3), np.float32)
    kp[:, 25:37, :2] = rng.uniform(10, 40, (3, 12, 2))
    kp[:, 25:37, 2] = 1
    rot = torch.eye(3).expand(3, 24, 3, 3).clone()
    data = TrainSet.from_arrays(kp, np.tile([[25.0, 20.0]], (3, 1)), np.full(3, 0.25),
                                rotmat=rot, betas=np.zeros((3, 10)), image_paths=paths)
    torch.manual_seed(0)
    model = HMR()
    before = model.fc1.weight.detach().clone()
    cfg = dataclasses.replace(_cfg(steps=2, batch_size=2), inputs="images", img_res=64)
    trainer = Trainer(model, body, data, cfg)
    trainer.run()
    assert trainer.step == 2 and np.isfinite(trainer.running)
    assert not torch.equal(before, model.fc1.weight)
    with pytest.raises(TrainError, match="image"):
        Trainer(KeypointRegressor(width=32, hidden=32), body,
                dataclasses.replace(data, image_paths=None), cfg)
