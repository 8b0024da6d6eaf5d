"""load_dataset's datasets (digits, random, the JPEG copy) and the JPEG decode cache.

The JPEG tests use a small npz in the format of ``cifar10-jpeg.npz`` written here;
test_real_cifar10_jpeg.py checks the real file.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from samlab import data
from samlab.data import (
    CIFAR10_CLASSES,
    DATASETS,
    JPEG_LABEL,
    ImageData,
    load_cifar10_jpeg,
    load_dataset,
)

# --- digits ------------------------------------------------------------------------


def sorted_rows(images: np.ndarray) -> list[bytes]:
    return sorted(map(bytes, images.reshape(len(images), -1)))


def test_digits_are_1797_uint8_8x8x1_images_split_1257_180_360():
    d = load_dataset("digits")

    assert (len(d.train_labels), len(d.val_labels), len(d.test_labels)) == (1257, 180, 360)
    for images in (d.train_images, d.val_images, d.test_images):
        assert images.dtype == np.uint8 and images.shape[1:] == (8, 8, 1)
    assert d.image_shape == (8, 8, 1) and d.num_classes == 10 and len(d.mean) == 1
    assert d.train_labels.dtype == np.int64


def test_digits_pixels_are_sklearns_0_to_16_scaled_to_0_to_255():
    d = load_dataset("digits")
    sk = load_digits()
    expected = np.rint(sk.images * 255 / 16).astype(np.uint8)[..., None]

    ours = np.concatenate([d.train_images, d.val_images, d.test_images])
    assert sorted_rows(ours) == sorted_rows(expected)
    labels = np.concatenate([d.train_labels, d.val_labels, d.test_labels])
    assert np.array_equal(np.bincount(labels), np.bincount(sk.target))
    assert ours.max() == 255


def test_digits_normalize_with_their_training_split_statistics():
    d = load_dataset("digits")
    pixels = d.train_images / 255
    assert d.mean == pytest.approx((pixels.mean(),)) and d.std == pytest.approx((pixels.std(),))


def test_digits_test_set_is_fixed_and_the_validation_set_follows_split_seed():
    a, b = load_dataset("digits", split_seed=0), load_dataset("digits", split_seed=1)
    assert np.array_equal(a.test_images, b.test_images)
    assert sorted_rows(a.val_images) != sorted_rows(b.val_images)
    again = load_dataset("digits", split_seed=1)
    assert np.array_equal(again.train_images, b.train_images)


def test_n_train_takes_a_stratified_seeded_subset_of_the_training_split():
    full = load_dataset("digits")
    quick = load_dataset("digits", n_train=200)

    assert len(quick.train_labels) == 200
    assert np.bincount(quick.train_labels).min() >= 18  # ~20 of each digit
    assert set(sorted_rows(quick.train_images)) <= set(sorted_rows(full.train_images))
    assert np.array_equal(quick.val_images, full.val_images)


# --- random --------------------------------------------------------------------------


def test_random_is_cifar_shaped_uint8_noise_with_its_exact_statistics():
    d = load_dataset("random", n_train=1000, n_val=100)

    assert d.train_images.shape == (1000, 32, 32, 3) and d.train_images.dtype == np.uint8
    assert (len(d.val_labels), len(d.test_labels)) == (100, 10_000)
    assert set(np.unique(d.train_labels)) == set(range(10))
    pixels = d.test_images / 255
    assert pixels.mean() == pytest.approx(d.mean[0], abs=2e-3)
    assert pixels.std() == pytest.approx(d.std[0], abs=2e-3)
    assert "timing" in d.label


# --- load_dataset --------------------------------------------------------------------


def test_image_data_prints_a_summary_not_its_arrays():
    text = repr(load_dataset("digits"))
    assert text == (
        "ImageData('digits', 'scikit-learn digits (8x8)', train=1257, val=180, test=360, "
        "images 8x8x1 uint8, 10 classes)"
    )


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("mnist", {}, "name must be one of 'cifar10', 'cifar10-jpeg', 'digits', 'random'"),
        ("digits", dict(path="x"), "path is only for 'cifar10' and 'cifar10-jpeg'"),
        ("digits", dict(download=True), "download=True is only for 'cifar10'"),
        ("digits", dict(n_train=0), "n_train must be None or an integer >= 1, got 0"),
        ("digits", dict(n_train=1258), "n_train must be at most the 1257 training images"),
        ("digits", dict(n_val=1438), "n_val must be smaller than the 1437 training images "
                                     "of digits, so that some are left to train on, got 1438"),
        ("random", dict(n_val=-1), "n_val must be an integer in 0..49999, got -1"),
        ("random", dict(split_seed=-1), "split_seed must be an integer >= 0, got -1"),
    ],
)
def test_load_dataset_names_the_bad_argument(name, kwargs, message):
    with pytest.raises(ValueError) as error:
        load_dataset(name, **kwargs)
    assert message in str(error.value)


def test_every_dataset_name_is_listed():
    assert DATASETS == ("cifar10", "cifar10-jpeg", "digits", "random")


# --- the JPEG copy, in miniature --------------------------------------------------


def write_fake_jpeg_npz(path, per_class: dict[str, int], seed: int = 0) -> None:
    """A small file in cifar10-jpeg.npz's format: JPEG blobs, offsets, labels sorted by class."""
    rng = np.random.default_rng(seed)
    arrays = {"classes": np.array(CIFAR10_CLASSES)}
    for split, n in per_class.items():
        blobs, labels = [], []
        for label in range(10):
            for _ in range(n):
                image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=90)
                blobs.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
                labels.append(label)
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
        arrays[f"{split}_labels"] = np.array(labels, dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.fixture
def jpeg_npz(tmp_path, monkeypatch):
    """A tiny JPEG copy (10 train, 4 test images per class); SAMLAB_DATA is a fresh folder."""
    monkeypatch.setenv("SAMLAB_DATA", str(tmp_path / "samlab-data"))
    path = tmp_path / "cifar10-jpeg.npz"
    write_fake_jpeg_npz(path, {"train": 10, "test": 4})
    return path


def cache_files(split: str) -> list:
    return sorted((data.data_dir() / "cache").glob(f"cifar10-jpeg-{split}-*.npy"))


def test_decoding_a_whole_split_writes_the_cache_atomically(jpeg_npz):
    images, labels = load_cifar10_jpeg("train", path=jpeg_npz)

    (cached,) = cache_files("train")
    assert os.listdir(cached.parent) == [cached.name]  # no temporary file left behind
    order = np.random.default_rng(0).permutation(100)
    assert np.array_equal(np.load(cached)[order], images)
    assert np.array_equal(labels, np.repeat(np.arange(10), 10)[order])


def test_a_second_call_reads_the_cache_and_returns_the_same_arrays(jpeg_npz, monkeypatch):
    first = load_cifar10_jpeg("test", path=jpeg_npz, seed=5)

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is there")

    monkeypatch.setattr(data.jpeg, "_decode_jpeg_split", no_decoding)
    second = load_cifar10_jpeg("test", path=jpeg_npz, seed=5)
    subset = load_cifar10_jpeg("test", n=7, path=jpeg_npz, seed=5)

    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert all(np.array_equal(a[:7], b) for a, b in zip(first, subset))


def test_a_subset_without_a_cache_is_decoded_directly_and_matches_the_cached_path(jpeg_npz):
    direct = load_cifar10_jpeg("train", n=13, seed=2, path=jpeg_npz)
    assert cache_files("train") == []  # only whole splits are cached

    load_cifar10_jpeg("train", path=jpeg_npz)
    cached = load_cifar10_jpeg("train", n=13, seed=2, path=jpeg_npz)
    assert all(np.array_equal(a, b) for a, b in zip(direct, cached))


def test_cache_false_neither_reads_nor_writes(jpeg_npz):
    load_cifar10_jpeg("test", path=jpeg_npz, cache=False)
    assert cache_files("test") == []


def test_a_changed_npz_gets_a_new_cache_entry(jpeg_npz):
    load_cifar10_jpeg("test", path=jpeg_npz)
    write_fake_jpeg_npz(jpeg_npz, {"train": 10, "test": 4}, seed=1)
    os.utime(jpeg_npz, ns=(0, 123_456_789))

    images, _ = load_cifar10_jpeg("test", path=jpeg_npz, cache=False)
    assert np.array_equal(load_cifar10_jpeg("test", path=jpeg_npz)[0], images)
    assert len(cache_files("test")) == 2


def test_a_cache_of_the_wrong_shape_is_ignored_and_rewritten(jpeg_npz):
    load_cifar10_jpeg("test", path=jpeg_npz)
    (cached,) = cache_files("test")
    np.save(cached, np.zeros((3, 32, 32, 3), np.uint8))

    images, _ = load_cifar10_jpeg("test", path=jpeg_npz)
    assert np.array_equal(images, load_cifar10_jpeg("test", path=jpeg_npz, cache=False)[0])
    assert np.load(cached).shape == (40, 32, 32, 3)


def test_load_dataset_jpeg_is_labelled_and_split_like_cifar10(jpeg_npz):
    d = load_dataset("cifar10-jpeg", path=jpeg_npz, n_val=20)

    assert isinstance(d, ImageData) and d.label == JPEG_LABEL == "JPEG-recompressed CIFAR-10"
    assert (len(d.train_labels), len(d.val_labels), len(d.test_labels)) == (80, 20, 40)
    assert np.array_equal(np.bincount(d.val_labels), [2] * 10)
    assert d.classes == CIFAR10_CLASSES and d.mean == data.CIFAR10_MEAN
    every_train, _ = load_cifar10_jpeg("train", path=jpeg_npz)
    pool = np.concatenate([d.train_images, d.val_images])
    assert sorted_rows(pool) == sorted_rows(every_train)


def test_a_missing_npz_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10-jpeg.npz not found"):
        load_cifar10_jpeg(path=tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="split must be one of 'train', 'test', got 'val'"):
        load_cifar10_jpeg("val")


@pytest.mark.parametrize("name", ["digits", "random"])
def test_n_test_keeps_the_same_stratified_test_images_for_every_run(name):
    full = load_dataset(name)
    a = load_dataset(name, n_test=100, split_seed=0)
    b = load_dataset(name, n_test=100, split_seed=3)
    assert len(a.test_labels) == len(b.test_labels) == 100
    if name == "digits":  # a fixed test set: the same subset whatever the run's seed,
        np.testing.assert_array_equal(a.test_images, b.test_images)
        # each image one of the full test set, classes in proportion
        rows = {img.tobytes() for img in full.test_images}
        assert all(img.tobytes() in rows for img in a.test_images)
        counts = np.bincount(a.test_labels, minlength=10)
        assert counts.min() >= 9 and counts.max() <= 11
    with pytest.raises(ValueError, match="n_test must be"):
        load_dataset(name, n_test=0)
