"""One step of every SAM-family optimizer is the update of docs/methods.md#the-table.

The truth is the closed-form least-squares gradient and the ascent/descent rules
written out again in ``sam_truth.py``; the model is a float64 ``nn.Linear``.
"""

from __future__ import annotations

import math

import pytest
import torch
from sam_truth import (
    HandSGD,
    LeastSquares,
    ascent,
    assert_tensors_close,
    assert_tensors_equal,
    autograd_grad_fn,
    detached,
    global_norm,
    least_squares_loss,
    sam_descent_gradient,
)
from torch import nn

from samlab.optim import ASAM, SAM, SSAM, USAM

# name in sam_truth -> (samlab constructor, extra keyword arguments for sam_truth.ascent)
METHODS = {
    "sam": (lambda params, **kw: SAM(params, **kw), {}),
    "usam": (lambda params, **kw: USAM(params, **kw), {}),
    "ssam": (lambda params, **kw: SSAM(params, **kw), {}),
    "asam-original": (lambda params, **kw: ASAM(params, **kw), {"variant": "original"}),
    "asam-abs": (lambda params, **kw: ASAM(params, adaptive_variant="abs", **kw),
                 {"variant": "abs"}),
    "sam-renormalized": (lambda params, **kw: SAM(params, renormalize=True, **kw), {}),
    "asam-renormalized": (lambda params, **kw: ASAM(params, renormalize=True, **kw),
                          {"variant": "original"}),
}


def truth_name(method: str) -> str:
    return "asam" if method in ("asam-original", "asam-abs") else method


def make(method: str, params, **kw):
    build, ascent_kw = METHODS[method]
    return build(params, **kw), ascent_kw


# -- one step against the formula -------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_one_step_is_the_spec_update_on_least_squares(method):
    prob, rho, lr = LeastSquares(), 0.3, 0.1
    opt, ascent_kw = make(method, prob.params(), rho=rho, lr=lr)
    w = detached(prob.params())

    opt.step(prob.closure_for(opt))

    d, eps = sam_descent_gradient(truth_name(method), w, prob.grad_fn, rho, **ascent_kw)
    assert_tensors_close(prob.calls[1]["w"], [wi + ei for wi, ei in zip(w, eps)])
    assert_tensors_close(detached(prob.params()), [wi - lr * di for wi, di in zip(w, d)])


@pytest.mark.parametrize("method", list(METHODS))
def test_three_steps_with_momentum_and_weight_decay_follow_the_formula(method):
    prob, rho = LeastSquares(), 0.2
    opt, ascent_kw = make(method, prob.params(), rho=rho, lr=0.05, momentum=0.9,
                          weight_decay=0.1)
    sgd = HandSGD(lr=0.05, momentum=0.9, weight_decay=0.1)
    w = detached(prob.params())
    for _ in range(3):
        opt.step(prob.closure_for(opt))
        d, _ = sam_descent_gradient(truth_name(method), w, prob.grad_fn, rho, **ascent_kw)
        w = sgd.step(w, d)
        assert_tensors_close(detached(prob.params()), w)


def test_the_asam_variants_differ_in_t_on_biases_and_by_eta():
    # The two ASAM rules must be told apart by the formula test above: on this problem
    # their ascents differ by far more than its tolerance.
    prob = LeastSquares()
    w = detached(prob.params())
    g = prob.grad_fn(w)
    original = ascent("asam", w, g, 0.3, variant="original")
    abs_ = ascent("asam", w, g, 0.3, variant="abs")
    assert (original[1] - abs_[1]).abs().max() > 1e-3
    assert (original[0] - abs_[0]).abs().max() > 1e-3


def test_weight_decay_is_applied_once_per_step():
    prob, rho, lr, wd = LeastSquares(), 0.3, 0.1, 0.2
    opt = SAM(prob.params(), rho=rho, lr=lr, weight_decay=wd)
    w = detached(prob.params())

    opt.step(prob.closure_for(opt))

    d, _ = sam_descent_gradient("sam", w, prob.grad_fn, rho)
    once = [wi - lr * (di + wd * wi) for wi, di in zip(w, d)]
    twice = [wi - lr * (di + 2 * wd * wi) for wi, di in zip(w, d)]
    assert_tensors_close(detached(prob.params()), once)
    assert max((a - b).abs().max() for a, b in zip(once, twice)) > 1e-2


