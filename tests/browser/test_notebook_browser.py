"""Notebook 01 in a real JupyterLab, in a real browser: run all cells, move a slider.

What only a browser can check: the widget front-ends (ipywidgets' JupyterLab manager,
anywidget for plotly's ``FigureWidget``) load and render, and a slider moved in the
page reaches the kernel and comes back as new trajectories in the plot.

Screenshots go to ``tests/artifacts/browser/``: ``01_before.png`` (after Run All Cells),
``02_after.png`` (after the lr slider moved), and ``failure.png`` (the page when the test
failed, wherever that was).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Every notebook with a playground, and how many plotly figures it must render at least
# (01: the phase diagram and the playground; 02: the same; 03: the playground).
NOTEBOOKS = {"01_sam_on_a_saddle": 2, "02_why_sam_normalizes": 2, "03_stable_sam": 1}
RUN_ALL_TIMEOUT_S = 480  # notebook 03 takes ~45 s alone, several times that on a loaded CI core
WIDGET_TIMEOUT_S = 30
PLOT_CHANGE_TIMEOUT_S = 30
SLIDER_KEY_PRESSES = 10  # ArrowRight on the lr handle: 10 steps of 0.01 in log10(lr)

PLAYGROUND = ".samlab-playground"
PLOT = f"{PLAYGROUND} .js-plotly-plot"
LR_HANDLE = f"{PLAYGROUND} .samlab-lr .noUi-handle"
LR_READOUT = f"{PLAYGROUND} .samlab-lr .widget-readout"

# The state of the notebook in the page: prompts of the code cells, kernel status, and
# every output that reads like an error (tracebacks, widget failures).
NOTEBOOK_STATE_JS = """
() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const prompts = Array.from(nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
    .map(e => e.textContent.trim());
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const errors = [];
  nb.querySelectorAll('.jp-CodeCell').forEach((cell, i) => {
    cell.querySelectorAll('.jp-OutputArea-output').forEach(out => {
      const text = out.textContent || '';
      const stderr = out.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr';
      if ((stderr && (/Traceback/.test(text) || /^\\s*\\w*(Error|Exception)\\b/m.test(text)))
          || /Error displaying widget|Error rendering/.test(text)) {
        const prompt = cell.querySelector('.jp-InputArea-prompt');
        errors.push({cell: i + 1, prompt: prompt ? prompt.textContent.trim() : '',
                     text: text.slice(0, 3000)});
      }
    });
    cell.querySelectorAll('.jupyter-widgets-error-widget').forEach(() => {
      const prompt = cell.querySelector('.jp-InputArea-prompt');
      errors.push({cell: i + 1, prompt: prompt ? prompt.textContent.trim() : '',
                   text: 'a widget failed to render (ipywidgets error view: "Click to show '
                         + 'javascript error."; the browser console below says why)'});
    });
  });
  return {
    prompts,
    status: indicator ? indicator.getAttribute('data-status') : null,
    errors,
    dialogs: Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.innerText),
  };
}
"""

# The traces of the playground's plot that draw lines (trajectories and loss curves),
# with their data as plain arrays; null while the plot is not there.
PLOT_TRACES_JS = """
(selector) => {
  const el = document.querySelector(selector);
  if (!el || !Array.isArray(el.data)) return null;
  const plain = a => (a == null ? null
    : (Array.isArray(a) || ArrayBuffer.isView(a)) ? Array.from(a, Number)
    : (typeof a === 'object' && 'bdata' in a) ? String(a.bdata)  // undecoded base64 spec
    : a);
  return el.data
    .filter(t => t.visible !== false && t.visible !== 'legendonly')
    .filter(t => typeof t.mode === 'string' && t.mode.includes('lines'))
    .map(t => ({name: String(t.name), mode: t.mode, x: plain(t.x), y: plain(t.y)}));
}
"""

# What the widget outputs show, to tell "widget failed" from "not yet there".
PLAYGROUND_STATE_JS = """
() => {
  const outputs = Array.from(document.querySelectorAll('.jp-OutputArea-output'));
  const text = outputs.map(o => o.textContent || '').join('\\n');
  const plot = document.querySelector('.samlab-playground .js-plotly-plot');
  return {
    playground: !!document.querySelector('.samlab-playground'),
    plot: !!plot,
    traces: plot && Array.isArray(plot.data) ? plot.data.length : 0,
    loading: (text.match(/Loading widget\\.\\.\\./g) || []).length,
    widget_outputs: document.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.widget-view+json"]').length,
    plots_with_data: Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot'))
      .filter(p => Array.isArray(p.data) && p.data.length > 0).length,
    widget_errors: text.split('\\n')
      .filter(l => /Error displaying widget|Error rendering|Failed to load model class/.test(l))
      .slice(0, 5)
      .concat(Array.from(document.querySelectorAll('.jupyter-widgets-error-widget'),
        () => 'ipywidgets error view "Click to show javascript error." (see the console)')),
  };
}
"""


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
def explained_failures(diagnostics: Diagnostics) -> Iterator[None]:
    """Re-raise any failure as a pytest failure that carries the diagnostics."""
    try:
        yield
    except pytest.fail.Exception as failure:
        message = failure.msg
    except Exception as error:  # Playwright timeouts, assertion errors, ...
        message = f"{type(error).__name__}: {error}"
    else:
        return
    # `from None`: the report replaces the original error, it does not chain to it.
    raise pytest.fail.Exception(f"{message}\n\n{diagnostics.report()}", pytrace=False) from None


def poll(check: Callable[[], Any], timeout_s: float, interval_s: float = 0.25) -> Any:
    """Call ``check`` until it returns something truthy; return that, or None on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            return None
        time.sleep(interval_s)


