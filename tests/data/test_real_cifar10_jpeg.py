"""The JPEG copy of CIFAR-10 in ../shared/data: counts, balance, pixel statistics, cache.

Skipped where ../shared/data is absent (the ``shared_data`` fixture). Each split is
decoded once (about 10 s for both on 2 cores) into a cache in a temporary SAMLAB_DATA;
the other tests read that cache.
"""

from __future__ import annotations

import numpy as np
import pytest

from samlab.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    JPEG_LABEL,
    JPEG_NAME,
    data_dir,
    load_cifar10_jpeg,
    load_dataset,
)


@pytest.fixture(scope="module")
def npz(shared_data, tmp_path_factory):
    """The shared file, with SAMLAB_DATA (hence the cache) in a fresh folder for this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAMLAB_DATA", str(tmp_path_factory.mktemp("samlab-data")))
        yield shared_data / JPEG_NAME


@pytest.fixture(scope="module")
def decoded(npz):
    """Both splits decoded once, with the cache being written."""
    return {split: load_cifar10_jpeg(split, path=npz, seed=0) for split in ("train", "test")}


@pytest.mark.parametrize("split, n", [("train", 50_000), ("test", 10_000)])
def test_the_splits_hold_cifar10s_counts_with_balanced_classes(decoded, split, n):
    images, labels = decoded[split]
    assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels, minlength=10), [n // 10] * 10)


@pytest.mark.parametrize("split", ["train", "test"])
def test_pixel_statistics_are_cifar10s(decoded, split):
    images = decoded[split][0]
    levels = np.arange(256) / 255
    mean, std = [], []
    for c in range(3):  # from each channel's histogram: exact, and no float copy of 150 MB
        p = np.bincount(images[..., c].ravel(), minlength=256) / images[..., c].size
        mean.append(p @ levels)
        std.append(np.sqrt(p @ (levels - mean[-1]) ** 2))
    assert mean == pytest.approx(CIFAR10_MEAN, abs=0.02)
    assert std == pytest.approx(CIFAR10_STD, abs=0.02)


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_cache_round_trips_identically(decoded, npz, split):
    (cached,) = (data_dir() / "cache").glob(f"cifar10-jpeg-{split}-*.npy")
    again = load_cifar10_jpeg(split, path=npz, seed=0)

    assert all(np.array_equal(a, b) for a, b in zip(decoded[split], again))
    order = np.random.default_rng(0).permutation(len(again[1]))
    assert np.array_equal(np.load(cached)[order], again[0])


def test_a_subset_from_the_cache_equals_one_decoded_directly(decoded, npz):
    from_cache = load_cifar10_jpeg("train", n=300, seed=3, path=npz)
    direct = load_cifar10_jpeg("train", n=300, seed=3, path=npz, cache=False)
    assert all(np.array_equal(a, b) for a, b in zip(from_cache, direct))


def test_load_dataset_gives_45000_5000_10000_labelled_as_the_jpeg_copy(decoded, npz):
    d = load_dataset("cifar10-jpeg", path=npz)

    assert d.label == JPEG_LABEL
    assert (len(d.train_labels), len(d.val_labels), len(d.test_labels)) == (45_000, 5000, 10_000)
    assert np.array_equal(np.bincount(d.val_labels), [500] * 10)
    assert np.array_equal(np.bincount(d.train_labels), [4500] * 10)
