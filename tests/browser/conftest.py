"""Fixtures for the browser tests: a private JupyterLab server, and headless chromium.

The machinery lives in ``benchmarks/lab.py`` (the browser benchmark uses it too).

``lab_server`` starts ``python -m jupyterlab`` from this venv on a free port of
127.0.0.1, with token auth on, serving a temporary copy of ``notebooks/`` (so that
running cells writes nothing into the repository). Kernels inherit ``SAMLAB_QUICK=1``.
Only the server's runtime, workspace and user-settings folders are redirected into the
temporary folder: the widget front-ends (labextensions) are found in the venv's
``share/jupyter`` as usual, and the user's own settings and workspaces stay out.

``lab_page`` is a chromium page (the system ``/usr/bin/chromium``, driven by Playwright;
``playwright install`` is never needed) that records the browser console.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.lab import ARTIFACTS, LabPage, LabServer, chromium_page, start_lab, stop_lab


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory,
               notebook_data_dir) -> Iterator[LabServer]:
    """JupyterLab on a temporary copy of notebooks/ (token auth on, SAMLAB_QUICK=1; the
    JPEG copy of CIFAR-10 as SAMLAB_DATA where ../shared/data has it)."""
    with pytest.MonkeyPatch.context() as env:
        if notebook_data_dir is not None:
            env.setenv("SAMLAB_DATA", str(notebook_data_dir))
        server = start_lab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        yield server
    finally:
        stop_lab(server)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """tests/artifacts/browser/ (gitignored): screenshots of the browser tests."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def lab_page(chromium: Path) -> Iterator[LabPage]:
    """A fresh headless chromium page (1400x1000) driven by Playwright."""
    if not chromium.exists():  # the root conftest skips first; this is a second guard
        pytest.skip(f"browser test: {chromium} not found")
    pytest.importorskip("playwright.sync_api",
                        reason="browser test: the playwright package is not installed")
    with chromium_page(chromium) as page:
        yield page