def dismiss_dialogs(lab_page: Any) -> None:
    """Answer JupyterLab's dialogs (accept the default kernel, close anything else) and
    close notifications; what the dialogs said goes to ``lab_page.dialogs``."""
    page = lab_page.page
    for dialog in page.locator(".jp-Dialog").all():
        try:
            text = dialog.inner_text(timeout=2000)
        except Exception:
            continue
        if "Select Kernel" in text:
            # Accept once per page. A dialog that is still closing stays in the DOM for a
            # moment; clicking its "Select" again would start a new kernel each time and
            # replace the one running the notebook (seen in CI: cells then failed with
            # NameError in a fresh kernel).
            if not any("Select Kernel" in d for d in lab_page.dialogs):
                lab_page.dialogs.append(text)
                dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        else:
            lab_page.dialogs.append(text)
            page.keyboard.press("Escape")
    toast_close = ".Toastify__toast [title='Hide notification'], .Toastify__close-button"
    for close in page.locator(toast_close).all():
        try:
            close.click(timeout=2000)
        except Exception:
            pass


def wait_for_kernel_idle(lab_page: Any, lab_server: Any, timeout_s: float) -> None:
    def idle() -> bool:
        dismiss_dialogs(lab_page)
        state = lab_page.page.evaluate(NOTEBOOK_STATE_JS)
        kernels = lab_server.kernel_states()
        return bool(state and state["status"] == "idle" and kernels and set(kernels) == {"idle"})

    if not poll(idle, timeout_s, 0.5):
        pytest.fail(
            f"the notebook's kernel was not idle within {timeout_s} s "
            f"(kernels on the server: {lab_server.kernel_states()})"
        )


RUN_ALL_START_TIMEOUT_S = 30
RUN_ALL_TRIES = 3


def run_all_cells(lab_page: Any) -> None:
    """Run → Run All Cells, through the menu bar as a user would, until the cells start.

    On a loaded machine the menu sometimes closes before the click lands (seen in CI: the
    prompts stayed ``[ ]:`` and the kernel idle for the whole timeout), so a run that has
    not started within ``RUN_ALL_START_TIMEOUT_S`` is asked for again, as a user would.
    """
    page = lab_page.page

    def started() -> bool:
        state = page.evaluate(NOTEBOOK_STATE_JS) or {}
        return any(p != "[ ]:" for p in state.get("prompts") or [])

    for _ in range(RUN_ALL_TRIES):
        dismiss_dialogs(lab_page)
        page.keyboard.press("Escape")  # close a menu left open by an earlier try
        page.locator("#jp-menu-panel .lm-MenuBar-item",
                     has_text=re.compile(r"^\s*Run\s*$")).click()
        item = page.locator('.lm-Menu-item[data-command="runmenu:run-all"]')
        if not item.count():  # an older or newer command id: find the entry by its label
            item = page.locator(".lm-Menu-item", has_text=re.compile(r"^\s*Run All Cells"))
        item.first.click()
        if poll(started, RUN_ALL_START_TIMEOUT_S, 0.5):
            return
    pytest.fail(f"Run All Cells did not start a cell in {RUN_ALL_TRIES} tries of "
                f"{RUN_ALL_START_TIMEOUT_S} s each")


