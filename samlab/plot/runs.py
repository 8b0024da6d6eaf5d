"""Static figures of training runs: the run panels, λ_max against the stability edges,
sweep summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .. import validate
from ..ascents import get_ascent
from ..methods import color as method_color
from ..methods import get_method
from ..methods import label as method_label
from .common import outside_legend

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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

    from ..train.rundir import read_run

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
            outside_legend(ax, fontsize=7)
    axes[0].figure.tight_layout()
    return axes[0].figure


def after_switch(run) -> Figure:
    """The first SAM steps after a late switch, from a run's ``switch_step`` records
    (``TrainConfig.switch_log_steps``, docs/training.md): the distance ``‖w − w_switch‖``,
    the mini-batch loss, and ``λ_max`` where it was measured, against the steps."""
    import matplotlib.pyplot as plt

    after = [r for r in run.records if r.get("kind") == "switch_step" and r["k"] > 0]
    if not after:
        raise ValueError(f"run {run.config.name!r} has no switch_step records after the "
                         "switch: train it with switch_log_steps > 0 and a switch_epoch")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    color, xlabel = method_color(run.config.method), "SAM steps after the switch"
    measured = [r for r in run.records if r.get("kind") == "switch_step" and "lambda_max" in r]
    for ax, key, rows, title in ((axes[0], "distance", after, "distance"),
                                 (axes[1], "loss", after, "loss"),
                                 (axes[2], "lambda_max", measured, "sharpness")):
        ax.plot([r["k"] for r in rows], [r[key] for r in rows], "o-", ms=3, color=color)
        ax.set(xlabel=xlabel, title=title, ylabel={
            "distance": "‖w − w_switch‖", "loss": "mini-batch loss",
            "lambda_max": f"λ_max ({run.config.sharpness_bn_mode} mode)"}[key])
    axes[0].set_yscale("log")
    fig.tight_layout()
    return fig


def edge_series(config, records) -> dict[str, tuple[list[int], list[float]]]:
    """Per epoch record of a run of ``config``: ``"lambda_max"``
    where measured, ``"gd_edge"`` = (2 + 2β)/η from the rate the epoch ended with, and
    ``"method_edge"`` (epochs where SAM was active) from the same rate and the epoch's mean
    mini-batch ``‖g‖`` (and ``γ``) (docs/edges.md). x is the epoch count (1 after epoch 0).
    """
    from .. import edges

    epochs = [r for r in records if r.get("kind") == "epoch"]
    out = {key: ([], []) for key in ("lambda_max", "gd_edge", "method_edge")}

    def add(key, record, value):
        out[key][0].append(record["epoch"] + 1)
        out[key][1].append(float(value))

    row = get_method(config.method)
    for r in epochs:
        if "lambda_max" in r:
            add("lambda_max", r, r["lambda_max"])
        add("gd_edge", r, edges.gd_edge(r["lr"], config.momentum))
        if r.get("sam_active") and get_ascent(row.ascent).edge is not None:
            add("method_edge", r, edges.edge(config.method, r["lr"], rho=config.rho,
                                             grad_norm=r.get("grad_norm_mean"),
                                             gamma=r.get("gamma_mean"),
                                             momentum=config.momentum))
    return out


def edge_label(method: str) -> str:
    """The legend of a method's stability edge, saying what it is computed from beside η
    (docs/edges.md): the mean mini-batch ‖g‖ for a normalized ascent, the mean γ for a
    renormalized descent (SSAM), nothing more for USAM."""
    row = get_method(method)
    used = [w for w, needed in (("mean mini-batch ‖g‖", row.normalized),
                                ("mean γ", row.renormalize)) if needed]
    return f"{method_label(method)}'s edge" + (f" ({', '.join(used)})" if used else "")


def sharpness_and_edges(run, ax=None):
    """``λ_max`` per epoch of ``run`` against SGD's stability edge and its method's."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.8))[1]
    config = run.config
    series = edge_series(config, run.records)
    beta = f"{config.momentum:g}"
    ax.plot(*series["gd_edge"], "--", color=method_color("sgd"),
            label=f"SGD's edge (2 + 2β)/η, β = {beta}")
    if series["method_edge"][0]:
        # A marker too, so that an edge of one epoch (a short late phase) is visible.
        ax.plot(*series["method_edge"], ":", color=method_color(config.method), lw=2,
                marker="_", markersize=12, label=edge_label(config.method))
    ax.plot(*series["lambda_max"], "o-", color="k", label="λ_max")
    ax.set(xlabel="epoch", ylabel="λ_max", yscale="log")
    outside_legend(ax, fontsize=8)
    return ax


