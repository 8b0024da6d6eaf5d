"""plot.sweep_stats and plot.gap against statistics computed by hand on made-up runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from samlab import plot
from samlab.train import TrainConfig
from samlab.train.rundir import RunResult


def run(method, seed, val, test, status="completed"):
    """A run whose epochs had these validation and test accuracies."""
    config = TrainConfig(name="r", dataset="digits", model="mlp", method=method, seed=seed)
    records = [{"kind": "epoch", "epoch": i, "val_acc": v, "test_acc": t}
               for i, (v, t) in enumerate(zip(val, test))]
    return RunResult(status, len(records), Path("."), records=records, config=config)


RUNS = [run("sgd", 0, [0.5, 0.9, 0.7], [0.52, 0.88, 0.71]),
        run("sgd", 1, [0.6, 0.8, 0.8], [0.61, 0.83, 0.79]),  # a tie: the earlier epoch
        run("sam", 0, [0.7, 0.9, 0.95], [0.69, 0.90, 0.93]),
        run("sam", 1, [0.7, 0.9, float("nan")], [0.70, 0.91, float("nan")], status="diverged")]


def test_final_is_the_last_epoch_and_a_diverged_run_is_left_out():
    stats = plot.sweep_stats(RUNS, "test_acc", ("method",))
    assert stats[("sgd",)] == pytest.approx((0.75, np.std([0.71, 0.79], ddof=1), 2))
    assert stats[("sam",)] == (pytest.approx(0.93), 0.0, 1)


def test_best_is_the_test_accuracy_of_each_runs_best_validation_epoch():
    stats = plot.sweep_stats(RUNS, "test_acc", ("method",), at="best")
    assert stats[("sgd",)] == pytest.approx((np.mean([0.88, 0.83]),
                                             np.std([0.88, 0.83], ddof=1), 2))
    # the diverged run's best epoch came before it diverged: early stopping keeps it
    assert stats[("sam",)] == pytest.approx((np.mean([0.93, 0.91]),
                                             np.std([0.93, 0.91], ddof=1), 2))


def test_at_must_be_final_or_best():
    with pytest.raises(ValueError, match="at must be one of 'final', 'best', got 'last'"):
        plot.sweep_stats(RUNS, "test_acc", ("method",), at="last")


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((0.93, 0.01, 3), (0.78, 0.02, 3), (0.15, 7.5)),      # in units of the larger spread
    ((0.78, 0.02, 3), (0.93, 0.01, 3), (-0.15, -7.5)),
    ((0.9, 0.0, 3), (0.8, 0.05, 3), (0.1, 2.0)),
])
def test_gap_is_the_difference_over_the_larger_spread(a, b, expected):
    diff, sigmas = plot.gap(a, b)
    assert diff == pytest.approx(expected[0]) and sigmas == pytest.approx(expected[1])


@pytest.mark.parametrize(("a", "b"), [((0.9, 0.0, 1), (0.8, 0.0, 1)),  # one seed each
                                      ((math.nan, math.nan, 0), (0.8, 0.01, 3))])  # no runs
def test_gap_without_a_spread_to_measure_against_is_nan(a, b):
    assert math.isnan(plot.gap(a, b)[1])
