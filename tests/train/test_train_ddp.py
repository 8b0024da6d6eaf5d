"""``samlab train`` under torchrun: two gloo processes on CPU share each global batch.

Rank 0 alone writes metrics.jsonl (one line per epoch, not one per rank) and the
checkpoints, and a torchrun resume continues a run. The truth is a one-process run of
the same global batch: for plain SGD on a model without BatchNorm (the MLP), the mean of
the two half-batch gradients that DDP all-reduces is the full-batch gradient, so the
weights agree to float32 rounding.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from localnet import free_port
from train_tools import StopAfterEpochs, digits_config
from train_truth import epoch_records, load_weights_only, read_jsonl

from samlab.train import Trainer

pytestmark = [
    pytest.mark.slow,  # two torchrun launches: about 10 s each on 2 busy cores
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                       reason="torch.distributed with the gloo backend is not available"),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180
FLAGS = ["--dataset", "digits", "--model", "mlp", "--method", "sgd", "--epochs", "2",
         "--batch-size", "64", "--lr", "0.05", "--no-progress"]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def stop_launch(proc: subprocess.Popen) -> None:
    """End a torchrun launch that ran out of time: the launcher and its workers.

    torchrun starts each worker in its own session, so killing the launcher alone would
    leave the workers waiting for a rendezvous that never comes. SIGTERM asks torchrun to
    stop its workers; whatever is left is killed by its process id.
    """
    workers = children(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def torchrun(*args: str) -> None:
    """``python -m torch.distributed.run --nproc_per_node=2 -m samlab train ARGS``."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "samlab", "train", *args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_launch(proc)
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail(f"torchrun did not finish in {TIMEOUT_S} s:\n{stdout[-3000:]}\n"
                    f"{stderr[-3000:]}")
    assert proc.returncode == 0, f"{stdout[-3000:]}\n{stderr[-3000:]}"


def config(runs_dir: Path, name: str):
    return digits_config(runs_dir, name, method="sgd", epochs=2, batch_size=64, lr=0.05)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The same run in one process: final checkpoint and records."""
    cfg = config(tmp_path_factory.mktemp("single"), "single")
    Trainer(cfg, progress=False).fit()
    return load_weights_only(cfg.run_dir / "checkpoint.pt"), \
        read_jsonl(cfg.run_dir / "metrics.jsonl")


def assert_weights_match(ddp_final, single_final):
    assert ddp_final["epoch"] == 2
    for key, w in single_final["model"].items():
        torch.testing.assert_close(ddp_final["model"][key], w, rtol=1e-5, atol=1e-6,
                                   msg=lambda m, key=key: f"{key}: {m}")


def test_a_two_process_run_writes_one_record_per_epoch_and_the_one_process_weights(
        tmp_path, one_process):
    torchrun("--name", "ddp", "--runs-dir", str(tmp_path), *FLAGS)

    run_dir = tmp_path / "ddp"
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [(r["kind"], r["epoch"]) for r in records] == [("epoch", 0), ("epoch", 1)]
    assert_weights_match(load_weights_only(run_dir / "checkpoint.pt"), one_process[0])
    # The metrics are over the global batch and the whole test set, as in one process.
    for ddp, single in zip(records, epoch_records(one_process[1])):
        for key in ("train_loss", "val_loss", "test_loss"):
            assert ddp[key] == pytest.approx(single[key], rel=1e-5)
        for key in ("train_acc", "val_acc", "test_acc"):
            assert ddp[key] == pytest.approx(single[key], abs=1.5 / 360)
    assert sorted(p.name for p in run_dir.iterdir()) == \
        [".lock", "checkpoint.pt", "config.json", "metrics.jsonl"]


def test_torchrun_resumes_an_interrupted_run_to_the_one_process_weights(tmp_path, one_process):
    cfg = config(tmp_path, "resumed")
    Trainer(cfg, callbacks=[StopAfterEpochs(1)], progress=False).fit()
    assert load_weights_only(cfg.run_dir / "checkpoint.pt")["epoch"] == 1

    torchrun("--resume", str(cfg.run_dir), "--no-progress")

    records = read_jsonl(cfg.run_dir / "metrics.jsonl")
    assert [(r["kind"], r["epoch"]) for r in records] == [("epoch", 0), ("epoch", 1)]
    assert_weights_match(load_weights_only(cfg.run_dir / "checkpoint.pt"), one_process[0])
