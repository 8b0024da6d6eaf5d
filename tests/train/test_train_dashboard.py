"""The live dashboard and its static twin show what metrics.jsonl holds.

The expected curves are read here from metrics.jsonl with ``json``: x is the number of
epochs done (``epoch + 1``; a step record sits at ``step / steps per epoch``), y the
record's value.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from train_tools import digits_config, steps_per_epoch
from train_truth import epoch_records, read_jsonl

from samlab import plot
from samlab.plot import plot_run, run_series
from samlab.train import Callback, Trainer
from samlab.widgets.dashboard import LiveDashboard

EPOCH_CURVES = {  # metric: (plotly y axis of its panel, legend name)
    "train_loss": ("y", "train"), "val_loss": ("y", "val"), "test_loss": ("y", "test"),
    "train_acc": ("y2", "train"), "val_acc": ("y2", "val"), "test_acc": ("y2", "test"),
    "lambda_max": ("y3", "λ_max"), "gamma_mean": ("y4", "γ mean"),
}
STEP_CURVES = {"loss": ("y", "per step"), "gamma": ("y4", "per step")}


def trace(figure, yaxis: str, name: str):
    (found,) = [t for t in figure.data if t.yaxis == yaxis and t.name == name]
    return found


def expected_epoch_curve(records, key):
    pts = [(r["epoch"] + 1, r[key]) for r in epoch_records(records) if key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def expected_step_curve(records, key, per_epoch):
    pts = [(r["step"] / per_epoch, r[key]) for r in records if r["kind"] == "step"]
    return [p[0] for p in pts], [p[1] for p in pts]


def assert_curve(t, xy):
    assert list(t.x) == pytest.approx(xy[0], rel=1e-12)
    assert list(t.y) == pytest.approx(xy[1], rel=1e-12)


class StepCurveSpy(Callback):
    """After the dashboard has handled each step record: what its per-step loss curve shows."""

    def __init__(self, dash: LiveDashboard):
        self.dash, self.seen = dash, []

    def on_step(self, trainer, record):
        t = trace(self.dash.figure, *STEP_CURVES["loss"])
        self.seen.append((record, list(t.x), list(t.y)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A SAM run watched by a LiveDashboard (λ_max each epoch, a step record every 5 steps),
    and a plain SGD run."""
    runs_dir = tmp_path_factory.mktemp("runs")
    sam = digits_config(runs_dir, "dash-sam", epochs=2, n_train=320, log_every=5,
                        sharpness_every=1, sharpness_subset=64)
    dash = LiveDashboard()
    spy = StepCurveSpy(dash)
    Trainer(sam, callbacks=[dash, spy], progress=False).fit()
    sgd = digits_config(runs_dir, "dash-sgd", method="sgd", epochs=2, n_train=320)
    Trainer(sgd, progress=False).fit()
    return {"sam": (sam, read_jsonl(sam.run_dir / "metrics.jsonl")),
            "sgd": (sgd, read_jsonl(sgd.run_dir / "metrics.jsonl")), "dash": dash, "spy": spy}


@pytest.mark.parametrize("key", list(EPOCH_CURVES))
def test_after_the_run_the_dashboard_shows_each_epoch_metric_of_metrics_jsonl(runs, key):
    config, records = runs["sam"]
    expected = expected_epoch_curve(records, key)
    assert len(expected[0]) == 2  # every one of these is recorded in both epochs
    assert_curve(trace(runs["dash"].figure, *EPOCH_CURVES[key]), expected)


@pytest.mark.parametrize("key", list(STEP_CURVES))
def test_after_the_run_the_dashboard_shows_the_step_records(runs, key):
    config, records = runs["sam"]
    expected = expected_step_curve(records, key, steps_per_epoch(config))
    assert len(expected[0]) == 2 * steps_per_epoch(config) // 5
    assert_curve(trace(runs["dash"].figure, *STEP_CURVES[key]), expected)


@pytest.mark.parametrize("key", ["train_loss", "test_acc", "lambda_max", "gamma_mean"])
def test_run_series_is_the_curve_read_from_metrics_jsonl(runs, key):
    _, records = runs["sam"]
    xs, ys = run_series(records)[key]
    assert (xs, ys) == expected_epoch_curve(records, key)


@pytest.mark.parametrize("key", list(EPOCH_CURVES))
def test_a_dashboard_from_the_run_directory_shows_the_same(runs, key):
    config, records = runs["sam"]
    dash = LiveDashboard.from_run(config.run_dir)
    assert_curve(trace(dash.figure, *EPOCH_CURVES[key]), expected_epoch_curve(records, key))


