"""Small runs for the trainer tests: a config on scikit-learn's digits, and callbacks.

The digits (1,257 training images of 8x8 in the default split) with an MLP or a small
CNN train an epoch in a fraction of a second on one CPU thread, so a test can afford
several complete runs.
"""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path
from typing import Any

from samlab.train import Callback, TrainConfig

DIGITS_TRAIN = 1257  # the digits' default training split (1,797 − 360 test − 180 val)


def digits_config(runs_dir: Path, name: str = "run", **overrides: Any) -> TrainConfig:
    """A short SAM run on the digits: 3 epochs of 39 steps (batch 32), no sharpness."""
    fields = dict(name=name, dataset="digits", model="mlp", method="sam", rho=0.05, lr=0.05,
                  epochs=3, batch_size=32, runs_dir=str(runs_dir))
    fields.update(overrides)
    return TrainConfig(**fields)


def steps_per_epoch(config: TrainConfig) -> int:
    n = DIGITS_TRAIN if config.n_train is None else config.n_train
    return n // config.batch_size  # the trainer drops the last, partial batch


class StopAfterEpochs(Callback):
    """``request_stop()`` once ``epochs`` epochs are done (an interrupt between epochs)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, trainer, record):
        if record["epoch"] + 1 == self.epochs:
            trainer.request_stop()


class StopAtStep(Callback):
    """``request_stop()`` in the step record of global step ``step`` (needs log_every)."""

    def __init__(self, step: int):
        self.step = step

    def on_step(self, trainer, record):
        if record["step"] == self.step:
            trainer.request_stop()


class SigintAtStep(Callback):
    """Sends this process a real SIGINT (Ctrl-C) at global step ``step``, once."""

    def __init__(self, step: int):
        self.step, self.sent = step, False

    def on_step(self, trainer, record):
        if record["step"] == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


class WeightsAfterEachEpoch(Callback):
    """A copy of the model's state_dict after every epoch, keyed by the epoch."""

    def __init__(self):
        self.weights: dict[int, dict] = {}

    def on_epoch_end(self, trainer, record):
        self.weights[record["epoch"]] = copy.deepcopy(trainer.model.state_dict())
