"""The update in torch (lectures 02 and 03): SAM's perturbation, SSAM's ``γ`` and one SSAM
step, checked against :mod:`samlab.optim` (docs/exercises.md)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..optim import SAM, SSAM, USAM
from ..optim.update import descent_scale, global_norm, perturbation
from .compare import close_number, close_tensors
from .core import Case, Check, Mistake, Verdict, run
from .problem import Problem


def _a_little_short(expected, got) -> bool:
    """ε along the right direction, but a little shorter: a guard large next to ‖g‖."""
    try:
        e = torch.cat([t.double().reshape(-1) for t in expected])
        g = torch.cat([t.double().reshape(-1) for t in got])
        ratio = float(g.norm() / e.norm())
        aligned = float(e @ g) / float(e.norm() * g.norm())
    except (TypeError, RuntimeError, ZeroDivisionError, AttributeError):
        return False
    return aligned > 1 - 1e-9 and 0.99 < ratio < 1 - 1e-9


def _nonfinite(expected, got) -> bool:
    """The result has an inf or a NaN (where the truth has none): a division by a zero norm."""
    values = got if isinstance(got, (list, tuple)) else [got]
    return any((isinstance(t, torch.Tensor) and not bool(torch.isfinite(t).all()))
               or (isinstance(t, float) and not math.isfinite(t)) for t in values)


_GUARD = ("a zero gradient has no direction, and a division by its norm gives inf or NaN: "
          "guard every division by a norm as samlab does (docs/methods.md#the-table).")
_GLOBAL = "the norm is one number over all tensors together, not one per tensor."


# -- lecture 02: sam_perturbation ----------------------------------------------------------


def _gradient(shapes, scales, seed: int, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
            for shape, scale in zip(shapes, scales)]


def _sam_perturbation_cases() -> list[Case]:
    three = [(3, 4), (4,), (2, 2, 2)]

    def case(name, g, rho, hint=None):
        rtol = 1e-5 if g[0].dtype == torch.float32 else 1e-7
        return Case(f"{name}, rho={rho}, {str(g[0].dtype)[6:]}", {"g": g, "rho": rho},
                    rtol=rtol, hint=hint)

    return [
        case("three tensors of shapes 3×4, 4, 2×2×2", _gradient(three, [1, 10, 0.1], 0,
                                                                 torch.float32), 0.05),
        case("three tensors of shapes 3×4, 4, 2×2×2", _gradient(three, [0.2, 0.01, 5], 1,
                                                                 torch.float64), 0.5),
        case("one tensor of shape 5", _gradient([(5,)], [2.0], 2, torch.float64), 0.1),
        case("three tensors, ‖g‖ < 1", _gradient(three, [0.05, 0.1, 0.02], 5, torch.float32),
             0.05),
        case("a zero gradient (two tensors)", [torch.zeros(3, 2), torch.zeros(4)], 0.05),
        case("a tiny gradient, ‖g‖ ≈ 1e-5", _gradient(three, [4e-6, 1e-6, 2e-6], 3,
                                                       torch.float64), 0.05,
             "this gradient is tiny but not zero: its ε still has length ρ, so a guard "
             "must be far smaller than ‖g‖ (docs/methods.md#the-table)."),
        case("rho = 0", _gradient(three, [1, 1, 1], 4, torch.float32), 0.0),
    ]


def _ascent(c: Case, ascent: str = "normalized", rho: float | None = None):
    g = c.args["g"]
    return perturbation(g, g, c.args["rho"] if rho is None else rho, ascent)


SAM_PERTURBATION = Check(
    "sam_perturbation", _sam_perturbation_cases,
    truth=_ascent,
    compare=lambda e, g, c: close_tensors(e, g, c, "ε"),
    hint="ε points along g and has length ρ, measured with one norm over all tensors "
         "(docs/methods.md#the-table).",
    checked="several tensors of different shapes, float32 and float64, ‖g‖ above and below "
            "1, a zero and a tiny gradient, rho = 0; g left as it was",
    mistakes=(
        Mistake(_GLOBAL, output=lambda c: [perturbation([t], [t], c.args["rho"], "normalized")[0]
                                           for t in c.args["g"]]),
        Mistake("SAM's ascent has length ρ whatever the size of g: normalize g first.",
                output=lambda c: _ascent(c, "unnormalized")),
        Mistake(_GUARD, spots=_nonfinite),
        Mistake("this ε has length 1: the ascent goes a distance ρ along the direction of g.",
                output=lambda c: _ascent(c, rho=1.0)),
        Mistake("this ε points along g but is a little shorter than ρ: a guard added to ‖g‖ "
                "must be far smaller than ‖g‖ (samlab adds 1e-12; docs/methods.md#the-table).",
                spots=_a_little_short),
    ),
    unchanged=("g",),
    unchanged_hint="return new tensors: the gradients g belong to the caller (in SAM they "
                   "are the parameters' .grad) and must be left as they were.",
)


def check_sam_perturbation(fn: Callable) -> Verdict:
    """Check ``sam_perturbation(g, rho)``: SAM's ascent ``ε = ρ·g/(‖g‖ + 1e-12)``, one global
    norm (:func:`samlab.optim.perturbation`; docs/exercises.md#sam_perturbation)."""
    return run(SAM_PERTURBATION, fn)


# -- lecture 03: ssam_gamma ----------------------------------------------------------------


def _ssam_gamma_cases() -> list[Case]:
    def case(name, g, a, dtype=torch.float64, hint=None):
        rtol = 1e-6 if dtype == torch.float32 else 1e-9
        return Case(f"{name}: grad_norm={g}, ascent_grad_norm={a}, {str(dtype)[6:]}",
                    {"grad_norm": torch.tensor(g, dtype=dtype),
                     "ascent_grad_norm": torch.tensor(a, dtype=dtype)}, rtol=rtol, hint=hint)

    return [case("the ascent gradient is longer", 1.3, 2.0),
            case("the ascent gradient is shorter", 0.5, 0.1),
            case("the ascent gradient is longer", 3.0, 4.5, torch.float32),
            case("the ascent gradient is a little shorter", 1.2, 0.9, torch.float32),
            case("a zero ascent gradient", 2.0, 0.0, hint=_ZERO_ASCENT),
            case("both gradients zero", 0.0, 0.0, hint=_ZERO_ASCENT)]


_ZERO_ASCENT = ("where ‖∇L(w_asc)‖ = 0 the guard decides γ: samlab's is 1e-12 added to the "
                "denominator, as in every division by a norm (docs/methods.md#renormalization)")


_WHICH_WAY = ("γ rescales the descent gradient ∇L(w_asc) so that it gets the length of g: "
              "which norm goes on top? (docs/methods.md#renormalization)")
_UNCAPPED = ("γ is not capped at 1: where the gradient at w_asc is shorter than g (negative "
             "curvature along g), γ > 1 lengthens the descent gradient to ‖g‖ "
             "(docs/methods.md#renormalization).")


def _gamma(c: Case) -> float:
    return float(descent_scale(c.args["grad_norm"], c.args["ascent_grad_norm"]))


SSAM_GAMMA = Check(
    "ssam_gamma", _ssam_gamma_cases,
    truth=_gamma,
    compare=close_number,
    hint="γ = ‖g‖ / (‖∇L(w_asc)‖ + 1e-12), the ratio of the two norms as it comes: it gives "
         "the descent gradient the length of g (docs/methods.md#renormalization).",
    checked="ascent gradients longer and shorter (γ from 0.65 to 5), float32 and float64, "
            "zero norms",
    mistakes=(
        Mistake(_WHICH_WAY, output=lambda c: float(descent_scale(c.args["ascent_grad_norm"],
                                                                  c.args["grad_norm"]))),
        Mistake(_UNCAPPED, output=lambda c: min(_gamma(c), 1.0)),
        Mistake(_GUARD, spots=_nonfinite),
    ),
)


def check_ssam_gamma(fn: Callable) -> Verdict:
    """Check ``ssam_gamma(grad_norm, ascent_grad_norm)``: SSAM's
    ``γ = ‖g‖/(‖∇L(w_asc)‖ + 1e-12)`` (:func:`samlab.optim.descent_scale`;
    docs/exercises.md#ssam_gamma)."""
    return run(SSAM_GAMMA, fn)


# -- lecture 03: ssam_step -----------------------------------------------------------------


def _ssam_step_cases() -> list[Case]:
    three = [(3, 2), (4,), (2, 2)]

    def case(name, problem, lr, rho, scale=1.0):
        rtol = 1e-5 if problem.dtype == torch.float32 else 1e-9
        return Case(f"{name}, lr={lr}, rho={rho}, {str(problem.dtype)[6:]}",
                    {"w": problem.start(scale), "grad": problem.grad, "lr": lr, "rho": rho},
                    data={"problem": problem}, rtol=rtol)

    concave = "negative curvature, ‖∇L(w_asc)‖ < ‖g‖"
    return [case("three tensors", Problem(three, [1.0, 8.0, 0.3], 0), 0.1, 0.2),
            case("three tensors", Problem(three, [3.0, 0.5, 1.0], 1, torch.float32), 0.05, 0.5),
            case("one tensor", Problem([(5,)], [2.0], 2), 0.1, 0.3),
            case(f"three tensors, {concave}", Problem(three, [-2.0, -1.0, -0.5], 4), 0.1, 0.2,
                 scale=0.3),
            case(f"three tensors, {concave}", Problem(three, [-2.0, -1.0, -0.5], 6,
                                                      torch.float32), 0.1, 0.1, scale=0.3),
            case("three tensors of mixed curvature", Problem(three, [-1.0, 2.0, -4.0], 4),
                 0.1, 0.1, scale=0.3),
            case("at a minimum, where g = 0", Problem(three, [1.0, 4.0, 0.5], 3), 0.1, 0.2,
                 scale=0.0)]


def _optimizer_step(c: Case, optimizer: type[SAM], **kwargs) -> list[torch.Tensor]:
    """One step of samlab's ``optimizer`` (SGD as the base) from ``w``."""
    lr, rho = c.args["lr"], c.args["rho"]
    return c.data["problem"].run(lambda p: optimizer(p, torch.optim.SGD, lr=lr, rho=rho,
                                                     **kwargs), c.args["w"])[0]


def _ssam_variant(c: Case, *, from_ascent: bool = False, inverted: bool = False,
                  per_tensor: bool = False, cap: float | None = None) -> list[torch.Tensor]:
    """An SSAM step with one of the classic mistakes, from samlab's ``ε`` and ``γ``."""
    w, grad, lr, rho = c.args.values()
    g = grad(w)
    w_asc = torch._foreach_add(w, perturbation(w, g, rho, "unnormalized"))
    g_asc = grad(w_asc)
    if per_tensor:
        gammas = [descent_scale(a.norm(), b.norm()) for a, b in zip(g, g_asc)]
    else:
        norms = [global_norm(g), global_norm(g_asc)]
        gammas = [descent_scale(*(norms[::-1] if inverted else norms))] * len(w)
    if cap is not None:
        gammas = [gm.clamp(max=cap) for gm in gammas]
    start = w_asc if from_ascent else w
    return [s - lr * gm * d for s, gm, d in zip(start, gammas, g_asc)]


SSAM_STEP = Check(
    "ssam_step", _ssam_step_cases,
    truth=lambda c: _optimizer_step(c, SSAM),
    compare=lambda e, g, c: close_tensors(e, g, c, "new w"),
    hint="SSAM climbs by ρ·g, measures the gradient there, and steps from w with it, "
         "rescaled to the length of g (docs/methods.md#the-table).",
    checked="several tensors, float32 and float64, a single tensor, γ from 0.003 to 3.2 "
            "(negative curvature too), a point where g = 0; w left as it was",
    mistakes=(
        Mistake("the ascent is a probe: the gradient is measured at w_asc, but the step "
                "is taken from w.", output=lambda c: _ssam_variant(c, from_ascent=True)),
        Mistake(_WHICH_WAY, output=lambda c: _ssam_variant(c, inverted=True)),
        Mistake(_UNCAPPED, output=lambda c: _ssam_variant(c, cap=1.0)),
        Mistake("‖g‖ and ‖∇L(w_asc)‖ are each one number over all tensors together, not one "
                "per tensor.", output=lambda c: _ssam_variant(c, per_tensor=True)),
        Mistake("SSAM's ascent is unnormalized: it climbs by ρ·g, a length of ρ‖g‖, not ρ "
                "(the two scales of ρ, docs/methods.md#the-table).",
                output=lambda c: _optimizer_step(c, SAM, method="rsam")),
        Mistake("the descent gradient is rescaled by γ so that its length is ‖g‖: SSAM's "
                "renormalization (docs/methods.md#renormalization).",
                output=lambda c: _optimizer_step(c, USAM)),
        Mistake(_GUARD, spots=_nonfinite),
    ),
    unchanged=("w",),
    unchanged_hint="return new tensors: the caller's w must be as it was (w_asc is a probe, "
                   "not a move).",
)


def check_ssam_step(fn: Callable) -> Verdict:
    """Check ``ssam_step(w, grad, lr, rho)``: one step of SSAM with SGD, against
    :class:`samlab.optim.SSAM` (docs/exercises.md#ssam_step)."""
    return run(SSAM_STEP, fn)
