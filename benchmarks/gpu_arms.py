"""The timed arms of ``make gpu-check``'s epoch part (:mod:`benchmarks.gpu`).

Each arm trains a fresh ResNet-20 (same seed) on random CIFAR-shaped images (time does not
depend on the pixels) with one setting of samlab's pipeline, or with the baseline a
researcher would write, and reports seconds per step after an untimed warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from samlab import sharpness
from samlab.data import DeviceLoader, fixed_subset, load_dataset
from samlab.models import resnet20
from samlab.optim import SAM

from .baselines import LoopSAM, torchvision_loader

KW = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _forever(loader) -> Iterator:
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def time_arm(dev: torch.device, opt_name: str, setting, steps: int, warmup: int
             ) -> tuple[float, float, str]:
    """``(seconds per step, seconds of warm-up, a note)`` of one arm.

    ``setting`` is a :class:`benchmarks.gpu.Setting`, or a string for the baseline
    (torchvision DataLoader with CPU augmentation, :class:`LoopSAM`, fp32, eager).
    """
    baseline = isinstance(setting, str)
    cuda = dev.type == "cuda"
    batch = 128
    data = load_dataset("random", n_train=batch * (steps + warmup + 1), n_val=0)
    torch.manual_seed(0)
    model = resnet20().to(dev)
    channels_last = not baseline and setting.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    compile_mode = None if baseline else setting.compile
    if compile_mode:
        torch._dynamo.reset()
        from torch._dynamo.utils import counters

        counters.clear()
    net = torch.compile(model, mode=compile_mode) if compile_mode else model
    if opt_name == "SGD":
        opt = torch.optim.SGD(model.parameters(), **KW)
    elif baseline:
        opt = LoopSAM(model.parameters(), rho=0.05, **KW)
    else:
        opt = SAM(model.parameters(), rho=0.05, model=model, **KW)
    if baseline:
        workers = 4 if cuda else 1
        loader = torchvision_loader(data.train_images, data.train_labels, batch,
                                    mean=data.mean, std=data.std, num_workers=workers,
                                    drop_last=True, pin_memory=cuda)
    else:
        loader = DeviceLoader(data.train_images, data.train_labels, batch, device=dev,
                              mean=data.mean, std=data.std, drop_last=True,
                              channels_last=channels_last)
    batches = _forever(loader)
    bf16 = not baseline and setting.bf16
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        x, y = next(batches)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)

        def closure():
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(net(x), y)
            loss.backward()
            return loss

        opt.step(closure)

    model.train()
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(dev)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    per_step = (time.perf_counter() - t0) / steps
    note = ""
    if baseline:
        note = f"; {loader.num_workers} DataLoader workers"
    if compile_mode:
        from torch._dynamo.utils import counters

        skips = counters["inductor"].get("cudagraph_skips", 0)
        graphs = counters["stats"].get("unique_graphs", 0)
        note = f"; {graphs} compiled graphs" + (
            f"; CUDA graphs skipped {skips} time(s)" if compile_mode == "reduce-overhead"
            and skips else "")
    return per_step, warm, note


def lanczos_seconds(dev: torch.device, n: int, batch: int,
                    model: torch.nn.Module | None = None) -> tuple[float, str]:
    """Seconds of one top-2 Lanczos λ_max measurement of ``model`` (a fresh ResNet-20 by
    default) on ``n`` random images, as the trainer measures it (eval-mode BatchNorm,
    fixed subset), and a note."""
    if model is None:
        torch.manual_seed(0)
        model = resnet20().to(dev)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    subset = fixed_subset((x, y), n=n, batch_size=batch, device=dev)
    _sync(dev)
    t0 = time.perf_counter()
    eig = sharpness.top_eigenvalues(model, torch.nn.CrossEntropyLoss(), subset, k=2)
    _sync(dev)
    return time.perf_counter() - t0, f"{eig.n_hvp} HVPs on {n} images"
