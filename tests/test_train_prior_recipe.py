"""The shipped prior's recipe is a training config (``fitting/training/keypoint-prior-v2.yaml``)
that ``eft train`` runs: it loads to exactly ``eft.train.prior.PRIOR_V2`` and runs on a
tiny budget."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from eft.cli import main
from eft.train.config import load_train_config
from eft.train.prior import INPUT_FORMATS, PRIOR_V2, PRIOR_V2_REAL_FRACTION
from eft.train.trainer import TrainerConfig

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = Path(__file__).resolve().parents[1] / "fitting" / "training" / "keypoint-prior-v2.yaml"


#: Options added after some priors shipped, with the value that means "off": a
#: checkpoint made before an option existed does not record it.
_LATER_OPTIONS = {("augment", "hide_limb_prob_2d"): None, ("loss", "hidden_2d"): 1.0,
                  ("loss", "kp2d_distance"): 0.0, ("loss", "hidden_2d_distance"): 0.0,
                  ("augment", "clean_input_prob"): 0.0, ("loss", "kp3d_distance"): 0.0,
                  ("loss", "meta_eft"): 0.0, ("loss", "meta_eft_samples"): 64,
                  ("augment", "skeleton_jitter_prob"): 0.0,
                  ("augment", "bone_scale_std"): 0.10, ("augment", "width_scale_std"): 0.15,
                  ("augment", "torso_shift_std"): 0.05}


def _as_recorded(cfg: TrainerConfig, recorded: dict) -> dict:
    """``config_dict(cfg)`` as the checkpoint's metadata ``recorded`` holds it: an option
    it lacks (made before the option existed) is dropped when ``cfg`` leaves it off."""
    from eft.train.prior import config_dict

    d = config_dict(cfg)
    for (part, key), off in _LATER_OPTIONS.items():
        if key not in recorded[part] and d[part].get(key, off) == off:
            d[part].pop(key, None)
    return d


def _trainer_part(cfg) -> TrainerConfig:
    return TrainerConfig(**{f.name: getattr(cfg, f.name)
                            for f in dataclasses.fields(TrainerConfig)})


def _starts_from(cfg, init: str) -> bool:
    """Whether ``eft train`` builds ``cfg``'s model as the shipped prior ``init``."""
    from eft.models.registry import load_regressor
    from eft.train.run import build_model

    start, start_from = build_model(cfg), load_regressor(init)
    return all(a.equal(b) for a, b in zip(start.state_dict().values(),
                                          start_from.state_dict().values(), strict=True))


def test_recipe_yaml_is_prior_v2():
    cfg = load_train_config(RECIPE)
    assert _trainer_part(cfg) == PRIOR_V2
    assert _trainer_part(cfg) != TrainerConfig()  # not two sets of defaults agreeing
    # the published numbers, written out: a change to both at once still shows here
    assert (PRIOR_V2.optim.steps, PRIOR_V2.optim.batch_size, PRIOR_V2.optim.lr) == \
        (24000, 256, 5e-4)
    assert PRIOR_V2.augment.formats == INPUT_FORMATS and PRIOR_V2.loss.pose_prior == 5e-5
    synth, real = cfg.datasets
    assert real.weight / (synth.weight + real.weight) == PRIOR_V2_REAL_FRACTION
    s = synth.synthetic
    assert (s.n, s.variants, s.seed, s.generator, s.target) == \
        (100_000, 12_000, PRIOR_V2.optim.seed, "prior-v2", "clean")
    assert s.smpl and s.keypoints3d
    assert [(src.kind, Path(src.path).name) for src in real.labels] == \
        [("coco", "person_keypoints_train2017.json"), ("mpii", "mpii_human_pose.csv")]
    assert cfg.model.input_slots == "data" and cfg.model.mean_params == "data"


