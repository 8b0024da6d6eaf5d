"""The network a run trained, back from its run directory, for analysis after training.

>>> model, data = load_model("runs/04_late")   # eval mode, on the CPU, with its data
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data import ImageData
from .builders import build_model, load_data
from .config import TrainConfig
from .metrics import measure_sharpness, sharpness_batches
from .rundir import RunDir, RunResult


def load_model(run: str | Path | RunResult, *, device: str | torch.device = "cpu",
               data: ImageData | None = None) -> tuple[nn.Module, ImageData]:
    """The model of ``run`` (a run directory or a :class:`RunResult`) as its checkpoint
    holds it, in eval mode on ``device``, and the data it was trained on (``data``, if
    given, saves loading it again: it must be the run's).

    The checkpoint is the last one written: the end of training for a completed run.
    """
    rundir = RunDir(_path(run))
    config = rundir.read_config()
    data = data if data is not None else load_data(config)
    model = build_model(config, data)
    model.load_state_dict(rundir.load_checkpoint(map_location="cpu")["model"])
    return model.to(device).eval(), data


def lambda_max(run: str | Path | RunResult, *, measured_as: TrainConfig | None = None,
               device: str | torch.device = "cpu") -> float:
    """The top Hessian eigenvalue of ``run``'s last weights on ``device``, measured as
    ``measured_as`` measures (its subset, order and batches, BatchNorm mode, ``k`` and seed;
    docs/training.md#sweeps): by default as the run did, which reproduces the value the
    trainer recorded when it measured on the CPU without compiled products.
    ``TrainConfig.from_protocol("zhou2025")`` measures as those authors do."""
    model, data = load_model(run, device=device)
    config = measured_as or RunDir(_path(run)).read_config()
    batches = sharpness_batches(config, data, device)
    return measure_sharpness(model, batches, config)["lambda_max"]


def _path(run: str | Path | RunResult) -> str | Path:
    return run.run_dir if isinstance(run, RunResult) else run
