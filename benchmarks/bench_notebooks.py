"""Every notebook in full mode, as a student runs it: wall time and the kernel's peak memory.

Each notebook runs top to bottom in a fresh kernel (Run All), from a copy of notebooks/
without its runs cache, so that the sweeps train (a second Run All reads them back and
is faster) and nothing of the working tree is touched. Goals: peak
kernel memory under 1 GB (Binder gives about 2 GB; importing this machine's CUDA build of
torch alone takes about 490 MB). The header of each notebook states the time measured
here (tests/test_notebooks.py keeps it within 2x).

``SAMLAB_BENCH_NOTEBOOKS=04,05`` measures only those notebooks (by number) and keeps the
other notebooks' rows from the last run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .common import RESULTS, Row
from .notebook_runner import execute

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PEAK_GOAL_MB = 1024


def run() -> list[Row]:
    only = [n.strip() for n in os.environ.get("SAMLAB_BENCH_NOTEBOOKS", "").split(",")
            if n.strip()]
    rows = []
    for original in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        if only and original.stem[:2] not in only:
            rows += _previous_rows(original.stem)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(original, tmp)
            result = execute(Path(tmp) / original.name, quick=False, timeout=1800)
        source = original
        print(f"   {source.stem}: {result.seconds:.0f} s, peak {result.peak_mb:.0f} MB",
              flush=True)
        rows.append(Row(f"{source.stem} full mode, Run All", round(result.seconds, 1), "s"))
        rows.append(Row(f"{source.stem} peak kernel memory", round(result.peak_mb), "MB",
                        goal=f"< {PEAK_GOAL_MB} MB", ok=result.peak_mb < PEAK_GOAL_MB))
    return rows


def _previous_rows(stem: str) -> list[Row]:
    """The rows of notebook ``stem`` in the last results, when this run skips it."""
    path = RESULTS / "notebooks.json"
    if not path.is_file():
        return []
    return [Row(**r) for r in json.loads(path.read_text())["rows"]
            if r["metric"].startswith(f"{stem} ")]
