"""Student copies of the notebooks: every solution replaced by a stub (docs/exercises.md#handouts).

The notebooks hold each exercise's solution between nbgrader's markers, so that a course
using nbgrader can take them as they are::

    def usam_matrix(H, lr, rho):
        ### BEGIN SOLUTION
        return np.eye(len(H)) - lr * (H + rho * H @ H)
        ### END SOLUTION

:func:`student_version` replaces each marked block with the stub nbgrader writes, at the
marker's indentation (``# YOUR CODE HERE`` and ``raise NotImplementedError()``), which a
check reports as "not attempted yet", and drops nbgrader's hidden tests, as
``nbgrader generate_assignment`` does; it needs no nbgrader. ``make exercises`` runs this
module on every notebook: ``python -m samlab.exercises.handout --out student
notebooks/NN_*.py`` writes ``student/NN_*.py`` and, with jupytext installed, the paired
``student/NN_*.ipynb``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_MARKER = re.compile(r"^(?P<indent>[ \t]*)### (?P<end>BEGIN|END) "
                     r"(?P<kind>SOLUTION|HIDDEN TESTS)[ \t]*$")


def _marker(line: str) -> re.Match | None:
    """The marker ``line`` holds (with or without its line ending), or None."""
    return _MARKER.match(line.splitlines()[0] if line else "")


def student_version(source: str, name: str = "source") -> str:
    """``source`` with every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block (markers
    included) replaced by ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, and every
    ``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS`` block removed, as nbgrader's
    ``generate_assignment`` does.

    A marker out of order (an END without its BEGIN, a BEGIN inside a block, a block never
    closed) raises ``ValueError`` naming ``name`` and the line.
    """
    out: list[str] = []
    begun: tuple[int, str] | None = None  # (line, kind) of the open block
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        m = _marker(line)
        if m is None:
            if begun is None:
                out.append(line)
            continue
        kind = m["kind"]
        if m["end"] == "BEGIN":
            if begun is not None:
                raise ValueError(f"{name}, line {number}: ### BEGIN {kind} inside the block "
                                 f"begun on line {begun[0]}: close it with ### END "
                                 f"{begun[1]} first")
            begun = (number, kind)
            if kind == "SOLUTION":
                eol = line[len(line.splitlines()[0]):] or "\n"  # keep the file's line endings
                out += [f"{m['indent']}# YOUR CODE HERE{eol}",
                        f"{m['indent']}raise NotImplementedError(){eol}"]
        else:
            if begun is None or begun[1] != kind:
                raise ValueError(f"{name}, line {number}: ### END {kind} without a ### BEGIN "
                                 f"{kind} before it")
            begun = None
    if begun is not None:
        raise ValueError(f"{name}, line {begun[0]}: ### BEGIN {begun[1]} is never closed by "
                         f"### END {begun[1]}")
    return "".join(out)


def solutions(source: str) -> int:
    """How many solution blocks ``source`` marks."""
    return sum(1 for line in source.splitlines()
               if (m := _marker(line)) and m["end"] == "BEGIN" and m["kind"] == "SOLUTION")


def write_handouts(sources: list[Path], out: Path) -> list[Path]:
    """Write the student version of each notebook source (a jupytext ``.py``) into ``out``,
    with its ``.ipynb`` when jupytext is installed; returns the paths written.

    Everything is checked before anything is written: a copy that would land on a source,
    on the ``.ipynb`` paired with one (``--out`` the sources' own folder, by any path), or
    on any existing file that holds solution markers (another instructor's copy), and two
    copies on one path (two sources of one name, a source given twice) are refused with a
    ``ValueError`` naming both paths, so the instructor's solutions are never overwritten.
    An earlier handout in ``out`` is replaced.
    """
    try:
        import jupytext
    except ImportError:
        jupytext = None
    targets = [(src, [out / src.name] + ([out / f"{src.stem}.ipynb"] if jupytext else []))
               for src in sources]
    _refuse_overwrites(targets)
    texts = [student_version(_read(src), str(src)) for src in sources]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (_, (target, *notebook)), text in zip(targets, texts):
        target.write_text(text, encoding="utf-8")
        written.append(target)
        if notebook:
            jupytext.write(jupytext.reads(text, fmt="py:percent"), notebook[0], fmt="ipynb")
            written.append(notebook[0])
    return written


def _refuse_overwrites(targets: list[tuple[Path, list[Path]]]) -> None:
    """Raise ValueError if a copy would overwrite a source (or its paired .ipynb), a file
    with solutions, or another copy."""
    protected = {}
    for src, _ in targets:
        protected[src.resolve()] = src
        protected[src.resolve().with_suffix(".ipynb")] = src.with_suffix(".ipynb")
    claimed: dict[Path, Path] = {}
    for src, paths in targets:
        for path in paths:
            where = path.resolve()
            if where in protected:
                raise ValueError(f"the copy of {src} would overwrite {protected[where]} "
                                 f"(written as {path}): give --out a folder that holds no "
                                 "source, e.g. --out student")
            if where.is_file() and BEGIN.encode() in where.read_bytes():
                raise ValueError(f"the copy of {src} would overwrite {path}, which holds "
                                 "solutions (an instructor's copy): give --out a folder "
                                 "that holds no source, e.g. --out student")
            if where in claimed:
                raise ValueError(f"{claimed[where]} and {src} would both be written to {path}: "
                                 "give each source once, and sources of different names")
            claimed[where] = src


def _read(src: Path) -> str:
    try:
        return src.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{src} is not UTF-8 text (byte {e.start} is {e.object[e.start]:#x}): "
                         "a jupytext .py source is UTF-8; convert it first") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m samlab.exercises.handout",
        description="Write student copies of notebooks: each solution between "
                    f"'{BEGIN}' and '{END}' becomes a stub.")
    parser.add_argument("sources", nargs="+", type=Path,
                        help="notebook sources (jupytext .py files), e.g. notebooks/0*.py")
    parser.add_argument("--out", type=Path, default=Path("student"),
                        help="folder for the copies (default: student)")
    args = parser.parse_args(argv)
    for src in args.sources:
        if src.suffix != ".py" or not src.is_file():
            print(f"error: sources must be existing jupytext .py files, got {src}",
                  file=sys.stderr)
            return 2
    try:
        written = write_handouts(args.sources, args.out)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # student_version replaced every block solutions() counts (both read markers by _marker).
    stubs = sum(solutions(_read(src)) for src in args.sources)
    print(f"wrote {len(written)} files into {args.out}/ ({stubs} solutions replaced by stubs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
