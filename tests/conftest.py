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


@pytest.fixture(scope="session")
def coco_fits(shared_data, body):
    """``(exemplars, fits)``: the COCO sample's people fitted by EFT with the v1 prior
    (pinned, not "default": the tests need this sample's mix of accepted, rejected and
    implausible-pose fits, which a better prior changes), fits with vertices; computed
    once per session."""
    import torch

    from eft.data.readers import read_coco
    from eft.fitting import fit_exemplars
    from eft.models import load_regressor

    exemplars = read_coco(shared_data / "coco_sample" / "test_coco.json").exemplars
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_regressor("keypoint-prior-v1")
        fits = fit_exemplars(exemplars, model, body, with_vertices=True, progress=False)
    finally:
        torch.set_num_threads(old)
    return exemplars, fits


# CI runs hypothesis derandomised, so a red build always reproduces; locally it explores.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI", "").lower() == "true":
        _hyp_settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
