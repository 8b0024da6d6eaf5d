"""A real JupyterLab and a real browser: what the browser tests and benchmarks share.

:func:`start_lab` runs ``python -m jupyterlab`` from this venv on a free port of
127.0.0.1, with token auth on and the repository's ``jupyter_server_config.py``, serving
a temporary copy of ``notebooks/`` (so that running cells writes nothing into the
repository); kernels inherit ``SAMLAB_QUICK=1``. Only the server's runtime, workspace and
user-settings folders are redirected into the temporary folder: the widget front-ends
(labextensions) are found in the venv's ``share/jupyter`` as usual.

:func:`chromium_page` is a headless page of the system ``/usr/bin/chromium`` driven by
Playwright (``playwright install`` is never needed) that records the browser console.
The rest drives a notebook as a user does: open it, Run All Cells, wait for the widgets.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "browser"
RUN_ALL_TIMEOUT_S = 480  # notebook 03 takes ~45 s alone, several times that on a loaded CI core
WIDGET_TIMEOUT_S = 30
PLOT_CHANGE_TIMEOUT_S = 30
SLIDER_KEY_PRESSES = 10  # ArrowRight on the lr handle: 10 steps of 0.01 in log10(lr)



class LabError(AssertionError):
    """The page did not do what a user would see it do (a test failure, with the reason)."""


SERVER_START_TIMEOUT_S = 120
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 1000}

# JupyterLab user settings for the test server: no "fetch Jupyter news?" toast and no
# update check (both would reach out to the network and pop notifications).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running JupyterLab server; see the ``lab_server`` fixture."""

    base_url: str
    token: str
    root_dir: Path
    runtime_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def url(self, path: str) -> str:
        """``path`` under the server, with the token (e.g. ``lab/tree/x.ipynb``)."""
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> Any:
        """Call the REST API (``/api/...``) with the token; the decoded JSON, or None."""
        request = urllib.request.Request(
            f"{self.base_url}/api/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(server log unreadable: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def kernel_states(self) -> list[str]:
        """The execution state of every kernel of the server (empty if the API fails)."""
        try:
            return [k.get("execution_state", "?") for k in self.api("kernels")]
        except (OSError, ValueError):
            return []


def _copy_notebooks(destination: Path) -> Path:
    """Copy notebooks/ (sources only) and give every file the same mtime.

    Equal mtimes keep jupytext from complaining that one file of a .py/.ipynb pair is
    more recent than the other (a copy must not depend on the checkout's timestamps).
    """
    shutil.copytree(
        NOTEBOOKS,
        destination,
        ignore=shutil.ignore_patterns("figures", "runs", ".ipynb_checkpoints", "__pycache__"),
    )
    now = time.time()
    for path in destination.rglob("*"):
        os.utime(path, (now, now))
    return destination


def start_lab(tmp: Path) -> LabServer:
    root_dir = _copy_notebooks(tmp / "notebooks")
    runtime_dir = tmp / "runtime"
    settings_dir = tmp / "user-settings"
    workspaces_dir = tmp / "workspaces"
    for d in (runtime_dir, settings_dir, workspaces_dir):
        d.mkdir()
    for name, settings in LAB_SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))

    port = free_port()
    token = secrets.token_hex(24)
    env = dict(os.environ)
    env.update(
        SAMLAB_QUICK="1",
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
        IPYTHONDIR=str(tmp / "ipython"),  # no user startup scripts in the kernel
        PYTHONUNBUFFERED="1",
    )
    env.pop("MPLBACKEND", None)  # let ipykernel pick its inline backend
    env.pop("JUPYTER_TOKEN", None)
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={workspaces_dir}",
        "--LabApp.extension_manager=readonly",  # no PyPI queries from the extension manager
        f"--config={REPO_ROOT / 'jupyter_server_config.py'}",  # as make lab: saves strip outputs
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log_path = tmp / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd,
            cwd=root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole at the end
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root_dir, runtime_dir, log_path, process)

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {process.returncode} before answering.\n"
                f"command: {' '.join(cmd)}\n--- server log tail ---\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url("api/status"), timeout=2) as response:
                if response.status == 200:
                    return server
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            stop_lab(server)
            raise RuntimeError(
                f"JupyterLab did not answer {server.base_url}/api/status within "
                f"{SERVER_START_TIMEOUT_S} s.\n--- server log tail ---\n{server.log_tail()}"
            )
        time.sleep(0.25)


