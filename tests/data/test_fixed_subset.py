"""``fixed_subset``: the same seeded examples every call, so every curve measures one thing."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from samlab.data import fixed_subset

X = torch.arange(100.0).view(100, 1).repeat(1, 3)
Y = torch.arange(100) % 10


def test_the_same_seed_gives_the_same_examples_in_the_same_batches():
    a = fixed_subset((X, Y), n=30, seed=7, batch_size=8)
    b = fixed_subset((X, Y), n=30, seed=7, batch_size=8)
    assert [len(x) for x, _ in a] == [8, 8, 8, 6]
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_a_different_seed_draws_different_examples_without_replacement():
    a = torch.cat([x[:, 0] for x, _ in fixed_subset((X, Y), n=30, seed=0)])
    b = torch.cat([x[:, 0] for x, _ in fixed_subset((X, Y), n=30, seed=1)])
    assert len(set(a.tolist())) == 30
    assert set(a.tolist()) != set(b.tolist())


def test_inputs_stay_paired_with_their_targets():
    for x, y in fixed_subset((X, Y), n=50, seed=3, batch_size=16):
        assert torch.equal(x[:, 0].long() % 10, y)


def test_a_dataset_and_its_tensors_give_the_same_subset():
    from_tensors = fixed_subset((X, Y), n=20, seed=2, batch_size=6)
    from_dataset = fixed_subset(TensorDataset(X, Y), n=20, seed=2, batch_size=6)
    for (xa, ya), (xb, yb) in zip(from_tensors, from_dataset, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_the_default_is_five_thousand_examples():
    x, y = torch.zeros(6000, 2), torch.zeros(6000, dtype=torch.long)
    batches = fixed_subset((x, y))
    assert sum(len(b) for b, _ in batches) == 5000


@pytest.mark.parametrize("n", [0, 101, 2.0])
def test_n_must_fit_in_the_dataset(n):
    with pytest.raises(ValueError, match=rf"n must be an integer in 1\.\.100, got {n}"):
        fixed_subset((X, Y), n=n)


def test_inputs_and_targets_must_have_the_same_length():
    with pytest.raises(ValueError, match=r"as many targets as inputs, got shapes \(100, 3\) "
                                         r"and \(99,\)"):
        fixed_subset((X, Y[:99]), n=10)


def test_something_that_is_not_data_is_refused():
    with pytest.raises(ValueError, match=r"data must be a pair \(inputs, targets\) of tensors "
                                         r"or a map-style dataset, got int"):
        fixed_subset(5, n=10)
