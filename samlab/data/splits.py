"""Seeded, stratified train/validation splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import validate


def split_train_val(
    labels_or_n: np.ndarray | Sequence[int] | int, n_val: int = 5000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of a training set into ``(train_idx, val_idx)`` (CIFAR-10: 45,000/5,000).

    Given labels, the split is **stratified**: each class gives the validation set its
    share ``n_val · n_c / N`` (largest remainders round it), drawn by a seeded
    permutation within the class, so CIFAR-10's 5,000 are 500 per class. Given a count
    ``N``, it is a plain seeded permutation: the last ``n_val`` indices go to validation.

    Both index arrays (int64) are in a seeded random order, so a prefix is a random
    subset; they partition ``0..N-1`` and depend only on ``(labels or N, n_val, seed)``.
    """
    if validate.is_integer(labels_or_n):
        labels, total = None, int(labels_or_n)
        if total < 1:
            raise ValueError(f"labels_or_n as a count must be >= 1, got {total}")
    else:
        labels = np.asarray(labels_or_n)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                "labels_or_n must be a 1-D array of integer labels or a count, got "
                f"shape {labels.shape} dtype {labels.dtype}"
            )
        total = len(labels)
    n_val = validate.integer("n_val", n_val, low=0, high=total)
    seed = validate.integer("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(total)
        return order[: total - n_val], order[total - n_val :]

    classes, counts = np.unique(labels, return_counts=True)
    share = n_val * counts / total
    quota = np.floor(share).astype(np.int64)
    # Largest remainders take the rounding; ties go to the smaller class label.
    by_remainder = np.argsort(-(share - quota), kind="stable")
    quota[by_remainder[: n_val - quota.sum()]] += 1
    val = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    val_idx = rng.permutation(np.concatenate(val))
    in_val = np.zeros(total, dtype=bool)
    in_val[val_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~in_val))
    return train_idx.astype(np.int64), val_idx.astype(np.int64)