def _kernel_pids(runtime_dir: Path) -> list[int]:
    """Processes whose command line names a connection file of ``runtime_dir``: our kernels.

    jupyter_client starts each kernel in a session of its own, so killing the server's
    process group does not reach a kernel the server failed to shut down.
    """
    marker = str(runtime_dir).encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def stop_lab(server: LabServer) -> None:
    process = server.process
    if process.poll() is None:
        try:  # shut the kernels down cleanly first
            for kernel in server.api("kernels", timeout=5):
                server.api(f"kernels/{kernel['id']}", method="DELETE", timeout=10)
        except (OSError, ValueError):
            pass
        for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
    for pid in _kernel_pids(server.runtime_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class LabPage:
    """A chromium page, what its console said (errors and warnings), dialogs answered."""

    page: Any
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def console_tail(self, lines: int = 30) -> str:
        return "\n".join(self.console[-lines:]) or "(nothing)"


@contextmanager
def chromium_page(chromium: Path = CHROMIUM) -> Iterator[LabPage]:
    """A fresh headless chromium page (1400x1000) driven by Playwright."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(30_000)
            lab_page = LabPage(page)

            def on_console(message: Any) -> None:
                if message.type in ("error", "warning"):
                    lab_page.console.append(f"[{message.type}] {message.text[:600]}")

            page.on("console", on_console)
            page.on("pageerror", lambda error: lab_page.console.append(f"[pageerror] {error}"))
            yield lab_page
        finally:
            browser.close()


PLAYGROUND = ".samlab-playground"
PLOT = f"{PLAYGROUND} .samlab-plot"  # the canvas view (samlab/widgets/js/view.js)
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

# The playground's drawn traces (el.samlabPlot, set by the view at every drawing), as
# plotly-like line traces: a path per checked method ("lines+markers") and its values per
# step ("lines"); null while the plot is not there.
PLOT_TRACES_JS = """
(selector) => {
  const el = document.querySelector(selector);
  if (!el || !el.samlabPlot) return null;
  const plain = a => Array.from(a, v => (Number.isFinite(v) ? v : null));
  return el.samlabPlot.traces.flatMap(t => [
    {name: t.label, mode: 'lines+markers', x: plain(t.path.xs), y: plain(t.path.ys)},
    {name: t.label, mode: 'lines', x: plain(t.values.map((_, i) => i)), y: plain(t.values)}]);
}
"""

# What the widget outputs show, to tell "widget failed" from "not yet there".
PLAYGROUND_STATE_JS = """
() => {
  const outputs = Array.from(document.querySelectorAll('.jp-OutputArea-output'));
  const text = outputs.map(o => o.textContent || '').join('\\n');
  const plot = document.querySelector('.samlab-playground .samlab-plot');
  return {
    playground: !!document.querySelector('.samlab-playground'),
    plot: !!plot,
    traces: plot && plot.samlabPlot ? plot.samlabPlot.frame : 0,
    loading: (text.match(/Loading widget\\.\\.\\./g) || []).length,
    widget_outputs: document.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.widget-view+json"]').length,
    plots_with_data: Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot'))
      .filter(p => Array.isArray(p.data) && p.data.length > 0).length
      + Array.from(document.querySelectorAll('.samlab-plot')).filter(p => p.samlabPlot).length,
    widget_errors: text.split('\\n')
      .filter(l => /Error displaying widget|Error rendering|Failed to load model class/.test(l))
      .slice(0, 5)
      .concat(Array.from(document.querySelectorAll('.jupyter-widgets-error-widget'),
        () => 'ipywidgets error view "Click to show javascript error." (see the console)')),
  };
}
"""


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


