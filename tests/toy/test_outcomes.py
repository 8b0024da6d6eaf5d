"""What a run returns: labelled outcomes, NaN after divergence, exact batching, seeds.

docs/toy.md#vectorization: every toy optimizer is vectorized, and each run ends in a labelled
outcome, never a NaN that breaks a plot.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from samlab.toy import (
    METHODS,
    OUTCOMES,
    BoundedSaddle,
    ConvexQuadratic,
    Hyperbola,
    SaddleQuadratic,
    SharpFlatValley,
    phase_diagram,
    run,
)

ALL_METHODS = sorted(METHODS)


@pytest.fixture
def no_warnings():
    """Every NumPy floating-point warning and every Python warning becomes an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old = np.seterr(all="raise")
        try:
            yield
        finally:
            np.seterr(**old)


# -- divergence ------------------------------------------------------------------------------


DIVERGING = [
    ("convex-gd", ConvexQuadratic((1.0, 0.5)), "gd", 5.0, 0.0, [1.0, 1.0]),
    ("convex-usam", ConvexQuadratic((1.0, 0.5), angle=0.3), "usam", 1.5, 2.0, [1.0, 1.0]),
    ("convex-gd-huge-lr", ConvexQuadratic((1.0, 0.5)), "gd", 1e100, 0.0, [1.0, 1.0]),
    ("hyperbola-usam", Hyperbola(), "usam", 1.0, 1.0, [3.0, 3.0]),
    ("hyperbola-sam", Hyperbola(), "sam", 50.0, 0.5, [2.0, 0.7]),
    ("bounded-saddle-usam", BoundedSaddle(), "usam", 3.0, 1.0, [1.0, 2.0]),
    ("bounded-saddle-ssam", BoundedSaddle(), "ssam", 3.0, 1.0, [1.0, 2.0]),
    ("valley-gd", SharpFlatValley(), "gd", 3.0, 0.0, [0.1, 1.0]),
]


@pytest.mark.parametrize("name, landscape, method, lr, rho, x0", DIVERGING,
                         ids=[d[0] for d in DIVERGING])
def test_divergence_is_labelled_without_warnings_and_is_nan_only_after_the_exit_step(
    no_warnings, name, landscape, method, lr, rho, x0
):
    traj = run(landscape, method, lr, rho, x0, 60)
    assert traj.outcome == "diverged"
    assert traj.at == ""
    exit_step = int(traj.exit_step)
    assert 1 <= exit_step <= 60
    assert np.isnan(traj.positions[exit_step:]).all()
    assert np.isnan(traj.losses[exit_step:]).all()
    assert np.isfinite(traj.positions[:exit_step]).all(), traj.positions[:exit_step]
    assert np.isfinite(traj.losses[:exit_step]).all(), traj.losses[:exit_step]
    # It had left the landscape by the exit step: beyond its bound, or overflowed.
    last = traj.positions[exit_step - 1]
    assert np.linalg.norm(last) > 1.0


def test_escape_down_an_unbounded_saddle_is_labelled_escaped_not_diverged(no_warnings):
    traj = run(SaddleQuadratic(), ["gd", "usam"], 0.5, 0.5, [0.1, 0.1], 200)
    np.testing.assert_array_equal(traj.outcome, "escaped")
    for k in range(2):
        exit_step = traj.exit_step[k]
        assert exit_step > 0
        assert np.isnan(traj.positions[exit_step:, k]).all()
        assert np.isfinite(traj.positions[:exit_step, k]).all()


def test_a_phase_diagram_with_diverging_settings_raises_no_warnings(no_warnings):
    lrs = np.linspace(0.1, 1e3, 70)
    rhos = np.linspace(0.0, 10.0, 70)  # 4900 settings: large enough for the threaded path
    diagram = phase_diagram(Hyperbola(), "usam", lrs, rhos, [2.0, 1.0], 40)
    assert diagram.fraction("diverged") > 0.5
    assert np.isnan(diagram.final[diagram.outcome == "diverged"]).all()


# -- zero gradient ---------------------------------------------------------------------------


AT_REST = [
    ("convex-minimum", ConvexQuadratic((2.0, 0.5), angle=0.3), (0.0, 0.0), "converged", "origin"),
    ("bounded-minimum", BoundedSaddle(1.0, 1.0, 1.0), (0.0, 1.0), "converged", "y+"),
    ("bounded-saddle", BoundedSaddle(1.0, 1.0, 1.0), (0.0, 0.0), "trapped", "saddle"),
    ("saddle", SaddleQuadratic(), (0.0, 0.0), "trapped", "saddle"),
    ("hyperbola-manifold", Hyperbola(), (2.0, 0.5), "converged", "manifold"),
    ("valley-floor", SharpFlatValley(), (0.3, 0.0), "converged", "manifold"),
]


