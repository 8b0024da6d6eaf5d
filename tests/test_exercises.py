"""The exercise checks (docs/exercises.md): a right answer passes, a stub is "not attempted
yet", and each classic mistake fails with the hint that names its idea.

The reference solutions live here, not in the package, which students can read.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samlab import exercises
from samlab.exercises import EXERCISES, Verdict

EPS = 1e-12


def norm(ts):
    return torch.sqrt(sum((t ** 2).sum() for t in ts))


# -- reference solutions ---------------------------------------------------------------------


def usam_matrix(H, lr, rho):
    return np.eye(len(H)) - lr * (H + rho * H @ H)


def usam_contracts(lam, lr, rho):
    return abs(1 - lr * lam * (1 + rho * lam)) < 1


def sam_perturbation(g, rho):
    n = norm(g)
    return [rho * t / (n + EPS) for t in g]


def two_cycle_amplitude(lr, rho, lam):
    return lr * rho * lam / (2 - lr * lam)


def ssam_gamma(grad_norm, ascent_grad_norm):
    return grad_norm / (ascent_grad_norm + EPS)


def ssam_step(w, grad, lr, rho):
    g = grad(w)
    w_asc = [wi + rho * gi for wi, gi in zip(w, g)]
    g_asc = grad(w_asc)
    gamma = norm(g) / (norm(g_asc) + EPS)
    return [wi - lr * gamma * ai for wi, ai in zip(w, g_asc)]


def late_sam(w, grad, *, lr, rho, momentum, steps, switch_step):
    w, buf, out = [t.clone() for t in w], None, []
    for k in range(steps):
        g = grad(w)
        if k >= switch_step:
            n = norm(g)
            g = grad([wi + rho * gi / (n + EPS) for wi, gi in zip(w, g)])
        buf = g if buf is None else [momentum * b + d for b, d in zip(buf, g)]
        w = [wi - lr * b for wi, b in zip(w, buf)]
        out.append(w)
    return out


def late_sam_cost(switch_fraction):
    return 2 - switch_fraction


def power_iteration(hvp, v0, iters):
    v = v0 / v0.norm()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.norm()
    return float(v @ hvp(v))


def momentum_edge(lr, momentum):
    return (2 + 2 * momentum) / lr


SOLUTIONS = {f.__name__: f for f in (
    usam_matrix, usam_contracts, sam_perturbation, two_cycle_amplitude, ssam_gamma, ssam_step,
    late_sam, late_sam_cost, power_iteration, momentum_edge)}


def check(name, fn) -> Verdict:
    return EXERCISES[name].check(fn)


# -- the classic mistakes, each a wrong implementation, with the hint it must get -------------


def late_sam_variant(*, reset=False, shift=0, from_start=False, unnormalized=False):
    def fn(w, grad, *, lr, rho, momentum, steps, switch_step):
        w, buf, out = [t.clone() for t in w], None, []
        for k in range(steps):
            g = grad(w)
            sam = from_start or k >= switch_step + shift
            if sam:
                scale = rho if unnormalized else rho / (norm(g) + EPS)
                g = grad([wi + scale * gi for wi, gi in zip(w, g)])
            if reset and k == switch_step:
                buf = None
            buf = g if buf is None else [momentum * b + d for b, d in zip(buf, g)]
            w = [wi - lr * b for wi, b in zip(w, buf)]
            out.append(w)
        return out
    return fn


def ssam_variant(*, from_asc=False, inverted=False, per_tensor=False, normalized=False,
                 gamma_one=False):
    def fn(w, grad, lr, rho):
        g = grad(w)
        scale = rho / (norm(g) + EPS) if normalized else rho
        w_asc = [wi + scale * gi for wi, gi in zip(w, g)]
        g_asc = grad(w_asc)
        if per_tensor:
            gammas = [a.norm() / (b.norm() + EPS) for a, b in zip(g, g_asc)]
        else:
            gammas = [norm(g) / (norm(g_asc) + EPS)] * len(w)
        if inverted:
            gammas = [norm(g_asc) / (norm(g) + EPS)] * len(w)
        if gamma_one:
            gammas = [1.0] * len(w)
        start = w_asc if from_asc else w
        return [s - lr * gm * a for s, gm, a in zip(start, gammas, g_asc)]
    return fn


def late_sam_aliased(w, grad, **settings):
    current, out = [t.clone() for t in w], []
    for weights in late_sam(w, grad, **settings):
        for t, new in zip(current, weights):
            t.copy_(new)
        out.append(current)  # the same tensors every step
    return out


def ssam_in_place(w, grad, lr, rho):
    g = grad(w)
    for wi, gi in zip(w, g):
        wi.add_(rho * gi)
    g_asc = grad(w)
    gamma = norm(g) / (norm(g_asc) + EPS)
    for wi, gi, ai in zip(w, g, g_asc):
        wi.sub_(rho * gi + lr * gamma * ai)
    return w


def power_no_normalize(hvp, v0, iters):
    v = v0.clone()
    for _ in range(iters):
        v = hvp(v)
    return float(v @ hvp(v) / (v @ v))


def power_norm_of_hv(hvp, v0, iters):
    v = v0 / v0.norm()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.norm()
    return float(hvp(v).norm())


def power_unnormalized_ratio(hvp, v0, iters):
    v = v0.clone()
    for _ in range(iters):
        v = hvp(v)
    return float(hvp(v).norm() / v.norm())


SAME_NORM = "one number over all tensors together"
MISTAKES = [
    # (exercise, mistake id, wrong implementation, words its hint must contain)
    ("usam_matrix", "elementwise_square",
     lambda H, lr, rho: np.eye(len(H)) - lr * (H + rho * H * H), "matrix product"),
    ("usam_matrix", "rho_not_times_lr",
     lambda H, lr, rho: np.eye(len(H)) - lr * H - rho * H @ H, "the ρH² part too"),
    ("usam_matrix", "missing_identity",
     lambda H, lr, rho: -lr * (H + rho * H @ H), "contains p itself"),
    ("usam_contracts", "capture_only",
     lambda lam, lr, rho: rho * lam < -1 if lam < 0 else abs(1 - lr * lam * (1 + rho * lam)) < 1,
     "can still overshoot"),
    ("usam_contracts", "capture_only_plain_edge",
     lambda lam, lr, rho: rho * lam < -1 if lam < 0 else lr * lam * (1 + rho * lam) < 2,
     "can still overshoot"),
    ("usam_contracts", "sign_of_step",
     lambda lam, lr, rho: abs(1 + lr * lam * (1 + rho * lam)) < 1, "check the signs"),
    ("usam_contracts", "sign_of_rho",
     lambda lam, lr, rho: abs(1 - lr * lam * (1 - rho * lam)) < 1, "check the signs"),
    ("usam_contracts", "size_one_counts",
     lambda lam, lr, rho: abs(1 - lr * lam * (1 + rho * lam)) <= 1, "not contraction"),
    ("sam_perturbation", "per_tensor_norms",
     lambda g, rho: [rho * t / (t.norm() + EPS) for t in g], SAME_NORM),
    ("sam_perturbation", "unnormalized",
     lambda g, rho: [rho * t for t in g], "normalize g"),
    ("sam_perturbation", "no_zero_guard",
     lambda g, rho: [rho * t / norm(g) for t in g], "guard every division"),
    ("sam_perturbation", "direction_without_rho",
     lambda g, rho: [t / (norm(g) + EPS) for t in g], "has length 1"),
    ("sam_perturbation", "in_place",
     lambda g, rho: [t.mul_(rho / (norm(g) + EPS)) for t in g], "belong to the caller"),
    ("two_cycle_amplitude", "small_step_half",
     lambda lr, rho, lam: lr * rho * lam / 2, "small-step limit"),
    ("two_cycle_amplitude", "small_step_swing",
     lambda lr, rho, lam: lr * rho * lam, "peak-to-peak"),
    ("two_cycle_amplitude", "sign_of_eta_lambda",
     lambda lr, rho, lam: lr * rho * lam / (2 + lr * lam), "sign of the ηλ term"),
    ("ssam_gamma", "inverted",
     lambda grad_norm, ascent_grad_norm: ascent_grad_norm / (grad_norm + EPS),
     "which norm goes on top"),
    ("ssam_gamma", "no_guard",
     lambda grad_norm, ascent_grad_norm: grad_norm / ascent_grad_norm, "guard every division"),
    ("ssam_step", "descends_from_w_asc", ssam_variant(from_asc=True), "step is taken from w"),
    ("ssam_step", "gamma_inverted", ssam_variant(inverted=True), "which norm goes on top"),
    ("ssam_step", "per_tensor_norms", ssam_variant(per_tensor=True), "not one per tensor"),
    ("ssam_step", "normalized_ascent", ssam_variant(normalized=True), "unnormalized"),
    ("ssam_step", "no_renormalization", ssam_variant(gamma_one=True), "renormalization"),
    ("ssam_step", "modifies_w_in_place", ssam_in_place, "caller's w must be as it was"),
    ("late_sam", "momentum_reset_at_switch", late_sam_variant(reset=True), "carried across"),
    ("late_sam", "switches_one_step_late", late_sam_variant(shift=1), "one step late"),
    ("late_sam", "switches_one_step_early", late_sam_variant(shift=-1), "one step early"),
    ("late_sam", "sam_from_the_start", late_sam_variant(from_start=True), "plain heavy-ball"),
    ("late_sam", "unnormalized_ascent", late_sam_variant(unnormalized=True), "normalized"),
    ("late_sam", "one_list_updated_in_place", late_sam_aliased, "record copies"),
    ("late_sam_cost", "one_plus_s", lambda s: 1 + s, "fraction of training before the switch"),
    ("late_sam_cost", "two_s", lambda s: 2 * s, "fraction of training before the switch"),
    ("late_sam_cost", "extra_only", lambda s: 1 - s, "not only SAM's extra ones"),
    ("power_iteration", "never_normalizes", power_no_normalize, "back to length one"),
    ("power_iteration", "returns_norm_of_hv", power_norm_of_hv, "keeps its sign"),
    ("power_iteration", "unnormalized_ratio", power_unnormalized_ratio, "keeps its sign"),
    ("momentum_edge", "momentum_ignored", lambda lr, momentum: 2 / lr, "without momentum"),
    ("momentum_edge", "two_plus_beta", lambda lr, momentum: (2 + momentum) / lr, "z = −1"),
    ("momentum_edge", "effective_step", lambda lr, momentum: 2 / (lr * (1 - momentum)),
     "effective step on a constant slope"),
]


# -- every exercise ----------------------------------------------------------------------------


def test_every_exercise_has_a_solution_here_and_a_section_in_the_docs():
    from pathlib import Path
    docs = (Path(__file__).resolve().parent.parent / "docs" / "exercises.md").read_text()
    assert set(EXERCISES) == set(SOLUTIONS)
    for name, ex in EXERCISES.items():
        assert ex.name == name and 1 <= ex.lecture <= 5 and ex.description
        assert ex.check.__name__ == f"check_{name}"
        assert callable(getattr(exercises, ex.check.__name__))
        assert f"### {name}\n" in docs and f"check_{name}({name})" in docs


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_a_right_answer_passes_and_says_what_was_checked(name, capsys):
    verdict = check(name, SOLUTIONS[name])
    out = capsys.readouterr().out
    assert verdict.status == "passed" and verdict.passed, verdict.message
    assert out == verdict.message + "\n"
    assert verdict.cases >= 4 and f"{verdict.cases} cases" in out


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_a_stub_is_not_attempted_yet_without_a_traceback(name, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("write it here")

    verdict = check(name, stub)
    out = capsys.readouterr()
    assert verdict.status == "not attempted" and not verdict.passed
    assert out.out == verdict.message + "\n" and "not attempted yet" in out.out
    assert "Traceback" not in out.out + out.err and out.err == ""


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_another_exception_fails_with_one_line_naming_it(name, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero\nsecond line")

    verdict = check(name, broken)
    out = capsys.readouterr().out
    assert verdict.status == "failed" and verdict.cases == 1
    first = out.splitlines()[0]
    assert "case 1 of" in first and "raised ZeroDivisionError: float division by zero" in first
    assert "second line" not in out and "Traceback" not in out


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_returning_nothing_fails_and_says_so(name, capsys):
    verdict = check(name, lambda *args, **kwargs: None)
    assert verdict.status == "failed" and "returns nothing" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_a_check_refuses_what_is_not_a_function(name):
    with pytest.raises(ValueError, match=r"^fn must be the function your cell defines, .*got 42"):
        check(name, 42)


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_a_check_is_deterministic(name, capsys):
    wrong = next(fn for ex, _, fn, _ in MISTAKES if ex == name)
    first = check(name, wrong), check(name, SOLUTIONS[name])
    assert first == (check(name, wrong), check(name, SOLUTIONS[name]))


@pytest.mark.parametrize("name, mistake, fn, hint", MISTAKES,
                         ids=[f"{e}-{m}" for e, m, _, _ in MISTAKES])
def test_each_check_catches_the_classic_mistake_and_names_its_idea(name, mistake, fn, hint,
                                                                   capsys):
    verdict = check(name, fn)
    out = capsys.readouterr().out
    assert verdict.status == "failed", f"{name} let the mistake {mistake} pass"
    assert out == verdict.message + "\n"
    assert hint in verdict.message.split("hint:")[-1], verdict.message


def test_sam_perturbation_check_catches_per_tensor_norms(capsys):
    verdict = check("sam_perturbation", lambda g, rho: [rho * t / (t.norm() + EPS) for t in g])
    assert "case 1 of" in verdict.message
    assert "hint: the norm is one number over all tensors together, not one per tensor." \
        in verdict.message


def test_a_failure_shows_expected_against_got(capsys):
    verdict = exercises.check_momentum_edge(lambda lr, momentum: 2 / lr)
    assert "expected 38, got 20" in verdict.message


def test_a_near_miss_shows_the_digits_and_the_difference_that_fail(capsys):
    verdict = exercises.check_momentum_edge(lambda lr, momentum: (2 + 2 * momentum) / lr
                                            * (1 + 1e-8))
    assert "expected 38, got 38.00000038" in verdict.message
    nudged = exercises.check_sam_perturbation(
        lambda g, rho: [t * (1 + 1e-3) for t in sam_perturbation(g, rho)])
    assert "largest difference" in nudged.message and "tolerance" in nudged.message


def test_a_wrong_dtype_or_shape_fails_with_what_was_expected(capsys):
    double = exercises.check_sam_perturbation(
        lambda g, rho: [t.double() for t in sam_perturbation(g, rho)])
    assert "expected dtype torch.float32, got torch.float64" in double.message
    flat = exercises.check_usam_matrix(lambda H, lr, rho: usam_matrix(H, lr, rho).ravel())
    assert "expected shape (2, 2), got shape (4,)" in flat.message


def test_late_sam_names_the_step_index_that_differs(capsys):
    verdict = exercises.check_late_sam(late_sam_variant(shift=1))
    assert "result[3]" in verdict.message and "step index 3" in verdict.message


def test_usam_matrix_accepts_a_float32_result_for_a_float32_h(capsys):
    def float32_result(H, lr, rho):
        return usam_matrix(H, lr, rho).astype(H.dtype)

    assert exercises.check_usam_matrix(float32_result).passed


def test_sam_perturbation_accepts_any_guard_that_leaves_small_gradients_alone(capsys):
    def exact_zero_test(g, rho):
        n = norm(g)
        return [torch.zeros_like(t) if n == 0 else rho * t / n for t in g]

    def large_guard(g, rho):
        return [rho * t / (norm(g) + 1e-8) for t in g]

    assert exercises.check_sam_perturbation(exact_zero_test).passed
    verdict = exercises.check_sam_perturbation(large_guard)
    assert not verdict.passed and "tiny" in verdict.message and "far smaller" in verdict.message


def test_the_verdict_is_shown_once_in_a_notebook():
    formatter = pytest.importorskip("IPython.core.formatters").DisplayFormatter()
    verdict = Verdict("x", "passed", "✓ x passed", 3)
    assert formatter.format(verdict) == ({}, {})  # the check printed it already
    assert str(verdict) == "✓ x passed" and "✓" not in repr(verdict)


def test_the_numpy_exercises_do_not_import_torch():
    """Notebook 01 imports only NumPy; its checks must not add torch's import to it."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from samlab.exercises import EXERCISES, check_usam_matrix\n"
            "check_usam_matrix(lambda H, lr, rho: np.eye(len(H)) - lr * (H + rho * H @ H))\n"
            "assert EXERCISES['usam_contracts'].lecture == 1\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_torch_check_is_found_through_the_package_and_the_registry(capsys):
    assert exercises.check_ssam_gamma.__module__ == "samlab.exercises.steps"
    assert EXERCISES["ssam_gamma"].check(SOLUTIONS["ssam_gamma"]).passed
    assert not EXERCISES["ssam_gamma"].check(lambda a, b: b / (a + EPS)).passed
    assert capsys.readouterr().out.count("ssam_gamma passed") == 1
    with pytest.raises(AttributeError, match="check_nothing"):
        exercises.check_nothing  # noqa: B018


