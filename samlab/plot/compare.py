"""Runs set side by side: a table of arms against a baseline, and the loss along the line
between two solutions (docs/training.md#sweeps, docs/landscape.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .common import outside_legend
from .runs import gap, sweep_stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: A table's column title and decimals for a metric (others: its key, three decimals).
COLUMNS = {"test_acc": ("test acc", 3), "val_acc": ("val acc", 3), "lambda_max": ("λ_max", 2),
           "trace": ("tr(H)", 1)}


def arms_summary(arms: Mapping[str, Sequence], *, baseline: str, target: str | None = None,
                 metrics: Sequence[str] = ("test_acc", "lambda_max")) -> dict[str, dict]:
    """Per arm (a name and its runs, one per seed): each metric's final ``(mean, std, n)``
    over the runs; ``sigmas``, the first metric's distance from ``baseline`` in seeds' std
    (:func:`~samlab.plot.gap`); with ``target``, each metric's ``share`` of the target's
    change, ``(arm − baseline) / (target − baseline)``; and the cost against the baseline:
    ``passes`` (forward-backward passes of its first run) and ``time`` (mean seconds of
    training). A ratio with nothing to divide by is NaN."""
    _check_arms(arms, baseline, target)
    stats = {name: {m: sweep_stats(runs, m, ())[()] for m in metrics}
             for name, runs in arms.items()}
    base, first = stats[baseline], metrics[0]
    seconds = {name: float(np.mean([r.train_time for r in runs])) for name, runs in arms.items()}
    out = {}
    for name, runs in arms.items():
        row = {"stats": stats[name], "sigmas": gap(stats[name][first], base[first])[1],
               "passes": _ratio(runs[0].passes, arms[baseline][0].passes),
               "time": _ratio(seconds[name], seconds[baseline])}
        if target is not None:
            row["share"] = {m: _ratio(stats[name][m][0] - base[m][0],
                                      stats[target][m][0] - base[m][0]) for m in metrics}
        out[name] = row
    return out


def _check_arms(arms: Mapping[str, Sequence], baseline: str, target: str | None) -> None:
    for name in (baseline, target):
        if name is not None and name not in arms:
            raise ValueError(f"baseline and target must name an arm ({', '.join(arms)}), "
                             f"got {name!r}")
    if target == baseline:
        raise ValueError(f"target must be another arm than the baseline, got {target!r} "
                         "for both")
    for name, runs in arms.items():
        if not runs:
            raise ValueError(f"arm {name!r} has no runs: give each arm at least one")


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


def arms_table(arms: Mapping[str, Sequence], *, baseline: str, target: str | None = None,
               metrics: Sequence[str] = ("test_acc", "lambda_max"),
               decimals: Mapping[str, int] | None = None) -> str:
    """:func:`arms_summary` as text: a title, a row per arm, and what the columns mean.

    ``± std`` and the ``σ`` column appear when an arm has more than one run; the ``share``
    columns with ``target``. ``decimals`` overrides a metric's (:data:`COLUMNS`).
    """
    rows = arms_summary(arms, baseline=baseline, target=target, metrics=metrics)
    counts = sorted({len(runs) for runs in arms.values()})
    seeds = counts[-1]
    width = max(len(name) for name in arms)
    head, cells = [f"{'arm':>{width}}"], {name: [f"{name:>{width}}"] for name in arms}
    for i, m in enumerate(metrics):
        title, d = COLUMNS.get(m, (m, 3))
        d = (decimals or {}).get(m, d)
        col = [f"{r['stats'][m][0]:.{d}f}" + (f" ± {r['stats'][m][1]:.{d}f}" if seeds > 1 else "")
               for r in rows.values()]
        head.append(f"{title:>{max(map(len, [title, *col]))}}")
        extra = [("σ", lambda r: f"{r['sigmas']:+.1f}")] if i == 0 and seeds > 1 else []
        extra += [("share", lambda r, m=m: f"{r['share'][m] + 0.0:.0%}")] if target else []
        for name, c in zip(arms, col):
            cells[name].append(f"{c:>{len(head[-1])}}")
        for title, fmt in extra:
            head.append(f"{title:>6}")
            for name, r in rows.items():
                cells[name].append(f"{fmt(r):>6}")
    head += [f"{'passes':>7}", f"{'time':>6}"]
    for name, r in rows.items():
        cells[name] += [f"{r['passes']:7.3f}", f"{r['time']:6.2f}"]
    notes = []
    if seeds > 1:
        notes.append(f"σ: (arm − {baseline}) in units of the larger std of the two")
    if target:
        notes.append(f"share: (arm − {baseline}) / ({target} − {baseline})")
    notes.append(f"passes, time: forward-backward passes and seconds of training, × {baseline}'s")
    n = f"{counts[0]}–{seeds}" if len(counts) > 1 else f"{seeds}"
    title = f"final epoch, {n} seed(s) per arm" + (", mean ± std" if seeds > 1 else "")
    return "\n".join([title, " ".join(head), *(" ".join(c) for c in cells.values()), *notes])


def interpolation(lines: Mapping, *, accuracy: bool = True,
                  xlabel: str = "α  (0: the first network, 1: the second)",
                  ylabel: str = "training loss",
                  accuracy_label: str = "training accuracy") -> Figure:
    """The loss (and, with ``accuracy``, the accuracy) along each line of ``lines``
    (``{label: LinePath}`` from :func:`samlab.landscape.interpolate`), with ``α = 0`` and
    ``α = 1`` marked: one valley when a curve stays under the chord of its ends."""
    import matplotlib.pyplot as plt

    panels = 2 if accuracy else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.6), squeeze=False)
    axes = axes[0]
    for name, line in lines.items():
        axes[0].plot(line.alphas, line.losses, "o-", ms=3, label=name)
        if accuracy:
            axes[1].plot(line.alphas, line.accuracies, "o-", ms=3, label=name)
    for ax in axes:
        for end in (0, 1):
            ax.axvline(end, color="grey", lw=0.8)
    axes[0].set(xlabel=xlabel, ylabel=ylabel, yscale="log")
    if accuracy:
        axes[1].set(xlabel="α", ylabel=accuracy_label)
    outside_legend(axes[-1])
    fig.tight_layout()
    return fig
