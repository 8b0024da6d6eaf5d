"""Closed-form predictions on quadratics (docs/toy.md#closed-forms), to set beside the simulations.

On ``f(p) = ½ pᵀHp`` the gradient is ``Hp`` and the unnormalized ascent lands
at ``p + ρHp``, so one step of each method is a known map:

- GD:    ``p ← (I − ηH)p``
- USAM:  ``p ← (I − η(H + ρH²))p``
- SSAM:  ``p ← p − η·γ·(H + ρH²)p``,  ``γ = ‖Hp‖ / ‖(H + ρH²)p‖``

Along an eigenvector with eigenvalue ``λ`` the USAM factor is ``1 − ηλ(1 + ρλ)``.
"""

from __future__ import annotations

import numpy as np


def gd_map(H: np.ndarray, lr: float) -> np.ndarray:
    """The GD step matrix ``I − ηH``."""
    H = np.asarray(H, float)
    return np.eye(H.shape[-1]) - lr * H


def usam_map(H: np.ndarray, lr: float, rho: float) -> np.ndarray:
    """The USAM step matrix ``I − η(H + ρH²)``."""
    H = np.asarray(H, float)
    return np.eye(H.shape[-1]) - lr * (H + rho * H @ H)


def usam_factor(lam, lr, rho):
    """USAM's multiplier along an eigendirection: ``1 − ηλ(1 + ρλ)``."""
    lam, lr, rho = np.asarray(lam, float), np.asarray(lr, float), np.asarray(rho, float)
    return 1.0 - lr * lam * (1.0 + rho * lam)


def gd_stable(lr, lam_max):
    """GD converges on a convex quadratic iff ``η·λ_max < 2``."""
    return np.asarray(lr) * np.asarray(lam_max) < 2.0


def usam_stable(lr, rho, lam):
    """USAM is stable along curvature ``λ > 0`` iff ``ηλ(1 + ρλ) < 2``."""
    return np.abs(usam_factor(lam, lr, rho)) < 1.0


def usam_captures(rho, lam):
    """A negative-curvature direction ``λ < 0`` contracts under USAM iff ``λ < −1/ρ``.

    (Contraction also needs the step not to overshoot: see :func:`usam_saddle_trapped`.)
    """
    return np.asarray(rho) * np.asarray(lam) < -1.0


def usam_saddle_trapped(lr, rho, a, b):
    """USAM converges to the saddle of ``½(a·x² − b·y²)`` iff both factors are in (−1, 1).

    Along ``x`` (curvature ``a``): ``|1 − ηa(1 + ρa)| < 1``; along ``y``
    (curvature ``−b``): ``|1 + ηb(1 − ρb)| < 1``, i.e. ``ρ > 1/b`` and
    ``ηb(ρb − 1) < 2``.
    """
    return (np.abs(usam_factor(a, lr, rho)) < 1.0) & (np.abs(usam_factor(-b, lr, rho)) < 1.0)


def ssam_gamma(H: np.ndarray, p: np.ndarray, rho: float) -> np.ndarray:
    """SSAM's ``γ = ‖Hp‖ / ‖(H + ρH²)p‖`` at points ``p[..., 2]`` of a quadratic."""
    H = np.asarray(H, float)
    p = np.asarray(p, float)
    g = p @ H.T
    g_asc = g + rho * g @ H.T
    return np.linalg.norm(g, axis=-1) / np.linalg.norm(g_asc, axis=-1)


def sam_oscillation_amplitude(lr, rho, lam):
    """Normalized SAM in 1D, ``f = ½λx²``, settles into ``±ηρλ / (2 − ηλ)``, about ``ηρλ/2``.

    Near the minimum the step is ``x ← (1 − ηλ)x − ηρλ·sign(x)``; its 2-cycle
    is ``x* = ηρλ / (2 − ηλ)``, a peak-to-peak swing of about ``ηρλ``.
    """
    lr, rho, lam = (np.asarray(v, float) for v in (lr, rho, lam))
    return lr * rho * lam / (2.0 - lr * lam)
