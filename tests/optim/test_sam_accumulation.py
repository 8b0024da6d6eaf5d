"""Gradient accumulation: a closure that sums four quarter-batch losses (each divided by 4)
takes the step the full batch takes, for both the ascent and the descent gradient.

The mean loss of the batch is the mean of its quarters' mean losses, so the two
closures differ only in summation order (~1e-16 in float64).
"""

from __future__ import annotations

import pytest
import torch
from sam_truth import assert_tensors_close, detached, least_squares_loss
from torch import nn

from samlab.optim import SAM, SSAM

MICRO_BATCHES = 4
OPTIMIZERS = {
    "sam": lambda params: SAM(params, rho=0.1, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "ssam": lambda params: SSAM(params, rho=0.5, lr=0.1, momentum=0.9, weight_decay=1e-3),
}
TOL = dict(rtol=0.0, atol=1e-6)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def data():
    gen = torch.Generator().manual_seed(7)
    return (torch.randn(16, 4, generator=gen, dtype=torch.float64),
            torch.randn(16, 3, generator=gen, dtype=torch.float64))


def full_batch_closure(model, opt, X, Y):
    def closure():
        opt.zero_grad()
        loss = least_squares_loss(model(X), Y)
        loss.backward()
        return loss

    return closure


def accumulating_closure(model, opt, X, Y):
    def closure():
        opt.zero_grad()
        total = 0.0
        for x, y in zip(X.chunk(MICRO_BATCHES), Y.chunk(MICRO_BATCHES)):
            loss = least_squares_loss(model(x), y) / MICRO_BATCHES
            loss.backward()
            total += loss.detach()
        return total

    return closure


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_accumulating_four_micro_batches_takes_the_full_batch_step(name):
    X, Y = data()
    full, accumulated = mlp(), mlp()
    opt_full = OPTIMIZERS[name](full.parameters())
    opt_acc = OPTIMIZERS[name](accumulated.parameters())
    for _ in range(3):
        loss_full = opt_full.step(full_batch_closure(full, opt_full, X, Y))
        loss_acc = opt_acc.step(accumulating_closure(accumulated, opt_acc, X, Y))
        torch.testing.assert_close(loss_acc, loss_full.detach(), rtol=1e-12, atol=0)
        assert_tensors_close(detached(accumulated.parameters()), detached(full.parameters()),
                             **TOL)
    # The steps were not trivial: the weights moved far beyond the tolerance.
    assert max((a - b).abs().max() for a, b in zip(detached(full.parameters()),
                                                     detached(mlp().parameters()))) > 1e-2


def test_accumulating_in_the_two_call_form_takes_the_full_batch_step():
    X, Y = data()
    full, accumulated = mlp(), mlp()
    opt_full = OPTIMIZERS["sam"](full.parameters())
    opt_acc = OPTIMIZERS["sam"](accumulated.parameters())
    for _ in range(3):
        opt_full.step(full_batch_closure(full, opt_full, X, Y))
        accumulate = accumulating_closure(accumulated, opt_acc, X, Y)
        accumulate()
        opt_acc.first_step()
        accumulate()
        opt_acc.second_step()
        assert_tensors_close(detached(accumulated.parameters()), detached(full.parameters()),
                             **TOL)
