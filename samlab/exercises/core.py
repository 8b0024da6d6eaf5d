"""The checker's machinery: run a student's function on cases, compare, say what went wrong.

A :class:`Check` is an exercise's cases, its truth (samlab's own implementation), how a
result is compared, and the classic mistakes it recognises; :func:`run` turns a student's
function into a :class:`Verdict` and prints it (docs/exercises.md#verdicts), or, under
nbgrader, raises :class:`NotPassed` with it (docs/exercises.md#grading-with-nbgrader).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .. import validate
from .compare import is_tensor, short

Status = Literal["passed", "failed", "not attempted"]


@dataclass(frozen=True)
class Verdict:
    """What a check found. The check has printed :attr:`message` already, so a notebook
    displays nothing more for it; ``print(verdict)`` shows the message again."""

    exercise: str
    status: Status
    message: str
    cases: int  #: the cases the student's function ran on

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"Verdict({self.exercise!r}, {self.status!r}, cases={self.cases})"

    def _ipython_display_(self) -> None:
        """Nothing: the message is already printed above the cell's output."""


@dataclass(frozen=True)
class Case:
    """One call of the student's function: its arguments, in the order of its signature."""

    name: str                 #: how a failure names it: "indefinite 3×3 H, float32"
    args: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)  #: what the truth needs besides args
    rtol: float = 1e-7        #: relative to the largest entry of the expected result
    hint: str | None = None   #: what this case is there to catch, if a mistake is not named


@dataclass(frozen=True)
class Mistake:
    """A classic mistake: what it returns on a case (``output``), or a test that recognises
    its result alone (``spots``); ``hint`` points at the idea it misses."""

    hint: str
    output: Callable[[Case], Any] | None = None
    spots: Callable[[Any, Any], bool] | None = None  #: (expected, got) -> recognised


Compare = Callable[[Any, Any, Case], "str | None"]


@dataclass(frozen=True)
class Check:
    """Everything :func:`run` needs to check one exercise."""

    name: str
    cases: Callable[[], list[Case]]
    truth: Callable[[Case], Any]
    compare: Compare          #: (expected, got, case) -> None, or what differs
    hint: str                 #: when no mistake is recognised
    checked: str              #: what a pass says was checked
    mistakes: tuple[Mistake, ...] = ()
    keyword_from: int | None = None      #: arguments from this index on go by keyword
    unchanged: tuple[str, ...] = ()      #: arguments the function must leave as they were
    unchanged_hint: str = "return new values and leave the caller's arguments as they were."


@dataclass(frozen=True)
class Exercise:
    """A row of :data:`samlab.exercises.EXERCISES`."""

    name: str
    lecture: int
    check: Callable[[Callable], Verdict]
    description: str


# -- running a check -----------------------------------------------------------------------


class _Raised:
    """The student's function raised instead of returning."""

    def __init__(self, error: Exception):
        self.error = error

    def __str__(self) -> str:
        lines = str(self.error).strip().splitlines()
        return short(f"{type(self.error).__name__}: {lines[0]}" if lines
                      else type(self.error).__name__, 160)


def _call(check: Check, fn: Callable, case: Case) -> tuple[Any, str | None]:
    """``(result, name of an argument it changed or None)`` from a call on copies."""
    args = {name: _copy(value) for name, value in case.args.items()}
    values = list(args.values())
    k = len(values) if check.keyword_from is None else check.keyword_from
    try:
        got = fn(*values[:k], **dict(list(args.items())[k:]))
    except NotImplementedError as error:
        if _own_stub(fn, error):
            raise
        return _Raised(error), None  # raised further in: a stub it calls, or torch itself
    except Exception as error:  # the student's code: any error is a verdict, not a traceback
        return _Raised(error), None
    changed = next((n for n in check.unchanged if not _identical(case.args[n], args[n])), None)
    return got, changed


def _own_stub(fn: Callable, error: NotImplementedError) -> bool:
    """Whether ``fn`` itself raised ``error`` (its stub), not something it called."""
    code = getattr(fn, "__code__", None)
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return code is None or tb is None or tb.tb_frame.f_code is code


def _compare(check: Check, expected: Any, got: Any, case: Case) -> str | None:
    if got is None:
        return "got None: the function returns nothing (a missing return?)"
    try:
        return check.compare(expected, got, case)
    except Exception as error:  # a result too strange to compare
        return f"got {short(repr(got))}, which could not be compared ({type(error).__name__})"


