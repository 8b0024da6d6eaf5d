"""Every dataset in one shape (:class:`ImageData`), and tensors for fixed sets of examples.

- ``"cifar10"``: canonical CIFAR-10 (:mod:`samlab.data.cifar10`);
- ``"cifar10-jpeg"``: its JPEG copy (:mod:`samlab.data.jpeg`), labelled as such;
- ``"digits"``: scikit-learn's bundled 8×8 digits, for CPU demos (no download);
- ``"random"``: CIFAR-shaped noise, for timing only.

Conventions: images are **uint8 NHWC** numpy arrays in host memory (the layout of image
files and of CIFAR-10's arrays); labels are int64. Only the loaders and :func:`to_tensor`
turn them into float NCHW tensors. ``mean``/``std`` are per channel on the [0, 1] scale,
as ``torchvision.transforms.Normalize`` takes them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import validate
from .cifar10 import CIFAR10_CLASSES, CIFAR10_LABEL, CIFAR10_MEAN, CIFAR10_STD, load_cifar10
from .jpeg import JPEG_LABEL, jpeg_images, jpeg_labels, jpeg_path
from .noise import noise_label, noisy_labels
from .splits import split_train_val

DIGITS_LABEL = "scikit-learn digits (8x8)"
RANDOM_LABEL = "random uint8 images (timing only)"

DATASETS = ("cifar10", "cifar10-jpeg", "digits", "random")

#: How :func:`fixed_subset` picks its examples: a seeded draw, or the first ``n`` in order.
SUBSET_ORDERS = ("random", "first")

# digits: a fixed test set (as CIFAR-10's is fixed), whatever the split seed.
DIGITS_TEST_SIZE = 360
DIGITS_TEST_SEED = 0


@dataclass(frozen=True, repr=False, eq=False)
class ImageData:
    """A dataset as train / validation / test splits, ready for :class:`DeviceLoader`.

    Images are uint8 NHWC numpy arrays (``[N, H, W, C]``), labels int64 ``[N]``.
    ``mean``/``std`` are the per-channel statistics to normalize with, on the [0, 1]
    scale. ``label`` is the string that goes on plots and logs (e.g. :data:`JPEG_LABEL`).
    The training split is in a seeded random order; ``train_index`` holds each training
    image's position in the dataset's own order (CIFAR-10's files), None where unknown.
    With label noise, ``train_labels`` are the noisy labels a run trains on and
    ``clean_train_labels`` the true ones (None without noise); ``label`` says so.
    """

    name: str
    label: str
    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_index: np.ndarray | None = None
    clean_train_labels: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(self.train_images.shape[1:])

    def train_in_dataset_order(self) -> np.ndarray:
        """Indices that put the training images in the dataset's own order (the split's
        order where :attr:`train_index` is unknown): ``[:n]`` of it is "the first n
        training images", as the late-phase authors' ``Subset(trainset, range(n))``."""
        if self.train_index is None:
            return np.arange(len(self.train_labels))
        return np.argsort(self.train_index, kind="stable")

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (
            f"ImageData({self.name!r}, {self.label!r}, train={len(self.train_labels)}, "
            f"val={len(self.val_labels)}, test={len(self.test_labels)}, "
            f"images {h}x{w}x{c} uint8, {self.num_classes} classes)"
        )


