"""Shared fixtures, and the rule for `browser` tests.

Browser tests (marked ``@pytest.mark.browser``) drive the system chromium and are
skipped, with the reason shown, where ``/usr/bin/chromium`` does not exist. No flag
turns them on: where the browser is, they run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"browser test: {CHROMIUM} not found (.ci/run installs it)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test. Tiny models run faster on one, and their
    time stays steady on a busy 2-core machine, where idle OpenMP threads waiting on a
    loaded core can make a microsecond operation take milliseconds (oversubscription).
    The sharpness and trainer tests use it throughout (their conftest.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Path of the system chromium (browser tests are skipped where it is absent)."""
    return CHROMIUM


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository: the development data (e.g. JPEG CIFAR-10).

    Not part of the repository; tests that need it skip where it is absent.
    """
    path = REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"development data not found at {path}")
    return path


@pytest.fixture(scope="session")
def notebook_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A data directory holding the JPEG copy of CIFAR-10 from ``../shared/data``, for
    notebooks that use it (05 in quick mode), or None where it is absent (they then fall
    back to random images). A folder of our own, so decode caches land there, not in
    shared/."""
    source = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.npz"
    if not source.is_file():
        return None
    folder = tmp_path_factory.mktemp("samlab-data")
    (folder / source.name).symlink_to(source)
    return folder


@pytest.fixture
def notebook_env(notebook_data_dir, monkeypatch):
    """The environment a notebook's kernel inherits: SAMLAB_DATA as above, when found."""
    if notebook_data_dir is not None:
        monkeypatch.setenv("SAMLAB_DATA", str(notebook_data_dir))
