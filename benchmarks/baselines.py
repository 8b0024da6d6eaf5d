"""What a researcher would write without samlab: the baselines the benchmarks compare with.

- :func:`torchvision_loader`: CIFAR-10 augmentation the usual way, PIL transforms in
  DataLoader workers (against :class:`samlab.data.DeviceLoader`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from samlab import validate
from samlab.data.loader import channel_stats


class _ArrayDataset(torch.utils.data.Dataset):
    """uint8 NHWC arrays served as PIL images through a torchvision transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = self.images[i]
        image = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        return self.transform(image), int(self.labels[i])


def torchvision_loader(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    train: bool = True,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    augment: bool = True,
    num_workers: int = 2,
    seed: int = 0,
    padding: int = 4,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """The usual pipeline, for comparison with :class:`DeviceLoader`.

    ``RandomCrop(H, padding)``, ``RandomHorizontalFlip()`` (if ``train`` and
    ``augment``), ``ToTensor()``, ``Normalize(mean, std)`` on PIL images in
    ``num_workers`` DataLoader workers; shuffled with a generator seeded by ``seed`` when
    ``train``. Yields float32 ``[B, C, H, W]`` on the CPU and int64 labels. With
    ``num_workers=0`` the augmentation draws from torch's global generator.
    """
    from torchvision import transforms as T

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(
            f"images must be uint8 [N, H, W, C] with C 1 or 3, got shape {images.shape} "
            f"dtype {images.dtype}"
        )
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape [{len(images)}], got {labels.shape}")
    validate.integer("num_workers", num_workers, low=0)
    channel_stats(mean, std, images.shape[3])
    steps = []
    if train and augment:
        steps += [T.RandomCrop(images.shape[1], padding=padding), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(tuple(mean), tuple(std))]
    return torch.utils.data.DataLoader(
        _ArrayDataset(images, labels, T.Compose(steps)),
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


class LoopSAM(torch.optim.Optimizer):
    """SAM as it is usually written: Python loops over the parameter tensors.

    The norm of the gradient is one ``norm`` per tensor and their ``stack``; the ascent
    ``ε = ρ g / ‖g‖`` is added, kept and subtracted tensor by tensor; then the base SGD
    steps. Same maths as :class:`samlab.optim.SAM` (normalized ascent, one global norm),
    none of its engineering: the baseline of the training benchmarks. BatchNorm's running
    statistics are updated by both passes, as in most copies of it.
    """

    def __init__(self, params, rho: float = 0.05, **sgd):
        params = list(params)
        super().__init__(params, dict(rho=rho))
        self.base = torch.optim.SGD(params, **sgd)

    @torch.no_grad()
    def first_step(self) -> None:
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        norm = torch.norm(torch.stack([g.norm(2) for g in grads]), 2)
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e = p.grad * scale
                p.add_(e)
                self.state[p]["e"] = e

    @torch.no_grad()
    def second_step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if "e" in self.state[p]:
                    p.sub_(self.state[p].pop("e"))
        self.base.step()

    def step(self, closure):
        loss = closure()
        self.first_step()
        closure()
        self.second_step()
        return loss
