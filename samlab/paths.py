"""Where samlab looks for things on disk."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The data directory: ``$SAMLAB_DATA`` if set, else ``data/`` at the repository root.

    The default assumes the usual checkout with an editable install (``pip install -e .``),
    where the package sits at ``<repo>/samlab`` and ``<repo>/data`` is beside it.
    """
    override = os.environ.get("SAMLAB_DATA", "").strip()
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


# torchvision's layout of CIFAR-10 (the "python version" archive, extracted). Here rather than
# in samlab.data so that `samlab doctor` can look for it without importing torch.
CIFAR10_FOLDER = "cifar-10-batches-py"
#: The JPEG-recompressed copy of CIFAR-10 (samlab.data.jpeg), looked for in the data directory.
JPEG_NAME = "cifar10-jpeg.npz"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
CIFAR10_FILES = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE)
