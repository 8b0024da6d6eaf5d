"""A run directory has one owner: one trainer at a time, names that stay inside runs/,
results reused only for the config that made them, damaged files named as such."""

from __future__ import annotations

import dataclasses
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from train_tools import digits_config
from train_truth import epoch_records, read_jsonl

from samlab.cli import main
from samlab.train import Trainer
from samlab.train.rundir import RunDir, RunInUse
from samlab.train.sweep import sweep

FLAGS = ["--dataset", "digits", "--model", "mlp", "--method", "sam", "--epochs", "2",
         "--n-train", "64", "--batch-size", "32", "--no-progress"]


def samlab_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samlab", "train", *args], capture_output=True,
                          text=True, timeout=300)


# -- one trainer per run directory ------------------------------------------------------------


def test_a_second_trainer_on_a_run_in_use_exits_2_naming_the_process(tmp_path):
    config = digits_config(tmp_path, "same", epochs=2, n_train=64)
    first = Trainer(config, progress=False)  # holds runs/same until fit() returns
    second = samlab_train("--name", "same", "--runs-dir", str(tmp_path), *FLAGS)
    assert second.returncode == 2
    assert second.stderr.strip() == (f"samlab train: error: {config.run_dir} is in use by "
                                     f"process {os.getpid()}")
    first.fit()
    assert [r["epoch"] for r in epoch_records(read_jsonl(config.run_dir / "metrics.jsonl"))] \
        == [0, 1]


def test_a_second_resume_of_one_run_is_refused_while_the_first_runs(tmp_path):
    config = digits_config(tmp_path, "R", epochs=3, n_train=64)
    from train_tools import StopAfterEpochs

    Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False).fit()
    first = Trainer(config, resume=True, progress=False)
    with pytest.raises(RunInUse, match=f"in use by process {os.getpid()}"):
        Trainer(config, resume=True, progress=False)
    second = samlab_train("--resume", str(config.run_dir), "--no-progress")
    assert second.returncode == 2 and "is in use by process" in second.stderr
    first.fit()
    assert [r["epoch"] for r in epoch_records(read_jsonl(config.run_dir / "metrics.jsonl"))] \
        == [0, 1, 2]


def test_the_lock_of_a_killed_trainer_does_not_block(tmp_path):
    run_dir = tmp_path / "R"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from samlab.train.rundir import RunDir
        lock = RunDir({str(run_dir)!r}).acquire()
        print("locked", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunInUse, match=f"process {holder.pid}"):
        RunDir(run_dir).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    Trainer(digits_config(tmp_path, "R", epochs=1, n_train=64), progress=False).fit()


