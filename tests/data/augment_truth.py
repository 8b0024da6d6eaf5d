"""The truth the loader tests compare against, written from torchvision and the formulas.

Nothing here imports samlab. A crop is torchvision's: ``TF.pad`` with zeros, ``TF.crop``
at the offset, ``TF.hflip`` (RandomCrop(padding) then RandomHorizontalFlip); the
normalization is ``(x/255 - mean)/std`` in float64.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torchvision.transforms.functional as TF

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
NORMALIZE_TOL = dict(rtol=0, atol=2e-6)  # float32 rounding of a multiply-add vs the formula


def images_of(n: int, height: int = 32, width: int = 32, channels: int = 3, seed: int = 0):
    """uint8 NHWC noise: crops at different offsets of such an image are all different."""
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, channels), np.uint8)


def normalized(uint8_nchw: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    c = uint8_nchw.shape[1]
    m = torch.tensor(mean[:c], dtype=torch.float64).view(1, c, 1, 1)
    s = torch.tensor(std[:c], dtype=torch.float64).view(1, c, 1, 1)
    return (uint8_nchw.double() / 255 - m) / s


def as_uint8(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """Undo the normalization (exact after rounding: the error is far below 1/2 of a level)."""
    c = x.shape[1]
    m, s = torch.tensor(mean[:c]).view(1, c, 1, 1), torch.tensor(std[:c]).view(1, c, 1, 1)
    return ((x.float() * s + m) * 255).round().to(torch.uint8)


def reference_crop(image_hwc: np.ndarray, dy: int, dx: int, flip: bool, padding: int):
    """torchvision's RandomCrop(padding) at offset (dy, dx), then RandomHorizontalFlip."""
    image = torch.from_numpy(image_hwc).permute(2, 0, 1)
    h, w = image.shape[1:]
    crop = TF.crop(TF.pad(image, [padding]), dy, dx, h, w)
    return TF.hflip(crop) if flip else crop


def recover_offsets(image_hwc: np.ndarray, crop_chw: torch.Tensor, padding: int = 4):
    """Every (dy, dx, flip) whose reference crop equals ``crop_chw``, by trying them all."""
    span = range(2 * padding + 1)
    return [
        (dy, dx, flip)
        for dy, dx, flip in itertools.product(span, span, (False, True))
        if torch.equal(reference_crop(image_hwc, dy, dx, flip, padding), crop_chw)
    ]
