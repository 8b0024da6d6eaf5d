"""A real JupyterLab and a real browser: what the browser tests and benchmarks share.

- :mod:`~benchmarks.lab.server`: :func:`start_lab` runs ``python -m jupyterlab`` from this
  venv on a free port of 127.0.0.1, token auth on, with the repository's
  ``jupyter_server_config.py``, serving a temporary copy of ``notebooks/`` (running cells
  writes nothing into the repository); kernels inherit ``SAMLAB_QUICK=1``. Only the
  server's runtime, workspace and user-settings folders are redirected into the temporary
  folder: the widget front-ends are found in the venv's ``share/jupyter`` as usual.
- :mod:`~benchmarks.lab.page`: :func:`chromium_page`, a headless page of the system
  ``/usr/bin/chromium`` driven by Playwright (``playwright install`` is never needed)
  that records the browser console; the playground's selectors; the scripts that read
  the page, in ``benchmarks/js/``.
- :mod:`~benchmarks.lab.drivers`: a notebook driven as a user does: open it, Run All
  Cells, wait for the widgets.
"""

from .drivers import (
    dismiss_dialogs,
    open_and_run_all,
    open_notebook,
    poll,
    read_readout,
    run_all_cells,
    screenshot,
    wait_for_all_cells,
    wait_for_kernel_idle,
    wait_for_widgets,
    wait_until_stable,
)
from .page import (
    LR_HANDLE,
    LR_READOUT,
    NOTEBOOK_STATE_JS,
    PLAYGROUND,
    PLAYGROUND_STATE_JS,
    PLOT,
    PLOT_TRACES_JS,
    LabPage,
    chromium_page,
)
from .server import (
    ARTIFACTS,
    CHROMIUM,
    NOTEBOOKS,
    PLOT_CHANGE_TIMEOUT_S,
    REPO_ROOT,
    RUN_ALL_TIMEOUT_S,
    SLIDER_KEY_PRESSES,
    WIDGET_TIMEOUT_S,
    LabError,
    LabServer,
    start_lab,
    stop_lab,
)

__all__ = ["ARTIFACTS", "CHROMIUM", "LR_HANDLE", "LR_READOUT", "NOTEBOOKS", "NOTEBOOK_STATE_JS",
           "PLAYGROUND", "PLAYGROUND_STATE_JS", "PLOT", "PLOT_CHANGE_TIMEOUT_S", "PLOT_TRACES_JS",
           "REPO_ROOT", "RUN_ALL_TIMEOUT_S", "SLIDER_KEY_PRESSES", "WIDGET_TIMEOUT_S", "LabError",
           "LabPage", "LabServer", "chromium_page", "dismiss_dialogs", "open_and_run_all",
           "open_notebook", "poll", "read_readout", "run_all_cells", "screenshot", "start_lab",
           "stop_lab", "wait_for_all_cells", "wait_for_kernel_idle", "wait_for_widgets",
           "wait_until_stable"]
