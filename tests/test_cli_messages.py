"""The command line's remaining rough edges (issue 21 §3): each a line that says what to do."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from samlab.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-epoch run: runs/r."""
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--name", "r", "--dataset", "digits", "--model", "mlp", "--epochs",
                 "1", "--runs-dir", str(runs), "--no-progress"]) == 0
    return runs / "r"


def samlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "samlab", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_one_epoch_is_one_epoch(run):
    done = samlab("train", "--resume", str(run), "--no-progress")
    assert done.returncode == 0 and "samlab: completed 1 epoch\n" in done.stdout


def test_resume_dot_from_inside_the_run_directory_is_that_run(run):
    done = samlab("train", "--resume", ".", "--no-progress", cwd=run)
    assert done.returncode == 0, done.stderr
    assert "completed 1 epoch" in done.stdout


@pytest.mark.parametrize("out, says", [
    ("nodir/x.png", "--out {tmp}/nodir/x.png: there is no folder {tmp}/nodir to write it into"),
    ("x.xyz", "--out must end in an image format matplotlib writes ("),
])
def test_plot_refuses_an_out_it_cannot_write_in_one_line(run, tmp_path, out, says):
    done = samlab("plot", str(run), "--out", str(tmp_path / out))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert says.format(tmp=tmp_path) in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_help_states_each_default_once():
    done = samlab("train", "--help")
    text = " ".join(done.stdout.split())
    assert done.returncode == 0 and text.count("(default:") >= 10
    assert not re.search(r"\(default: [^)]*\) \(default:", text)


def test_resume_of_a_directory_that_does_not_exist_says_so(tmp_path):
    done = samlab("train", "--resume", str(tmp_path / "nope"), "--no-progress")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"--resume {tmp_path / 'nope'}: there is no run directory there" in done.stderr


def test_a_message_of_several_lines_is_printed_as_one(tmp_path, monkeypatch, capsys):
    """CIFAR-10's offline message has a line of its own for the way out."""
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):  # no network in tests: the download fails here at once
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("SAMLAB_DATA", str(tmp_path / "data"))
    status = main(["train", "--name", "x", "--dataset", "cifar10", "--model", "small_cnn",
                   "--runs-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "could not download CIFAR-10" in err and "Offline?" in err
