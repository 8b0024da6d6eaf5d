"""Every notebook is a clean jupytext pair that runs top to bottom.

A notebook is ``notebooks/NN_name.py`` (jupytext percent format, the source) plus
``notebooks/NN_name.ipynb`` (committed without outputs, for Binder and Colab).
The executed copies go to ``tests/artifacts/executed/`` for inspection.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO_ROOT / "notebooks"
EXECUTED = REPO_ROOT / "tests" / "artifacts" / "executed"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT_S = 600

each_notebook = pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])


def shown(path: Path) -> str:
    """The path as a command run from the repository root would spell it."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


@contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set environment variables (inherited by kernels started inside), restore after."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_every_ipynb_has_a_py_source():
    orphans = [p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if not p.with_suffix(".py").exists()]
    assert not orphans, (
        "the .py (jupytext percent format) is each notebook's source; create it with "
        + "; ".join(f"jupytext --to py:percent {shown(p)}" for p in orphans)
    )


@each_notebook
def test_ipynb_exists(source: Path):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), (
        f"{shown(ipynb)} is missing; create it: jupytext --to ipynb {shown(source)}"
    )


@each_notebook
def test_ipynb_is_committed_without_outputs(source: Path):
    ipynb = source.with_suffix(".ipynb")
    notebook = nbformat.read(ipynb, as_version=4)
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{shown(ipynb)} has outputs or execution counts in cells {dirty}; clear them: "
        f"jupyter nbconvert --clear-output --inplace {shown(ipynb)}"
    )


@each_notebook
def test_py_and_ipynb_are_in_sync(source: Path):
    ipynb = source.with_suffix(".ipynb")
    # Only cell types and sources count: jupytext legitimately adds metadata to either side.
    expected = [(cell.cell_type, cell.source) for cell in jupytext.read(source).cells]
    actual = [(cell.cell_type, cell.source) for cell in nbformat.read(ipynb, as_version=4).cells]
    if expected == actual:
        return
    fix = (
        f"Fix: regenerate the .ipynb from its source, `jupytext --to ipynb {shown(source)}`; "
        f"or, if you edited the .ipynb and the pair has `formats` metadata, "
        f"`jupytext --sync {shown(source)}` (the newer file wins)."
    )
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            pytest.fail(
                f"{shown(source)} and {shown(ipynb)} differ first at cell {i}:\n"
                f"--- .py ({want[0]}):\n{want[1]}\n--- .ipynb ({got[0]}):\n{got[1]}\n{fix}"
            )
    pytest.fail(
        f"{shown(source)} has {len(expected)} cells, {shown(ipynb)} has {len(actual)}.\n{fix}"
    )


@each_notebook
def test_first_markdown_cell_says_how_long_the_notebook_takes(source: Path):
    cells = jupytext.read(source).cells
    markdown = [cell.source for cell in cells if cell.cell_type == "markdown"]
    assert markdown, f"{shown(source)} has no markdown cell; start with what it teaches"
    assert re.search(r"\d+\s*min", markdown[0]), (
        f"the first markdown cell of {shown(source)} should say how long the notebook takes, "
        f"e.g. '(about 20 min)'; it reads:\n{markdown[0]}"
    )


@pytest.mark.slow
@each_notebook
def test_notebook_runs_top_to_bottom(source: Path):
    notebook = jupytext.read(source)
    started: list[int] = []
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent)}},  # the kernel's cwd
        on_cell_start=lambda cell, cell_index: started.append(cell_index),
    )
    EXECUTED.mkdir(parents=True, exist_ok=True)
    executed = EXECUTED / f"{source.stem}.ipynb"
    try:
        # Set before the kernel starts, so that the kernel inherits it.
        with environment(SAMLAB_QUICK="1"):
            client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        failed = started[-1] if started else None
        pytest.fail(failure_report(source, notebook, failed, error, executed), pytrace=False)
    finally:
        nbformat.write(notebook, executed)


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failure_report(
    source: Path,
    notebook: nbformat.NotebookNode,
    index: int | None,
    error: Exception,
    executed: Path,
) -> str:
    """Which cell of which notebook failed, its source, and the traceback without colours."""
    where = f"(executed notebook saved to {shown(executed)})"
    if index is None:
        return f"{shown(source)}: {type(error).__name__} before any cell ran: {error}\n{where}"
    cell = notebook.cells[index]
    errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    if isinstance(error, CellTimeoutError):
        what = f"timed out (limit {CELL_TIMEOUT_S} s per cell)"
    elif errors:
        what = f"raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
    else:
        what = f"failed: {type(error).__name__}"
    if errors:
        detail = ANSI_ESCAPE.sub("", "\n".join(errors[0].get("traceback", [])))
    else:  # a dead kernel leaves no error output in the cell
        detail = str(error)
    return (
        f"{shown(source)}: cell {index} {what}\n"
        f"--- cell {index} source:\n{cell.source}\n"
        f"--- traceback:\n{detail}\n{where}"
    )
