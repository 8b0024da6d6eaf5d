"""Static figures of the toy world: trajectories on a landscape, loss curves, phase
diagrams (each the twin of a widget of :mod:`samlab.widgets`)."""

from __future__ import annotations

import numpy as np

from ..methods import color as method_color
from ..methods import get_method
from ..methods import label as method_label
from ..toy import OUTCOMES, Landscape, PhaseDiagram, Trajectory
from .common import _MARKERS, OUTCOME_COLORS, outside_legend


def landscape_grid(landscape: Landscape, n: int = 121):
    """``(xs, ys, Z)``: the loss on an ``n x n`` grid over the landscape's extent."""
    (x0, x1), (y0, y1) = landscape.extent
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    X, Y = np.meshgrid(xs, ys)
    return xs, ys, landscape.loss_xy(X, Y)


def trajectories(traj: Trajectory, ax=None, *, levels: int = 30, title: str | None = None):
    """Contour of the landscape with every run of ``traj`` drawn on it."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 4.5))[1]
    land = traj.landscape
    xs, ys, Z = landscape_grid(land)
    ax.contour(xs, ys, Z, levels=levels, cmap="Greys", linewidths=0.6)
    for k, curve in enumerate(land.minimum_curves()):
        ax.plot(curve[:, 0], curve[:, 1], color="k", lw=2.5, alpha=0.25,
                label="minima" if k == 0 else None)
    for c in land.critical_points:
        ax.plot(*c.point, _MARKERS[c.kind], color="k", ms=9, ls="none")
    runs = traj.positions.reshape(traj.positions.shape[0], -1, 2)
    methods = traj.method.reshape(-1)
    outcomes = traj.outcome.reshape(-1)
    switches = (np.zeros(runs.shape[1], int) if traj.switch_step is None
                else traj.switch_step.reshape(-1))
    for i in range(runs.shape[1]):
        m = str(methods[i])
        # A late-phase run: its GD phase dotted in GD's colour, the method's phase after it.
        cut = min(int(switches[i]), traj.steps) if get_method(m).has_ascent else 0
        if cut:
            ax.plot(runs[:cut + 1, i, 0], runs[:cut + 1, i, 1], color=method_color("gd"),
                    ls=":", lw=1.5, zorder=2 + i)
        tail = f", switched at step {cut}" if cut else ""
        ax.plot(runs[cut:, i, 0], runs[cut:, i, 1], color=method_color(m),
                label=f"{method_label(m)}: {outcomes[i]}{tail}", **_run_style(i))
        ax.plot(*runs[0, i], "o", color=method_color(m), mfc="white", zorder=10)
        last = runs[:, i][np.isfinite(runs[:, i]).all(axis=-1)]
        if len(last):  # where it ended: a filled marker of its colour
            ax.plot(*last[-1], "D", color=method_color(m), mec="k", ms=6, zorder=11)
    (x0, x1), (y0, y1) = land.extent
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y",
           title=title or f"{land.name}: lr={_fmt(traj.lr)}, ρ={_fmt(traj.rho)}")
    outside_legend(ax)
    return ax


def _run_style(i: int) -> dict:
    """Run ``i`` of a batch: later runs thinner, on top, in their own line style, so that
    runs sharing a stretch of path (or of curve) stay told apart."""
    return {"ls": ("-", "--", ":", "-.")[i % 4], "lw": max(2.6 - 0.6 * i, 1.0), "zorder": 2 + i}


def loss_curves(traj: Trajectory, ax=None, *, values: np.ndarray | None = None,
                label: str = "loss"):
    """Loss (or ``values``, ``[steps + 1, ...]``, named ``label``) against step, per run."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    ys = traj.losses if values is None else values
    ys = ys.reshape(ys.shape[0], -1)
    methods = traj.method.reshape(-1)
    for i in range(ys.shape[1]):
        m = str(methods[i])
        ax.plot(ys[:, i], color=method_color(m), label=method_label(m), **_run_style(i))
    lo, hi = loss_range(traj, values)
    ax.set(xlabel="step", ylabel=label, ylim=(lo, hi))
    outside_legend(ax)
    return ax


def loss_range(traj: Trajectory, values: np.ndarray | None = None) -> tuple[float, float]:
    """A y-range for per-step plots (the loss, or ``values`` per step) that ignores runs
    far outside the landscape's window."""
    (x0, x1), (y0, y1) = traj.landscape.extent
    p, loss = traj.positions, traj.losses if values is None else values
    inside = ((p[..., 0] >= x0) & (p[..., 0] <= x1) & (p[..., 1] >= y0) & (p[..., 1] <= y1))
    vals = loss[inside & np.isfinite(loss)]
    if vals.size == 0:
        return -1.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    pad = 0.05 * (hi - lo) or 0.5
    return lo - pad, hi + pad


def phase_diagram(pd: PhaseDiagram, ax=None, *, predicted: np.ndarray | None = None,
                  predicted_label: str = "prediction"):
    """Outcome of every ``(lr, ρ)`` as a coloured map, log axes.

    ``predicted`` (boolean, same shape as ``pd.codes``) draws the boundary of a
    closed-form prediction on top, so measured and predicted sit side by side.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ax = ax or plt.subplots(figsize=(5.5, 4.5))[1]
    cmap = ListedColormap([OUTCOME_COLORS[o] for o in OUTCOMES])
    # Rows of the image are ρ, columns lr: codes is indexed [lr, ρ].
    ax.pcolormesh(pd.lrs, pd.rhos, pd.codes.T, cmap=cmap, vmin=-0.5,
                  vmax=len(OUTCOMES) - 0.5, shading="nearest")
    handles = [Patch(color=OUTCOME_COLORS[o], label=o) for o in OUTCOMES
               if (pd.codes == OUTCOMES.index(o)).any()]
    if predicted is not None:
        ax.contour(pd.lrs, pd.rhos, np.asarray(predicted, float).T, levels=[0.5],
                   colors="white", linewidths=2, linestyles="--")
        handles.append(plt.Line2D([], [], color="white", ls="--", lw=2, label=predicted_label))
    ax.set(xscale="log", yscale="log", xlabel="learning rate η", ylabel="ρ",
           title=f"{method_label(pd.method)} on the {pd.landscape.name}, {pd.steps} steps")
    leg = outside_legend(ax, handles=handles)
    leg.get_frame().set_facecolor("#dddddd")  # the white prediction line shows on grey
    return ax


def _fmt(v) -> str:
    vals = np.unique(np.asarray(v))
    return f"{vals[0]:.3g}" if vals.size == 1 else "various"


