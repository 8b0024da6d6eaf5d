"""SAM's second pass (at ``w_asc``) does not move BatchNorm running statistics
(docs/methods.md#batchnorm-in-the-second-pass).

After one SAM step the running mean, variance and batch count equal those of a copy
of the model that ran ONE forward pass at ``w`` on the same batch; the step itself is
the update of docs/methods.md#the-table with both gradients taken in train mode (batch statistics).
"""

from __future__ import annotations

import copy

import pytest
import torch
from sam_truth import (
    assert_tensors_close,
    assert_tensors_equal,
    autograd_grad_fn,
    detached,
    least_squares_loss,
    sam_descent_gradient,
)
from torch import nn

from samlab.optim import SAM, frozen_bn_stats

RHO, LR = 0.5, 0.1


def conv_bn_net(bn_momentum: float | None = 0.1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, momentum=bn_momentum), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * 3 * 3, 2),
    ).double()


def batch():
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(8, 2, 5, 5, generator=gen, dtype=torch.float64) * 2 + 1
    Y = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    return X, Y


def bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    bn = model[1]
    return [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]


def after_one_forward_at_w(model: nn.Module, X) -> list[torch.Tensor]:
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference(X)
    return bn_buffers(reference)


def step_with_closure(model, opt_kw, X, Y):
    opt = SAM(model.parameters(), rho=RHO, lr=LR, **opt_kw)

    def closure():
        opt.zero_grad()
        loss = least_squares_loss(model(X), Y)
        loss.backward()
        return loss

    opt.step(closure)


def two_call_form(model, frozen, X, Y):
    opt = SAM(model.parameters(), rho=RHO, lr=LR)
    least_squares_loss(model(X), Y).backward()
    opt.first_step(zero_grad=True)
    with frozen(model):
        least_squares_loss(model(X), Y).backward()
    opt.second_step()


WAYS = {
    "step-global-hooks": lambda m, X, Y: step_with_closure(m, {}, X, Y),
    "step-model": lambda m, X, Y: step_with_closure(m, {"model": m}, X, Y),
    "two-call-frozen(model)": lambda m, X, Y: two_call_form(m, frozen_bn_stats, X, Y),
    "two-call-frozen()": lambda m, X, Y: two_call_form(m, lambda _: frozen_bn_stats(), X, Y),
}


@pytest.mark.parametrize("bn_momentum", [0.1, None], ids=["momentum0.1", "cumulative"])
@pytest.mark.parametrize("way", list(WAYS))
def test_running_stats_after_a_sam_step_are_those_of_one_forward_at_w(way, bn_momentum):
    model = conv_bn_net(bn_momentum)
    X, Y = batch()
    expected = after_one_forward_at_w(model, X)

    WAYS[way](model, X, Y)

    assert_tensors_equal(bn_buffers(model), expected)
    assert int(model[1].num_batches_tracked) == 1


@pytest.mark.parametrize("way", list(WAYS))
def test_the_step_uses_batch_statistics_at_w_and_at_w_asc(way):
    model = conv_bn_net()
    X, Y = batch()
    w = detached(model.parameters())
    grad_fn = autograd_grad_fn(model, lambda out: least_squares_loss(out, Y), X)

    WAYS[way](model, X, Y)

    d, _ = sam_descent_gradient("sam", w, grad_fn, RHO)
    assert_tensors_close(detached(model.parameters()), [wi - LR * di for wi, di in zip(w, d)])
    assert model.training


def test_an_unfrozen_second_pass_would_move_the_running_stats():
    # What the tests above rule out: the batch at w_asc has other statistics.
    model = conv_bn_net()
    X, Y = batch()
    expected = after_one_forward_at_w(model, X)
    opt = SAM(model.parameters(), rho=RHO, lr=LR)
    least_squares_loss(model(X), Y).backward()
    opt.first_step()
    least_squares_loss(model(X), Y).backward()
    opt.second_step()
    moved = bn_buffers(model)
    assert not torch.equal(moved[0], expected[0])
    assert int(moved[2]) == 2


@pytest.mark.parametrize("scoped", [True, False], ids=["frozen(model)", "frozen()"])
def test_batchnorm_updates_its_statistics_again_after_the_frozen_block(scoped):
    model = conv_bn_net()
    X, _ = batch()
    with frozen_bn_stats(model if scoped else None), torch.no_grad():
        model(X)
    assert int(model[1].num_batches_tracked) == 0
    expected = after_one_forward_at_w(model, X)
    with torch.no_grad():
        model(X)
    assert_tensors_equal(bn_buffers(model), expected)
