"""Courses grade the exercises with nbgrader (README: Grading with nbgrader;
docs/exercises.md#grading-with-nbgrader).

The metadata tests read the notebooks. The pipeline (slow) runs nbgrader's own commands on
all five notebooks in a temporary course directory, as an instructor and three students
would: ``generate_assignment``; for lab01 ``release_assignment``, each student's
``fetch_assignment`` and ``submit``, then ``collect``, and for the other labs submissions
put into ``submitted/`` by hand; ``autograde``, ``generate_feedback`` and ``export``. The
students hand in the instructor's copy (every point), the release copy untouched (no
point) and one wrong answer (every point but that exercise's).
"""

from __future__ import annotations

import csv
import html
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import pytest

from samlab.exercises import EXERCISES

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO_ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
CONFIG = REPO_ROOT / "docs" / "nbgrader_config.py"
README = REPO_ROOT / "README.md"

each_notebook = pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])

#: What nbgrader acts on in a cell's text, whatever the cell's metadata says.
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION")
TEST_MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
TASK_MARKERS = ("BEGIN MARK SCHEME", "END MARK SCHEME")


def exercises_of(source: Path) -> list[str]:
    return [name for name, e in EXERCISES.items() if e.lecture == int(source.stem[:2])]


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


# -- the notebooks carry nbgrader's metadata -------------------------------------------------


@each_notebook
def test_each_exercise_is_a_solution_cell_then_a_graded_test_cell_worth_one_point(source):
    cells = jupytext.read(source).cells
    marked = [(i, nbgrader_meta(c)) for i, c in enumerate(cells) if nbgrader_meta(c)]
    names = exercises_of(source)
    assert [m["grade_id"] for _, m in marked] == [i for n in names for i in (n, f"check_{n}")]
    for (i, answer), (j, test) in zip(marked[::2], marked[1::2]):
        name = answer["grade_id"]
        assert j == i + 1, f"{source.name}: check_{name}'s cell must follow {name}'s"
        assert answer == {"grade": False, "grade_id": name, "locked": False,
                          "schema_version": 3, "solution": True, "task": False}
        assert test == {"grade": True, "grade_id": f"check_{name}", "locked": True,
                        "points": 1, "schema_version": 3, "solution": False, "task": False}
        solution, check = cells[i], cells[j]
        assert solution.cell_type == check.cell_type == "code"
        assert f"def {name}(" in solution.source
        assert [solution.source.count(m) for m in SOLUTION_MARKERS] == [1, 1]
        # The test cell imports its check itself: nbgrader restores it as the instructor
        # wrote it, whatever a student did to the cells around it.
        assert check.source == (f"from samlab.exercises import check_{name}\n\n"
                                f"check_{name}({name})")


@each_notebook
def test_the_text_says_what_each_exercise_is_worth(source):
    cells = jupytext.read(source).cells
    first = next(i for i, c in enumerate(cells) if nbgrader_meta(c))
    text = cells[first - 1]
    assert text.cell_type == "markdown" and "Each exercise is worth one point" in text.source
    assert {nbgrader_meta(c).get("points") for c in cells if nbgrader_meta(c).get("grade")} == {1}


@each_notebook
def test_no_other_cell_holds_a_marker_nbgrader_would_act_on(source):
    """nbgrader treats any line holding these words as a marker: prose that mentions
    them makes ``generate_assignment`` stop ("Solution region detected in a
    non-solution cell")."""
    for i, cell in enumerate(jupytext.read(source).cells):
        meta = nbgrader_meta(cell)
        words = (TASK_MARKERS + (() if meta.get("solution") else SOLUTION_MARKERS)
                 + (() if meta.get("grade") else TEST_MARKERS))
        found = [w for w in words if w in cell.source]
        assert not found, f"{source.name}, cell {i} ({cell.cell_type}) mentions {found}"


