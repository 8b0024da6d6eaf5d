"""The SAM family in one table: every method's name, ascent, renormalization, label, colour.

Every method is an *ascent* to ``w_asc = w + ε``, a gradient ``∇L(w_asc)`` measured there
on the same mini-batch, and a *descent* step from ``w`` (docs/methods.md#the-table):

=========  ===============  ============================================  ==================
method     ascent           ``ε``                                         descent gradient
=========  ===============  ============================================  ==================
``sgd``    ``none``         no ascent                                     ``g``
``sam``    ``normalized``   ``ρ·g/‖g‖``                 (Foret et al.)    ``∇L(w_asc)``
``usam``   ``unnormalized`` ``ρ·g``                                       ``∇L(w_asc)``
``ssam``   ``unnormalized`` ``ρ·g``                     (Tan et al.)      ``γ·∇L(w_asc)``
``asam``   ``adaptive``     ``ρ·T²g/‖Tg‖``, ``T = |w| + η_a`` (Kwon et al.)  ``∇L(w_asc)``
``rsam``   ``normalized``   ``ρ·g/‖g‖``                                   ``γ·∇L(w_asc)``
=========  ===============  ============================================  ==================

with ``γ = ‖g‖/‖∇L(w_asc)‖`` where ``renormalize`` is set (SSAM's renormalization, which
composes with any ascent: ``rsam`` is renormalized SAM).

The toy world (:mod:`samlab.toy`), the torch optimizers (:mod:`samlab.optim`), the
trainer's ``--method``, and the colours and labels of every figure all read this table,
so adding a method is one row here (plus an entry of :mod:`samlab.ascents`, if its
ascent is new).

Aliases: ``gd`` is ``sgd`` under its full-batch name. In the toy world without noise the
gradient is exact, so the base method is gradient descent; ``toy.run(..., "gd", ...)``
runs the ``sgd`` row and its figures say "GD".

This module imports neither torch nor a plotting library.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ascents import get_ascent

#: The name of an ascent rule of :mod:`samlab.ascents`.
Ascent = str

#: Every division by a norm is guarded by this: a zero gradient means no perturbation.
EPS = 1e-12


@dataclass(frozen=True)
class Method:
    """One row of the table: how a method climbs and whether it rescales its descent."""

    name: str
    ascent: Ascent
    renormalize: bool
    label: str
    color: str
    paper: str
    #: Other names of this row, each with the label figures show for it.
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def has_ascent(self) -> bool:
        """False for the base optimizer alone (``sgd``)."""
        return self.ascent != "none"

    @property
    def normalized(self) -> bool:
        """True when the ascent has length ``ρ`` (SAM, ASAM), not ``ρ‖g‖``."""
        return get_ascent(self.ascent).normalized


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("sgd", "none", False, "SGD", "#1f77b4", "the base optimizer alone",
               aliases=(("gd", "GD"),)),
        Method("sam", "normalized", False, "SAM", "#d62728", "Foret et al., ICLR 2021"),
        Method("usam", "unnormalized", False, "USAM", "#ff7f0e",
               "Andriushchenko & Flammarion, ICML 2022"),
        Method("ssam", "unnormalized", True, "SSAM", "#2ca02c", "Tan et al., JMLR 2025"),
        Method("asam", "adaptive", False, "ASAM", "#9467bd", "Kwon et al., ICML 2021"),
        Method("rsam", "normalized", True, "SAM + renorm", "#8c564b",
               "Foret et al.'s ascent with Tan et al.'s renormalization"),
    )
}


BUILT_IN = frozenset(METHODS)


def register(method: Method) -> Method:
    """Add a row to the table (its ascent a rule of :mod:`samlab.ascents`; a name or alias
    already taken is refused): the toy world, the optimizer, the trainer and the figures
    accept it from then on (docs/methods.md#adding-a-method)."""
    if not isinstance(method, Method):
        raise ValueError(f"method must be a samlab.methods.Method, got {method!r}")
    get_ascent(method.ascent)
    taken = [n for n in (method.name, *(a for a, _ in method.aliases)) if n in names()]
    if taken:
        raise ValueError(f"a method called {taken[0]!r} exists already")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove the row called ``name`` (a built-in row is refused)."""
    if name in BUILT_IN:
        raise ValueError(f"method {name!r} is built in and cannot be removed")
    METHODS.pop(name, None)


def names(*, aliases: bool = True) -> tuple[str, ...]:
    """Every name :func:`get_method` accepts, table order (aliases after their row)."""
    out: list[str] = []
    for m in METHODS.values():
        out.append(m.name)
        if aliases:
            out.extend(alias for alias, _ in m.aliases)
    return tuple(out)


def get_method(name: str) -> Method:
    """The row called ``name`` (or one of its aliases); a clear error for an unknown name."""
    if isinstance(name, str):
        if name in METHODS:
            return METHODS[name]
        for m in METHODS.values():
            if any(alias == name for alias, _ in m.aliases):
                return m
    raise ValueError(f"method must be one of {', '.join(map(repr, names()))}, got {name!r}")


def label(name: str) -> str:
    """What a figure calls ``name``: the row's label, or its alias's (``gd`` → "GD")."""
    m = get_method(name)
    return dict(m.aliases).get(name, m.label)


def color(name: str) -> str:
    """The colour of ``name``'s lines in every figure, static and interactive."""
    return get_method(name).color
