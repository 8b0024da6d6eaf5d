"""Fixtures for the trainer tests: one torch thread, and a SIGINT guard."""

from __future__ import annotations

import signal

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread for the tests' own torch code (the trainer already trains
    models under 200k parameters on one): on a busy 2-core machine two threads are
    several times slower (oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class SigintGuard:
    """Counts SIGINTs that reach the test instead of the trainer's handler."""

    def __init__(self):
        self.caught = 0

    def __call__(self, signum, frame):
        self.caught += 1


@pytest.fixture
def sigint_guard():
    """While a test sends itself SIGINT, a handler that keeps pytest alive if the trainer
    failed to install its own (the test then fails on ``guard.caught`` instead)."""
    guard = SigintGuard()
    previous = signal.signal(signal.SIGINT, guard)
    yield guard
    signal.signal(signal.SIGINT, previous)
