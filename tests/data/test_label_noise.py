"""Label noise (docs/training.md#label-noise): the fraction of training labels changed is the
fraction asked, each to another class; which ones and to what follow the noise seed and the
image, not the split or the training seed; validation and test labels stay clean."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from samlab.data import load_dataset, noisy_labels
from samlab.train import TrainConfig


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.4, 0.75, 1.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_the_fraction_changed_is_the_fraction_asked_each_to_another_class(fraction, seed):
    clean = load_dataset("digits", split_seed=seed)
    noisy = load_dataset("digits", split_seed=seed, label_noise=fraction)
    assert np.array_equal(noisy.train_images, clean.train_images)
    changed = noisy.train_labels != clean.train_labels
    assert changed.sum() == round(fraction * len(changed))  # exactly, not on average
    if fraction:
        assert np.array_equal(noisy.clean_train_labels, clean.train_labels)
        assert noisy.label == f"{clean.label}, {100 * fraction:.3g}% of training labels " \
                              f"noisy (seed 0)"
    else:
        assert noisy.clean_train_labels is None and noisy.label == clean.label


def test_validation_and_test_labels_stay_clean():
    clean = load_dataset("digits", split_seed=1, n_test=200)
    noisy = load_dataset("digits", split_seed=1, n_test=200, label_noise=0.6)
    for split in ("val", "test"):
        assert np.array_equal(getattr(noisy, f"{split}_labels"), getattr(clean, f"{split}_labels"))
        assert np.array_equal(getattr(noisy, f"{split}_images"), getattr(clean, f"{split}_images"))


def test_the_wrong_class_is_uniform_over_the_other_classes():
    labels = np.zeros(90_000, dtype=np.int64)
    noisy = noisy_labels(labels, np.arange(len(labels)), 1.0, seed=0, pool_size=len(labels),
                         num_classes=10)
    counts = np.bincount(noisy, minlength=10)
    assert counts[0] == 0
    expected = len(labels) / 9
    assert np.all(np.abs(counts[1:] - expected) < 5 * np.sqrt(expected))  # ~5 sigma


def pool_label(data) -> dict[int, int]:
    """Each training image's label, by its place in the dataset's own order."""
    return dict(zip(data.train_index.tolist(), data.train_labels.tolist()))


def test_training_seeds_see_the_same_wrong_label_on_the_images_they_share():
    """Two training seeds split digits differently; where both train on an image that the
    noise changes in both, it has the same wrong label; the noise seed changes them."""
    a, b = (load_dataset("digits", split_seed=s, label_noise=0.4) for s in (0, 1))
    clean = {s: pool_label(load_dataset("digits", split_seed=s)) for s in (0, 1)}
    la, lb = pool_label(a), pool_label(b)
    both = [i for i in la.keys() & lb.keys() if la[i] != clean[0][i] and lb[i] != clean[1][i]]
    assert len(both) > 0.3 * len(la)  # most corrupted images are corrupted in both splits
    assert all(la[i] == lb[i] for i in both)
    other = pool_label(load_dataset("digits", split_seed=0, label_noise=0.4,
                                    label_noise_seed=1))
    assert sum(other[i] != la[i] for i in la) > 0.2 * len(la)


def test_the_same_seed_gives_the_same_labels_in_another_process():
    code = ("import json, sys\n"
            "from samlab.data import load_dataset\n"
            "d = load_dataset('digits', split_seed=2, label_noise=0.3, label_noise_seed=5)\n"
            "json.dump(d.train_labels.tolist(), sys.stdout)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""})
    here = load_dataset("digits", split_seed=2, label_noise=0.3, label_noise_seed=5)
    assert json.loads(out.stdout) == here.train_labels.tolist()


def test_a_training_subset_gets_its_exact_fraction_too():
    data = load_dataset("random", n_train=300, n_val=50, n_test=20, label_noise=0.5)
    assert (data.train_labels != data.clean_train_labels).sum() == 150


@pytest.mark.parametrize("field, value, says", [
    ("label_noise", -0.1, "label_noise must be"),
    ("label_noise", 1.5, "label_noise must be"),
    ("label_noise", "lots", "label_noise must be"),
    ("label_noise_seed", -1, "label_noise_seed must be"),
])
def test_bad_noise_settings_name_the_field(field, value, says):
    with pytest.raises(ValueError, match=says):
        TrainConfig(dataset="digits", model="mlp", **{field: value})
    with pytest.raises(ValueError, match=says):
        load_dataset("digits", **{field: value})
