"""Resume continues exactly as the uninterrupted run (bit for bit on CPU).

Run A trains E = 3 epochs straight. Run B, with the same config, is stopped (between
epochs, in the middle of an epoch, or by a real SIGINT) and resumed with
``Trainer(config, resume=True).fit()``. Its final checkpoint (weights, optimizer and
scheduler state, RNG) and every metrics record except the wall-time fields equal A's.

Two methods: SAM, and late-phase SAM (plain SGD for epoch 0, SAM from epoch 1, with the
momentum reset at the switch), whose switch must survive the resume: a resumed optimizer
that forgot it had switched would reset the momentum a second time.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from train_tools import (
    SigintAtStep,
    StopAfterEpochs,
    StopAtStep,
    digits_config,
    steps_per_epoch,
)
from train_truth import assert_identical, load_weights_only, read_jsonl, without_wall_time

from samlab.train import Callback, Trainer
from samlab.train import trainer as trainer_module

METHODS = {
    "sam": dict(method="sam"),
    "late-phase sam": dict(method="sam", switch_epoch=1, reset_on_switch=True),
}
EPOCHS = 3
STEPS = 39  # the digits' 1,257 training images in batches of 32
CHECK_EVERY = trainer_module.CHECK_EVERY


def config_for(method: str, runs_dir, name: str):
    # log_every=1: a step record (and an on_step call) every step, resumed exactly too.
    return digits_config(runs_dir, name, epochs=EPOCHS, log_every=1, sharpness_every=2,
                         sharpness_subset=64, **METHODS[method])


@pytest.fixture(scope="module", params=list(METHODS))
def straight(request, tmp_path_factory):
    """Run A: the uninterrupted run, its final checkpoint and its records."""
    runs = tmp_path_factory.mktemp("straight")
    config = config_for(request.param, runs, "A")
    assert steps_per_epoch(config) == STEPS
    result = Trainer(config, progress=False).fit()
    assert result.status == "completed"
    return request.param, load_weights_only(config.run_dir / "checkpoint.pt"), \
        read_jsonl(config.run_dir / "metrics.jsonl")


def assert_resumed_run_equals_straight_run(config, straight):
    """Resume ``config``'s run to the end; then everything equals run A's."""
    _, final_a, records_a = straight
    result = Trainer(config, resume=True, progress=False).fit()
    assert result.status == "completed", result.message

    final_b = load_weights_only(config.run_dir / "checkpoint.pt")
    final_b["config"]["runs_dir"] = final_a["config"]["runs_dir"]
    final_b["config"]["name"] = final_a["config"]["name"]
    assert_identical(final_b["model"], final_a["model"], "model")
    assert_identical(final_b["optimizer"], final_a["optimizer"], "optimizer")
    assert_identical(final_b, final_a, "checkpoint")
    records_b = read_jsonl(config.run_dir / "metrics.jsonl")
    assert len(records_b) == len(records_a) == EPOCHS * (STEPS + 1)
    assert without_wall_time(records_b) == without_wall_time(records_a)


def test_a_run_stopped_between_epochs_resumes_to_the_same_result(straight, tmp_path):
    config = config_for(straight[0], tmp_path, "B")
    result = Trainer(config, callbacks=[StopAfterEpochs(2)], progress=False).fit()

    assert result.status == "interrupted" and result.epochs_done == 2
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (2, 0)
    assert_resumed_run_equals_straight_run(config, straight)


def test_a_run_stopped_mid_epoch_resumes_to_the_same_result(straight, tmp_path):
    # The stop is asked for at step 5 of epoch 1 and honoured at the next check (step 25).
    config = config_for(straight[0], tmp_path, "B")
    result = Trainer(config, callbacks=[StopAtStep(STEPS + 5)], progress=False).fit()

    assert result.status == "interrupted" and result.epochs_done == 1
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (1, CHECK_EVERY)
    steps = [r["step"] for r in read_jsonl(config.run_dir / "metrics.jsonl")
             if r["kind"] == "step"]
    assert steps[-1] == STEPS + CHECK_EVERY
    assert_resumed_run_equals_straight_run(config, straight)


def test_a_real_sigint_stops_with_a_checkpoint_and_resumes_to_the_same_result(
        straight, tmp_path, sigint_guard):
    config = config_for(straight[0], tmp_path, "B")
    result = Trainer(config, callbacks=[SigintAtStep(2 * STEPS + 3)], progress=False).fit()

    assert sigint_guard.caught == 0, "the SIGINT reached the test, not the trainer"
    assert signal.getsignal(signal.SIGINT) is sigint_guard, "the trainer kept its handler"
    assert result.status == "interrupted" and result.epochs_done == 2
    assert "resume" in result.message
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (2, CHECK_EVERY)
    assert_resumed_run_equals_straight_run(config, straight)


def test_a_stop_takes_effect_at_the_next_check(straight, tmp_path, monkeypatch):
    # With a check every 4 steps, a stop asked at step 6 of epoch 0 saves at step 8.
    monkeypatch.setattr(trainer_module, "CHECK_EVERY", 4)
    config = config_for(straight[0], tmp_path, "B")
    result = Trainer(config, callbacks=[StopAtStep(6)], progress=False).fit()

    assert result.status == "interrupted" and result.epochs_done == 0
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (0, 8)
    assert_resumed_run_equals_straight_run(config, straight)


def test_a_run_stopped_twice_still_resumes_to_the_same_result(straight, tmp_path):
    config = config_for(straight[0], tmp_path, "B")
    Trainer(config, callbacks=[StopAtStep(10)], progress=False).fit()
    result = Trainer(config, resume=True, callbacks=[StopAtStep(STEPS + 30)],
                     progress=False).fit()
    assert result.status == "interrupted"
    assert_resumed_run_equals_straight_run(config, straight)


def test_resuming_with_a_different_config_is_refused_naming_the_difference(tmp_path):
    config = config_for("sam", tmp_path, "B")
    Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False).fit()
    changed = config_for("sam", tmp_path, "B")
    changed.rho = 0.1
    with pytest.raises(ValueError, match=r"rho: saved 0\.05, now 0\.1"):
        Trainer(changed, resume=True, progress=False)


def test_a_fresh_run_refuses_to_overwrite_a_run_directory_with_a_checkpoint(tmp_path):
    config = config_for("sam", tmp_path, "B")
    Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False).fit()
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(config, progress=False)


def test_resuming_without_a_checkpoint_says_there_is_nothing_to_resume(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(config_for("sam", tmp_path, "never-ran"), resume=True, progress=False)


def test_a_run_directory_copied_elsewhere_resumes_there(straight, tmp_path):
    # runs_dir may differ between save and resume (a copied or moved run).
    config = config_for(straight[0], tmp_path / "first", "B")
    Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False).fit()
    shutil.copytree(tmp_path / "first", tmp_path / "moved")
    moved = config_for(straight[0], tmp_path / "moved", "B")
    assert_resumed_run_equals_straight_run(moved, straight)


class SigintTwice(Callback):
    """Ctrl-C at global step ``step`` and again at the next step (before the next check)."""

    def __init__(self, step: int):
        self.step = step

    def on_step(self, trainer, record):
        if record["step"] in (self.step, self.step + 1):
            os.kill(os.getpid(), signal.SIGINT)


def test_a_second_ctrl_c_aborts_at_once_and_the_last_checkpoint_still_resumes_exactly(
        straight, tmp_path, sigint_guard):
    config = config_for(straight[0], tmp_path, "B")
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, callbacks=[SigintTwice(STEPS + 3)], progress=False).fit()

    assert sigint_guard.caught == 0
    assert signal.getsignal(signal.SIGINT) is sigint_guard, "the trainer kept its handler"
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (1, 0)  # as the first epoch left it
    # metrics.jsonl holds step records past the checkpoint; the resume drops them.
    assert_resumed_run_equals_straight_run(config, straight)


def test_a_stop_asked_after_the_last_epoch_leaves_a_completed_run(tmp_path):
    # All epochs are done: nothing is left to resume, so the run is complete, not interrupted.
    config = config_for("sam", tmp_path, "B")
    result = Trainer(config, callbacks=[StopAfterEpochs(EPOCHS)], progress=False).fit()
    assert result.epochs_done == EPOCHS
    assert result.status == "completed", result.message
