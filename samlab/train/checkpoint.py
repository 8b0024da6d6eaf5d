"""Checkpoints and run files, written so that an interrupt never leaves half a file.

Every write goes to a temporary file in the same directory, is flushed to disk, and
then renamed over the target (``os.replace`` is atomic on POSIX and Windows).
Checkpoints hold only tensors and plain Python values, so they load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path``: all of it or, if interrupted, none of it."""
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename over ``path``."""
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume")
    return torch.load(path, map_location=map_location, weights_only=True)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of ``run_dir/metrics.jsonl`` (a torn last line is ignored)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS} in {run_dir}: is it a samlab run directory?")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line. A line is one ``write`` of under a page: appended whole."""
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def truncate_metrics(run_dir: Path, keep) -> None:
    """Rewrite ``metrics.jsonl`` keeping the records for which ``keep(record)`` is true."""
    path = Path(run_dir) / METRICS
    if path.is_file():
        kept = [r for r in read_metrics(run_dir) if keep(r)]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
