"""The stability edges of docs/edges.md solve their defining equation, and runs obey them.

Truth here is independent of ``samlab.edges``: ``λ_eff`` is written out below from
docs/edges.md#the-table, each method's step across ``f(x, y) = ½λx² + c·y`` is worked out
by hand (docs/edges.md#the-closed-form-check), and the runs come from ``samlab.toy``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from samlab import toy
from samlab.edges import edge, gd_edge, sam_edge, ssam_edge, usam_edge

LR, RHO, C = 0.1, 0.05, 0.5
X0 = 1e-6  # starting distance from the valley floor: |λx| ≪ c, so ‖g‖ = c to 1e-10


def lam_eff(method: str, lam, rho, grad_norm=None, gamma=1.0):
    """The curvature each method sees along the top eigenvector (docs/edges.md#the-table)."""
    return {
        "gd": lambda: lam,
        "usam": lambda: lam + rho * lam**2,
        "sam": lambda: lam + rho * lam**2 / grad_norm,
        "ssam": lambda: gamma * (lam + rho * lam**2),
        "rsam": lambda: gamma * (lam + rho * lam**2 / grad_norm),
    }[method]()


# -- the formulas ----------------------------------------------------------------------

LRS = np.geomspace(1e-4, 2.0, 7).reshape(-1, 1, 1, 1)
RHOS = np.array([0.0, 1e-9, 1e-3, 0.05, 0.5, 2.0, 50.0]).reshape(1, -1, 1, 1)
GRAD_NORMS = np.geomspace(1e-4, 1e4, 9).reshape(1, 1, -1, 1)
GAMMAS = np.array([0.05, 0.3, 1.0, 1.7]).reshape(1, 1, 1, -1)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("method", ["gd", "usam", "sam", "ssam", "rsam"])
def test_each_edge_solves_eta_times_lambda_eff_equals_two_plus_two_beta(method, momentum):
    lam = edge(method, LRS, RHOS, grad_norm=GRAD_NORMS, gamma=GAMMAS, momentum=momentum)
    assert np.all(lam > 0)
    lhs = LRS * lam_eff(method, lam, RHOS, GRAD_NORMS, GAMMAS)
    np.testing.assert_allclose(lhs, np.broadcast_to(2 + 2 * momentum, lhs.shape), rtol=1e-12)


def test_the_named_functions_are_the_rows_of_edge():
    assert edge("gd", LR) == edge("sgd", LR) == gd_edge(LR)
    assert edge("usam", LR, RHO) == usam_edge(LR, RHO)
    assert edge("sam", LR, RHO, grad_norm=C) == sam_edge(LR, RHO, C)
    assert edge("ssam", LR, RHO, gamma=0.4) == ssam_edge(LR, RHO, 0.4)
    assert edge("rsam", LR, RHO, grad_norm=C, gamma=0.4) == sam_edge(LR * 0.4, RHO, C)


def test_rho_zero_gives_gd_edge_exactly_and_tiny_rho_has_no_cancellation():
    lrs, betas = np.geomspace(1e-4, 3.0, 11), np.array([0.0, 0.5, 0.9, 0.99])[:, None]
    gd = gd_edge(lrs, betas)
    np.testing.assert_array_equal(usam_edge(lrs, 0.0, betas), gd)
    np.testing.assert_array_equal(sam_edge(lrs, 0.0, 0.3, betas), gd)
    np.testing.assert_array_equal(ssam_edge(lrs, 0.0, 1.0, betas), gd)
    # For small a = ρC, C = (2+2β)/η, the edge is C·(1 − a + 2a² − 5a³ + …) (the root's
    # series); the textbook form (√(1 + 4a) − 1)/(2ρ) loses the digits here, the stable
    # root keeps them.
    for rho in (1e-10, 1e-14, 1e-300):
        a = rho * gd
        np.testing.assert_allclose(usam_edge(lrs, rho, betas), gd * (1 - a + 2 * a**2 - 5 * a**3),
                                   rtol=1e-14)
    exact, textbook = 20 * (1 - 20e-14), (math.sqrt(1 + 4 * 1e-14 * 20) - 1) / (2 * 1e-14)
    assert abs(textbook - exact) > 1e-3  # η = 0.1, ρ = 1e-14: three digits left
    assert usam_edge(LR, 1e-14) == pytest.approx(exact, rel=1e-15)


def test_usam_edge_falls_as_rho_grows_and_lies_below_gd():
    rhos = np.geomspace(1e-6, 1e3, 50)
    lam = usam_edge(LR, rhos)
    assert np.all(np.diff(lam) < 0) and np.all(lam < gd_edge(LR))


def test_sam_edge_lies_below_gd_rises_with_grad_norm_and_tends_to_gd():
    grad_norms = np.geomspace(1e-8, 1e8, 200)
    lam = sam_edge(LR, RHO, grad_norms)
    assert np.all(np.diff(lam) > 0)
    assert np.all(lam < gd_edge(LR))
    assert sam_edge(LR, RHO, 1e12) == pytest.approx(gd_edge(LR), rel=1e-11)
    # ‖g‖ → 0: the ρλ²/‖g‖ term dominates and the edge falls like √(2‖g‖/(ηρ)).
    assert sam_edge(LR, RHO, 1e-12) == pytest.approx(math.sqrt(2e-12 / (LR * RHO)), rel=1e-5)


def test_ssam_with_gamma_one_is_usam_and_smaller_gamma_raises_the_edge():
    rhos = np.geomspace(1e-3, 10, 9)
    np.testing.assert_array_equal(ssam_edge(LR, rhos, 1.0), usam_edge(LR, rhos))
    np.testing.assert_array_equal(edge("rsam", LR, rhos, grad_norm=C, gamma=1.0),
                                  sam_edge(LR, rhos, C))
    assert np.all(ssam_edge(LR, rhos, 0.5) > usam_edge(LR, rhos))
    np.testing.assert_array_equal(ssam_edge(LR, rhos, 0.5), usam_edge(LR * 0.5, rhos))


def test_momentum_raises_every_edge_as_if_lr_were_divided_by_one_plus_beta():
    for beta in (0.5, 0.9):
        assert gd_edge(LR, beta) == pytest.approx((2 + 2 * beta) / LR, rel=1e-15)
        assert usam_edge(LR, RHO, beta) == pytest.approx(usam_edge(LR / (1 + beta), RHO), 1e-15)
        assert sam_edge(LR, RHO, C, beta) == pytest.approx(sam_edge(LR / (1 + beta), RHO, C),
                                                           rel=1e-15)


def test_edges_broadcast_like_numpy_and_are_floats_for_numbers():
    lr = np.geomspace(0.01, 0.1, 5)[:, None]        # a learning rate per epoch ...
    grad_norm = np.geomspace(0.1, 2.0, 7)[None, :]  # ... against a ‖g‖ per epoch
    lam = sam_edge(lr, RHO, grad_norm, momentum=0.9)
    assert lam.shape == (5, 7)
    for i, j in np.ndindex(5, 7):
        assert lam[i, j] == sam_edge(float(lr[i, 0]), RHO, float(grad_norm[0, j]), 0.9)
    assert isinstance(sam_edge(0.1, 0.05, 0.5), float)
    assert isinstance(edge("gd", np.float32(0.1)), float)
    assert edge("usam", [0.1, 0.2], RHO).shape == (2,)
    assert edge("ssam", 0.1, RHO, gamma=[[0.5], [1.0]]).shape == (2, 1)
    assert gd_edge([0.1, 0.2], momentum=[[0.0], [0.9]]).shape == (2, 2)


def test_a_vanishing_grad_norm_gives_edge_zero_not_nan():
    with np.errstate(all="raise"):
        assert sam_edge(LR, RHO, 1e-320) >= 0.0


# -- the closed-form check: TiltedValley -----------------------------------------------


def test_the_edges_of_the_closed_form_check():
    # η = 0.1, ρ = 0.05, ‖g‖ = c = 0.5: SAM's edge 10, GD's 20 (docs/edges.md).
    assert sam_edge(LR, RHO, C) == pytest.approx(10.0, rel=1e-15)
    assert gd_edge(LR) == pytest.approx(20.0, rel=1e-15)
    assert usam_edge(LR, RHO) == pytest.approx((math.sqrt(5) - 1) / (2 * RHO), rel=1e-15)


def test_tilted_valley_is_the_formula_with_its_derivatives():
    landscape = toy.TiltedValley(lam=7.0, c=0.5)
    p = np.random.default_rng(0).uniform(-2, 2, size=(20, 2))
    x, y = p[:, 0], p[:, 1]
    np.testing.assert_allclose(landscape.loss(p), 3.5 * x**2 + 0.5 * y, rtol=1e-14)
    np.testing.assert_allclose(landscape.grad(p), np.stack([7 * x, np.full(20, 0.5)], -1))
    np.testing.assert_array_equal(landscape.hessian(p), np.broadcast_to(np.diag([7.0, 0]),
                                                                        (20, 2, 2)))
    h, e = 1e-5, np.eye(2)
    for q in p:
        fd = [(landscape.loss(q + h * e[i]) - landscape.loss(q - h * e[i])) / (2 * h)
              for i in range(2)]
        np.testing.assert_allclose(landscape.grad(q), fd, rtol=1e-7, atol=1e-8)
    assert landscape.unbounded_below and landscape.critical_points == ()
    assert landscape.grad([[0.0, 3.0]]).shape == (1, 2)
    assert repr(landscape) == "TiltedValley(lam=7.0, c=0.5)"


def test_tilted_valley_lets_a_long_run_slide_without_leaving_it():
    traj = toy.run(toy.TiltedValley(lam=5.0, c=C), ["gd", "sam", "usam"], LR, RHO,
                   [0.3, 0.0], 2000)
    assert np.all(traj.exit_step == -1)
    np.testing.assert_allclose(traj.final[..., 1], -LR * C * 2000, rtol=1e-12)


@pytest.mark.parametrize("make, name", [
    (lambda: toy.TiltedValley(lam=0.0), "lam"),
    (lambda: toy.TiltedValley(lam=-1.0), "lam"),
    (lambda: toy.TiltedValley(c=float("nan")), "c"),
    (lambda: toy.TiltedValley(c=0.0), "c"),
    (lambda: toy.TiltedValley(lam="10"), "lam"),
])
def test_tilted_valley_parameters_must_be_positive_and_finite(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number > 0, got "):
        make()


def the_edge(method: str, gamma: float = 1.0) -> float:
    return edge(method, LR, RHO, grad_norm=C, gamma=gamma)


# Near the edge the deviation changes slowly: the factor |1 − ηλ_eff| is 1 at the edge itself.
# At 0.95× and 1.05× of it the factor is about 0.85-0.90 and 1.10-1.15 (GD's, 0.9 and 1.1,
# are the slowest), so 200 steps scale |x| by at most 0.9²⁰⁰ ≈ 7e-10 below and at least
# 1.1²⁰⁰ ≈ 2e8 above, far past the 1e3 asked either way: neither round-off nor the 1e-10
# change of ‖g‖ from c while x is tiny can flip a verdict. GD and USAM above their edge
# leave the landscape (positions become NaN), so "above" asks for the largest |x| on the way.
FACTORS = [0.8, 0.95, 1.05, 1.2]
STEPS = 200


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("method", ["gd", "usam", "sam", "ssam", "rsam"])
def test_runs_shrink_x_below_the_edge_and_grow_it_above(method, factor):
    # SSAM's and renormalized SAM's γ = ‖g‖/‖∇f(w_asc)‖ is 1 to 1e-9 near the floor, where
    # ‖g‖ ≈ c: measure it on a first step and use it.
    probe = toy.run(toy.TiltedValley(lam=10.0, c=C), method, LR, RHO, [X0, 0.0], 1)
    lam = factor * the_edge(method, gamma=float(probe.gammas[0]))
    traj = toy.run(toy.TiltedValley(lam=lam, c=C), method, LR, RHO, [X0, 0.0], STEPS)
    x = np.abs(traj.positions[:, 0])
    if factor < 1:
        assert np.isfinite(x[-1]) and x[-1] < 1e-3 * X0
    else:
        assert np.nanmax(x) > 1e3 * X0


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("method", ["gd", "usam", "sam"])
def test_each_step_across_the_valley_is_the_map_worked_by_hand(method, factor):
    lam = factor * the_edge(method)
    traj = toy.run(toy.TiltedValley(lam=lam, c=C), method, LR, RHO, [X0, 0.0], STEPS)
    x, y = traj.positions[:, 0], traj.positions[:, 1]
    ok = np.isfinite(x[1:])
    grad_norm = np.sqrt((lam * x[:-1]) ** 2 + C**2)
    factor_x = {
        "gd": 1 - LR * lam,
        "usam": 1 - LR * lam * (1 + RHO * lam),                 # ε = ρg: x + ρλx
        "sam": 1 - LR * lam * (1 + RHO * lam / grad_norm),      # ε = ρg/‖g‖
    }[method]
    np.testing.assert_allclose(x[1:][ok], (factor_x * x[:-1])[ok], rtol=1e-10)
    # Along the floor every method descends at the constant slope c.
    np.testing.assert_allclose(y[1:][ok], -LR * C * np.arange(1, STEPS + 1)[ok], rtol=1e-12)


@pytest.mark.parametrize("factor", [1.05, 1.5, 1.9])
def test_sam_above_its_edge_settles_where_its_edge_for_the_grown_grad_norm_equals_lambda(
        factor):
    # Above its edge SAM's |x| grows, ‖g‖ grows with it, and the edge rises with ‖g‖ until
    # it reaches λ: the run settles into the 2-cycle x ↦ −x (factor exactly −1), at the edge
    # of stability. λ stays below GD's edge 2/η, so the growth has somewhere to stop.
    lam = factor * the_edge("sam")
    traj = toy.run(toy.TiltedValley(lam=lam, c=C), "sam", LR, RHO, [X0, 0.0], 400)
    assert traj.outcome == "oscillating"
    assert sam_edge(LR, RHO, traj.grad_norms[-1]) == pytest.approx(lam, rel=1e-9)
    assert traj.positions[-1, 0] == pytest.approx(-traj.positions[-2, 0], rel=1e-9)


def test_above_usams_edge_usam_leaves_the_valley_while_sam_and_ssam_stay():
    # λ = 15: above USAM's edge (12.36) and SAM's (10), below GD's (20). USAM's factor
    # 1 − ηλ(1 + ρλ) ≈ −1.6 does not depend on x: nothing brakes it. SAM's normalization
    # and SSAM's γ (which falls as |x| grows) do.
    traj = toy.run(toy.TiltedValley(lam=15.0, c=C), ["usam", "sam", "ssam", "gd"], LR, RHO,
                   [X0, 0.0], 400)
    assert traj.outcome[0] == "diverged"
    assert np.all(np.isfinite(traj.final[1:])) and np.all(np.abs(traj.final[1:, 0]) < 0.2)
    assert abs(traj.final[3, 0]) < X0 * 1e-3  # GD, below its edge, goes to the floor


# -- bad inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("call, name, allowed, shown", [
    (lambda: gd_edge(0.0), "lr", "a finite number > 0", "0.0"),
    (lambda: gd_edge([0.1, -0.1]), "lr", "a finite number > 0", "-0.1"),
    (lambda: gd_edge("0.1"), "lr", "a number or an array of numbers", "'0.1'"),
    (lambda: gd_edge(0.1, momentum=1.0), "momentum", "a finite number in [0, 1)", "1.0"),
    (lambda: gd_edge(0.1, momentum=-0.1), "momentum", "a finite number >= 0", "-0.1"),
    (lambda: usam_edge(0.1, -0.05), "rho", "a finite number >= 0", "-0.05"),
    (lambda: usam_edge(0.1, float("inf")), "rho", "a finite number >= 0", "inf"),
    (lambda: sam_edge(0.1, 0.05, 0.0), "grad_norm", "a finite number > 0", "0.0"),
    (lambda: sam_edge(0.1, 0.05, [0.5, float("nan")]), "grad_norm", "a finite number > 0",
     "nan"),
    (lambda: ssam_edge(0.1, 0.05, -1.0), "gamma", "a finite number > 0", "-1.0"),
    (lambda: edge("sam", 0.1, 0.05), "grad_norm", "a finite number > 0 (sam's edge", "None"),
    (lambda: edge("rsam", 0.1, 0.05, grad_norm=0.5), "gamma", "a finite number > 0", "None"),
    (lambda: edge("ssam", 0.1, 0.05), "gamma", "a finite number > 0", "None"),
    (lambda: edge("usam", 0.1), "rho", "a finite number >= 0", "None"),
    (lambda: edge("gd", 0.1, rho=-1.0), "rho", "a finite number >= 0", "-1.0"),
    (lambda: edge("nope", 0.1), "method", "one of 'sgd', 'gd', 'sam'", "'nope'"),
])
def test_bad_arguments_are_refused_with_name_allowed_and_value(call, name, allowed, shown):
    with pytest.raises(ValueError, match=rf"^{name} must be ") as info:
        call()
    message = str(info.value)
    assert allowed in message and message.endswith(f", got {shown}")


def test_asam_has_no_closed_form_edge():
    with pytest.raises(ValueError, match=r"'asam' has no stability edge in closed form"):
        edge("asam", 0.1, 0.05, grad_norm=0.5)


def test_shapes_that_do_not_broadcast_are_named():
    with pytest.raises(ValueError, match=r"^lr, rho, grad_norm and momentum must broadcast .*"
                                         r"lr \(2,\), rho \(\), grad_norm \(3,\)"):
        sam_edge([0.1, 0.2], 0.05, [0.1, 0.2, 0.3])
