"""An experiment's arms: arm_configs names and changes them, plot.arms_summary and
plot.arms_table set them against a baseline, by hand-computed statistics on made-up runs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from samlab import plot
from samlab.train import TrainConfig, arm_configs
from samlab.train.rundir import RunResult

BASE = TrainConfig(name="exp", dataset="digits", model="mlp", method="sam", rho=0.5, epochs=4)


def test_each_arm_is_the_base_with_its_changes_named_after_it():
    configs = arm_configs(BASE, {"SAM throughout": {}, "switch at E/2": {"switch_epoch": 2},
                                 "never (SGD)": {"method": "sgd"}})
    assert {n: c.name for n, c in configs.items()} == {
        "SAM throughout": "exp-sam-throughout", "switch at E/2": "exp-switch-at-e-2",
        "never (SGD)": "exp-never-sgd"}
    assert configs["switch at E/2"].switch_epoch == 2 and configs["switch at E/2"].rho == 0.5
    assert configs["never (SGD)"].method == "sgd"
    assert configs["SAM throughout"].to_dict() == {**BASE.to_dict(), "name": "exp-sam-throughout"}


def test_arms_whose_names_collide_or_name_no_directory_are_refused():
    with pytest.raises(ValueError, match="arms must have names that differ"):
        arm_configs(BASE, {"late SAM": {}, "late-SAM": {"rho": 0.1}})
    with pytest.raises(ValueError, match="arm 'ρ → ∞' needs an ASCII letter or digit"):
        arm_configs(BASE, {"ρ → ∞": {"rho": 9.0}})
    assert arm_configs(BASE, {"λ small, ρ = 0.1": {}})["λ small, ρ = 0.1"].name == (
        "exp-small-0-1")


def test_an_arm_that_changes_what_is_no_config_field_is_refused_naming_it():
    with pytest.raises(ValueError, match="arm 'typo' changes rh0: an arm may change any "
                                         "TrainConfig field but name and runs_dir"):
        arm_configs(BASE, {"typo": {"rh0": 0.1}})


def test_sweep_from_samlab_train_is_the_function_whatever_was_imported_first():
    import samlab.train.sweep  # noqa: F401  (the module of the same name, loaded)
    from samlab.train import sweep

    assert callable(sweep) and sweep.__name__ == "sweep"


def run(method, seed, test, lam, steps=10, sam=False, seconds=1.0):
    """A finished run of two epochs whose last epoch had this accuracy and λ_max."""
    config = TrainConfig(name="r", dataset="digits", model="mlp", method=method, seed=seed)
    records = [{"kind": "epoch", "epoch": e, "step": steps * (e + 1), "sam_active": sam,
                "train_time": seconds / 2, "test_acc": test, "lambda_max": lam}
               for e in range(2)]
    return RunResult("completed", 2, Path("."), records=records, config=config)


ARMS = {"SGD": [run("sgd", 0, 0.70, 8.0), run("sgd", 1, 0.74, 10.0)],
        "SAM": [run("sam", 0, 0.90, 2.0, sam=True, seconds=1.9),
                run("sam", 1, 0.92, 2.0, sam=True, seconds=2.1)],
        "late": [run("sam", 0, 0.80, 5.0, steps=10, seconds=1.2),
                 run("sam", 1, 0.82, 6.0, steps=10, seconds=1.2)]}


def test_the_summary_is_the_statistics_and_shares_computed_by_hand():
    rows = plot.arms_summary(ARMS, baseline="SGD", target="SAM")
    sgd, sam, late = 0.72, 0.91, 0.81
    assert rows["late"]["stats"]["test_acc"] == pytest.approx(
        (late, np.std([0.80, 0.82], ddof=1), 2))
    spread = max(np.std([0.80, 0.82], ddof=1), np.std([0.70, 0.74], ddof=1))
    assert rows["late"]["sigmas"] == pytest.approx((late - sgd) / spread)
    assert rows["late"]["share"]["test_acc"] == pytest.approx((late - sgd) / (sam - sgd))
    assert rows["late"]["share"]["lambda_max"] == pytest.approx((5.5 - 9.0) / (2.0 - 9.0))
    assert rows["SAM"]["share"] == pytest.approx({"test_acc": 1.0, "lambda_max": 1.0})
    assert rows["SGD"]["share"] == pytest.approx({"test_acc": 0.0, "lambda_max": 0.0})
    assert rows["SAM"]["passes"] == 2.0 and rows["late"]["passes"] == 1.0
    assert rows["SAM"]["time"] == pytest.approx(2.0) and rows["late"]["time"] == 1.2


def test_one_seed_has_no_spread_to_measure_a_gap_against():
    rows = plot.arms_summary({k: v[:1] for k, v in ARMS.items()}, baseline="SGD")
    assert math.isnan(rows["SAM"]["sigmas"]) and "share" not in rows["SAM"]


def test_the_table_prints_a_row_per_arm_with_what_its_columns_mean():
    text = plot.arms_table(ARMS, baseline="SGD", target="SAM")
    title, head, *rows = text.splitlines()
    rows, notes = rows[:3], rows[3:]
    assert title == "final epoch, 2 seed(s) per arm, mean ± std"
    assert notes[1] == "share: (arm − SGD) / (SAM − SGD)"
    assert head.split() == ["arm", "test", "acc", "σ", "share", "λ_max", "share", "passes",
                            "time"]
    assert [r.split()[0] for r in rows] == ["SGD", "SAM", "late"]
    assert rows[2].split() == ["late", "0.810", "±", "0.014", "+3.2", "47%", "5.50", "±",
                               "0.71", "50%", "1.000", "1.20"]
    single = plot.arms_table({k: v[:1] for k, v in ARMS.items()}, baseline="SGD")
    assert "±" not in single and "σ" not in single
    assert rows[0].split()[5] == "0%"  # SGD's share of the flattening: no "-0%"
    assert "0.7200 ± 0.0283" in plot.arms_table(ARMS, baseline="SGD", decimals={"test_acc": 4})


def test_arms_of_different_seed_counts_say_so():
    mixed = {"SGD": ARMS["SGD"], "SAM": ARMS["SAM"][:1]}
    assert plot.arms_table(mixed, baseline="SGD").splitlines()[0] == (
        "final epoch, 1–2 seed(s) per arm, mean ± std")


def test_a_ratio_with_nothing_to_divide_by_is_nan_not_an_error():
    idle = [run("sgd", 0, 0.7, 8.0, steps=0, seconds=0.0)]
    rows = plot.arms_summary({"SGD": idle, "SAM": ARMS["SAM"]}, baseline="SGD")
    assert math.isnan(rows["SAM"]["passes"]) and math.isnan(rows["SAM"]["time"])


def test_an_arm_without_runs_or_a_target_that_is_the_baseline_is_refused():
    with pytest.raises(ValueError, match="arm 'SAM' has no runs"):
        plot.arms_table({"SGD": ARMS["SGD"], "SAM": []}, baseline="SGD")
    with pytest.raises(ValueError, match="target must be another arm than the baseline, "
                                         "got 'SGD' for both"):
        plot.arms_table(ARMS, baseline="SGD", target="SGD")


@pytest.mark.parametrize("name", ["baseline", "target"])
def test_a_baseline_or_target_that_is_no_arm_is_named(name):
    with pytest.raises(ValueError, match="must name an arm \\(SGD, SAM, late\\), got 'sgd'"):
        plot.arms_table(ARMS, **{"baseline": "SGD", name: "sgd"})


class Line:
    """What plot.interpolation reads of a landscape.LinePath."""

    def __init__(self, losses, accuracies):
        self.alphas = np.array([-0.5, 0.0, 0.5, 1.0, 1.5])
        self.losses, self.accuracies = np.array(losses), np.array(accuracies)


def test_the_interpolation_figure_draws_each_lines_losses_and_accuracies():
    lines = {"a → b": Line([3, 1, 2, 1.5, 4], [0.2, 0.9, 0.5, 0.8, 0.1]),
             "a → c": Line([2, 1, 1.1, 1.2, 2], [0.4, 0.9, 0.9, 0.9, 0.5])}
    fig = plot.interpolation(lines, ylabel="training loss (64 images)",
                             accuracy_label="training accuracy (64 images)")
    loss_ax, acc_ax = fig.axes
    drawn = [ln for ln in loss_ax.get_lines() if ln.get_label() in lines]
    assert [ln.get_label() for ln in drawn] == list(lines)
    np.testing.assert_array_equal(drawn[1].get_ydata(), lines["a → c"].losses)
    acc = [ln for ln in acc_ax.get_lines() if ln.get_label() == "a → b"][0]
    np.testing.assert_array_equal(acc.get_ydata(), lines["a → b"].accuracies)
    assert loss_ax.get_yscale() == "log" and acc_ax.get_ylabel() == "training accuracy (64 images)"
    assert len(plot.interpolation(lines, accuracy=False).axes) == 1


def test_after_switch_draws_the_switch_records_and_names_a_run_without_them():
    records = [{"kind": "epoch", "epoch": 0},
               {"kind": "switch_step", "k": 0, "distance": 0.0, "loss": 1.0, "lambda_max": 5.0},
               *({"kind": "switch_step", "k": k, "distance": 0.01 * k, "loss": 1.0 - 0.1 * k,
                  **({"lambda_max": 5.0 - k} if k % 2 == 0 else {})} for k in range(1, 5))]
    config = TrainConfig(name="late", dataset="digits", model="mlp", method="sam")
    fig = plot.after_switch(RunResult("completed", 1, Path("."), records=records, config=config))
    distance, loss, lam = (ax.get_lines()[0] for ax in fig.axes)
    assert list(distance.get_xdata()) == [1, 2, 3, 4]
    assert list(distance.get_ydata()) == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert list(loss.get_ydata()) == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert list(lam.get_xdata()) == [0, 2, 4] and list(lam.get_ydata()) == [5.0, 3.0, 1.0]
    assert fig.axes[2].get_ylabel() == "λ_max (eval mode)"
    train_mode = dataclasses.replace(config, sharpness_bn_mode="train")
    fig = plot.after_switch(RunResult("completed", 1, Path("."), records=records,
                                      config=train_mode))
    assert fig.axes[2].get_ylabel() == "λ_max (train mode)"
    with pytest.raises(ValueError, match="run 'late' has no switch_step records"):
        plot.after_switch(RunResult("completed", 1, Path("."), records=records[:1],
                                    config=config))