@each_notebook
def test_the_py_and_the_ipynb_carry_the_same_nbgrader_metadata(source):
    py = [nbgrader_meta(c) for c in jupytext.read(source).cells]
    ipynb = [nbgrader_meta(c) for c in nbformat.read(source.with_suffix(".ipynb"), 4).cells]
    assert py == ipynb, (f"{source.name} and its .ipynb disagree on nbgrader's metadata; "
                         f"re-pair them: make notebooks")


def test_every_exercise_has_exactly_one_solution_cell_and_one_graded_test_cell():
    ids = [nbgrader_meta(c)["grade_id"] for s in SOURCES for c in jupytext.read(s).cells
           if nbgrader_meta(c)]
    assert sorted(ids) == sorted([*EXERCISES, *(f"check_{n}" for n in EXERCISES)])


# -- nbgrader's pipeline, run for real --------------------------------------------------------

#: One wrong answer per notebook: (exercise, the body a student wrote, words of its hint).
WRONG = {
    "01": ("usam_matrix", "return np.eye(len(H)) - lr * (H + rho * H * H)", "matrix product"),
    "02": ("sam_perturbation", "return [rho * t / (t.norm() + 1e-12) for t in g]",
           "not one per tensor"),
    "03": ("ssam_step", "def norm(ts):\n    return torch.sqrt(sum((t ** 2).sum() for t in ts))\n"
           "\ng = grad(w)\ng_asc = grad([wi + rho * gi for wi, gi in zip(w, g)])\n"
           "gamma = min(ssam_gamma(norm(g), norm(g_asc)), 1.0)\n"
           "return [wi - lr * gamma * gi for wi, gi in zip(w, g_asc)]", "not capped"),
    "04": ("late_sam_cost", "return 1 + switch_fraction", "fraction of training before"),
    "05": ("momentum_edge", "return 2 / lr", "without momentum"),
}
STUDENTS = ("solved", "blank", "one_wrong")
#: The lab that goes through nbgrader's exchange; the others are put into submitted/.
EXCHANGED = "lab01"


def lab(source: Path) -> str:
    return f"lab{source.stem[:2]}"


def answered(cell_source: str, body: str | None = None) -> str:
    """An instructor's solution cell as a student hands it in: the markers gone, the lines
    between them kept (or replaced by ``body``, at their indentation)."""
    lines = cell_source.split("\n")
    begin = next(i for i, line in enumerate(lines) if "BEGIN SOLUTION" in line)
    end = next(i for i, line in enumerate(lines) if "END SOLUTION" in line)
    indent = re.match(r"\s*", lines[begin]).group(0)
    inner = lines[begin + 1:end] if body is None else [
        (indent + line) if line else "" for line in body.split("\n")]
    return "\n".join(lines[:begin] + inner + lines[end + 1:])


