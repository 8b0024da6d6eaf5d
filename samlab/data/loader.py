"""The loader that keeps a whole image set on the device (airbench's recipe).

The set is one uint8 tensor on the GPU; shuffling, random crop + flip and normalization
happen there, in batches, so a batch needs no workers, no PIL and no host-to-device copy.
Everything random about an epoch is a function of ``(seed, epoch)``, which is what makes
a resumed run continue exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import validate


@dataclass(frozen=True, eq=False)
class EpochPlan:
    """Everything random about one epoch, position by position (CPU tensors, length N).

    The k-th sample served is image ``order[k]``, cropped at rows ``dy[k] : dy[k]+H``
    and columns ``dx[k] : dx[k]+W`` of the zero-padded image (torchvision's RandomCrop
    offsets, 0..2·padding; ``padding, padding`` is the image itself), then mirrored
    left-right if ``flip[k]``.
    """

    order: torch.Tensor
    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor


class DeviceLoader:
    """Batches of a uint8 image set that lives, whole, on ``device`` (the module's recipe).

    ``images``: uint8 ``[N, H, W, C]`` (numpy or torch); ``labels``: integers ``[N]``.
    Yields ``(x, y)``: ``x`` of ``dtype``, ``[B, C, H, W]`` (``channels_last`` memory
    format if asked), ``y`` int64 ``[B]``, both on ``device``. ``train=True`` shuffles
    every epoch and, with ``augment``, crops (zero padding ``padding``) and flips as
    torchvision's RandomCrop and RandomHorizontalFlip do
    (docs/training.md#the-cifar-10-recipe); ``train=False`` serves the images in order,
    unchanged. Epoch ``e`` is a function of ``(seed, e)`` (:meth:`epoch_plan`); each
    ``iter()`` serves the next epoch, from 0, or the one :meth:`set_epoch` names.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        batch_size: int,
        *,
        device: str | torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = True,
        augment: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        padding: int = 4,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        images = as_uint8_nhwc(images)
        labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
        if labels.shape != (len(images),) or labels.is_floating_point() or labels.is_complex():
            raise ValueError(
                f"labels must be integers of shape [{len(images)}] (one per image), got "
                f"shape {list(labels.shape)} dtype {labels.dtype}"
            )
        batch_size = validate.integer("batch_size", batch_size, low=1)
        padding = validate.integer("padding", padding, low=0)
        seed = validate.integer("seed", seed, low=0)
        train = validate.flag("train", train)
        augment = validate.flag("augment", augment)
        drop_last = validate.flag("drop_last", drop_last)
        channels_last = validate.flag("channels_last", channels_last)
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype}")
        n, height, width, channels = images.shape
        mean_t, std_t = channel_stats(mean, std, channels)

        self.batch_size = batch_size
        self.train, self.augment = train, augment and train
        self.seed, self.padding = seed, padding
        self.drop_last, self.channels_last, self.dtype = drop_last, channels_last, dtype
        self.device = torch.device(device)
        self.num_samples = n - n % batch_size if drop_last else n
        self._shape = (n, height, width, channels)
        self._next_epoch, self._start_batch = 0, 0

        x = images.to(self.device)
        if self.augment and padding:
            # Pad the whole set once (1.6× the memory of 32×32): then a batch is a single
            # gather, and the zeros are exactly RandomCrop's fill.
            x = torch.nn.functional.pad(x, (0, 0, padding, padding, padding, padding))
        # NHWC storage serves channels_last batches (a permuted view), NCHW the default.
        self._images = x if channels_last else x.permute(0, 3, 1, 2).contiguous()
        self._labels = labels.to(self.device, torch.int64)
        # (x/255 − mean)/std = x · scale + shift: one multiply-add from uint8.
        self._scale = (1 / (255 * std_t)).view(1, -1, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, -1, 1, 1).to(self.device)
        if self.augment:
            self._pattern, self._pattern_flipped = self._crop_patterns()

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.num_samples // self.batch_size + (
            0 if self.drop_last else int(self.num_samples % self.batch_size > 0)
        )

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` serves."""
        return self._next_epoch

    def set_epoch(self, epoch: int, batch: int = 0) -> None:
        """Make the next ``iter()`` serve epoch ``epoch`` from batch ``batch`` on (resume)."""
        epoch = validate.integer("epoch", epoch, low=0)
        batch = validate.integer("batch", batch, low=0, high=len(self))
        self._next_epoch, self._start_batch = epoch, batch

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """The order, crop offsets and flips of ``epoch``: a function of ``(seed, epoch)`` only.

        Drawn on a CPU ``torch.Generator`` (under a millisecond for 50,000 samples), so
        the plan does not depend on the device or the batch size.
        """
        epoch = validate.integer("epoch", epoch, low=0)
        n, p = self._shape[0], self.padding
        if not self.train:
            order = torch.arange(n)
        else:
            seed = np.random.SeedSequence([self.seed, epoch]).generate_state(1, np.uint64)[0]
            generator = torch.Generator().manual_seed(int(seed))
            order = torch.randperm(n, generator=generator)
        if not self.augment:
            centre = torch.full((n,), p, dtype=torch.int64)
            return EpochPlan(order, centre, centre.clone(), torch.zeros(n, dtype=torch.bool))
        dy, dx = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
        flip = torch.randint(0, 2, (n,), generator=generator).bool()
        return EpochPlan(order, dy, dx, flip)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start = self._next_epoch, self._start_batch
        self._next_epoch, self._start_batch = epoch + 1, 0
        return self._batches(self.epoch_plan(epoch), start)

    def _batches(self, plan: EpochPlan, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = plan.order.to(self.device)
        if self.augment:
            dy, dx, flip = (t.to(self.device) for t in (plan.dy, plan.dx, plan.flip))
        for b in range(start, len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.num_samples)
            if not self.train:
                x = self._images[lo:hi]
            elif not self.augment:
                x = self._images[order[lo:hi]]
            else:
                x = self._crop_and_flip(order[lo:hi], dy[lo:hi], dx[lo:hi], flip[lo:hi])
            if self.channels_last:
                x = x.permute(0, 3, 1, 2)  # NCHW shape over NHWC memory
            y = self._labels[lo:hi] if not self.train else self._labels[order[lo:hi]]
            yield self._normalize(x), y

    def _crop_patterns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat offsets of an H×W crop at the padded image's corner, plain and mirrored.

        Laid out as the batch will be ([C, H, W], or [H, W, C] for channels_last), so a
        crop at ``(dy, dx)`` of image ``i`` is ``take(i·s_N + dy·s_H + dx·s_W + pattern)``.
        """
        _, height, width, channels = self._shape
        layout = "NHWC" if self.channels_last else "NCHW"
        stride = dict(zip(layout, self._images.stride()))
        c = torch.arange(channels, device=self.device).view(-1, 1, 1)
        h = torch.arange(height, device=self.device).view(1, -1, 1)
        w = torch.arange(width, device=self.device).view(1, 1, -1)
        rows = c * stride["C"] + h * stride["H"]
        plain, mirrored = rows + w * stride["W"], rows + (width - 1 - w) * stride["W"]
        if self.channels_last:
            plain, mirrored = plain.permute(1, 2, 0), mirrored.permute(1, 2, 0)
        return plain.contiguous(), mirrored.contiguous()

    def _crop_and_flip(
        self, index: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor
    ) -> torch.Tensor:
        # Every sample's crop + flip in one gather: its corner's flat offset plus the
        # (plain or mirrored) pattern. A flipped crop reads its columns right to left.
        s_n, s_h, s_w = (
            self._images.stride(i) for i in ((0, 1, 2) if self.channels_last else (0, 2, 3))
        )
        corner = (index * s_n + dy * s_h + dx * s_w).view(-1, 1, 1, 1)
        pattern = torch.where(flip.view(-1, 1, 1, 1), self._pattern_flipped, self._pattern)
        return self._images.take(corner + pattern)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        out = torch.addcmul(self._shift, x, self._scale)  # uint8 promotes to float32
        return out.to(dtype=self.dtype, memory_format=memory_format)


def as_uint8_nhwc(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        if not images.flags.writeable:  # e.g. a memory-mapped cache; torch wants writable
            images = images.copy()
        images = torch.from_numpy(images)
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.ndim != 4:
        described = (
            f"shape {list(images.shape)} dtype {images.dtype}"
            if hasattr(images, "shape")
            else type(images).__name__
        )
        raise ValueError(f"images must be uint8 [N, H, W, C] (NHWC), got {described}")
    if len(images) == 0:
        raise ValueError("images must hold at least one image, got N=0")
    return images


def channel_stats(
    mean: Sequence[float], std: Sequence[float], channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
    if mean_t.numel() != channels or not torch.isfinite(mean_t).all():
        raise ValueError(f"mean must be {channels} finite numbers (one per channel), got {mean}")
    if std_t.numel() != channels or not (torch.isfinite(std_t).all() and (std_t > 0).all()):
        raise ValueError(f"std must be {channels} finite numbers > 0 (one per channel), got {std}")
    return mean_t.float(), std_t.float()
