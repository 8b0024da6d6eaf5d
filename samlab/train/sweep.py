"""Grids of runs: one base config, some fields varied, every combination trained once.

A run that already finished in ``runs_dir`` is read back, not retrained, and an
interrupted one is resumed: re-running a notebook cell costs nothing the second time.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .checkpoint import CHECKPOINT, load_checkpoint
from .config import TrainConfig


@dataclass
class SweepRun:
    """One finished (or diverged) run of a sweep: its config and metrics records."""

    config: TrainConfig
    status: str
    records: list[dict[str, Any]]

    @property
    def last(self) -> dict[str, Any]:
        """The last epoch record (``{}`` if no epoch finished)."""
        epochs = [r for r in self.records if r.get("kind") == "epoch"]
        return epochs[-1] if epochs else {}

    def final(self, key: str) -> float:
        """``key`` of the last epoch; NaN when missing or when the run diverged."""
        value = self.last.get(key) if self.status != "diverged" else None
        return float(value) if value is not None else math.nan


def sweep(base: TrainConfig, vary: dict[str, Sequence[Any]], *, callbacks=(),
          progress: bool = True) -> list[SweepRun]:
    """Train ``base`` with every combination of the values in ``vary``.

    Run names are ``<base.name>/<field>=<value>,...`` (a sub-directory per run), e.g.
    ``sweep(cfg, {"method": ["sam", "usam"], "rho": [0.05, 0.5], "seed": [0, 1]})``
    trains eight runs. A diverged run is kept (status ``"diverged"``), not retried.
    """
    from tqdm.auto import tqdm

    from .trainer import Trainer, read_run

    for key in vary:
        if key not in {f.name for f in dataclasses.fields(TrainConfig)} or key == "name":
            raise ValueError(f"vary has an unknown or reserved field {key!r}")
    keys = list(vary)
    combos = list(itertools.product(*(vary[k] for k in keys)))
    runs = []
    for values in tqdm(combos, desc=base.name, disable=not progress):
        changes = dict(zip(keys, values))
        tag = ",".join(f"{k}={v}" for k, v in changes.items())
        config = dataclasses.replace(base, name=tag, runs_dir=f"{base.runs_dir}/{base.name}",
                                     **changes)
        status = _status(config)
        if status == "new":
            status = Trainer(config, callbacks=callbacks, progress=False).fit().status
        elif status == "interrupted":
            status = Trainer(config, callbacks=callbacks, resume=True, progress=False).fit().status
        _, records = read_run(config.run_dir)
        runs.append(SweepRun(config, status, records))
    return runs


def _status(config: TrainConfig) -> str:
    """``new``, ``completed``, ``diverged`` or ``interrupted``, from what is on disk."""
    from .trainer import read_run

    path = config.run_dir / CHECKPOINT
    if not path.exists():
        return "new"
    state = load_checkpoint(path)
    if int(state["epoch"]) >= config.epochs:
        return "completed"
    _, records = read_run(config.run_dir)
    if records and records[-1].get("kind") == "diverged":
        return "diverged"
    return "interrupted"
