"""The 2D playground: sliders for lr, ρ, steps, noise and the start; methods to tick.

The figure is computed and drawn in the page (:class:`PlaygroundView`, an anywidget):
its JavaScript twin of :func:`samlab.toy.run` reads the controls' values in the browser,
so a key press, a click or a drag is drawn in the next frame, with no round trip through
the kernel (docs/toy.md#the-playground). The kernel runs :func:`samlab.toy.run` too, for
the outcome table and :attr:`Playground.trajectory`; NumPy stays the reference, and a
test holds the two engines together within 1e-12.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import anywidget
import ipywidgets as W
import numpy as np
import traitlets

from .. import methods as table
from .. import plot, validate
from ..ascents import get_ascent
from ..toy import (
    BoundedSaddle,
    ConvexQuadratic,
    Hyperbola,
    Landscape,
    SaddleQuadratic,
    SharpFlatValley,
    TiltedValley,
    Trajectory,
    run,
)

_JS = Path(__file__).with_name("js")
#: Seconds the kernel waits after the last change before it recomputes the outcome table
#: (the page has drawn every change already): a drag costs the kernel one run, not one
#: per value, and leaves the machine's cores to the page.
TABLE_DELAY_S = 0.15
#: Cells per side of the grid a clicked start is rounded to (a cell is 2% of the extent).
CLICK_GRID = 50
#: The seeded gradient noise's default seed (as toy.run's).
SEED = 0


def contour_image(landscape: Landscape, levels: int = 30, pixels: int = 600) -> str:
    """The landscape's level lines as a transparent PNG (a data URI) covering its extent,
    drawn once by matplotlib as the figure's background."""
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


def landscape_spec(landscape: Landscape) -> dict | None:
    """What engine.js needs to step ``landscape``: its kind and parameters, or None for a
    landscape with no JavaScript twin (a subclass, or one written by the user)."""
    kind = type(landscape)
    if kind is SaddleQuadratic:
        params = {"a": landscape.a, "b": landscape.b}
    elif kind is BoundedSaddle:
        params = {"a": landscape.a, "b": landscape.b, "c": landscape.c}
    elif kind is ConvexQuadratic:
        (hxx, hxy), (_, hyy) = landscape.H
        params = {"hxx": float(hxx), "hxy": float(hxy), "hyy": float(hyy)}
    elif kind is Hyperbola:
        params = {}
    elif kind is SharpFlatValley:
        params = {"lambda_sharp": landscape.lambda_sharp, "lambda_flat": landscape.lambda_flat,
                  "width": landscape.width}
    elif kind is TiltedValley:
        params = {"lam": landscape.lam, "c": landscape.c}
    else:
        return None
    name = {SaddleQuadratic: "saddle_quadratic", BoundedSaddle: "bounded_saddle",
            ConvexQuadratic: "convex_quadratic", Hyperbola: "hyperbola",
            SharpFlatValley: "sharp_flat_valley", TiltedValley: "tilted_valley"}[kind]
    return {"kind": name, "params": params}


class PlaygroundView(anywidget.AnyWidget):
    """The playground's figure: computed and drawn in the page from the controls' values.

    ``spec`` describes the landscape, the methods and the panels; ``controls`` holds the
    ipywidgets whose values the page reads; ``noise_z`` the seeded unit normals of the
    gradient noise, ``[max_steps, 2, len(methods)]`` float64, so that the page adds the
    same noise as the kernel. ``spec["engine"]`` is ``"browser"`` where engine.js has a
    twin of the landscape and metric, else ``"kernel"``: the kernel then sends its runs
    (``kernel_runs``) and the page draws those.
    """

    _esm = traitlets.Unicode().tag(sync=True)
    spec = traitlets.Dict().tag(sync=True)
    controls = traitlets.Dict().tag(sync=True, **W.widget_serialization)
    noise_z = traitlets.Bytes().tag(sync=True)
    kernel_runs = traitlets.Dict().tag(sync=True)

    @traitlets.default("_esm")
    def _default_esm(self) -> str:
        return (_JS / "engine.js").read_text() + "\n" + (_JS / "view.js").read_text()


def _point(p: np.ndarray) -> str:
    """A final point as a reader reads it: three decimals, no -0.000, no 4.94e-324."""
    if not np.isfinite(p).all():
        return "—"
    return "(" + ", ".join(f"{v:.3f}".replace("-0.000", "0.000") for v in p) + ")"