def load_dataset(
    name: str,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    split_seed: int = 0,
    path: str | Path | None = None,
    download: bool = False,
    label_noise: float = 0.0,
    label_noise_seed: int = 0,
) -> ImageData:
    """One of :data:`DATASETS` as :class:`ImageData`.

    - ``"cifar10"``: canonical CIFAR-10 (:func:`load_cifar10`; ``path`` is the folder
      holding ``cifar-10-batches-py``, ``download`` fetches it). 45,000/5,000/10,000.
    - ``"cifar10-jpeg"``: the JPEG copy (:func:`load_cifar10_jpeg`; ``path`` is the
      npz), same splits, labelled :data:`JPEG_LABEL`.
    - ``"digits"``: scikit-learn's 1,797 8×8 digits, 1 channel. Pixel values 0..16 are
      stored as uint8 ``rint(v · 255/16)`` so every dataset is uint8 (the loaders divide
      by 255). Test set: a fixed stratified 360 (seed 0, whatever ``split_seed``, as
      CIFAR-10's test set is fixed); validation 180 by default; training the rest.
    - ``"random"``: uniform uint8 noise shaped like CIFAR-10, random labels; for timing.

    Validation is a stratified split of the training set with ``split_seed``
    (:func:`split_train_val`; ``n_val`` defaults to 5,000, 180 for digits; 0 keeps all for
    training). ``n_train`` keeps a seeded stratified subset of the training split, and
    ``n_test`` one of the test set (seed 0: the same images for every run), for quick
    runs. Mean/std: CIFAR-10's published training statistics for both CIFAR variants, the
    training split's own statistics for digits, the exact uniform values for random.

    ``label_noise`` replaces that fraction of the training labels by wrong classes, chosen
    from ``label_noise_seed`` and each image alone (:func:`samlab.data.noisy_labels`), so
    that every run of a comparison sees the same corrupted labels; validation and test
    labels stay clean.
    """
    validate.choice("name", name, DATASETS)
    if path is not None and name in ("digits", "random"):
        raise ValueError(f"path is only for 'cifar10' and 'cifar10-jpeg', got path={path!r}")
    if download and name != "cifar10":
        raise ValueError(f"download=True is only for 'cifar10', got name={name!r}")
    n_train = validate.integer("n_train", n_train, low=1, none=True)
    n_test = validate.integer("n_test", n_test, low=1, none=True)
    split_seed = validate.integer("split_seed", split_seed, low=0)
    validate.flag("download", download)
    label_noise = validate.number("label_noise", label_noise, low=0.0, high=1.0)
    label_noise_seed = validate.integer("label_noise_seed", label_noise_seed, low=0)

    if name == "random":
        data = _random_data(n_train, 5000 if n_val is None else n_val, split_seed, n_test)
        return _with_noise(data, label_noise, label_noise_seed, len(data.train_labels))
    if name == "digits":
        pool_images, pool_labels, test_images, test_labels, classes = _digits_arrays()
        label, n_val = DIGITS_LABEL, 180 if n_val is None else n_val
    else:
        if name == "cifar10":
            arrays = load_cifar10(path, download=download)
            pool_images, pool_labels, classes, label = (
                arrays.train_images,
                arrays.train_labels,
                arrays.classes,
                CIFAR10_LABEL,
            )
            test_images, test_labels = arrays.test_images, arrays.test_labels
        else:
            pool_images, pool_labels = _jpeg_in_file_order("train", path)
            test_images, test_labels = _jpeg_in_file_order("test", path)
            classes, label = CIFAR10_CLASSES, JPEG_LABEL
        n_val = 5000 if n_val is None else n_val

    if n_val >= len(pool_labels):
        raise validate.fail("n_val", f"smaller than the {len(pool_labels)} training images of "
                            f"{name}, so that some are left to train on", n_val)
    train_idx, val_idx = split_train_val(pool_labels, n_val=n_val, seed=split_seed)
    if n_train is not None:
        if n_train > len(train_idx):
            raise ValueError(
                f"n_train must be at most the {len(train_idx)} training images left after "
                f"n_val={n_val}, got {n_train}"
            )
        _, keep = split_train_val(pool_labels[train_idx], n_val=n_train, seed=split_seed)
        train_idx = train_idx[keep]
    if n_test is not None:
        if n_test > len(test_labels):
            raise validate.fail("n_test", f"at most the {len(test_labels)} test images",
                                n_test)
        _, keep = split_train_val(test_labels, n_val=n_test, seed=0)
        test_images, test_labels = test_images[keep], test_labels[keep]
    train_images = pool_images[train_idx]
    if name == "digits":
        pixels = train_images.astype(np.float64) / 255
        mean, std = (float(pixels.mean()),), (float(pixels.std()),)
    else:
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    data = ImageData(
        name=name,
        label=label,
        classes=tuple(classes),
        train_images=train_images,
        train_labels=pool_labels[train_idx],
        val_images=pool_images[val_idx],
        val_labels=pool_labels[val_idx],
        test_images=test_images,
        test_labels=test_labels,
        mean=mean,
        std=std,
        train_index=train_idx,
    )
    return _with_noise(data, label_noise, label_noise_seed, len(pool_labels))


def _with_noise(data: ImageData, fraction: float, seed: int, pool_size: int) -> ImageData:
    """``data`` with ``fraction`` of its training labels corrupted (nothing if 0)."""
    if fraction == 0:
        return data
    noisy = noisy_labels(data.train_labels, data.train_index, fraction, seed=seed,
                         pool_size=pool_size, num_classes=data.num_classes)
    return dataclasses.replace(data, train_labels=noisy, clean_train_labels=data.train_labels,
                               label=f"{data.label}, {noise_label(fraction, seed)}")


