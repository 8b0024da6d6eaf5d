"""One step of every method is the update of docs/methods.md#the-table; on quadratics, a known
linear map.

The truth is written out here in NumPy: matrix powers of ``I − ηH`` and
``I − η(H + ρH²)`` (docs/toy.md#closed-forms), and each method's ascent/descent rule applied by
hand with the landscape's gradient written out again in this file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from samlab.toy import (
    EPS,
    METHODS,
    BoundedSaddle,
    ConvexQuadratic,
    Hyperbola,
    SaddleQuadratic,
    SharpFlatValley,
    get_method,
    run,
    theory,
)

ADAPTIVE_ETA = 0.01  # docs/methods.md#asams-two-variants: ASAM's T = |w| + η_a with η_a = 0.01
GUARD = 1e-12  # docs/methods.md#the-table: every division by a norm is guarded by this epsilon


def norm(v) -> float:
    return float(np.linalg.norm(v))


def safe_ratio(num: float, den: float) -> float:
    return num / (den + GUARD)


def rotated_H(eigenvalues, angle) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return R @ np.diag(eigenvalues) @ R.T


QUADRATICS = [
    ("convex", ConvexQuadratic((2.0, 0.3), angle=0.6), rotated_H((2.0, 0.3), 0.6)),
    ("convex-axis", ConvexQuadratic((1.0, 0.1)), np.diag([1.0, 0.1])),
    ("saddle", SaddleQuadratic(1.5, 0.7), np.diag([1.5, -0.7])),
]


# -- linear maps on quadratics ---------------------------------------------------------------


@pytest.mark.parametrize("name, landscape, H", QUADRATICS, ids=[q[0] for q in QUADRATICS])
def test_gd_on_a_quadratic_is_the_matrix_power_of_I_minus_lr_H(name, landscape, H):
    lr, x0, n = 0.15, np.array([0.8, -0.6]), 40
    traj = run(landscape, "gd", lr, 0.0, x0, n)
    M = np.eye(2) - lr * H
    expected = np.stack([np.linalg.matrix_power(M, t) @ x0 for t in range(n + 1)])
    np.testing.assert_allclose(traj.positions, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, landscape, H", QUADRATICS, ids=[q[0] for q in QUADRATICS])
@pytest.mark.parametrize("rho", [0.0, 0.4, 1.3])
def test_usam_on_a_quadratic_is_the_matrix_power_of_I_minus_lr_H_plus_rho_H2(
    name, landscape, H, rho
):
    lr, x0, n = 0.1, np.array([0.8, -0.6]), 40
    traj = run(landscape, "usam", lr, rho, x0, n)
    M = np.eye(2) - lr * (H + rho * H @ H)
    expected = np.stack([np.linalg.matrix_power(M, t) @ x0 for t in range(n + 1)])
    np.testing.assert_allclose(traj.positions, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, landscape, H", QUADRATICS, ids=[q[0] for q in QUADRATICS])
def test_ssam_one_step_is_usam_direction_scaled_by_gamma(name, landscape, H):
    lr, rho = 0.2, 0.7
    for x in np.random.default_rng(0).uniform(-1, 1, size=(8, 2)):
        Hx = H @ x
        d = (H + rho * H @ H) @ x
        gamma = safe_ratio(norm(Hx), norm(d))
        traj = run(landscape, "ssam", lr, rho, x, 1)
        np.testing.assert_allclose(traj.positions[1], x - lr * gamma * d, rtol=1e-12)
        assert traj.gammas[0] == pytest.approx(gamma, rel=1e-12)
        assert traj.grad_norms[0] == pytest.approx(np.linalg.norm(Hx), rel=1e-14)
        assert traj.ascent_grad_norms[0] == pytest.approx(np.linalg.norm(d), rel=1e-14)
        # The renormalized descent gradient has the length of the plain gradient.
        step_length = np.linalg.norm(traj.positions[1] - x)
        assert step_length == pytest.approx(lr * np.linalg.norm(Hx), rel=1e-12)


@pytest.mark.parametrize("name, landscape, H", QUADRATICS, ids=[q[0] for q in QUADRATICS])
def test_sam_one_step_is_gradient_at_the_normalized_ascent_point(name, landscape, H):
    lr, rho = 0.2, 0.3
    for x in np.random.default_rng(1).uniform(-1, 1, size=(8, 2)):
        Hx = H @ x
        w_asc = x + rho * Hx / (norm(Hx) + GUARD)
        traj = run(landscape, "sam", lr, rho, x, 1)
        np.testing.assert_allclose(traj.positions[1], x - lr * H @ w_asc, rtol=1e-12)
        assert traj.grad_norms[0] == pytest.approx(np.linalg.norm(Hx), rel=1e-14)
        assert traj.ascent_grad_norms[0] == pytest.approx(np.linalg.norm(H @ w_asc), rel=1e-12)
        assert traj.gammas[0] == pytest.approx(safe_ratio(norm(Hx), norm(H @ w_asc)), rel=1e-12)


@pytest.mark.parametrize("name, landscape, H", QUADRATICS, ids=[q[0] for q in QUADRATICS])
def test_asam_one_step_follows_the_spec_with_T_equal_abs_w_plus_eta_a(name, landscape, H):
    lr, rho = 0.2, 0.5
    for x in np.random.default_rng(2).uniform(-1, 1, size=(8, 2)):
        T = np.diag(np.abs(x) + ADAPTIVE_ETA)
        g = H @ x
        w_asc = x + rho * T @ T @ g / (norm(T @ g) + GUARD)
        traj = run(landscape, "asam", lr, rho, x, 1)
        np.testing.assert_allclose(traj.positions[1], x - lr * H @ w_asc, rtol=1e-12)
        assert traj.ascent_grad_norms[0] == pytest.approx(np.linalg.norm(H @ w_asc), rel=1e-12)


def test_asam_uses_the_adaptive_eta_it_is_given():
    landscape, H = ConvexQuadratic((2.0, 0.3), angle=0.6), rotated_H((2.0, 0.3), 0.6)
    x, lr, rho, eta_a = np.array([0.9, -0.05]), 0.2, 0.5, 0.3
    T = np.diag(np.abs(x) + eta_a)
    g = H @ x
    w_asc = x + rho * T @ T @ g / (norm(T @ g) + GUARD)
    traj = run(landscape, "asam", lr, rho, x, 1, adaptive_eta=eta_a)
    np.testing.assert_allclose(traj.positions[1], x - lr * H @ w_asc, rtol=1e-12)


@pytest.mark.parametrize("name, landscape, H", QUADRATICS, ids=[q[0] for q in QUADRATICS])
def test_rsam_one_step_is_sam_direction_rescaled_to_the_plain_gradient_length(
    name, landscape, H
):
    lr, rho = 0.2, 0.3
    for x in np.random.default_rng(3).uniform(-1, 1, size=(8, 2)):
        Hx = H @ x
        d = H @ (x + rho * Hx / (norm(Hx) + GUARD))
        gamma = safe_ratio(norm(Hx), norm(d))
        traj = run(landscape, "rsam", lr, rho, x, 1)
        np.testing.assert_allclose(traj.positions[1], x - lr * gamma * d, rtol=1e-12)
        assert traj.gammas[0] == pytest.approx(gamma, rel=1e-12)


# -- every method on non-quadratic landscapes, against a reference step written here --------


def grad_bounded_saddle(p, a=2.0, b=0.5, c=3.0):
    return np.array([a * p[0], -b * p[1] + c * p[1] ** 3])


def grad_hyperbola(p):
    r = p[0] * p[1] - 1.0
    return np.array([r * p[1], r * p[0]])


def grad_valley(p, ls=20.0, lf=0.5, w=0.4):
    bump = (ls - lf) * math.exp(-p[0] ** 2 / (2 * w * w))
    return np.array([0.5 * (-p[0] / w**2) * bump * p[1] ** 2, (lf + bump) * p[1]])


def reference_step(grad, method, p, lr, rho, eta_a=ADAPTIVE_ETA):
    """docs/methods.md's table, one row at a time; returns (new point, ‖g‖, ‖g_asc‖, γ)."""
    g = grad(p)
    if method in ("gd", "sgd"):
        return p - lr * g, norm(g), norm(g), safe_ratio(norm(g), norm(g))
    if method in ("sam", "rsam"):
        eps = rho * g / (norm(g) + GUARD)
    elif method in ("usam", "ssam"):
        eps = rho * g
    elif method == "asam":
        T = np.abs(p) + eta_a
        eps = rho * T * T * g / (norm(T * g) + GUARD)
    g_asc = grad(p + eps)
    gamma = safe_ratio(norm(g), norm(g_asc))
    d = gamma * g_asc if method in ("ssam", "rsam") else g_asc
    return p - lr * d, norm(g), norm(g_asc), gamma


