"""One step of the SAM family on a 2D landscape, for a whole batch of runs at once.

The rows of :mod:`samlab.methods` in NumPy (docs/methods.md#the-table): a step climbs
from ``w`` to ``w_asc = w + ε`` (:func:`perturbation`), measures the gradient there, and
descends from ``w`` with it, rescaled by ``γ`` (:func:`gamma`) where the method
renormalizes (:func:`step`). Each run of a batch follows its own row: :class:`Rules`
holds the rows run by run, as boolean arrays, so runs of different methods step together
in one pass of array operations (a playground's four methods cost one step, not four).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..ascents import AscentRule, get_ascent
from ..methods import EPS, get_method
from .landscapes import Landscape


@dataclass(frozen=True)
class Rules:
    """Every run's row of the method table, as arrays that broadcast over the batch.

    ``kinds`` pairs each ascent rule of the batch (:mod:`samlab.ascents`) with the runs
    that follow it; the ``any_*``/``all_*`` facts about the whole batch let a step skip
    the work no run of it needs (a batch of SAM runs never computes ASAM's ``T``).
    """

    ascent: np.ndarray       # has an ascent (every method but SGD/GD)
    renormalize: np.ndarray  # descend with γ·∇f(w_asc)
    kinds: tuple[tuple[AscentRule, np.ndarray], ...]  # (rule, its runs), one per rule

    @classmethod
    def of(cls, methods: np.ndarray) -> Rules:
        """The rules of an array of method names (any shape)."""
        names, inverse = np.unique(np.asarray(methods), return_inverse=True)
        rows = [get_method(str(n)) for n in names]

        def column(has) -> np.ndarray:
            return np.array([has(m) for m in rows])[inverse].reshape(np.shape(methods))

        kinds = tuple((get_ascent(a), column(lambda m, a=a: m.ascent == a))
                      for a in dict.fromkeys(m.ascent for m in rows))
        return cls(column(lambda m: m.has_ascent), column(lambda m: m.renormalize), kinds)

    def switched_on(self, on) -> Rules:
        """These rules where ``on`` is True, plain descent elsewhere (late-phase switching).

        A run whose method is off takes ``ε = 0`` and no renormalization: exactly a GD step.
        """
        on = np.asarray(on, dtype=bool)
        return Rules(self.ascent & on, self.renormalize & on, self.kinds)

    @cached_property
    def any_ascent(self) -> bool:
        return bool(self.ascent.any())

    @cached_property
    def all_ascent(self) -> bool:
        return bool(self.ascent.all())

    @cached_property
    def any_renormalize(self) -> bool:
        return bool(self.renormalize.any())

    @cached_property
    def any_normalized(self) -> bool:
        return any(rule.normalized for rule, _ in self.kinds)


def perturbation(x, y, gx, gy, grad_norm, rho, rules: Rules, adaptive_eta: float):
    """The ascent ``ε = (εx, εy)`` of every run at ``w = (x, y)``, gradient ``g = (gx, gy)``.

    Each run's rule (:mod:`samlab.ascents`) gives a direction ``u`` and its norm ``n``:
    ``ε = ρ·u / (n + 1e-12)`` for a normalized rule (SAM: ``u = g``; ASAM: ``u = T²g``,
    ``n = ‖Tg‖``, ``T = |w| + η_a``), ``ε = ρ·u`` otherwise (USAM: ``u = g``). A run
    without an ascent gets ``ε = 0`` (its ``ρ`` is taken as 0).
    """
    if not rules.all_ascent:
        rho = np.where(rules.ascent, rho, 0.0)
    eps = None
    for rule, runs in rules.kinds:
        ux, uy, n = rule.numpy_direction(x, y, gx, gy, grad_norm, adaptive_eta)
        scale = rho / (n + EPS) if rule.normalized else rho
        ex, ey = scale * ux, scale * uy
        eps = (ex, ey) if eps is None else (np.where(runs, ex, eps[0]), np.where(runs, ey, eps[1]))
    return eps


def gamma(grad_norm, ascent_grad_norm):
    """SSAM's descent scale ``γ = ‖g‖ / (‖∇f(w_asc)‖ + 1e-12)``."""
    return grad_norm / (ascent_grad_norm + EPS)


def step(landscape: Landscape, x, y, lr, rho, rules: Rules, adaptive_eta: float,
         noise=None, stats: bool = True):
    """``w ← w − η·d`` for every run: ``d = g`` without an ascent, else ``[γ·]∇f(w + ε)``.

    Returns ``(x, y, ‖g‖, ‖∇f(w_asc)‖, γ)``; with ``stats=False`` the last three are
    ``None`` where the step itself does not need them (phase diagrams skip that work).
    ``noise`` is ``None`` or a pair of arrays added to both gradients: the same
    mini-batch serves the ascent and the descent.
    """
    gx, gy = landscape.grad_xy(x, y)
    if noise is not None:
        gx, gy = gx + noise[0], gy + noise[1]
    need_norm = stats or rules.any_normalized or rules.any_renormalize
    grad_norm = np.sqrt(gx * gx + gy * gy) if need_norm else None
    if not rules.any_ascent:
        g = gamma(grad_norm, grad_norm) if stats else None
        return x - lr * gx, y - lr * gy, grad_norm, grad_norm, g

    ex, ey = perturbation(x, y, gx, gy, grad_norm, rho, rules, adaptive_eta)
    ax, ay = landscape.grad_xy(x + ex, y + ey)
    if noise is not None:
        ax, ay = ax + noise[0], ay + noise[1]
    if not (stats or rules.any_renormalize):
        return x - lr * ax, y - lr * ay, None, None, None
    ascent_norm = np.sqrt(ax * ax + ay * ay)
    g = gamma(grad_norm, ascent_norm)
    if rules.any_renormalize:
        ax = np.where(rules.renormalize, g * ax, ax)
        ay = np.where(rules.renormalize, g * ay, ay)
    return x - lr * ax, y - lr * ay, grad_norm, ascent_norm, g
