"""Driving a notebook as a user does: open it, Run All Cells, wait for the kernel and the
widgets, read what the page shows."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .page import NOTEBOOK_STATE_JS, PLAYGROUND, PLAYGROUND_STATE_JS, PLOT, PLOT_TRACES_JS, LabPage
from .server import RUN_ALL_TIMEOUT_S, LabError, LabServer


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


def open_notebook(lab_page: LabPage, lab_server: LabServer, notebook: str) -> None:
    """Open ``notebooks/<notebook>.ipynb`` in a fresh workspace and wait for its kernel.

    ``?reset``: a fresh workspace, not the one a previous page left (which would reopen
    that notebook, with its kernel and widgets, beside this one).
    """
    lab_page.page.goto(lab_server.url(f"lab/tree/{notebook}.ipynb?reset"),
                       wait_until="domcontentloaded")
    lab_page.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=120_000)
    wait_for_kernel_idle(lab_page, lab_server, timeout_s=120)


def wait_for_kernel_idle(lab_page: Any, lab_server: Any, timeout_s: float) -> None:
    def idle() -> bool:
        dismiss_dialogs(lab_page)
        state = lab_page.page.evaluate(NOTEBOOK_STATE_JS)
        kernels = lab_server.kernel_states()
        return bool(state and state["status"] == "idle" and kernels and set(kernels) == {"idle"})

    if not poll(idle, timeout_s, 0.5):
        raise LabError(
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
    raise LabError(f"Run All Cells did not start a cell in {RUN_ALL_TRIES} tries of "
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
        raise LabError(
            f"a cell shows an error in the browser (an error output or a failed widget):\n{shown}"
        )
    if not finished:
        raise LabError(
            f"Run All Cells did not finish within {timeout_s} s: prompts {state.get('prompts')}, "
            f"kernel status {state.get('status')!r}"
        )
    return state


def open_and_run_all(lab_page: LabPage, lab_server: LabServer, notebook: str,
                     timeout_s: float = RUN_ALL_TIMEOUT_S) -> dict:
    """Open ``notebook`` in a fresh workspace, Run All Cells, and wait until every cell has
    run (:func:`wait_for_all_cells`); returns the notebook's state in the page."""
    open_notebook(lab_page, lab_server, notebook)
    run_all_cells(lab_page)
    return wait_for_all_cells(lab_page, lab_server, timeout_s)


def wait_for_widgets(page: Any, timeout_s: float) -> dict:
    """Wait until the playground's plot, and every other widget, has rendered."""
    state: dict = {}

    def rendered() -> bool:
        nonlocal state
        state = page.evaluate(PLAYGROUND_STATE_JS)
        if state["widget_errors"]:
            return True
        return bool(state["plot"] and state["traces"] > 0 and not state["loading"])

    poll(rendered, timeout_s, 0.5)
    if state.get("widget_errors"):
        raise LabError(
            "a widget failed to display (are the labextensions @jupyter-widgets/jupyterlab-manager "
            f"and anywidget installed?): {state['widget_errors']}"
        )
    if not state.get("playground"):
        raise LabError(
            f"no {PLAYGROUND} in the page within {timeout_s} s after Run All Cells "
            f"({state.get('loading')} output(s) still say 'Loading widget...'): "
            "the ipywidgets front-end did not render the Playground"
        )
    if not state.get("plot") or not state.get("traces"):
        raise LabError(
            f"the playground shows no drawn plot ({PLOT} with .samlabPlot) within "
            f"{timeout_s} s ({state.get('loading')} output(s) still say 'Loading widget...'): "
            "its anywidget front-end did not render (see the browser console)"
        )
    if state.get("loading"):
        raise LabError(
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


def read_readout(readout: Any, timeout_s: float = 10) -> str:
    """The slider's readout text; it is briefly empty while the widget re-renders."""
    return poll(lambda: readout.inner_text().strip(), timeout_s) or ""


def screenshot(page: Any, path: Path) -> None:
    try:
        page.screenshot(path=str(path))
    except Exception as error:  # never hide the real failure behind a screenshot problem
        print(f"screenshot {path} failed: {error}")


