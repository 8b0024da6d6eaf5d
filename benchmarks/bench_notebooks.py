"""Every notebook in full mode, as a student runs it: wall time and the kernel's peak memory.

Each notebook runs top to bottom in a fresh kernel (Run All), from a copy of notebooks/
without its runs cache, so that the sweeps train (a second Run All reads them back and
is faster) and nothing of the working tree is touched. The peak is the kernel's
high-water mark (``ru_maxrss``), and it depends on the build of torch: importing the CUDA
build costs a kernel about 620 MB on this machine, the CPU build that Binder installs
(binder/requirements.txt) about 240 MB. So where ``SAMLAB_BENCH_BINDER_PYTHON`` names the
Python of an environment with the CPU build, every notebook runs a second time in a
kernel of that Python, and its rows are the ones held to Binder's budget: under 1 GB for
notebooks 01–04, under 1.5 GB for 05 (Binder gives about 2 GB); without it, the rows of
the last run that had it are kept, noted as kept. The header of each
notebook states the time and the high-water marks measured here (tests/test_notebooks.py
checks them).

``SAMLAB_BENCH_NOTEBOOKS=04,05`` measures only those notebooks (by number) and keeps the
other notebooks' rows from the last run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from .common import RESULTS, Row
from .notebook_runner import execute

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BINDER_MB = 2048
CPU_BUILD = "CPU build of torch, as on Binder"


def budget_mb(stem: str) -> int:
    """The peak a notebook may reach with Binder's CPU build of torch."""
    return 1536 if stem.startswith("05") else 1024


def run() -> list[Row]:
    only = [n.strip() for n in os.environ.get("SAMLAB_BENCH_NOTEBOOKS", "").split(",")
            if n.strip()]
    binder_python = os.environ.get("SAMLAB_BENCH_BINDER_PYTHON")
    rows = []
    for original in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        if only and original.stem[:2] not in only:
            rows += _previous_rows(original.stem)
            continue
        result = _run_all(original)
        stem = original.stem
        print(f"   {stem}: {result.seconds:.0f} s, peak {result.peak_mb:.0f} MB", flush=True)
        rows.append(Row(f"{stem} full mode, Run All", round(result.seconds, 1), "s"))
        rows.append(Row(f"{stem} peak kernel memory", round(result.peak_mb), "MB",
                        goal=f"< {BINDER_MB} MB", ok=result.peak_mb < BINDER_MB,
                        note="this environment's torch"))
        if binder_python:
            cpu = _run_all(original, python=binder_python)
            print(f"   {stem}, {CPU_BUILD}: {cpu.seconds:.0f} s, peak {cpu.peak_mb:.0f} MB",
                  flush=True)
            rows.append(Row(f"{stem} peak kernel memory, {CPU_BUILD}", round(cpu.peak_mb),
                            "MB", goal=f"< {budget_mb(stem)} MB",
                            ok=cpu.peak_mb < budget_mb(stem), note=binder_python))
        else:  # not measured this time: the last measurement stays, and says so
            rows += [dataclasses.replace(r, note=r.note if r.note.startswith("kept") else
                                         f"kept from an earlier run ({r.note})")
                     for r in _previous_rows(stem) if CPU_BUILD in r.metric]
    return rows


def _run_all(original: Path, python: str | None = None):
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(original, tmp)
        return execute(Path(tmp) / original.name, quick=False, timeout=1800, python=python)


def _previous_rows(stem: str) -> list[Row]:
    """The rows of notebook ``stem`` in the last results, when this run skips it."""
    path = RESULTS / "notebooks.json"
    if not path.is_file():
        return []
    return [Row(**r) for r in json.loads(path.read_text())["rows"]
            if r["metric"].startswith(f"{stem} ")]
