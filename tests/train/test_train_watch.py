"""``LiveDashboard.watch``: a notebook follows a run that another process trains.

The runs followed are real: a short digits run trained here, its metrics.jsonl then
replayed line by line (torn lines included) into another directory; and ``python -m
samlab train`` in a subprocess. What the watcher's figure should show is what a
:class:`LiveDashboard` shows for the same records, and those records are read here from
the file with ``json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_tools import digits_config
from train_truth import epoch_records, read_jsonl

from samlab.plot import run_label
from samlab.train import Trainer
from samlab.train.rundir import RunDir
from samlab.widgets.dashboard import LiveDashboard, RunWatcher

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sam_run(tmp_path_factory):
    """A finished 3-epoch SAM run with a step record every 5 steps: its config and its
    metrics.jsonl as raw lines (6 step records and 3 epoch records, interleaved)."""
    config = digits_config(tmp_path_factory.mktemp("runs"), "sam", epochs=3, n_train=320,
                           log_every=5)
    assert Trainer(config, progress=False).fit().status == "completed"
    return config, (config.run_dir / "metrics.jsonl").read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def diverged_run(tmp_path_factory):
    config = digits_config(tmp_path_factory.mktemp("runs"), "blowup", method="sgd", lr=1e6,
                           epochs=2)
    assert Trainer(config, progress=False).fit().status == "diverged"
    return config, (config.run_dir / "metrics.jsonl").read_bytes().splitlines(keepends=True)


def curves(figure) -> list[tuple]:
    return [(t.name, t.yaxis, list(t.x), list(t.y)) for t in figure.data]


def assert_shows(watcher: RunWatcher, records: list[dict]) -> None:
    """The watcher holds exactly ``records`` and draws them as a live dashboard would."""
    assert watcher.dashboard.records == records
    expected = LiveDashboard()
    expected.config = watcher.dashboard.config  # the run's config: its stability edges
    expected.update(records)
    assert curves(watcher.figure) == curves(expected.figure)


def start_copy(source_config, run_dir: Path) -> Path:
    """What a trainer writes first: the directory and its lock, config.json, an empty
    metrics.jsonl. This process plays the trainer: the lock names it."""
    run_dir.mkdir()
    (run_dir / ".lock").write_text(f"{os.getpid()}\n")
    shutil.copy(source_config.run_dir / "config.json", run_dir / "config.json")
    (run_dir / "metrics.jsonl").write_bytes(b"")
    return run_dir / "metrics.jsonl"


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_each_poll_draws_exactly_the_whole_records_written_so_far(tmp_path, sam_run):
    config, lines = sam_run
    watcher = LiveDashboard.watch(tmp_path / "copy")
    assert watcher.task is None and watcher.status == "waiting"  # no event loop: poll()
    metrics = start_copy(config, tmp_path / "copy")
    watcher.poll()
    assert_shows(watcher, [])
    assert watcher.status == "running" and watcher.figure.layout.title.text == run_label(config)

    written = []
    for i, line in enumerate(lines):
        # A torn line: half of it, or all of it but its newline (valid JSON already).
        cut = len(line) - 1 if i % 2 else len(line) // 2
        append(metrics, line[:cut])
        assert not watcher.poll()
        assert_shows(watcher, written)
        append(metrics, line[cut:])
        written.append(json.loads(line))
        assert watcher.poll()
        assert_shows(watcher, written)
        assert watcher.status == ("completed" if i == len(lines) - 1 else "running")

    # The curves are the file's numbers: one point per epoch, one per step record.
    train_loss = next(t for t in watcher.figure.data if t.yaxis == "y" and t.name == "train")
    assert list(train_loss.x) == [1, 2, 3]
    assert list(train_loss.y) == [r["train_loss"] for r in epoch_records(written)]
    per_step = next(t for t in watcher.figure.data if t.yaxis == "y" and t.name == "per step")
    assert list(per_step.y) == [r["loss"] for r in written if r["kind"] == "step"]
    assert not watcher.poll()  # finished: nothing more is read


def test_a_resume_that_rewrites_metrics_jsonl_is_redrawn_from_scratch(tmp_path, sam_run):
    # Records 0-6 end with a step record of epoch 2; resume drops it (atomic rewrite, a new
    # file) and the run goes on. The new file is longer than what was read of the old one,
    # so only its being another file tells the watcher to start over.
    config, lines = sam_run
    records = [json.loads(line) for line in lines]
    assert [(r["kind"], r["epoch"]) for r in records[5:]] == \
        [("epoch", 1), ("step", 2), ("step", 2), ("epoch", 2)]
    metrics = start_copy(config, tmp_path / "copy")
    append(metrics, b"".join(lines[:7]))
    watcher = LiveDashboard.watch(tmp_path / "copy")
    assert_shows(watcher, records[:7])
    size_read = metrics.stat().st_size

    RunDir(tmp_path / "copy").keep_records(lambda r: r["epoch"] < 2)
    append(metrics, b"".join(lines[7:]))
    assert metrics.stat().st_size > size_read
    assert watcher.poll()
    assert_shows(watcher, [*records[:6], *records[7:]])
    assert watcher.status == "completed"


def test_a_file_cut_shorter_in_place_is_redrawn_from_scratch(tmp_path, sam_run):
    config, lines = sam_run
    records = [json.loads(line) for line in lines]
    metrics = start_copy(config, tmp_path / "copy")
    append(metrics, b"".join(lines[:7]))
    watcher = LiveDashboard.watch(tmp_path / "copy")
    inode = metrics.stat().st_ino

    os.truncate(metrics, len(b"".join(lines[:4])))
    assert metrics.stat().st_ino == inode
    assert watcher.poll()
    assert_shows(watcher, records[:4])
    append(metrics, b"".join(lines[4:]))
    assert watcher.poll()
    assert_shows(watcher, records)


def test_a_run_directory_that_does_not_exist_yet_is_waited_for(tmp_path, sam_run):
    config, lines = sam_run
    run_dir = tmp_path / "later"
    watcher = LiveDashboard.watch(run_dir)
    assert watcher.status == "waiting" and not watcher.poll()
    lock = RunDir(run_dir).acquire()  # a trainer starting: the directory and its lock only
    try:
        assert not watcher.poll() and watcher.status == "waiting"
        shutil.copy(config.run_dir / "config.json", run_dir / "config.json")
        assert not watcher.poll() and watcher.status == "running"  # no metrics.jsonl yet
        (run_dir / "metrics.jsonl").write_bytes(b"".join(lines))
        assert watcher.poll()
    finally:
        lock.release()
    assert_shows(watcher, [json.loads(line) for line in lines])
    assert watcher.status == "completed"


def test_a_path_that_is_not_a_run_directory_is_a_value_error_naming_it(tmp_path, sam_run):
    config, _ = sam_run
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("")
    with pytest.raises(ValueError, match=re.escape(f"{notes} is not a samlab run directory")):
        LiveDashboard.watch(notes)
    with pytest.raises(ValueError, match=re.escape(f"{notes / 'todo.txt'} is not a samlab "
                                                   "run directory: it is a file")):
        LiveDashboard.watch(notes / "todo.txt")
    # runs/ instead of runs/<name>: the error names a run to watch.
    with pytest.raises(ValueError, match=re.escape(f"e.g. {config.run_dir}")):
        LiveDashboard.watch(config.run_dir.parent)
    # A path waited for that turns out to be something else.
    watcher = LiveDashboard.watch(tmp_path / "soon")
    (tmp_path / "soon").mkdir()
    (tmp_path / "soon" / "data.csv").write_text("")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'soon'} is not a samlab run")):
        watcher.poll()


def test_a_diverged_record_ends_the_watch(tmp_path, diverged_run):
    config, lines = diverged_run
    metrics = start_copy(config, tmp_path / "copy")
    watcher = LiveDashboard.watch(tmp_path / "copy")
    assert watcher.status == "running"
    append(metrics, b"".join(lines))
    assert watcher.poll() and watcher.status == "diverged"
    assert watcher.figure.layout.title.text.endswith("diverged")


@pytest.mark.parametrize("every, until", [(0, None), (float("nan"), None), (True, None),
                                          (1.0, -1.0)])
def test_every_and_until_must_be_positive_seconds(tmp_path, every, until):
    with pytest.raises(ValueError, match="every" if until is None else "until"):
        LiveDashboard.watch(tmp_path / "run", every=every, until=until)


# -- in an event loop, as in a notebook kernel ---------------------------------------------------


def test_in_an_event_loop_watch_returns_at_once_and_stops_after_until(tmp_path, sam_run):
    config, lines = sam_run
    append(start_copy(config, tmp_path / "copy"), b"".join(lines[:4]))  # a run that stalls

    async def follow():
        start = time.monotonic()
        watcher = LiveDashboard.watch(tmp_path / "copy", every=0.05, until=0.3)
        assert not watcher.task.done()
        status = await asyncio.wait_for(watcher.task, timeout=10)
        return watcher, status, time.monotonic() - start

    watcher, status, elapsed = asyncio.run(follow())
    assert status == "running" and 0.3 <= elapsed < 5
    assert_shows(watcher, [json.loads(line) for line in lines[:4]])


def test_stop_cancels_the_watch(tmp_path, sam_run):
    config, _ = sam_run
    start_copy(config, tmp_path / "copy")

    async def follow():
        watcher = LiveDashboard.watch(tmp_path / "copy", every=0.05)
        await asyncio.sleep(0.2)
        watcher.stop()
        await asyncio.sleep(0)
        return watcher

    assert asyncio.run(follow()).task.cancelled()


def test_the_watcher_follows_a_run_another_process_trains_and_stops_when_it_completes(
        tmp_path):
    run_dir = tmp_path / "W"
    command = [sys.executable, "-m", "samlab", "train", "--name", "W", "--dataset", "digits",
               "--model", "mlp", "--method", "sam", "--epochs", "3", "--batch-size", "64",
               "--log-every", "5", "--runs-dir", str(tmp_path), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    drawn: list[int] = []  # how many records each redraw showed

    async def follow():
        watcher = LiveDashboard.watch(run_dir, every=0.05, until=300)
        assert watcher.status == "waiting"  # the trainer has not started
        update = watcher.dashboard.update
        watcher.dashboard.update = lambda records: (drawn.append(len(records)),
                                                    update(records))
        with open(tmp_path / "stderr.txt", "w") as stderr:
            proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            status = await asyncio.wait_for(watcher.task, timeout=240)
        finally:
            try:
                returncode = proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
        return watcher, status, returncode

    watcher, status, returncode = asyncio.run(follow())
    assert returncode == 0, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert status == "completed" and watcher.task.done()  # by itself, long before `until`
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in epoch_records(records)] == [0, 1, 2]
    assert_shows(watcher, records)
    assert drawn[-1] == len(records) and drawn[0] < len(records)  # it followed the run
    assert drawn == sorted(drawn)


# -- runs that can no longer finish ----------------------------------------------------------


def a_dead_process() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_run_whose_trainer_is_gone_is_stopped_and_says_how_to_resume(tmp_path, sam_run):
    config, lines = sam_run
    metrics = start_copy(config, tmp_path / "copy")
    append(metrics, b"".join(lines[:4]))
    watcher = LiveDashboard.watch(tmp_path / "copy")
    assert watcher.status == "running"
    pid = a_dead_process()
    (tmp_path / "copy" / ".lock").write_text(f"{pid}\n")  # killed: no last record
    assert watcher.poll() and watcher.status == "stopped" and watcher.finished
    assert watcher.why == (f"stopped: its trainer (process {pid}) is gone before the last "
                           f"epoch; resume with samlab train --resume {tmp_path / 'copy'}")
    assert watcher.why in watcher.figure.layout.title.text and not watcher.poll()
    assert_shows(watcher, [json.loads(line) for line in lines[:4]])


def test_a_dead_pid_whose_lock_is_held_is_still_running(tmp_path, sam_run):
    """A trainer on another machine (a shared file system) holds the lock: not stopped."""
    config, _ = sam_run
    start_copy(config, tmp_path / "copy")
    with RunDir(tmp_path / "copy").lock():
        (tmp_path / "copy" / ".lock").write_text(f"{a_dead_process()}\n")
        watcher = LiveDashboard.watch(tmp_path / "copy")
        assert watcher.status == "running"


def test_a_run_directory_deleted_while_watched_is_deleted(tmp_path, sam_run):
    config, lines = sam_run
    append(start_copy(config, tmp_path / "copy"), b"".join(lines[:2]))
    watcher = LiveDashboard.watch(tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy")
    assert watcher.poll() and watcher.status == "deleted"
    assert watcher.why == f"deleted: {tmp_path / 'copy'} no longer exists"


def test_damage_appended_while_watched_ends_the_watch_naming_the_line(tmp_path, sam_run):
    config, lines = sam_run
    metrics = start_copy(config, tmp_path / "copy")
    append(metrics, b"".join(lines[:2]))
    watcher = LiveDashboard.watch(tmp_path / "copy")
    append(metrics, b"garbage\n" + lines[2])
    assert watcher.poll() and watcher.status == "damaged"
    assert "damaged: " in watcher.why and "metrics.jsonl, line 3: b'garbage'" in watcher.why
    assert watcher.why in watcher.figure.layout.title.text
    assert "damaged" in repr(watcher)


def test_in_an_event_loop_a_killed_trainer_ends_the_watch(tmp_path, sam_run):
    config, lines = sam_run
    append(start_copy(config, tmp_path / "copy"), b"".join(lines[:3]))
    (tmp_path / "copy" / ".lock").write_text(f"{a_dead_process()}\n")

    async def follow():
        watcher = LiveDashboard.watch(tmp_path / "copy", every=0.05)  # until=None
        return await asyncio.wait_for(watcher.task, timeout=10)

    assert asyncio.run(follow()) == "stopped"