@pytest.mark.parametrize("name, landscape, x0, outcome, at", AT_REST, ids=[a[0] for a in AT_REST])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_zero_gradient_start_means_no_perturbation_and_no_nan(
    no_warnings, name, landscape, x0, outcome, at, method
):
    np.testing.assert_array_equal(landscape.grad(x0), 0.0)
    traj = run(landscape, method, 0.1, 0.5, x0, 20)
    np.testing.assert_array_equal(traj.positions, np.broadcast_to(x0, (21, 2)))
    np.testing.assert_array_equal(traj.grad_norms, 0.0)
    np.testing.assert_array_equal(traj.ascent_grad_norms, 0.0)
    np.testing.assert_array_equal(traj.gammas, 0.0)
    assert traj.outcome == outcome
    assert traj.at == at


# -- batching --------------------------------------------------------------------------------


BATCH_LANDSCAPES = [ConvexQuadratic((2.0, 0.3), angle=0.6), BoundedSaddle(), Hyperbola()]


@pytest.mark.parametrize("landscape", BATCH_LANDSCAPES, ids=repr)
def test_method_by_lr_by_start_batch_equals_each_single_run_exactly(landscape):
    methods = np.array(ALL_METHODS)[:, None, None]
    lrs = np.array([0.05, 0.3, 1.5])[:, None]
    x0 = np.array([[0.9, -0.4], [0.02, 0.05], [2.0, 0.6], [-1.1, 0.3]])
    rho = 0.4
    steps = 30
    traj = run(landscape, methods, lrs, rho, x0, steps)
    shape = (len(ALL_METHODS), 3, 4)
    assert traj.outcome.shape == traj.at.shape == traj.exit_step.shape == shape
    assert traj.method.shape == traj.lr.shape == traj.rho.shape == shape
    assert traj.positions.shape == (steps + 1, *shape, 2)
    assert traj.losses.shape == (steps + 1, *shape)
    assert traj.gammas.shape == traj.grad_norms.shape == traj.ascent_grad_norms.shape
    assert traj.gammas.shape == (steps, *shape)
    for i, method in enumerate(ALL_METHODS):
        for j, lr in enumerate(lrs[:, 0]):
            for k, start in enumerate(x0):
                single = run(landscape, method, lr, rho, start, steps)
                idx = (i, j, k)
                t = (slice(None), *idx)
                assert traj.method[idx] == method and traj.lr[idx] == lr
                assert np.array_equal(traj.positions[t], single.positions, equal_nan=True)
                assert np.array_equal(traj.losses[t], single.losses, equal_nan=True)
                assert np.array_equal(traj.gammas[t], single.gammas, equal_nan=True)
                assert np.array_equal(traj.grad_norms[t], single.grad_norms, equal_nan=True)
                assert np.array_equal(traj.ascent_grad_norms[t], single.ascent_grad_norms,
                                      equal_nan=True)
                assert traj.outcome[idx] == single.outcome
                assert traj.at[idx] == single.at
                assert traj.exit_step[idx] == single.exit_step


def test_gd_in_a_mixed_batch_ignores_rho():
    landscape = ConvexQuadratic((2.0, 0.3), angle=0.6)
    mixed = run(landscape, ["gd", "usam"], 0.2, 0.7, [1.0, 0.5], 25)
    alone = run(landscape, "gd", 0.2, 0.0, [1.0, 0.5], 25)
    np.testing.assert_array_equal(mixed.positions[:, 0], alone.positions)
    assert mixed.rho[0] == 0.7  # the setting is reported as given


def batch_traj():
    landscape = ConvexQuadratic((2.0, 0.3), angle=0.6)
    x0 = np.array([[1.0, 0.5], [0.2, -0.3], [-0.4, 0.9]])
    return run(landscape, ["gd", "sam"], 0.2, 0.3, x0[:, None, :], 12)  # batch (3, 2)


@pytest.mark.parametrize(
    "index",
    [1, -1, (slice(None), 0), (2, 1), slice(0, 2), (Ellipsis, 0), np.array([True, False, True])],
    ids=["int", "negative", "column", "pair", "slice", "ellipsis", "mask"],
)
def test_trajectory_indexing_selects_the_same_runs_in_every_field(index):
    traj = batch_traj()
    sub = traj[index]
    batch_index = np.arange(6).reshape(3, 2)[index]
    assert sub.outcome.shape == batch_index.shape
    assert sub.positions.shape == (13, *batch_index.shape, 2)
    assert sub.steps == traj.steps
    for flat in np.ndindex(*batch_index.shape):
        i, j = divmod(int(batch_index[flat]), 2)
        np.testing.assert_array_equal(sub.positions[(slice(None), *flat)],
                                      traj.positions[:, i, j])
        np.testing.assert_array_equal(sub.losses[(slice(None), *flat)], traj.losses[:, i, j])
        np.testing.assert_array_equal(sub.gammas[(slice(None), *flat)], traj.gammas[:, i, j])
        assert np.asarray(sub.method)[flat] == traj.method[i, j]
        assert np.asarray(sub.outcome)[flat] == traj.outcome[i, j]
        assert np.asarray(sub.exit_step)[flat] == traj.exit_step[i, j]
    np.testing.assert_array_equal(sub.final, sub.positions[-1])


