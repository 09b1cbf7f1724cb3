"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import on_ci, test_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of third-party test data: $EFT_TEST_DATA, else <repo>/../shared/data.

    The data is never copied into the repository.  When it is missing the test is
    skipped with the reason shown (-ra), except on CI (CI=true), where it fails
    (:func:`tests.helpers.require`).
    """
    return test_data_dir()


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
        fits = fit_exemplars(exemplars, model, body, "eft", with_vertices=True,
                             progress=False)
    finally:
        torch.set_num_threads(old)
    return exemplars, fits


# CI runs hypothesis derandomised, so a red build always reproduces; locally it explores.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
    if on_ci():
        _hyp_settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