def test_eft_train_runs_the_recipe_on_a_tiny_budget(shared_data, tmp_path, capsys):
    coco = shared_data / "coco_sample" / "test_coco.json"
    mpii = shared_data / "mpii_sample" / "test_mpii.json"
    out = tmp_path / "run"
    labels = (f"[{{kind: coco, path: '{coco}', options: {{min_keypoints: 6}}}}, "
              f"{{kind: mpii, path: '{mpii}'}}]")
    sets = ["datasets.0.synthetic.n=40", "datasets.0.synthetic.variants=8",
            f"datasets.1.labels={labels}", "val.0.n=16", "optim.batch_size=16",
            "output.eval_every=3", "output.log_every=1", "optim.steps=3"]
    argv = ["train", str(RECIPE), "--out", str(out), "--no-progress", "--threads", "1"]
    for text in sets:
        argv += ["--set", text]
    assert main(argv) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "dataset synthetic-v2: 64 samples, weight 0.6" in text  # 40 + 3 variants x 8
    assert "dataset real-2d:" in text and "weight 0.4" in text
    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in entries if e["kind"] == "train"] == [1, 2, 3]
    assert [e["step"] for e in entries if e["kind"] == "eval"] == [3]
    from eft.models import load_regressor

    model = load_regressor(out / "model.pt")
    assert model.config["width"] == 256 and model.input_slots is not None
    # the run's config.yaml is the recipe with the overrides, and loads back to it
    saved = load_train_config(out / "config.yaml")
    assert saved.optim.steps == 3 and saved.datasets[0].synthetic.variants == 8
    assert dataclasses.replace(saved, output=dataclasses.replace(saved.output, progress=True)) \
        == load_train_config(RECIPE, sets)
    # the initial weights follow optim.seed, not the process's global generator
    import torch

    torch.manual_seed(987654)
    again = [a if a != str(out) else str(tmp_path / "again") for a in argv]
    assert main(again) == 0, capsys.readouterr().err
    twin = load_regressor(tmp_path / "again" / "model.pt")
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_eft_train_trains_exactly_as_pretrain_prior(shared_data, body):
    """The recipe through ``eft train``'s pieces (datasets, sampler, model, the loaded
    config as the trainer's) gives the same weights, bit for bit, as the prior's own
    path (``make_prior_v2_sets``, ``real_2d_set``, ``train_prior`` with ``PRIOR_V2``)
    on a tiny budget."""
    import torch

    from eft.data.readers import read_dataset
    from eft.models import KeypointRegressor
    from eft.synthetic.pose_bank import load_pose_bank
    from eft.train.data import TrainSet, concat_sets, data_mean_params
    from eft.train.prior import make_prior_v2_sets, prior_config, real_2d_set, train_prior
    from eft.train.run import build_datasets, build_model
    from eft.train.trainer import Trainer

    coco = shared_data / "coco_sample" / "test_coco.json"
    sets = ["datasets.0.synthetic.n=30", "datasets.0.synthetic.variants=6",
            f"datasets.1.labels=[{{kind: coco, path: '{coco}', options: {{min_keypoints: 6}}}}]",
            "optim.steps=4", "optim.batch_size=10", "output.eval_every=2"]
    cfg = load_train_config(RECIPE, sets)
    data, sampler = build_datasets(cfg, body, log=lambda _: None)
    torch.manual_seed(5)
    ours = build_model(cfg, data)
    trainer = Trainer(ours, body, data, cfg.replace(output={"progress": False}),
                      sampler=sampler)
    trainer.run()

    poses = load_pose_bank().train().poses
    synth = concat_sets([TrainSet.from_synthetic(s)
                         for s in make_prior_v2_sets(poses, 30, 6, 0, body)])
    real = real_2d_set(read_dataset("coco", coco, min_keypoints=6).exemplars)
    slots = torch.nonzero((synth.kp_px[..., 2] > 0).any(0)).flatten().tolist()
    torch.manual_seed(5)
    theirs = KeypointRegressor(width=256, hidden=256, mean_params=data_mean_params(synth),
                               input_slots=slots)
    train_prior(theirs, body, synth, prior_config(PRIOR_V2, steps=4, batch_size=10,
                                                  eval_every=2),
                progress=False, real=real, real_fraction=PRIOR_V2_REAL_FRACTION)
    assert ours.input_slots == theirs.input_slots
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k


def test_v3_recipe_is_v2_with_a_wider_network():
    """Prior v3 is v2's recipe with width 512: the two YAMLs differ in the model's width
    alone, and the shipped v3 file has that width."""
    from eft.models.registry import load_regressor

    v3 = load_train_config(RECIPE.with_name("keypoint-prior-v3.yaml"))
    v2 = load_train_config(RECIPE)
    assert _trainer_part(v3) == PRIOR_V2
    assert (v3.model.width, v3.model.hidden) == (512, 512)
    assert dataclasses.replace(v3.model, width=256, hidden=256) == v2.model
    assert v3.datasets == v2.datasets
    model = load_regressor("keypoint-prior-v3")
    assert (model.config["width"], model.config["hidden"]) == (512, 512)
    assert model.eft_metadata["recipe"] == "v3"


