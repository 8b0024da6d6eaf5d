"""A non-finite loss stops the run: status "diverged", a message that says so and where
the last good checkpoint is, that checkpoint left untouched, and exit status 3 from
``samlab train``."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from train_tools import digits_config
from train_truth import assert_identical, load_weights_only, read_jsonl

from samlab.cli import main
from samlab.train import Callback, Trainer


class HugeLrAfterEpoch(Callback):
    """After epoch ``epoch``, the learning rate becomes 1e8 (scheduler included)."""

    def __init__(self, epoch: int):
        self.epoch, self.weights = epoch, None

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            self.weights = copy.deepcopy(trainer.model.state_dict())
            trainer.scheduler.base_lrs = [1e8 for _ in trainer.scheduler.base_lrs]
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e8


@pytest.mark.parametrize("method", ["sgd", "sam"])
def test_a_huge_learning_rate_ends_the_run_as_diverged(tmp_path, method):
    config = digits_config(tmp_path, method=method, lr=1e6, epochs=2)
    result = Trainer(config, progress=False).fit()

    assert result.status == "diverged" and result.epochs_done == 0
    assert "non-finite" in result.message and "epoch 0" in result.message
    assert result.records == [] and not (config.run_dir / "checkpoint.pt").exists()
    records = read_jsonl(config.run_dir / "metrics.jsonl")
    assert [r["kind"] for r in records] == ["diverged"]  # the outcome, no epoch record
    assert records[0]["message"] == result.message


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    blowup = HugeLrAfterEpoch(0)
    config = digits_config(tmp_path, method="sgd", epochs=3)
    result = Trainer(config, callbacks=[blowup], progress=False).fit()

    assert result.status == "diverged" and result.epochs_done == 1
    assert "non-finite during epoch 1" in result.message
    assert "checkpoint" in result.message and str(config.run_dir / "checkpoint.pt") \
        in result.message
    saved = load_weights_only(config.run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"]) == (1, 0)
    assert_identical(saved["model"], blowup.weights)
    assert all(torch.isfinite(w).all() for w in saved["model"].values())
    records = read_jsonl(config.run_dir / "metrics.jsonl")
    assert [(r["kind"], r["epoch"]) for r in records] == [("epoch", 0), ("diverged", 1)]
    assert math.isfinite(records[0]["train_loss"])


def test_samlab_train_exits_3_when_the_loss_diverges(tmp_path, capsys):
    status = main(["train", "--name", "boom", "--dataset", "digits", "--model", "mlp",
                   "--epochs", "2", "--batch-size", "32", "--lr", "1e6",
                   "--runs-dir", str(tmp_path)])
    assert status == 3
    assert "non-finite" in capsys.readouterr().out
