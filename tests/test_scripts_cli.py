"""Every script in ``scripts/`` parses its command line (scripts/README.md: ``--help``
lists every option), so ``--help`` never starts a run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_parses_its_arguments(path):
    tree = ast.parse(path.read_text())
    calls = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
        node.func, "id", "") for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "ArgumentParser" in calls and "parse_args" in calls, (
        f"{path.name}: no argparse parser, so --help would start a run")


def test_every_script_is_listed_in_the_scripts_readme():
    readme = (SCRIPTS[0].parent / "README.md").read_text()
    missing = [p.name for p in SCRIPTS if p.name not in readme]
    assert not missing, f"scripts/README.md does not list {missing}"
