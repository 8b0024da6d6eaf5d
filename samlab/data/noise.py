"""Label noise: a seeded fraction of the training labels replaced by wrong classes
(docs/training.md#label-noise).

SAM's robustness to noisy labels is one of its best-documented effects (Foret et al.
2021, section 3.3): a network that fits wrong labels ends in sharper minima. Only the
training split is corrupted; validation and test labels stay clean, so accuracy there
says how much of the clean task was learnt.
"""

from __future__ import annotations

import numpy as np

from .. import validate


def noisy_labels(labels: np.ndarray, index: np.ndarray, fraction: float, *, seed: int,
                 pool_size: int, num_classes: int) -> np.ndarray:
    """``labels`` with ``round(fraction · len(labels))`` of them changed to another class.

    Which labels change, and to what, is a property of the images, not of a split: from
    ``seed`` alone, every image of the dataset (``index`` holds each label's position in
    the dataset's own order, ``0 ≤ index < pool_size``) gets a rank and a wrong class,
    uniform over the other ``num_classes − 1``. The lowest-ranked ``round(fraction · n)``
    of ``labels`` take their wrong class. So the fraction changed is exactly the one asked,
    whatever the split, and an image that is corrupted in two runs (two training seeds,
    two methods) is given the same wrong label in both.
    """
    fraction = validate.number("label_noise", fraction, low=0.0, high=1.0)
    seed = validate.integer("label_noise_seed", seed, low=0)
    labels, index = np.asarray(labels), np.asarray(index)
    if labels.shape != index.shape or labels.ndim != 1:
        raise ValueError(f"labels and index must be 1-D and of one length, got shapes "
                         f"{labels.shape} and {index.shape}")
    if len(index) and (index.min() < 0 or index.max() >= pool_size):
        raise ValueError(f"index must lie in [0, {pool_size}), got {index.min()}..{index.max()}")
    rng = np.random.default_rng(seed)
    rank = rng.permutation(pool_size)
    shift = rng.integers(1, num_classes, size=pool_size)  # never 0: always another class
    chosen = np.argsort(rank[index], kind="stable")[:round(fraction * len(labels))]
    out = labels.copy()
    out[chosen] = (labels[chosen] + shift[index[chosen]]) % num_classes
    return out


def noise_label(fraction: float, seed: int) -> str:
    """How a dataset's label says it: ``"40% of training labels noisy (seed 0)"``."""
    return f"{100 * fraction:.3g}% of training labels noisy (seed {seed})"
