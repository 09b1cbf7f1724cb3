"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of third-party test data: $EFT_TEST_DATA, else <repo>/../shared/data.

    The data is never copied into the repository.  When it is missing the test is
    skipped with the reason shown (-ra), except on CI (CI=true), where it fails.
    """
    env = os.environ.get("EFT_TEST_DATA")
    path = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        how = "$EFT_TEST_DATA" if env else "default location; set $EFT_TEST_DATA to override"
        reason = f"test data folder {path} not found ({how})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one torch thread (small models; the CI machine has 2 shared cores)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def body():
    """The embedded open body model, loaded once."""
    from eft.body import BodyModel

    return BodyModel.load()


# CI runs hypothesis derandomised, so a red build always reproduces; locally it explores.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI", "").lower() == "true":
        _hyp_settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
