"""``scripts/bench_coco_job.py``: the whole-COCO job benchmark runs the shipped config
through a real ``eft fit`` process on the real COCO 2017 train file (a few people here)
and reports the job's own counts."""

from __future__ import annotations

import json

from tests.helpers import load_script, require_file


def test_bench_coco_job_smoke(shared_data, tmp_path):
    train = require_file(shared_data / "coco2017_keypoints" / "person_keypoints_train2017.json")
    bench = load_script("bench_coco_job")
    bench.DATA = train.parents[1]
    out = tmp_path / "job"
    # the recipe named, as auto picks it for COCO (tests/test_jobs_recipe.py): no pilot
    r = bench.main(["--limit", "24", "--workers", "1", "--out", str(out),
                    "--set", "eft.preset=open-prior"])
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved == r
    # 24 people fitted (the first 24 of the file with >= 6 keypoints), every one counted
    assert r["fitted"] == 24
    assert r["accepted"] + sum(r["rejected_by_flag"].values()) == 24
    assert r["recipe"] == {"scope": "bias", "lr": 3e-4, "max_iters": 10, "with_ankles": True,
                           "mirror_average": True}
    assert r["wall_s"] >= r["job_seconds"] > 0 and not r["meets_target"]  # --limit: no verdict
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# bench_coco_job") and "| people fitted | 24 |" in md
    assert "would take about" in md and "--limit 24" in md
