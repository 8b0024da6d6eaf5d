"""A damaged line of metrics.jsonl is reported, never silently dropped with what follows
it (issue 21): RunDir.records, resume, the watcher and the plot all name the line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from train_tools import StopAfterEpochs, digits_config

from samlab.plot import plot_run
from samlab.train import Trainer
from samlab.train.rundir import DamagedRecords, RecordTail, RunDir
from samlab.widgets.dashboard import LiveDashboard


def write_records(path, n: int, damaged: dict[int, bytes] | None = None, tail: bytes = b""):
    lines = [json.dumps({"kind": "step", "step": i}).encode() for i in range(n)]
    for number, text in (damaged or {}).items():
        lines[number - 1] = text
    path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)


@pytest.fixture
def run_dir(tmp_path):
    """A run of 3 epochs stopped after 2: resumable."""
    config = digits_config(tmp_path, name="damaged", epochs=3)
    Trainer(config, callbacks=[StopAfterEpochs(2)], progress=False, report=False).fit()
    return config.run_dir


@pytest.mark.parametrize("bad", [b'{"kind": "st', b"", b"\xff\xfe", b"[1, 2]", b"null"])
def test_a_damaged_line_in_the_middle_is_named_with_what_follows_it(tmp_path, bad):
    path = tmp_path / "metrics.jsonl"
    (tmp_path / "config.json").write_text("{}")
    write_records(path, 3000, {6: bad})
    before = path.read_bytes()
    with pytest.raises(DamagedRecords) as err:
        RunDir(tmp_path).records()
    message = str(err.value)
    assert f"{path}, line 6, before 2994 more" in message
    assert f"sed -i '6d' {path}" in message and "Nothing was dropped" in message
    assert path.read_bytes() == before


def test_a_torn_last_line_from_a_kill_is_ignored(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    write_records(tmp_path / "metrics.jsonl", 5, tail=b'{"kind": "ep')
    assert [r["step"] for r in RunDir(tmp_path).records()] == [0, 1, 2, 3, 4]


def test_resume_over_a_damaged_record_stops_in_one_line_and_keeps_every_record(run_dir):
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_bytes().split(b"\n")
    lines[0] = lines[0][:-5]  # the first epoch's record, damaged
    metrics.write_bytes(b"\n".join(lines))
    before = metrics.read_bytes()
    done = subprocess.run([sys.executable, "-m", "samlab", "train", "--resume", str(run_dir),
                           "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{metrics}, line 1" in done.stderr and "sed -i '1d'" in done.stderr
    assert metrics.read_bytes() == before  # nothing rewritten, nothing dropped


def test_the_watcher_and_the_plot_name_the_damaged_line(run_dir):
    metrics = run_dir / "metrics.jsonl"
    good = metrics.read_bytes()
    metrics.write_bytes(b"not json\n" + good)
    first = r"metrics.jsonl, line 1(, before \d+ more)?: b'not json' is not a record"
    with pytest.raises(DamagedRecords, match=first):
        plot_run([run_dir])
    with pytest.raises(DamagedRecords, match=first):
        LiveDashboard.watch(run_dir)
    tail = RecordTail(metrics)
    metrics.write_bytes(good)
    lines = good.count(b"\n")
    assert len(tail.read()[0]) == lines
    with metrics.open("ab") as f:  # damage appended later, as a watcher meets it
        f.write(b"{oops}\n")
    with pytest.raises(DamagedRecords, match=rf"line {lines + 1}: b'{{oops}}'"):
        tail.read()
