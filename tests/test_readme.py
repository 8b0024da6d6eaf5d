"""The README's first screen: one table of every notebook, and one repository address."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import jupytext
import pytest
from markdown_it import MarkdownIt

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py"))
REPOSITORY = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def tables(markdown: str) -> list[list[str]]:
    """Every table the README renders to, as the text of its body rows."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    found, rows, row, in_body = [], [], [], False
    for t in tokens:
        if t.type == "table_open":
            rows = []
        elif t.type == "tbody_open":
            in_body = True
        elif t.type == "tbody_close":
            in_body = False
        elif t.type == "tr_open":
            row = []
        elif t.type == "inline" and in_body:
            row.append(t.content)
        elif t.type == "tr_close" and in_body:
            rows.append(" | ".join(row))
        elif t.type == "table_close":
            found.append(rows)
    return found


def test_every_notebook_is_a_row_of_one_table():
    holding = [rows for rows in tables(README) if any(NOTEBOOKS[0] in r for r in rows)]
    assert len(holding) == 1, "the notebooks' rows must form one table"
    rows = holding[0]
    for name in NOTEBOOKS:
        assert sum(name in r for r in rows) == 1, f"{name} is not one row of the table"
        row = next(r for r in rows if name in r)
        assert f"{name}.ipynb" in row and "Binder" in row and "Colab" in row, row


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_tables_run_time_is_the_one_make_bench_measured(name):
    row = next(r for rows in tables(README) for r in rows if name in r)
    stated = re.search(r"(?:runs|quick runs) in (\d+) (s|min)", row)
    assert stated, f"the README's row of {name} should say 'runs in N s'"
    seconds = int(stated.group(1)) * (60 if stated.group(2) == "min" else 1)
    bench = json.loads((REPO / "benchmarks" / "results" / "notebooks.json").read_text())
    measured = next(r["value"] for r in bench["rows"]
                    if r["metric"] == f"{name} full mode, Run All")
    assert measured / 2 <= seconds <= measured * 2, (
        f"the README says {name} runs in {seconds} s; make bench measured {measured} s")


def test_no_row_of_the_table_is_left_as_raw_pipe_text():
    rendered = MarkdownIt("commonmark").enable("table").render(README)
    assert not re.search(r"<p>\s*\|", rendered), "a table row rendered as a paragraph"


def test_every_mention_of_the_repository_is_the_one_in_pyproject():
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    files = [REPO / "README.md", *(REPO / "notebooks").glob("[0-9][0-9]_*.py")]
    for path in files:
        text = path.read_text()
        for mention in re.findall(r"(?:github\.com|gh)/([\w.-]+/[\w.-]+)", text):
            assert mention == owner_repo, f"{path.name} mentions {mention}, not {owner_repo}"
    assert "Not published yet" in README and "[project.urls]" in README


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_colab_cell_fails_in_one_line_naming_the_address_it_tried(notebook, monkeypatch):
    cells = [c.source for c in jupytext.read(REPO / "notebooks" / f"{notebook}.py").cells
             if c.cell_type == "code"]
    colab = next(c for c in cells if "google.colab" in c)
    assert f'REPOSITORY = "{REPOSITORY}"' in colab
    unreachable = "file:///nonexistent/samlab"  # fails at once, with or without a network
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(SystemExit) as exit_:
        exec(colab.replace(REPOSITORY, unreachable), {})
    message = str(exit_.value)
    assert message.startswith(f"could not install samlab from {unreachable}: ")
    assert "\n" not in message
