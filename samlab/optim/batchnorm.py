"""BatchNorm during SAM's second pass: normalize with the batch, keep the running statistics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def frozen_bn_stats(model: nn.Module | None = None) -> Iterator[None]:
    """Inside, BatchNorm layers normalize with batch statistics but keep their running ones.

    SAM's second forward pass (at ``w_asc``) must not update running statistics
    (docs/methods.md#batchnorm-in-the-second-pass).
    With ``model`` the running buffers of its BatchNorm layers are snapshotted and
    restored bit-for-bit on exit; with ``model=None`` every BatchNorm layer that runs
    inside the block is, through global module hooks.
    """
    if model is not None:
        bns = [m for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        saved = [[b.clone() for b in _bn_buffers(m)] for m in bns]
        try:
            yield
        finally:
            with torch.no_grad():
                for m, bufs in zip(bns, saved):
                    for buf, old in zip(_bn_buffers(m), bufs):
                        buf.copy_(old)
        return

    # Snapshot each BatchNorm layer the first time it runs; restore them all on exit (not
    # after each forward: backward still needs the buffers at the version forward saw).
    seen: dict[int, tuple[nn.Module, list[torch.Tensor]]] = {}

    def pre(module: nn.Module, _args: Any) -> None:
        if (isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
                and id(module) not in seen):
            seen[id(module)] = (module, [b.clone() for b in _bn_buffers(module)])

    handle = nn.modules.module.register_module_forward_pre_hook(pre)
    try:
        yield
    finally:
        handle.remove()
        with torch.no_grad():
            for module, bufs in seen.values():
                for buf, old in zip(_bn_buffers(module), bufs):
                    buf.copy_(old)


def _bn_buffers(m: nn.Module) -> list[torch.Tensor]:
    return [b for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