# -- names stay inside runs/ --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "", "/tmp/elsewhere", "a/b", "x" * 300])
def test_a_name_that_leaves_runs_dir_is_refused_in_one_line(tmp_path, capsys, name):
    finished = tmp_path / "finished.txt"
    finished.write_text("a finished run's file\n")
    status = main(["train", "--name", name, "--runs-dir", str(tmp_path / "runs"), *FLAGS])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("samlab train: error: name must be a directory name"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finished.txt"]


# -- a cached run is reused only for the same config -----------------------------------------------


def test_a_sweep_rerun_with_a_changed_base_config_trains_new_runs(tmp_path):
    base = digits_config(tmp_path, "sw", epochs=1, n_train=64)
    first = sweep(base, {"seed": [0]}, progress=False)
    again = sweep(base, {"seed": [0]}, progress=False)
    assert again[0].run_dir == first[0].run_dir and again[0].records == first[0].records

    changed = dataclasses.replace(base, rho=3.0, lr=0.5)
    fresh = sweep(changed, {"seed": [0]}, progress=False)
    assert fresh[0].run_dir != first[0].run_dir
    assert (fresh[0].config.rho, fresh[0].config.lr) == (3.0, 0.5)
    assert fresh[0].last["train_loss"] != first[0].last["train_loss"]
    assert RunDir(first[0].run_dir).read_config().rho == 0.05  # the old run is left as it was


def test_samlab_train_refuses_a_name_that_holds_a_run_of_another_config(tmp_path, capsys):
    args = ["train", "--name", "R", "--runs-dir", str(tmp_path), *FLAGS]
    assert main(args) == 0
    status = main([*args, "--rho", "0.5", "--lr", "0.2"])
    err = capsys.readouterr().err
    assert status == 2
    assert "already holds a run with another config" in err
    assert "rho: saved 0.05, now 0.5" in err and "lr: saved" in err


# -- damaged files ------------------------------------------------------------------------------


@pytest.fixture
def stopped_run(tmp_path):
    from train_tools import StopAfterEpochs

    config = digits_config(tmp_path, "R", epochs=3, n_train=64)
    Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False).fit()
    return config


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_reported_naming_the_file_and_the_way_out(
        stopped_run, capsys, damage):
    path = stopped_run.run_dir / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 9,
                      "empty": b""}[damage])
    status = main(["train", "--resume", str(stopped_run.run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert f"{path} is corrupt or truncated" in err and "start the run again" in err


def test_a_damaged_config_json_is_reported_naming_the_file(stopped_run, capsys):
    path = stopped_run.run_dir / "config.json"
    path.write_text(path.read_text()[:40])
    status = main(["train", "--resume", str(stopped_run.run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and f"{path} is corrupt" in err and "start it again" in err


def test_resume_removes_what_a_killed_write_left_behind(stopped_run):
    leftover = stopped_run.run_dir / ".checkpoint.pt.tmp"
    leftover.write_bytes(b"half a checkpoint")
    Trainer(stopped_run, resume=True, progress=False).fit()
    assert not leftover.exists()


def test_every_file_of_a_run_gets_the_same_permissions(tmp_path):
    config = digits_config(tmp_path, "R", epochs=1, n_train=64)
    Trainer(config, progress=False).fit()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in config.run_dir.iterdir()}
    umask = os.umask(0)
    os.umask(umask)
    assert modes == dict.fromkeys(modes, 0o666 & ~umask), modes


# -- SIGTERM is a request to stop ------------------------------------------------------------------


def test_sigterm_checkpoints_says_how_to_resume_and_exits_143(tmp_path):
    args = ["--name", "T", "--runs-dir", str(tmp_path), "--dataset", "digits", "--model",
            "mlp", "--epochs", "200", "--batch-size", "32", "--no-progress", "--log-every", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "samlab", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "T" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") > 3):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    assert f"samlab train --resume {tmp_path / 'T'}" in out and "SIGTERM" in out
    saved = torch.load(tmp_path / "T" / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] < 200


def test_best_is_the_epoch_of_highest_validation_accuracy_and_its_own_test_accuracy(tmp_path):
    (run,) = sweep(digits_config(tmp_path, epochs=4, label_noise=0.4), {"seed": [0]})
    epochs = epoch_records(run.records)
    top = max(r["val_acc"] for r in epochs)
    first_top = next(r for r in epochs if r["val_acc"] == top)  # ties: the earliest epoch
    assert run.best() == first_top and run.best()["test_acc"] == first_top["test_acc"]
    assert run.best("train_loss") == max(epochs, key=lambda r: r["train_loss"])
    assert run.best("no_such_metric") == {}


def test_a_run_that_fails_to_start_leaves_no_directory_of_a_lone_lock(tmp_path):
    config = digits_config(tmp_path, name="failed", n_val=1437)  # no image left to train on
    with pytest.raises(ValueError, match="n_val must be smaller than the 1437"):
        Trainer(config, progress=False, report=False)
    assert not (tmp_path / "failed").exists()
    # A directory that was there before is left as it was, lock and all.
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError):
        Trainer(config, progress=False, report=False)
    assert (tmp_path / "failed" / "notes.txt").read_text() == "mine"


def test_epochs_done_maps_the_weights_instead_of_reading_them(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    # 64 MB of weights beside one integer: only the integer is wanted.
    run.save_checkpoint({"epoch": 7, "model": {"w": torch.zeros(16 * 2**20)}})
    loads = []
    real_load = torch.load

    def spy(*args, **kwargs):
        loads.append(kwargs.get("mmap"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert run.epochs_done() == 7
    assert loads == [True]
