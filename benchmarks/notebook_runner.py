"""Execute a notebook's source top to bottom: what `make test` and `make bench` share.

:func:`execute` runs ``notebooks/NN_name.py`` in a fresh kernel (cwd ``notebooks/``), in
quick or full mode, optionally with edits a reader would make (``{"b=0.5": "b=1.0"}``,
each of which must match the source exactly once), and reports the wall time and the
kernel's peak memory. ``python`` runs the kernel in another interpreter (a virtual
environment with another build of torch, say) instead of this one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

PEAK_MARK = "SAMLAB_PEAK_RSS_KB"
PEAK_CELL = (f"import resource as _r\n"
             f"print('{PEAK_MARK}', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss)")


@dataclass
class Executed:
    notebook: nbformat.NotebookNode
    seconds: float
    peak_mb: float


def apply_edits(notebook: nbformat.NotebookNode, edits: Mapping[str, str]) -> None:
    """Replace each ``old`` by ``new`` in the code cells; ``old`` must occur exactly once."""
    for old, new in edits.items():
        hits = [c for c in notebook.cells if c.cell_type == "code" and old in c.source]
        count = sum(c.source.count(old) for c in hits)
        if count != 1:
            raise ValueError(f"the edit {old!r} -> {new!r} must match the notebook's code "
                             f"exactly once, found {count}")
        hits[0].source = hits[0].source.replace(old, new)


def load(source: Path, edits: Mapping[str, str] | None = None) -> nbformat.NotebookNode:
    """The notebook of ``source``, with ``edits`` applied."""
    notebook = jupytext.read(source)
    apply_edits(notebook, edits or {})
    return notebook


def execute(source: Path, *, quick: bool, edits: Mapping[str, str] | None = None,
            timeout: int = 600, on_cell_start=None,
            notebook: nbformat.NotebookNode | None = None,
            python: str | None = None) -> Executed:
    """Run ``source`` (or ``notebook``, loaded from it) in a new kernel, in place.

    Raises nbclient's errors as they come; ``notebook`` then holds the outputs so far.
    """
    notebook = load(source, edits) if notebook is None else notebook
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    specs = tempfile.TemporaryDirectory() if python else None
    if specs:  # a kernel spec of that interpreter, found through JUPYTER_PATH
        kernel = Path(specs.name) / "kernels" / "samlab-other-python"
        kernel.mkdir(parents=True)
        (kernel / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({python})", "language": "python"}))
    client = NotebookClient(notebook, timeout=timeout,
                            kernel_name="samlab-other-python" if specs else "python3",
                            resources={"metadata": {"path": str(source.parent)}},
                            on_cell_start=on_cell_start)
    saved = {k: os.environ.get(k) for k in ("SAMLAB_QUICK", "JUPYTER_PATH")}
    os.environ["SAMLAB_QUICK"] = "1" if quick else "0"  # the kernel inherits it
    if specs:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [specs.name] + ([saved["JUPYTER_PATH"]] if saved["JUPYTER_PATH"] else []))
    try:
        t0 = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - t0
    except BaseException:
        notebook.cells.pop()  # the measuring cell is not the reader's
        raise
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if specs:
            specs.cleanup()
    peak_cell = notebook.cells.pop()
    text = "".join(o.get("text", "") for o in peak_cell.get("outputs", []))
    found = re.search(rf"{PEAK_MARK} (\d+)", text)
    peak_mb = int(found.group(1)) / 1024 if found else float("nan")
    return Executed(notebook, seconds, peak_mb)


def printed(notebook: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``[(cell index, text the cell printed or displayed as text)]`` of the code cells."""
    out = []
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        parts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            elif "data" in o and "text/plain" in o["data"] and \
                    not any(k.startswith(("image/", "application/vnd")) for k in o["data"]):
                parts.append(o["data"]["text/plain"])
            elif o.get("output_type") == "error":
                parts.append(f"{o.get('ename')}: {o.get('evalue')}")
        out.append((i, "".join(parts)))
    return out
