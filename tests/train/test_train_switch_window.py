"""The switch window (docs/training.md#the-switch-window): with ``switch_log_steps=N`` the
switch to SAM gets a ``kind="switch_step"`` record (k = 0, distance 0), and so does each of
the first N steps after it, with the mini-batch loss, the optimizer's statistics and the
distance ``‖w − w_switch‖`` from the weights at the switch; λ_max every K steps of it.

A run stopped or killed inside the window and resumed writes exactly the records of the
uninterrupted run: ``w_switch`` rides in the checkpoint while the window is open, and the
records past the checkpoint are dropped on resume.
"""

from __future__ import annotations

import math

import pytest
import torch
from train_tools import StopAfterEpochs, StopAtStep, digits_config, steps_per_epoch
from train_truth import assert_identical, load_weights_only, read_jsonl, without_wall_time

from samlab.train import Callback, Trainer

SWITCH, N, EVERY = 1, 50, 10
STEPS = 39  # the digits' 1,257 training images in batches of 32
S = SWITCH * STEPS  # optimizer steps done at the switch


def window_config(runs_dir, name: str = "W", **overrides):
    # log_every=1: a step record (and on_step) every step; sharpness_every=1: λ_max at the
    # end of every epoch, so also at w_switch (the end of epoch 0).
    fields = dict(switch_epoch=SWITCH, switch_log_steps=N, switch_log_sharpness_every=EVERY,
                  sharpness_every=1, sharpness_subset=64, log_every=1)
    return digits_config(runs_dir, name, **{**fields, **overrides})


class WeightsAfterEachStep(Callback):
    """The model's parameters after every step (and before the first), by global step."""

    def __init__(self):
        self.weights: dict[int, list[torch.Tensor]] = {}

    def on_train_begin(self, trainer):
        self.weights[0] = [p.detach().clone() for p in trainer.model.parameters()]

    def on_step(self, trainer, record):
        self.weights[record["step"]] = [p.detach().clone() for p in trainer.model.parameters()]


class Killed(Exception):
    """A crash: the process dies at once, after a record and before the next checkpoint."""