NONLINEAR = [
    ("bounded-saddle", BoundedSaddle(2.0, 0.5, 3.0), grad_bounded_saddle),
    ("hyperbola", Hyperbola(), grad_hyperbola),
    ("valley", SharpFlatValley(20.0, 0.5, 0.4), grad_valley),
]


@pytest.mark.parametrize("name, landscape, grad", NONLINEAR, ids=[n[0] for n in NONLINEAR])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_three_steps_of_each_method_follow_the_spec_table(name, landscape, grad, method):
    lr, rho = 0.05, 0.2
    for x0 in np.random.default_rng(4).uniform(-1.2, 1.2, size=(4, 2)):
        traj = run(landscape, method, lr, rho, x0, 3)
        p = x0
        for t in range(3):
            p, gn, an, gamma = reference_step(grad, method, p, lr, rho)
            np.testing.assert_allclose(traj.positions[t + 1], p, rtol=1e-11, atol=1e-14)
            assert traj.grad_norms[t] == pytest.approx(gn, rel=1e-11)
            assert traj.ascent_grad_norms[t] == pytest.approx(an, rel=1e-11)
            assert traj.gammas[t] == pytest.approx(gamma, rel=1e-11)


@pytest.mark.parametrize("name, landscape, grad", NONLINEAR, ids=[n[0] for n in NONLINEAR])
def test_recorded_losses_are_the_loss_at_the_recorded_positions(name, landscape, grad):
    traj = run(landscape, ["gd", "sam", "usam"], 0.05, 0.2, [0.7, -0.4], 20)
    np.testing.assert_array_equal(traj.losses, landscape.loss(traj.positions))


