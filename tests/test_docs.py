"""The reference in docs/ is what code, notebooks and the README cite: every citation lands.

A citation is ``docs/<page>.md`` or ``docs/<page>.md#<section>`` (in docstrings and
comments), or a Markdown link to one; the section must be a heading of the page, in
GitHub's anchor spelling. Nothing cites the SPEC, a file users do not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CITING = sorted([*REPO.glob("samlab/**/*.py"), *REPO.glob("notebooks/[0-9][0-9]_*.py"),
                 *REPO.glob("tests/**/*.py"), *REPO.glob("benchmarks/*.py"),
                 REPO / "README.md", *DOCS.glob("*.md")])
CITATION = re.compile(r"(?:docs/|\()([a-z_]+\.md)(?:#([\w\-]+))?")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, '-' for ' '."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def citations() -> list[tuple[str, str, str | None]]:
    found = []
    for path in CITING:
        for page, section in CITATION.findall(path.read_text()):
            if path.parent == DOCS or (DOCS / page).exists() or "docs/" in page:
                found.append((str(path.relative_to(REPO)), page, section or None))
    return found


def test_the_code_cites_the_docs():
    cited = {page for _, page, _ in citations()}
    assert {"methods.md", "toy.md", "sharpness.md", "training.md"} <= cited


@pytest.mark.parametrize("where, page, section", citations(),
                         ids=lambda v: str(v) if v is not None else "")
def test_every_citation_names_a_page_and_section_that_exist(where, page, section):
    target = DOCS / page
    assert target.is_file(), f"{where} cites docs/{page}, which does not exist"
    if section:
        assert section in anchors(target), \
            f"{where} cites docs/{page}#{section}; its sections: {sorted(anchors(target))}"


def test_nothing_cites_the_spec():
    citing_spec = [str(p.relative_to(REPO)) for p in CITING
                   if re.search(r"\bSPEC\b(?!TRUM)", p.read_text()) and p != Path(__file__)]
    assert citing_spec == []


def test_the_readme_links_every_page_of_the_reference():
    readme = (REPO / "README.md").read_text()
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
