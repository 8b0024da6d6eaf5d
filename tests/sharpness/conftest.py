"""The sharpness tests run tiny float64 models, each on one torch thread (the
``one_thread`` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
