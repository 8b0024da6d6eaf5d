"""Grids of runs: one base config, some fields varied, every combination trained once.

Each run lives in ``<runs_dir>/<base.name>/<field>=<value>,...-<key>``, where ``key`` is a
short hash of the whole config (:func:`config_key`). A run that already finished there is
read back, not retrained, and an interrupted one is resumed: re-running a notebook cell
costs nothing the second time, and editing the base config (a new ``ρ``, a new ``lr``)
trains new runs instead of returning old results under a new label.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Sequence
from typing import Any

from .config import TrainConfig
from .rundir import RunDir, RunResult

#: Fields added to TrainConfig after sweeps were first keyed, with the value that means
#: "as before": a config holding it hashes as it did before the field existed, so the runs
#: of an existing sweep are still found.
ADDED_FIELDS: dict[str, Any] = {"end_epoch": None, "switch_log_steps": 0,
                                "switch_log_sharpness_every": 0,
                                "sharpness_subset_order": "random", "compile": False,
                                "n_test": None, "sharpness_compile": "auto",
                                "label_noise": 0.0, "label_noise_seed": 0}


def config_key(config: TrainConfig) -> str:
    """8 hex digits that change with every field that affects a run's results.

    Where a run lives (``name``, ``runs_dir``) is not part of it, nor an added field at
    its "as before" value (:data:`ADDED_FIELDS`).
    """
    fields = {k: v for k, v in config.to_dict().items() if k not in ("name", "runs_dir")
              and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


def arm_configs(base: TrainConfig, arms: dict[str, dict[str, Any]]) -> dict[str, TrainConfig]:
    """One config per arm of an experiment: ``base`` with the arm's changes, named
    ``<base.name>-<arm>`` (lower case, spaces and brackets as dashes), e.g. ``{"SGD":
    {"method": "sgd"}, "late SAM": {"method": "sam", "switch_epoch": 150}}``."""
    slug = {name: "-".join("".join(c if c.isascii() and c.isalnum() else " "
                                   for c in name.lower()).split()) for name in arms}
    for name, s in slug.items():
        if not s:
            raise ValueError(f"arm {name!r} needs an ASCII letter or digit in its name: it "
                             "names the arm's run directory")
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"name", "runs_dir"}
    for name, change in arms.items():
        unknown = sorted(set(change) - known)
        if unknown:
            raise ValueError(f"arm {name!r} changes {', '.join(unknown)}: an arm may change "
                             "any TrainConfig field but name and runs_dir")
    if len(set(slug.values())) < len(arms):
        raise ValueError(f"arms must have names that differ in letters and digits, got "
                         f"{list(arms)}")
    return {name: dataclasses.replace(base, name=f"{base.name}-{slug[name]}", **change)
            for name, change in arms.items()}


def sweep(base: TrainConfig, vary: dict[str, Sequence[Any]], *, callbacks=(),
          progress: bool = True) -> list[RunResult]:
    """Train ``base`` with every combination of the values in ``vary``.

    ``sweep(cfg, {"method": ["sam", "usam"], "rho": [0.05, 0.5], "seed": [0, 1]})`` trains
    eight runs, each in a sub-directory of ``<runs_dir>/<base.name>`` named by its values
    and its :func:`config_key`. Returns one :class:`RunResult` per combination, with its
    config and every record. A diverged run is kept (status ``"diverged"``), not retried.
    """
    from tqdm.auto import tqdm

    from .trainer import Trainer

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in vary:
        if key not in known or key in ("name", "runs_dir"):
            raise ValueError(f"vary must name config fields other than name and runs_dir, "
                             f"got {key!r}")
    keys = list(vary)
    combos = list(itertools.product(*(vary[k] for k in keys)))
    runs = []
    for values in tqdm(combos, desc=base.name, disable=not progress):
        changes = dict(zip(keys, values))
        config = dataclasses.replace(base, runs_dir=f"{base.runs_dir}/{base.name}", **changes)
        tag = ",".join(f"{k}={v}" for k, v in changes.items())
        config.name = f"{tag}-{config_key(config)}" if tag else config_key(config)
        config.validate()
        rundir = RunDir.of(config)
        status = rundir.status(config.epochs)
        if status != "new" and config_key(rundir.read_config()) != config_key(config):
            # Same key, other config: a hand-edited or colliding directory. Never reuse it.
            raise ValueError(f"{rundir.path} holds a run of another config; delete it")
        if status in ("new", "interrupted"):  # one progress bar for the sweep, nothing per run
            Trainer(config, callbacks=callbacks, resume=status == "interrupted",
                    progress=False, report=False).fit()
        runs.append(rundir.result())
    return runs
