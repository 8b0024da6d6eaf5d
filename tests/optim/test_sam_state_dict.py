"""A run resumed from a mid-run checkpoint continues exactly as the uninterrupted run
(docs/methods.md#state-and-resume).

The checkpoint goes through ``torch.save`` / ``torch.load`` (with torch's safe default,
``weights_only=True``) into a *fresh* model and optimizer, built from a different seed so
that nothing but the checkpoint can make the two runs agree.
"""

from __future__ import annotations

import io

import pytest
import torch
from sam_truth import (
    LeastSquares,
    assert_resume_is_exact,
    assert_tensors_equal,
    checkpoint_bytes,
    detached,
)

from samlab.optim import ASAM, SAM, SSAM

CONFIGS = {
    "sam-sgd": lambda params: SAM(params, rho=0.3, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "sam-adam": lambda params: SAM(params, torch.optim.Adam, rho=0.3, lr=1e-2),
    "ssam": lambda params: SSAM(params, rho=0.3, lr=0.05, momentum=0.9),
    "asam": lambda params: ASAM(params, rho=0.5, lr=0.05, momentum=0.9),
    "late-phase": lambda params: SAM(params, rho=0.3, lr=0.05, momentum=0.9, switch_step=4),
    "late-phase-reset": lambda params: SAM(params, rho=0.3, lr=0.05, momentum=0.9,
                                           switch_step=4, reset_on_switch=True),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_resuming_from_a_mid_run_checkpoint_continues_bit_for_bit(name):
    assert_resume_is_exact(CONFIGS[name], checkpoint_at=2, n=7)  # late phase: before the switch


def test_resuming_after_the_switch_stays_in_the_sam_phase():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=0.3, lr=0.05, momentum=0.9, switch_epoch=1)
    for epoch in range(2):
        opt.set_epoch(epoch)
        opt.step(prob.closure_for(opt))
    checkpoint = checkpoint_bytes(prob, opt)
    opt.step(prob.closure_for(opt))
    expected = detached(prob.params())

    resumed = LeastSquares(model_seed=99)
    opt2 = SAM(resumed.params(), rho=0.3, lr=0.05, momentum=0.9, switch_epoch=1)
    state = torch.load(io.BytesIO(checkpoint), weights_only=True)
    resumed.model.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    assert opt2.sam_active  # the epoch came back with the checkpoint: no set_epoch needed
    opt2.step(resumed.closure_for(opt2))
    assert len(resumed.calls) == 2
    assert_tensors_equal(detached(resumed.params()), expected)


def test_state_dict_holds_the_momentum_buffers_and_no_copy_of_the_weights():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=0.3, lr=0.05, momentum=0.9)
    for _ in range(2):
        opt.step(prob.closure_for(opt))

    state = opt.state_dict()

    buffers = [opt.base_optimizer.state[p]["momentum_buffer"] for p in prob.params()]
    saved = [state["base"]["state"][i]["momentum_buffer"] for i in range(len(buffers))]
    assert_tensors_equal(saved, buffers)

    def tensors(obj):
        if isinstance(obj, torch.Tensor):
            return [obj]
        if isinstance(obj, dict):
            return [t for v in obj.values() for t in tensors(v)]
        if isinstance(obj, (list, tuple)):
            return [t for v in obj for t in tensors(v)]
        return []

    assert len(tensors(state)) == len(buffers)  # nothing transient (w, ε) rides along


def test_load_state_dict_rejects_a_plain_torch_optimizer_state_naming_the_expected_keys():
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=0.3, lr=0.05, momentum=0.9)
    plain = torch.optim.SGD(prob.params(), lr=0.05, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match=r"state_dict.*'base'.*'samlab'"):
        opt.load_state_dict(plain)
