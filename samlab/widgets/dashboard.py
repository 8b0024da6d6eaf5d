"""The live training dashboard: plotly panels updated in place by a trainer callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import plot
from ..train.rundir import RunResult, read_run
from ..train.trainer import Callback, Trainer


class LiveDashboard(Callback):
    """Loss, accuracy, λ_max and γ_t of a run, redrawn in place each epoch (and step).

    Pass it to a trainer and display it::

        dash = LiveDashboard()
        dash                      # in a notebook cell: the empty panels
        Trainer(config, callbacks=[dash]).fit()

    Epoch records fill the panels; with ``config.log_every`` > 0, step records add
    the per-step training loss and γ_t, every ``log_every`` steps. The static twin is
    :func:`samlab.plot.plot_run`.
    """

    def __init__(self, title: str = "training"):
        fig = make_subplots(rows=2, cols=2, subplot_titles=[p[0] for p in plot.RUN_PANELS],
                            horizontal_spacing=0.1, vertical_spacing=0.16)
        self._traces: dict[str, int] = {}
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
        fig.update_layout(height=560, width=900, template="plotly_white", title=title,
                          margin=dict(l=50, r=20, t=70, b=40))
        self.figure = go.FigureWidget(fig)
        self.records: list[dict[str, Any]] = []

    @classmethod
    def from_run(cls, run_dir: str | Path) -> LiveDashboard:
        """A dashboard showing a run's metrics.jsonl as it stands."""
        config, records = read_run(run_dir)
        dash = cls(title=plot.run_label(config))
        dash.update(records)
        return dash

    def update(self, records: list[dict[str, Any]]) -> None:
        """Replace the panels' data with ``records`` (one ``batch_update``)."""
        self.records = list(records)
        series = plot.run_series(self.records)
        with self.figure.batch_update():
            for key, index in self._traces.items():
                xs, ys = series.get(key, ([], []))
                trace = self.figure.data[index]
                trace.x, trace.y = xs, ys
            if self.records and self.records[-1].get("dataset"):
                self.figure.layout.title.text = (
                    f"{self._title}  ·  data: {self.records[-1]['dataset']}")

    @property
    def _title(self) -> str:
        return self.figure.layout.title.text.split("  ·  ")[0]

    # -- the callback -------------------------------------------------------------------------
    def on_train_begin(self, trainer: Trainer) -> None:
        self.figure.layout.title.text = plot.run_label(trainer.config)
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
        if result.status != "completed":
            self.figure.layout.title.text = f"{self._title}  ·  {result.status}"

    def _ipython_display_(self):
        from IPython.display import display

        display(self.figure)
