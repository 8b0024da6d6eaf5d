"""Datasets: the JPEG copy of CIFAR-10 (development), scikit-learn's digits (CPU demos).

``cifar10-jpeg.npz`` holds all 60,000 CIFAR-10 images re-encoded as JPEG (see its
README): real images, but **not** bit-identical to canonical CIFAR-10, so a figure
measured on it must say "JPEG-recompressed CIFAR-10".
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .paths import data_dir

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
JPEG_NAME = "cifar10-jpeg.npz"


def find_cifar10_jpeg() -> Path | None:
    """Where ``cifar10-jpeg.npz`` is: ``data/``, or ``../shared/data`` beside the repo."""
    root = Path(__file__).resolve().parent.parent
    for candidate in (data_dir() / JPEG_NAME, root.parent / "shared" / "data" / JPEG_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_cifar10_jpeg(
    split: str = "train", n: int | None = None, *, seed: int = 0, path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``n`` images of ``split`` ("train" or "test"), seeded shuffle, as uint8 NHWC.

    Returns ``(images [n, 32, 32, 3] uint8, labels [n] int64)``. The file is ordered by
    class, so the seeded permutation is what makes a subset balanced in expectation.
    """
    from PIL import Image

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path) if path is not None else find_cifar10_jpeg()
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(
            f"{JPEG_NAME} not found (looked in {data_dir()} and ../shared/data); pass path="
        )
    with np.load(path) as z:
        jpeg, offsets, labels = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"]
    total = len(labels)
    if n is None:
        n = total
    if not (isinstance(n, int) and 1 <= n <= total):
        raise ValueError(f"n must be an integer in 1..{total}, got {n!r}")
    order = np.random.default_rng(seed).permutation(total)[:n]
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for j, i in enumerate(order):
        blob = jpeg[offsets[i]:offsets[i + 1]].tobytes()
        images[j] = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
    return images, labels[order].astype(np.int64)


def to_tensor(images: np.ndarray, normalize: bool = True):
    """uint8 NHWC images to a float32 NCHW tensor, normalized with CIFAR-10's statistics."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    if normalize:
        mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous()
