"""Static matplotlib figures, for handouts and slides.

Each interactive figure in :mod:`samlab.widgets` has its static twin here, drawn from the
same data, with the same colours: the toy world's in :mod:`~samlab.plot.toy`, training
runs' in :mod:`~samlab.plot.runs`, what they share in :mod:`~samlab.plot.common`.
"""

from ..methods import color as method_color
from ..methods import label as method_label
from .common import OUTCOME_COLORS, outside_legend, save_figure
from .compare import arms_summary, arms_table, interpolation
from .runs import (
    METRIC_LABELS,
    RUN_PANELS,
    SHARPNESS_METRICS,
    after_switch,
    edge_label,
    edge_series,
    edge_summary,
    gap,
    mean_over_epochs,
    plot_run,
    run_label,
    run_series,
    sharpness_and_edges,
    sweep_stats,
    sweep_summary,
)
from .toy import landscape_grid, loss_curves, loss_range, phase_diagram, trajectories

__all__ = ["METRIC_LABELS", "OUTCOME_COLORS", "RUN_PANELS", "SHARPNESS_METRICS", "after_switch",
           "arms_summary", "arms_table", "edge_label", "edge_series", "edge_summary", "gap",
           "interpolation", "landscape_grid", "loss_curves", "loss_range", "mean_over_epochs",
           "method_color", "method_label", "outside_legend", "phase_diagram", "plot_run",
           "run_label", "run_series", "save_figure", "sharpness_and_edges", "sweep_stats",
           "sweep_summary", "trajectories"]