def submission(student: str, source: Path, release: nbformat.NotebookNode,
               instructor: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What ``student`` hands in for the notebook ``source``, starting from its release."""
    if student == "solved":
        return instructor
    notebook = nbformat.from_dict(release)
    if student == "one_wrong":
        wrong, body, _ = WRONG[source.stem[:2]]
        mine = {nbgrader_meta(c).get("grade_id"): c.source for c in instructor.cells}
        for cell in notebook.cells:
            name = nbgrader_meta(cell).get("grade_id")
            if nbgrader_meta(cell).get("solution"):
                cell.source = answered(mine[name], body if name == wrong else None)
    return notebook


@dataclass
class Course:
    root: Path
    log: str  #: every command run, and what it printed, for a failure's message
    validated: str = ""  #: what `nbgrader validate` told the student with one wrong answer

    def notebook(self, folder: str, source: Path, student: str | None = None) -> Path:
        parts = [folder, *([student] if student else []), lab(source)]
        return self.root.joinpath(*parts, f"{source.stem}.ipynb")


def readme_course_block() -> str:
    text = README.read_text()
    section = text[text.index("### Grading with nbgrader"):text.index("### Without nbgrader")]
    return re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)


#: The commands run below, as the README spells them for lab01.
COMMANDS = ("nbgrader generate_assignment lab01", "nbgrader release_assignment lab01",
            "nbgrader collect lab01", "nbgrader autograde lab01 --create",
            "nbgrader generate_feedback lab01", "nbgrader export",
            "cp ../docs/nbgrader_config.py .")


def test_the_readme_gives_the_commands_the_pipeline_test_runs():
    block = readme_course_block()
    missing = [c for c in COMMANDS if c not in block]
    assert not missing, f"README's course commands lack {missing}"


@pytest.fixture(scope="module")
def course(tmp_path_factory, notebook_data_dir) -> Course:
    pytest.importorskip("nbgrader", reason="nbgrader is samlab's `course` extra")
    top = tmp_path_factory.mktemp("nbgrader")
    root, exchange = top / "course", top / "exchange"
    root.mkdir()
    exchange.mkdir()
    shutil.copy(CONFIG, root / "nbgrader_config.py")
    # Where a course's exchange would be /srv/nbgrader/exchange; students never read the
    # course's config, so they are given it on the command line, as their own would say.
    where = [f"--Exchange.root={exchange}", f"--Exchange.cache={top / 'cache'}"]
    # An instructor runs nbgrader from samlab's activated environment: nbgrader runs its
    # own tools (alembic) from there too.
    env = {**os.environ, "SAMLAB_QUICK": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    if notebook_data_dir is not None:
        env["SAMLAB_DATA"] = str(notebook_data_dir)
    log: list[str] = []

    def nbgrader(*args: str, cwd: Path = root) -> str:
        out = subprocess.run(["nbgrader", *args], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=1800)
        log.append(f"$ nbgrader {' '.join(args)}  (in {cwd})\n{out.stdout}{out.stderr}")
        if out.returncode:
            pytest.fail("\n".join(log[-1:]) + f"\nexit {out.returncode}", pytrace=False)
        return out.stdout

    for source in SOURCES:
        (root / "source" / lab(source)).mkdir(parents=True)
        shutil.copy(source.with_suffix(".ipynb"), root / "source" / lab(source))
    nbgrader("generate_assignment", "lab*")
    course = Course(root, "")
    for source in (s for s in SOURCES if lab(s) != EXCHANGED):
        release = nbformat.read(course.notebook("release", source), 4)
        instructor = nbformat.read(course.notebook("source", source), 4)
        for student in STUDENTS:
            target = course.notebook("submitted", source, student)
            target.parent.mkdir(parents=True)
            nbformat.write(submission(student, source, release, instructor), target)
    nbgrader("release_assignment", EXCHANGED, *where)
    source = next(s for s in SOURCES if lab(s) == EXCHANGED)
    instructor = nbformat.read(course.notebook("source", source), 4)
    for student in STUDENTS:
        home = top / "home" / student
        home.mkdir(parents=True)
        nbgrader("fetch_assignment", EXCHANGED, "--course", "sam-course", *where, cwd=home)
        fetched = home / EXCHANGED / f"{source.stem}.ipynb"
        release = nbformat.read(fetched, 4)
        nbformat.write(submission(student, source, release, instructor), fetched)
        if student == "one_wrong":  # the Validate button, before submitting
            course.validated = nbgrader("validate", str(fetched.relative_to(home)), cwd=home)
        nbgrader("submit", EXCHANGED, "--course", "sam-course", "--student", student, *where,
                 cwd=home)
    nbgrader("collect", EXCHANGED, *where)
    nbgrader("autograde", "lab*", "--create")
    nbgrader("generate_feedback", "lab*")
    nbgrader("export")
    course.log = "\n".join(log)
    return course


def text_of(cell) -> str:
    """What a cell shows: its printed text, and its error's traceback lines."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.extend(out.get("traceback", []))
    return "\n".join(parts)


@pytest.mark.slow
@each_notebook
def test_the_release_copy_has_no_solution_left_and_says_nothing_of_the_instructors(course,
                                                                                    source):
    release = nbformat.read(course.notebook("release", source), 4)
    instructor = nbformat.read(course.notebook("source", source), 4)
    text = "\n".join(c.source for c in release.cells)
    assert not any(m in text for m in SOLUTION_MARKERS)
    assert "copy in `notebooks/`" not in text and "instructor" not in text.lower()
    for ours, theirs in zip(instructor.cells, release.cells):
        if nbgrader_meta(ours).get("solution"):
            kept = answered(ours.source).split("\n")
            region = [line for line in kept if line.strip() and line not in theirs.source]
            assert region, f"{source.name}: {nbgrader_meta(ours)['grade_id']} kept its solution"
            assert "raise NotImplementedError()" in theirs.source
        else:
            assert theirs.source == ours.source


def grades(course: Course) -> dict[tuple[str, str], float]:
    """``{(lab, student): score}`` from the grades.csv that ``nbgrader export`` wrote."""
    with open(course.root / "grades.csv", newline="") as f:
        return {(row["assignment"], row["student_id"]): float(row["score"])
                for row in csv.DictReader(f)}


@pytest.mark.slow
@each_notebook
def test_autograde_gives_each_submission_the_points_its_answers_earn(course, source):
    score = grades(course)
    assert score[lab(source), "solved"] == 2.0, course.log[-3000:]
    assert score[lab(source), "blank"] == 0.0
    assert score[lab(source), "one_wrong"] == 1.0
    # The point lost is the wrong exercise's, and every check said why in its cell.
    wrong = WRONG[source.stem[:2]][0]
    for student in STUDENTS:
        graded = nbformat.read(course.notebook("autograded", source, student), 4)
        for cell in graded.cells:
            meta = nbgrader_meta(cell)
            if not meta.get("grade"):
                continue
            name = meta["grade_id"].removeprefix("check_")
            shown = text_of(cell)
            if student == "solved" or (student == "one_wrong" and name != wrong):
                assert f"✓ {name} passed" in shown and "NotPassed" not in shown
            elif student == "blank":
                assert f"· {name}: not attempted yet" in shown and "NotPassed" in shown
            else:
                assert f"✗ {name} failed on case" in shown and "hint:" in shown


@pytest.mark.slow
@each_notebook
def test_the_blank_copy_runs_to_the_end_under_the_autograder(course, source):
    graded = nbformat.read(course.notebook("autograded", source, "blank"), 4)
    code = [c for c in graded.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a cell was not run"
    failed = [nbgrader_meta(c).get("grade_id", c.source[:60]) for c in code
              if any(o.output_type == "error" for o in c.outputs)]
    assert failed == [f"check_{n}" for n in exercises_of(source)]


@pytest.mark.slow
@each_notebook
def test_the_feedback_shows_the_failing_verdict_with_its_hint(course, source):
    page = course.notebook("feedback", source, "one_wrong").with_suffix(".html").read_text()
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    wrong, _, hint = WRONG[source.stem[:2]]
    assert f"✗ {wrong} failed on case" in shown
    assert re.search(rf"hint:[^\n]*{re.escape(hint)}", shown)
    assert f"{source.stem} (Score: 1.0 / 2.0)" in shown
    assert re.search(rf"Grade cell: check_{wrong}\s+Score: 0.0 / 1.0", shown)


@pytest.mark.slow
def test_validate_shows_a_student_the_check_that_fails_before_they_submit(course):
    wrong, _, hint = WRONG[EXCHANGED.removeprefix("lab")]
    said = course.validated
    assert "The following cell failed" in said and f"check_{wrong}({wrong})" in said
    assert f"✗ {wrong} failed on case" in said and hint in said
    assert said.count("The following cell failed") == 1  # the other answer is right
