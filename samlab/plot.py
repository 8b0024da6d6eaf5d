"""Static matplotlib figures, for handouts and slides.

Each interactive figure in :mod:`samlab.widgets` has its static twin here,
drawn from the same data, with the same colours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .methods import color as method_color
from .methods import get_method
from .methods import label as method_label
from .toy import OUTCOMES, Landscape, PhaseDiagram, Trajectory

#: One colour per outcome (same order as :data:`samlab.toy.OUTCOMES`).
OUTCOME_COLORS: dict[str, str] = {
    "converged": "#4daf4a",
    "trapped": "#e41a1c",
    "oscillating": "#ff7f00",
    "unsettled": "#bdbdbd",
    "diverged": "#252525",
    "escaped": "#377eb8",
}

_MARKERS = {"minimum": "*", "saddle": "X", "maximum": "^"}


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
    for c in land.critical_points:
        ax.plot(*c.point, _MARKERS[c.kind], color="k", ms=9, ls="none")
    runs = traj.positions.reshape(traj.positions.shape[0], -1, 2)
    methods = traj.method.reshape(-1)
    outcomes = traj.outcome.reshape(-1)
    for i in range(runs.shape[1]):
        m = str(methods[i])
        ax.plot(runs[:, i, 0], runs[:, i, 1], ".-", ms=2.5, lw=1,
                color=method_color(m), label=f"{method_label(m)}: {outcomes[i]}")
        ax.plot(*runs[0, i], "o", color=method_color(m), mfc="white")
    (x0, x1), (y0, y1) = land.extent
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y",
           title=title or f"{land.name}: lr={_fmt(traj.lr)}, ρ={_fmt(traj.rho)}")
    ax.legend(fontsize=8, loc="best")
    return ax


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
        ax.plot(ys[:, i], color=method_color(m), label=method_label(m))
    lo, hi = loss_range(traj, values)
    ax.set(xlabel="step", ylabel=label, ylim=(lo, hi))
    ax.legend(fontsize=8)
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
    leg = ax.legend(handles=handles, fontsize=8, loc="lower left", framealpha=0.9)
    leg.get_frame().set_facecolor("#dddddd")
    return ax


def _fmt(v) -> str:
    vals = np.unique(np.asarray(v))
    return f"{vals[0]:.3g}" if vals.size == 1 else "various"


# -- training runs ---------------------------------------------------------------------------

#: The four panels of a run, shared by the live dashboard and :func:`plot_run`:
#: (title, y label, [(metric key, legend label, line style)]).
RUN_PANELS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("loss", "loss", (("train_loss", "train", "solid"), ("val_loss", "val", "dot"),
                      ("test_loss", "test", "dash"))),
    ("accuracy", "accuracy", (("train_acc", "train", "solid"), ("val_acc", "val", "dot"),
                              ("test_acc", "test", "dash"))),
    ("sharpness λ_max", "λ_max", (("lambda_max", "λ_max", "solid"),)),
    ("γ_t = ‖g‖ / ‖g_asc‖", "γ (epoch mean)", (("gamma_mean", "γ mean", "solid"),)),
)


def run_series(records: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """``{metric: (epochs, values)}`` from metrics.jsonl records (epoch records only).

    The x value is the number of epochs completed (1 after the first epoch), so
    step records (``step_<metric>``, x in fractional epochs) line up with them.
    """
    out: dict[str, tuple[list[float], list[float]]] = {}
    epochs = [r for r in records if r.get("kind") == "epoch"]
    for _, _, lines in RUN_PANELS:
        for key, _, _ in lines:
            pts = [(r["epoch"] + 1, r[key]) for r in epochs
                   if r.get(key) is not None and np.isfinite(r[key])]
            out[key] = ([p[0] for p in pts], [p[1] for p in pts])
    steps = [r for r in records if r.get("kind") == "step"]
    if steps:
        per_epoch = max(1, _steps_per_epoch(records))
        for key in ("loss", "gamma"):
            pts = [(r["step"] / per_epoch, r[key]) for r in steps
                   if r.get(key) is not None and np.isfinite(r[key])]
            out[f"step_{key}"] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def _steps_per_epoch(records: list[dict]) -> int:
    for r in records:
        if r.get("steps_per_epoch"):
            return int(r["steps_per_epoch"])
    for r in records:
        if r.get("kind") == "epoch":
            return int(r["step"]) // (int(r["epoch"]) + 1)
    steps = [r for r in records if r.get("kind") == "step"]
    return max(int(r["step"]) for r in steps) // (max(int(r["epoch"]) for r in steps) + 1)


_MPL_STYLE = {"solid": "-", "dot": ":", "dash": "--"}


def plot_run(run_dirs, *, labels: list[str] | None = None, axes=None):
    """The run panels (loss, accuracy, λ_max, γ_t) of one or several finished runs.

    ``run_dirs`` is a run directory or a list of them (``runs/<name>``); each run
    gets one colour, the split (train/val/test) the line style. Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .train.rundir import read_run

    run_dirs = [run_dirs] if isinstance(run_dirs, (str, bytes)) or hasattr(run_dirs, "is_dir") \
        else list(run_dirs)
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"labels must have one entry per run ({len(run_dirs)}), "
                         f"got {len(labels)}")
    if axes is None:
        fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    axes = np.asarray(axes).ravel()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run_dir in enumerate(run_dirs):
        config, records = read_run(run_dir)
        name = labels[i] if labels else run_label(config)
        series = run_series(records)
        color = colors[i % len(colors)]
        for ax, (title, ylabel, lines) in zip(axes, RUN_PANELS):
            for key, split, style in lines:
                xs, ys = series[key]
                if xs:
                    ax.plot(xs, ys, _MPL_STYLE[style], color=color, marker=".",
                            label=f"{name}, {split}" if len(lines) > 1 else name)
            ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        if records and records[-1].get("dataset"):
            axes[0].figure.suptitle(f"data: {records[-1]['dataset']}", fontsize=9)
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0].figure.tight_layout()
    return axes[0].figure


