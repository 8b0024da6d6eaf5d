"""Checkpoints: one after every epoch, loadable with ``weights_only=True``, and written
atomically: a write that fails halfway leaves the previous checkpoint as it was and no
temporary file behind."""

from __future__ import annotations

import os

import pytest
import torch
from train_tools import digits_config
from train_truth import assert_identical, load_weights_only

from samlab.train import Callback, Trainer
from samlab.train.rundir import RunDir


class CheckpointAfterEachEpoch(Callback):
    """Reads checkpoint.pt as a user would, right after each epoch's record is out."""

    def __init__(self):
        self.seen: list[tuple[int, dict, dict]] = []

    def on_epoch_end(self, trainer, record):
        state = load_weights_only(trainer.run_dir / "checkpoint.pt")
        live = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        self.seen.append((record["epoch"], state, live))


def test_a_checkpoint_of_the_current_weights_is_written_after_every_epoch(tmp_path):
    spy = CheckpointAfterEachEpoch()
    config = digits_config(tmp_path, epochs=3, n_train=320)
    Trainer(config, callbacks=[spy], progress=False).fit()

    assert [epoch for epoch, _, _ in spy.seen] == [0, 1, 2]
    for epoch, state, live in spy.seen:
        assert state["epoch"] == epoch + 1 and state["batch"] == 0  # next: epoch + 1, step 0
        assert_identical(state["model"], live)
        assert {"model", "optimizer", "scheduler", "config"} <= state.keys()


class FailingWrite:
    """Stands in for torch.save: writes part of a file, then fails like a full disk."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def __call__(self, obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise self.exc


def replace_fails(src, dst):
    raise OSError("simulated failure of os.replace")


def temporary_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("failure", ["torch.save raises OSError", "torch.save interrupted",
                                     "os.replace raises"])
def test_a_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(
        tmp_path, monkeypatch, failure):
    path = tmp_path / "checkpoint.pt"
    before = {"epoch": 1, "weights": torch.arange(6.0)}
    RunDir(tmp_path).save_checkpoint(before)
    good_bytes = path.read_bytes()

    if failure == "torch.save raises OSError":
        monkeypatch.setattr(torch, "save", FailingWrite(OSError("No space left on device")))
        expected = OSError
    elif failure == "torch.save interrupted":
        monkeypatch.setattr(torch, "save", FailingWrite(KeyboardInterrupt()))
        expected = KeyboardInterrupt
    else:
        monkeypatch.setattr(os, "replace", replace_fails)
        expected = OSError
    with pytest.raises(expected):
        RunDir(tmp_path).save_checkpoint({"epoch": 2, "weights": torch.zeros(6)})
    monkeypatch.undo()

    assert path.read_bytes() == good_bytes
    assert_identical(load_weights_only(path), before)
    assert temporary_files(tmp_path) == []


class BreakTorchSaveAfterEpoch(Callback):
    """From the end of epoch ``epoch`` on, every torch.save writes half a file and fails."""

    def __init__(self, epoch: int, monkeypatch):
        self.epoch, self.monkeypatch = epoch, monkeypatch
        self.checkpoint_bytes = b""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            self.checkpoint_bytes = (trainer.run_dir / "checkpoint.pt").read_bytes()
            self.monkeypatch.setattr(torch, "save", FailingWrite(OSError("disk full")))


def test_a_run_whose_checkpoint_write_fails_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    breaker = BreakTorchSaveAfterEpoch(0, monkeypatch)
    config = digits_config(tmp_path, epochs=3, n_train=320)
    with pytest.raises(OSError, match="disk full"):
        Trainer(config, callbacks=[breaker], progress=False).fit()
    monkeypatch.undo()

    run_dir = config.run_dir
    assert (run_dir / "checkpoint.pt").read_bytes() == breaker.checkpoint_bytes
    assert load_weights_only(run_dir / "checkpoint.pt")["epoch"] == 1
    assert temporary_files(run_dir) == []


def test_the_config_file_is_written_atomically_too(tmp_path, monkeypatch):
    config = digits_config(tmp_path)
    config.save(tmp_path / "config.json")
    good = (tmp_path / "config.json").read_text()
    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OSError):
        digits_config(tmp_path, "other", lr=0.3).save(tmp_path / "config.json")
    monkeypatch.undo()
    assert (tmp_path / "config.json").read_text() == good
    assert temporary_files(tmp_path) == []


def test_a_torn_last_metrics_line_is_ignored_when_reading(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 0}\n{"kind": "ep')
    assert RunDir(tmp_path).records() == [{"kind": "epoch", "epoch": 0}]
