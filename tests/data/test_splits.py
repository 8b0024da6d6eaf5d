"""split_train_val: the 45,000 / 5,000 split of docs/training.md#the-cifar-10-recipe, seeded,
stratified when given labels."""

from __future__ import annotations

import numpy as np
import pytest

from samlab.data import split_train_val

CIFAR_LIKE = np.repeat(np.arange(10), 5000)  # the JPEG copy's order: sorted by class


def assert_partition(train_idx: np.ndarray, val_idx: np.ndarray, total: int) -> None:
    assert train_idx.dtype == val_idx.dtype == np.int64
    both = np.concatenate([train_idx, val_idx])
    assert len(both) == total
    assert np.array_equal(np.sort(both), np.arange(total))


@pytest.mark.parametrize("labels_or_n", [CIFAR_LIKE, 50_000], ids=["labels", "count"])
def test_the_split_is_a_45000_5000_partition_of_the_training_set(labels_or_n):
    train_idx, val_idx = split_train_val(labels_or_n, n_val=5000, seed=0)
    assert (len(train_idx), len(val_idx)) == (45_000, 5000)
    assert_partition(train_idx, val_idx, 50_000)


def test_given_labels_the_validation_set_has_500_of_each_class():
    _, val_idx = split_train_val(CIFAR_LIKE, n_val=5000, seed=3)
    assert np.array_equal(np.bincount(CIFAR_LIKE[val_idx]), [500] * 10)


def test_uneven_classes_get_their_share_rounded_by_largest_remainder():
    labels = np.array([0] * 3 + [1] * 3 + [2] * 4)  # shares of 5: 1.5, 1.5, 2.0
    train_idx, val_idx = split_train_val(labels, n_val=5, seed=0)
    assert_partition(train_idx, val_idx, 10)
    assert np.array_equal(np.bincount(labels[val_idx], minlength=3), [2, 1, 2])


@pytest.mark.parametrize("labels_or_n", [CIFAR_LIKE, 50_000], ids=["labels", "count"])
def test_the_split_is_a_function_of_the_seed(labels_or_n):
    first = split_train_val(labels_or_n, seed=7)
    again = split_train_val(labels_or_n, seed=7)
    other = split_train_val(labels_or_n, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert set(first[1].tolist()) != set(other[1].tolist())


def test_the_indices_come_shuffled_so_a_prefix_is_a_random_subset():
    train_idx, _ = split_train_val(CIFAR_LIKE, seed=0)
    assert len(np.unique(CIFAR_LIKE[train_idx[:100]])) == 10


@pytest.mark.parametrize("n_val", [0, 10])
def test_n_val_may_be_zero_or_everything(n_val):
    train_idx, val_idx = split_train_val(np.arange(10) % 2, n_val=n_val)
    assert (len(train_idx), len(val_idx)) == (10 - n_val, n_val)
    assert_partition(train_idx, val_idx, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(labels_or_n=100, n_val=101), "n_val must be an integer in 0..100, got 101"),
        (dict(labels_or_n=100, n_val=-1), "n_val must be an integer in 0..100, got -1"),
        (dict(labels_or_n=100, n_val=2.5), "n_val must be an integer"),
        (dict(labels_or_n=100, n_val=10, seed=-1), "seed must be an integer >= 0, got -1"),
        (dict(labels_or_n=0), "labels_or_n as a count must be >= 1, got 0"),
        (dict(labels_or_n=np.zeros((4, 2), int)), "labels_or_n must be a 1-D array"),
        (dict(labels_or_n=np.zeros(4)), "integer labels"),
    ],
)
def test_bad_arguments_are_named_with_their_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        split_train_val(**kwargs)
