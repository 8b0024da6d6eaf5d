"""Exact 2D loss landscapes with closed-form gradients and Hessians (docs/toy.md#closed-forms).

Every landscape is a function of a point ``p = (x, y)`` and is vectorized over
leading batch dimensions: ``loss(p)`` takes ``p[..., 2]`` and returns ``[...]``,
``grad`` returns ``[..., 2]`` and ``hessian`` returns ``[..., 2, 2]``.

Internally each landscape implements ``loss_xy(x, y)``, ``grad_xy(x, y)`` and
``hessian_xy(x, y)`` on separate coordinate arrays: the optimizers in
:mod:`samlab.toy.methods` call these directly, because splitting the
coordinates avoids a stack/unstack per step and makes a 200 x 200 phase
diagram interactive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .. import validate

Kind = Literal["minimum", "saddle", "maximum"]


@dataclass(frozen=True)
class CriticalPoint:
    """A point where the gradient vanishes, with its name and type."""

    name: str
    point: tuple[float, float]
    kind: Kind


def _as_points(p: np.ndarray | list | tuple) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim == 0 or p.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got shape {p.shape}")
    return p


class Landscape:
    """Base class: a 2D loss with exact derivatives and known critical points.

    Subclasses set :attr:`critical_points` and implement ``loss_xy``, ``grad_xy``
    and ``hessian_xy``. Landscapes whose minima form a curve (a manifold of
    minima) also implement :meth:`minimum_residual_xy`.
    """

    name: str = "landscape"
    #: Critical points known in closed form (isolated ones).
    critical_points: tuple[CriticalPoint, ...] = ()
    #: True when the minima form a curve rather than isolated points.
    has_minimum_manifold: bool = False
    #: True when the loss is unbounded below (a run can escape to -inf).
    unbounded_below: bool = False
    #: A run whose distance from the origin exceeds this has left the landscape.
    bound: float = 1e3
    #: Plot window ((xmin, xmax), (ymin, ymax)).
    extent: tuple[tuple[float, float], tuple[float, float]] = ((-2.0, 2.0), (-2.0, 2.0))

    # -- public, vectorized over leading dimensions ------------------------------
    def loss(self, p: np.ndarray) -> np.ndarray:
        """The loss at points ``p[..., 2]``."""
        p = _as_points(p)
        return self.loss_xy(p[..., 0], p[..., 1])

    def grad(self, p: np.ndarray) -> np.ndarray:
        """The gradient at points ``p[..., 2]``, shape ``[..., 2]``."""
        p = _as_points(p)
        gx, gy = self.grad_xy(p[..., 0], p[..., 1])
        return np.stack(np.broadcast_arrays(gx, gy), axis=-1)

    def hessian(self, p: np.ndarray) -> np.ndarray:
        """The Hessian at points ``p[..., 2]``, shape ``[..., 2, 2]``."""
        p = _as_points(p)
        hxx, hxy, hyy = (np.asarray(h, dtype=float) for h in self.hessian_xy(p[..., 0], p[..., 1]))
        hxx, hxy, hyy = np.broadcast_arrays(hxx, hxy, hyy)
        return np.stack([np.stack([hxx, hxy], -1), np.stack([hxy, hyy], -1)], -2)

    @property
    def minima(self) -> tuple[CriticalPoint, ...]:
        return tuple(c for c in self.critical_points if c.kind == "minimum")

    @property
    def saddles(self) -> tuple[CriticalPoint, ...]:
        return tuple(c for c in self.critical_points if c.kind == "saddle")

    def minimum_curves(self, n: int = 400) -> list[np.ndarray]:
        """The manifold of minima inside :attr:`extent`, as polylines ``[k, 2]`` (none for
        landscapes with isolated minima), for figures to draw."""
        return []

    def minimum_residual(self, p: np.ndarray) -> np.ndarray:
        """Approximate distance from ``p`` to the manifold of minima."""
        if not self.has_minimum_manifold:
            raise NotImplementedError(f"{self.name} has isolated minima, not a manifold")
        p = _as_points(p)
        return self.minimum_residual_xy(p[..., 0], p[..., 1])

    # -- subclass hooks on coordinate arrays --------------------------------------
    def loss_xy(self, x, y):
        raise NotImplementedError

    def grad_xy(self, x, y):
        raise NotImplementedError

    def hessian_xy(self, x, y):
        raise NotImplementedError

    def minimum_residual_xy(self, x, y):
        raise NotImplementedError

    def __repr__(self) -> str:
        skip = {"critical_points", "extent"}
        fields = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k not in skip
        )
        return f"{type(self).__name__}({fields})"


def _positive(name: str, value) -> float:
    return validate.number(name, value, low=0.0, strict_low=True)


class SaddleQuadratic(Landscape):
    """``f(x, y) = ½(a·x² − b·y²)``: a saddle at the origin, unbounded below.

    Hessian ``diag(a, −b)``. GD always escapes along ``y``; unnormalized SAM is
    exactly ``p ← (I − η(H + ρH²))p`` and is captured when ``−b < −1/ρ``.
    """

    name = "saddle quadratic"
    unbounded_below = True

    def __init__(self, a: float = 1.0, b: float = 1.0):
        self.a = _positive("a", a)
        self.b = _positive("b", b)
        self.critical_points = (CriticalPoint("saddle", (0.0, 0.0), "saddle"),)

    @property
    def H(self) -> np.ndarray:
        return np.diag([self.a, -self.b])

    def loss_xy(self, x, y):
        return 0.5 * (self.a * x * x - self.b * y * y)

    def grad_xy(self, x, y):
        return self.a * x, -self.b * y

    def hessian_xy(self, x, y):
        shape = np.broadcast_shapes(np.shape(x), np.shape(y))
        return np.full(shape, self.a), np.zeros(shape), np.full(shape, -self.b)


class BoundedSaddle(Landscape):
    """``f(x, y) = ½a·x² − ½b·y² + c·y⁴/4``: a saddle between two minima.

    The saddle sits at the origin with Hessian ``diag(a, −b)``; the minima at
    ``(0, ±√(b/c))`` have Hessian ``diag(a, 2b)`` and loss ``−b²/(4c)``.
    """

    name = "bounded saddle"

    def __init__(self, a: float = 1.0, b: float = 1.0, c: float = 1.0):
        self.a = _positive("a", a)
        self.b = _positive("b", b)
        self.c = _positive("c", c)
        y_min = math.sqrt(self.b / self.c)
        self.critical_points = (
            CriticalPoint("saddle", (0.0, 0.0), "saddle"),
            CriticalPoint("y+", (0.0, y_min), "minimum"),
            CriticalPoint("y-", (0.0, -y_min), "minimum"),
        )
        r = 1.6 * y_min
        self.extent = ((-r, r), (-r, r))

    def loss_xy(self, x, y):
        y2 = y * y
        return 0.5 * self.a * x * x - 0.5 * self.b * y2 + 0.25 * self.c * y2 * y2

    def grad_xy(self, x, y):
        return self.a * x, y * (self.c * y * y - self.b)

    def hessian_xy(self, x, y):
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        return np.full(x.shape, self.a), np.zeros(x.shape), 3.0 * self.c * y * y - self.b


class ConvexQuadratic(Landscape):
    """``f(p) = ½ pᵀHp`` with ``H = R(θ) diag(λ₁, λ₂) R(θ)ᵀ``, both ``λ > 0``.

    GD is stable iff ``ηλ_max < 2``; USAM iff ``ηλ(1 + ρλ) < 2`` for every
    eigenvalue; normalized SAM oscillates with amplitude about ``ηρλ``.
    """

    name = "convex quadratic"

    def __init__(self, eigenvalues: tuple[float, float] = (1.0, 0.1), angle: float = 0.0):
        if isinstance(eigenvalues, (str, bytes)) or np.shape(eigenvalues) != (2,):
            raise validate.fail("eigenvalues", "two numbers > 0", eigenvalues)
        self.eigenvalues = tuple(_positive("eigenvalues", v) for v in eigenvalues)
        self.angle = validate.number("angle", angle)
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        self._H = rot @ np.diag(self.eigenvalues) @ rot.T
        self.critical_points = (CriticalPoint("origin", (0.0, 0.0), "minimum"),)

    @property
    def H(self) -> np.ndarray:
        return self._H.copy()

    def loss_xy(self, x, y):
        (hxx, hxy), (_, hyy) = self._H
        return 0.5 * (hxx * x * x + 2.0 * hxy * x * y + hyy * y * y)

    def grad_xy(self, x, y):
        (hxx, hxy), (_, hyy) = self._H
        return hxx * x + hxy * y, hxy * x + hyy * y

    def hessian_xy(self, x, y):
        shape = np.broadcast_shapes(np.shape(x), np.shape(y))
        (hxx, hxy), (_, hyy) = self._H
        return np.full(shape, hxx), np.full(shape, hxy), np.full(shape, hyy)


class Hyperbola(Landscape):
    """``f(x, y) = ½(x·y − 1)²``: a manifold of minima on ``x·y = 1``.

    On the manifold the Hessian is ``[[y², 1], [1, x²]]`` with top eigenvalue
    (the sharpness) ``x² + y²``, smallest at ``|x| = |y| = 1``. The origin is a
    saddle. Normalized SAM drifts along the manifold toward the flattest point
    (Dai, Ahn, Sra, NeurIPS 2023).
    """

    name = "hyperbola"
    has_minimum_manifold = True

    def __init__(self):
        self.critical_points = (CriticalPoint("saddle", (0.0, 0.0), "saddle"),)
        self.extent = ((-0.5, 4.0), (-0.5, 4.0))

    def minimum_curves(self, n: int = 400) -> list[np.ndarray]:
        (x0, x1), (y0, y1) = self.extent
        curves = []
        for lo, hi in ((max(x0, 1 / y1), x1), (x0, min(x1, 1 / y0))):  # x > 0, x < 0
            if lo < hi and lo * hi > 0:
                x = np.geomspace(lo, hi, n) if lo > 0 else -np.geomspace(-hi, -lo, n)
                curves.append(np.stack([x, 1 / x], axis=-1))
        return curves

    @staticmethod
    def sharpness(p: np.ndarray) -> np.ndarray:
        """Top Hessian eigenvalue on the manifold: ``x² + y²``."""
        p = _as_points(p)
        return p[..., 0] ** 2 + p[..., 1] ** 2

    def loss_xy(self, x, y):
        r = x * y - 1.0
        return 0.5 * r * r

    def grad_xy(self, x, y):
        r = x * y - 1.0
        return r * y, r * x

    def hessian_xy(self, x, y):
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        return y * y, 2.0 * x * y - 1.0, x * x

    def minimum_residual_xy(self, x, y):
        # First-order distance to the curve xy = 1: |f'| / |∇(xy)|.
        return np.abs(x * y - 1.0) / np.sqrt(x * x + y * y + 1e-300)


class SharpFlatValley(Landscape):
    """``f(x, y) = ½ s(x)·y²``: a valley floor ``y = 0`` of minima, sharp near ``x = 0``.

    The curvature across the valley, ``s(x) = λ_flat + (λ_sharp − λ_flat)·exp(−x²/2w²)``,
    is the sharpness of the minimum ``(x, 0)``. GD settles wherever it reaches
    the floor, sharp or not; SAM's ascent feels ``s'(x)`` and drifts toward the
    flat ends (late-phase switching, Zhou et al., ICLR 2025).
    """

    name = "sharp/flat valley"
    has_minimum_manifold = True

    def __init__(self, lambda_sharp: float = 10.0, lambda_flat: float = 1.0, width: float = 1.0):
        self.lambda_sharp = _positive("lambda_sharp", lambda_sharp)
        self.lambda_flat = _positive("lambda_flat", lambda_flat)
        self.width = _positive("width", width)
        self.critical_points = ()
        self.extent = ((-3.0 * self.width, 3.0 * self.width), (-1.5, 1.5))

    def minimum_curves(self, n: int = 400) -> list[np.ndarray]:
        (x0, x1), _ = self.extent
        return [np.stack([np.linspace(x0, x1, n), np.zeros(n)], axis=-1)]

    def sharpness(self, p: np.ndarray) -> np.ndarray:
        """Curvature across the valley at ``x``: ``s(x)``."""
        p = _as_points(p)
        return self._s(p[..., 0])[0]

    def _s(self, x, derivatives: int = 2):
        """``s(x)`` and its first ``derivatives`` derivatives (a step needs one, not two)."""
        w2 = self.width**2
        bump = (self.lambda_sharp - self.lambda_flat) * np.exp(-0.5 * x * x / w2)
        s = self.lambda_flat + bump
        if derivatives == 0:
            return (s,)
        ds = -x / w2 * bump
        if derivatives == 1:
            return s, ds
        return s, ds, (x * x / w2 - 1.0) / w2 * bump

    def loss_xy(self, x, y):
        return 0.5 * self._s(x, 0)[0] * y * y

    def grad_xy(self, x, y):
        s, ds = self._s(x, 1)
        return 0.5 * ds * y * y, s * y

    def hessian_xy(self, x, y):
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        s, ds, d2s = self._s(x)
        return 0.5 * d2s * y * y, ds * y, s

    def minimum_residual_xy(self, x, y):
        return np.abs(y) + 0.0 * x


class TiltedValley(Landscape):
    """``f(x, y) = ½λ·x² + c·y``: a valley along ``y`` that slopes down at a constant rate ``c``.

    Hessian ``diag(λ, 0)``; the gradient ``(λx, c)`` has norm ``≈ c`` near the floor
    ``x = 0``, so the stability edges of docs/edges.md#the-closed-form-check hold exactly
    there: across the valley GD multiplies ``x`` by ``1 − ηλ``, USAM by ``1 − ηλ(1 + ρλ)``
    and normalized SAM by ``1 − ηλ(1 + ρλ/‖g‖)``. No critical points; unbounded below:
    every run slides down ``y`` by ``η·c`` per step.
    """

    name = "tilted valley"
    unbounded_below = True
    # A run slides down y by η·c a step (0.05 for η = 0.1, c = 0.5): this bound lets tens of
    # thousands of such steps count as sliding, not as having left the landscape.
    bound = 1e4

    def __init__(self, lam: float = 10.0, c: float = 0.5):
        self.lam = _positive("lam", lam)
        self.c = _positive("c", c)
        self.critical_points = ()
        self.extent = ((-1.0, 1.0), (-4.0, 1.0))

    def loss_xy(self, x, y):
        return 0.5 * self.lam * x * x + self.c * y

    def grad_xy(self, x, y):
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        return self.lam * x, np.full(y.shape, self.c)

    def hessian_xy(self, x, y):
        shape = np.broadcast_shapes(np.shape(x), np.shape(y))
        return np.full(shape, self.lam), np.zeros(shape), np.zeros(shape)
