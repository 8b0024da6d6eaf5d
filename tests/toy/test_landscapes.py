"""The toy landscapes' closed forms agree with finite differences and with docs/toy.md#closed-forms.

Truth here is computed independently of ``samlab.toy.landscapes``: central finite
differences of ``loss`` (for the gradient) and of ``grad`` (for the Hessian), the
closed forms written out in docs/toy.md#closed-forms, and eigenvalues of the Hessian.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from samlab.toy import (
    BoundedSaddle,
    ConvexQuadratic,
    Hyperbola,
    SaddleQuadratic,
    SharpFlatValley,
    TiltedValley,
)

LANDSCAPES = [
    SaddleQuadratic(),
    SaddleQuadratic(a=2.0, b=0.5),
    SaddleQuadratic(a=0.3, b=4.0),
    BoundedSaddle(),
    BoundedSaddle(a=2.0, b=0.5, c=3.0),
    BoundedSaddle(a=0.5, b=3.0, c=0.25),
    ConvexQuadratic(),
    ConvexQuadratic((3.0, 0.2), angle=0.7),
    ConvexQuadratic((0.5, 2.0), angle=-2.1),
    Hyperbola(),
    SharpFlatValley(),
    SharpFlatValley(lambda_sharp=20.0, lambda_flat=0.5, width=0.4),
    SharpFlatValley(lambda_sharp=2.0, lambda_flat=5.0, width=2.0),  # a "flat" bump
    TiltedValley(),
    TiltedValley(lam=3.0, c=2.0),
]
IDS = [repr(L) for L in LANDSCAPES]

FD_STEP = 1e-5


def random_points(n: int, seed: int, scale: float = 1.5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, size=(n, 2))


def fd_gradient(f, p: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """Central differences of a scalar function of a 2-vector."""
    e = np.eye(2)
    return np.array([(f(p + h * e[i]) - f(p - h * e[i])) / (2 * h) for i in range(2)])


def fd_jacobian(F, p: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """Central differences of a vector function of a 2-vector: ``J[i, j] = ∂F_i/∂p_j``."""
    e = np.eye(2)
    cols = [(F(p + h * e[j]) - F(p - h * e[j])) / (2 * h) for j in range(2)]
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("landscape", LANDSCAPES, ids=IDS)
def test_gradient_equals_central_differences_of_the_loss(landscape):
    for p in random_points(20, seed=1):
        expected = fd_gradient(landscape.loss, p)
        np.testing.assert_allclose(landscape.grad(p), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("landscape", LANDSCAPES, ids=IDS)
def test_hessian_equals_central_differences_of_the_gradient_and_is_symmetric(landscape):
    for p in random_points(20, seed=2):
        H = landscape.hessian(p)
        np.testing.assert_allclose(H, fd_jacobian(landscape.grad, p), rtol=1e-6, atol=1e-7)
        assert H[0, 1] == H[1, 0]


@pytest.mark.parametrize("landscape", LANDSCAPES, ids=IDS)
@pytest.mark.parametrize("batch", [(), (5,), (3, 4)])
def test_vectorized_evaluation_equals_point_by_point(landscape, batch):
    p = np.random.default_rng(3).uniform(-2, 2, size=(*batch, 2))
    loss, grad, hess = landscape.loss(p), landscape.grad(p), landscape.hessian(p)
    assert loss.shape == batch
    assert grad.shape == (*batch, 2)
    assert hess.shape == (*batch, 2, 2)
    for idx in np.ndindex(*batch):
        point = tuple(float(v) for v in p[idx])
        assert loss[idx] == landscape.loss(point)
        np.testing.assert_array_equal(grad[idx], landscape.grad(point))
        np.testing.assert_array_equal(hess[idx], landscape.hessian(point))


@pytest.mark.parametrize("landscape", LANDSCAPES, ids=IDS)
def test_points_must_have_two_coordinates(landscape):
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        landscape.loss([1.0, 2.0, 3.0])


# -- the closed forms of docs/toy.md#closed-forms
# -------------------------------------------------------------


def rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


@pytest.mark.parametrize(
    "landscape, loss",
    [
        (SaddleQuadratic(2.0, 0.5), lambda x, y: 0.5 * (2.0 * x**2 - 0.5 * y**2)),
        (BoundedSaddle(2.0, 0.5, 3.0), lambda x, y: x**2 - 0.25 * y**2 + 0.75 * y**4),
        (Hyperbola(), lambda x, y: 0.5 * (x * y - 1) ** 2),
        (
            SharpFlatValley(20.0, 0.5, 0.4),
            lambda x, y: 0.5 * (0.5 + 19.5 * math.exp(-(x**2) / (2 * 0.16))) * y**2,
        ),
    ],
    ids=["saddle", "bounded-saddle", "hyperbola", "valley"],
)
def test_loss_is_the_formula_in_the_spec(landscape, loss):
    for x, y in random_points(10, seed=4):
        assert landscape.loss((x, y)) == pytest.approx(loss(x, y), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("eigenvalues, angle", [((3.0, 0.2), 0.7), ((0.5, 2.0), -2.1)])
def test_convex_quadratic_is_half_p_H_p_with_the_rotated_eigenvalues(eigenvalues, angle):
    R = rotation(angle)
    H = R @ np.diag(eigenvalues) @ R.T
    landscape = ConvexQuadratic(eigenvalues, angle=angle)
    for p in random_points(10, seed=5):
        assert landscape.loss(p) == pytest.approx(0.5 * p @ H @ p, rel=1e-13)
        np.testing.assert_allclose(landscape.grad(p), H @ p, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(landscape.H, H, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.linalg.eigvalsh(landscape.hessian((0.3, -0.2))),
                               sorted(eigenvalues), rtol=1e-13)


# -- critical points -------------------------------------------------------------------------


LISTED = [(L, c) for L in LANDSCAPES for c in L.critical_points]


@pytest.mark.parametrize("landscape, point", LISTED,
                         ids=[f"{L!r}-{c.name}" for L, c in LISTED])
def test_every_listed_critical_point_has_zero_gradient_and_the_right_kind(landscape, point):
    p = np.asarray(point.point)
    np.testing.assert_allclose(landscape.grad(p), 0.0, atol=1e-12)
    # Independent of the closed-form Hessian: eigenvalues of the finite-difference one.
    eig = np.linalg.eigvalsh(fd_jacobian(landscape.grad, p))
    if point.kind == "minimum":
        assert (eig > 1e-6).all(), eig
    elif point.kind == "saddle":
        assert eig.min() < -1e-6 and eig.max() > 1e-6, eig
    else:
        assert (eig < -1e-6).all(), eig


def test_bounded_saddle_lists_the_saddle_and_both_minima_of_the_spec():
    a, b, c = 2.0, 0.5, 3.0
    landscape = BoundedSaddle(a, b, c)
    points = {cp.name: (cp.point, cp.kind) for cp in landscape.critical_points}
    y_min = math.sqrt(b / c)
    assert sorted(kind for _, kind in points.values()) == ["minimum", "minimum", "saddle"]
    minima = sorted(pt for pt, kind in points.values() if kind == "minimum")
    np.testing.assert_allclose(minima, [(0.0, -y_min), (0.0, y_min)], rtol=1e-15)
    for pt in minima:
        assert landscape.loss(pt) == pytest.approx(-(b**2) / (4 * c), rel=1e-13)
        np.testing.assert_allclose(landscape.hessian(pt), np.diag([a, 2 * b]), rtol=1e-13)
    np.testing.assert_array_equal(landscape.hessian((0.0, 0.0)), np.diag([a, -b]))


@pytest.mark.parametrize("x", [-3.0, -0.4, 0.25, 1.0, 2.5])
def test_hyperbola_manifold_points_are_minima_with_sharpness_x2_plus_y2(x):
    landscape = Hyperbola()
    p = np.array([x, 1.0 / x])
    np.testing.assert_allclose(landscape.grad(p), 0.0, atol=1e-15)
    eig = np.linalg.eigvalsh(fd_jacobian(landscape.grad, p))
    assert eig.min() == pytest.approx(0.0, abs=1e-6)  # flat along the manifold
    assert eig.max() == pytest.approx(x**2 + x**-2, rel=1e-6)
    top = np.linalg.eigvalsh(landscape.hessian(p)).max()
    assert landscape.sharpness(p) == pytest.approx(top, rel=1e-12)
    assert landscape.sharpness(p) == pytest.approx(x**2 + x**-2, rel=1e-14)
    assert landscape.minimum_residual(p) == pytest.approx(0.0, abs=1e-15)


def test_hyperbola_is_flattest_at_unit_coordinates():
    landscape = Hyperbola()
    xs = np.linspace(0.2, 5.0, 481)
    sharpness = landscape.sharpness(np.stack([xs, 1 / xs], -1))
    assert xs[np.argmin(sharpness)] == pytest.approx(1.0)
    assert sharpness.min() == pytest.approx(2.0)


@pytest.mark.parametrize("landscape", [L for L in LANDSCAPES if isinstance(L, SharpFlatValley)],
                         ids=repr)
def test_valley_floor_points_are_minima_with_sharpness_the_cross_valley_curvature(landscape):
    for x in np.linspace(-3, 3, 13):
        p = np.array([x, 0.0])
        np.testing.assert_array_equal(landscape.grad(p), 0.0)
        H = landscape.hessian(p)
        assert landscape.sharpness(p) == pytest.approx(H[1, 1], rel=1e-14)
        s = landscape.lambda_flat + (landscape.lambda_sharp - landscape.lambda_flat) * math.exp(
            -(x**2) / (2 * landscape.width**2)
        )
        assert landscape.sharpness(p) == pytest.approx(s, rel=1e-13)
        eig = np.linalg.eigvalsh(fd_jacobian(landscape.grad, p))
        assert eig.min() == pytest.approx(0.0, abs=1e-6)  # flat along the floor
        assert eig.max() == pytest.approx(s, rel=1e-6)
        assert landscape.minimum_residual(p) == 0.0


def test_valley_is_sharpest_at_its_centre():
    landscape = SharpFlatValley(lambda_sharp=10.0, lambda_flat=1.0, width=1.0)
    xs = np.linspace(-4, 4, 81)
    s = landscape.sharpness(np.stack([xs, np.zeros_like(xs)], -1))
    assert s[40] == pytest.approx(10.0) and xs[40] == 0.0
    assert s.max() == s[40]
    assert s[0] == pytest.approx(1.0, abs=1e-2) and s[-1] == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: SaddleQuadratic(a=-1.0), "a"),
        (lambda: SaddleQuadratic(b=0.0), "b"),
        (lambda: BoundedSaddle(c=float("nan")), "c"),
        (lambda: ConvexQuadratic((1.0, -0.5)), "eigenvalues"),
        (lambda: SharpFlatValley(width=float("inf")), "width"),
    ],
)
def test_landscape_parameters_must_be_positive_and_finite(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make()