def wait_for_all_cells(lab_page: Any, lab_server: Any, timeout_s: float) -> dict:
    """Poll until every code cell has an execution count and the kernel is idle."""
    state: dict = {}

    def done() -> bool:
        nonlocal state
        dismiss_dialogs(lab_page)
        state = lab_page.page.evaluate(NOTEBOOK_STATE_JS) or {}
        if state.get("errors"):
            return True  # fail below, at once: Run All stops at the first error
        prompts = state.get("prompts") or []
        return bool(
            prompts
            and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
            and state.get("status") == "idle"
            and set(lab_server.kernel_states()) == {"idle"}
        )

    finished = poll(done, timeout_s, 0.5)
    errors = state.get("errors") or []
    if errors:
        shown = "\n\n".join(f"code cell {e['cell']} {e['prompt']}\n{e['text']}" for e in errors)
        pytest.fail(
            f"a cell shows an error in the browser (an error output or a failed widget):\n{shown}"
        )
    if not finished:
        pytest.fail(
            f"Run All Cells did not finish within {timeout_s} s: prompts {state.get('prompts')}, "
            f"kernel status {state.get('status')!r}"
        )
    return state


def wait_for_widgets(page: Any, timeout_s: float) -> dict:
    """Wait until the playground's FigureWidget, and every other widget, has rendered."""
    state: dict = {}

    def rendered() -> bool:
        nonlocal state
        state = page.evaluate(PLAYGROUND_STATE_JS)
        if state["widget_errors"]:
            return True
        return bool(state["plot"] and state["traces"] > 0 and not state["loading"])

    poll(rendered, timeout_s, 0.5)
    if state.get("widget_errors"):
        pytest.fail(
            "a widget failed to display (are the labextensions @jupyter-widgets/jupyterlab-manager "
            f"and anywidget installed?): {state['widget_errors']}"
        )
    if not state.get("playground"):
        pytest.fail(
            f"no {PLAYGROUND} in the page within {timeout_s} s after Run All Cells "
            f"({state.get('loading')} output(s) still say 'Loading widget...'): "
            "the ipywidgets front-end did not render the Playground"
        )
    if not state.get("plot") or not state.get("traces"):
        pytest.fail(
            f"the playground shows no plotly plot with data ({PLOT} with non-empty .data) within "
            f"{timeout_s} s ({state.get('loading')} output(s) still say 'Loading widget...'): "
            "the FigureWidget (anywidget) front-end did not render"
        )
    if state.get("loading"):
        pytest.fail(
            f"{state['loading']} widget output(s) still say 'Loading widget...' {timeout_s} s "
            f"after Run All Cells ({state.get('widget_outputs')} widget outputs, "
            f"{state.get('plots_with_data')} plotly plots with data)"
        )
    return state


def wait_until_stable(page: Any, traces: list, timeout_s: float, quiet_s: float = 1.0) -> list:
    """The plot's line traces once they have not changed for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    last, since = traces, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = page.evaluate(PLOT_TRACES_JS, PLOT)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


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


def read_readout(readout: Any, timeout_s: float = 10) -> str:
    """The slider's readout text; it is briefly empty while the widget re-renders."""
    return poll(lambda: readout.inner_text().strip(), timeout_s) or ""


def screenshot(page: Any, path: Path) -> None:
    try:
        page.screenshot(path=str(path))
    except Exception as error:  # never hide the real failure behind a screenshot problem
        print(f"screenshot {path} failed: {error}")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
def test_playground_slider_redraws_trajectories(notebook, lab_page, lab_server, artifacts_dir):
    page = lab_page.page
    for old in artifacts_dir.glob(f"{notebook}_*.png"):
        old.unlink()
    failed = True
    with explained_failures(Diagnostics(lab_server, lab_page)):
        try:
            # ?reset: a fresh workspace, not the one the previous notebook's test left (which
            # would reopen that notebook, with its kernel and widgets, beside this one).
            page.goto(lab_server.url(f"lab/tree/{notebook}.ipynb?reset"),
                      wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=120_000)
            wait_for_kernel_idle(lab_page, lab_server, timeout_s=120)

            run_all_cells(lab_page)
            state = wait_for_all_cells(lab_page, lab_server, RUN_ALL_TIMEOUT_S)
            assert len(state["prompts"]) > 1, f"too few code cells: {state['prompts']}"
            widgets = wait_for_widgets(page, WIDGET_TIMEOUT_S)
            assert widgets["plots_with_data"] >= NOTEBOOKS[notebook], (
                f"too few plotly plots rendered: {widgets}")

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
            save_and_check_the_pair(page, lab_server.root_dir / f"{notebook}.ipynb")
            failed = False
        finally:
            if failed:
                try:  # show the playground if there is one; else the page as it is
                    page.locator(PLAYGROUND).first.scroll_into_view_if_needed(timeout=2000)
                except Exception:
                    pass
                screenshot(page, artifacts_dir / f"{notebook}_failure.png")