def test_v4_recipe_is_v3_twice_as_long_with_the_gradient_clipped():
    """Prior v4: v3's YAML with 48,000 steps and grad_clip 5 and nothing
    else changed; the shipped file was trained with exactly that configuration."""
    from eft.models.registry import DEFAULT_PRIOR, load_regressor
    from eft.train.prior import PRIOR_V4

    v4 = load_train_config(RECIPE.with_name("keypoint-prior-v4.yaml"))
    v3 = load_train_config(RECIPE.with_name("keypoint-prior-v3.yaml"))
    assert _trainer_part(v4) == PRIOR_V4
    assert (PRIOR_V4.optim.steps, PRIOR_V4.optim.grad_clip) == (48000, 5.0)
    assert PRIOR_V4.replace(optim=dataclasses.replace(PRIOR_V4.optim, steps=24000,
                                                      grad_clip=0.0)) == PRIOR_V2
    assert v4.model == v3.model and v4.datasets == v3.datasets
    assert DEFAULT_PRIOR != "keypoint-prior-v3"
    model = load_regressor("keypoint-prior-v4")
    assert (model.config["width"], model.config["hidden"]) == (512, 512)
    meta = model.eft_metadata
    assert meta["recipe"] == "v4"
    assert meta["config"] == _as_recorded(PRIOR_V4, meta["config"])


