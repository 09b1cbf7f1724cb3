"""``eft.preset: auto``: a pilot fit picks ``open-prior`` or ``open-prior-exact`` from how
exact the job's labels are (eft.jobs.recipe)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from eft.fitting import exemplar_batch, fit
from eft.fitting.auto import EXACT_LABELS_BELOW, PILOT_SIZE, own_keys
from eft.fitting.config import EFTConfig, eft_preset
from eft.jobs import config_from_dict, run_job
from eft.jobs.recipe import pilot_sample
from eft.jobs.sources import read_sources

#: exact labels: no annotation noise, nothing missing, nobody truncated
EXACT = {"noise_scale": 0.0, "missing_rate": 0.0, "limb_drop_prob": 0.0,
         "truncation_prob": 0.0}


def job(out: Path, n: int = 24, labels: dict | None = None, **extra) -> dict:
    d = {"datasets": [{"kind": "synthetic", "name": "syn",
                       "options": {"n": n, "seed": 5, **(labels or {})}}],
         "output": {"dir": str(out), "formats": ["h5"]},
         "batch_size": 8, "chunk_size": 8, "devices": ["cpu"]}
    d.update(extra)
    return d


def test_auto_is_the_default_with_a_shipped_prior(tmp_path):
    cfg = config_from_dict(job(tmp_path))
    assert cfg.eft_auto and cfg.eft == eft_preset("open-prior")
    named = config_from_dict(job(tmp_path, eft={"preset": "open-prior"}))
    assert not named.eft_auto and named.eft == cfg.eft
    keys = config_from_dict(job(tmp_path, eft={"preset": "auto", "max_iters": 5}))
    assert keys.eft_auto and keys.eft == eft_preset("open-prior", max_iters=5)
    assert own_keys(keys.eft) == {"max_iters": 5}
    # another regressor file keeps EFT's published recipe
    other = config_from_dict(job(tmp_path, regressor=str(tmp_path / "mine.pt")))
    assert not other.eft_auto and other.eft == EFTConfig()
    # a resolved config (every eft key written out) leaves nothing to pick, even one
    # written before eft_auto existed
    every = dataclasses.asdict(eft_preset("open-prior-exact"))
    assert not config_from_dict(job(tmp_path, eft=every)).eft_auto
    with pytest.raises(Exception, match="auto"):
        config_from_dict(job(tmp_path, eft={"preset": "autp"}))


def _spread(ids: list[str], n: int) -> list[str]:
    return [ids[int(round(i))] for i in np.linspace(0, len(ids) - 1, n)]


def test_pilot_sample_is_spread_over_the_ids_and_ignores_their_order():
    from eft.jobs.config import DatasetConfig

    people = read_sources((DatasetConfig(kind="synthetic", options={"n": 40}),)).exemplars
    bad = dataclasses.replace(people[3], center=np.array([np.nan, 0.0]))
    people = people[:3] + [bad] + people[4:]
    ids = sorted(e.id for e in people if e is not bad)
    assert [e.id for e in pilot_sample(people, 10)] == _spread(ids, 10)
    assert [e.id for e in pilot_sample(people[::-1], 10)] == _spread(ids, 10)
    assert [e.id for e in pilot_sample(people, 100)] == ids
    assert PILOT_SIZE == 256


def _run(out: Path, **kw):
    return run_job(config_from_dict(job(out, **kw)), progress=False)


def test_auto_picks_the_exact_recipe_for_exact_labels(tmp_path, one_thread):
    exact = _run(tmp_path / "a", labels=EXACT, eft={"max_iters": 12})
    choice = exact.summary.recipe_auto
    assert choice["preset"] == "open-prior-exact" and choice["pilot"] == 24
    assert choice["reproj_median"] < EXACT_LABELS_BELOW
    # the job runs that recipe with its own keys on top, and says so
    cfg = config_from_dict(exact.manifest.config)
    # (a pilot of 24 people is too small to measure the labels' skeleton: the torso
    # keeps the preset's weight)
    assert cfg.eft == eft_preset("open-prior-exact", max_iters=12) and not cfg.eft_auto
    assert "recipe     open-prior-exact (eft.preset auto" in exact.summary.format()
    # auto measured the labels itself: no second opinion from the summary's hint
    from eft.jobs.summary import ANNOTATED_LABELS_ABOVE, Summary

    loud = Summary(fitted=1, recipe="open-prior-exact", reproj_median=ANNOTATED_LABELS_ABOVE * 2)
    assert "human-annotated" in loud.format()
    quiet = Summary(fitted=1, recipe="open-prior-exact", recipe_auto=choice,
                    reproj_median=ANNOTATED_LABELS_ABOVE * 2)
    assert "human-annotated" not in quiet.format() and "eft.preset auto" in quiet.format()
    written = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert written["eft"]["smplify_blend"] == 0.5 and written["eft_auto"] is False

    # the pilot is the open-prior fit of the job's people (without its refit of people
    # lying down: pilot_config): its typical value, recomputed
    from eft.body import BodyModel
    from eft.models import load_regressor

    people = read_sources(cfg.datasets).exemplars
    fits = fit(load_regressor("default"), BodyModel.load(), exemplar_batch(people),
               eft_preset("open-prior", max_iters=12, tilted_above_deg=0.0), progress=False)
    # 24 people, a small pilot: the geometric mean of the middle 20 (pilot_statistic)
    logs = np.sort(np.log([f.quality.reproj_frac_bbox for f in fits]))
    want = float(np.exp(logs[2:22].mean()))
    assert choice["reproj_median"] == pytest.approx(want, rel=1e-5)

    # naming that recipe is the same job: it resumes with nothing left to fit
    named = _run(tmp_path / "a", labels=EXACT,
                 eft={"preset": "open-prior-exact", "max_iters": 12})
    assert named.summary.fitted_this_run == 0 and named.summary.recipe_auto is None
    # so is auto again, and so is a run limited to a few people: same pilot, same pick
    again = _run(tmp_path / "a", labels=EXACT, eft={"max_iters": 12}, limit=5)
    assert again.summary.fitted_this_run == 0 and again.summary.recipe_auto == {
        **choice, "seconds": again.summary.recipe_auto["seconds"]}


def test_auto_keeps_open_prior_for_annotated_labels(tmp_path, one_thread):
    noisy = _run(tmp_path / "b")  # the generator's default: COCO-like annotation noise
    choice = noisy.summary.recipe_auto
    assert choice["preset"] == "open-prior"
    assert choice["reproj_median"] > EXACT_LABELS_BELOW
    assert config_from_dict(noisy.manifest.config).eft == eft_preset("open-prior")
    # the same job named open-prior resumes into the folder
    named = _run(tmp_path / "b", eft={"preset": "open-prior"})
    assert named.summary.fitted_this_run == 0



def test_auto_names_its_pick_when_the_folder_holds_another_recipe(tmp_path, one_thread):
    """Exact labels fitted with open-prior (as before auto was the default): an auto
    run refuses to resume into them, and says how to."""
    from eft.jobs import JobStoreError

    before = _run(tmp_path / "c", n=12, labels=EXACT, eft={"preset": "open-prior"})
    assert before.summary.recipe_auto is None
    with pytest.raises(JobStoreError, match=r"another configuration .*auto picked "
                       r"open-prior-exact.*--set eft.preset=open-prior"):
        _run(tmp_path / "c", n=12, labels=EXACT)
    again = _run(tmp_path / "c", n=12, labels=EXACT, eft={"preset": "open-prior"})
    assert again.summary.fitted_this_run == 0


def test_auto_on_exact_labels_keeps_the_camera_and_says_how_to_resume_without(
        tmp_path, one_thread):
    """Exact synthetic labels (images of known size): auto keeps open-prior-exact's
    image-camera refinement, and the summary says so.  A folder fitted by
    open-prior-exact without it (an auto job of the day before) is not resumed by
    auto, whose error says how to resume it."""
    from eft.fitting.auto import PERSPECTIVE_LABELS_BELOW
    from eft.jobs import JobStoreError

    before = _run(tmp_path / "d", n=12, labels=EXACT,
                  eft={"preset": "open-prior-exact", "perspective_steps": 0})
    with pytest.raises(JobStoreError, match=r"auto picked open-prior-exact for these "
                       r"labels \(with its image-camera refinement.*eft.perspective_steps=0"):
        _run(tmp_path / "d", n=12, labels=EXACT)
    again = _run(tmp_path / "d", n=12, labels=EXACT,
                 eft={"preset": "open-prior-exact", "perspective_steps": 0})
    assert again.summary.fitted_this_run == 0 and before.summary.fitted_this_run == 12
    fresh = _run(tmp_path / "e", n=12, labels=EXACT)
    choice = fresh.summary.recipe_auto
    assert choice["preset"] == "open-prior-exact"
    assert choice["perspective_median"] < PERSPECTIVE_LABELS_BELOW
    assert config_from_dict(fresh.manifest.config).eft == eft_preset("open-prior-exact")
    assert "image-camera refinement on" in fresh.summary.format()


@pytest.mark.parametrize("old", [
    {"preset": "open-prior", "tilted_above_deg": 0.0},
    {"preset": "open-prior", "smplify_init": "regressor"},
], ids=["before-the-refit", "refit-from-the-guess"])
def test_auto_on_annotated_labels_says_how_to_resume_without_the_tilted_refit(
        tmp_path, one_thread, old):
    """A folder fitted by open-prior before it refitted people lying down (an auto job
    of the day before), or before the refit started SMPLify from EFT's fit, is not
    resumed by auto into fits made another way; the error says how to resume it, and
    that resumes."""
    from eft.jobs import JobStoreError

    before = _run(tmp_path / "t", n=12, eft=old)
    with pytest.raises(JobStoreError, match=r"auto picked open-prior for these labels "
                       r"\(with its second fit of people leaning more than 30 degrees.*"
                       r"eft.tilted_above_deg=0.*eft.tilted_above_deg=60 "
                       r"--set eft.smplify_init=regressor.*eft.smplify_init=regressor\)"):
        _run(tmp_path / "t", n=12)
    again = _run(tmp_path / "t", n=12, eft=old)
    assert again.summary.fitted_this_run == 0 and before.summary.fitted_this_run == 12


def test_a_changed_refit_of_people_lying_down_is_not_resumed(tmp_path, one_thread,
                                                             monkeypatch):
    """The refit's settings decide the fits of tilted people, so they are part of the
    job's identity (and resume hash): a folder fitted with other ones is refused with
    only that key named, and the settings of the run that made it resume it."""
    from eft.jobs import JobStoreError, runner

    cfg = {"preset": "open-prior"}
    before_refit = dict(runner.TILTED_REFIT, lr=1e-3, max_iters=30)
    monkeypatch.setattr(runner, "TILTED_REFIT", before_refit)
    first = _run(tmp_path / "r", n=12, eft=cfg)
    assert first.manifest.identity["tilted_refit"] == before_refit
    monkeypatch.undo()
    with pytest.raises(JobStoreError, match=r"configuration \(identity.tilted_refit.lr: "
                       r"0.001 -> 0.0005; identity.tilted_refit.max_iters: 30 -> 10\)"):
        _run(tmp_path / "r", n=12, eft=cfg)
    monkeypatch.setattr(runner, "TILTED_REFIT", before_refit)
    again = _run(tmp_path / "r", n=12, eft=cfg)
    assert first.summary.fitted_this_run == 12 and again.summary.fitted_this_run == 0
    # without the refit it is not part of the identity: such folders resume as before
    off = _run(tmp_path / "o", n=12, eft={"preset": "open-prior", "tilted_above_deg": 0.0})
    assert "tilted_refit" not in off.manifest.identity


def _two(out: Path, first: dict, second: dict, **extra) -> dict:
    """A job of an exact-labelled studio set and an annotated photo set."""
    d = job(out, chunk_size=256, **extra)
    d["datasets"] = [
        {"kind": "synthetic", "name": "studio", "options": {"n": 24, "seed": 5, **first}},
        {"kind": "synthetic", "name": "photos", "options": {"n": 40, "seed": 6, **second}}]
    return d


def _fits(result) -> dict[str, np.ndarray]:
    """{id: fitted 3D keypoints} of a job's final file."""
    from eft.annotations import read_annotations

    records = read_annotations(result.summary.outputs["h5"])
    return {r.exemplar.id: np.asarray(r.fit.keypoints3d) for r in records}


