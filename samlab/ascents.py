"""The ascent rules: how a method climbs from ``w`` to ``w + ε``, one entry per rule.

Every rule is a direction ``u`` and its norm ``n``, computed from the weights ``w`` and the
gradient ``g``; then ``ε = ρ·u / (n + 1e-12)`` for a *normalized* rule (``ε`` has length
``ρ``) and ``ε = ρ·u`` otherwise (docs/methods.md#the-table):

=================  ==========  ===================  ======================================
rule               normalized  ``u``, ``n``          stability edge (docs/edges.md)
=================  ==========  ===================  ======================================
``none``           no          no ascent             GD's
``normalized``     yes         ``g``, ``‖g‖``        SAM's (needs ``‖g‖``)
``unnormalized``   no          ``g``                 USAM's
``adaptive``       yes         ``T²g``, ``‖Tg‖``     none in closed form
=================  ==========  ===================  ======================================

An entry holds the rule's direction in torch (what :class:`samlab.optim.SAM` climbs with),
in NumPy (what :mod:`samlab.toy` climbs with) and its edge, or the reason it has none; the
optimizer, the toy world, :func:`samlab.edges.edge` and the plots all go through it. A new
rule is one :func:`register` call (docs/methods.md#adding-a-method).

This module imports neither torch nor a plotting library (the torch directions import
torch when first called).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import validate


@dataclass(frozen=True)
class AscentRule:
    """One ascent rule. ``torch_direction(w, g, grad_norm, **options) -> (u, n)`` on lists of
    tensors (``grad_norm`` is ``‖g‖`` if known, else None; ``n`` may be None for a rule that
    is not normalized); ``numpy_direction(x, y, gx, gy, grad_norm, adaptive_eta) -> (ux, uy,
    n)`` on arrays of runs; ``edge(lr, rho, grad_norm, momentum)``, the largest stable
    curvature, or None with ``no_edge`` saying why; ``in_page``: the playground's
    JavaScript engine (samlab/widgets/js/engine.js) has it too."""

    name: str
    normalized: bool
    torch_direction: Callable[..., tuple[Any, Any]]
    numpy_direction: Callable[..., tuple[Any, Any, Any]]
    edge: Callable[..., Any] | None = None
    no_edge: str = ""
    in_page: bool = False

    def __post_init__(self) -> None:
        if self.edge is None and not self.no_edge:
            raise ValueError(f"ascent {self.name!r}: give its edge, or no_edge saying why it "
                             "has none in closed form")


# -- the built-in rules' mathematics --------------------------------------------------------------
def _g_torch(w, g, grad_norm, **options):
    from .optim.update import global_norm

    return g, grad_norm if grad_norm is not None else global_norm(g)


def _g_numpy(x, y, gx, gy, grad_norm, adaptive_eta):
    return gx, gy, grad_norm


def _adaptive_torch(w, g, grad_norm, *, adaptive_eta=0.01, adaptive_variant="original",
                    **options):
    """``(T²g, ‖Tg‖)`` with ``T = |w| + η_a`` on weight tensors and 1 on biases and
    normalization parameters (``"original"``, Kwon et al.), or ``T = |w|`` everywhere
    (``"abs"``)."""
    import torch

    from .optim.update import global_norm

    if adaptive_variant == "abs":
        t = torch._foreach_abs(w)
        tg = torch._foreach_mul(t, g)
        return torch._foreach_mul(t, tg), global_norm(tg)
    w_idx = [i for i, p in enumerate(w) if p.ndim > 1]  # weight tensors; T = 1 elsewhere
    if not w_idx:
        return g, global_norm(g)
    t = torch._foreach_add(torch._foreach_abs([w[i] for i in w_idx]), adaptive_eta)
    tg_w = torch._foreach_mul(t, [g[i] for i in w_idx])
    tg, direction = list(g), list(g)
    for i, a, b in zip(w_idx, tg_w, torch._foreach_mul(t, tg_w)):
        tg[i], direction[i] = a, b
    return direction, global_norm(tg)


def _adaptive_numpy(x, y, gx, gy, grad_norm, adaptive_eta):
    """``(T²g, ‖Tg‖)`` with ``T = |w| + η_a`` on both coordinates."""
    tx, ty = np.abs(x) + adaptive_eta, np.abs(y) + adaptive_eta
    tgx, tgy = tx * gx, ty * gy
    return tx * tx * gx, ty * ty * gy, np.sqrt(tgx * tgx + tgy * tgy)


def _gd_edge(lr, rho, grad_norm, momentum):
    from .edges import gd_edge

    return gd_edge(lr, momentum)


def _sam_edge(lr, rho, grad_norm, momentum):
    from .edges import sam_edge

    return sam_edge(lr, rho, grad_norm, momentum)


def _usam_edge(lr, rho, grad_norm, momentum):
    from .edges import usam_edge

    return usam_edge(lr, rho, momentum)


ASCENT_RULES: dict[str, AscentRule] = {}


def register(rule: AscentRule) -> AscentRule:
    """Add ``rule`` under its name (a name already taken is refused)."""
    if not isinstance(rule, AscentRule):
        raise validate.fail("rule", "an AscentRule", rule)
    if rule.name in ASCENT_RULES:
        raise ValueError(f"an ascent called {rule.name!r} exists already")
    ASCENT_RULES[rule.name] = rule
    return rule


def unregister(name: str) -> None:
    """Remove the rule called ``name`` (a built-in one is refused)."""
    if name in BUILT_IN:
        raise ValueError(f"ascent {name!r} is built in and cannot be removed")
    ASCENT_RULES.pop(name, None)


def names() -> tuple[str, ...]:
    """Every rule's name, in the order they were registered."""
    return tuple(ASCENT_RULES)


def get_ascent(name: str) -> AscentRule:
    """The rule called ``name``; a clear error for an unknown one."""
    if isinstance(name, str) and name in ASCENT_RULES:
        return ASCENT_RULES[name]
    raise validate.fail("ascent", "one of " + ", ".join(map(repr, names())), name)


for _rule in (
    AscentRule("none", False, _g_torch, _g_numpy, _gd_edge, in_page=True),
    AscentRule("normalized", True, _g_torch, _g_numpy, _sam_edge, in_page=True),
    AscentRule("unnormalized", False, _g_torch, _g_numpy, _usam_edge, in_page=True),
    AscentRule("adaptive", True, _adaptive_torch, _adaptive_numpy,
               no_edge="its ascent ρ·T²g/‖Tg‖ rescales each weight by T = |w| + η_a, so "
                       "λ_eff depends on w and not on λ alone (docs/edges.md#asam)",
               in_page=True),
):
    register(_rule)
BUILT_IN = frozenset(ASCENT_RULES)
