"""Datasets and the loader that keeps them on the GPU (docs/training.md#data).

- :mod:`~samlab.data.cifar10`: canonical CIFAR-10, torchvision's files, md5-checked
  (:func:`load_cifar10`);
- :mod:`~samlab.data.jpeg`: the JPEG copy (development only; never CIFAR-10 without
  :data:`JPEG_LABEL`) (:func:`load_cifar10_jpeg`);
- :mod:`~samlab.data.splits`: seeded stratified splits (:func:`split_train_val`);
- :mod:`~samlab.data.noise`: seeded label noise on the training split (:func:`noisy_labels`);
- :mod:`~samlab.data.datasets`: every dataset as one :class:`ImageData`
  (:func:`load_dataset`), and tensors of fixed example sets (:func:`to_tensor`,
  :func:`fixed_subset`);
- :mod:`~samlab.data.loader`: :class:`DeviceLoader`, augmentation on the device.
"""

from ..paths import CIFAR10_FILES, CIFAR10_FOLDER, data_dir
from .cifar10 import (
    CIFAR10_CLASSES,
    CIFAR10_LABEL,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CifarArrays,
    cifar10_md5,
    load_cifar10,
)
from .datasets import (
    DATASETS,
    DIGITS_LABEL,
    RANDOM_LABEL,
    ImageData,
    fixed_subset,
    load_dataset,
    to_tensor,
)
from .jpeg import JPEG_LABEL, JPEG_NAME, find_cifar10_jpeg, load_cifar10_jpeg
from .loader import DeviceLoader, EpochPlan
from .noise import noisy_labels
from .splits import split_train_val

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_FILES", "CIFAR10_FOLDER", "CIFAR10_LABEL", "CIFAR10_MEAN",
    "CIFAR10_STD", "DATASETS", "DIGITS_LABEL", "JPEG_LABEL", "JPEG_NAME", "RANDOM_LABEL",
    "CifarArrays", "DeviceLoader", "EpochPlan", "ImageData", "cifar10_md5", "data_dir",
    "find_cifar10_jpeg", "fixed_subset", "load_cifar10", "load_cifar10_jpeg", "load_dataset",
    "noisy_labels", "split_train_val", "to_tensor",
]