def test_a_job_mixing_exact_and_annotated_datasets_fits_each_as_its_own_job(
        tmp_path, one_thread, caplog, monkeypatch):
    """Under auto, a dataset whose own pilot picks other settings than the job's is
    fitted with them: every person's fit equals that of a job of their dataset alone,
    though both datasets share one chunk; the summary and the resolved config say so,
    and the job resumes from either its YAML or the resolved config.  The datasets'
    pilots reuse the job pilot's fits: nobody is fitted twice with one recipe."""
    import logging
    from collections import Counter

    from eft.jobs import recipe

    fitted: Counter = Counter()
    fit_pilot = recipe._fit_pilot

    def counted(config, eft, pilot):
        fitted.update((repr(eft), e.id) for e in pilot)
        return fit_pilot(config, eft, pilot)

    monkeypatch.setattr(recipe, "_fit_pilot", counted)
    with caplog.at_level(logging.INFO, logger="eft.jobs"):
        mixed = run_job(config_from_dict(_two(tmp_path / "m", EXACT, {})), progress=False)
    monkeypatch.undo()
    assert len({i for _, i in fitted}) == 64 and max(fitted.values()) == 1
    job_pick = mixed.summary.recipe_auto["preset"]
    odd, reads = (("studio", "open-prior-exact") if job_pick == "open-prior"
                  else ("photos", "open-prior"))
    assert mixed.summary.recipe_auto["datasets_otherwise"] == {odd: reads}
    assert list(mixed.summary.recipe_auto["datasets"]) == [odd]
    assert mixed.summary.recipe_auto["datasets"][odd]["recipe"].startswith(reads)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and "reads as" in r.getMessage()]
    assert any(r.getMessage().startswith(f"dataset {odd}: its own pilot")
               for r in caplog.records)
    lines = mixed.summary.format().splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("recipe ")][0]
    assert lines[at + 1].startswith(f"per set    dataset {odd}: {reads}")
    assert not any(line.startswith("mixed ") for line in lines)
    # the resolved config names the odd dataset's settings, and loads back equal
    written = yaml.safe_load((mixed.output_dir / "config.yaml").read_text())
    by_name = {d["name"]: d for d in written["datasets"]}
    resolved = config_from_dict(written)
    assert by_name[odd]["eft"] is not None
    assert by_name["photos" if odd == "studio" else "studio"]["eft"] is None
    assert [ds.eft is not None for ds in resolved.datasets] == [odd == "studio",
                                                               odd == "photos"]
    alone = {name: run_job(config_from_dict(_two(
        tmp_path / name, EXACT, {}) | {"datasets": [ds]}), progress=False)
        for name, ds in zip(("studio", "photos"), _two(tmp_path, EXACT, {})["datasets"],
                            strict=True)}
    assert alone[odd].summary.recipe_auto["preset"] == reads
    got = _fits(mixed)
    assert len(got) == 64
    for one in alone.values():
        for i, k3d in _fits(one).items():
            np.testing.assert_allclose(got[i], k3d, atol=1e-5, err_msg=i)
    # resumed from the same YAML (the same pilots) or from the resolved config
    again = run_job(config_from_dict(_two(tmp_path / "m", EXACT, {})), progress=False)
    assert again.summary.fitted_this_run == 0
    from_yaml = run_job(resolved, progress=False)
    assert from_yaml.summary.fitted_this_run == 0
    # two shards pilot alike (every dataset whole), and merged equal the unsharded job
    from eft.jobs.merge import merge_outputs
    from eft.jobs.sharding import Shard

    cfg = config_from_dict(_two(tmp_path / "sh", EXACT, {}))
    dirs = [run_job(cfg, shard=Shard(i, 2), progress=False).output_dir for i in range(2)]
    joined = merge_outputs(dirs, tmp_path / "merged")
    merged = _fits(joined)
    assert merged.keys() == got.keys()
    # the merged summary names the recipes as the shards' do
    for key in ("preset", "pilot", "reproj_median", "datasets_otherwise"):
        assert joined.summary.recipe_auto[key] == mixed.summary.recipe_auto[key]
    assert joined.summary.recipe_auto["datasets"][odd]["recipe"] == mixed.summary.recipe_auto[
        "datasets"][odd]["recipe"]
    assert joined.summary.dataset_recipes == mixed.summary.dataset_recipes
    assert f"per set    dataset {odd}: {reads}" in joined.summary.format()
    for i, k3d in got.items():
        np.testing.assert_allclose(merged[i], k3d, atol=1e-5, err_msg=i)


