"""The 2D playground: sliders for lr and ρ, methods, steps and start point.

Every control re-runs :func:`samlab.toy.run` and writes the result into a
plotly ``FigureWidget`` in place (one ``batch_update``: no rebuild, no
flicker). The figure's traces are made once, one per method; unchecked methods
are hidden, not deleted.

Where a key press on a slider goes, measured in Chromium on an otherwise idle 2-core
machine (notebook 02, 3 methods x 1000 steps: ~75 ms from key to redraw): ~10 ms for
the key to reach the kernel through the server, ~15 ms for ``run``, ~5 ms to write the
runs into the figure, ~10 ms back through the server, ~35 ms in the page, most of it
plotly.js redrawing the whole figure (any change of data redraws axes, legend and every
trace). Hence few step markers, a coarse click grid, and a figure deaf to its view's
echoes (:class:`_Figure`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import methods as table
from .. import plot, validate
from ..toy import BoundedSaddle, Landscape, Trajectory, run

_SYMBOLS = {"minimum": "star", "saddle": "x", "maximum": "triangle-up"}
#: Step markers drawn at most per trajectory (the line shows every step). Each marker is
#: styled one by one at every redraw: 60 per path cost 8 ms of a 40 ms redraw, 20 cost 1-2.
MAX_MARKERS = 20
#: Cells per side of the grid that catches clicks on the landscape panel (a cell is 2% of
#: the extent, ~9 px). 100 per side cost 3-5 ms of every redraw, 50 about 1.5.
CLICK_GRID = 50


def contour_image(landscape: Landscape, levels: int = 30, pixels: int = 600) -> str:
    """The landscape's level lines as a transparent PNG (a data URI) covering its extent.

    Drawn once, as a background image: plotly redraws every trace of a subplot at every
    update, and a contour trace (or its lines as a trace) cost more than everything else
    in a redraw; an image costs nothing.
    """
    import base64
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, ys, Z = plot.landscape_grid(landscape, n=241)
    fig = Figure(figsize=(pixels / 100, pixels / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.contour(xs, ys, Z, levels=levels, cmap="Greys", linewidths=0.8, alpha=0.8)
    (x0, x1), (y0, y1) = landscape.extent
    ax.set(xlim=(x0, x1), ylim=(y0, y1))
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", transparent=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class _Figure(go.FigureWidget):
    """A ``FigureWidget`` that ignores what its view reports back, except clicks.

    After every redraw plotly's view sends the kernel the defaults plotly.js filled in
    for every trace (``_js2py_traceDeltas``, 12-27 KB here), and on every mouse move over
    the plot a hover event. The kernel spent 10-90 ms on each delta, answered with an
    echo of it and property removals for the page to process, and the removals made the
    next update send the loss panel's step axis again; each hover cost two messages back.
    During a drag that was kernel time the next redraw waited for. The playground reads
    neither (tests and scripts, with no view, never get them), so both are dropped.
    """

    def set_state(self, sync_data: dict) -> None:
        kept = {k: v for k, v in sync_data.items()
                if k not in ("_js2py_traceDeltas", "_js2py_layoutDelta")
                and not (k == "_js2py_pointsCallback"
                         and (v or {}).get("event_type") != "plotly_click")}
        if kept:
            super().set_state(kept)


def _round_to(value: float, spacing: float) -> float:
    """``value`` with as many decimals as a grid of ``spacing`` resolves (0.02 → 2)."""
    return round(float(value), max(0, int(np.ceil(-np.log10(spacing)))))


class Playground:
    """Interactive trajectories of the SAM family on a 2D landscape.

    >>> pg = Playground(BoundedSaddle(), methods=("gd", "sam", "usam"), lr=0.1, rho=1.5)
    >>> pg.lr_slider.value = 0.05          # the figure now shows the new runs
    >>> pg.trajectory.outcome              # what the figure shows, as data

    Click the contour to start from that point, or type the start in the boxes.

    ``switch=S`` adds a "switch at" slider: every method runs plain GD for its first ``S``
    steps and itself from there on (late-phase switching, docs/toy.md#late-phase-switching);
    a path is drawn in GD's colour up to the switch and in its method's colour after it,
    and a dotted line marks the switch in the right panel.
    """

    def __init__(
        self,
        landscape: Landscape | None = None,
        *,
        methods: Sequence[str] = ("gd", "sam", "usam"),
        lr: float = 0.1,
        rho: float = 0.5,
        steps: int = 200,
        x0: Sequence[float] = (1.0, 0.05),
        lr_range: tuple[float, float] = (1e-3, 1.0),
        rho_range: tuple[float, float] = (1e-3, 10.0),
        max_steps: int = 1000,
        available: Sequence[str] | None = None,
        metric: tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None,
        switch: int | None = None,
    ):
        if landscape is not None and not isinstance(landscape, Landscape):
            raise validate.fail("landscape", "a samlab.toy landscape such as "
                                "toy.BoundedSaddle() (an instance, not a name)", landscape)
        self.landscape = landscape if landscape is not None else BoundedSaddle()
        x0 = np.asarray(x0, dtype=object).ravel() if not isinstance(x0, str) else x0
        if (isinstance(x0, str) or len(x0) != 2
                or not all(validate.is_number(v) and np.isfinite(float(v)) for v in x0)):
            raise validate.fail("x0", "two finite numbers (x, y)",
                                tuple(x0) if not isinstance(x0, str) else x0)
        if isinstance(methods, str):
            methods = (methods,)
        if available is None:  # every row of the table, under the name `methods` uses for it
            known = set(table.names())
            given = {table.get_method(m).name: m for m in methods if m in known}
            available = [given.get(name, name) for name in table.names(aliases=False)]
        self.available = tuple(available)
        for m in self.available:
            table.get_method(m)
        missing = [m for m in methods if m not in self.available]
        if missing:
            raise ValueError(f"methods must be among available ({', '.join(self.available)}), "
                             f"got {missing[0]!r}")
        # The right panel: the loss per step, or (name, f) with f(positions[..., 2]) per step.
        self.metric = metric
        max_steps = validate.integer("max_steps", max_steps, low=1)
        steps = validate.integer("steps", steps, low=1, high=max_steps)
        switch = validate.integer("switch", switch, low=0, high=max_steps, none=True)
        for name, (lo, hi), v in (("lr", lr_range, lr), ("rho", rho_range, rho)):
            lo = validate.number(f"{name}_range[0]", lo, low=0.0, strict_low=True)
            validate.number(f"{name}_range[1]", hi, low=lo, strict_low=True)
            validate.number(name, v, low=lo, high=hi)

        log = np.log10
        style = {"description_width": "70px"}
        layout = W.Layout(width="360px")
        self.lr_slider = W.FloatLogSlider(
            value=lr, base=10, min=log(lr_range[0]), max=log(lr_range[1]), step=0.01,
            description="lr η", readout_format=".3g", style=style, layout=layout,
            continuous_update=True,
        )
        self.rho_slider = W.FloatLogSlider(
            value=rho, base=10, min=log(rho_range[0]), max=log(rho_range[1]), step=0.01,
            description="ρ", readout_format=".3g", style=style, layout=layout,
        )
        self.steps_slider = W.IntSlider(value=steps, min=1, max=max_steps, step=1,
                                        description="steps", style=style, layout=layout)
        self.switch_slider = None if switch is None else W.IntSlider(
            value=switch, min=0, max=max_steps, step=1, description="switch at", style=style,
            layout=layout)
        sliders = [self.lr_slider, self.rho_slider, self.steps_slider]
        if self.switch_slider is not None:
            sliders.append(self.switch_slider)
        self.method_boxes = {
            m: W.Checkbox(value=m in methods, description=table.label(m), indent=False,
                          layout=W.Layout(width="130px"))
            for m in self.available
        }
        self.x0_x = W.FloatText(value=float(x0[0]), description="start x", style=style,
                                layout=W.Layout(width="180px"))
        self.x0_y = W.FloatText(value=float(x0[1]), description="start y", style=style,
                                layout=W.Layout(width="180px"))
        self.status = W.HTML()
        for w, cls in zip(sliders, ("samlab-lr", "samlab-rho", "samlab-steps", "samlab-switch")):
            w.add_class(cls)

        self.figure = self._build_figure()
        self.trajectory: Trajectory | None = None
        self._holding = False
        self._queued = False  # an update is scheduled on the kernel's event loop
        controls = [*sliders, self.x0_x, self.x0_y, *self.method_boxes.values()]
        for w in controls:
            w.observe(self._on_change, names="value")
        self.figure.data[self._click_index].on_click(self._on_click)

        self.widget = W.VBox([
            W.HBox([W.VBox(sliders),
                    W.VBox([self.x0_x, self.x0_y]),
                    W.VBox(list(self.method_boxes.values()),
                           layout=W.Layout(flex_flow="row wrap", width="400px"))]),
            self.figure,
            self.status,
        ])
        self.widget.add_class("samlab-playground")
        self.update()

    # -- the state the controls describe ------------------------------------------------
    @property
    def methods(self) -> list[str]:
        return [m for m, box in self.method_boxes.items() if box.value]

    @property
    def switch(self) -> int | None:
        """The switch step the figure shows (None without a switch slider)."""
        return None if self.switch_slider is None else int(self.switch_slider.value)

    @property
    def x0(self) -> tuple[float, float]:
        return (float(self.x0_x.value), float(self.x0_y.value))

    def set_start(self, x: float, y: float) -> None:
        """Move the start point (one redraw, not two)."""
        self._holding = True
        try:
            self.x0_x.value, self.x0_y.value = float(x), float(y)
        finally:
            self._holding = False
        self.update()

    def trace_index(self, method: str, panel: str = "path") -> int:
        """Index in ``figure.data`` of ``method``'s trajectory (``"path"``), its part before
        the switch (``"before"``, with a switch slider) or right panel (``"loss"``)."""
        return self._trace_index[(method, panel)]

    @property
    def start_trace(self):
        """The marker of the start point in :attr:`figure`."""
        return self.figure.data[self._start_index]

    # -- drawing --------------------------------------------------------------------------
    def _build_figure(self) -> go.FigureWidget:
        land = self.landscape
        fig = make_subplots(rows=1, cols=2, column_widths=[0.56, 0.44], horizontal_spacing=0.08,
                            subplot_titles=(land.name, f"{self._metric_name} per step"))
        (x0, x1), (y0, y1) = land.extent
        fig.add_layout_image(source=contour_image(land), xref="x", yref="y", x=x0, y=y1,
                             sizex=x1 - x0, sizey=y1 - y0, sizing="stretch", layer="below",
                             xanchor="left", yanchor="top")
        cps = land.critical_points
        fig.add_trace(go.Scatter(
            x=[c.point[0] for c in cps], y=[c.point[1] for c in cps], mode="markers",
            marker=dict(symbol=[_SYMBOLS[c.kind] for c in cps], size=12, color="black"),
            text=[f"{c.kind}: {c.name}" for c in cps], hoverinfo="text", name="critical points",
            showlegend=False), 1, 1)
        self._start_index = len(fig.data)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="start", showlegend=False,
                                 marker=dict(size=11, color="white", line=dict(width=2))), 1, 1)
        self._trace_index = {}
        for m in self.available:
            color = table.color(m)
            if self.switch_slider is not None:  # the path before the switch, in GD's colour
                self._trace_index[(m, "before")] = len(fig.data)
                fig.add_trace(go.Scatter(x=[], y=[], mode="lines", legendgroup=m,
                                         showlegend=False, name=f"{table.label(m)}: GD phase",
                                         line=dict(color=table.color("gd"), width=2,
                                                   dash="dot")), 1, 1)
            self._trace_index[(m, "path")] = len(fig.data)
            # Markers on at most MAX_MARKERS steps: drawing one per step is what made a
            # redraw take a quarter of a second in Chromium (each marker is an SVG node).
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=table.label(m),
                                     legendgroup=m, line=dict(color=color, width=2),
                                     marker=dict(size=4, color=color, maxdisplayed=MAX_MARKERS)),
                          1, 1)
            self._trace_index[(m, "loss")] = len(fig.data)
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=table.label(m),
                                     legendgroup=m, showlegend=False,
                                     line=dict(color=color, width=2)), 1, 2)
        # On top of everything, a transparent grid that catches clicks anywhere in the
        # panel, also on a trajectory, and says where a run would start.
        gx, gy = np.linspace(x0, x1, CLICK_GRID), np.linspace(y0, y1, CLICK_GRID)
        self._click_index = len(fig.data)
        fig.add_trace(go.Heatmap(x=gx, y=gy, z=np.zeros((CLICK_GRID, CLICK_GRID)), opacity=0,
                                 showscale=False, name="click to start",
                                 hovertemplate="click to start here<br>x=%{x:.2f}, y=%{y:.2f}"
                                               "<extra></extra>"), 1, 1)
        fig.update_xaxes(range=[x0, x1], title_text="x", row=1, col=1)
        fig.update_yaxes(range=[y0, y1], title_text="y", row=1, col=1)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(title_text=self._metric_name, row=1, col=2)
        fig.update_layout(height=430, width=900, margin=dict(l=50, r=20, t=40, b=40),
                          legend=dict(orientation="h", y=-0.15), template="plotly_white",
                          uirevision="playground")
        return _Figure(fig)

    def update(self) -> Trajectory:
        """Re-run the checked methods and write the runs into the figure in place."""
        methods = self.methods
        lr, rho, steps = self.lr_slider.value, self.rho_slider.value, self.steps_slider.value
        switch = self.switch
        if not np.all(np.isfinite(self.x0)):  # a typed nan or inf: say so, keep the last run
            self.status.value = (f"<b>start ({self.x0[0]}, {self.x0[1]}) is not a point</b>: "
                                 "type two finite numbers (the plot shows the last start)")
            return self.trajectory
        traj = run(self.landscape, methods or ["gd"], lr, rho, self.x0, steps,
                   switch_step=switch)
        self.trajectory = traj if methods else None
        step_axis = np.arange(steps + 1, dtype=float)  # float: sent as bytes, not as a list
        values = self._metric_values(traj)
        fig = self.figure
        with fig.batch_update():
            start = fig.data[self._start_index]
            start.x, start.y = [self.x0[0]], [self.x0[1]]
            # What this drawing shows, readable in the page (the browser test compares it
            # with the sliders after a drag).
            fig.layout.meta = {"lr": lr, "rho": rho, "steps": steps, "x0": list(self.x0),
                               "methods": methods, **({} if switch is None else
                                                      {"switch": switch})}
            for m in self.available:
                path = fig.data[self._trace_index[(m, "path")]]
                loss = fig.data[self._trace_index[(m, "loss")]]
                before = (fig.data[self._trace_index[(m, "before")]] if switch is not None
                          else None)
                if m in methods:
                    i = methods.index(m)
                    # A method without an ascent is GD throughout: all of it is "the path".
                    cut = (0 if switch is None or not table.get_method(m).has_ascent
                           else min(switch, steps))
                    path.x, path.y = traj.positions[cut:, i, 0], traj.positions[cut:, i, 1]
                    if before is not None:
                        before.x = traj.positions[:cut + 1, i, 0] if cut else []
                        before.y = traj.positions[:cut + 1, i, 1] if cut else []
                    loss.x, loss.y = step_axis, values[:, i]
                path.visible = loss.visible = m in methods
                if before is not None:
                    before.visible = m in methods
            if methods:
                fig.layout.yaxis2.range = plot.loss_range(traj, values)
            if switch is not None:
                fig.layout.shapes = [dict(type="line", xref="x2", yref="y2 domain", x0=switch,
                                          x1=switch, y0=0, y1=1,
                                          line=dict(color="grey", dash="dot", width=1))]
        self.status.value = self._status_html(traj) if methods else "<i>no method selected</i>"
        return traj

    @property
    def _metric_name(self) -> str:
        return "loss" if self.metric is None else self.metric[0]

    def _metric_values(self, traj: Trajectory) -> np.ndarray:
        """The right panel's values, ``[steps + 1, runs]``."""
        if self.metric is None:
            return traj.losses
        with np.errstate(all="ignore"):
            return np.asarray(self.metric[1](traj.positions), dtype=float)

    def _status_html(self, traj: Trajectory) -> str:
        rows = []
        for i, m in enumerate(traj.method):
            where = f" at {traj.at[i]}" if traj.at[i] else ""
            final = traj.final[i]
            pos = "—" if not np.isfinite(final).all() else f"({final[0]:.3g}, {final[1]:.3g})"
            color = table.color(str(m))
            rows.append(f"<tr><td style='color:{color}'><b>{table.label(str(m))}</b></td>"
                        f"<td>{traj.outcome[i]}{where}</td><td>{pos}</td></tr>")
        return ("<table class='samlab-outcomes'><tr><th>method</th><th>outcome</th>"
                "<th>final point</th></tr>" + "".join(rows) + "</table>")

    def static_figure(self):
        """The current state as a matplotlib figure (contour + right panel), for handouts."""
        import matplotlib.pyplot as plt

        if self.trajectory is None:
            raise ValueError("no method is selected: check at least one method first")
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.2),
                                       gridspec_kw=dict(width_ratios=[1.1, 1]))
        plot.trajectories(self.trajectory, ax0)
        values = None if self.metric is None else self._metric_values(self.trajectory)
        plot.loss_curves(self.trajectory, ax1, label=self._metric_name, values=values)
        fig.tight_layout()
        return fig

    # -- events ------------------------------------------------------------------------------
    def _on_change(self, _change) -> None:
        """Redraw for the controls' latest values, once per burst of changes.

        In a kernel, a slider drag sends changes faster than a redraw takes; each change
        only schedules an update on the event loop, so the changes that queued in the
        meantime are drawn once, with the last values. Outside a kernel (no running
        loop, as in a script or a test) every change redraws at once.
        """
        if self._holding:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.update()
            return
        if not self._queued:
            self._queued = True
            loop.call_soon(self._update_queued)

    def _update_queued(self) -> None:
        self._queued = False
        self.update()

    def _on_click(self, _trace, points, _state) -> None:
        if points.xs:  # a cell of the click grid: its centre, rounded to the grid's precision
            (x0, x1), (y0, y1) = self.landscape.extent
            self.set_start(_round_to(points.xs[0], (x1 - x0) / CLICK_GRID),
                           _round_to(points.ys[0], (y1 - y0) / CLICK_GRID))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
