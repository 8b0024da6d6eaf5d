"""ResNet-20 learns real images: a short run on JPEG-recompressed CIFAR-10 is well above
chance (0.10) on held-out test images.

Uses ``../shared/data/cifar10-jpeg.npz`` (skipped where absent). Only the images used are
decoded (2,000 training, 1,000 test, seeded), without the decode cache, so the test
neither writes into the data folder nor decodes all 60,000. About 35-50 s on 2 busy cores
(one torch thread), hence ``slow``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from train_truth import read_jsonl

from samlab.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    JPEG_LABEL,
    JPEG_NAME,
    ImageData,
    load_cifar10_jpeg,
)
from samlab.train import TrainConfig, Trainer

N_TRAIN, N_TEST, EPOCHS = 2000, 1000, 2


@pytest.mark.slow
def test_resnet20_on_2000_jpeg_cifar10_images_beats_chance_in_two_epochs(shared_data, tmp_path):
    npz = shared_data / JPEG_NAME
    train_x, train_y = load_cifar10_jpeg("train", N_TRAIN, seed=0, path=npz, cache=False)
    test_x, test_y = load_cifar10_jpeg("test", N_TEST, seed=0, path=npz, cache=False)
    none_x, none_y = np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64)
    data = ImageData("cifar10-jpeg", JPEG_LABEL, CIFAR10_CLASSES, train_x, train_y,
                     none_x, none_y, test_x, test_y, CIFAR10_MEAN, CIFAR10_STD)
    # The recipe of docs/training.md#the-cifar-10-recipe (SGD, momentum 0.9, weight decay 5e-4,
    # cosine, crop + flip), short.
    config = TrainConfig(name="r20", model="resnet20", dataset="cifar10-jpeg", n_train=N_TRAIN,
                         n_val=0, epochs=EPOCHS, batch_size=32, lr=0.05, cpu_threads=1,
                         runs_dir=str(tmp_path))

    start = time.perf_counter()
    result = Trainer(config, data=data, progress=False).fit()
    seconds = time.perf_counter() - start

    assert result.status == "completed"
    records = read_jsonl(tmp_path / "r20" / "metrics.jsonl")
    assert [r["epoch"] for r in records] == list(range(EPOCHS))
    assert records[-1]["dataset"] == JPEG_LABEL
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert records[-1]["test_acc"] > 0.25, f"test accuracy {records[-1]['test_acc']:.3f}"
    print(f"ResNet-20, {N_TRAIN} JPEG CIFAR-10 images, {EPOCHS} epochs: "
          f"test accuracy {records[-1]['test_acc']:.3f} in {seconds:.0f} s")
