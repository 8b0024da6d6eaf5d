"""Simulated outcomes reproduce the closed-form thresholds of docs/toy.md#closed-forms.

Each prediction is written out here from the eigenvalues (GD: ``ηλ_max < 2``;
USAM: ``ηλ(1 + ρλ) < 2``; SAM's 1D 2-cycle ``±ηρλ/(2 − ηλ)``; USAM captured by a
saddle iff ``ρ > 1/b`` without overshoot), and compared with the simulation over a
grid of settings. Settings within a small margin of a threshold are skipped: there
the outcome depends on how many steps one waits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from samlab.toy import BoundedSaddle, ConvexQuadratic, SaddleQuadratic, phase_diagram, run, theory

MARGIN = 0.02  # skip settings within 2% of a stability threshold


def away_from(ratio: np.ndarray, threshold: float = 1.0, margin: float = MARGIN) -> np.ndarray:
    return np.abs(ratio / threshold - 1.0) > margin


EIGENVALUES = [(2.0, 0.5), (1.0, 0.25)]


# -- convex quadratic: GD and USAM ----------------------------------------------------------


@pytest.mark.parametrize("eigenvalues", EIGENVALUES)
def test_gd_converges_exactly_when_lr_times_lambda_max_is_below_two(eigenvalues):
    landscape = ConvexQuadratic(eigenvalues, angle=0.4)
    lam_max = max(eigenvalues)
    lrs = np.linspace(0.05, 2.5, 99) / lam_max
    diagram = phase_diagram(landscape, "gd", lrs, [0.0], [1.0, -0.7], 1500)

    stable = lrs * lam_max < 2
    keep = away_from(lrs * lam_max / 2)
    assert keep.sum() > 80 and stable[keep].any() and (~stable[keep]).any()
    outcome = diagram.outcome[:, 0]
    np.testing.assert_array_equal(outcome[keep & stable], "converged")
    np.testing.assert_array_equal(outcome[keep & ~stable], "diverged")


@pytest.mark.parametrize("eigenvalues", EIGENVALUES)
def test_usam_is_stable_exactly_when_lr_lambda_one_plus_rho_lambda_is_below_two(eigenvalues):
    landscape = ConvexQuadratic(eigenvalues, angle=-1.1)
    lam = np.asarray(eigenvalues)
    lam_max = lam.max()
    lrs = np.linspace(0.05, 2.0, 60) / lam_max
    rhos = np.linspace(0.0, 2.0, 41) / lam_max
    diagram = phase_diagram(landscape, "usam", lrs, rhos, [1.0, -0.7], 1500)

    # ηλ(1 + ρλ) / 2 for every setting, worst eigenvalue: < 1 is stable.
    worst = (lrs[:, None, None] * lam * (1 + rhos[None, :, None] * lam)).max(-1) / 2
    stable = worst < 1
    keep = away_from(worst)
    assert stable[keep].sum() > 100 and (~stable[keep]).sum() > 100
    np.testing.assert_array_equal(diagram.outcome[keep & stable], "converged")
    np.testing.assert_array_equal(diagram.outcome[keep & ~stable], "diverged")
    np.testing.assert_array_equal(
        theory.usam_stable(lrs[:, None], rhos[None, :], lam_max), stable
    )


def test_usam_threshold_is_lower_than_gd_threshold_for_positive_rho():
    landscape = ConvexQuadratic((2.0, 0.5))
    lr = 0.9  # ηλ_max = 1.8 < 2: GD converges
    rho = 0.2  # ηλ(1 + ρλ) = 1.8·1.4 = 2.52 > 2: USAM diverges
    traj = run(landscape, ["gd", "usam"], lr, rho, [1.0, 1.0], 500)
    assert traj.outcome.tolist() == ["converged", "diverged"]


def test_phase_diagram_outcome_equals_run_outcome_at_the_same_setting():
    landscape = ConvexQuadratic((2.0, 0.5), angle=0.4)
    lrs = np.array([0.3, 0.8, 0.95, 1.2])
    rhos = np.array([0.0, 0.1, 0.5, 2.0])
    x0 = [1.0, -0.7]
    for method in ("gd", "usam", "sam", "ssam"):
        diagram = phase_diagram(landscape, method, lrs, rhos, x0, 400)
        assert diagram.codes.shape == (4, 4)
        for i, lr in enumerate(lrs):
            for j, rho in enumerate(rhos):
                traj = run(landscape, method, lr, rho, x0, 400)
                assert diagram.outcome[i, j] == traj.outcome, (method, lr, rho)
                assert diagram.at[i, j] == traj.at
                np.testing.assert_array_equal(diagram.final[i, j], traj.final)


# -- convex quadratic: normalized SAM ------------------------------------------------------


@pytest.mark.parametrize("eigenvalues, angle", [((2.0, 0.5), 0.4), ((1.0, 0.05), -0.3)])
def test_normalized_sam_never_diverges_on_a_convex_quadratic_when_gd_is_stable(
    eigenvalues, angle
):
    landscape = ConvexQuadratic(eigenvalues, angle=angle)
    lam = np.asarray(eigenvalues)
    lrs = np.linspace(0.02, 2.0 * (1 - MARGIN), 40) / lam.max()
    rhos = np.linspace(0.0, 3.0, 31)
    x0 = np.array([1.0, -0.7])
    diagram = phase_diagram(landscape, "sam", lrs, rhos, x0, 1000)
    assert not (diagram.outcome == "diverged").any()

    # ‖p'‖ ≤ q‖p‖ + ηρλ_max with q = max|1 − ηλ| < 1, so ‖p‖ never exceeds this:
    q = np.abs(1 - lrs[:, None] * lam).max(-1)[:, None]
    bound = np.maximum(np.linalg.norm(x0), lrs[:, None] * rhos[None, :] * lam.max() / (1 - q))
    assert (np.linalg.norm(diagram.final, axis=-1) <= bound * (1 + 1e-9)).all()


def sam_2cycle(lr, rho, lam):
    """The 2-cycle of x ↦ (1 − ηλ)x − ηρλ·sign(x): x* = ηρλ / (2 − ηλ)."""
    return lr * rho * lam / (2 - lr * lam)


@pytest.mark.parametrize("angle", [0.0, 0.9, -2.0])
def test_normalized_sam_started_on_the_sharp_axis_ends_in_the_2_cycle(angle):
    lam = 2.0
    landscape = ConvexQuadratic((lam, 0.3), angle=angle)
    sharp_axis = np.array([math.cos(angle), math.sin(angle)])
    lrs = np.linspace(0.15, 0.85, 8)[:, None]
    rhos = np.array([0.02, 0.05, 0.1, 0.3, 1.0])[None, :]
    traj = run(landscape, "sam", lrs, rhos, 1.5 * sharp_axis, 400)

    amplitude = sam_2cycle(lrs, rhos, lam)
    assert (amplitude > 2e-3).all()  # larger than tol: it cannot count as converged
    np.testing.assert_allclose(np.linalg.norm(traj.final, axis=-1), amplitude, atol=1e-6)
    # The last two points sit on opposite sides of the minimum, along the sharp axis.
    np.testing.assert_allclose(traj.positions[-1], -traj.positions[-2], atol=1e-6)
    np.testing.assert_allclose(np.abs(traj.final @ sharp_axis), amplitude, atol=1e-6)
    np.testing.assert_array_equal(traj.outcome, "oscillating")
    np.testing.assert_allclose(theory.sam_oscillation_amplitude(lrs, rhos, lam), amplitude,
                               rtol=1e-14)


def test_normalized_sam_oscillates_along_the_sharp_direction_when_the_other_is_nearly_flat():
    lam = 2.0
    landscape = ConvexQuadratic((lam, 1e-4))
    lrs = np.linspace(0.15, 0.85, 8)[:, None]
    rhos = np.array([0.02, 0.1, 1.0])[None, :]
    traj = run(landscape, "sam", lrs, rhos, [1.0, 0.5], 400)
    np.testing.assert_allclose(np.abs(traj.final[..., 0]), sam_2cycle(lrs, rhos, lam), atol=1e-6)
    np.testing.assert_array_equal(traj.outcome, "oscillating")


def test_normalized_sam_converges_when_its_2_cycle_is_smaller_than_tol():
    lam = 2.0
    landscape = ConvexQuadratic((lam, 0.5))
    lrs = np.array([0.2, 0.5, 0.8])[:, None]
    rhos = np.array([0.0, 1e-5, 1e-4])[None, :]
    assert (sam_2cycle(lrs, rhos, lam) < 0.5e-3).all()
    traj = run(landscape, "sam", lrs, rhos, [1.0, -0.7], 600, tol=1e-3)
    np.testing.assert_array_equal(traj.outcome, "converged")
    np.testing.assert_array_equal(traj.at, "origin")


# -- saddles: USAM captured when ρ > 1/b, GD never ------------------------------------------


def usam_factors(lr, rho, a, b):
    """USAM's multipliers along x (curvature a) and y (curvature −b): 1 − ηλ(1 + ρλ)."""
    return 1 - lr * a * (1 + rho * a), 1 + lr * b * (1 - rho * b)