@pytest.mark.parametrize("method", list(METHODS))
def test_base_optimizer_steps_from_exactly_the_original_weights(method):
    seen = []

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            seen.append([p.detach().clone() for g in self.param_groups for p in g["params"]])
            return super().step(closure)

    prob, rho = LeastSquares(), 0.7
    opt, ascent_kw = make(method, prob.params(), base_optimizer=RecordingSGD, rho=rho, lr=0.1,
                          momentum=0.9)
    rounding_shows = False
    for step in range(4):
        w = detached(prob.params())
        opt.step(prob.closure_for(opt))
        assert_tensors_equal(seen[step], w)
        # Bit-exactness is a real claim: undoing the ascent by subtracting ε would not
        # give these weights back.
        _, eps = sam_descent_gradient(truth_name(method), w, prob.grad_fn, rho, **ascent_kw)
        rounding_shows |= any(not torch.equal((wi + ei) - ei, wi) for wi, ei in zip(w, eps))
    assert rounding_shows


@pytest.mark.parametrize("method", list(METHODS))
def test_zero_gradient_gives_zero_perturbation_and_no_nan(method):
    prob = LeastSquares(zero_residual=True)
    opt, _ = make(method, prob.params(), rho=0.5, lr=0.1, momentum=0.9)
    w = detached(prob.params())

    opt.step(prob.closure_for(opt))

    assert_tensors_equal(prob.calls[1]["w"], w)  # w_asc = w
    assert_tensors_equal(detached(prob.params()), w)  # d = 0 and no weight decay
    for name in ("grad_norm", "ascent_grad_norm", "gamma"):
        assert torch.isfinite(opt.last_stats[name]), name


# -- the torch closure convention ---------------------------------------------------------------


def test_step_calls_the_closure_at_w_then_at_w_asc_and_returns_the_first_loss():
    prob, rho = LeastSquares(), 0.3
    opt = SAM(prob.params(), rho=rho, lr=0.1)
    w = detached(prob.params())

    loss = opt.step(prob.closure_for(opt))

    assert len(prob.calls) == 2
    assert loss is prob.calls[0]["loss"]
    assert_tensors_equal(prob.calls[0]["w"], w)
    _, eps = sam_descent_gradient("sam", w, prob.grad_fn, rho)
    assert_tensors_close(prob.calls[1]["w"], [wi + ei for wi, ei in zip(w, eps)])
    expected_loss = least_squares_loss(prob.X @ w[0].T + w[1], prob.Y)
    torch.testing.assert_close(loss.detach(), expected_loss, rtol=1e-12, atol=0)


def test_two_call_form_takes_the_same_step_as_step_with_closure():
    a, b = LeastSquares(), LeastSquares()
    opt_a = SAM(a.params(), rho=0.3, lr=0.1, momentum=0.9)
    opt_b = SAM(b.params(), rho=0.3, lr=0.1, momentum=0.9)
    for _ in range(3):
        opt_a.step(a.closure_for(opt_a))

        least_squares_loss(b.model(b.X), b.Y).backward()
        opt_b.first_step(zero_grad=True)
        least_squares_loss(b.model(b.X), b.Y).backward()
        opt_b.second_step(zero_grad=True)
    assert_tensors_equal(detached(b.params()), detached(a.params()))


def test_second_step_without_a_new_first_step_raises_instead_of_undoing_the_step():
    # Calling second_step twice restores the w saved by the earlier first_step, i.e.
    # silently reverts the base step just taken; the guard for "second_step called
    # without first_step" must cover it.
    prob = LeastSquares()
    opt = SAM(prob.params(), rho=0.3, lr=0.1)
    opt.step(prob.closure_for(opt))
    least_squares_loss(prob.model(prob.X), prob.Y).backward()
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step()


# -- observable quantities ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sam", "ssam"])
def test_last_stats_are_the_gradient_norms_and_their_ratio(method):
    prob, rho = LeastSquares(), 0.3
    opt, _ = make(method, prob.params(), rho=rho, lr=0.1)
    w = detached(prob.params())

    opt.step(prob.closure_for(opt))

    g = prob.grad_fn(w)
    eps = sam_descent_gradient(truth_name(method), w, prob.grad_fn, rho)[1]
    g_asc = prob.grad_fn([wi + ei for wi, ei in zip(w, eps)])
    stats = opt.last_stats
    for name in ("grad_norm", "ascent_grad_norm", "gamma"):
        assert isinstance(stats[name], torch.Tensor), name
    expected = {"grad_norm": global_norm(g), "ascent_grad_norm": global_norm(g_asc)}
    expected["gamma"] = expected["grad_norm"] / expected["ascent_grad_norm"]
    for name, value in expected.items():
        assert math.isclose(float(stats[name]), float(value), rel_tol=1e-6), name
    assert float(stats["gamma"]) != pytest.approx(1.0, abs=1e-3)  # the ratio is not trivial