def test_every_method_named_in_the_spec_table_is_available():
    assert set(METHODS) == {"sgd", "sam", "usam", "ssam", "asam", "rsam"}
    assert get_method("gd") is get_method("sgd")  # gd: the full-batch name of the same row
    assert get_method("gd").ascent == "none"
    assert get_method("sam").normalized and not get_method("usam").normalized
    assert get_method("ssam").renormalize and get_method("rsam").renormalize
    assert not get_method("sam").renormalize and not get_method("usam").renormalize
    assert EPS == 1e-12


# -- samlab.toy.theory against the formulas written out here ---------------------------------


def test_gd_and_usam_maps_are_I_minus_lr_H_and_I_minus_lr_H_plus_rho_H2():
    H = rotated_H((2.0, -0.3), 0.4)
    np.testing.assert_allclose(theory.gd_map(H, 0.1), np.eye(2) - 0.1 * H, rtol=1e-15)
    np.testing.assert_allclose(
        theory.usam_map(H, 0.1, 0.5), np.eye(2) - 0.1 * (H + 0.5 * H @ H), rtol=1e-15
    )


def test_usam_factor_is_one_minus_lr_lambda_one_plus_rho_lambda():
    lam = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    lr, rho = 0.3, 0.7
    np.testing.assert_allclose(
        theory.usam_factor(lam, lr, rho), 1 - lr * lam * (1 + rho * lam), rtol=1e-15
    )
    # The factor is the eigenvalue of the USAM map along that eigenvector.
    H = rotated_H((2.0, -1.0), 1.1)
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(theory.usam_map(H, lr, rho))),
        np.sort(theory.usam_factor(np.array([2.0, -1.0]), lr, rho)),
        rtol=1e-13,
    )


def test_stability_predicates_are_the_closed_form_thresholds():
    lrs = np.linspace(0.01, 3.0, 60)[:, None]
    rhos = np.linspace(0.0, 2.0, 41)[None, :]
    lam = 1.7
    np.testing.assert_array_equal(theory.gd_stable(lrs, lam), lrs * lam < 2)
    np.testing.assert_array_equal(
        theory.usam_stable(lrs, rhos, lam), lrs * lam * (1 + rhos * lam) < 2
    )


def test_usam_captures_a_negative_curvature_below_minus_one_over_rho():
    rhos = np.linspace(0.05, 5.0, 100)
    for lam in (-0.3, -1.0, -4.0):
        np.testing.assert_array_equal(theory.usam_captures(rhos, lam), lam < -1 / rhos)


def test_usam_saddle_trapped_needs_rho_above_one_over_b_and_no_overshoot():
    a, b = 1.3, 0.8
    lrs = np.linspace(0.02, 3.0, 50)[:, None]
    rhos = np.linspace(0.0, 6.0, 61)[None, :]
    along_x = np.abs(1 - lrs * a * (1 + rhos * a)) < 1
    along_y = (rhos > 1 / b) & (lrs * b * (rhos * b - 1) < 2)
    np.testing.assert_array_equal(theory.usam_saddle_trapped(lrs, rhos, a, b), along_x & along_y)


def test_ssam_gamma_is_the_gradient_norm_ratio_at_a_batch_of_points():
    H = rotated_H((2.0, 0.3), 0.6)
    p = np.random.default_rng(5).normal(size=(3, 4, 2))
    rho = 0.8
    gamma = theory.ssam_gamma(H, p, rho)
    assert gamma.shape == (3, 4)
    for idx in np.ndindex(3, 4):
        x = p[idx]
        expected = np.linalg.norm(H @ x) / np.linalg.norm((H + rho * H @ H) @ x)
        assert gamma[idx] == pytest.approx(expected, rel=1e-13)


def test_sam_oscillation_amplitude_is_the_2_cycle_of_the_1d_map():
    lr, rho, lam = 0.3, 0.4, 2.5
    amp = theory.sam_oscillation_amplitude(lr, rho, lam)
    assert amp == pytest.approx(lr * rho * lam / (2 - lr * lam), rel=1e-15)
    # x ↦ (1 − ηλ)x − ηρλ·sign(x) sends amp to −amp and back.
    def sam_1d(x):
        return (1 - lr * lam) * x - lr * rho * lam * np.sign(x)

    assert sam_1d(amp) == pytest.approx(-amp, rel=1e-14)
    assert sam_1d(sam_1d(amp)) == pytest.approx(amp, rel=1e-14)
