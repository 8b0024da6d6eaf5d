"""Power iteration (lecture 05): the eigenvalue of largest magnitude from products ``Hv``
alone, checked against ``torch.linalg.eigvalsh`` of small explicit matrices
(docs/exercises.md#power_iteration)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .. import validate
from .compare import as_number, close_number
from .core import Case, Check, Mistake, Verdict, run


def _hvp(H: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v ↦ Hv`` for a flat 1-D tensor ``v``, as :func:`samlab.sharpness.hvp` takes one."""
    n = H.shape[0]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if not (isinstance(v, torch.Tensor) and v.shape == (n,)):
            raise validate.fail("v", f"a flat 1-D tensor of {n} numbers (hvp takes vectors "
                                "shaped like v0)", v)
        return H @ v.to(H.dtype)

    return hvp


def _case(name: str, eigenvalues: list[float], iters: int, seed: int,
          dtype: torch.dtype = torch.float64) -> Case:
    gen = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    H = (q * torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
    H = (H + H.T) / 2
    v0 = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
    return Case(f"{name}: eigenvalues {eigenvalues}, iters={iters}, {str(dtype)[6:]}",
                {"hvp": _hvp(H.to(dtype)), "v0": v0, "iters": iters}, data={"H": H},
                rtol=1e-4 if dtype == torch.float32 else 1e-7)


def _power_iteration_cases() -> list[Case]:
    return [
        _case("a positive dominant eigenvalue", [4.0, -2.0, 1.0, 0.5], 40, 0),
        _case("a negative dominant eigenvalue", [-6.0, 3.0, 2.0, -1.0, 0.5], 40, 1),
        _case("a positive dominant eigenvalue", [3.0, 1.2, -1.0, 0.5, 0.1, 0.0], 60, 2,
              torch.float32),
        _case("a large eigenvalue and many iterations", [50.0, 20.0, -10.0, 1.0], 200, 3),
        _case("entries of order 1e20", [3e20, -1e20, 5e19], 40, 4),
    ]


def _dominant(c: Case) -> float:
    """The eigenvalue of largest magnitude, from the whole spectrum."""
    eigenvalues = torch.linalg.eigvalsh(c.data["H"])
    return float(eigenvalues[eigenvalues.abs().argmax()])


def _overflows(expected: float, got: Any) -> bool:
    value = as_number(got)
    return value is not None and not math.isfinite(value)


def _lost_sign(expected: float, got: Any) -> bool:
    value = as_number(got)
    return expected < 0 and value is not None and math.isclose(value, -expected, rel_tol=1e-3)


POWER_ITERATION = Check(
    "power_iteration", _power_iteration_cases,
    truth=_dominant,
    compare=close_number,
    hint="v ← Hv/‖Hv‖ turns v toward the dominant eigenvector; the eigenvalue is then "
         "what H does to that unit vector along itself (docs/sharpness.md#eigenvalues).",
    checked="positive and negative dominant eigenvalues, float32 and float64, 200 "
            "iterations with λ = 50, entries of order 1e20",
    mistakes=(
        Mistake("the iterate grows like |λ|ᵏ and overflows to inf (or NaN): bring it back "
                "to length one at every iteration.", spots=_overflows),
        Mistake("a norm is never negative, but an eigenvalue can be, as the dominant one "
                "is here: estimate it in a way that keeps its sign.", spots=_lost_sign),
    ),
)


def check_power_iteration(fn: Callable) -> Verdict:
    """Check ``power_iteration(hvp, v0, iters)``: the eigenvalue of largest magnitude of a
    symmetric operator from ``iters`` products (docs/exercises.md#power_iteration)."""
    return run(POWER_ITERATION, fn)
