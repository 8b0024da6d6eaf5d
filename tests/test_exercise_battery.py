"""The exercise checks against answers they were not written around
(docs/exercises.md#how-the-checks-are-tested).

tests/test_exercises.py holds the mistakes each check names. Here are more: correct answers
written differently from samlab's (each must pass) and plausible wrong ones (each must
fail, with a hint that names what the answer misses or restates the exercise, never one
that points at another mistake). Then, for every check, its cases must cover both sides
of each branch a mistake can hide in: a check whose cases all have γ < 1 cannot tell a γ
capped at 1 from the right one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from samlab.exercises import EXERCISES, formulas, late, power, steps
from samlab.toy import theory

EPS = 1e-12


def norm(ts):
    return torch.sqrt(sum((t ** 2).sum() for t in ts))


def flat_norm(ts):
    return torch.cat([t.reshape(-1) for t in ts]).norm()


# -- correct answers, written differently ------------------------------------------------------


def usam_matrix_by_eigh(H, lr, rho):
    lam, q = np.linalg.eigh(H.astype(float))
    return (q * (1 - lr * lam * (1 + rho * lam))) @ q.T


def sam_perturbation_flat(g, rho):
    n = flat_norm(g)
    return [rho * t / max(n, torch.tensor(EPS, dtype=n.dtype)) for t in g]


def sam_perturbation_zero_branch(g, rho):
    n = torch.linalg.vector_norm(torch.stack([t.double().norm() for t in g]))
    if n == 0:
        return [torch.zeros_like(t) for t in g]
    return [(rho / n * t).to(t.dtype) for t in g]


def ssam_step_flat(w, grad, lr, rho):
    g = grad(w)
    g_asc = grad([wi + rho * gi for wi, gi in zip(w, g)])
    gamma = flat_norm(g) / (flat_norm(g_asc) + EPS)
    return [wi - (lr * gamma) * gi for wi, gi in zip(w, g_asc)]


def ssam_step_climb_and_restore(w, grad, lr, rho):
    """Climbs on copies by adding ε, then subtracts ε to come back, as some libraries do."""
    w = [t.clone() for t in w]
    g = grad(w)
    eps = [rho * gi for gi in g]
    for wi, e in zip(w, eps):
        wi.add_(e)
    g_asc = grad(w)
    for wi, e in zip(w, eps):
        wi.sub_(e)
    gamma = norm(g) / (norm(g_asc) + EPS)
    return [wi - lr * gamma * a for wi, a in zip(w, g_asc)]


def late_sam_zero_buffer(w, grad, *, lr, rho, momentum, steps, switch_step):
    buf, out = [torch.zeros_like(t) for t in w], []
    for k in range(steps):
        d = grad(w)
        if k >= switch_step:
            n = flat_norm(d)
            d = grad([wi + rho / (n + EPS) * di for wi, di in zip(w, d)])
        buf = [momentum * b + di for b, di in zip(buf, d)]
        w = [wi - lr * b for wi, b in zip(w, buf)]
        out.append(w)
    return out


def late_sam_lr_in_buffer(w, grad, *, lr, rho, momentum, steps, switch_step):
    """The learning rate folded into the buffer: the same steps for a constant lr."""
    buf, out = None, []
    for k in range(steps):
        d = grad(w)
        if k >= switch_step:
            scale = rho / (norm(d) + EPS)
            d = grad([wi + scale * di for wi, di in zip(w, d)])
        step = [lr * di for di in d]
        buf = step if buf is None else [momentum * b + s for b, s in zip(buf, step)]
        w = [wi - b for wi, b in zip(w, buf)]
        out.append(w)
    return out


def power_iteration_max_normalized(hvp, v0, iters):
    v = v0.clone()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.abs().max()
    return float(v @ hvp(v) / (v @ v))


def power_iteration_signed_norm(hvp, v0, iters):
    v = v0 / v0.norm()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.norm()
    hv = hvp(v)
    return float(torch.sign(v @ hv) * hv.norm())


ALTERNATIVES = [
    ("usam_matrix", "eigendecomposition", usam_matrix_by_eigh),
    ("usam_matrix", "factored", lambda H, lr, rho: np.eye(len(H)) - lr * H @ (np.eye(len(H))
                                                                            + rho * H)),
    ("usam_matrix", "matrix_power", lambda H, lr, rho: np.eye(len(H)) - lr * H
     - lr * rho * np.linalg.matrix_power(H, 2)),
    ("usam_contracts", "two_sided", lambda lam, lr, rho: -1 < 1 - lr * lam * (1 + rho * lam) < 1),
    ("usam_contracts", "step_size_band", lambda lam, lr, rho: 0 < lr * lam * (1 + rho * lam) < 2),
    ("usam_contracts", "numpy_bool",
     lambda lam, lr, rho: np.abs(theory.usam_factor(lam, lr, rho)) < 1),
    ("sam_perturbation", "flat_norm_max_guard", sam_perturbation_flat),
    ("sam_perturbation", "zero_branch_float64_norm", sam_perturbation_zero_branch),
    ("two_cycle_amplitude", "rearranged", lambda lr, rho, lam: rho / (2 / (lr * lam) - 1)),
    ("ssam_gamma", "max_guard", lambda grad_norm, ascent_grad_norm:
     float(grad_norm / (ascent_grad_norm + EPS))),
    ("ssam_step", "flat_norms", ssam_step_flat),
    ("ssam_step", "climb_and_restore", ssam_step_climb_and_restore),
    ("late_sam", "zero_initial_buffer", late_sam_zero_buffer),
    ("late_sam", "lr_in_the_buffer", late_sam_lr_in_buffer),
    ("late_sam_cost", "phases", lambda s: s * 1 + (1 - s) * 2),
    ("power_iteration", "max_entry_normalized", power_iteration_max_normalized),
    ("power_iteration", "signed_norm", power_iteration_signed_norm),
    ("momentum_edge", "factored", lambda lr, momentum: 2 * (1 + momentum) / lr),
]


@pytest.mark.parametrize("name, how, fn", ALTERNATIVES,
                         ids=[f"{n}-{h}" for n, h, _ in ALTERNATIVES])
def test_a_correct_answer_written_differently_passes(name, how, fn, capsys):
    verdict = EXERCISES[name].check(fn)
    assert verdict.passed, verdict.message


# -- plausible mistakes, with the hint each must get -------------------------------------------


def ssam_step_variant(*, cap=None, squared=False, descent_at_w=False, descent_ascent=False):
    def fn(w, grad, lr, rho):
        g = grad(w)
        g_asc = grad([wi + (-rho if descent_ascent else rho) * gi for wi, gi in zip(w, g)])
        gamma = norm(g) / (norm(g_asc) + EPS)
        if squared:
            gamma = gamma ** 2
        if cap is not None:
            gamma = torch.clamp(gamma, max=cap)
        d = g if descent_at_w else g_asc
        return [wi - lr * gamma * di for wi, di in zip(w, d)]
    return fn


def late_sam_variant(*, dampened=False, nesterov=False, plain_after_switch=False,
                     ascent_along_buffer=False, record_before=False, per_tensor=False):
    def fn(w, grad, *, lr, rho, momentum, steps, switch_step):
        buf, out = None, []
        for k in range(steps):
            if record_before:
                out.append(w)
            g = grad(w)
            d = g
            if k >= switch_step:
                direction = buf if (ascent_along_buffer and buf is not None) else g
                if per_tensor:
                    e = [rho * t / (t.norm() + EPS) for t in direction]
                else:
                    e = [rho * t / (norm(direction) + EPS) for t in direction]
                d = grad([wi + ei for wi, ei in zip(w, e)])
            if plain_after_switch and k >= switch_step:
                w = [wi - lr * di for wi, di in zip(w, d)]
            else:
                if buf is None:
                    buf = d
                else:
                    buf = [momentum * b + ((1 - momentum) if dampened else 1) * di
                           for b, di in zip(buf, d)]
                step = [di + momentum * b for di, b in zip(d, buf)] if nesterov else buf
                w = [wi - lr * s for wi, s in zip(w, step)]
            if not record_before:
                out.append(w)
        return out
    return fn


def power_returns_abs(hvp, v0, iters):
    v = v0 / v0.norm()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.norm()
    return float((v @ hvp(v)).abs())


def power_max_normalized_no_quotient(hvp, v0, iters):
    v = v0.clone()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.abs().max()
    return float(v @ hvp(v))


def power_returns_vector(hvp, v0, iters):
    v = v0 / v0.norm()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.norm()
    return v


def power_from_unnormalized_start(hvp, v0, iters):
    v = v0.clone()
    for _ in range(iters):
        v = hvp(v) / v.norm()
    return float(v @ hvp(v))


HELD_OUT = [
    # (exercise, mistake, wrong answer, words its hint must contain: the idea it misses, or
    #  the exercise restated)
    ("usam_matrix", "rho_squared",
     lambda H, lr, rho: np.eye(len(H)) - lr * (H + rho ** 2 * H @ H), "ascent point p + ρHp"),
    ("usam_matrix", "sign_of_rho",
     lambda H, lr, rho: np.eye(len(H)) - lr * (H - rho * H @ H), "ascent point p + ρHp"),
    ("usam_matrix", "maps_multiplied",
     lambda H, lr, rho: (np.eye(len(H)) - lr * H) @ (np.eye(len(H)) + rho * H),
     "ascent point p + ρHp"),
    ("usam_matrix", "absolute_curvature",
     lambda H, lr, rho: np.eye(len(H)) - lr * (H + rho * np.abs(H) @ H), "ascent point p + ρHp"),
    ("usam_matrix", "transposed_entrywise",
     lambda H, lr, rho: np.eye(len(H)) - lr * (H + rho * H.T * H), "matrix product"),
    ("usam_contracts", "no_absolute_value",
     lambda lam, lr, rho: 1 - lr * lam * (1 + rho * lam) < 1, "overshoot"),
    ("usam_contracts", "upper_edge_only",
     lambda lam, lr, rho: lr * lam * (1 + rho * lam) < 2, "factor of size below 1"),
    ("usam_contracts", "eta_not_on_rho",
     lambda lam, lr, rho: abs(1 - lr * lam - rho * lam ** 2) < 1, "its ρλ² part too"),
    ("usam_contracts", "curvature_squared_lost",
     lambda lam, lr, rho: abs(1 - lr * (lam + rho * lam)) < 1, "factor of size below 1"),
    ("usam_contracts", "absolute_curvature_in_ascent",
     lambda lam, lr, rho: abs(1 - lr * lam * (1 + rho * abs(lam))) < 1, "factor of size below 1"),
    ("sam_perturbation", "norm_squared",
     lambda g, rho: [rho * t / (norm(g) ** 2 + EPS) for t in g], "length ρ"),
    ("sam_perturbation", "l1_norm",
     lambda g, rho: [rho * t / (sum(x.abs().sum() for x in g) + EPS) for t in g], "length ρ"),
    ("sam_perturbation", "sign",
     lambda g, rho: [rho * torch.sign(t) for t in g], "length ρ"),
    ("sam_perturbation", "descent_direction",
     lambda g, rho: [-rho * t / (norm(g) + EPS) for t in g], "points along g"),
    ("sam_perturbation", "sum_of_tensor_norms",
     lambda g, rho: [rho * t / (sum(x.norm() for x in g) + EPS) for t in g], "length ρ"),
    ("sam_perturbation", "float64_result",
     lambda g, rho: [rho * t.double() / (norm(g).double() + EPS) for t in g], "length ρ"),
    ("sam_perturbation", "one_flat_tensor",
     lambda g, rho: rho * torch.cat([t.reshape(-1) for t in g]) / (flat_norm(g) + EPS),
     "length ρ"),
    ("sam_perturbation", "large_guard",
     lambda g, rho: [rho * t / (norm(g) + 1e-6) for t in g], "far smaller than ‖g‖"),
    ("sam_perturbation", "clipped_not_normalized",
     lambda g, rho: [rho * t / max(float(norm(g)), 1.0) for t in g], "length ρ"),
    ("two_cycle_amplitude", "lam_missing",
     lambda lr, rho, lam: lr * rho / (2 - lr * lam), "solve it for x*"),
    ("two_cycle_amplitude", "lr_missing",
     lambda lr, rho, lam: rho * lam / (2 - lr * lam), "solve it for x*"),
    ("two_cycle_amplitude", "one_minus",
     lambda lr, rho, lam: lr * rho * lam / (1 - lr * lam), "solve it for x*"),
    ("two_cycle_amplitude", "halved_denominator",
     lambda lr, rho, lam: lr * rho * lam / (2 * (1 - lr * lam)), "solve it for x*"),
    ("two_cycle_amplitude", "rho_only", lambda lr, rho, lam: rho / 2, "solve it for x*"),
    ("ssam_gamma", "capped_at_one",
     lambda grad_norm, ascent_grad_norm: min(grad_norm / (ascent_grad_norm + EPS), 1.0),
     "not capped at 1"),
    ("ssam_gamma", "capped_at_half",
     lambda grad_norm, ascent_grad_norm: min(grad_norm / (ascent_grad_norm + EPS), 0.5),
     "the ratio of the two norms as it comes"),
    ("ssam_gamma", "squared",
     lambda grad_norm, ascent_grad_norm: (grad_norm / (ascent_grad_norm + EPS)) ** 2,
     "the ratio of the two norms as it comes"),
    ("ssam_gamma", "numerator_missing",
     lambda grad_norm, ascent_grad_norm: 1 / (ascent_grad_norm + EPS),
     "the ratio of the two norms as it comes"),
    ("ssam_gamma", "one_where_the_ascent_norm_is_zero",
     lambda grad_norm, ascent_grad_norm: (grad_norm / ascent_grad_norm
                                          if ascent_grad_norm > 0 else 1.0),
     "the guard decides γ"),
    ("ssam_step", "capped_at_one", ssam_step_variant(cap=1.0), "not capped at 1"),
    ("ssam_step", "capped_at_half", ssam_step_variant(cap=0.5), "rescaled to the length of g"),
    ("ssam_step", "gamma_squared", ssam_step_variant(squared=True), "rescaled to the length of g"),
    ("ssam_step", "descends_along_g", ssam_step_variant(descent_at_w=True),
     "measures the gradient there"),
    ("ssam_step", "ascent_downhill", ssam_step_variant(descent_ascent=True), "climbs by ρ·g"),
    ("late_sam", "dampened_momentum", late_sam_variant(dampened=True), "momentum buffer runs"),
    ("late_sam", "nesterov", late_sam_variant(nesterov=True), "momentum buffer runs"),
    ("late_sam", "no_momentum_after_the_switch", late_sam_variant(plain_after_switch=True),
     "momentum buffer runs"),
    ("late_sam", "ascent_along_the_buffer", late_sam_variant(ascent_along_buffer=True),
     "from it on SAM's descent gradient"),
    ("late_sam", "records_before_each_step", late_sam_variant(record_before=True),
     "momentum buffer runs"),
    ("late_sam", "per_tensor_ascent", late_sam_variant(per_tensor=True),
     "from it on SAM's descent gradient"),
    ("late_sam_cost", "two_minus_two_s", lambda s: 2 - 2 * s, "weighted by the fraction"),
    ("late_sam_cost", "one_plus_two_rest", lambda s: 1 + 2 * (1 - s), "weighted by the fraction"),
    ("late_sam_cost", "sgd_relative_to_late_sam", lambda s: 1 / (2 - s),
     "weighted by the fraction"),
    ("late_sam_cost", "twice_the_rest", lambda s: 2 * (1 - s), "weighted by the fraction"),
    ("power_iteration", "absolute_value", power_returns_abs, "keeps its sign"),
    ("power_iteration", "max_normalized_without_the_quotient", power_max_normalized_no_quotient,
     "unit vector along itself"),
    ("power_iteration", "returns_the_vector", power_returns_vector, "unit vector along itself"),
    ("power_iteration", "divides_by_the_old_norm", power_from_unnormalized_start,
     "unit vector along itself"),
    ("momentum_edge", "times_lr", lambda lr, momentum: (2 + 2 * momentum) * lr,
     "characteristic polynomial"),
    ("momentum_edge", "momentum_divides", lambda lr, momentum: 2 / (lr * (1 + momentum)),
     "characteristic polynomial"),
    ("momentum_edge", "half", lambda lr, momentum: (1 + momentum) / lr,
     "characteristic polynomial"),
    ("momentum_edge", "minus_momentum", lambda lr, momentum: (2 - 2 * momentum) / lr,
     "characteristic polynomial"),
]


@pytest.mark.parametrize("name, mistake, fn, hint", HELD_OUT,
                         ids=[f"{n}-{m}" for n, m, _, _ in HELD_OUT])
def test_a_plausible_mistake_fails_with_a_hint_that_fits_it(name, mistake, fn, hint, capsys):
    verdict = EXERCISES[name].check(fn)
    assert verdict.status == "failed", f"{name} let {mistake} pass"
    assert hint in verdict.message.split("hint:")[-1], verdict.message


# -- the cases cover both sides of every branch -------------------------------------------------


def dtypes(values) -> set[str]:
    return {str(v.dtype).removeprefix("torch.") for v in values}


def test_usam_matrix_cases_cover_both_curvatures_capture_dtypes_and_rho_zero():
    cases = formulas.USAM_MATRIX.cases()
    lams = [np.linalg.eigvalsh(c.args["H"].astype(float)) for c in cases]
    flat = np.concatenate(lams)
    assert flat.min() < 0 < flat.max()
    assert any((c.args["rho"] * lam < -1).any() for c, lam in zip(cases, lams))  # captured
    assert {c.args["H"].dtype.name for c in cases} == {"float32", "float64"}
    assert {c.args["rho"] == 0 for c in cases} == {True, False}
    assert len({c.args["rho"] for c in cases} - {0.0, 1.0}) >= 3  # ρ and ρ² differ
    assert all(np.abs(c.args["H"] - np.diag(np.diag(c.args["H"]))).max() > 0.1 for c in cases)


def test_usam_contracts_cases_cover_every_side_of_the_factor():
    kinds = set()
    for c in formulas.USAM_CONTRACTS.cases():
        lam, lr, rho = c.args["lam"], c.args["lr"], c.args["rho"]
        f = float(theory.usam_factor(lam, lr, rho))
        kinds.add((np.sign(lam), "above 1" if f > 1 else "equal 1" if f == 1 else
                   "inside" if f > -1 else "below -1"))
        kinds.add(("rho", rho == 0))
    assert {(1.0, "inside"), (1.0, "below -1"), (-1.0, "above 1"), (-1.0, "inside"),
            (-1.0, "below -1"), (0.0, "equal 1"), ("rho", True), ("rho", False)} <= kinds


def test_sam_perturbation_cases_cover_dtypes_norms_above_and_below_one_and_zero():
    cases = steps.SAM_PERTURBATION.cases()
    norms = [float(norm([t.double() for t in c.args["g"]])) for c in cases]
    assert dtypes(c.args["g"][0] for c in cases) == {"float32", "float64"}
    assert min(norms) == 0 and any(0 < n < 1e-4 for n in norms)
    assert any(1e-4 < n < 1 for n in norms) and any(n > 1 for n in norms)
    ratios = [max(t.norm() for t in c.args["g"]) / min(t.norm() for t in c.args["g"])
              for c in cases if len(c.args["g"]) > 1 and norm(c.args["g"]) > 0]
    assert max(ratios) > 10  # one norm per tensor and one over all differ
    assert {c.args["rho"] == 0 for c in cases} == {True, False}


def test_two_cycle_cases_cover_steps_below_and_above_one():
    products = [c.args["lr"] * c.args["lam"] for c in formulas.TWO_CYCLE_AMPLITUDE.cases()]
    assert min(products) < 1 < max(products) < 2
    for key in ("lr", "rho", "lam"):  # none is 1, so a factor left out shows
        assert all(c.args[key] != 1 for c in formulas.TWO_CYCLE_AMPLITUDE.cases())


def test_ssam_gamma_cases_have_gamma_above_and_below_one_in_both_dtypes_and_zero_norms():
    cases = steps.SSAM_GAMMA.cases()
    gammas = [(float(c.args["grad_norm"] / c.args["ascent_grad_norm"])
               if c.args["ascent_grad_norm"] > 0 else None, str(c.args["grad_norm"].dtype))
              for c in cases]
    for dtype in ("torch.float32", "torch.float64"):
        mine = [g for g, d in gammas if d == dtype and g is not None]
        assert min(mine) < 1 < max(mine), dtype
    assert sum(g is None for g, _ in gammas) == 2  # a zero ascent norm, and both zero


def ssam_gamma_of(case) -> tuple[float, list[float]]:
    """γ at a case of ssam_step, globally and per tensor."""
    w, grad, rho = case.args["w"], case.args["grad"], case.args["rho"]
    g = grad(w)
    g_asc = grad([wi + rho * gi for wi, gi in zip(w, g)])
    per = [float(a.norm() / (b.norm() + EPS)) for a, b in zip(g, g_asc)]
    return float(norm(g) / (norm(g_asc) + EPS)), per


def test_ssam_step_cases_have_gamma_below_a_half_near_one_and_above_one():
    cases = steps.SSAM_STEP.cases()
    gammas = [ssam_gamma_of(c)[0] for c in cases]
    assert 0.0 in gammas  # g = 0
    assert any(0 < g < 0.5 for g in gammas) and any(0.5 < g < 1 for g in gammas)
    assert any(g > 1.5 for g in gammas)
    above = [c for c, g in zip(cases, gammas) if g > 1]
    assert dtypes(c.args["w"][0] for c in above) == {"float32", "float64"}
    assert dtypes(c.args["w"][0] for c in cases) == {"float32", "float64"}
    # Somewhere one γ per tensor is far from the one over all tensors.
    assert any(max(abs(p - g) for p in per) > 0.1 * g
               for g, per in map(ssam_gamma_of, cases) if g > 0)


def test_late_sam_cases_switch_at_the_start_in_the_middle_and_never():
    cases = late.LATE_SAM.cases()
    where = {("start" if c.args["switch_step"] == 0 else
              "never" if c.args["switch_step"] >= c.args["steps"] else "middle") for c in cases}
    assert where == {"start", "middle", "never"}
    middle = [c for c in cases if 0 < c.args["switch_step"] < c.args["steps"]]
    # at least two steps on each side of the switch, so a shift by one shows both ways
    assert all(c.args["switch_step"] >= 2 and c.args["steps"] - c.args["switch_step"] >= 2
               for c in middle)
    assert dtypes(c.args["w"][0] for c in middle) == {"float32", "float64"}
    assert len({c.args["momentum"] for c in cases}) >= 2
    assert all(0 < c.args["momentum"] < 1 for c in cases)


def test_late_sam_cost_cases_cover_both_ends_and_between():
    fractions = {c.args["switch_fraction"] for c in late.LATE_SAM_COST.cases()}
    assert {0.0, 1.0} <= fractions and len(fractions - {0.0, 1.0}) >= 2


def test_power_iteration_cases_cover_both_signs_dtypes_and_overflow():
    cases = power.POWER_ITERATION.cases()
    spectra = [torch.linalg.eigvalsh(c.data["H"]) for c in cases]
    dominant = [float(s[s.abs().argmax()]) for s in spectra]
    assert min(dominant) < 0 < max(dominant)
    # where the dominant eigenvalue is negative, the largest one (algebraically) is not it
    assert any(d < 0 and float(s.max()) > 0 for d, s in zip(dominant, spectra))
    assert dtypes(c.args["v0"] for c in cases) == {"float32", "float64"}
    assert any(c.args["iters"] * math.log(abs(d)) > math.log(torch.finfo(torch.float64).max)
               for c, d in zip(cases, dominant))  # never normalizing overflows there


def test_momentum_edge_cases_cover_no_momentum_and_momentum():
    cases = formulas.MOMENTUM_EDGE.cases()
    assert {c.args["momentum"] == 0 for c in cases} == {True, False}
    assert all(c.args["lr"] != 1 for c in cases) and len({c.args["lr"] for c in cases}) >= 2
