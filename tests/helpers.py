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