# -- noise -----------------------------------------------------------------------------------


def noisy(seed, noise=0.05):
    return run(BoundedSaddle(), ["gd", "usam"], 0.1, 0.5, [0.4, 0.2], 50, noise=noise, seed=seed)


def test_same_seed_gives_identical_noisy_runs():
    np.testing.assert_array_equal(noisy(7).positions, noisy(7).positions)


def test_different_seeds_give_different_noisy_runs():
    a, b = noisy(7).positions, noisy(8).positions
    assert not np.array_equal(a, b)
    assert np.abs(a[1:] - b[1:]).min() > 0  # every step after the first differs


def test_zero_noise_equals_no_noise_whatever_the_seed():
    quiet = run(BoundedSaddle(), ["gd", "usam"], 0.1, 0.5, [0.4, 0.2], 50)
    np.testing.assert_array_equal(noisy(7, noise=0.0).positions, quiet.positions)
    np.testing.assert_array_equal(noisy(8, noise=0.0).positions, quiet.positions)


def test_noise_is_one_draw_shared_by_the_ascent_and_the_descent_gradient():
    # On a quadratic, USAM with noise ξ is p ← p − η(H(p + ρ(Hp + ξ)) + ξ).
    landscape = ConvexQuadratic((2.0, 0.3), angle=0.6)
    H = landscape.hessian((0.0, 0.0))
    lr, rho, sigma = 0.1, 0.5, 0.2
    p0 = np.array([0.7, -0.2])
    traj = run(landscape, "usam", lr, rho, p0, 1, noise=sigma, seed=3)
    recorded = traj.grad_norms[0]  # ‖Hp + ξ‖
    p1 = traj.positions[1]
    # Solve for ξ from the step: p1 = p0 − η((I + ρH)(Hp0 + ξ)) ⇒ Hp0 + ξ = (I + ρH)⁻¹(p0 − p1)/η.
    g = np.linalg.solve(np.eye(2) + rho * H, (p0 - p1) / lr)
    assert np.linalg.norm(g) == pytest.approx(recorded, rel=1e-10)
    assert np.linalg.norm(g - H @ p0) > 0.01  # the noise was really there


# -- phase diagrams --------------------------------------------------------------------------


def test_phase_diagram_codes_are_lrs_by_rhos_and_fractions_sum_to_one():
    lrs = np.linspace(0.1, 2.0, 7)
    rhos = np.linspace(0.0, 3.0, 5)
    diagram = phase_diagram(BoundedSaddle(), "usam", lrs, rhos, [0.5, 0.1], 200)
    assert diagram.codes.shape == diagram.outcome.shape == diagram.at.shape == (7, 5)
    assert diagram.final.shape == (7, 5, 2)
    np.testing.assert_array_equal(diagram.lrs, lrs)
    np.testing.assert_array_equal(diagram.rhos, rhos)
    assert set(np.unique(diagram.outcome)) <= set(OUTCOMES)
    assert sum(diagram.fraction(o) for o in OUTCOMES) == pytest.approx(1.0, abs=1e-12)
    for o in OUTCOMES:
        assert diagram.fraction(o) == np.mean(diagram.outcome == o)
    with pytest.raises(ValueError, match="outcome must be one of"):
        diagram.fraction("exploded")


def test_a_large_phase_diagram_equals_its_rows_computed_one_at_a_time():
    landscape = BoundedSaddle()
    lrs = np.linspace(0.05, 1.2, 64)
    rhos = np.linspace(0.0, 3.0, 64)  # 4096 settings: split across threads where cores allow
    whole = phase_diagram(landscape, "usam", lrs, rhos, [0.5, 0.1], 100)
    for i in range(0, 64, 9):
        row = phase_diagram(landscape, "usam", lrs[i : i + 1], rhos, [0.5, 0.1], 100)
        np.testing.assert_array_equal(whole.codes[i], row.codes[0])
        np.testing.assert_array_equal(whole.at[i], row.at[0])
        np.testing.assert_array_equal(whole.final[i], row.final[0])


# -- labels ----------------------------------------------------------------------------------


def test_a_single_step_that_is_still_moving_is_unsettled_not_oscillating():
    # One step from far away cannot have turned back on itself: more steps would tell.
    traj = run(ConvexQuadratic((1.0, 0.5)), "gd", 0.1, 0.0, [1.0, 1.0], 1)
    assert traj.outcome == "unsettled"


def test_a_slow_escape_is_unsettled_and_more_steps_show_it_escaping():
    landscape = SaddleQuadratic(1.0, 1.0)
    few, many = (run(landscape, "usam", 0.1, 0.9, [0.03, 0.03], n) for n in (100, 3000))
    assert few.outcome == "unsettled"
    assert many.outcome == "escaped"


def test_every_outcome_name_is_listed_once():
    assert OUTCOMES == ("converged", "trapped", "oscillating", "unsettled", "diverged", "escaped")