@pytest.mark.parametrize("method", list(METHODS))
def test_eps_norm_is_the_length_of_the_perturbation(method):
    prob, rho = LeastSquares(), 0.3
    opt, ascent_kw = make(method, prob.params(), rho=rho, lr=0.1)
    w = detached(prob.params())
    opt.step(prob.closure_for(opt))
    eps = sam_descent_gradient(truth_name(method), w, prob.grad_fn, rho, **ascent_kw)[1]
    assert math.isclose(float(opt.last_stats["eps_norm"]), float(global_norm(eps)),
                        rel_tol=1e-6)


# -- ρ = 0 and parameter groups -------------------------------------------------------------------


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


@pytest.mark.parametrize("method", ["sam", "usam", "ssam", "asam-original", "asam-abs"])
@pytest.mark.parametrize(
    "base, base_kw",
    [(torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
     (torch.optim.Adam, dict(lr=1e-2, weight_decay=1e-2))],
    ids=["sgd-momentum", "adam"],
)
def test_rho_zero_is_the_base_optimizer_step_for_step(method, base, base_kw):
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    Y = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    sam_model, ref_model = tiny_mlp(), tiny_mlp()
    build, _ = METHODS[method]
    opt = build(sam_model.parameters(), base_optimizer=base, rho=0.0, **base_kw)
    ref = base(ref_model.parameters(), **base_kw)

    for _ in range(5):
        def closure():
            opt.zero_grad()
            loss = least_squares_loss(sam_model(X), Y)
            loss.backward()
            return loss

        opt.step(closure)
        ref.zero_grad()
        least_squares_loss(ref_model(X), Y).backward()
        ref.step()
        if method == "ssam":
            # docs/methods.md#the-table (the SSAM authors' code): γ = ‖g‖/(‖g_asc‖ + 1e-12), so at
            # ρ = 0 the
            # descent gradient is g·(1 − 1e-12/‖g‖): the base step up to that guard.
            for a, b in zip(detached(sam_model.parameters()), detached(ref_model.parameters())):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        else:
            assert_tensors_equal(detached(sam_model.parameters()),
                                 detached(ref_model.parameters()))


@pytest.mark.parametrize("method", ["sam", "usam", "asam-original"])
def test_each_parameter_group_is_perturbed_with_its_own_rho_and_the_global_norm(method):
    prob, rhos, lrs = LeastSquares(), (0.05, 0.6), (0.1, 0.02)
    weight, bias = prob.params()
    build, ascent_kw = METHODS[method]
    opt = build([{"params": [weight], "rho": rhos[0], "lr": lrs[0]},
                 {"params": [bias], "rho": rhos[1], "lr": lrs[1]}], rho=0.3, lr=0.5)
    w = detached(prob.params())

    opt.step(prob.closure_for(opt))

    d, eps = sam_descent_gradient(truth_name(method), w, prob.grad_fn, list(rhos), **ascent_kw)
    assert_tensors_close(prob.calls[1]["w"], [wi + ei for wi, ei in zip(w, eps)])
    assert_tensors_close(detached(prob.params()),
                         [wi - lr * di for wi, di, lr in zip(w, d, lrs)])


def test_a_group_added_later_is_perturbed_with_its_rho_and_stepped_by_the_base():
    prob, lr = LeastSquares(), 0.1
    weight, bias = prob.params()
    opt = SAM([weight], rho=0.2, lr=lr)
    opt.add_param_group({"params": [bias], "rho": 0.5})
    w = detached(prob.params())

    opt.step(prob.closure_for(opt))

    d, eps = sam_descent_gradient("sam", w, prob.grad_fn, [0.2, 0.5])
    assert_tensors_close(prob.calls[1]["w"], [wi + ei for wi, ei in zip(w, eps)])
    assert_tensors_close(detached(prob.params()), [wi - lr * di for wi, di in zip(w, d)])


# -- precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sam", "ssam"])
def test_a_float64_model_keeps_float64_precision(method):
    # The formula of docs/methods.md#the-table evaluated in float64 agrees with itself to ~1e-16; a
    # float64 step
    # should not be rounded through a float32 norm (or a float32 γ) on its way.
    prob, rho, lr = LeastSquares(), 0.5, 0.1
    opt, _ = make(method, prob.params(), rho=rho, lr=lr)
    w = detached(prob.params())

    opt.step(prob.closure_for(opt))

    d, _ = sam_descent_gradient(method, w, prob.grad_fn, rho)
    assert_tensors_close(detached(prob.params()), [wi - lr * di for wi, di in zip(w, d)],
                         rtol=1e-12, atol=1e-13)


def test_the_autograd_reference_agrees_with_the_closed_form_gradient():
    # sam_truth's two gradient sources (used by other test files) agree on this problem.
    prob = LeastSquares()
    w = detached(prob.params())
    grad_fn = autograd_grad_fn(prob.model, lambda out: least_squares_loss(out, prob.Y), prob.X)
    assert_tensors_close(grad_fn(w), prob.grad_fn(w), rtol=1e-12, atol=1e-14)
