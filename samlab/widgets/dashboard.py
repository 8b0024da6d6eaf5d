"""The live training dashboard: plotly panels updated in place by a trainer callback, or
by a watcher following a run that another process trains (docs/training.md#watching-a-run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import plot, validate
from ..train.rundir import DamagedRecords, RecordTail, RunDir, RunResult, read_run
from ..train.trainer import Callback, Trainer


class LiveDashboard(Callback):
    """Loss, accuracy, λ_max and γ_t of a run, redrawn in place each epoch (and step).

    Pass it to a trainer and display it::

        dash = LiveDashboard()
        dash                      # in a notebook cell: the empty panels
        Trainer(config, callbacks=[dash]).fit()

    Epoch records fill the panels; with ``config.log_every`` > 0, step records add
    the per-step training loss and γ_t, every ``log_every`` steps. The λ_max panel (log
    scale) also draws SGD's stability edge ``(2 + 2β)/η`` and, where SAM ran, the method's
    edge from the epoch's mean mini-batch ``‖g‖`` (docs/edges.md). The static twins are
    :func:`samlab.plot.plot_run` and :func:`samlab.plot.sharpness_and_edges`.
    """

    def __init__(self, title: str = "training"):
        fig = make_subplots(rows=2, cols=2, subplot_titles=[p[0] for p in plot.RUN_PANELS],
                            horizontal_spacing=0.1, vertical_spacing=0.16)
        self._traces: dict[str, int] = {}
        self._edge_traces: dict[str, int] = {}
        colors = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
        for i, (_, ylabel, lines) in enumerate(plot.RUN_PANELS):
            row, col = divmod(i, 2)
            for key, split, style in lines:
                self._traces[key] = len(fig.data)
                fig.add_trace(go.Scatter(
                    x=[], y=[], mode="lines+markers", name=split, legendgroup=split,
                    showlegend=i == 0, line=dict(color=colors.get(split, "#d62728"), dash=style),
                ), row + 1, col + 1)
            fig.update_yaxes(title_text=ylabel, row=row + 1, col=col + 1)
            fig.update_xaxes(title_text="epoch", row=row + 1, col=col + 1)
        for key, panel in (("step_loss", (1, 1)), ("step_gamma", (2, 2))):
            self._traces[key] = len(fig.data)
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="per step",
                                     line=dict(color="#9ecae1", width=1), opacity=0.8,
                                     showlegend=key == "step_loss"), *panel)
        # The λ_max panel's stability edges (docs/edges.md), once the run's config is known.
        for key, name, style in (("gd_edge", "SGD's edge (2+2β)/η", "dash"),
                                 ("method_edge", "the method's edge", "dot")):
            self._edge_traces[key] = len(fig.data)
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=name, showlegend=False,
                                     line=dict(color="#555555", dash=style, width=1.5)), 2, 1)
        fig.update_yaxes(type="log", row=2, col=1)
        fig.update_layout(height=560, width=900, template="plotly_white", title=title,
                          margin=dict(l=50, r=20, t=70, b=40))
        self.figure = go.FigureWidget(fig)
        self.records: list[dict[str, Any]] = []
        #: The run's config, once known: the edges need its ρ, momentum and method.
        self.config = None

    @classmethod
    def from_run(cls, run_dir: str | Path) -> LiveDashboard:
        """A dashboard showing a run's metrics.jsonl as it stands."""
        config, records = read_run(run_dir)
        dash = cls(title=plot.run_label(config))
        dash.config = config
        dash.update(records)
        return dash

    @classmethod
    def watch(cls, run_dir: str | Path, *, every: float = 2.0,
              until: float | None = None) -> RunWatcher:
        """A dashboard following ``run_dir`` while another process (``samlab train`` in a
        terminal, ``torchrun``) trains it: the records already there, then each one as it
        is appended. See :class:`RunWatcher`."""
        return RunWatcher(run_dir, every=every, until=until)

    def update(self, records: list[dict[str, Any]]) -> None:
        """Replace the panels' data with ``records`` (one ``batch_update``)."""
        self.records = list(records)
        series = plot.run_series(self.records)
        with self.figure.batch_update():
            for key, index in self._traces.items():
                xs, ys = series.get(key, ([], []))
                trace = self.figure.data[index]
                trace.x, trace.y = xs, ys
            if self.config is not None:
                edges = plot.edge_series(self.config, self.records)
                for key, index in self._edge_traces.items():
                    trace = self.figure.data[index]
                    trace.x, trace.y = edges[key]
                    trace.showlegend = bool(edges[key][0])
                    if key == "method_edge":
                        trace.name = plot.edge_label(self.config.method)
            if self.records and self.records[-1].get("dataset"):
                self.figure.layout.title.text = (
                    f"{self._title}  ·  data: {self.records[-1]['dataset']}")

    @property
    def _title(self) -> str:
        return self.figure.layout.title.text.split("  ·  ")[0]

    # -- the callback -------------------------------------------------------------------------
    def on_train_begin(self, trainer: Trainer) -> None:
        self.figure.layout.title.text = plot.run_label(trainer.config)
        self.config = trainer.config
        try:  # a resumed run: show what it had done
            _, records = read_run(trainer.run_dir)
        except FileNotFoundError:
            records = []
        self.update(records)

    def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.update([*self.records, record])

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.update([*self.records, record])

    def on_train_end(self, trainer: Trainer, result: RunResult) -> None:
        self.mark(result.status)

    def mark(self, status: str) -> None:
        """Say in the title how the run ended, unless it simply completed."""
        if status != "completed":
            self.figure.layout.title.text = f"{self._title}  ·  {status}"

    def _ipython_display_(self):
        from IPython.display import display

        display(self.figure)


