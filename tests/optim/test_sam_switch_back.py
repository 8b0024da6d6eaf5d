"""The switch back (docs/methods.md#late-phase-switching): SAM before ``end_step`` /
``end_epoch``, the base optimizer alone from it on, as the late-phase authors' runs that
return to SGD after their SAM epochs.

From the switch back on, every step is a plain SGD step, bit for bit the one torch's SGD
takes when handed the SAM phase's momentum buffer (or, with ``reset_on_switch=True``, none).
"""

from __future__ import annotations

import pytest
import torch
from sam_truth import LeastSquares, assert_resume_is_exact, assert_tensors_equal, detached

from samlab.optim import SAM

LR, MOMENTUM, WD, RHO = 0.05, 0.9, 1e-2, 0.3


def sam(params, **kw) -> SAM:
    return SAM(params, rho=RHO, lr=LR, momentum=MOMENTUM, weight_decay=WD, **kw)


def by_hand(switch_at: int, end_at: int, n: int, *, reset: bool) -> list[list[torch.Tensor]]:
    """Weights after each step: a late-phase SAM (no end) up to ``end_at``, then torch's
    SGD with the SAM phase's momentum buffer (or a fresh one when ``reset``)."""
    prob = LeastSquares()
    opt = sam(prob.params(), switch_step=switch_at, reset_on_switch=reset)
    trajectory = []
    for _ in range(end_at):
        opt.step(prob.closure_for(opt))
        trajectory.append(detached(prob.params()))
    sgd = torch.optim.SGD(prob.params(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    if not reset:
        for p in prob.params():
            sgd.state[p]["momentum_buffer"] = \
                opt.base_optimizer.state[p]["momentum_buffer"].clone()
    for _ in range(end_at, n):
        prob.closure_for(sgd)()
        sgd.step()
        trajectory.append(detached(prob.params()))
    return trajectory


@pytest.mark.parametrize("reset", [False, True], ids=["momentum carried", "momentum reset"])
def test_after_the_switch_back_the_steps_are_sgd_given_the_sam_phases_momentum(reset):
    switch_at, end_at, n = 2, 5, 9
    prob = LeastSquares()
    opt = sam(prob.params(), switch_step=switch_at, end_step=end_at, reset_on_switch=reset)
    expected = by_hand(switch_at, end_at, n, reset=reset)

    for step in range(n):
        opt.step(prob.closure_for(opt))
        assert_tensors_equal(detached(prob.params()), expected[step])


def test_carrying_and_resetting_the_momentum_at_the_switch_back_differ():
    carried, reset = by_hand(2, 5, 9, reset=False), by_hand(2, 5, 9, reset=True)
    assert (carried[-1][0] - reset[-1][0]).abs().max() > 1e-3


def test_the_closure_runs_once_per_plain_step_and_twice_per_sam_step_in_all_three_phases():
    prob = LeastSquares()
    opt = sam(prob.params(), switch_step=2, end_step=4)
    active, calls = [], []
    for _ in range(6):
        active.append(opt.sam_active)
        before = len(prob.calls)
        opt.step(prob.closure_for(opt))
        calls.append(len(prob.calls) - before)
    assert active == [False, False, True, True, False, False]
    assert calls == [1, 1, 2, 2, 1, 1]


def test_switch_epoch_and_end_epoch_give_sgd_sam_sgd_by_epoch():
    prob = LeastSquares()
    opt = sam(prob.params(), switch_epoch=1, end_epoch=3)
    active, calls = [], []
    for epoch in range(4):
        opt.set_epoch(epoch)
        active.append(opt.sam_active)
        for _ in range(2):
            before = len(prob.calls)
            opt.step(prob.closure_for(opt))
            calls.append(len(prob.calls) - before)
    assert active == [False, True, True, False]
    assert calls == [1, 1, 2, 2, 2, 2, 1, 1]


def test_without_a_switch_end_step_alone_is_sam_from_the_start_then_sgd():
    prob = LeastSquares()
    opt = sam(prob.params(), end_step=2)
    calls = []
    for _ in range(4):
        before = len(prob.calls)
        opt.step(prob.closure_for(opt))
        calls.append(len(prob.calls) - before)
    assert calls == [2, 2, 1, 1]
    assert opt.sam_active is False


def test_plain_steps_after_the_switch_back_record_no_ascent():
    prob = LeastSquares()
    opt = sam(prob.params(), end_step=1)
    opt.step(prob.closure_for(opt))
    assert torch.isfinite(opt.last_stats["gamma"])
    opt.step(prob.closure_for(opt))
    assert torch.isnan(opt.last_stats["gamma"]) and torch.isfinite(opt.last_stats["grad_norm"])


@pytest.mark.parametrize("checkpoint_at", [3, 6], ids=["in the SAM phase", "after the end"])
def test_a_resume_across_the_switch_back_continues_bit_for_bit(checkpoint_at):
    # With reset_on_switch the momentum is cleared once at the switch back: a resumed
    # optimizer that forgot it had switched back would clear it a second time.
    def build(params):
        return sam(params, switch_step=1, end_step=5, reset_on_switch=True)

    def ended_as_saved(opt):
        assert opt.state_dict()["samlab"]["ended"] is (checkpoint_at > 5)

    assert_resume_is_exact(build, checkpoint_at, n=9, after_load=ended_as_saved)


def test_a_checkpoint_from_before_the_switch_back_existed_loads_as_not_ended():
    prob = LeastSquares()
    opt = sam(prob.params(), end_step=3)
    state = opt.state_dict()
    del state["samlab"]["ended"]
    opt.load_state_dict(state)
    assert opt.sam_active


@pytest.mark.parametrize("kw, message", [
    (dict(switch_step=3, end_step=3), "end_step must be an integer > switch_step (3), got 3"),
    (dict(switch_epoch=2, end_epoch=1), "end_epoch must be an integer > switch_epoch (2), got 1"),
    (dict(switch_epoch=2, end_step=10), "end_step counts steps but switch_epoch counts epochs"),
    (dict(switch_step=2, end_epoch=10), "end_epoch counts epochs but switch_step counts steps"),
    (dict(end_step=3, end_epoch=3), "give end_step or end_epoch, not both"),
    (dict(end_step=0), "end_step must be None or an integer >= 1, got 0"),
])
def test_an_end_before_the_switch_or_in_another_unit_is_refused(kw, message):
    with pytest.raises(ValueError) as err:
        sam(LeastSquares().params(), **kw)
    assert message in str(err.value)


def test_end_epoch_without_set_epoch_says_to_call_set_epoch():
    prob = LeastSquares()
    opt = sam(prob.params(), end_epoch=2)
    with pytest.raises(RuntimeError, match=r"end_epoch is set.*set_epoch\(epoch\)"):
        opt.step(prob.closure_for(opt))
    assert prob.calls == []


def test_repr_names_the_switch_and_the_end():
    text = repr(sam(LeastSquares().params(), switch_epoch=150, end_epoch=160))
    assert "switch_epoch=150" in text and "end_epoch=160" in text
