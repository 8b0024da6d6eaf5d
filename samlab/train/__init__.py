"""Training on real data: config, trainer, checkpoints (SPEC §1 late phase, §3, §4).

>>> from samlab.train import TrainConfig, Trainer
>>> result = Trainer(TrainConfig(name="r20-sam", method="sam", rho=0.05, epochs=200)).fit()
"""

from .config import TrainConfig

_LAZY = {
    "Callback": "trainer", "RunResult": "trainer", "Trainer": "trainer",
    "TrainingDiverged": "trainer", "read_run": "trainer",
    "load_checkpoint": "checkpoint", "read_metrics": "checkpoint",
}


def __getattr__(name: str):
    # The trainer imports torch; `samlab --version` and config handling should not wait for it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'samlab.train' has no attribute {name!r}")


__all__ = ["TrainConfig", *_LAZY]