def test_v5_recipe_is_v4_warm_started_from_v4():
    """Prior v5: v4's YAML started from v4's weights (``model.init``) at half the peak
    rate with the batches' seed moved to 1, nothing else changed; ``eft train`` builds
    its model as v4 itself."""
    import torch

    from eft.models.registry import load_regressor
    from eft.train.prior import PRIOR_V4, PRIOR_V5, PRIOR_V5_INIT
    from eft.train.run import build_model

    v5 = load_train_config(RECIPE.with_name("keypoint-prior-v5.yaml"))
    v4 = load_train_config(RECIPE.with_name("keypoint-prior-v4.yaml"))
    assert _trainer_part(v5) == PRIOR_V5
    assert (PRIOR_V5.optim.lr, PRIOR_V5.optim.seed, PRIOR_V5.optim.steps) == (2.5e-4, 1, 48000)
    assert PRIOR_V5.replace(optim=dataclasses.replace(PRIOR_V5.optim, lr=5e-4, seed=0)) \
        == PRIOR_V4
    assert PRIOR_V5_INIT == "keypoint-prior-v4" and v5.model.init == PRIOR_V5_INIT
    assert dataclasses.replace(v5.model, init=None) == v4.model
    assert v5.datasets == v4.datasets  # the synthetic people keep seed 0
    start, v4_model = build_model(v5), load_regressor("keypoint-prior-v4")
    for (k, a), b in zip(start.state_dict().items(), v4_model.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("recipe", ["v5", "v6", "v7", "v8", "v9"])
def test_shipped_warm_started_priors_were_trained_by_their_recipes(recipe):
    """The shipped v5 (from v4), v6 (from v5), v7 (from v6), v8 (from v7) and v9 (from
    v8, the default) files: their start's network and input slots, trained with exactly their
    recipe from its weights, and not those weights any more."""
    import torch

    from eft.models.registry import DEFAULT_PRIOR, load_regressor
    from eft.train import prior

    recipe_cfg = getattr(prior, f"PRIOR_{recipe.upper()}")
    init = getattr(prior, f"PRIOR_{recipe.upper()}_INIT")
    assert DEFAULT_PRIOR == "keypoint-prior-v9"
    model, start = load_regressor(f"keypoint-prior-{recipe}"), load_regressor(init)
    assert model.config == start.config and model.input_slots == start.input_slots
    meta = model.eft_metadata
    assert (meta["recipe"], meta["init"]) == (recipe, init)
    assert meta["config"] == _as_recorded(recipe_cfg, meta["config"])
    moved = [k for k, a in model.state_dict().items()
             if a.is_floating_point() and not torch.equal(a, start.state_dict()[k])]
    assert len(moved) > 10


def test_v6_recipe_is_v5_from_v5_with_another_batch_seed():
    from eft.train.prior import PRIOR_V5, PRIOR_V6, PRIOR_V6_INIT

    v6 = load_train_config(RECIPE.with_name("keypoint-prior-v6.yaml"))
    v5 = load_train_config(RECIPE.with_name("keypoint-prior-v5.yaml"))
    assert _trainer_part(v6) == PRIOR_V6 and PRIOR_V6_INIT == "keypoint-prior-v5"
    assert PRIOR_V6.replace(optim=dataclasses.replace(PRIOR_V6.optim, seed=1)) == PRIOR_V5
    assert v6.model.init == PRIOR_V6_INIT and v6.datasets == v5.datasets
    assert dataclasses.replace(v6.model, init=None) == dataclasses.replace(v5.model, init=None)
    assert _starts_from(v6, "keypoint-prior-v5")


def test_v7_recipe_is_a_short_v6_cycle_on_the_real_labels_task():
    from eft.models.registry import load_regressor
    from eft.train.prior import PRIOR_V6, PRIOR_V7, PRIOR_V7_INIT, PRIOR_V7_REAL_FRACTION

    v7 = load_train_config(RECIPE.with_name("keypoint-prior-v7.yaml"))
    v6 = load_train_config(RECIPE.with_name("keypoint-prior-v6.yaml"))
    assert _trainer_part(v7) == PRIOR_V7 and PRIOR_V7_INIT == "keypoint-prior-v6"
    # v6's recipe but for the budget, the batch seed and the real people's hidden limbs
    assert PRIOR_V7.replace(
        optim=dataclasses.replace(PRIOR_V7.optim, steps=PRIOR_V6.optim.steps, seed=2),
        augment=dataclasses.replace(PRIOR_V7.augment, hide_limb_prob_2d=None)) == PRIOR_V6
    assert PRIOR_V7.augment.hide_limb_prob_2d == 1.0
    assert PRIOR_V7.augment.hide_limb_prob == PRIOR_V6.augment.hide_limb_prob
    synth, real = v7.datasets
    assert real.weight / (synth.weight + real.weight) == PRIOR_V7_REAL_FRACTION
    assert [d.name for d in v7.datasets] == [d.name for d in v6.datasets]
    assert [(d.synthetic, d.labels) for d in v7.datasets] == [(d.synthetic, d.labels)
                                                               for d in v6.datasets]
    assert v7.model.init == PRIOR_V7_INIT
    assert _starts_from(v7, "keypoint-prior-v6")
    meta = load_regressor("keypoint-prior-v7").eft_metadata
    assert meta["real_fraction"] == PRIOR_V7_REAL_FRACTION


#: Each later cycle's loss: the previous recipe's with these weights changed.
_LOSS_CHANGES = {"v8": {"hidden_2d": 10.0},  # the hidden joints' squares x10
                 "v9": {"hidden_2d": 1.0, "hidden_2d_distance": 40.0}}  # their distance


@pytest.mark.parametrize(("recipe", "previous"), [("v8", "v7"), ("v9", "v8")])
def test_later_cycles_are_the_previous_recipe_from_its_weights_with_one_loss_change(
        recipe, previous):
    from eft.models.registry import load_regressor
    from eft.train import prior

    new, old = (getattr(prior, f"PRIOR_{r.upper()}") for r in (recipe, previous))
    init = getattr(prior, f"PRIOR_{recipe.upper()}_INIT")
    cfg = load_train_config(RECIPE.with_name(f"keypoint-prior-{recipe}.yaml"))
    cfg_old = load_train_config(RECIPE.with_name(f"keypoint-prior-{previous}.yaml"))
    assert _trainer_part(cfg) == new and init == f"keypoint-prior-{previous}"
    # the previous recipe but for the batch seed and the 2D loss on the hidden joints
    assert new.loss == dataclasses.replace(old.loss, **_LOSS_CHANGES[recipe])
    assert new.replace(optim=dataclasses.replace(new.optim, seed=old.optim.seed),
                       loss=old.loss) == old
    assert new.optim.seed != old.optim.seed
    assert cfg.datasets == cfg_old.datasets and cfg.model.init == init
    assert _starts_from(cfg, init)
    meta = load_regressor(f"keypoint-prior-{recipe}").eft_metadata
    assert meta["real_fraction"] == prior.PRIOR_V7_REAL_FRACTION



def test_prior_config_clean_input_prob_changes_only_that_field():
    from eft.train.prior import PRIOR_V9, prior_config

    cfg = prior_config(PRIOR_V9, clean_input_prob=0.5)
    assert cfg.augment.clean_input_prob == 0.5 and PRIOR_V9.augment.clean_input_prob == 0.0
    assert cfg.replace(augment=dataclasses.replace(cfg.augment, clean_input_prob=0.0)) == PRIOR_V9
    assert prior_config(PRIOR_V9) == PRIOR_V9
