"""A training step never reads a tensor on the host (no device-to-host synchronization).

On a GPU every ``.item()``, ``float(t)`` or ``if t:`` waits for the device to finish all
queued work; the trainer keeps its sums on the device and looks at them every
``CHECK_EVERY`` steps only. Here, on the CPU, every way of reading a tensor's value into
Python is patched to count, and a trainer's step must not call any of them. On a CUDA
machine the same steps also run under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from train_tools import digits_config

from samlab.train import Trainer
from samlab.train.metrics import EpochSums

HOST_READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


class HostReads:
    """Counts calls of the tensor methods that copy a value to the host."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)

            def counting(self_, *args, _name=name, _original=original, **kwargs):
                self.calls.append(_name)
                return _original(self_, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counting)


@pytest.mark.parametrize("overrides", [
    dict(method="sgd"), dict(method="sam"), dict(method="ssam"), dict(method="asam"),
    dict(method="sam", switch_epoch=1),  # epoch 0 is the plain phase: NaN ascent statistics
], ids=["sgd", "sam", "ssam", "asam", "late-phase-plain"])
def test_a_training_step_reads_no_tensor_on_the_host(tmp_path, monkeypatch, overrides):
    config = digits_config(tmp_path, model="small_cnn", n_train=128, **overrides)
    trainer = Trainer(config, progress=False)
    trainer.optimizer.set_epoch(0)
    batches = list(itertools.islice(iter(trainer.train_loader), 3))
    sums = EpochSums.zeros(trainer.device)

    reads = HostReads(monkeypatch)
    for x, y in batches:
        trainer.train_step(x, y, sums)
    assert reads.calls == []

    float(sums.loss)  # the patch does see a host read: the assertion above can fail
    assert reads.calls == ["__float__"]
    monkeypatch.undo()
    trainer.close()
    # The sums are right: three batches' losses and every step's statistics.
    assert sums.seen == sum(len(y) for _, y in batches)
    assert float(sums.counts["grad_norm"]) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_training_step_on_cuda_does_not_synchronize(tmp_path):
    config = digits_config(tmp_path, model="small_cnn", n_train=128, device="cuda")
    trainer = Trainer(config, progress=False)
    trainer.optimizer.set_epoch(0)
    batches = list(itertools.islice(iter(trainer.train_loader), 3))
    sums = EpochSums.zeros(trainer.device)
    trainer.train_step(*batches[0], sums)  # warm-up: lazy initializations may sync once
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in batches[1:]:
            trainer.train_step(x, y, sums)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        trainer.close()