def _jpeg_in_file_order(split: str, path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    path = jpeg_path(path)
    labels = jpeg_labels(path, split)
    return jpeg_images(path, split, len(labels), None, cache=True), labels


def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(pool images, pool labels, test images, test labels, classes)`` of the digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    pool, test = split_train_val(labels, n_val=DIGITS_TEST_SIZE, seed=DIGITS_TEST_SEED)
    pool = np.sort(pool)
    classes = tuple(str(d) for d in range(10))
    return images[pool], labels[pool], images[np.sort(test)], labels[np.sort(test)], classes


def _random_data(n_train: int | None, n_val: int, seed: int,
                 n_test: int | None = None) -> ImageData:
    validate.integer("n_val", n_val, low=0, high=49_999)
    validate.integer("n_test", n_test, low=1, high=10_000, none=True)
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        return images, rng.integers(0, 10, size=n).astype(np.int64)

    train = draw(50_000 - n_val if n_train is None else n_train)
    val, test = draw(n_val), draw(10_000 if n_test is None else n_test)
    # Uniform on {0, ..., 255}/255: mean 1/2, variance (256² − 1)/12 / 255².
    std = math.sqrt((256**2 - 1) / 12) / 255
    return ImageData(
        name="random",
        label=RANDOM_LABEL,
        classes=tuple(str(k) for k in range(10)),
        train_images=train[0],
        train_labels=train[1],
        val_images=val[0],
        val_labels=val[1],
        test_images=test[0],
        test_labels=test[1],
        mean=(0.5,) * 3,
        std=(std,) * 3,
        train_index=np.arange(len(train[1])),
    )


def to_tensor(images: np.ndarray, *, mean: Sequence[float] = CIFAR10_MEAN,
              std: Sequence[float] = CIFAR10_STD) -> torch.Tensor:
    """uint8 NHWC images to a float32 NCHW tensor, ``(x/255 − mean)/std`` per channel.

    CIFAR-10's statistics by default. For a fixed set of images (a figure, the Hessian
    subset); training batches come from :class:`samlab.data.DeviceLoader`.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    c = x.shape[1]
    x = (x - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)
    return x.contiguous()


def fixed_subset(data, n: int = 5000, seed: int = 0, batch_size: int = 128,
                 device: torch.device | str | None = None, order: str = "random",
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same ``n`` examples on every call: a seeded draw without replacement, in batches.

    ``data`` is a pair ``(inputs, targets)`` of tensors (first dimension: examples)
    or a map-style dataset whose items are ``(input, target)``. Batches keep the
    drawn (shuffled) order, so each mixes classes even when ``data`` is sorted by
    class; in ``bn_mode="train"`` a sharpness measurement depends on ``batch_size``,
    128 as in training. Use the same ``n``, ``seed`` and ``batch_size`` wherever one
    sharpness curve is compared with another (docs/sharpness.md#the-subset: 5,000).

    ``order="first"`` takes the first ``n`` examples of ``data`` instead, in order and
    in consecutive batches (``seed`` unused): the late-phase authors' subset.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 \
            and all(isinstance(t, torch.Tensor) for t in data):
        inputs, targets = data
        if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"data must hold as many targets as inputs, got shapes "
                             f"{tuple(inputs.shape)} and {tuple(targets.shape)}")
        total = inputs.shape[0]
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__") \
            and not isinstance(data, (tuple, list, torch.Tensor)):
        inputs = targets = None
        total = len(data)
    else:
        raise ValueError("data must be a pair (inputs, targets) of tensors or a map-style "
                         f"dataset, got {type(data).__name__}")
    if total == 0:
        raise ValueError("data must hold at least one example, got an empty dataset")
    n = validate.integer("n", n, low=1, high=total)
    seed = validate.integer("seed", seed, low=0)
    batch_size = validate.integer("batch_size", batch_size, low=1)
    if validate.choice("order", order, SUBSET_ORDERS) == "first":
        picked = torch.arange(n)
    else:
        picked = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    if inputs is None:
        items = [data[int(i)] for i in picked]
        inputs = torch.stack([torch.as_tensor(x) for x, _ in items])
        targets = torch.stack([torch.as_tensor(y) for _, y in items])
    else:
        inputs, targets = inputs[picked], targets[picked]
    return [(x.to(device), y.to(device)) if device is not None else (x, y)
            for x, y in zip(inputs.split(batch_size), targets.split(batch_size))]
