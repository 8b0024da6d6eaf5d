"""What every benchmark shares: timing, the machine's description, atomic result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from samlab.files import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent


def jpeg_cifar10() -> Path | None:
    """The JPEG copy of CIFAR-10: in samlab's data directory, or the development copy
    in ``../shared/data`` beside the repository (this project's machines); None if neither."""
    from samlab.data import JPEG_NAME, find_cifar10_jpeg

    found = find_cifar10_jpeg()
    shared = REPO.parent / "shared" / "data" / JPEG_NAME
    return found or (shared if shared.is_file() else None)


@dataclass
class Row:
    """One measured figure, with the goal it is held to (if any)."""

    metric: str
    value: float | None  # None: not measured (the note says why)
    unit: str
    goal: str = ""
    ok: bool | None = None
    note: str = ""


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def machine() -> dict:
    import numpy as np

    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def write_result(name: str, rows: list[Row], extra: dict | None = None) -> Path:
    """Write ``results/<name>.json`` atomically."""
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "rows": [asdict(r) for r in rows],
               **(extra or {})}
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    return path


def table(results: dict[str, list[Row]]) -> str:
    """A Markdown table of every row of every benchmark."""
    lines = ["| benchmark | metric | value | goal | met |", "|---|---|---|---|---|"]
    for name, rows in results.items():
        for r in rows:
            met = {True: "yes", False: "**no**", None: ""}[r.ok]
            note = f" ({r.note})" if r.note else ""
            value = "—" if r.value is None else f"{r.value:.4g} {r.unit}"
            lines.append(f"| {name} | {r.metric}{note} | {value} | {r.goal} | {met} |")
    return "\n".join(lines)