class Playground:
    """Interactive trajectories of the SAM family on a 2D landscape.

    >>> pg = Playground(BoundedSaddle(), methods=("gd", "sam", "usam"), lr=0.1, rho=1.5)
    >>> pg.lr_slider.value = 0.05          # the figure now shows the new runs
    >>> pg.trajectory.outcome              # what the figure shows, as data

    Click the contour to start from that point, or type the start in the boxes.
    ``noise=σ`` adds seeded Gaussian noise of that size to every gradient (as
    ``toy.run(..., noise=σ, seed=seed)``); each method keeps its own draws, so ticking
    another method changes no other path.

    ``switch=S`` adds a "switch at" slider (its range follows the steps): every method
    runs plain GD for its first ``S`` steps and itself from there on (late-phase
    switching, docs/toy.md#late-phase-switching); a path is drawn dotted in GD's colour up
    to the switch and in its method's colour after it, and a dotted line marks the switch
    in the right panel.
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
        noise: float = 0.0,
        seed: int = SEED,
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
        switch = validate.integer("switch", switch, low=0, high=steps, none=True)
        noise = validate.number("noise", noise, low=0.0)
        self.seed = validate.integer("seed", seed, low=0)
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
        )
        self.rho_slider = W.FloatLogSlider(
            value=rho, base=10, min=log(rho_range[0]), max=log(rho_range[1]), step=0.01,
            description="ρ", readout_format=".3g", style=style, layout=layout,
        )
        self.steps_slider = W.IntSlider(value=steps, min=1, max=max_steps, step=1,
                                        description="steps", style=style, layout=layout)
        self.switch_slider = None if switch is None else W.IntSlider(
            value=switch, min=0, max=steps, step=1, description="switch at", style=style,
            layout=layout)
        sliders = [self.lr_slider, self.rho_slider, self.steps_slider]
        if self.switch_slider is not None:
            sliders.append(self.switch_slider)
        self.method_boxes = {
            m: W.Checkbox(value=m in methods, description=table.label(m), indent=False,
                          layout=W.Layout(width="130px"))
            for m in self.available
        }
        box = W.Layout(width="180px")
        self.x0_x = W.FloatText(value=float(x0[0]), description="start x", style=style,
                                layout=box)
        self.x0_y = W.FloatText(value=float(x0[1]), description="start y", style=style,
                                layout=box)
        self.noise_box = W.FloatText(value=noise, description="noise σ", style=style,
                                     layout=box)
        self.status = W.HTML()
        for w, cls in zip(sliders, ("samlab-lr", "samlab-rho", "samlab-steps", "samlab-switch")):
            w.add_class(cls)
        for w, cls in ((self.x0_x, "samlab-x0-x"), (self.x0_y, "samlab-x0-y"),
                       (self.noise_box, "samlab-noise")):
            w.add_class(cls)
        for m, w in self.method_boxes.items():
            w.add_class(f"samlab-method-{m}")

        self._trajectory: Trajectory | None = None
        self._runs: Trajectory | None = None  # every available method's run
        self._pending: asyncio.TimerHandle | None = None  # a table update not yet run
        self.view = self._build_view()
        for w in [*sliders, self.x0_x, self.x0_y, self.noise_box, *self.method_boxes.values()]:
            w.observe(self._on_change, names="value")

        self.widget = W.VBox([
            W.HBox([W.VBox(sliders),
                    W.VBox([self.x0_x, self.x0_y, self.noise_box]),
                    W.VBox(list(self.method_boxes.values()),
                           layout=W.Layout(flex_flow="row wrap", width="400px"))]),
            self.view,
            self.status,
        ])
        self.widget.add_class("samlab-playground")
        self.update()

    # -- the state the controls describe ------------------------------------------------
    @property
    def trajectory(self) -> Trajectory | None:
        """The checked methods' runs for the controls' current values (None: none checked)."""
        if self._pending is not None:  # a change the table has not caught up with yet
            self.update()
        return self._trajectory

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

    @property
    def noise(self) -> float:
        """The gradient noise's standard deviation σ (0: exact gradients)."""
        return float(self.noise_box.value)

    def set_start(self, x: float, y: float) -> None:
        """Move the start point (what a click on the contour does in the page)."""
        self.x0_x.value, self.x0_y.value = float(x), float(y)

    # -- the figure ---------------------------------------------------------------------------
    def _build_view(self) -> PlaygroundView:
        land = self.landscape
        spec = landscape_spec(land)
        on_landscape = (self.metric is None
                        or (spec is not None and spec["kind"] in ("hyperbola", "sharp_flat_valley")
                            and self.metric[1] == getattr(land, "sharpness", None)))
        rows = [table.get_method(m) for m in self.available]
        in_page = all(get_ascent(row.ascent).in_page for row in rows)  # engine.js has each
        engine = "browser" if spec is not None and on_landscape and in_page else "kernel"
        (x0, x1), (y0, y1) = land.extent
        spec = {
            **(spec or {"kind": None, "params": {}}),
            "name": land.name, "bound": float(land.bound),
            "extent": [[float(x0), float(x1)], [float(y0), float(y1)]],
        }
        z = np.random.default_rng(self.seed).standard_normal(
            (self.steps_slider.max, 2, len(self.available)))
        controls = {"lr": self.lr_slider, "rho": self.rho_slider, "steps": self.steps_slider,
                    "switch": self.switch_slider, "x": self.x0_x, "y": self.x0_y,
                    "sigma": self.noise_box, "methods": dict(self.method_boxes)}
        return PlaygroundView(
            spec={
                "engine": engine,
                "landscape": spec,
                "methods": [{"name": m, "label": table.label(m), "color": table.color(m),
                             "ascent": row.ascent, "renormalize": row.renormalize}
                            for m, row in zip(self.available, rows)],
                "metric": "loss" if self.metric is None else "sharpness",
                "metric_name": self._metric_name,
                "critical_points": [{"x": c.point[0], "y": c.point[1], "kind": c.kind,
                                     "name": c.name} for c in land.critical_points],
                "contour": contour_image(land),
                "gd_color": table.color("gd"),
                "click_grid": CLICK_GRID,
                "adaptive_eta": 0.01,
            },
            controls=controls,
            noise_z=z.astype("<f8").tobytes(),
        )

    def update(self) -> Trajectory | None:
        """Re-run every method for the controls' values: the outcome table, ``trajectory``
        (the checked methods' runs) and, for a landscape the page cannot step, its runs."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        methods = self.methods
        for name, value in (("start", self.x0), ("noise σ", (self.noise,))):
            if not (np.all(np.isfinite(value)) and (name != "noise σ" or value[0] >= 0)):
                shown = ", ".join(str(v) for v in value)
                self.status.value = (f"<b>{name} ({shown}) is not allowed</b>: type "
                                     + ("two finite numbers" if name == "start" else
                                        "a number ≥ 0") + " (the plot shows the last run)")
                return self._trajectory
        lr, rho, steps = self.lr_slider.value, self.rho_slider.value, self.steps_slider.value
        if self.switch_slider is not None:
            self.switch_slider.max = steps  # its range follows the steps (clips the value)
        switch = self.switch
        # Every available method, so that each keeps its own noise draws (and a tick shows
        # a run already computed); the table and `trajectory` are the checked ones.
        runs = run(self.landscape, list(self.available), lr, rho, self.x0, steps,
                   switch_step=switch, noise=self.noise, seed=self.seed)
        self._runs = runs
        self._trajectory = runs[[self.available.index(m) for m in methods]] if methods else None
        if self.view.spec["engine"] == "kernel":
            self.view.kernel_runs = {
                "positions": runs.positions.astype("<f8").tobytes(),
                "values": self._metric_values(runs).astype("<f8").tobytes(),
                "state": {"lr": lr, "rho": rho, "steps": steps, "switchStep": switch,
                          "x0": list(self.x0), "sigma": self.noise},
            }
        self.status.value = (self._status_html(self._trajectory) if methods
                             else "<i>no method selected</i>")
        return self._trajectory

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
            color = table.color(str(m))
            rows.append(f"<tr><td style='color:{color}'><b>{table.label(str(m))}</b></td>"
                        f"<td>{traj.outcome[i]}{where}</td><td>{_point(traj.final[i])}</td></tr>")
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
        """Recompute the table once the changes pause (TABLE_DELAY_S), in a kernel.

        The page has drawn each change already; only the table waits. Outside a kernel
        (no running event loop: a script, a test) every change updates at once; reading
        :attr:`trajectory` always gives the controls' current runs.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.update()
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(TABLE_DELAY_S, self.update)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