# -- under nbgrader (docs/exercises.md#grading-with-nbgrader) -----------------------------------


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_under_nbgrader_a_check_that_does_not_pass_raises_its_verdict(name, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert check(name, SOLUTIONS[name]).passed
    assert f"✓ {name} passed" in capsys.readouterr().out
    wrong = next(fn for ex, _, fn, _ in MISTAKES if ex == name)
    with pytest.raises(exercises.NotPassed) as raised:
        check(name, wrong)
    failed = raised.value.verdict
    assert failed.status == "failed" and str(raised.value) == failed.message
    assert "hint:" in failed.message and capsys.readouterr().out == ""  # said once, raised

    def stub(*args, **kwargs):
        raise NotImplementedError

    with pytest.raises(exercises.NotPassed, match="not attempted yet"):
        check(name, stub)


def test_jupyter_shows_the_verdict_of_a_check_that_did_not_pass_not_a_traceback(monkeypatch,
                                                                               capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    with pytest.raises(exercises.NotPassed) as raised:
        exercises.check_momentum_edge(lambda lr, momentum: 2 / lr)
    shown = raised.value._render_traceback_()  # what IPython prints for an error with one
    assert shown[0] == "NotPassed: the check of momentum_edge did not pass"
    assert shown[1:] == raised.value.verdict.message.splitlines()
    assert "expected 38, got 20" in shown[2] and shown[-1].startswith("  hint:")


@pytest.mark.parametrize("value, graded", [(None, False), ("", False), ("autograde", True),
                                           ("validate", True)])
def test_only_nbgrader_makes_a_check_raise(value, graded, monkeypatch, capsys):
    if value is None:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    else:
        monkeypatch.setenv("NBGRADER_EXECUTION", value)
    assert exercises.graded() is graded
    if not graded:
        verdict = exercises.check_momentum_edge(lambda lr, momentum: 2 / lr)
        assert verdict.status == "failed" and "✗ momentum_edge" in capsys.readouterr().out


def test_the_docs_show_what_jupyter_shows_for_a_check_that_did_not_pass(monkeypatch):
    from pathlib import Path
    docs = (Path(__file__).resolve().parent.parent / "docs" / "exercises.md").read_text()
    shown = docs.split("Jupyter shows the verdict, not a traceback:\n\n```\n", 1)[1]
    shown = shown.split("```", 1)[0].rstrip("\n").splitlines()
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(exercises.NotPassed) as raised:
        exercises.check_usam_matrix(lambda H, lr, rho: np.eye(len(H)) - lr * (H + rho * H * H))
    assert raised.value._render_traceback_() == shown
