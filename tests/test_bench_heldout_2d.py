"""scripts/bench_heldout_2d.py: the 2D-only references for bench_real2d's held-out joints
(kNN against closed-form answers, the MLP's crop round trip and seeding, a real smoke run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from eft.body.joints import SPIN49_INDEX
from eft.data.exemplar import Exemplar
from eft.fitting.heldout import LIMB_ORDER, LIMB_SLOTS, make_held_out
from tests.helpers import STANDING_PERSON, load_script, require_file

I = SPIN49_INDEX
_PERSON = {k: v for k, v in STANDING_PERSON.items() if k not in ("Nose", "Left Eye", "Right Eye")}


def person(shift=(0.0, 0.0), size=1.0, **moved) -> np.ndarray:
    kp = np.zeros((49, 3))
    for name, (x, y) in {**_PERSON, **moved}.items():
        kp[I[name]] = (size * x + shift[0], size * y + shift[1], 1.0)
    return kp


def exemplar(kp: np.ndarray, i: int = 0) -> Exemplar:
    return Exemplar(id=f"p{i}", image_path=None, center=np.array([130.0, 250.0]),
                    scale=1.8, keypoints=kp, source="coco17")


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_heldout_2d")


def _poses() -> list[np.ndarray]:
    """Four people who differ in every limb (so each is its own nearest neighbour)."""
    return [person(**{"Left Wrist": (180 + 25 * j, 230 - 30 * j),
                      "Right Wrist": (80 - 20 * j, 230 - 40 * j),
                      "Left Ankle": (150 + 15 * j, 400 - 20 * j),
                      "Right Ankle": (110 - 10 * j, 400 - 25 * j)}) for j in range(4)]


def test_knn_k1_recovers_a_moved_and_scaled_copy_exactly(bench):
    poses = _poses()
    train = np.stack(poses)
    # people 0..3 of the query list hide limbs 0..3; each is train pose 3 - i, moved
    # and scaled, so the nearest neighbour on the visible joints is that pose
    queries = []
    for i in range(4):
        q = poses[3 - i].copy()
        q[:, :2] = q[:, :2] * (1.5 + 0.25 * i) + [37.0 * i, -11.0]
        queries.append(q)
    held = make_held_out([exemplar(q, i) for i, q in enumerate(queries)])
    task = bench.task_arrays(held)
    pred = bench.knn_predict(train, task, k=1)
    for i, h in enumerate(held):
        assert h.limb == LIMB_ORDER[i] and h.hidden.sum() == 2
        np.testing.assert_allclose(pred[i, h.hidden], h.labels[h.hidden, :2], atol=1e-9)
        # every other slot is the visible input, untouched
        np.testing.assert_array_equal(pred[i, ~h.hidden], h.exemplar.keypoints[~h.hidden, :2])
    errs = bench.score(held, pred)[0]
    assert errs["mean"] == pytest.approx(0.0, abs=1e-9) and errs["n_joints"] == 8


def test_knn_averages_the_k_nearest_in_the_query_frame(bench):
    # two train people identical but for the left arm: a query with the left arm hidden
    # is equally close to both, and gets the mean of their arms (both twice as big)
    a = person(**{"Left Elbow": (170, 180), "Left Wrist": (180, 230)})
    b = person(**{"Left Elbow": (190, 160), "Left Wrist": (230, 150)})
    far = person(**{"Right Wrist": (10, 10), "Right Ankle": (300, 500)})
    q = person(size=2.0, shift=(5.0, 7.0))
    held = make_held_out([exemplar(q, 0)])
    assert held[0].limb == "left_arm"
    pred = bench.knn_predict(np.stack([a, far, b]), bench.task_arrays(held), k=2)
    for name in ("Left Elbow", "Left Wrist"):
        want = 2.0 * (a[I[name], :2] + b[I[name], :2]) / 2 + [5.0, 7.0]
        np.testing.assert_allclose(pred[0, I[name]], want, atol=1e-9)


class _Oracle(nn.Module):
    """Returns fixed crop-normalised outputs (the answer), ignoring the input."""

    def __init__(self, y: torch.Tensor):
        super().__init__()
        self.y = y

    def forward(self, x):
        return self.y


def test_mlp_crop_round_trip_and_inputs_hide_the_limb(bench):
    held = make_held_out([exemplar(p, i) for i, p in enumerate(_poses())])
    task = bench.task_arrays(held)
    x, y, w = bench.crop_tensors(task)
    # nothing of the hidden limb reaches the input, and the weights are the hidden slots
    assert (x[torch.as_tensor(task["hidden"])] == 0).all()
    assert torch.equal(w.bool(), torch.as_tensor(task["hidden"]))
    assert ((x[..., 2] == 1) == torch.as_tensor(task["visible"][..., 2] > 0)).all()
    # a model that outputs the crop-normalised labels predicts the labels in image px
    pred = bench.mlp_predict(_Oracle(y.clone()), task)
    np.testing.assert_allclose(pred, task["labels"][..., :2], atol=1e-3)


def test_mlp_training_is_seeded_and_learns(bench):
    people = [exemplar(p, i) for i, p in enumerate(_poses())]
    task = bench.task_arrays(bench.every_limb(people))
    assert len(task["limb"]) == 16 and sorted(task["limb"].tolist()) == sorted([0, 1, 2, 3] * 4)
    m1, c1 = bench.train_mlp(task, steps=200, batch_size=16, width=64, lr=3e-3, seed=3,
                             progress=False)
    m2, c2 = bench.train_mlp(task, steps=200, batch_size=16, width=64, lr=3e-3, seed=3,
                             progress=False)
    assert c1 == c2 and len(c1) == 10
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    assert c1[-1] < 0.5 * c1[0]
    # the ablation's loss is the prior's: squared distance over every labelled slot
    m3, c3 = bench.train_mlp(task, steps=200, batch_size=16, width=64, lr=3e-3, seed=3,
                             loss="all-squared", progress=False)
    x, y, w = bench.crop_tensors(task)
    with torch.no_grad():
        d2 = ((m3(x) - y) ** 2).sum(-1)
    on = torch.maximum(w, x[..., 2])
    assert float((d2 * on).sum() / on.sum()) < c3[0]
    assert c3[-1] < 0.5 * c3[0]
    with pytest.raises(ValueError, match="loss"):
        bench.train_mlp(task, steps=1, loss="huber", progress=False)


def test_limb_slots_cover_the_core_joints(bench):
    # the kNN compares on the core joints outside the hidden limb: 10 of 12, always
    for limb in LIMB_ORDER:
        assert sum(s in LIMB_SLOTS[limb] for s in bench.CORE) == 2


def test_bench_heldout_2d_smoke(bench, shared_data, tmp_path, one_thread):
    for rel in ("coco2017_keypoints/person_keypoints_val2017.json",
                "coco2017_keypoints/person_keypoints_train2017.json",
                "mpii_2d/mpii_valid_tompson.h5", "mpii_2d/mpii_human_pose.csv"):
        require_file(shared_data / rel)
    bench.DATA = shared_data
    bench.DATASETS.update(
        coco=("coco", shared_data / "coco2017_keypoints" / "person_keypoints_val2017.json"),
        mpii=("mpii", shared_data / "mpii_2d" / "mpii_valid_tompson.h5"))
    out = tmp_path / "h2d"
    r = bench.main(["--n", "8", "--train-limit", "200", "--steps", "20",
                    "--against", str(tmp_path / "none.json"), "--out", str(out)])
    saved = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").read_text().startswith(f"# {out}")
    assert saved["train"]["coco2017-train"]["eligible"] == 200
    assert saved["train"]["mpii-train"]["eligible"] == 200
    for name in ("coco", "mpii"):
        d = r["datasets"][name]
        assert d["n_held_out"] == 8 and d["paired"] == {}
        for ref in ("knn", "mlp"):
            m = d["references"][ref]
            assert 0 < m["mean"] < 1 and len(m["per_person"]) == 8
            assert np.nanmean(m["per_person"]) == pytest.approx(m["mean"], rel=0.3)
