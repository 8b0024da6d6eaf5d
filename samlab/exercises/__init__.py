"""Checks for the course's exercises: a student writes a method in a few lines, and one
call checks it against samlab's own implementation (docs/exercises.md).

In a notebook cell::

    def sam_perturbation(g, rho):
        raise NotImplementedError("write SAM's ascent ε here")

    check_sam_perturbation(sam_perturbation)

prints one short verdict: passed, with what was checked; the first failing case, the
expected result against the one returned and a hint toward the idea it misses; or
"not attempted yet" while the function still raises ``NotImplementedError``. The check
also returns it, as a :class:`Verdict`; while nbgrader runs the notebook (:func:`graded`)
a verdict that did not pass is raised instead, as :class:`NotPassed`, so that the graded
cell holding the check fails. :data:`EXERCISES` lists every exercise by name,
with its lecture, its check and one line on what it asks.
"""

from __future__ import annotations

import importlib

from .core import Exercise, NotPassed, Verdict, graded
from .formulas import (
    check_momentum_edge,
    check_two_cycle_amplitude,
    check_usam_contracts,
    check_usam_matrix,
)

#: The checks that run torch, and their modules: imported on first use, so that notebook
#: 01 (NumPy only) does not import torch by importing its checks.
_TORCH_CHECKS = {
    "check_sam_perturbation": "steps", "check_ssam_gamma": "steps",
    "check_ssam_step": "steps", "check_late_sam": "late", "check_late_sam_cost": "late",
    "check_power_iteration": "power",
}


def __getattr__(name: str):
    if name in _TORCH_CHECKS:
        return getattr(importlib.import_module(f".{_TORCH_CHECKS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TORCH_CHECKS))


def _later(name: str):
    """``name``'s check, imported when it is called."""
    def check(fn) -> Verdict:
        return __getattr__(name)(fn)

    check.__name__ = check.__qualname__ = name
    return check


EXERCISES: dict[str, Exercise] = {
    e.name: e
    for e in (
        Exercise("usam_matrix", 1, check_usam_matrix,
                 "USAM's step on ½pᵀHp as a matrix, I − η(H + ρH²)"),
        Exercise("usam_contracts", 1, check_usam_contracts,
                 "whether a direction of curvature λ (either sign) contracts under USAM"),
        Exercise("sam_perturbation", 2, _later("check_sam_perturbation"),
                 "SAM's ascent ε = ρ·g/‖g‖ with one norm over all tensors"),
        Exercise("two_cycle_amplitude", 2, check_two_cycle_amplitude,
                 "the amplitude of normalized SAM's 2-cycle on ½λx²"),
        Exercise("ssam_gamma", 3, _later("check_ssam_gamma"),
                 "SSAM's renormalization γ = ‖g‖/‖∇L(w_asc)‖"),
        Exercise("ssam_step", 3, _later("check_ssam_step"),
                 "one SSAM step: unnormalized ascent, renormalized descent"),
        Exercise("late_sam", 4, _later("check_late_sam"),
                 "heavy-ball SGD, then SAM from a switch step, the buffer carried across"),
        Exercise("late_sam_cost", 4, _later("check_late_sam_cost"),
                 "late SAM's gradient evaluations relative to SGD's"),
        Exercise("power_iteration", 5, _later("check_power_iteration"),
                 "the eigenvalue of largest magnitude from Hessian-vector products"),
        Exercise("momentum_edge", 5, check_momentum_edge,
                 "GD-with-heavy-ball's stability edge"),
    )
}

__all__ = [
    "EXERCISES", "Exercise", "NotPassed", "Verdict", "check_late_sam", "check_late_sam_cost",
    "check_momentum_edge", "check_power_iteration", "check_sam_perturbation",
    "check_ssam_gamma", "check_ssam_step", "check_two_cycle_amplitude", "check_usam_contracts",
    "check_usam_matrix", "graded",
]