def test_one_recipe_per_job_names_the_dataset_that_reads_otherwise(tmp_path, one_thread,
                                                                     caplog):
    """With ``recipe_per_dataset: false`` (how jobs ran before) one recipe fits the whole
    job: where a dataset's own pilot picks another recipe, the job says which dataset,
    what it reads as, and what to do; datasets that agree are not named."""
    import logging

    with caplog.at_level(logging.WARNING, logger="eft.jobs"):
        mixed = run_job(config_from_dict(_two(tmp_path / "m", EXACT, {}, limit=2,
                                              recipe_per_dataset=False)), progress=False)
    job_pick = mixed.summary.recipe_auto["preset"]
    warned = [r.getMessage() for r in caplog.records if "reads as" in r.getMessage()]
    assert len(warned) == 1, warned
    odd, reads = (("studio", "open-prior-exact") if job_pick == "open-prior"
                  else ("photos", "open-prior"))
    assert warned[0].startswith(f"dataset {odd} reads as {reads} on its own")
    assert "fit it as a job of its own, or give it its own eft.preset" in warned[0]
    # the summary says it too, on its own line under the recipe
    assert mixed.summary.recipe_auto["datasets_otherwise"] == {odd: reads}
    assert "datasets" not in mixed.summary.recipe_auto
    assert all(ds.eft is None for ds in config_from_dict(mixed.manifest.config).datasets)
    lines = mixed.summary.format().splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("recipe ")][0]
    assert lines[at + 1] == (f"mixed      dataset {odd} reads as {reads} on its own: fit it "
                             "as a job of its own, or give it its own eft.preset")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eft.jobs"):
        agree = run_job(config_from_dict(_two(tmp_path / "a", {}, {}, limit=2)),
                        progress=False)
    assert not [r for r in caplog.records if "reads as" in r.getMessage()
                or "its own pilot" in r.getMessage()]
    assert "datasets_otherwise" not in agree.summary.recipe_auto
    assert "datasets" not in agree.summary.recipe_auto
    assert "mixed " not in agree.summary.format()


