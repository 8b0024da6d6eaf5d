"""`make exercises`: student copies of the notebooks, each solution replaced by a stub
(docs/exercises.md#handouts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from samlab.exercises.handout import main, solutions, student_version

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = '''import numpy as np


def usam_matrix(H, lr, rho):
    """USAM's step as a matrix."""
    ### BEGIN SOLUTION
    H = np.asarray(H)
    return np.eye(len(H)) - lr * (H + rho * H @ H)
    ### END SOLUTION


class Loop:
    def step(self):
        for _ in range(3):
            ### BEGIN SOLUTION
            pass
            ### END SOLUTION


check(usam_matrix)
'''


def test_each_solution_becomes_the_nbgrader_stub_at_its_indentation():
    student = student_version(SOURCE)
    assert "np.eye" not in student and "pass" not in student and "SOLUTION" not in student
    assert ('    """USAM\'s step as a matrix."""\n'
            "    # YOUR CODE HERE\n"
            "    raise NotImplementedError()\n\n") in student
    assert ("        for _ in range(3):\n"
            "            # YOUR CODE HERE\n"
            "            raise NotImplementedError()\n") in student
    assert student.startswith("import numpy as np\n") and student.endswith("check(usam_matrix)\n")
    compile(student, "student.py", "exec")
    assert solutions(SOURCE) == 2 and solutions(student) == 0


def test_text_without_markers_is_left_as_it_is():
    text = "# the markers `### BEGIN SOLUTION` in prose are not markers\nx = 1\n"
    assert student_version(text) == text and solutions(text) == 0


@pytest.mark.parametrize("text, says", [
    ("x = 1\n### END SOLUTION\n", "line 2: ### END SOLUTION without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\nx = 1\n", "line 1: ### BEGIN SOLUTION is never closed"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n", "line 2: ### BEGIN SOLUTION inside the block"),
])
def test_markers_out_of_order_are_refused_with_the_line(text, says):
    with pytest.raises(ValueError, match="nb.py, " + says.replace("(", r"\(")):
        student_version(text, "nb.py")


def test_every_notebook_makes_a_student_copy_that_compiles():
    sources = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert [s.name[:2] for s in sources] == ["01", "02", "03", "04", "05"]
    for source in sources:
        notebook = jupytext.reads(student_version(source.read_text()), fmt="py:percent")
        for cell in notebook.cells:
            if cell.cell_type == "code":
                compile(cell.source, source.name, "exec")


def test_the_command_writes_py_and_ipynb_copies(tmp_path, capsys):
    src = tmp_path / "01_demo.py"
    src.write_text(jupytext.writes(jupytext.reads(SOURCE, fmt="py:light"), fmt="py:percent"))
    assert main([str(src), "--out", str(tmp_path / "student")]) == 0
    assert "wrote 2 files" in capsys.readouterr().out
    py, ipynb = tmp_path / "student" / "01_demo.py", tmp_path / "student" / "01_demo.ipynb"
    assert "raise NotImplementedError()" in py.read_text()
    code = "".join(c.source for c in jupytext.read(ipynb).cells if c.cell_type == "code")
    assert "raise NotImplementedError()" in code and "np.eye" not in code


@pytest.mark.parametrize("bad, says", [
    ("missing.py", "sources must be existing jupytext .py files, got"),
    ("unbalanced", "### END SOLUTION without a ### BEGIN SOLUTION"),
])
def test_the_command_says_what_is_wrong_in_one_line(tmp_path, bad, says):
    if bad == "unbalanced":
        (tmp_path / "x.py").write_text("### END SOLUTION\n")
        bad = "x.py"
    out = subprocess.run([sys.executable, "-m", "samlab.exercises.handout", bad,
                          "--out", "student"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and says in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "student").exists()


def test_a_source_with_windows_line_endings_gets_its_stubs_too(tmp_path, capsys):
    crlf = SOURCE.replace("\n", "\r\n")
    student = student_version(crlf)
    assert "np.eye" not in student and "pass\r\n" not in student
    assert "    # YOUR CODE HERE\r\n    raise NotImplementedError()\r\n" in student
    assert solutions(crlf) == 2 and solutions(student) == 0
    src = tmp_path / "01_demo.py"
    src.write_bytes(crlf.encode())
    assert main([str(src), "--out", str(tmp_path / "student")]) == 0
    assert "(2 solutions replaced by stubs)" in capsys.readouterr().out


def test_hidden_tests_are_dropped_as_nbgrader_drops_them():
    source = ("check(usam_matrix)\n"
              "### BEGIN HIDDEN TESTS\n"
              "assert usam_matrix(H, 0.1, 0.0).shape == (2, 2)\n"
              "### END HIDDEN TESTS\n"
              "print('done')\n")
    assert student_version(source) == "check(usam_matrix)\nprint('done')\n"
    assert solutions(source) == 0
    with pytest.raises(ValueError, match="line 2: ### END HIDDEN TESTS without a ### BEGIN "
                                         "HIDDEN TESTS"):
        student_version("### BEGIN SOLUTION\n### END HIDDEN TESTS\n", "nb.py")


def test_the_student_copies_say_nothing_of_the_instructors_copy():
    for source in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        student = student_version(source.read_text(), source.name)
        assert "SOLUTION" not in student and "instructor" not in student.lower()
        assert "copy in `notebooks/`" not in student, source.name


def test_make_exercises_needs_no_nbgrader(tmp_path):
    src = tmp_path / "01_demo.py"
    src.write_text(jupytext.writes(jupytext.reads(SOURCE, fmt="py:light"), fmt="py:percent"))
    code = ("import sys\n"
            "sys.modules['nbgrader'] = None  # importing it now fails\n"
            "from samlab.exercises.handout import main\n"
            f"sys.exit(main([{str(src)!r}, '--out', {str(tmp_path / 'student')!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "student" / "01_demo.ipynb").exists()


def _instructor_copy(folder: Path, name: str = "01_demo.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / name
    src.write_text(jupytext.writes(jupytext.reads(SOURCE, fmt="py:light"), fmt="py:percent"))
    jupytext.write(jupytext.read(src), src.with_suffix(".ipynb"))  # its paired notebook
    return src


def _handout(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samlab.exercises.handout", *args],
                          cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("out", [".", "./", "../notebooks", "link"])
def test_the_handout_never_writes_over_the_instructors_copy(tmp_path, out):
    notebooks = tmp_path / "notebooks"
    src = _instructor_copy(notebooks)
    (notebooks / "link").symlink_to(notebooks)  # a folder that resolves to the sources'
    before = {p: p.read_bytes() for p in (src, src.with_suffix(".ipynb"))}
    done = _handout(notebooks, src.name, "--out", out)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"the copy of {src.name} would overwrite {src.name}" in done.stderr
    assert "--out student" in done.stderr and "Traceback" not in done.stderr
    assert {p: p.read_bytes() for p in before} == before  # the solutions are still there


def test_the_handout_refuses_to_write_a_sources_paired_notebook(tmp_path):
    """A .py elsewhere whose copy would land on the instructor's paired .ipynb."""
    notebooks = tmp_path / "notebooks"
    src = _instructor_copy(notebooks)
    other = _instructor_copy(tmp_path / "drafts")
    before = src.with_suffix(".ipynb").read_bytes()
    done = _handout(tmp_path, str(other.relative_to(tmp_path)), "--out", "notebooks")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "would overwrite notebooks/01_demo.py, which holds solutions" in done.stderr
    assert src.with_suffix(".ipynb").read_bytes() == before


def test_a_second_handout_replaces_the_first(tmp_path, capsys):
    src = _instructor_copy(tmp_path / "notebooks")
    for _ in range(2):
        assert main([str(src), "--out", str(tmp_path / "student")]) == 0
    assert "raise NotImplementedError()" in (tmp_path / "student" / src.name).read_text()


@pytest.mark.parametrize("second", ["sub/01_demo.py", "01_demo.py", "./01_demo.py"])
def test_two_sources_are_never_written_to_one_path(tmp_path, second):
    _instructor_copy(tmp_path)
    _instructor_copy(tmp_path / "sub")
    done = _handout(tmp_path, "01_demo.py", second, "--out", "student")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    both = f"01_demo.py and {Path(second)} would both be written to student/01_demo.py"
    assert both in done.stderr
    assert not (tmp_path / "student").exists()  # refused before writing anything


def test_a_source_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "latin.py").write_bytes("# caf\xe9\n".encode("latin-1"))
    done = _handout(tmp_path, "latin.py", "--out", "student")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "latin.py is not UTF-8 text (byte 5 is 0xe9)" in done.stderr
    assert not (tmp_path / "student").exists()
