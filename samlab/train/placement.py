"""Where a run computes: the device, the processes (DDP), the precision, the threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .config import TrainConfig


@dataclass
class Placement:
    """The device and process layout of a run, from its config and torchrun's environment."""

    device: torch.device
    world_size: int
    rank: int
    precision: str       # "fp32" or "bf16"
    channels_last: bool

    @property
    def is_main(self) -> bool:
        """Process 0: the one that writes the run directory and prints."""
        return self.rank == 0

    @classmethod
    def for_config(cls, cfg: TrainConfig) -> Placement:
        """Resolve ``auto`` settings, check the device exists, join the process group."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device.startswith("cuda"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if int(device.partition(":")[2] or 0) >= count:
                have = (f"'cpu', 'auto' or one of cuda:0..cuda:{count - 1}" if count
                        else "'cpu' or 'auto' on this machine (torch sees no CUDA device)")
                raise ValueError(f"device must be {have}, got {device!r}")
        if device == "cuda" and world_size > 1:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        dev = torch.device(device)
        if cfg.batch_size % world_size:
            raise ValueError(f"batch_size must be divisible by the number of processes "
                             f"({world_size}), got {cfg.batch_size}")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if world_size > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        on_cuda = dev.type == "cuda"
        precision = ("bf16" if on_cuda else "fp32") if cfg.precision == "auto" else cfg.precision
        channels_last = on_cuda if cfg.channels_last is None else cfg.channels_last
        return cls(dev, world_size, rank, precision, channels_last)

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch."""
        if self.world_size == 1:
            return t
        return t.tensor_split(self.world_size)[self.rank]

    def autocast(self):
        """bf16 autocast where the run asks for it; nothing otherwise."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @contextmanager
    def cpu_threads(self, model: nn.Module, threads: int | None) -> Iterator[None]:
        """On CPU, ``threads`` torch threads for the block; ``None``: one for models under
        200k parameters, whose operations are too small to split, else torch's default."""
        if threads is None and self.device.type == "cpu":
            threads = 1 if sum(p.numel() for p in model.parameters()) < 200_000 else None
        if threads is None or self.device.type != "cpu":
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)
