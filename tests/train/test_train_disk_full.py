"""A full disk or a file-size limit (errno 28, 27) while a run writes: one line naming the
file and the way on, nothing lost, and the resumed run equals an uninterrupted one
(issue 21 §2). The limit is RLIMIT_FSIZE on the trainer's process (Python ignores
SIGXFSZ, so an oversized write fails with EFBIG as a full disk fails with ENOSPC)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from train_truth import (
    assert_identical,
    epoch_records,
    load_weights_only,
    read_jsonl,
    without_wall_time,
)

CHECKPOINT_BYTES = 48_457  # this MLP's checkpoint; metrics.jsonl grows ~4.3 kB an epoch


def train(runs_dir, *extra, limit=None, name="r"):
    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [sys.executable, "-m", "samlab", "train", "--name", name, "--dataset", "digits",
            "--model", "mlp", "--batch-size", "64", "--lr", "0.05", "--log-every", "1",
            "--runs-dir", str(runs_dir), "--no-progress", *extra]
    return subprocess.run(args, preexec_fn=cap if limit else None, capture_output=True,
                          text=True)


def test_a_limit_hit_mid_run_names_the_file_and_the_resumed_run_is_the_uninterrupted_one(
        tmp_path):
    assert train(tmp_path / "straight", "--epochs", "20").returncode == 0
    run = tmp_path / "capped" / "r"
    # Checkpoints fit; metrics.jsonl outgrows the limit after about 14 epochs.
    capped = train(tmp_path / "capped", "--epochs", "20", limit=CHECKPOINT_BYTES + 12_000)
    assert capped.returncode == 1, capped.stderr
    assert capped.stderr.count("\n") == 1 and "Traceback" not in capped.stderr
    assert (f"samlab train: error: File too large while writing {run / 'metrics.jsonl'}; what "
            "was written before it stands") in capped.stderr
    assert capped.stderr.endswith(f"then resume: samlab train --resume {run}\n")
    *whole, torn = (run / "metrics.jsonl").read_text().split("\n")  # a short last write
    kept = epoch_records([json.loads(line) for line in whole])
    assert 5 < len(kept) < 20  # it stopped mid-run, with the epochs before it on disk
    resumed = subprocess.run([sys.executable, "-m", "samlab", "train", "--resume", str(run),
                              "--no-progress"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight" / "r"
    assert without_wall_time(read_jsonl(run / "metrics.jsonl")) == \
        without_wall_time(read_jsonl(straight / "metrics.jsonl"))
    assert_identical(load_weights_only(run / "checkpoint.pt")["model"],
                     load_weights_only(straight / "checkpoint.pt")["model"])


def test_a_limit_hit_by_the_first_checkpoint_says_to_run_the_command_again(tmp_path):
    capped = train(tmp_path, "--epochs", "2", limit=CHECKPOINT_BYTES // 2)
    assert capped.returncode == 1 and capped.stderr.count("\n") == 1, capped.stderr
    assert f"File too large while writing {tmp_path / 'r' / 'checkpoint.pt'}" in capped.stderr
    assert "then run the same command again (no checkpoint was saved yet)" in capped.stderr
    assert not list((tmp_path / "r").glob(".*.tmp"))  # no half-written file left behind
    again = train(tmp_path, "--epochs", "2")
    assert again.returncode == 0, again.stderr
