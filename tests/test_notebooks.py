"""Every notebook is a clean jupytext pair that runs top to bottom.

A notebook is ``notebooks/NN_name.py`` (jupytext percent format, the source) plus
``notebooks/NN_name.ipynb`` (committed without outputs, for Binder and Colab).
The executed copies go to ``tests/artifacts/executed/`` for inspection.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from benchmarks.notebook_runner import execute, load, printed
from samlab.exercises import EXERCISES
from samlab.exercises.handout import solutions, student_version

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO_ROOT / "notebooks"
EXECUTED = REPO_ROOT / "tests" / "artifacts" / "executed"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT_S = 600

each_notebook = pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])


def shown(path: Path) -> str:
    """The path as a command run from the repository root would spell it."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


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
def test_every_line_but_a_cell_header_fits_in_100_columns(source: Path):
    """ruff's E501 is off for the notebooks because nbgrader's metadata makes an exercise's
    cell header (``# %% nbgrader={...}``) long; every other line keeps the limit."""
    long = [f"line {i}: {len(line)} columns" for i, line in
            enumerate(source.read_text().splitlines(), 1)
            if len(line) > 100 and not line.startswith("# %% nbgrader=")]
    assert not long, f"{shown(source)}: {long}"


@each_notebook
def test_first_markdown_cell_says_how_long_the_notebook_takes(source: Path):
    cells = jupytext.read(source).cells
    markdown = [cell.source for cell in cells if cell.cell_type == "markdown"]
    assert markdown, f"{shown(source)} has no markdown cell; start with what it teaches"
    assert re.search(r"\d+\s*min", markdown[0]), (
        f"the first markdown cell of {shown(source)} should say how long the notebook takes, "
        f"e.g. '(about 20 min)'; it reads:\n{markdown[0]}"
    )


#: The edits each notebook's text invites a reader to make (its questions and "try it"
#: lines); each must still run top to bottom. Keys: (notebook, what the text says).
INVITED_EDITS = {
    ("01_sam_on_a_saddle", "b = 0.25"): {"SaddleQuadratic(a=1.0, b=0.5)":
                                         "SaddleQuadratic(a=1.0, b=0.25)"},
    ("01_sam_on_a_saddle", "b = 1.0"): {"SaddleQuadratic(a=1.0, b=0.5)":
                                        "SaddleQuadratic(a=1.0, b=1.0)"},
    ("02_why_sam_normalizes", "the same ρ for USAM"): {
        "rho_usam = rho / np.linalg.norm(hyperbola.grad(start))": "rho_usam = rho"},
    ("03_stable_sam", "the playground on the saddle"): {"playground = Playground(quad,":
                                                        "playground = Playground(saddle,"},
}


def run_or_fail(source: Path, edits: dict[str, str] | None = None, tag: str = "",
                student: bool = False) -> nbformat.NotebookNode:
    """Execute ``source`` in quick mode (with ``edits``; as the student copy of ``make
    exercises`` with ``student``) and return it executed; a failure names the cell."""
    started: list[int] = []
    EXECUTED.mkdir(parents=True, exist_ok=True)
    executed = EXECUTED / f"{source.stem}{tag}.ipynb"
    notebook = load(source, edits)
    if student:
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.source = student_version(cell.source, shown(source))
    try:
        execute(source, quick=True, notebook=notebook, timeout=CELL_TIMEOUT_S,
                on_cell_start=lambda cell, cell_index: started.append(cell_index))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        failed = started[-1] if started else None
        pytest.fail(failure_report(source, notebook, failed, error, executed), pytrace=False)
    finally:
        nbformat.write(notebook, executed)
    return notebook


#: A check's call in a notebook (``check_usam_matrix(usam_matrix)``) and the verdict lines
#: the checks print (docs/exercises.md#verdicts).
CHECK_CALL = re.compile(r"^check_(\w+)\(", re.MULTILINE)
VERDICT = re.compile(r"^([✓✗·]) (\w+)[ :]", re.MULTILINE)


