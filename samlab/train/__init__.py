"""Training on real data: config, trainer, run directories, sweeps (docs/training.md).

>>> from samlab.train import TrainConfig, Trainer
>>> result = Trainer(TrainConfig(name="r20-sam", method="sam", rho=0.05, epochs=200)).fit()

- :mod:`~samlab.train.config`: :class:`TrainConfig`, everything that defines a run;
- :mod:`~samlab.train.protocols`: papers' settings by name (``from_protocol("zhou2025")``);
- :mod:`~samlab.train.builders`: the data, model, optimizer and schedule it builds;
- :mod:`~samlab.train.trainer`: the loop, resume, interrupts;
- :mod:`~samlab.train.metrics`: what an epoch measures (``sharpness_batches``: a run's
  fixed Hessian subset, in batches);
- :mod:`~samlab.train.rundir`: ``runs/<name>/``, its files, lock and status;
- :mod:`~samlab.train.sweep`: grids of runs, each trained once, and an experiment's arms;
- :mod:`~samlab.train.restore`: a finished run's network, back for analysis (its λ_max
  under any protocol).
"""

from .config import TrainConfig
from .sweep import arm_configs, sweep  # the function, not the module of the same name

_LAZY = {
    "Callback": "trainer", "Trainer": "trainer", "TrainingDiverged": "trainer",
    "RunResult": "rundir", "RunDir": "rundir", "RunInUse": "rundir", "read_run": "rundir",
    "load_model": "restore", "lambda_max": "restore", "sharpness_batches": "metrics",
}


def __getattr__(name: str):
    # The trainer imports torch; `samlab --version` and config handling should not wait for it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'samlab.train' has no attribute {name!r}")


__all__ = ["TrainConfig", "arm_configs", "sweep", *_LAZY]
