"""Late-phase SAM (lecture 04): heavy-ball SGD, then SAM from a switch step, and what it
costs; checked against :class:`samlab.optim.SAM` with ``switch_step`` (docs/exercises.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..optim import SAM
from .compare import close_number, close_tensors
from .core import Case, Check, Mistake, Verdict, run
from .problem import Problem

# -- late_sam ------------------------------------------------------------------------------


def _late_sam_cases() -> list[Case]:
    three = [(3, 2), (4,), (2, 2)]

    def case(name, problem, *, lr, rho, momentum, steps, switch_step):
        rtol = 1e-4 if problem.dtype == torch.float32 else 1e-9
        args = dict(w=problem.start(), grad=problem.grad, lr=lr, rho=rho, momentum=momentum,
                    steps=steps, switch_step=switch_step)
        return Case(f"{name}: switch_step={switch_step}, steps={steps}, momentum={momentum}, "
                    f"lr={lr}, rho={rho}, {str(problem.dtype)[6:]}", args,
                    data={"problem": problem}, rtol=rtol)

    return [
        case("a switch in the middle", Problem(three, [1.0, 6.0, 0.3], 10),
             lr=0.05, rho=0.1, momentum=0.9, steps=8, switch_step=3),
        case("a switch in the middle", Problem(three, [2.0, 0.5, 4.0], 11, torch.float32),
             lr=0.1, rho=0.05, momentum=0.5, steps=8, switch_step=5),
        case("SAM from the start", Problem(three, [1.0, 3.0, 0.5], 12),
             lr=0.05, rho=0.2, momentum=0.9, steps=5, switch_step=0),
        case("a switch after the last step (heavy-ball SGD throughout)",
             Problem(three, [1.0, 2.0, 0.2], 13), lr=0.05, rho=0.1, momentum=0.9, steps=6,
             switch_step=6),
    ]


def _sam_run(c: Case, **changes: Any) -> list[list[torch.Tensor]]:
    """The weights after each step of samlab's late SAM, with ``changes`` to its settings."""
    a = {**c.args, **changes}
    switch_step = a["switch_step"]
    if switch_step is not None:
        switch_step = max(switch_step, 0)
    return c.data["problem"].run(
        lambda p: SAM(p, torch.optim.SGD, method=a.get("method", "sam"), lr=a["lr"],
                      momentum=a["momentum"], rho=a["rho"], switch_step=switch_step,
                      reset_on_switch=a.get("reset", False)),
        c.args["w"], c.args["steps"])


def _trajectory(expected: list[list[torch.Tensor]], got: Any, case: Case) -> str | None:
    """One list of weights per step, each close to samlab's."""
    n = len(expected)
    if not isinstance(got, (list, tuple)) or len(got) != n:
        length = f"a list of {len(got)}" if isinstance(got, (list, tuple)) else repr(got)[:60]
        return f"expected a list of {n} lists of weights (one after each step), got {length}"
    for k, (e, g) in enumerate(zip(expected, got)):
        problem = close_tensors(e, g, case, f"result[{k}]")
        if problem is not None:
            return f"{problem}\n  (result[{k}] is w after step index {k}; steps count from 0)"
    return None


def _aliased(expected: Any, got: Any) -> bool:
    """The result's first and last entries share their tensors' memory."""
    try:
        return len(got) > 1 and got[0][0].data_ptr() == got[-1][0].data_ptr()
    except (TypeError, IndexError, AttributeError):
        return False


_INDEX = ("steps count from 0, and step index switch_step is the first SAM step: the "
          "steps before it are plain (docs/exercises.md#late_sam).")