def verdicts(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``[(mark, exercise)]`` of every verdict the executed notebook printed, in order."""
    return [m.groups() for _, text in printed(notebook) for m in VERDICT.finditer(text)]


def exercises_in(source: Path) -> list[str]:
    return CHECK_CALL.findall(source.read_text())


@each_notebook
def test_every_notebook_has_two_or_three_exercises_of_its_lecture(source: Path):
    asked = exercises_in(source)
    assert 2 <= len(asked) <= 3, f"{shown(source)} checks {asked}"
    lecture = int(source.stem[:2])
    assert asked == [n for n, e in EXERCISES.items() if e.lecture == lecture]
    assert solutions(source.read_text()) == len(asked)  # one marked solution per check


def test_every_exercise_of_the_checker_is_in_a_notebook():
    assert sorted(n for s in SOURCES for n in exercises_in(s)) == sorted(EXERCISES)


BENCH_RESULTS = REPO_ROOT / "benchmarks" / "results" / "notebooks.json"


@each_notebook
def test_the_header_states_the_run_time_make_bench_measured(source: Path):
    header = next(c.source for c in jupytext.read(source).cells if c.cell_type == "markdown")
    stated = re.search(r"Run All takes about (\d+) (s|min)", header)
    assert stated, f"the first cell of {shown(source)} should say 'Run All takes about N s'"
    seconds = int(stated.group(1)) * (60 if stated.group(2) == "min" else 1)
    rows = json.loads(BENCH_RESULTS.read_text())["rows"]
    measured = next(r["value"] for r in rows
                    if r["metric"] == f"{source.stem} full mode, Run All")
    assert measured / 2 <= seconds <= measured * 2, (
        f"{shown(source)} says {seconds} s; make bench measured {measured} s")


MEMORY = re.compile(r"peak of (\d+\.\d) GB of kernel memory \((\d+\.\d) GB with the CPU build")


@each_notebook
def test_the_header_states_the_memory_high_water_marks_make_bench_measured(source: Path):
    """Rounded up to a tenth of a GB, so never below the measured peak, and not far above
    it: with this environment's torch and with the CPU build that Binder installs."""
    header = next(c.source for c in jupytext.read(source).cells if c.cell_type == "markdown")
    stated = MEMORY.search(" ".join(header.split()))
    assert stated, (f"the first cell of {shown(source)} should say 'a peak of X GB of kernel "
                    f"memory (Y GB with the CPU build ...'")
    rows = {r["metric"]: r["value"] for r in json.loads(BENCH_RESULTS.read_text())["rows"]}
    for gb, metric in zip(stated.groups(), (f"{source.stem} peak kernel memory",
                                            f"{source.stem} peak kernel memory, CPU build of "
                                            "torch, as on Binder")):
        measured_gb = rows[metric] / 1024
        assert measured_gb <= float(gb) < measured_gb + 0.15, (
            f"{shown(source)} says {gb} GB; make bench measured {measured_gb:.2f} GB ({metric})")


FIGURES = REPO_ROOT / "tests" / "artifacts" / "figures"


@pytest.mark.slow
@each_notebook
def test_notebook_runs_top_to_bottom(source: Path, notebook_env):
    notebook = run_or_fail(source)
    # The solutions between the markers pass their checks, each saying so once.
    assert verdicts(notebook) == [("✓", name) for name in exercises_in(source)]
    # The handout figures it saved (quick mode), kept with the test artifacts for a look.
    FIGURES.mkdir(parents=True, exist_ok=True)
    number = source.stem[:2]
    for png in (NOTEBOOKS / "figures").glob(f"{number}_*.png"):
        shutil.copy(png, FIGURES / png.name)


@pytest.mark.slow
@each_notebook
def test_the_student_copy_runs_top_to_bottom_with_every_check_not_attempted(
        source: Path, notebook_env):
    notebook = run_or_fail(source, tag="_student", student=True)
    assert verdicts(notebook) == [("·", name) for name in exercises_in(source)]
    said = "".join(text for _, text in printed(notebook))
    assert said.count("not attempted yet") == len(exercises_in(source))


@pytest.mark.slow
@pytest.mark.parametrize("notebook, invitation", list(INVITED_EDITS),
                         ids=[f"{n}: {w}" for n, w in INVITED_EDITS])
def test_every_edit_a_notebook_invites_still_runs(notebook: str, invitation: str):
    run_or_fail(NOTEBOOKS / f"{notebook}.py", INVITED_EDITS[notebook, invitation],
                tag="_" + re.sub(r"\W+", "_", invitation))


def test_every_notebook_with_a_question_has_an_invited_edit_listed():
    listed = {n for n, _ in INVITED_EDITS}
    asking = {p.stem for p in SOURCES if "Change `" in p.read_text() or "pass `" in p.read_text()}
    assert asking <= listed, asking - listed


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


def test_make_bench_without_the_cpu_build_keeps_its_last_rows(tmp_path, monkeypatch):
    """An instructor's `make bench` with no CPU-build Python must not drop the rows the
    headers' memory figures are checked against: they stay, noted as kept."""
    import benchmarks.bench_notebooks as bench
    from benchmarks.notebook_runner import Executed

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "07_demo.py").write_text("# %%\n")
    results = tmp_path / "results"
    results.mkdir()
    cpu_row = {"metric": f"07_demo peak kernel memory, {bench.CPU_BUILD}", "value": 575,
               "unit": "MB", "goal": "< 1024 MB", "ok": True, "note": "/venv-cpu/bin/python"}
    (results / "notebooks.json").write_text(json.dumps({"rows": [cpu_row]}))
    monkeypatch.setattr(bench, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(bench, "RESULTS", results)
    monkeypatch.setattr(bench, "_run_all", lambda original, python=None: Executed(None, 1.0,
                                                                                   900.0))
    monkeypatch.delenv("SAMLAB_BENCH_BINDER_PYTHON", raising=False)
    monkeypatch.delenv("SAMLAB_BENCH_NOTEBOOKS", raising=False)
    rows = {r.metric: r for r in bench.run()}
    kept = rows[cpu_row["metric"]]
    assert kept.value == 575 and kept.note == "kept from an earlier run (/venv-cpu/bin/python)"
    assert rows["07_demo peak kernel memory"].value == 900