def edge_summary(run) -> str:
    """One line: the last measured ``λ_max`` of ``run`` beside the edges of that epoch."""
    series = edge_series(run.config, run.records)
    if not series["lambda_max"][0]:
        return "no λ_max measured"
    epoch, lam = series["lambda_max"][0][-1], series["lambda_max"][1][-1]
    gd = dict(zip(*series["gd_edge"]))[epoch]
    text = f"λ_max {lam:.3g} after epoch {epoch - 1}; SGD's edge {gd:.3g} ({lam / gd:.2g} of it)"
    own = dict(zip(*series["method_edge"])).get(epoch)
    if own is not None:
        name = method_label(run.config.method)
        text += f"; {name}'s edge {own:.3g} ({lam / own:.2g} of it)"
    return text


def run_label(config) -> str:
    """``name (METHOD, ρ=…)``: how figures and dashboards name a training run."""
    method = method_label(config.method)
    if config.switch_epoch is not None:
        method = f"{method_label('sgd')}→{method}@{config.switch_epoch}"
    if getattr(config, "end_epoch", None) is not None:  # the switch back
        method = f"{method}→{method_label('sgd')}@{config.end_epoch}"
    rho = f", ρ={config.rho:g}" if get_method(config.method).has_ascent else ""
    return f"{config.name} ({method}{rho})"


# -- sweeps ---------------------------------------------------------------------------------


def sweep_stats(runs, metric: str, by: Sequence[str], *,
                at: str = "final") -> dict[tuple, tuple[float, float, int]]:
    """``{(values of `by`): (mean, std, n)}`` of ``metric`` over the other fields.

    Runs are grouped by the config fields in ``by`` (e.g. ``("method", "rho")``) and
    ``metric`` (e.g. ``"test_acc"``) is averaged over the rest (typically seeds).
    ``at="final"`` takes each run's last epoch, where a diverged run counts as NaN;
    ``at="best"`` its epoch of highest validation accuracy (:meth:`RunResult.best`:
    early stopping). NaNs are left out of the mean; ``n`` counts the rest.
    """
    validate.choice("at", at, ("final", "best"))
    groups: dict[tuple, list[float]] = {}
    for run in runs:
        key = tuple(getattr(run.config, f) for f in by)
        value = run.final(metric) if at == "final" else float(run.best().get(metric, math.nan))
        groups.setdefault(key, []).append(value)
    out = {}
    for key, vals in groups.items():
        v = np.asarray([x for x in vals if np.isfinite(x)])
        out[key] = ((float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size))
                    if v.size else (float("nan"), float("nan"), 0))
    return out


def gap(a: tuple[float, float, int], b: tuple[float, float, int]) -> tuple[float, float]:
    """How far ``a`` lies above ``b``, each a ``(mean, std, n)`` of :func:`sweep_stats`:
    the difference of the means, and that difference in units of the larger of the two
    standard deviations (the seeds' spread; NaN where neither has a spread, as with one
    seed each: there is nothing to measure the difference against)."""
    diff, spread = a[0] - b[0], max(a[1], b[1])
    return float(diff), float(diff / spread) if spread > 0 else math.nan


#: What figures call the metrics of a run's records.
METRIC_LABELS: dict[str, str] = {
    "train_loss": "final training loss", "train_acc": "final training accuracy",
    "val_loss": "validation loss", "val_acc": "validation accuracy",
    "test_loss": "test loss", "test_acc": "test accuracy", "lambda_max": "sharpness λ_max",
    "trace": "Hessian trace", "gamma_mean": "mean γ_t", "grad_norm_mean": "mean ‖g‖",
    "eps_norm_mean": "perturbation length ‖ε‖",
}
#: Metrics of the loss's curvature: meaningless for a run that never trained.
SHARPNESS_METRICS = ("lambda_max", "trace")