def run_label(config) -> str:
    """``name (METHOD, ρ=…)``: how figures and dashboards name a training run."""
    method = method_label(config.method)
    if config.switch_epoch is not None:
        method = f"{method_label('sgd')}→{method}@{config.switch_epoch}"
    rho = f", ρ={config.rho:g}" if get_method(config.method).has_ascent else ""
    return f"{config.name} ({method}{rho})"


# -- sweeps ---------------------------------------------------------------------------------


def sweep_stats(runs, metric: str, by: Sequence[str]) -> dict[tuple, tuple[float, float, int]]:
    """``{(values of `by`): (mean, std, n)}`` of a final ``metric`` over the other fields.

    Runs are grouped by the config fields in ``by`` (e.g. ``("method", "rho")``) and
    ``metric`` (e.g. ``"test_acc"``) is averaged over the rest (typically seeds).
    Diverged runs count as NaN and are left out of the mean; ``n`` counts the rest.
    """
    groups: dict[tuple, list[float]] = {}
    for run in runs:
        key = tuple(getattr(run.config, f) for f in by)
        groups.setdefault(key, []).append(run.final(metric))
    out = {}
    for key, vals in groups.items():
        v = np.asarray([x for x in vals if np.isfinite(x)])
        out[key] = ((float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size))
                    if v.size else (float("nan"), float("nan"), 0))
    return out


def sweep_summary(runs, x: str, metrics: Sequence[str], *, by: str = "method",
                  log_x: bool = True, axes=None):
    """One panel per metric: its final value against config field ``x``, one line per ``by``.

    Points are the mean over the runs that differ only in other fields (seeds), with
    a ±1 standard deviation error bar; a diverged setting is marked with an ×.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        stats = sweep_stats(runs, metric, (by, x))
        for group in dict.fromkeys(k[0] for k in stats):
            pts = sorted((k[1], v) for k, v in stats.items() if k[0] == group)
            xs = [p[0] for p in pts]
            mean = np.array([p[1][0] for p in pts])
            std = np.array([p[1][1] for p in pts])
            color = method_color(str(group)) if by == "method" else None
            ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, color=color,
                        label=method_label(str(group)) if by == "method" else f"{by}={group}")
            bad = [xv for xv, m in zip(xs, mean) if not np.isfinite(m)]
            if bad:
                finite = mean[np.isfinite(mean)]
                y = finite.max() if finite.size else 0.0
                ax.plot(bad, [y] * len(bad), "x", color=color, ms=10, mew=2)
        ax.set(xlabel=x, ylabel=metric, xscale="log" if log_x else "linear", title=metric)
        ax.legend(fontsize=8)
    axes[0].figure.tight_layout()
    return axes[0].figure
