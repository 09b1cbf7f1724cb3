"""The fixture rule: a missing fixture (data file, optional package, shipped asset)
skips a test visibly, except on CI (``CI=true``), where it fails; and no test module
skips by itself, around :func:`tests.helpers.require`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import on_ci, require, require_file, require_module, test_data_dir

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

#: The only skips left outside the helper, each an opt-in check that CI does not run.
ALLOWED = {
    ("test_smpl_import.py", "importorskip"): "smplx is an optional third-party reference, "
                                             "not a dev dependency",
    ("test_annotations_trainers.py", "skipif"): "needs a second Python with numpy < 1.26 "
                                                "($EFT_NUMPY1_PYTHON)",
    ("test_prior.py", "xfail"): "a strict xfail of a known bug (it fails once fixed)",
}
_SKIPPERS = {"skip", "importorskip", "skipif", "xfail"}


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_missing_file_fails_on_ci(tmp_path, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    assert on_ci()
    with pytest.raises(pytest.fail.Exception, match="missing.bin not found"):
        require_file(tmp_path / "missing.bin")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_eft"):
        require_module("no_such_module_eft", module_level=True)
    monkeypatch.setenv("EFT_TEST_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.fail.Exception, match="test data folder"):
        test_data_dir()


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_missing_file_skips_elsewhere(tmp_path, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert not on_ci()
    with pytest.raises(pytest.skip.Exception, match="missing.bin not found"):
        require_file(tmp_path / "missing.bin")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_module("no_such_module_eft")
    monkeypatch.setenv("EFT_TEST_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.skip.Exception, match="nowhere"):
        test_data_dir()


def test_present_fixtures_pass_through(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    f = tmp_path / "here.txt"
    f.write_text("x")
    assert require_file(f) == f
    assert require_module("json").dumps([1]) == "[1]"
    require(True, "never shown")
    monkeypatch.setenv("EFT_TEST_DATA", str(tmp_path))
    assert test_data_dir() == tmp_path


def test_shared_data_fixture_fails_a_test_on_ci(tmp_path):
    """End to end through pytest and conftest: the same test errors with CI=true and is
    skipped without it."""
    (tmp_path / "test_needs_data.py").write_text(
        "from tests.conftest import shared_data  # noqa: F401\n\n"
        "def test_needs_data(shared_data):\n    pass\n")
    outcomes = {}
    for ci in ("true", ""):
        env = {**os.environ, "CI": ci, "EFT_TEST_DATA": str(tmp_path / "nowhere"),
               "PYTHONPATH": str(REPO)}
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "-rfs", str(tmp_path / "test_needs_data.py")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        outcomes[ci] = (r.returncode, r.stdout)
    # pytest reports a fixture that fails as an error of the test (exit status 1)
    assert outcomes["true"][0] == 1 and "1 error" in outcomes["true"][1], outcomes["true"]
    assert "test data folder" in outcomes["true"][1]
    assert outcomes[""][0] == 0 and "1 skipped" in outcomes[""][1], outcomes[""]


def _skips(path: Path) -> list[tuple[str, int]]:
    """``(name, line)`` of every ``pytest.skip``/``importorskip``/``mark.skipif``/``xfail``
    call or decorator in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in _SKIPPERS:
            base = node.value
            if isinstance(base, ast.Attribute) and base.attr == "mark":
                base = base.value
            if isinstance(base, ast.Name) and base.id == "pytest":
                found.append((node.attr, node.lineno))
    return found


def test_no_test_skips_around_the_rule():
    """Every skip goes through tests.helpers.require, so CI turns it into a failure."""
    rogue = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name in ("helpers.py", Path(__file__).name):
            continue
        for name, line in _skips(path):
            if (path.name, name) not in ALLOWED:
                rogue.append(f"{path.name}:{line}: pytest.{name}")
    assert not rogue, "use tests.helpers.require/require_file/require_module:\n" + "\n".join(
        rogue)