def safe_lr(rho, a, b):
    """A learning rate with no overshoot along x, along y at the saddle, or at the minima
    (curvature 2b) of the bounded saddle: every ηλ(1 + ρλ) at most 1."""
    return 1.0 / np.maximum.reduce(
        [a * (1 + rho * a), b * np.abs(rho * b - 1), 2 * b * (1 + 2 * rho * b)]
    )


SADDLES = [(1.0, 1.0), (2.0, 0.5), (0.5, 3.0)]
NEAR_SADDLE = [0.03, 0.03]


def rho_grid(b):
    """ρb from 0.1 to 3, skipping 0.8 < ρb < 1.25 where escape or capture is slow."""
    rho_b = np.linspace(0.1, 3.0, 59)
    rho_b = rho_b[(rho_b <= 0.8) | (rho_b >= 1.25)]
    return rho_b / b


@pytest.mark.parametrize("a, b", SADDLES)
def test_usam_is_captured_by_saddle_when_rho_exceeds_inverse_curvature(a, b):
    rhos = rho_grid(b)
    lrs = safe_lr(rhos, a, b)
    traj = run(SaddleQuadratic(a, b), "usam", lrs, rhos, NEAR_SADDLE, 2000)

    captured = rhos > 1 / b
    assert captured.any() and (~captured).any()
    np.testing.assert_array_equal(traj.outcome[captured], "trapped")
    np.testing.assert_array_equal(traj.at[captured], "saddle")
    np.testing.assert_array_equal(traj.outcome[~captured], "escaped")
    np.testing.assert_array_equal(theory.usam_saddle_trapped(lrs, rhos, a, b), captured)
    # Captured means converging onto the saddle: the final point is the start times fⁿ.
    fx, fy = usam_factors(lrs[captured], rhos[captured], a, b)
    np.testing.assert_allclose(traj.final[captured], np.stack([0.03 * fx**2000, 0.03 * fy**2000],
                                                              -1), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("a, b, c", [(1.0, 1.0, 1.0), (2.0, 0.5, 3.0), (0.5, 3.0, 0.25)])
def test_usam_on_bounded_saddle_is_trapped_above_inverse_curvature_and_finds_a_minimum_below(
    a, b, c
):
    rhos = rho_grid(b)
    lrs = safe_lr(rhos, a, b)
    landscape = BoundedSaddle(a, b, c)
    traj = run(landscape, "usam", lrs, rhos, NEAR_SADDLE, 2000)

    captured = rhos > 1 / b
    np.testing.assert_array_equal(traj.outcome[captured], "trapped")
    np.testing.assert_array_equal(traj.at[captured], "saddle")
    np.testing.assert_array_equal(traj.outcome[~captured], "converged")
    np.testing.assert_array_equal(traj.at[~captured], "y+")  # started at y > 0
    y_min = np.broadcast_to([0.0, math.sqrt(b / c)], traj.final[~captured].shape)
    np.testing.assert_allclose(traj.final[~captured], y_min, atol=1e-3)


def test_usam_trapping_on_the_saddle_quadratic_matches_both_factors_over_an_lr_rho_grid():
    a, b = 1.0, 1.0
    lrs = np.linspace(0.05, 3.0, 60)
    rhos = np.linspace(0.0, 4.0, 81)
    diagram = phase_diagram(SaddleQuadratic(a, b), "usam", lrs, rhos, NEAR_SADDLE, 1500)

    fx, fy = usam_factors(lrs[:, None], rhos[None, :], a, b)
    trapped = (np.abs(fx) < 1) & (np.abs(fy) < 1)
    keep = away_from(np.abs(fx), margin=0.04) & away_from(np.abs(fy), margin=0.04)
    assert trapped[keep].sum() > 100 and (~trapped[keep]).sum() > 100
    np.testing.assert_array_equal(diagram.outcome[keep & trapped], "trapped")
    assert not (diagram.outcome[keep & ~trapped] == "trapped").any()
    np.testing.assert_array_equal(
        theory.usam_saddle_trapped(lrs[:, None], rhos[None, :], a, b), trapped
    )


@pytest.mark.parametrize("a, b", SADDLES)
def test_gd_always_escapes_the_saddle_quadratic_from_any_start_off_the_ridge(a, b):
    ys = np.array([-0.5, -1e-3, -1e-8, 1e-8, 1e-3, 0.5])
    xs = np.array([-0.5, 0.0, 0.02, 1.0])
    x0 = np.stack(np.broadcast_arrays(xs[:, None], ys[None, :]), -1)
    lrs = np.array([0.1, 0.5, 0.95]) / max(a, b)
    traj = run(SaddleQuadratic(a, b), "gd", lrs[:, None, None], 0.0, x0, 2000)
    np.testing.assert_array_equal(traj.outcome, "escaped")


@pytest.mark.parametrize("a, b, c", [(1.0, 1.0, 1.0), (2.0, 0.5, 3.0)])
def test_gd_always_leaves_the_bounded_saddle_for_the_minimum_on_its_side(a, b, c):
    ys = np.array([-0.5, -1e-3, -1e-8, 1e-8, 1e-3, 0.5])
    x0 = np.stack(np.broadcast_arrays(0.02, ys), -1)
    lrs = np.array([0.1, 0.5, 0.95])[:, None] / max(a, 2 * b)
    traj = run(BoundedSaddle(a, b, c), "gd", lrs, 0.0, x0, 2000)
    assert not (traj.outcome == "trapped").any()
    np.testing.assert_array_equal(traj.outcome, "converged")
    np.testing.assert_array_equal(traj.at, np.where(ys > 0, "y+", "y-")[None, :].repeat(3, 0))


def test_gd_started_exactly_on_the_ridge_stays_on_it_and_ignores_rho():
    traj = run(SaddleQuadratic(), "gd", 0.1, [0.0, 5.0], [0.3, 0.0], 500)
    np.testing.assert_array_equal(traj.final[0], traj.final[1])
    assert traj.final[0, 1] == 0.0
    np.testing.assert_array_equal(traj.outcome, "trapped")
