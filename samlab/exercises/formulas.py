"""The pencil-and-paper exercises (lectures 01, 02 and 05): USAM's map on a quadratic,
contraction along one curvature, SAM's 2-cycle, the momentum edge (docs/exercises.md).

Each truth is a closed form of :mod:`samlab.toy.theory` or :mod:`samlab.edges`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import edges
from ..toy import theory
from .compare import close_array, close_number, same_bool
from .core import Case, Check, Mistake, Verdict, run


def _symmetric(eigenvalues: list[float], seed: int, dtype=np.float64) -> np.ndarray:
    """``Q diag(λ) Qᵀ`` with a random rotation ``Q``: symmetric, never diagonal."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return ((q * eigenvalues) @ q.T).astype(dtype)


# -- lecture 01: usam_matrix ---------------------------------------------------------------


def _usam_matrix_cases() -> list[Case]:
    def case(name, eigenvalues, lr, rho, seed, dtype=np.float64):
        rtol = 1e-5 if dtype == np.float32 else 1e-9
        return Case(f"{name}, lr={lr}, rho={rho}, {np.dtype(dtype).name}",
                    {"H": _symmetric(eigenvalues, seed, dtype), "lr": lr, "rho": rho}, rtol=rtol)

    return [
        case("positive definite 2×2 H", [3.0, 0.5], 0.1, 0.05, 0),
        case("indefinite 3×3 H", [2.0, -1.5, 0.7], 0.05, 0.5, 1),
        case("negative-curvature 2×2 H", [-4.0, -0.5], 0.1, 2.0, 2),
        case("indefinite 3×3 H", [5.0, 1.0, -3.0], 0.02, 0.3, 3, np.float32),
        case("positive definite 2×2 H", [1.5, 4.0], 0.2, 0.1, 4, np.float32),
        case("rho = 0 (GD's map), 3×3 H", [1.0, -2.0, 0.5], 0.1, 0.0, 5),
    ]


def _usam_map(case: Case, square: Callable, identity: float = 1.0, eta_on_rho: bool = True):
    """A variant of ``I − η(H + ρH²)`` for the mistakes: how ``H²`` is squared, whether the
    identity is there and whether ``η`` multiplies the ``ρ`` term."""
    H, lr, rho = (case.args[k] for k in ("H", "lr", "rho"))
    H = H.astype(float)
    rho_term = rho * square(H) * (lr if eta_on_rho else 1.0)
    return identity * np.eye(len(H)) - lr * H - rho_term


USAM_MATRIX = Check(
    "usam_matrix", _usam_matrix_cases,
    truth=lambda c: theory.usam_map(c.args["H"], c.args["lr"], c.args["rho"]),
    compare=close_array,
    hint="one USAM step on ½pᵀHp is p minus η times the gradient at the ascent point "
         "p + ρHp; write the new p as a matrix times p (docs/toy.md#closed-forms).",
    checked="random symmetric 2×2 and 3×3 H (indefinite and negative curvature too), "
            "rho = 0, float32 and float64",
    mistakes=(
        Mistake("H² is a matrix product, H times H as matrices, not the square of each entry.",
                output=lambda c: _usam_map(c, np.square)),
        Mistake("η multiplies the whole gradient at the ascent point, the ρH² part too.",
                output=lambda c: _usam_map(c, lambda H: H @ H, eta_on_rho=False)),
        Mistake("the matrix maps p to the new p, and the new p still contains p itself: "
                "a step changes p, it does not replace it.",
                output=lambda c: _usam_map(c, lambda H: H @ H, identity=0.0)),
    ),
)


def check_usam_matrix(fn: Callable) -> Verdict:
    """Check ``usam_matrix(H, lr, rho)``: USAM's step on ``½pᵀHp`` as a matrix,
    ``I − η(H + ρH²)`` (:func:`samlab.toy.theory.usam_map`; docs/exercises.md#usam_matrix)."""
    return run(USAM_MATRIX, fn)


# -- lecture 01: usam_contracts ------------------------------------------------------------

