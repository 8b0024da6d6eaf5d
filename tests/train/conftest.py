"""Fixtures for the trainer tests: one torch thread, and a SIGINT guard."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread for the tests' own torch code (the trainer already trains
    models under 200k parameters on one): tests/conftest.py's ``one_thread``."""
    yield


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
