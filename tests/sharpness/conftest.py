"""The sharpness tests run tiny float64 models: one intra-op thread is faster for them, and
keeps their time steady on a busy machine (idle OpenMP threads waiting on a loaded core
can make a microsecond operation take milliseconds)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