_OVERSHOOT = ("capture (ρλ < −1) makes a negative-curvature direction attract, but a step "
              "can still overshoot: contraction needs the factor's size below 1, on both sides.")


def _usam_contracts_cases() -> list[Case]:
    def case(name, lam, lr, rho, hint=None):
        return Case(f"{name}: lam={lam}, lr={lr}, rho={rho}",
                    {"lam": lam, "lr": lr, "rho": rho}, hint=hint)

    return [
        case("positive curvature, small step", 5.0, 0.1, 0.05),
        case("positive curvature, too large a step", 30.0, 0.1, 0.05,
             "along positive curvature too large a step overshoots: the factor goes below −1."),
        case("negative curvature, not captured (ρλ > −1)", -2.0, 0.1, 0.05),
        case("negative curvature, captured (ρλ = −3), small step", -30.0, 0.01, 0.1),
        case("negative curvature, captured (ρλ = −3), the step overshoots", -30.0, 0.05, 0.1,
             _OVERSHOOT),
        case("a flat direction", 0.0, 0.1, 0.05,
             "a factor of size exactly 1 neither grows nor shrinks: that is not contraction."),
        case("rho = 0 (GD)", 10.0, 0.15, 0.0),
        case("positive curvature, large rho", 12.0, 0.1, 0.5),
        case("positive curvature, ρλ < 1", 3.0, 0.1, 0.2),
        case("positive curvature, the ascent makes the step overshoot", 6.0, 0.25, 0.1,
             "along positive curvature the ascent lengthens the step: here it overshoots, "
             "and the factor goes below −1."),
    ]


def _factor(case: Case, sign_step: float = 1.0, sign_rho: float = 1.0) -> float:
    lam, lr, rho = (case.args[k] for k in ("lam", "lr", "rho"))
    return 1.0 - sign_step * lr * lam * (1.0 + sign_rho * rho * lam)


_SIGNS = ("check the signs: along the eigendirection write the gradient at the ascent point, "
          "then the factor x is multiplied by; a small step on positive curvature contracts.")

USAM_CONTRACTS = Check(
    "usam_contracts", _usam_contracts_cases,
    truth=lambda c: bool(abs(theory.usam_factor(c.args["lam"], c.args["lr"], c.args["rho"])) < 1),
    compare=same_bool,
    hint="a direction contracts when USAM multiplies it by a factor of size below 1 "
         "(docs/toy.md#closed-forms).",
    checked="positive and negative curvature, captured or not, overshooting or not, "
            "a flat direction, rho = 0",
    mistakes=(
        Mistake(_OVERSHOOT, output=lambda c: (c.args["rho"] * c.args["lam"] < -1
                                              if c.args["lam"] < 0 else abs(_factor(c)) < 1)),
        Mistake(_SIGNS, output=lambda c: abs(_factor(c, sign_step=-1.0)) < 1),
        Mistake(_SIGNS, output=lambda c: abs(_factor(c, sign_rho=-1.0)) < 1),
        Mistake("η multiplies the whole gradient at the ascent point, its ρλ² part too.",
                output=lambda c: abs(1 - c.args["lr"] * c.args["lam"]
                                     - c.args["rho"] * c.args["lam"] ** 2) < 1),
        Mistake("a factor of size exactly 1 neither grows nor shrinks: that is not contraction.",
                output=lambda c: abs(_factor(c)) <= 1),
    ),
)


def check_usam_contracts(fn: Callable) -> Verdict:
    """Check ``usam_contracts(lam, lr, rho)``: does a direction of curvature ``λ`` contract
    under USAM, ``|1 − ηλ(1 + ρλ)| < 1`` (docs/exercises.md#usam_contracts)."""
    return run(USAM_CONTRACTS, fn)


# -- lecture 02: two_cycle_amplitude -------------------------------------------------------


def _two_cycle_cases() -> list[Case]:
    def case(lr, rho, lam):
        return Case(f"ηλ = {lr * lam:.3g}: lr={lr}, rho={rho}, lam={lam}",
                    {"lr": lr, "rho": rho, "lam": lam}, rtol=1e-9)

    return [case(0.1, 0.05, 15.0), case(0.2, 0.1, 5.0), case(0.01, 0.05, 10.0),
            case(0.19, 0.01, 10.0)]