#: The watchers' running tasks.
_FOLLOWING: set[asyncio.Task] = set()


class RunWatcher:
    """A :class:`LiveDashboard` following ``runs/<name>/`` while another process writes it.

    In a notebook (a kernel with a running event loop) it polls in the background, as an
    asyncio task, and the kernel stays free::

        watcher = LiveDashboard.watch("runs/X")
        watcher                   # the panels, redrawn as records arrive
        watcher.stop()            # or let it stop by itself

    Every ``every`` seconds it reads what was appended to metrics.jsonl since the last
    look (whole lines only) and redraws the figure in place; a rewritten file (a resume
    drops the records past its checkpoint) is read again from the start. It stops by
    itself when the run is finished (its last epoch's record, or a ``diverged`` record)
    or ``until`` seconds after it started. A run directory that does not exist yet is
    waited for. Outside a running event loop (a script, a test) there is no task: call
    :meth:`poll` to look once.
    """

    def __init__(self, run_dir: str | Path, *, every: float = 2.0,
                 until: float | None = None):
        self.every = validate.number("every", every, low=0.0, strict_low=True)  # seconds
        self.until = validate.number("until", until, low=0.0, strict_low=True, none=True)
        self.rundir = RunDir(run_dir)
        self.dashboard = LiveDashboard(title=f"{self.rundir.path}: waiting for the run")
        self.epochs: int | None = None  # the run's config.epochs, once its config is there
        self._tail = RecordTail(self.rundir.metrics_file)
        self._damage: DamagedRecords | None = None
        self._over = False  # the end is drawn: nothing more to read
        self.poll()  # what is there already; a path that is not a run directory fails here
        self.task: asyncio.Task[str] | None = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.task = loop.create_task(self._follow())
        _FOLLOWING.add(self.task)  # the loop holds tasks weakly; a notebook may drop the watcher
        self.task.add_done_callback(_FOLLOWING.discard)

    @property
    def figure(self):
        return self.dashboard.figure

    @property
    def status(self) -> str:
        """``waiting`` (no config.json yet), ``running``, ``completed`` or ``diverged``, as
        the records tell it; or, for a run that can no longer finish, ``stopped`` (its
        trainer's process is gone and the lock is free: killed or interrupted),
        ``deleted`` (its directory is gone) or ``damaged`` (a line of its metrics.jsonl
        is not a record): :attr:`why` says more."""
        if self.epochs is None:
            return "waiting"
        if self._damage is not None:
            return "damaged"
        records = self.dashboard.records
        if records and records[-1].get("kind") == "diverged":
            return "diverged"
        epochs = [r for r in records if r.get("kind") == "epoch"]
        if epochs and epochs[-1]["epoch"] == self.epochs - 1:
            return "completed"
        if not self.rundir.path.is_dir():
            return "deleted"
        if self.rundir.trainer_gone() is not None:
            return "stopped"
        return "running"

    @property
    def why(self) -> str:
        """The status, in a sentence a reader can act on."""
        status, path = self.status, self.rundir.path
        if status == "stopped":
            return (f"stopped: its trainer (process {self.rundir.trainer_gone()}) is gone "
                    f"before the last epoch; resume with samlab train --resume {path}")
        if status == "deleted":
            return f"deleted: {path} no longer exists"
        if status == "damaged":
            return f"damaged: {self._damage}"
        return status

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "diverged", "stopped", "deleted", "damaged")

    def poll(self) -> bool:
        """Read what was written since the last look and redraw; whether anything changed.

        Nothing is read once the run is finished.
        """
        if self._over or (self.epochs is None and not self.rundir.started()):
            return False
        try:
            records, restarted = self._tail.read()
        except DamagedRecords as err:
            if self.epochs is None:  # at the first look: the caller hears it at once
                raise
            self._damage = err
            return self._end()
        if restarted or self.epochs is None:  # a new run, or the same one resumed
            config = self.rundir.read_config()
            self.epochs = config.epochs
            self.dashboard.config = config
            self.dashboard.figure.layout.title.text = plot.run_label(config)
        if records or restarted:
            self.dashboard.update(records if restarted else [*self.dashboard.records, *records])
        if self.finished:  # read first: a killed trainer's last records are drawn too
            return self._end()
        return bool(records or restarted)

    def _end(self) -> bool:
        self.dashboard.mark(self.why)
        self._tail.close()
        self._over = True
        return True

    async def _follow(self) -> str:
        loop = asyncio.get_running_loop()
        deadline = None if self.until is None else loop.time() + self.until
        try:
            while not self._over:
                wait = self.every if deadline is None else min(self.every,
                                                               deadline - loop.time())
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
                try:
                    self.poll()
                except Exception as err:  # a task's error is silent: say it in the figure
                    self.dashboard.figure.layout.title.text = f"{self.rundir.path}: {err}"
                    raise
        finally:
            self._tail.close()
        return self.status

    def stop(self) -> None:
        """Stop following (the figure keeps what it shows)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._tail.close()

    def __repr__(self) -> str:
        following = self.task is not None and not self.task.done()
        return (f"RunWatcher({str(self.rundir.path)!r}, {self.why}, "
                f"{len(self.dashboard.records)} records{', following' if following else ''})")

    def _ipython_display_(self):
        self.dashboard._ipython_display_()