def mean_over_epochs(key: str):
    """``run ↦`` the mean of ``key`` over its epoch records (e.g. the mean ‖ε‖ of training)."""
    def value(run) -> float:
        vals = [r[key] for r in run.records if r.get("kind") == "epoch" and key in r]
        return float(np.mean(vals)) if vals else float("nan")

    return value


def sweep_summary(runs, x, metrics: Sequence[str], *, by: str = "method",
                  setting: str | None = None, x_label: str | None = None, log_x: bool = True,
                  stalled=None, axes=None):
    """One panel per metric: its final value against ``x``, one line per value of ``by``.

    ``x`` is a config field (``"rho"``) or a function of a run (e.g.
    ``mean_over_epochs("eps_norm_mean")``); then ``setting`` names the config field whose
    runs form one point (their ``x`` is averaged). Points are the mean over the runs of a
    setting (seeds), with a ±1 standard deviation error bar; a diverged setting is an ×.
    ``stalled(run)`` marks runs that never trained: their settings are hollow markers, and
    the sharpness panels leave them out (the curvature of an untrained net says nothing),
    with an × at the bottom instead.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics) + 1.5, 3.8))
    axes = np.atleast_1d(axes)
    field = x if isinstance(x, str) else setting
    if field is None:
        raise ValueError("setting must name a config field when x is a function of a run")
    x_of = (lambda run: getattr(run.config, field)) if isinstance(x, str) else x
    for ax, metric in zip(axes, metrics):
        crosses = []  # (x, colour) of settings with no value to show
        for name, pts in _setting_points(runs, by, field, x_of, metric, stalled).items():
            xs, mean, std, dead = pts
            color = method_color(str(name)) if by == "method" else None
            hidden = dead & (metric in SHARPNESS_METRICS)
            shown = ~hidden & np.isfinite(mean)
            ax.errorbar(xs[shown], mean[shown], yerr=std[shown], color=color, capsize=3,
                        label=method_label(str(name)) if by == "method" else f"{by}={name}")
            ax.plot(xs[shown & ~dead], mean[shown & ~dead], "o", color=color)
            ax.plot(xs[shown & dead], mean[shown & dead], "o", color=color, mfc="white")
            crosses += [(xv, color) for xv in xs[hidden | ~np.isfinite(mean)]]
        if stalled is not None:
            ax.plot([], [], "o", color="grey", mfc="white", label="stalled (never trained)")
        if crosses:  # at the bottom of the panel: diverged, or stalled in a sharpness panel
            bottom = ax.get_ylim()[0]
            for xv, color in crosses:
                ax.plot([xv], [bottom], "x", color=color, ms=9, mew=2, clip_on=False)
            ax.plot([], [], "x", color="grey", mew=2, label="no value (diverged or stalled)")
        title = METRIC_LABELS.get(metric, metric)
        ax.set(xlabel=x_label or METRIC_LABELS.get(field, field), ylabel=title, title=title,
               xscale="log" if log_x else "linear")
        outside_legend(ax)
    axes[0].figure.tight_layout()
    return axes[0].figure


def _setting_points(runs, by: str, field: str, x_of, metric: str, stalled):
    """``{by value: (x, mean, std, stalled)}`` arrays, one entry per setting, sorted by x."""
    settings: dict[tuple, list] = {}
    for run in runs:
        settings.setdefault((getattr(run.config, by), getattr(run.config, field)), []).append(run)
    rows: dict = {}
    for (name, _), members in settings.items():
        vals = np.array([r.final(metric) for r in members])
        ok = vals[np.isfinite(vals)]
        rows.setdefault(name, []).append((
            float(np.nanmean([x_of(r) for r in members])),
            float(ok.mean()) if ok.size else np.nan,
            float(ok.std(ddof=1)) if ok.size > 1 else 0.0,
            stalled is not None and np.mean([stalled(r) for r in members]) > 0.5))
    return {name: tuple(np.array(v) for v in zip(*sorted(pts))) for name, pts in rows.items()}
