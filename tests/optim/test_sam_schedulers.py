"""torch LR schedulers given the samlab optimizer drive the learning rate of its base step.

Checked through the update itself: with plain SGD as base (no momentum, no weight
decay) every step is ``w ← w − η_t·d_t``, with ``d_t`` from the formula of
docs/methods.md#the-table and ``η_t``
from the scheduler's closed form.
"""

from __future__ import annotations

import math
import warnings

import torch
from sam_truth import (
    LeastSquares,
    assert_tensors_close,
    detached,
    least_squares_loss,
    sam_descent_gradient,
)

from samlab.optim import SAM, SSAM

LR0, RHO = 0.2, 0.3


def check_updates_follow(opt, scheduler, prob, lr_at, n_steps, method="sam", switch_at=0):
    for t in range(n_steps):
        w = detached(prob.params())
        if t < switch_at:
            d = prob.grad_fn(w)
        else:
            d, _ = sam_descent_gradient(method, w, prob.grad_fn, RHO)
        opt.step(prob.closure_for(opt))
        scheduler.step()
        assert_tensors_close(detached(prob.params()),
                             [wi - lr_at(t) * di for wi, di in zip(w, d)])


def test_step_lr_on_sam_scales_the_base_step():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    check_updates_follow(opt, scheduler, prob, lambda t: LR0 * 0.1 ** (t // 2), 5)


def test_cosine_annealing_on_ssam_follows_the_cosine_schedule():
    prob, T_max, lr_min = LeastSquares(), 4, 0.01
    opt = SSAM(prob.params(), rho=RHO, lr=LR0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=lr_min)

    def lr_at(t):
        return lr_min + (LR0 - lr_min) * (1 + math.cos(math.pi * t / T_max)) / 2

    check_updates_follow(opt, scheduler, prob, lr_at, 4, method="ssam")


def test_the_schedule_runs_on_across_a_late_phase_switch():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR0, switch_step=2)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    check_updates_follow(opt, scheduler, prob, lambda t: LR0 * 0.5**t, 4, switch_at=2)


def test_a_scheduler_built_before_load_state_dict_still_drives_the_base_step():
    # load_state_dict replaces the base optimizer's parameter groups; the scheduler, which
    # holds the samlab optimizer, must keep reaching the groups the base steps with.
    source = LeastSquares()
    opt = SAM(source.params(), rho=RHO, lr=LR0)
    opt.step(source.closure_for(opt))
    checkpoint = opt.state_dict()

    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.load_state_dict(checkpoint)
    check_updates_follow(opt, scheduler, prob, lambda t: LR0 * 0.5**t, 3)


def test_a_scheduler_with_the_two_call_form_follows_its_schedule_without_a_step_order_warning():
    # torch warns "lr_scheduler.step() before optimizer.step() ... skip the first value of
    # the learning rate schedule" unless the optimizer marks that it stepped; with
    # first_step/second_step the schedule is right, so that warning would be false.
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=RHO, lr=LR0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for t in range(3):
            w = detached(prob.params())
            d, _ = sam_descent_gradient("sam", w, prob.grad_fn, RHO)
            least_squares_loss(prob.model(prob.X), prob.Y).backward()
            opt.first_step()
            least_squares_loss(prob.model(prob.X), prob.Y).backward()
            opt.second_step(zero_grad=True)
            scheduler.step()
            assert_tensors_close(detached(prob.params()),
                                 [wi - LR0 * 0.5**t * di for wi, di in zip(w, d)])
