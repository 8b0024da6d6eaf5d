"""Asking a run to stop: Ctrl-C, a kernel interrupt, SIGTERM, or ``request_stop()``.

A request takes effect at the trainer's next check: the step in flight finishes, a
checkpoint of the exact position is saved, and the run ends as ``interrupted``
(resumable). A second signal before that check interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: The signals a run treats as "stop, saving first".
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether someone asked the run to stop, and with which signal (if any)."""

    def __init__(self, announce: bool = True):
        self._event = threading.Event()
        self.signal: str | None = None
        self.announce = announce

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def agreed(self, world_size: int, device: torch.device) -> bool:
        """Whether to stop now; under DDP every process stops at the same step (one sync)."""
        stop = self.is_set()
        if world_size > 1:
            flag = torch.tensor(float(stop), device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag)
            if stop:
                self.set()
        return stop

    @contextmanager
    def on_signals(self) -> Iterator[None]:
        """Inside, SIGINT and SIGTERM set the request instead of killing the process.

        Handlers can only be installed from the main thread; elsewhere this does nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.is_set():
                raise KeyboardInterrupt
            self.signal = signal.Signals(signum).name
            self.set()
            if self.announce:
                print(f"\nsamlab: {self.signal}: stopping after this step and saving a "
                      "checkpoint (Ctrl-C again to abort now)", flush=True)

        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
