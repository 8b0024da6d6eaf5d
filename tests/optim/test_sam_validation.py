"""Bad arguments fail at the public boundary with a message that names the parameter,
what is allowed, and what was given (STYLE: "Fail early, say exactly")."""

from __future__ import annotations

import math

import pytest
import torch
from sam_truth import LeastSquares

from samlab.optim import ASAM, SAM, SSAM, USAM


def params():
    return LeastSquares().params()


@pytest.mark.parametrize("rho", [-0.1, math.nan, math.inf, -math.inf, "0.05", True, None])
@pytest.mark.parametrize("cls", [SAM, USAM, SSAM, ASAM], ids=lambda c: c.__name__)
def test_rho_must_be_a_finite_number_at_least_zero(cls, rho):
    with pytest.raises(ValueError, match=r"rho must be a finite number >= 0, got") as info:
        cls(params(), rho=rho, lr=0.1)
    assert repr(rho) in str(info.value)


def test_a_parameter_groups_rho_is_checked_too():
    weight, bias = params()
    with pytest.raises(ValueError, match=r"rho must be a finite number >= 0, got -1"):
        SAM([{"params": [weight]}, {"params": [bias], "rho": -1}], rho=0.05, lr=0.1)


def test_ascent_must_be_one_of_the_three_rules():
    with pytest.raises(ValueError, match=r"ascent must be one of") as info:
        SAM(params(), ascent="sharpest", lr=0.1)
    for allowed in ("'normalized'", "'unnormalized'", "'adaptive'", "'sharpest'"):
        assert allowed in str(info.value)


def test_adaptive_variant_must_be_original_or_abs():
    with pytest.raises(ValueError, match=r"adaptive_variant must be one of") as info:
        ASAM(params(), adaptive_variant="squared", lr=0.1)
    for allowed in ("'original'", "'abs'", "'squared'"):
        assert allowed in str(info.value)


@pytest.mark.parametrize("eta", [-0.01, math.nan])
def test_adaptive_eta_must_be_a_finite_number_at_least_zero(eta):
    with pytest.raises(ValueError, match=r"adaptive_eta must be a finite number >= 0"):
        ASAM(params(), adaptive_eta=eta, lr=0.1)


def test_step_without_a_closure_says_a_closure_is_required_and_offers_the_two_call_form():
    opt = SAM(params(), lr=0.1)
    with pytest.raises(ValueError, match=r"closure is required") as info:
        opt.step()
    assert "first_step" in str(info.value) and "second_step" in str(info.value)


@pytest.mark.parametrize("name", ["switch_step", "switch_epoch"])
@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_switch_points_must_be_integers_at_least_zero(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be None or an integer >= 0, got"):
        SAM(params(), lr=0.1, **{name: value})


def test_switch_step_and_switch_epoch_are_exclusive():
    with pytest.raises(ValueError, match=r"switch_step or switch_epoch, not both"):
        SAM(params(), lr=0.1, switch_step=3, switch_epoch=1)


def test_set_epoch_takes_an_integer_at_least_zero():
    opt = SAM(params(), lr=0.1, switch_epoch=1)
    with pytest.raises(ValueError, match=r"epoch must be an integer >= 0, got -1"):
        opt.set_epoch(-1)


def test_base_optimizer_must_be_an_optimizer_class_not_an_instance():
    p = params()
    with pytest.raises(ValueError, match=r"base_optimizer must be a torch.optim.Optimizer class"):
        SAM(p, torch.optim.SGD(p, lr=0.1), lr=0.1)


def test_first_step_without_gradients_says_to_call_backward():
    opt = SAM(params(), lr=0.1)
    with pytest.raises(RuntimeError, match=r"backward"):
        opt.first_step()


def test_second_step_before_any_first_step_raises_and_counts_no_step():
    opt = SAM(params(), lr=0.1, switch_step=1)
    with pytest.raises(RuntimeError, match=r"first_step"):
        opt.second_step()
    assert opt.steps_taken == 0  # a failed call does not advance the late-phase clock
