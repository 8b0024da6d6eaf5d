"""Notebook 01 in a real JupyterLab, in a real browser: run all cells, move a slider.

What only a browser can check: the widget front-ends (ipywidgets' JupyterLab manager,
anywidget for the playground's view and plotly's ``FigureWidget``) load and render, a
slider moved in the page is drawn as new trajectories at once, and the kernel's table
follows.

Screenshots go to ``tests/artifacts/browser/``: ``01_before.png`` (after Run All Cells),
``02_after.png`` (after the lr slider moved), and ``failure.png`` (the page when the test
failed, wherever that was).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from benchmarks import hand
from benchmarks.lab import (
    LR_HANDLE,
    LR_READOUT,
    NOTEBOOK_STATE_JS,
    PLAYGROUND,
    PLOT,
    PLOT_CHANGE_TIMEOUT_S,
    PLOT_TRACES_JS,
    SLIDER_KEY_PRESSES,
    WIDGET_TIMEOUT_S,
    LabError,
    open_and_run_all,
    poll,
    read_readout,
    screenshot,
    wait_for_kernel_idle,
    wait_for_widgets,
    wait_until_stable,
)
from benchmarks.lab import (
    NOTEBOOKS as NOTEBOOKS_DIR,
)

# Every notebook with a playground, and how many figures it must render at least (01: the
# plotly phase diagram and the playground; 02: the same; 03 and 04: the playground).
NOTEBOOKS = {"01_sam_on_a_saddle": 2, "02_why_sam_normalizes": 2, "03_stable_sam": 1,
             "04_sam_late_in_training": 1}


class Diagnostics:
    """What to say when the test fails: server log, browser console, page state."""

    def __init__(self, lab_server: Any, lab_page: Any):
        self.lab_server = lab_server
        self.lab_page = lab_page

    def report(self) -> str:
        try:
            state = json.dumps(self.lab_page.page.evaluate(NOTEBOOK_STATE_JS), indent=1)[:4000]
        except Exception as error:  # the page may be gone
            state = f"(page state unavailable: {error})"
        return (
            f"--- notebook state in the page ---\n{state}\n"
            f"--- browser console (errors and warnings, last 30) ---\n"
            f"{self.lab_page.console_tail()}\n"
            f"--- dialogs answered ---\n{self.lab_page.dialogs or '(none)'}\n"
            f"--- JupyterLab server log (last 60 lines) ---\n{self.lab_server.log_tail()}"
        )


@contextmanager
def explained_failures(lab_page: Any, lab_server: Any, screenshot_to: Path,
                       show: str | None = None) -> Iterator[None]:
    """On any failure: a screenshot of the page (scrolled to ``show``, a selector, if the
    page has it) to ``screenshot_to``, then a pytest failure that carries the diagnostics."""
    try:
        yield
    except BaseException as error:
        if not isinstance(error, (Exception, pytest.fail.Exception)):
            raise  # KeyboardInterrupt and the like
        if show is not None:
            try:
                lab_page.page.locator(show).first.scroll_into_view_if_needed(timeout=2000)
            except Exception:
                pass  # not there: the page as it is
        screenshot(lab_page.page, screenshot_to)
        if isinstance(error, pytest.fail.Exception):
            message = error.msg
        elif isinstance(error, LabError):
            message = str(error)
        else:  # Playwright timeouts, assertion errors, ...
            message = f"{type(error).__name__}: {error}"
        # `from None`: the report replaces the original error, it does not chain to it.
        report = Diagnostics(lab_server, lab_page).report()
        raise pytest.fail.Exception(f"{message}\n\n{report}", pytrace=False) from None


# Loose bounds on what a student sees (make bench holds the real goals: median 100 ms,
# worst 200 ms, a frame every 150 ms of a drag, the final value 300 ms after mouse-up):
# loose enough for a loaded CI machine, tight enough that a figure waiting on the kernel
# fails (the plotly playground's drag kept drawing queued values for 2.4 s).
HAND_MEDIAN_MS, HAND_WORST_MS, DRAG_GAP_MS, DRAG_SETTLE_MS = 250, 1000, 600, 1000


def a_hand_sees_each_input_drawn_at_once(page: Any) -> None:
    """Key presses, clicks on the contour and a one-second drag, measured in the page:
    every input changes the plot within the bounds, and the drag ends on its last value."""
    hand.watch(page)
    keys = hand.key_presses(page, 6)
    clicks = hand.contour_clicks(page, 2)
    for kind, lat, n in (("key press", keys, 6), ("click on the contour", clicks, 2)):
        assert len(lat) == n, f"{n - len(lat)} of {n} {kind}es did not change the plot"
        assert statistics.median(lat) <= HAND_MEDIAN_MS and max(lat) <= HAND_WORST_MS, (
            f"{kind} → plot changed took {[round(v) for v in lat]} ms")
    shown = page.evaluate(f"() => document.querySelector({PLOT!r}).samlabPlot.meta")
    start = [float(page.locator(f"{PLAYGROUND} .samlab-x0-{c} input").input_value())
             for c in "xy"]
    assert shown["x0"] == pytest.approx(start), "the plot does not start where the boxes say"
    drag = hand.drag(page)
    assert drag["gap"] <= DRAG_GAP_MS, f"during the drag the plot froze for {drag}"
    assert drag["settle"] <= DRAG_SETTLE_MS, f"the plot kept moving after the mouse-up: {drag}"
    assert drag["shown"] == pytest.approx(drag["readout"], rel=5e-3), (
        f"after the drag the slider reads lr = {drag['readout']}, the plot shows {drag}")


def save_and_check_the_pair(page: Any, ipynb: Path, timeout_s: float = 30) -> None:
    """Save as a student would (Ctrl+S), then check what make test checks of the pair:
    the saved .ipynb has no outputs, and it holds the .py's cells."""
    import jupytext
    import nbformat

    before = ipynb.stat().st_mtime_ns
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").click(
        position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    assert poll(lambda: ipynb.stat().st_mtime_ns != before, timeout_s), "the save never landed"
    time.sleep(1)  # jupytext writes the .py beside it
    saved = nbformat.read(ipynb, as_version=4)
    dirty = [i for i, c in enumerate(saved.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"saving left outputs in {ipynb.name}, cells {dirty}"
    source = jupytext.read(ipynb.with_suffix(".py"))
    assert [(c.cell_type, c.source) for c in source.cells] == \
        [(c.cell_type, c.source) for c in saved.cells], "the saved pair is out of sync"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
def test_playground_slider_redraws_trajectories(notebook, lab_page, lab_server, artifacts_dir):
    page = lab_page.page
    for old in artifacts_dir.glob(f"{notebook}_*.png"):
        old.unlink()
    with explained_failures(lab_page, lab_server, artifacts_dir / f"{notebook}_failure.png",
                            show=PLAYGROUND):
        # A fresh workspace, not the one the previous notebook's test left (which would
        # reopen that notebook, with its kernel and widgets, beside this one).
        state = open_and_run_all(lab_page, lab_server, notebook)
        assert len(state["prompts"]) > 1, f"too few code cells: {state['prompts']}"
        widgets = wait_for_widgets(page, WIDGET_TIMEOUT_S)
        assert widgets["plots_with_data"] >= NOTEBOOKS[notebook], (
            f"too few figures rendered: {widgets}")

        playground = page.locator(PLAYGROUND)
        playground.scroll_into_view_if_needed()
        before = page.evaluate(PLOT_TRACES_JS, PLOT)
        readout = page.locator(LR_READOUT)
        readout_before = read_readout(readout)
        assert before and any(t["x"] for t in before), f"no line traces with data: {before}"
        screenshot(page, artifacts_dir / f"{notebook}_before.png")

        handle = page.locator(LR_HANDLE)
        handle.focus()
        for _ in range(SLIDER_KEY_PRESSES):
            handle.press("ArrowRight")
            page.wait_for_timeout(50)

        after = poll(
            lambda: (t := page.evaluate(PLOT_TRACES_JS, PLOT)) and t != before and t,
            PLOT_CHANGE_TIMEOUT_S,
        )
        if after:  # each key press re-ran the playground: wait for the last redraw
            wait_for_kernel_idle(lab_page, lab_server, timeout_s=PLOT_CHANGE_TIMEOUT_S)
            after = wait_until_stable(page, after, PLOT_CHANGE_TIMEOUT_S)
        readout_after = read_readout(readout)
        playground.scroll_into_view_if_needed()
        screenshot(page, artifacts_dir / f"{notebook}_after.png")

        assert readout_after != readout_before, (
            f"the lr readout did not change after {SLIDER_KEY_PRESSES} × ArrowRight on the "
            f"slider handle: {readout_before!r}"
        )
        assert float(readout_after) > float(readout_before), (readout_before, readout_after)
        assert after, (
            f"the plot's line traces did not change within {PLOT_CHANGE_TIMEOUT_S} s after "
            f"the lr slider moved from {readout_before} to {readout_after}: the slider's "
            "value did not reach the kernel, or the new runs did not reach the FigureWidget"
        )
        paths_before = [t for t in before if "markers" in t["mode"]]
        paths_after = [t for t in after if "markers" in t["mode"]]
        assert [t["name"] for t in paths_after] == [t["name"] for t in paths_before]
        assert any(a != b for a, b in zip(paths_before, paths_after)), (
            "only the loss curves changed, not the trajectories"
        )
        final = page.evaluate(NOTEBOOK_STATE_JS)
        assert not final["errors"], f"error outputs after the slider moved: {final['errors']}"
        a_hand_sees_each_input_drawn_at_once(page)
        save_and_check_the_pair(page, lab_server.root_dir / f"{notebook}.ipynb")


# The live dashboard's panels: every plotly plot in the page whose λ_max panel has points.
DASHBOARDS_JS = """
() => Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot'))
  .filter(p => Array.isArray(p.data))
  .map(p => ({title: (p.layout && p.layout.title && p.layout.title.text) || '',
              lambda_points: p.data.filter(t => t.name === 'λ_max')
                .reduce((n, t) => n + (t.x ? t.x.length : 0), 0),
              edge_points: p.data.filter(t => /edge/.test(String(t.name)))
                .reduce((n, t) => n + (t.x ? t.x.length : 0), 0)}))
"""


@pytest.mark.browser
@pytest.mark.slow
def test_notebook_05_trains_with_live_dashboards_that_draw_sharpness_and_edges(
        lab_page, lab_server, artifacts_dir):
    """Notebook 05 in quick mode: each arm's LiveDashboard renders and holds its λ_max
    points and its stability edges once Run All has finished."""
    page, notebook = lab_page.page, "05_resnet20_cifar10_live"
    with explained_failures(lab_page, lab_server, artifacts_dir / "failure.png"):
        state = open_and_run_all(lab_page, lab_server, notebook)
        assert not state["errors"], f"error outputs: {state['errors']}"
        boards = poll(lambda: (b := page.evaluate(DASHBOARDS_JS))
                      and sum(d["lambda_points"] > 0 for d in b) >= 3 and b,
                      WIDGET_TIMEOUT_S)
        shown = page.evaluate(DASHBOARDS_JS)
        assert boards, f"three dashboards with λ_max points expected, the page shows {shown}"
        assert all(d["edge_points"] > 0 for d in boards if d["lambda_points"]), boards
        page.locator(".jp-OutputArea-output .js-plotly-plot").first\
            .scroll_into_view_if_needed()
        screenshot(page, artifacts_dir / f"{notebook}_dashboards.png")


# The output text of the code cell whose source holds ``marker`` (its last output area).
CELL_OUTPUT_JS = """
(marker) => {
  const cells = Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell'));
  const cell = cells.find(c => (c.querySelector('.jp-InputArea-editor') || {}).textContent
                               ?.includes(marker));
  return cell ? (cell.querySelector('.jp-OutputArea') || {}).textContent || '' : null;
}
"""
STUDENT_ANSWER = """def usam_matrix(H, lr, rho):
    H = np.asarray(H)
    return np.eye(len(H)) - lr * (H + rho * H @ H)"""
#: The cell after the answer: the check, nbgrader's graded test cell.
CHECK_CELL = "check_usam_matrix(usam_matrix)"


@pytest.mark.browser
@pytest.mark.slow
def test_a_student_fills_in_an_exercise_and_its_check_passes(lab_page, lab_server,
                                                             artifacts_dir):
    """The student copy of notebook 01 (``make exercises``): Run All, every check says
    "not attempted yet"; write the first exercise into its cell, run it and the check's
    cell after it (Shift+Enter twice, as a student does), read "passed" there."""
    import os

    from samlab.exercises.handout import write_handouts

    written = write_handouts([NOTEBOOKS_DIR / "01_sam_on_a_saddle.py"],
                             lab_server.root_dir / "student")
    now = time.time()
    for path in written:  # one mtime for the pair, as jupytext expects of a fresh copy
        os.utime(path, (now, now))
    page = lab_page.page
    with explained_failures(lab_page, lab_server, artifacts_dir / "student_01_failure.png"):
        open_and_run_all(lab_page, lab_server, "student/01_sam_on_a_saddle")
        cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").filter(
            has_text="def usam_matrix")
        cell.scroll_into_view_if_needed()
        stub_said = page.evaluate(CELL_OUTPUT_JS, CHECK_CELL)
        assert stub_said and "usam_matrix: not attempted yet" in stub_said, stub_said
        assert "Traceback" not in stub_said, stub_said
        assert not page.evaluate(NOTEBOOK_STATE_JS)["errors"]

        editor = cell.locator(".jp-InputArea-editor .cm-content")
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(STUDENT_ANSWER)
        page.keyboard.press("Shift+Enter")  # runs the answer, selects the check's cell
        page.keyboard.press("Shift+Enter")  # runs the check
        said = poll(lambda: (t := page.evaluate(CELL_OUTPUT_JS, CHECK_CELL))
                    and "passed" in t and t, PLOT_CHANGE_TIMEOUT_S)
        cell.scroll_into_view_if_needed()
        screenshot(page, artifacts_dir / "student_01_exercise_passed.png")
        assert said and "✓ usam_matrix passed" in said, (
            f"the check's output after running the student's answer: "
            f"{page.evaluate(CELL_OUTPUT_JS, CHECK_CELL)!r}")