LATE_SAM = Check(
    "late_sam", _late_sam_cases,
    truth=_sam_run,
    compare=_trajectory,
    hint="before the switch each step's d is the gradient at w, from it on SAM's descent "
         "gradient; the momentum buffer runs through both (docs/methods.md#late-phase-switching).",
    checked="a switch in the middle (float32 and float64), at step 0 and after the last step; "
            "w left as it was",
    mistakes=(
        Mistake("every entry of the result holds the same tensors, updated in place: "
                "record copies of the weights after each step.", spots=_aliased),
        Mistake("the momentum buffer is carried across the switch: the switch changes d, "
                "not the buffer.", output=lambda c: _sam_run(c, reset=True)),
        Mistake("one step late: " + _INDEX,
                output=lambda c: _sam_run(c, switch_step=c.args["switch_step"] + 1)),
        Mistake("one step early: " + _INDEX,
                output=lambda c: _sam_run(c, switch_step=c.args["switch_step"] - 1)),
        Mistake("before the switch the steps are plain heavy-ball SGD steps, with the "
                "gradient at w itself.", output=lambda c: _sam_run(c, switch_step=None)),
        Mistake("SAM's ascent is normalized: ε has length ρ, whatever ‖g‖ is.",
                output=lambda c: _sam_run(c, method="usam")),
    ),
    keyword_from=2,
    unchanged=("w",),
    unchanged_hint="step copies of the weights: the caller's w must be as it was (and each "
                   "entry of the result its own tensors, not the same ones updated in place).",
)


def check_late_sam(fn: Callable) -> Verdict:
    """Check ``late_sam(w, grad, *, lr, rho, momentum, steps, switch_step)``: heavy-ball SGD,
    then SAM from step index ``switch_step`` on, the buffer carried across, against
    ``samlab.optim.SAM(..., switch_step=)`` (docs/exercises.md#late_sam)."""
    return run(LATE_SAM, fn)


# -- late_sam_cost -------------------------------------------------------------------------

_STEPS = 40  # every switch fraction of the cases is a whole number of these steps


def _passes_per_step(c: Case) -> float:
    """Gradient evaluations per step of samlab's late SAM over a run of ``_STEPS`` steps
    switching at ``s·_STEPS``, relative to SGD's one per step."""
    w = torch.zeros(2, requires_grad=True)
    opt = SAM([w], torch.optim.SGD, lr=0.1, rho=0.05,
              switch_step=round(c.args["switch_fraction"] * _STEPS))
    passes = 0

    def closure() -> torch.Tensor:
        nonlocal passes
        passes += 1
        opt.zero_grad()
        loss = (w - 1.0).square().sum()
        loss.backward()
        return loss

    for _ in range(_STEPS):
        opt.step(closure)
    return passes / _STEPS


def _fraction(c: Case) -> float:
    return c.args["switch_fraction"]


_PHASES = ("s is the fraction of training before the switch, at one gradient per step; "
           "SAM runs for the rest.")

LATE_SAM_COST = Check(
    "late_sam_cost",
    lambda: [Case(f"switch_fraction={s}", {"switch_fraction": s}, rtol=1e-9)
             for s in (0.9, 0.25, 0.0, 1.0, 0.5)],
    truth=_passes_per_step,
    compare=close_number,
    hint="count the gradient evaluations per step in each phase, weighted by the fraction "
         "of the steps in it; SGD's cost is one per step.",
    checked="switch fractions 0, 0.25, 0.5, 0.9 and 1, against samlab's SAM counting "
            "its gradient evaluations",
    mistakes=(
        Mistake(_PHASES, output=lambda c: 1 + _fraction(c)),
        Mistake(_PHASES, output=lambda c: 2 * _fraction(c)),
        Mistake("count every gradient evaluation, not only SAM's extra ones: the cost is "
                "relative to SGD, whose steps cost one each.",
                output=lambda c: 1 - _fraction(c)),
    ),
)


def check_late_sam_cost(fn: Callable) -> Verdict:
    """Check ``late_sam_cost(switch_fraction)``: late SAM's gradient evaluations relative
    to SGD's, ``2 − s`` (docs/exercises.md#late_sam_cost)."""
    return run(LATE_SAM_COST, fn)