def _recognise(check: Check, cases: list[Case], i: int, fn: Callable, got: Any) -> str:
    """The hint for the failure at ``cases[i]``: a recognised mistake's, else the generic one."""
    expected = check.truth(cases[i])
    others: dict[int, Any] | None = None
    for m in check.mistakes:
        if m.spots is not None:
            if m.spots(expected, got):
                return m.hint
            continue
        if _compare(check, expected, m.output(cases[i]), cases[i]) is None:
            continue  # this mistake is right on this case: it is not what failed here
        if others is None:  # the student's results on every case, to match whole mistakes
            others = {}
            for j, case in enumerate(cases):
                try:
                    result, _ = _call(check, fn, case) if j != i else (got, None)
                except NotImplementedError:
                    continue
                if not isinstance(result, _Raised):
                    others[j] = result
        if all(_compare(check, m.output(cases[j]), r, cases[j]) is None
               for j, r in others.items()):
            return m.hint
    return cases[i].hint or check.hint


_CALLS_A_STUB = ("something it calls raised NotImplementedError: a function of an earlier "
                 "exercise still to write (write and check that one first), or an operation "
                 "torch does not implement for these tensors.")


def run(check: Check, fn: Any) -> Verdict:
    """Run ``fn`` on every case of ``check``; print and return the verdict."""
    if not callable(fn):
        raise validate.fail("fn", f"the function your cell defines, e.g. check_{check.name}"
                                  f"({check.name})", fn)
    cases = check.cases()
    for i, case in enumerate(cases):
        try:
            got, changed = _call(check, fn, case)
        except NotImplementedError as error:
            if i == 0:
                return _say(Verdict(check.name, "not attempted", f"· {check.name}: not "
                                    "attempted yet (it still raises NotImplementedError).", 0))
            got, changed = _Raised(error), None
        where = f"✗ {check.name} failed on case {i + 1} of {len(cases)} ({case.name})"
        if isinstance(got, _Raised):
            hint = (_CALLS_A_STUB if isinstance(got.error, NotImplementedError)
                    else case.hint or check.hint)
            return _say(Verdict(check.name, "failed", f"{where}: it raised {got}\n"
                                f"  hint: {hint}", i + 1))
        if changed is not None:
            return _say(Verdict(check.name, "failed", f"{where}: it changed its argument "
                                f"{changed}.\n  hint: {check.unchanged_hint}", i + 1))
        problem = _compare(check, check.truth(case), got, case)
        if problem is not None:
            hint = _recognise(check, cases, i, fn, got)
            return _say(Verdict(check.name, "failed", f"{where}:\n  {problem}\n  hint: {hint}",
                                i + 1))
    return _say(Verdict(check.name, "passed", f"✓ {check.name} passed: {len(cases)} cases, "
                        f"{check.checked}.", len(cases)))


class NotPassed(AssertionError):
    """A verdict other than "passed", raised while nbgrader runs the notebook, so that the
    graded cell holding the check fails and loses its points. Jupyter shows its verdict,
    not a traceback into samlab."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.message)
        self.verdict = verdict

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the verdict's lines."""
        return [f"{type(self).__name__}: the check of {self.verdict.exercise} did not pass",
                *self.verdict.message.splitlines()]


def graded() -> bool:
    """Whether nbgrader is running the notebook: ``nbgrader autograde`` and ``nbgrader
    validate`` (the students' Validate button) set ``NBGRADER_EXECUTION``."""
    return bool(os.environ.get("NBGRADER_EXECUTION", "").strip())


def _say(verdict: Verdict) -> Verdict:
    """Print ``verdict``; under nbgrader a verdict that did not pass is raised instead."""
    if graded() and not verdict.passed:
        raise NotPassed(verdict)
    print(verdict.message)
    return verdict


def _copy(value: Any) -> Any:
    """A copy of the arrays and tensors in ``value``; functions and numbers as they are."""
    if is_tensor(value):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return type(value)(map(_copy, value))
    return value


def _identical(a: Any, b: Any) -> bool:
    if is_tensor(a):
        return is_tensor(b) and a.shape == b.shape and a.dtype == b.dtype \
            and bool((a.nan_to_num() == b.nan_to_num()).all())
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, (list, tuple)):
        return isinstance(b, type(a)) and len(a) == len(b) and all(map(_identical, a, b))
    return True  # numbers and functions cannot be changed in place
