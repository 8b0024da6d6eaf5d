"""What the trainer measures: per-step sums kept on the device, evaluation, sharpness.

Nothing here synchronizes with the host per training step: :class:`EpochSums` adds
each step's loss, accuracy and optimizer statistics into device tensors, and the host
reads them when the trainer looks (every ``CHECK_EVERY`` steps, and once per epoch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageData, fixed_subset, to_tensor
from .config import TrainConfig


@dataclass
class EpochSums:
    """Running sums of one epoch, on the device.

    ``stats[k]`` sums optimizer statistic ``k`` (``grad_norm``, ``gamma``, ...) over the
    steps where it was measured, ``counts[k]`` counts them: in the plain phase of late-phase
    switching the ascent statistics are NaN, which is no measurement, so they are not
    counted. ``grad_norm`` is counted at every step (a non-finite one is news).
    """

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        z = torch.zeros((), dtype=torch.float64, device=device)
        return cls(z.clone(), z.clone())

    def add_step(self, loss: torch.Tensor, correct: torch.Tensor, n: int,
                 stats: dict[str, torch.Tensor]) -> None:
        """One step's mean ``loss`` over ``n`` examples, its ``correct`` count, its stats."""
        self.loss += loss.detach().double() * n
        self.correct += correct
        self.seen += n
        device = self.loss.device
        for k, v in stats.items():
            if k == "rho":
                continue
            v = v.detach().to(device, torch.float64)
            if k not in self.stats:
                self.stats[k] = torch.zeros((), dtype=torch.float64, device=device)
                self.counts[k] = torch.zeros((), dtype=torch.float64, device=device)
            if k == "grad_norm":
                self.stats[k] += v
                self.counts[k] += 1
            else:
                measured = torch.isfinite(v)
                self.stats[k] += torch.where(measured, v, 0.0)
                self.counts[k] += measured

    def mean_loss(self) -> float:
        """The epoch's mean training loss so far (one host sync)."""
        return float(self.loss) / max(self.seen, 1)

    def stat_means(self) -> dict[str, float]:
        """``{"<k>_mean": mean}`` of every statistic measured at least once."""
        out = {}
        for k, total in self.stats.items():
            count = float(self.counts[k])
            if count:
                out[f"{k}_mean"] = float(total) / count
        return out

    def state(self) -> dict[str, Any]:
        return {"loss": self.loss.cpu(), "correct": self.correct.cpu(), "seen": self.seen,
                "stats": {k: v.cpu() for k, v in self.stats.items()},
                "counts": {k: v.cpu() for k, v in self.counts.items()}}

    @classmethod
    def from_state(cls, s: dict[str, Any], device: torch.device) -> EpochSums:
        def on(v):
            return torch.as_tensor(v, dtype=torch.float64).to(device)

        return cls(on(s["loss"]), on(s["correct"]), int(s["seen"]),
                   {k: on(v) for k, v in s["stats"].items()},
                   {k: on(v) for k, v in s["counts"].items()})


def all_reduce_sum(values: Iterable[torch.Tensor | float], device: torch.device,
                   world_size: int) -> list[float]:
    """``values`` summed over every process (as they are on one process)."""
    packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device)
                          for v in values])
    if world_size > 1:
        torch.distributed.all_reduce(packed)
    return packed.tolist()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             autocast: Callable[[], AbstractContextManager], device: torch.device,
             world_size: int) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``batches``, in eval mode (then back)."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    try:
        for x, y in batches:
            with autocast():
                out = model(x)
            loss += F.cross_entropy(out.float(), y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
            n += y.shape[0]
    finally:
        model.train(was_training)
    loss_sum, correct_sum, total = all_reduce_sum([loss, correct, n], device, world_size)
    return loss_sum / max(total, 1), correct_sum / max(total, 1)


def sharpness_batches(config: TrainConfig, data: ImageData,
                      device: torch.device | str | None = None) -> list[tuple[torch.Tensor,
                                                                             torch.Tensor]]:
    """The fixed training subset ``config`` measures sharpness on (docs/sharpness.md#the-subset):
    ``config.sharpness_subset`` images, a seeded draw or the first of the dataset's own order
    (``sharpness_subset_order``), normalized, in batches of ``config.batch_size``."""
    n = min(config.sharpness_subset, len(data.train_labels))
    images, labels = data.train_images, data.train_labels
    if config.sharpness_subset_order == "first":
        # The first n of the dataset's own order, not of the split's seeded order.
        first = data.train_in_dataset_order()[:n]
        images, labels = images[first], labels[first]
    x = to_tensor(images, mean=data.mean, std=data.std)
    return fixed_subset((x, torch.as_tensor(labels)), n=n, seed=config.seed,
                        batch_size=config.batch_size, device=device,
                        order=config.sharpness_subset_order)


def measure_sharpness(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                      config: TrainConfig, compile: bool = False) -> dict[str, Any]:
    """Top-k Hessian eigenvalues (and the trace) on the fixed subset (docs/sharpness.md),
    the products through ``torch.compile`` with ``compile``."""
    from .. import sharpness  # torch.func, which it needs, takes seconds to import

    loss_fn = nn.CrossEntropyLoss()
    k = min(config.sharpness_k, sum(p.numel() for p in model.parameters()))
    t = time.perf_counter()
    eig = sharpness.top_eigenvalues(model, loss_fn, batches, k=k,
                                    bn_mode=config.sharpness_bn_mode, seed=config.seed,
                                    compile=compile)
    out: dict[str, Any] = {"lambda_max": eig.lambda_max,
                           "eigenvalues": [float(v) for v in eig.eigenvalues],
                           "sharpness_hvps": eig.n_hvp,
                           "sharpness_converged": bool(eig.converged),
                           "sharpness_bn_mode": config.sharpness_bn_mode,
                           "sharpness_compiled": eig.compiled,
                           "lambda_max_time": time.perf_counter() - t}
    if eig.compile_error:
        out["sharpness_compile_error"] = eig.compile_error
    if config.trace_probes:
        tr = sharpness.hessian_trace(model, loss_fn, batches, n_probes=config.trace_probes,
                                     seed=config.seed, bn_mode=config.sharpness_bn_mode,
                                     compile=eig.compiled)
        out.update(trace=float(tr.estimate), trace_stderr=float(tr.stderr))
    return out
