"""Loopback helpers shared by the tests that start several processes (DDP on gloo)."""

from __future__ import annotations

import socket

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now; skips the test when no socket can be opened."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError as err:
        pytest.skip(f"cannot open a TCP socket on 127.0.0.1 for the gloo rendezvous: {err}")