class KillAtWindowStep(Callback):
    def __init__(self, k: int):
        self.k = k

    def on_switch_step(self, trainer, record):
        if record["k"] == self.k:
            raise Killed(f"killed at k={self.k}")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run: its records, its final checkpoint, its weights at every step."""
    config = window_config(tmp_path_factory.mktemp("straight"))
    assert steps_per_epoch(config) == STEPS
    spy = WeightsAfterEachStep()
    assert Trainer(config, callbacks=[spy], progress=False).fit().status == "completed"
    records = read_jsonl(config.run_dir / "metrics.jsonl")
    return records, load_weights_only(config.run_dir / "checkpoint.pt"), spy.weights


def window(records):
    return [r for r in records if r["kind"] == "switch_step"]


def test_the_window_has_a_record_at_the_switch_and_one_for_each_of_its_n_steps(straight):
    records = window(straight[0])
    assert len(records) == N + 1
    assert [r["k"] for r in records] == list(range(N + 1))
    assert [r["step"] for r in records] == list(range(S, S + N + 1))
    assert [r["epoch"] for r in records] == [SWITCH] + [(s - 1) // STEPS
                                                       for s in range(S + 1, S + N + 1)]
    assert records[0]["distance"] == 0.0 and "loss" not in records[0]


def test_distance_is_one_global_norm_from_the_weights_at_the_switch(straight):
    records, _, weights = straight
    w_switch = [w.double() for w in weights[S]]
    for r in window(records):
        w = [t.double() for t in weights[r["step"]]]
        by_hand = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(w, w_switch)))
        assert r["distance"] == pytest.approx(by_hand, rel=1e-5, abs=1e-7), r["k"]
    assert window(records)[-1]["distance"] > 0.1  # the weights did move


def test_loss_and_statistics_are_the_steps_own(straight):
    records = straight[0]
    steps = {r["step"]: r for r in records if r["kind"] == "step"}
    for r in window(records)[1:]:
        s = steps[r["step"]]
        for key in ("loss", "lr", "grad_norm", "ascent_grad_norm", "gamma", "eps_norm"):
            assert r[key] == s[key], (r["k"], key)
    assert all(r["gamma"] > 0 for r in window(records)[1:])  # SAM steps, all of them


def test_lambda_max_is_measured_at_the_switch_and_every_k_steps(straight):
    records = straight[0]
    measured = [r["k"] for r in window(records) if "lambda_max" in r]
    assert measured == list(range(0, N + 1, EVERY))
    # Step 0 is w_switch, the weights the SGD phase ended with: its epoch record's λ_max.
    epoch0 = next(r for r in records if r["kind"] == "epoch" and r["epoch"] == SWITCH - 1)
    at_switch = window(records)[0]
    assert at_switch["lambda_max"] == epoch0["lambda_max"]
    assert at_switch["eigenvalues"] == epoch0["eigenvalues"]


def test_logging_the_window_changes_nothing_the_run_computes(straight, tmp_path):
    config = window_config(tmp_path, switch_log_steps=0, switch_log_sharpness_every=0)
    Trainer(config, progress=False).fit()
    final = load_weights_only(config.run_dir / "checkpoint.pt")
    assert_identical(final["model"], straight[1]["model"], "model")
    assert_identical(final["optimizer"], straight[1]["optimizer"], "optimizer")
    others = [r for r in straight[0] if r["kind"] != "switch_step"]
    assert without_wall_time(read_jsonl(config.run_dir / "metrics.jsonl")) == \
        without_wall_time(others)


def test_the_finished_run_keeps_no_copy_of_the_weights_at_the_switch(straight):
    assert straight[1]["w_switch"] is None


def assert_resumes_to_the_straight_run(config, straight):
    records_a, final_a, _ = straight
    assert Trainer(config, resume=True, progress=False).fit().status == "completed"
    final_b = load_weights_only(config.run_dir / "checkpoint.pt")
    assert_identical(final_b["model"], final_a["model"], "model")
    assert_identical(final_b["optimizer"], final_a["optimizer"], "optimizer")
    records_b = read_jsonl(config.run_dir / "metrics.jsonl")
    assert without_wall_time(window(records_b)) == without_wall_time(window(records_a))
    assert without_wall_time(records_b) == without_wall_time(records_a)


def test_a_run_stopped_inside_the_window_resumes_to_the_same_records(straight, tmp_path):
    # Asked at step 5 of epoch 1 (k = 5), honoured at the next check: k = 25.
    config = window_config(tmp_path)
    result = Trainer(config, callbacks=[StopAtStep(S + 5)], progress=False).fit()
    assert result.status == "interrupted"
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (SWITCH, 25)
    assert_identical(list(saved["w_switch"].values()), straight[2][S], "w_switch")
    assert [r["k"] for r in window(read_jsonl(config.run_dir / "metrics.jsonl"))] == \
        list(range(26))
    assert_resumes_to_the_straight_run(config, straight)


@pytest.mark.parametrize("k", [0, 30], ids=["at the switch", "mid-window"])
def test_a_run_killed_inside_the_window_drops_the_records_past_its_checkpoint(
        straight, tmp_path, k):
    # The last checkpoint is the end of epoch 0, S steps in: every window record, step 0
    # included (written after that checkpoint), belongs to a timeline that is gone.
    config = window_config(tmp_path)
    with pytest.raises(Killed):
        Trainer(config, callbacks=[KillAtWindowStep(k)], progress=False).fit()
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"], saved["w_switch"]) == (SWITCH, 0, None)
    assert [r["k"] for r in window(read_jsonl(config.run_dir / "metrics.jsonl"))] == \
        list(range(k + 1))
    assert_resumes_to_the_straight_run(config, straight)


def test_a_window_across_an_epoch_end_survives_a_stop_there_and_a_kill_after_it(
        straight, tmp_path):
    config = window_config(tmp_path)
    Trainer(config, callbacks=[StopAfterEpochs(SWITCH + 1)], progress=False).fit()
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (SWITCH + 1, 0)  # k = 39: still open
    assert_identical(list(saved["w_switch"].values()), straight[2][S], "w_switch")
    with pytest.raises(Killed):
        Trainer(config, resume=True, callbacks=[KillAtWindowStep(45)], progress=False).fit()
    assert_resumes_to_the_straight_run(config, straight)


def test_a_switch_at_the_last_epoch_boundary_logs_nothing(tmp_path):
    # switch_epoch == epochs: the run never switches, so the window never opens.
    config = window_config(tmp_path, switch_epoch=3, sharpness_every=0)
    Trainer(config, progress=False).fit()
    assert window(read_jsonl(config.run_dir / "metrics.jsonl")) == []
