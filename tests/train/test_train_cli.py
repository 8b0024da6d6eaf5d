"""``samlab train`` and ``samlab plot``: a run from the command line, resume, exit statuses
(0 completed, 2 bad arguments, 3 diverged, 130 interrupted) and the plot file.

One test starts a real ``python -m samlab`` process; the others call ``samlab.cli.main``
(what ``python -m samlab`` runs) in this process, which is seconds faster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from train_tools import StopAfterEpochs, digits_config
from train_truth import assert_identical, epoch_records, load_weights_only, read_jsonl

import samlab.train
from samlab.cli import main
from samlab.train import Callback, TrainConfig, Trainer

REPO_ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--dataset", "digits", "--model", "mlp", "--method", "sam", "--epochs", "2",
         "--batch-size", "64", "--lr", "0.05"]


def test_python_m_samlab_train_writes_a_complete_run(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "samlab", "train", "--name", "X", *FLAGS,
         "--runs-dir", str(tmp_path), "--no-progress"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)

    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "X"
    config = TrainConfig.load(run_dir / "config.json")
    assert (config.name, config.dataset, config.model, config.method, config.epochs,
            config.batch_size, config.lr, config.runs_dir) == \
        ("X", "digits", "mlp", "sam", 2, 64, 0.05, str(tmp_path))
    assert [r["epoch"] for r in epoch_records(read_jsonl(run_dir / "metrics.jsonl"))] == [0, 1]
    assert load_weights_only(run_dir / "checkpoint.pt")["epoch"] == 2


def interrupted_run(runs_dir: Path, name: str = "X") -> Path:
    """The run FLAGS describe, stopped after its first epoch (resumable)."""
    config = digits_config(runs_dir, name, method="sam", epochs=2, batch_size=64, lr=0.05)
    assert Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False).fit().status \
        == "interrupted"
    return config.run_dir


@pytest.fixture(scope="module")
def straight_final(tmp_path_factory):
    """The final checkpoint of the same run trained without a stop."""
    config = digits_config(tmp_path_factory.mktemp("straight"), "X", method="sam", epochs=2,
                           batch_size=64, lr=0.05)
    Trainer(config, progress=False).fit()
    return load_weights_only(config.run_dir / "checkpoint.pt")


def assert_finished_like_the_straight_run(run_dir: Path, straight_final):
    final = load_weights_only(run_dir / "checkpoint.pt")
    assert final["epoch"] == 2
    assert_identical(final["model"], straight_final["model"], "model")
    assert_identical(final["optimizer"], straight_final["optimizer"], "optimizer")
    assert [r["epoch"] for r in epoch_records(read_jsonl(run_dir / "metrics.jsonl"))] == [0, 1]


def test_resume_continues_an_interrupted_run_to_the_uninterrupted_result(tmp_path,
                                                                         straight_final):
    run_dir = interrupted_run(tmp_path)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert_finished_like_the_straight_run(run_dir, straight_final)


def test_the_same_command_line_with_resume_added_continues_the_run(tmp_path, straight_final,
                                                                   capsys):
    # What a user types after Ctrl-C: the command again, plus --resume runs/X.
    run_dir = interrupted_run(tmp_path)
    status = main(["train", "--name", "X", *FLAGS, "--runs-dir", str(tmp_path),
                   "--no-progress", "--resume", str(run_dir)])
    assert status == 0, capsys.readouterr().err
    assert_finished_like_the_straight_run(run_dir, straight_final)


class SigintAfterFirstEpoch(Callback):
    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 0:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_samlab_train_exits_130_with_a_resumable_checkpoint(
        tmp_path, monkeypatch, capsys, sigint_guard):
    class TrainerWithCtrlC(Trainer):
        def __init__(self, config, **kwargs):
            super().__init__(config, callbacks=[SigintAfterFirstEpoch()], **kwargs)

    monkeypatch.setattr(samlab.train, "Trainer", TrainerWithCtrlC)
    status = main(["train", "--name", "X", *FLAGS, "--runs-dir", str(tmp_path)])
    out = capsys.readouterr().out

    assert sigint_guard.caught == 0
    assert status == 130
    assert f"--resume {tmp_path / 'X'}" in out
    assert load_weights_only(tmp_path / "X" / "checkpoint.pt")["epoch"] == 1


@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], "lr must be a finite number > 0, got -1.0"),
    (["--method", "adam"],
     "method must be one of 'sgd', 'gd', 'sam', 'usam', 'ssam', 'asam', 'rsam', got 'adam'"),
    (["--method", "sgd", "--switch-epoch", "1"], "switch_epoch needs a SAM-family method"),
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
])
def test_a_bad_flag_value_exits_2_with_the_validation_message(tmp_path, capsys, flags, message):
    status = main(["train", "--name", "bad", "--dataset", "digits", "--model", "mlp",
                   "--runs-dir", str(tmp_path), "--no-progress", *flags])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_flag_value_of_the_wrong_type_exits_2_with_argparses_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", "two", "--runs-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--epochs: invalid int value: 'two'" in capsys.readouterr().err


def test_resuming_what_is_not_a_run_exits_2(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing"), "--no-progress"]) == 2
    assert "samlab train:" in capsys.readouterr().err


def test_resuming_with_a_changed_flag_exits_2_naming_it(tmp_path, capsys):
    run_dir = interrupted_run(tmp_path)
    assert main(["train", "--resume", str(run_dir), "--epochs", "5", "--no-progress"]) == 2
    assert "epochs: saved 2, now 5" in capsys.readouterr().err


def test_a_diverging_run_says_why_even_without_progress_bars(tmp_path, capsys):
    status = main(["train", "--name", "boom", "--dataset", "digits", "--model", "mlp",
                   "--lr", "1e6", "--runs-dir", str(tmp_path), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 3
    assert "non-finite" in captured.out + captured.err


def test_samlab_plot_writes_a_png(tmp_path, capsys):
    run_dir = interrupted_run(tmp_path)
    out = tmp_path / "f.png"
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_samlab_plot_of_a_folder_without_a_run_exits_2(tmp_path, capsys):
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "f.png")]) == 2
    assert "samlab plot:" in capsys.readouterr().err


@pytest.mark.parametrize("changes", [
    {},
    {"name": "r20-late", "method": "sam", "rho": 0.05, "switch_epoch": 175, "seed": 2},
    {"schedule": "step", "step_epochs": [80, 160], "nesterov": True, "augment": False,
     "n_train": 512, "device": "cuda:1", "runs_dir": "runs/05 paper"},
])
def test_train_command_parses_back_to_the_same_config(changes):
    import dataclasses
    import shlex

    from samlab.cli import build_parser, train_command
    from samlab.train import TrainConfig

    config = TrainConfig(**changes)
    words = shlex.split(train_command(config))
    assert words[:2] == ["samlab", "train"]
    args = build_parser().parse_args(words[1:])
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    parsed = TrainConfig.from_dict({k: getattr(args, k) for k in names
                                    if getattr(args, k) is not None})
    assert parsed == config
    torchrun = shlex.split(train_command(config, nproc=4))
    assert torchrun[:5] == ["torchrun", "--nproc_per_node=4", "-m", "samlab", "train"]
    assert torchrun[5:] == words[2:]


def test_label_noise_from_the_command_line_is_in_the_config_and_every_record(tmp_path):
    assert main(["train", "--name", "noisy", *FLAGS, "--epochs", "1", "--label-noise", "0.4",
                 "--label-noise-seed", "3", "--runs-dir", str(tmp_path), "--no-progress"]) == 0
    config = TrainConfig.load(tmp_path / "noisy" / "config.json")
    assert (config.label_noise, config.label_noise_seed) == (0.4, 3)
    records = epoch_records(read_jsonl(tmp_path / "noisy" / "metrics.jsonl"))
    assert records and all(r["dataset"].endswith(", 40% of training labels noisy (seed 3)")
                           for r in records)
