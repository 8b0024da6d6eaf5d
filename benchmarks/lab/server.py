"""The JupyterLab server of the browser tests and benchmarks: started on a free port
with token auth, serving a temporary copy of notebooks/, stopped with its kernels."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
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
