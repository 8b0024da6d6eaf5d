"""The SAM family on 2D landscapes (SPEC §1), one vectorized step for all.

Every method is an *ascent* ``w_asc = w + ε`` followed by a descent step
``w ← w − η·d`` taken from ``w`` with the gradient ``d`` measured at ``w_asc``:

=========  ==========================================  ==========================
method     ascent ``ε``                                descent gradient ``d``
=========  ==========================================  ==========================
``gd``     none                                        ``g``
``sam``    ``ρ·g/‖g‖``             (Foret et al. 2021)  ``∇f(w_asc)``
``usam``   ``ρ·g``                                     ``∇f(w_asc)``
``ssam``   ``ρ·g``                 (Tan et al. 2025)    ``γ·∇f(w_asc)``, ``γ = ‖g‖/‖∇f(w_asc)‖``
``asam``   ``ρ·T²g/‖Tg‖``, ``T = |w| + η_a`` (Kwon 2021)  ``∇f(w_asc)``
``rsam``   ``ρ·g/‖g‖``  (renormalized SAM)              ``γ·∇f(w_asc)``
=========  ==========================================  ==========================

Every division by a norm is guarded by ``EPS = 1e-12``: a zero gradient gives
no perturbation, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

EPS = 1e-12

Ascent = Literal["normalized", "unnormalized", "adaptive"]


@dataclass(frozen=True)
class Method:
    """One row of the SPEC table: how to ascend, and whether to renormalize."""

    name: str
    ascent: Ascent | None
    renormalize: bool
    label: str

    @property
    def normalized(self) -> bool:
        """True when the ascent has length ``ρ`` (SAM, ASAM), not ``ρ‖g‖``."""
        return self.ascent in ("normalized", "adaptive")


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("gd", None, False, "GD"),
        Method("sam", "normalized", False, "SAM"),
        Method("usam", "unnormalized", False, "USAM"),
        Method("ssam", "unnormalized", True, "SSAM"),
        Method("asam", "adaptive", False, "ASAM"),
        Method("rsam", "normalized", True, "SAM + renorm"),
    )
}


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``; a clear error for an unknown name."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"method must be one of {', '.join(map(repr, METHODS))}, got {name!r}"
        ) from None


@dataclass
class StepFlags:
    """Per-run switches of the universal step: Python bools or boolean arrays.

    With Python bools the step skips what the method does not need; with arrays
    (several methods in one batch) it computes everything and selects. Both give
    bit-identical results for the same run.
    """

    ascent: bool | np.ndarray
    normalized: bool | np.ndarray
    adaptive: bool | np.ndarray
    renormalize: bool | np.ndarray

    @classmethod
    def for_methods(cls, methods: np.ndarray) -> StepFlags:
        names = np.unique(methods)
        ms = [get_method(str(n)) for n in names]
        if len(ms) == 1:
            m = ms[0]
            return cls(m.ascent is not None, m.normalized, m.ascent == "adaptive", m.renormalize)

        def flag(pred) -> bool | np.ndarray:
            table = {m.name: pred(m) for m in ms}
            if len(set(table.values())) == 1:  # the same for every run: skip the selection
                return next(iter(table.values()))
            return np.vectorize(table.__getitem__, otypes=[bool])(methods)

        return cls(
            ascent=True,  # GD joins a mixed batch as an ascent with ρ = 0
            normalized=flag(lambda m: m.normalized),
            adaptive=flag(lambda m: m.ascent == "adaptive"),
            renormalize=flag(lambda m: m.renormalize),
        )


def step(landscape, x, y, lr, rho, flags: StepFlags, adaptive_eta: float, noise=None,
         stats: bool = True):
    """One step of every run at once, on coordinate arrays ``x`` and ``y``.

    Returns ``(x_new, y_new, grad_norm, ascent_grad_norm, gamma)``; with
    ``stats=False`` the last three may be ``None`` when the step itself does not
    need them (phase diagrams skip that work). ``noise`` is ``None`` or a pair of
    arrays added to both gradients (the same mini-batch serves the ascent and
    the descent, SPEC §1).
    """
    gx, gy = landscape._grad(x, y)
    if noise is not None:
        gx = gx + noise[0]
        gy = gy + noise[1]
    needs_norm = stats or flags.normalized is not False or flags.renormalize is not False
    grad_norm = np.sqrt(gx * gx + gy * gy) if needs_norm else None
    if flags.ascent is False:
        gamma = grad_norm / (grad_norm + EPS) if stats else None
        return x - lr * gx, y - lr * gy, grad_norm, grad_norm, gamma

    # Ascent: ε = ρ·T²g / N, with T = 1 unless adaptive, N = ‖Tg‖ if normalized else 1.
    if flags.adaptive is False:
        ux, uy, n = gx, gy, grad_norm
    else:
        tx = np.abs(x) + adaptive_eta
        ty = np.abs(y) + adaptive_eta
        if flags.adaptive is not True:
            tx = np.where(flags.adaptive, tx, 1.0)
            ty = np.where(flags.adaptive, ty, 1.0)
        ux, uy = tx * tx * gx, ty * ty * gy
        tgx, tgy = tx * gx, ty * gy
        n = np.sqrt(tgx * tgx + tgy * tgy)
    if flags.normalized is True:
        scale = rho / (n + EPS)
    elif flags.normalized is False:
        scale = rho
    else:
        scale = np.where(flags.normalized, rho / (n + EPS), rho)
    ax, ay = landscape._grad(x + scale * ux, y + scale * uy)
    if noise is not None:
        ax = ax + noise[0]
        ay = ay + noise[1]
    if not (stats or flags.renormalize is not False):
        return x - lr * ax, y - lr * ay, None, None, None
    ascent_norm = np.sqrt(ax * ax + ay * ay)
    gamma = grad_norm / (ascent_norm + EPS)

    if flags.renormalize is True:
        ax, ay = gamma * ax, gamma * ay
    elif flags.renormalize is not False:
        ax = np.where(flags.renormalize, gamma * ax, ax)
        ay = np.where(flags.renormalize, gamma * ay, ay)
    return x - lr * ax, y - lr * ay, grad_norm, ascent_norm, gamma