def test_a_dataset_named_with_its_own_recipe(tmp_path, one_thread):
    """A dataset's ``eft`` (keys over the job's, its ``preset`` replacing the job's) fits
    that dataset as a job of it alone with those settings; ``auto`` is refused there."""
    from eft.jobs.config import JobConfigError

    d = _two(tmp_path / "m", EXACT, {}, eft={"preset": "open-prior", "max_iters": 6})
    d["datasets"][0]["eft"] = {"preset": "open-prior-exact", "perspective_steps": 0}
    cfg = config_from_dict(d)
    assert cfg.datasets[0].eft == eft_preset("open-prior-exact", max_iters=6,
                                             perspective_steps=0)
    assert cfg.datasets[1].eft is None
    both = run_job(cfg, progress=False)
    assert both.summary.dataset_recipes == {
        "studio": "open-prior-exact with max_iters=6, perspective_steps=0"}
    assert ("per set    dataset studio: open-prior-exact with max_iters=6, "
            "perspective_steps=0") in both.summary.format()
    studio = dict(d, datasets=[{k: v for k, v in d["datasets"][0].items() if k != "eft"}],
                  output={"dir": str(tmp_path / "s"), "formats": ["h5"]},
                  eft={"preset": "open-prior-exact", "max_iters": 6, "perspective_steps": 0})
    photos = dict(d, datasets=[d["datasets"][1]],
                  output={"dir": str(tmp_path / "p"), "formats": ["h5"]})
    got = _fits(both)
    for alone in (studio, photos):
        for i, k3d in _fits(run_job(config_from_dict(alone), progress=False)).items():
            np.testing.assert_allclose(got[i], k3d, atol=1e-5, err_msg=i)
    # the resolved config holds every key of it and resumes
    assert run_job(config_from_dict(both.manifest.config),
                   progress=False).summary.fitted_this_run == 0
    # worker processes get each chunk's recipes too (small chunks of one dataset each,
    # and one chunk holding both)
    d2 = dict(d, output={"dir": str(tmp_path / "w"), "formats": ["h5"]}, workers=2,
              chunk_size=24)
    two_workers = _fits(run_job(config_from_dict(d2), progress=False))
    assert two_workers.keys() == got.keys()
    for i, k3d in got.items():
        np.testing.assert_allclose(two_workers[i], k3d, atol=1e-5, err_msg=i)
    # under the job's auto, a dataset with its own recipe keeps it and stays out of the
    # pilot: the rest are piloted (one dataset left: no pilot of its own)
    d3 = _two(tmp_path / "x", EXACT, {}, limit=2)
    d3["datasets"][0]["eft"] = {"preset": "open-prior-exact", "max_iters": 6}
    mine = run_job(config_from_dict(d3), progress=False)
    assert mine.summary.recipe_auto["pilot"] == 40 and "datasets" not in mine.summary.recipe_auto
    assert mine.summary.recipe_auto["preset"] == "open-prior"
    assert config_from_dict(mine.manifest.config).datasets[0].eft == eft_preset(
        "open-prior-exact", max_iters=6)
    lines = mine.summary.format().splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("recipe ")][0]
    assert lines[at + 1] == "per set    dataset studio: open-prior-exact with max_iters=6"
    bad = _two(tmp_path / "b", {}, {})
    bad["datasets"][0]["eft"] = {"max_iters": 6}  # the job's preset is auto
    with pytest.raises(JobConfigError, match=r"datasets\[0\]\.eft: these keys go on top "
                       r"of a recipe, and the job's is auto: name this dataset's recipe"):
        config_from_dict(bad)
    bad["datasets"][0]["eft"] = {"max_iterz": 6}  # a typo is named first
    with pytest.raises(JobConfigError, match=r"datasets\[0\]\.eft\.max_iterz: unknown key "
                       r"\(did you mean 'max_iters'\?\)"):
        config_from_dict(bad)
    bad["datasets"][0]["eft"] = {"preset": "auto"}
    with pytest.raises(JobConfigError, match=r"datasets\[0\]\.eft\.preset: name a recipe"):
        config_from_dict(bad)