def test_each_step_record_adds_a_point_to_the_step_curve_as_it_comes(runs):
    seen = runs["spy"].seen
    assert [len(ys) for _, _, ys in seen] == list(range(1, len(seen) + 1))
    for record, _, ys in seen:
        assert ys[-1] == pytest.approx(record["loss"], rel=1e-12)


def test_during_the_first_epoch_step_points_sit_at_fractional_epochs(runs):
    # Step s is at s / (steps per epoch) on the epoch axis, as after the run; a point
    # drawn during epoch 0 at another x jumps when the first epoch record arrives.
    config, _ = runs["sam"]
    per_epoch = steps_per_epoch(config)
    for record, xs, _ in runs["spy"].seen:
        assert xs[-1] == pytest.approx(record["step"] / per_epoch), \
            f"step {record['step']} (epoch {record['epoch']}) drawn at x={xs[-1]}"


def line_of(ax, run_name: str, split: str | None = None):
    """The one line of run ``run_name`` (and ``split``) on ``ax``, found by its legend label."""
    (line,) = [ln for ln in ax.lines if ln.get_label().startswith(run_name)
               and (split is None or ln.get_label().endswith(f", {split}"))]
    return line


def test_plot_run_draws_four_panels_with_each_runs_recorded_values(runs):
    (sam, sam_records), (sgd, sgd_records) = runs["sam"], runs["sgd"]
    fig = plot_run([sam.run_dir, sgd.run_dir])
    try:
        assert isinstance(fig, Figure) and len(fig.axes) == 4
        loss, acc, lam, gamma = fig.axes
        for config, records in ((sam, sam_records), (sgd, sgd_records)):
            for split in ("train", "val", "test"):
                for ax, metric in ((loss, "loss"), (acc, "acc")):
                    line = line_of(ax, config.name, split)
                    x, y = expected_epoch_curve(records, f"{split}_{metric}")
                    np.testing.assert_array_equal(line.get_xdata(), x)
                    np.testing.assert_array_equal(line.get_ydata(), y)
        for ax, key in ((lam, "lambda_max"), (gamma, "gamma_mean")):
            np.testing.assert_array_equal(line_of(ax, sam.name).get_ydata(),
                                          expected_epoch_curve(sam_records, key)[1])
            # SGD has no ascent and was not measured: nothing of it on these panels.
            assert not [ln for ln in ax.lines if ln.get_label().startswith(sgd.name)]
    finally:
        plt.close(fig)


def test_the_sharpness_panel_draws_each_epochs_stability_edges(tmp_path):
    from samlab import edges

    config = digits_config(tmp_path, name="edges", switch_epoch=1, epochs=3,
                           sharpness_every=1, sharpness_subset=200)
    dash = LiveDashboard()
    Trainer(config, callbacks=[dash], progress=False, report=False).fit()
    epochs = [r for r in dash.records if r["kind"] == "epoch"]
    gd = dash.figure.data[dash._edge_traces["gd_edge"]]
    own = dash.figure.data[dash._edge_traces["method_edge"]]
    assert list(gd.x) == [1, 2, 3]
    np.testing.assert_allclose(gd.y, [(2 + 2 * config.momentum) / r["lr"] for r in epochs])
    assert list(own.x) == [2, 3]  # SAM from epoch 1 on
    np.testing.assert_allclose(own.y, [edges.sam_edge(r["lr"], config.rho, r["grad_norm_mean"],
                                                      config.momentum) for r in epochs[1:]])
    assert dash.figure.layout.yaxis3.type == "log"


@pytest.mark.parametrize(("method", "says", "not_says"), [
    ("sam", "(mean mini-batch ‖g‖)", "γ"), ("ssam", "(mean γ)", "‖g‖"), ("usam", "edge", "(")])
def test_the_live_edge_legend_names_what_the_edge_is_computed_from(tmp_path, method, says,
                                                                   not_says):
    config = digits_config(tmp_path, name=f"legend_{method}", method=method, epochs=1,
                           sharpness_every=1, sharpness_subset=100)
    dash = LiveDashboard()
    Trainer(config, callbacks=[dash], progress=False, report=False).fit()
    name = dash.figure.data[dash._edge_traces["method_edge"]].name
    assert says in name and not_says not in name
    assert name == plot.edge_label(method)  # the static figure's legend, word for word
