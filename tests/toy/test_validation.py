"""Bad arguments fail at the public boundary with a message naming what and which value.

STYLE: ``ValueError("rho must be a finite number >= 0, got -0.1")``.
"""

from __future__ import annotations

import re

import pytest

from samlab.toy import ConvexQuadratic, get_method, phase_diagram, run

LANDSCAPE = ConvexQuadratic((1.0, 0.5))
GOOD = dict(method="usam", lr=0.1, rho=0.5, x0=[1.0, -0.5], steps=10)


def call_run(**changes):
    args = {**GOOD, **changes}
    options = {k: args.pop(k) for k in list(args) if k not in GOOD}
    return run(LANDSCAPE, args["method"], args["lr"], args["rho"], args["x0"], args["steps"],
               **options)


BAD_RUNS = [
    ("rho", -0.1, r"rho must be a finite number >= 0.*-0\.1"),
    ("rho", float("nan"), r"rho must be a finite number >= 0.*nan"),
    ("rho", float("inf"), r"rho must be a finite number >= 0.*inf"),
    ("rho", [0.1, -2.0, 0.3], r"rho must be a finite number >= 0.*-2\.0"),
    ("lr", 0.0, r"lr must be a finite number > 0.*0\.0"),
    ("lr", -0.5, r"lr must be a finite number > 0.*-0\.5"),
    ("lr", float("inf"), r"lr must be a finite number > 0.*inf"),
    ("lr", "fast", r"lr must be a number.*'fast'"),
    ("method", "adam", r"method must be one of 'sgd', 'gd', 'sam'.*got 'adam'"),
    ("method", ["sam", "adam"], r"method must be one of .*got 'adam'"),
    ("method", [], r"method must be one of .*got \[\]"),
    ("steps", 0, r"steps must be an integer >= 1, got 0"),
    ("steps", -3, r"steps must be an integer >= 1, got -3"),
    ("steps", 10.5, r"steps must be an integer >= 1, got 10\.5"),
    ("steps", 10.0, r"steps must be an integer >= 1, got 10\.0"),
    ("steps", True, r"steps must be an integer >= 1, got True"),
    ("x0", [1.0, 2.0, 3.0], r"x0 must have shape \(2,\) or \(\.\.\., 2\), got shape \(3,\)"),
    ("x0", 1.0, r"x0 must have shape .*got shape \(\)"),
    ("x0", [[1.0], [2.0]], r"x0 must have shape .*got shape \(2, 1\)"),
    ("x0", [1.0, float("nan")], r"x0 must be finite, got .*nan"),
    ("x0", [[0.0, 0.0], [float("-inf"), 1.0]], r"x0 must be finite, got .*-inf"),
    ("tol", 0.0, r"tol must be a finite number > 0, got 0\.0"),
    ("tol", -1e-3, r"tol must be a finite number > 0, got -0\.001"),
    ("trap_radius", -1.0, r"trap_radius must be a finite number > 0, got -1\.0"),
    ("adaptive_eta", 0.0, r"adaptive_eta must be a finite number > 0, got 0\.0"),
    ("noise", -0.1, r"noise must be a finite number >= 0.*-0\.1"),
]


@pytest.mark.parametrize("name, value, message", BAD_RUNS,
                         ids=[f"{n}={v!r}" for n, v, _ in BAD_RUNS])
def test_run_rejects_a_bad_argument_naming_it_and_its_value(name, value, message):
    with pytest.raises(ValueError, match=message):
        call_run(**{name: value})


@pytest.mark.parametrize(
    "name, value, shown",
    [("rho", -0.1, "-0.1"), ("lr", 0.0, "0.0"), ("noise", -2.5, "-2.5"),
     ("rho", [0.2, float("nan")], "nan")],
)
def test_rejected_values_are_shown_as_plain_numbers(name, value, shown):
    # STYLE: "rho must be a finite number >= 0, got -0.1", not "got np.float64(-0.1)".
    with pytest.raises(ValueError) as info:
        call_run(**{name: value})
    assert str(info.value).endswith(f"got {shown}"), str(info.value)


def test_get_method_names_the_choices_and_the_unknown_method():
    with pytest.raises(ValueError, match=re.escape(
        "method must be one of 'sgd', 'gd', 'sam', 'usam', 'ssam', 'asam', 'rsam', got 'SAM'"
    )):
        get_method("SAM")


BAD_DIAGRAMS = [
    (dict(method="adam"), r"method must be one of .*got 'adam'"),
    (dict(lrs=[0.1, 0.0]), r"lrs must be a finite number > 0.*0\.0"),
    (dict(rhos=[-1.0, 0.5]), r"rhos must be a finite number >= 0.*-1\.0"),
    (dict(rhos=[]), r"lrs and rhos must be non-empty, got 2 lrs and 0 rhos"),
    (dict(x0=[[1.0, 0.0], [0.0, 1.0]]), r"x0 must be one point.*got shape \(2, 2\)"),
    (dict(x0=[1.0, float("inf")]), r"x0 must be finite, got .*inf"),
    (dict(steps=0), r"steps must be an integer >= 1, got 0"),
    (dict(tol=0.0), r"tol must be a finite number > 0, got 0\.0"),
]


@pytest.mark.parametrize("changes, message", BAD_DIAGRAMS,
                         ids=[next(iter(c)) + "-" + str(i) for i, (c, _) in
                              enumerate(BAD_DIAGRAMS)])
def test_phase_diagram_rejects_a_bad_argument_naming_it_and_its_value(changes, message):
    args = dict(method="usam", lrs=[0.1, 0.2], rhos=[0.0, 0.5], x0=[1.0, 0.5], steps=10)
    args.update(changes)
    options = {k: args.pop(k) for k in ("tol",) if k in args}
    with pytest.raises(ValueError, match=message):
        phase_diagram(LANDSCAPE, args["method"], args["lrs"], args["rhos"], args["x0"],
                      args["steps"], **options)


def test_the_memory_estimate_respects_the_address_space_limit():
    """Under ``ulimit -v`` a phase diagram too big for it is refused up front, naming the
    limit, instead of NumPy's MemoryError seconds in (issue 21)."""
    import subprocess
    import sys

    code = ("import resource, numpy as np\n"
            "from samlab import toy\n"
            "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))\n"
            "try:\n"
            "    toy.phase_diagram(toy.ConvexQuadratic((1.0, 0.1)), 'sam',\n"
            "                      np.geomspace(0.01, 1, 5000), np.geomspace(0.01, 1, 5000),\n"
            "                      [1, 1], 1000)\n"
            "except MemoryError as err:\n"
            "    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "this call needs about 7.5 GiB for 25,000,000 runs" in done.stdout
    allowed = float(done.stdout.split("more than the ")[1].split(" GiB")[0])
    assert allowed < 1.5  # half of what the 3 GiB limit leaves, not half the machine's