def _eta_rho_lam(c: Case) -> float:
    return c.args["lr"] * c.args["rho"] * c.args["lam"]


_EXACT = ("the amplitude is the x* that one step sends to −x*; solve that exactly, "
          "without assuming ηλ ≪ 1 (docs/toy.md#closed-forms).")

TWO_CYCLE_AMPLITUDE = Check(
    "two_cycle_amplitude", _two_cycle_cases,
    truth=lambda c: float(theory.sam_oscillation_amplitude(*c.args.values())),
    compare=close_number,
    hint="the 2-cycle is ±x*: one step of normalized SAM on ½λx², from x* > 0, lands on −x*; "
         "write that step and solve it for x* (docs/toy.md#closed-forms).",
    checked="ηλ from 0.1 to 1.9",
    mistakes=(
        Mistake("ηρλ/2 is the small-step limit (ηλ ≪ 1), and this case has a large ηλ; " + _EXACT,
                output=lambda c: _eta_rho_lam(c) / 2),
        Mistake("ηρλ is about the peak-to-peak swing, and only for small steps; " + _EXACT,
                output=_eta_rho_lam),
        Mistake("check the sign of the ηλ term: the descent part of the step, (1 − ηλ)x, "
                "shrinks x and does not add to it.",
                output=lambda c: _eta_rho_lam(c) / (2 + c.args["lr"] * c.args["lam"])),
    ),
)


def check_two_cycle_amplitude(fn: Callable) -> Verdict:
    """Check ``two_cycle_amplitude(lr, rho, lam)``: normalized SAM's 2-cycle on ``½λx²``,
    ``ηρλ/(2 − ηλ)`` (docs/exercises.md#two_cycle_amplitude)."""
    return run(TWO_CYCLE_AMPLITUDE, fn)


# -- lecture 05: momentum_edge -------------------------------------------------------------


def _momentum_edge_cases() -> list[Case]:
    return [Case(f"lr={lr}, momentum={beta}", {"lr": lr, "momentum": beta}, rtol=1e-9)
            for lr, beta in ((0.1, 0.9), (0.1, 0.0), (0.05, 0.5), (0.002, 0.99))]


def _edge_variant(c: Case, top: Callable[[float], float], bottom: float = 0.0) -> float:
    beta = c.args["momentum"]
    return top(beta) / (c.args["lr"] * (1 - bottom * beta))


_RECURSION = ("with momentum a deviation follows u_{t+1} = (1 + β − ηλ)u_t − βu_{t−1}; "
              "the edge is where a root of its characteristic polynomial leaves the unit "
              "circle (docs/edges.md#gd-and-momentum).")

MOMENTUM_EDGE = Check(
    "momentum_edge", _momentum_edge_cases,
    truth=lambda c: float(edges.gd_edge(c.args["lr"], c.args["momentum"])),
    compare=close_number,
    hint=_RECURSION,
    checked="momentum 0, 0.5, 0.9 and 0.99",
    mistakes=(
        Mistake("that is the edge without momentum, and the buffer moves it: " + _RECURSION,
                output=lambda c: _edge_variant(c, lambda b: 2.0)),
        Mistake("close: at the edge the root crosses z = −1; put z = −1 into the "
                "characteristic polynomial and solve for ηλ.",
                output=lambda c: _edge_variant(c, lambda b: 2.0 + b)),
        Mistake("η/(1 − β) is the effective step on a constant slope, where the buffer piles "
                "up; at the edge the gradient flips sign every step, and " + _RECURSION,
                output=lambda c: _edge_variant(c, lambda b: 2.0, bottom=1.0)),
    ),
)


def check_momentum_edge(fn: Callable) -> Verdict:
    """Check ``momentum_edge(lr, momentum)``: GD-with-heavy-ball's stability edge
    ``(2 + 2β)/η`` (:func:`samlab.edges.gd_edge`; docs/exercises.md#momentum_edge)."""
    return run(MOMENTUM_EDGE, fn)
