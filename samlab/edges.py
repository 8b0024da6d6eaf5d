"""Stability edges: the largest curvature λ each method can sit at (docs/edges.md).

Along the top Hessian eigenvector (curvature ``λ``) of the local quadratic model, with
``‖g‖`` held constant over a step (Long & Bartlett, 2023), every method multiplies the
deviation by ``1 − η·λ_eff`` and is stable while ``η·λ_eff < 2 + 2β`` (``β``: heavy-ball
momentum, 0 for plain descent), docs/edges.md#the-linearization:

==========  =========================  ===============================================
method      ``λ_eff``                  edge: the largest stable ``λ``, ``C = (2+2β)/η``
==========  =========================  ===============================================
GD / SGD    ``λ``                      ``C``
USAM        ``λ + ρλ²``                ``2C / (1 + √(1 + 4ρC))``
SAM         ``λ + ρλ²/‖g‖``            ``2C / (1 + √(1 + 4ρC/‖g‖))``
SSAM        ``γ·(λ + ρλ²)``            USAM's with ``η → η·γ``
SAM+renorm  ``γ·(λ + ρλ²/‖g‖)``        SAM's with ``η → η·γ``
==========  =========================  ===============================================

Every function broadcasts over NumPy arrays (a learning rate and a ``‖g‖`` per epoch give
an edge per epoch) and returns a ``float`` when every argument is a number.

>>> edge("sam", lr=0.1, rho=0.05, grad_norm=0.5), gd_edge(0.1)
(10.0, 20.0)

This module imports NumPy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import validate
from .ascents import get_ascent
from .methods import get_method

__all__ = ["edge", "gd_edge", "sam_edge", "ssam_edge", "usam_edge"]


# -- checks at the public boundary -----------------------------------------------------


def _lr(lr) -> np.ndarray:
    return validate.numbers("lr", lr, low=0.0, strict_low=True)


def _rho(rho) -> np.ndarray:
    return validate.numbers("rho", rho, low=0.0)


def _positive(name: str, value) -> np.ndarray:
    return validate.numbers(name, value, low=0.0, strict_low=True)


def _momentum(momentum) -> np.ndarray:
    beta = validate.numbers("momentum", momentum, low=0.0)
    if (beta >= 1.0).any():
        raise validate.fail("momentum", "a finite number in [0, 1)", float(beta[beta >= 1].flat[0]))
    return beta


def _shape(**arrays: np.ndarray) -> tuple[int, ...]:
    """The shape the arguments broadcast to, or an error naming them and their shapes."""
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays.values()))
    except ValueError:
        given = ", ".join(f"{k} {a.shape}" for k, a in arrays.items())
        names = list(arrays)
        raise ValueError(f"{', '.join(names[:-1])} and {names[-1]} must broadcast against "
                         f"each other, got shapes {given}") from None


def _out(value: np.ndarray) -> np.ndarray | float:
    return float(value) if value.ndim == 0 else value


# -- the edges -------------------------------------------------------------------------


def _root(C: np.ndarray, rho: np.ndarray, grad_norm: np.ndarray | float = 1.0) -> np.ndarray:
    """The positive root of ``a·λ² + λ − C = 0``, ``a = ρ/‖g‖``: ``2C / (1 + √(1 + 4aC))``.

    The same root as ``(√(1 + 4aC) − 1)/(2a)``, without its cancellation for small ``a``:
    ``a = 0`` gives ``C`` exactly (docs/edges.md#a-stable-root).
    """
    # A ‖g‖ so small that ρ/‖g‖ overflows (below about 1e-300) gives 4aC = inf and edge 0,
    # the limit, for a true edge √(C‖g‖/ρ) below 1e-150.
    with np.errstate(over="ignore", divide="ignore"):
        a = rho / grad_norm
        return 2.0 * C / (1.0 + np.sqrt(1.0 + 4.0 * a * C))


def gd_edge(lr: ArrayLike, momentum: ArrayLike = 0.0) -> np.ndarray | float:
    """GD's edge ``(2 + 2β)/η``: stable while ``η·λ < 2 + 2β`` (docs/edges.md#gd-and-momentum)."""
    lr, beta = _lr(lr), _momentum(momentum)
    _shape(lr=lr, momentum=beta)
    return _out((2.0 + 2.0 * beta) / lr)


def usam_edge(lr: ArrayLike, rho: ArrayLike, momentum: ArrayLike = 0.0) -> np.ndarray | float:
    """USAM's edge, the root of ``η(λ + ρλ²) = 2 + 2β`` (docs/edges.md#usam).

    ``λ* = (√(1 + 4ρC) − 1)/(2ρ) = 2C/(1 + √(1 + 4ρC))`` with ``C = (2 + 2β)/η``;
    ``ρ = 0`` gives GD's edge.
    """
    lr, rho, beta = _lr(lr), _rho(rho), _momentum(momentum)
    _shape(lr=lr, rho=rho, momentum=beta)
    return _out(_root((2.0 + 2.0 * beta) / lr, rho))


def sam_edge(lr: ArrayLike, rho: ArrayLike, grad_norm: ArrayLike,
             momentum: ArrayLike = 0.0) -> np.ndarray | float:
    """Normalized SAM's edge, the root of ``η(λ + ρλ²/‖g‖) = 2 + 2β`` (docs/edges.md#sam).

    ``λ* = (‖g‖/(2ρ))·(√(1 + 4ρC/‖g‖) − 1) = 2C/(1 + √(1 + 4ρC/‖g‖))``, ``C = (2 + 2β)/η``:
    below GD's edge, falling as ``‖g‖`` falls, GD's as ``‖g‖ → ∞``.
    """
    lr, rho = _lr(lr), _rho(rho)
    grad_norm, beta = _positive("grad_norm", grad_norm), _momentum(momentum)
    _shape(lr=lr, rho=rho, grad_norm=grad_norm, momentum=beta)
    return _out(_root((2.0 + 2.0 * beta) / lr, rho, grad_norm))


def ssam_edge(lr: ArrayLike, rho: ArrayLike, gamma: ArrayLike,
              momentum: ArrayLike = 0.0) -> np.ndarray | float:
    """SSAM's edge: USAM's with ``η`` replaced by ``η·γ`` (docs/edges.md#ssam-and-renormalized-sam).

    The root of ``η·γ·(λ + ρλ²) = 2 + 2β``; ``γ = ‖g‖/‖∇L(w_asc)‖`` as measured.
    """
    lr, rho = _lr(lr), _rho(rho)
    gamma, beta = _positive("gamma", gamma), _momentum(momentum)
    _shape(lr=lr, rho=rho, gamma=gamma, momentum=beta)
    return _out(_root((2.0 + 2.0 * beta) / (lr * gamma), rho))


def edge(method: str, lr: ArrayLike, rho: ArrayLike | None = None,
         grad_norm: ArrayLike | None = None, gamma: ArrayLike | None = None,
         momentum: ArrayLike = 0.0) -> np.ndarray | float:
    """The edge of ``method``, a row name of :mod:`samlab.methods` (docs/edges.md#the-table).

    The row's ascent rule (:mod:`samlab.ascents`) gives the edge: ``sgd``/``gd``
    :func:`gd_edge`; ``usam`` :func:`usam_edge`; ``sam`` :func:`sam_edge` (needs
    ``grad_norm``); a renormalized row the same with ``η·γ`` (needs ``gamma``: ``ssam``
    is :func:`ssam_edge`). Arguments a row does not use are checked, then ignored. A rule
    with no closed form (``asam``) is refused, naming the method and why.
    """
    m = get_method(method)
    rule = get_ascent(m.ascent)
    if rule.edge is None:
        raise ValueError(f"method {method!r} has no stability edge in closed form: {rule.no_edge}")
    # Every argument given is checked, used or not: a bad value is a mistake either way.
    given = {"rho": _rho(rho) if rho is not None else None,
             "grad_norm": _positive("grad_norm", grad_norm) if grad_norm is not None else None,
             "gamma": _positive("gamma", gamma) if gamma is not None else None}
    if not m.has_ascent:
        return rule.edge(lr, None, None, momentum)
    needs = {"rho": "a finite number >= 0 ({}'s edge depends on ρ)",
             "grad_norm": "a finite number > 0 ({}'s edge depends on ‖g‖: pass the one "
                          "the plot uses, full-batch or mini-batch)",
             "gamma": "a finite number > 0 ({}'s edge depends on γ = ‖g‖/‖∇L(w_asc)‖)"}
    for name in ("rho", *(("grad_norm",) if rule.normalized else ()),
                 *(("gamma",) if m.renormalize else ())):
        if given[name] is None:
            raise validate.fail(name, needs[name].format(method), None)
    if m.renormalize:  # the descent is γ·∇L(w_asc): the edge of the rule with η·γ
        lr = _lr(lr)
        _shape(lr=lr, gamma=given["gamma"])
        lr = lr * given["gamma"]
    return rule.edge(lr, rho, grad_norm, momentum)
