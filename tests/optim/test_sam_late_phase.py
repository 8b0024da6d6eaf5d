"""Late-phase switching (Zhou et al., ICLR 2025; docs/methods.md#late-phase-switching): plain SGD,
then SAM.

Before the switch the trajectory is torch's SGD bit for bit; after it, it is SAM's
update (docs/methods.md#the-table, closed-form least-squares gradients) stepped by the *same*
SGD, i.e. with the momentum buffer carried across, or by a fresh SGD with
``reset_on_switch=True``.
"""

from __future__ import annotations

import pytest
import torch
from sam_truth import (
    LeastSquares,
    assert_tensors_close,
    assert_tensors_equal,
    detached,
    sam_descent_gradient,
)

from samlab.optim import SAM, SSAM

LR, MOMENTUM, WD, RHO = 0.05, 0.9, 1e-2, 0.3


def reference_trajectory(switch_at: int, n_steps: int, *, reset: bool, method: str = "sam"):
    """Weights after each step: torch SGD for ``switch_at`` steps, then the SAM formula."""
    prob = LeastSquares()
    sgd = torch.optim.SGD(prob.params(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    trajectory = []
    for step in range(n_steps):
        if step == switch_at and reset:
            sgd = torch.optim.SGD(prob.params(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
        sgd.zero_grad()
        if step < switch_at:
            prob.closure_for(sgd)()
        else:
            d, _ = sam_descent_gradient(method, detached(prob.params()), prob.grad_fn, RHO)
            for p, di in zip(prob.params(), d):
                p.grad = di
        sgd.step()
        trajectory.append(detached(prob.params()))
    return trajectory


def test_before_the_switch_sgd_bit_for_bit_after_it_sam_with_the_momentum_carried_across():
    switch_at, n = 3, 7
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR, momentum=MOMENTUM, weight_decay=WD,
              switch_step=switch_at)
    expected = reference_trajectory(switch_at, n, reset=False)

    for step in range(n):
        opt.step(prob.closure_for(opt))
        if step < switch_at:
            assert_tensors_equal(detached(prob.params()), expected[step])
        else:
            assert_tensors_close(detached(prob.params()), expected[step])


def test_reset_on_switch_continues_as_sam_with_a_fresh_momentum_buffer():
    switch_at, n = 3, 7
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR, momentum=MOMENTUM, weight_decay=WD,
              switch_step=switch_at, reset_on_switch=True)
    expected = reference_trajectory(switch_at, n, reset=True)
    carried = reference_trajectory(switch_at, n, reset=False)
    # The two references are far apart, so the comparison below tells them apart.
    assert (expected[-1][0] - carried[-1][0]).abs().max() > 1e-3

    for step in range(n):
        opt.step(prob.closure_for(opt))
        assert_tensors_close(detached(prob.params()), expected[step])


def test_after_the_switch_the_steps_are_those_of_sam_given_the_same_state():
    # A SAM optimizer built at the switch and handed the plain phase's momentum buffer
    # takes bit-for-bit the late-phase optimizer's steps.
    switch_at, n = 3, 6
    late, twin = LeastSquares(), LeastSquares()
    opt = SSAM(late.params(), rho=RHO, lr=LR, momentum=MOMENTUM, switch_step=switch_at)
    sgd = torch.optim.SGD(twin.params(), lr=LR, momentum=MOMENTUM)
    for _ in range(switch_at):
        opt.step(late.closure_for(opt))
        twin.closure_for(sgd)()
        sgd.step()
    sam = SSAM(twin.params(), rho=RHO, lr=LR, momentum=MOMENTUM)
    for p in twin.params():
        sam.base_optimizer.state[p]["momentum_buffer"] = sgd.state[p]["momentum_buffer"].clone()

    for _ in range(switch_at, n):
        opt.step(late.closure_for(opt))
        sam.step(twin.closure_for(sam))
        assert_tensors_equal(detached(late.params()), detached(twin.params()))


def test_the_closure_runs_once_per_plain_step_and_twice_per_sam_step():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR, switch_step=2)
    calls_per_step, returned = [], []
    for _ in range(4):
        before = len(prob.calls)
        returned.append(opt.step(prob.closure_for(opt)))
        calls_per_step.append(len(prob.calls) - before)
        assert returned[-1] is prob.calls[before]["loss"]
    assert calls_per_step == [1, 1, 2, 2]


def test_switch_epoch_with_set_epoch_switches_at_the_start_of_that_epoch():
    steps_per_epoch, switch_epoch, epochs = 2, 2, 4
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR, momentum=MOMENTUM, weight_decay=WD,
              switch_epoch=switch_epoch)
    expected = reference_trajectory(switch_epoch * steps_per_epoch, epochs * steps_per_epoch,
                                    reset=False)
    calls_per_step, step = [], 0
    for epoch in range(epochs):
        opt.set_epoch(epoch)
        assert opt.sam_active == (epoch >= switch_epoch)
        for _ in range(steps_per_epoch):
            before = len(prob.calls)
            opt.step(prob.closure_for(opt))
            calls_per_step.append(len(prob.calls) - before)
            assert_tensors_close(detached(prob.params()), expected[step])
            step += 1
    assert calls_per_step == [1, 1, 1, 1, 2, 2, 2, 2]


def test_switch_epoch_without_set_epoch_says_to_call_set_epoch():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR, switch_epoch=3)
    with pytest.raises(RuntimeError, match=r"set_epoch\(epoch\)"):
        opt.step(prob.closure_for(opt))
    assert prob.calls == []  # failed before touching the model


def test_sam_active_flips_at_switch_step():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR, switch_step=2)
    active = []
    for _ in range(4):
        active.append(opt.sam_active)
        opt.step(prob.closure_for(opt))
    assert active == [False, False, True, True]
