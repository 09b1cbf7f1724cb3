"""The command line as people expect it: ``eft --help`` without torch, the shipped
configs (``eft config show``), "did you mean" for unknown config keys, and ``eft review``
on a taken port.  (Start-up *time* is a benchmark figure: scripts/bench_cli.py.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eft.cli import main
from tests.helpers import require_module

ROOT = Path(__file__).resolve().parents[1]


def test_cli_start_up_imports_no_torch():
    code = ("import sys, eft.cli; eft.cli._build_parser(); import json; "
            "print(json.dumps(sorted(m for m in ('torch', 'numpy', 'h5py', 'yaml', 'fastapi', "
            "'PIL') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert json.loads(out) == []
    done = subprocess.run([sys.executable, "-m", "eft.cli", "--version"], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    assert done.stdout.startswith("eft ")


@pytest.mark.parametrize("name", ["coco", "mpii", "openpose", "demo"])
def test_config_show_prints_the_shipped_config(name, capsys):
    from eft.jobs.config import config_from_dict

    assert main(["config", "show", name]) == 0
    text = capsys.readouterr().out
    assert text == (ROOT / "fitting" / f"{name}.yaml").read_text()  # the repository's file
    config = config_from_dict(yaml.safe_load(text), source=name)
    assert config.datasets


def test_config_show_lists_and_suggests(capsys):
    assert main(["config", "show"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"coco", "mpii", "openpose", "demo", "training/synthetic_demo"} <= set(names)
    assert main(["config", "show", "cocco"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'coco'?" in err[0]
    assert main(["config", "show", "fitting/demo.yaml"]) == 0  # the repository path too


def test_configs_are_package_data():
    """The wheel carries the configs: pyproject lists them, and the package folder holds
    them (eft/configs is the repository's fitting/ folder)."""
    import tomllib

    from eft.shipped import CONFIG_DIR, shipped_configs

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["eft"]
    assert "configs/*.yaml" in globs and "configs/training/*.yaml" in globs
    found = shipped_configs()
    assert all(p.resolve().parent in (CONFIG_DIR.resolve(), (CONFIG_DIR / "training")
                                      .resolve()) for p in found.values())
    assert len([n for n in found if "/" not in n]) == len(list((ROOT / "fitting")
                                                             .glob("*.yaml")))


def test_unknown_config_keys_get_a_suggestion(tmp_path, capsys):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("datasets: [{kind: synthetic}]\neft: {max_iter: 3}\n")
    assert main(["fit", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "eft.max_iter: unknown key (did you mean 'max_iters'?)" in err

    from eft.train.config import TrainConfigError, train_config_from_dict

    with pytest.raises(TrainConfigError, match=r"optim.stepz: unknown key \(did you mean 'steps'"):
        train_config_from_dict({"datasets": [{"path": "a.json"}], "optim": {"stepz": 3}})


def test_review_on_a_taken_port_is_one_error_line(tmp_path):
    """Run as a user would (a subprocess): one ``eft: error:`` line with a --port hint,
    nothing printed before it, and no database created."""
    require_module("uvicorn", "pip install -e '.[review]'")
    from eft.annotations import Provenance
    from eft.annotations.api import write_columns
    from eft.annotations.synthetic import random_columns

    fits = write_columns(random_columns(3, seed=1), Provenance.create(), tmp_path / "f.json")
    (tmp_path / "images").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "eft.cli", "review", str(fits), "--images",
             str(tmp_path / "images"), "--port", str(port)],
            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stdout == ""  # no "open http://..." line
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eft: error: port ")
    assert f"--port {port + 1}" in err[0]
    assert not (tmp_path / "f.review.sqlite").exists()


def test_shipped_config_names_resolve():
    from eft.shipped import find_config

    assert find_config("training/synthetic_demo").samefile(
        ROOT / "fitting" / "training" / "synthetic_demo.yaml")
    assert find_config("fitting/coco.yaml").samefile(ROOT / "fitting" / "coco.yaml")
    assert find_config("coco.yaml").samefile(ROOT / "fitting" / "coco.yaml")