def test_a_pilot_too_small_to_read_the_labels_keeps_open_prior(tmp_path, one_thread,
                                                               caplog):
    """Under MIN_PILOT people a pilot cannot tell exact labels from annotated ones (4
    real CrowdPose people read exact): a job that small runs ``open-prior``, and in a
    job of several datasets one that small follows the job's pick."""
    import logging

    from eft.fitting.auto import MIN_PILOT

    assert MIN_PILOT == 8
    with caplog.at_level(logging.INFO, logger="eft"):
        tiny = _run(tmp_path / "t", n=MIN_PILOT - 4, labels=EXACT)
    choice = tiny.summary.recipe_auto
    assert choice["pilot"] == MIN_PILOT - 4 and choice["preset"] == "open-prior"
    # its labels are exact: a pilot of that size would have read them so
    assert choice["reproj_median"] < EXACT_LABELS_BELOW
    assert "cannot tell exact labels from annotated ones" in caplog.text
    assert config_from_dict(tiny.manifest.config).eft == eft_preset("open-prior")
    caplog.clear()
    d = _two(tmp_path / "m", EXACT, {}, limit=2)
    d["datasets"][1]["options"]["n"] = MIN_PILOT - 1
    with caplog.at_level(logging.INFO, logger="eft.jobs"):
        mixed = run_job(config_from_dict(d), progress=False)
    assert mixed.summary.recipe_auto["pilot"] == 24 + MIN_PILOT - 1
    assert "datasets" not in mixed.summary.recipe_auto
    assert "datasets_otherwise" not in mixed.summary.recipe_auto
    assert all(ds.eft is None for ds in config_from_dict(mixed.manifest.config).datasets)
    assert f"dataset photos: {MIN_PILOT - 1} people, too few for a pilot of its own" \
        in caplog.text
