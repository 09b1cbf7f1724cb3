"""``eft train``'s outputs for people: progress lines while data is generated and while
evaluating, ``metrics.csv`` (``log.jsonl`` as a table) and TensorBoard scalars when the
package is there (checked with a stand-in ``SummaryWriter``, as tensorboard is an
optional install)."""

from __future__ import annotations

import csv
import json
import sys
import types

import yaml

from eft.cli import main


class _Writer:
    """Records what a ``torch.utils.tensorboard.SummaryWriter`` would write."""

    made: list = []

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.scalars: list[tuple[str, float, int]] = []
        self.flushed = 0
        _Writer.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, float(value), int(step)))

    def flush(self):
        self.flushed += 1


def test_train_progress_metrics_csv_and_tensorboard(tmp_path, capsys, monkeypatch):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = _Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    _Writer.made.clear()
    cfg = {
        "model": {"width": 16, "hidden": 16},
        "datasets": [{"synthetic": {"n": 24, "seed": 3}, "name": "syn"}],
        "val": [{"kind": "synthetic", "n": 12}],
        "optim": {"steps": 4, "batch_size": 8, "lr": 1e-3},
        "output": {"eval_every": 2, "checkpoint_every": 0, "log_every": 1},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--no-progress",
                 "--threads", "1"]) == 0
    text = capsys.readouterr().out
    # progress while data is made and while evaluating
    assert "dataset syn: generating 24 synthetic people (seed 3) ..." in text
    assert "dataset syn: generated in" in text
    assert "val set" in text and ": 12 people in" in text
    assert text.count("evaluating on") == 2 and "step 4: evaluating on" in text

    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(entries) == 4 + 2
    assert list(rows[0])[:2] == ["kind", "step"]
    for row, entry in zip(rows, entries, strict=True):
        assert row["kind"] == entry["kind"] and int(row["step"]) == entry["step"]
        for key, value in entry.items():
            if isinstance(value, float):
                assert float(row[key]) == value
    assert rows[-1]["pa_mpjpe_mm"] and not rows[0]["pa_mpjpe_mm"]  # eval-only column

    (writer,) = _Writer.made
    assert writer.log_dir == str(out / "tensorboard") and writer.flushed >= 1
    want = [(f"{e['kind']}/{k}", float(v), e["step"]) for e in entries
            for k, v in e.items() if k not in ("kind", "step")
            and isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert writer.scalars == want
    assert ("eval/pa_mpjpe_mm", entries[-1]["pa_mpjpe_mm"], 4) in writer.scalars
