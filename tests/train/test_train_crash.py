"""A kill -9 at any moment loses nothing: fault injection at every file operation of a run.

A short run (2 epochs) is traced once to list every file operation it makes on its run
directory (strace ``-P`` on each of the directory's paths). Then, for each of them, a
fresh trainer is killed with SIGKILL right before that operation (strace's
``inject=<syscall>:signal=SIGKILL:when=<n>``), and the run is finished by resuming it (or
starting it again, if no checkpoint had been written). Every time, every epoch's record
must be in metrics.jsonl exactly once, no temporary file may be left, and the final
weights must equal an uninterrupted run's, bit for bit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from train_tools import digits_config
from train_truth import assert_identical, load_weights_only

from samlab.train import Trainer
from samlab.train.rundir import CHECKPOINT, CONFIG, LOCK, METRICS, RunDir

STRACE = shutil.which("strace")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(STRACE is None, reason="strace not installed (.ci/run does)")]

#: The system calls that change a run directory, or open, lock or close its files.
SYSCALLS = ("mkdir", "openat", "flock", "ftruncate", "pwrite64", "fchmod", "write", "fsync",
            "close", "rename", "unlink")
EPOCHS = 2
HERE = Path(__file__).resolve().parent


def run_paths(run_dir: Path) -> list[str]:
    """Every path a run directory can hold: its files and their temporary twins."""
    names = [CONFIG, METRICS, CHECKPOINT, LOCK]
    return [str(run_dir), *(str(run_dir / n) for n in names),
            *(str(run_dir / f".{n}.tmp") for n in (CONFIG, METRICS, CHECKPOINT))]


class Zygote:
    """``crash_zygote.py``: forks a trainer per request, so none pays torch's import."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        self.proc = subprocess.Popen([sys.executable, str(HERE / "crash_zygote.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)

    def train_under_strace(self, config, strace_args: list[str], fifo: Path) -> dict:
        """Fork a trainer for ``config``, attach strace to it, let it run, report its end."""
        os.mkfifo(fifo)
        self.proc.stdin.write(json.dumps({"fifo": str(fifo), "config": config.to_dict()}) + "\n")
        self.proc.stdin.flush()
        pid = json.loads(self.proc.stdout.readline())["pid"]
        paths = [a for p in run_paths(config.run_dir) for a in ("-P", p)]
        strace = subprocess.Popen([STRACE, "-f", "-p", str(pid), *paths,
                                   "-e", f"trace={','.join(SYSCALLS)}", *strace_args],
                                  stderr=subprocess.PIPE, text=True)
        attached = strace.stderr.readline()  # "strace: Process <pid> attached"
        assert "attached" in attached, attached
        with open(fifo, "w") as go:
            go.write("go")
        report = json.loads(self.proc.stdout.readline())
        strace.communicate(timeout=60)
        return report

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    config = digits_config(tmp_path_factory.mktemp("straight"), "R", epochs=EPOCHS, n_train=64)
    Trainer(config, progress=False).fit()
    return load_weights_only(config.run_dir / CHECKPOINT)


@pytest.fixture(scope="module")
def file_operations(zygote, tmp_path_factory):
    """``[(syscall, n)]``: the n-th call of each syscall on the run directory, in order."""
    tmp = tmp_path_factory.mktemp("trace")
    config = digits_config(tmp / "runs", "R", epochs=EPOCHS, n_train=64)
    log = tmp / "strace.log"
    report = zygote.train_under_strace(config, ["-o", str(log)], tmp / "go")
    assert report["code"] == 0, report
    seen: Counter = Counter()
    operations = []
    for line in log.read_text().splitlines():
        call = re.match(r"(?:\[pid +\d+\] |\d+ +)?(\w+)\(", line)
        if call and call.group(1) in SYSCALLS:
            seen[call.group(1)] += 1
            operations.append((call.group(1), seen[call.group(1)]))
    assert {"openat", "write", "fsync", "rename"} <= set(seen), seen
    return operations


def test_no_record_is_lost_and_every_resume_ends_at_the_uninterrupted_weights(
        zygote, file_operations, uninterrupted, tmp_path):
    lost, outcomes = [], Counter()
    for k, (syscall, n) in enumerate(file_operations):
        config = digits_config(tmp_path / f"kill{k}", "R", epochs=EPOCHS, n_train=64)
        report = zygote.train_under_strace(
            config, ["-o", os.devnull, "-e", f"inject={syscall}:signal=SIGKILL:when={n}"],
            tmp_path / f"go{k}")
        assert report["signal"] == 9, f"not killed before {syscall} #{n}: {report}"
        rundir = RunDir.of(config)
        resumed = rundir.checkpoint_file.exists()
        outcomes["resumed" if resumed else "started again"] += 1
        Trainer(config, resume=resumed, progress=False).fit()

        epochs = [r["epoch"] for r in rundir.records() if r["kind"] == "epoch"]
        if epochs != list(range(EPOCHS)):
            lost.append((syscall, n, epochs))
        leftovers = [p.name for p in config.run_dir.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == [], f"killed before {syscall} #{n}: {leftovers} left behind"
        assert_identical(load_weights_only(rundir.checkpoint_file)["model"],
                         uninterrupted["model"])
    print(f"\n{len(file_operations)} kills at every file operation ({outcomes}); "
          f"records lost or repeated: {len(lost)}")
    assert lost == []
    assert len(file_operations) >= 40  # config, records and checkpoints of both epochs
