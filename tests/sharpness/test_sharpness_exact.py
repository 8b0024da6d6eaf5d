"""Every measurement against the exact Hessian of a model small enough to form it.

The truth is ``torch.func.hessian`` of the flattened-parameter loss and
``torch.linalg.eigvalsh`` of it (``sharpness_truth.py``): a float64 MLP of 158
parameters, with BatchNorm (186) in eval and in train mode.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sharpness_truth import exact_hessian, flat_params, tiny_batches, tiny_mlp

from samlab import sharpness

CASES = [("plain", False, "eval"), ("bn-eval", True, "eval"), ("bn-train", True, "train")]
IDS = [name for name, _, _ in CASES]


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request):
    """(model, batches, bn_mode, exact Hessian, its eigenvalues largest first)."""
    _, batch_norm, bn_mode = request.param
    model, batches = tiny_mlp(batch_norm), tiny_batches()
    H = exact_hessian(model, batches, bn_mode)
    return model, batches, bn_mode, H, torch.linalg.eigvalsh(H).flip(0)


@pytest.mark.parametrize("mode", ["double_backward", "forward_over_reverse", "auto"])
def test_hvp_is_the_exact_hessian_times_v(case, mode):
    model, batches, bn_mode, H, _ = case
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    Hv = sharpness.hvp(model, F.cross_entropy, batches, v, bn_mode=bn_mode, mode=mode)
    torch.testing.assert_close(Hv, H @ v, rtol=0, atol=1e-12)


def test_compiled_forward_over_reverse_is_the_exact_hessian_times_v():
    model, batches = tiny_mlp(batch_norm=True), tiny_batches()[:1]  # one shape: one compile
    H = exact_hessian(model, batches, "train")
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    Hv = sharpness.hvp(model, F.cross_entropy, batches, v, bn_mode="train", compile=True)
    torch.testing.assert_close(Hv, H @ v, rtol=0, atol=1e-12)


def test_hvp_weights_every_example_equally_across_unequal_batches():
    model, batches = tiny_mlp(), tiny_batches()
    whole = [(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))]
    v = torch.randn(flat_params(model).numel(), dtype=torch.float64)
    torch.testing.assert_close(sharpness.hvp(model, F.cross_entropy, batches, v),
                               sharpness.hvp(model, F.cross_entropy, whole, v),
                               rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["lanczos", "power"])
@pytest.mark.parametrize("k, tol", [(1, 1e-3), (3, 1e-3), (2, 1e-6)])
def test_top_k_eigenvalues_match_eigvalsh_to_the_tolerance_asked(case, method, k, tol):
    model, batches, bn_mode, _, exact = case
    result = sharpness.top_eigenvalues(model, F.cross_entropy, batches, k=k, method=method,
                                       tol=tol, max_iter=2000, bn_mode=bn_mode)
    assert result.converged
    assert result.eigenvalues.shape == (k,)
    assert torch.all(result.eigenvalues[:-1] >= result.eigenvalues[1:])
    error = (result.eigenvalues - exact[:k]).abs() / exact[:k].abs()
    assert torch.all(error <= tol), (result.eigenvalues, exact[:k])
    assert torch.all(result.residuals <= tol)
    assert result.n_hvp == len(result.history) >= k
    assert result.lambda_max == float(result.eigenvalues[0])


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_returned_eigenvectors_are_unit_eigenvectors_of_the_exact_hessian(case, method):
    model, batches, bn_mode, H, _ = case
    result = sharpness.top_eigenvalues(model, F.cross_entropy, batches, k=2, method=method,
                                       tol=1e-7, max_iter=3000, bn_mode=bn_mode,
                                       eigenvectors=True)
    Y = result.eigenvectors
    assert Y.shape == (2, H.shape[0])
    torch.testing.assert_close(Y @ Y.T, torch.eye(2, dtype=torch.float64), rtol=0, atol=1e-6)
    for y, lam in zip(Y, result.eigenvalues):
        assert float((H @ y - lam * y).norm()) <= 1e-6 * abs(float(lam))


def test_lanczos_estimate_of_lambda_max_rises_towards_it_and_never_overshoots(case):
    # Cauchy interlacing: the top Ritz value of T_m grows with m and stays <= λ_max.
    model, batches, bn_mode, _, exact = case
    result = sharpness.top_eigenvalues(model, F.cross_entropy, batches, tol=1e-10,
                                       max_iter=60, bn_mode=bn_mode)
    history = torch.tensor(result.history, dtype=torch.float64)
    assert torch.all(history[1:] >= history[:-1] - 1e-12)
    assert torch.all(history <= exact[0] + 1e-12)
    assert result.lambda_max == pytest.approx(float(exact[0]), rel=1e-10)


def test_lanczos_uses_far_fewer_hessian_vector_products_than_power_iteration(case):
    model, batches, bn_mode, _, _ = case
    runs = {method: sharpness.top_eigenvalues(model, F.cross_entropy, batches, method=method,
                                              tol=1e-6, max_iter=2000, bn_mode=bn_mode)
            for method in ("lanczos", "power")}
    assert runs["lanczos"].n_hvp < runs["power"].n_hvp / 2


def test_hutchinson_lies_within_three_standard_errors_of_the_exact_trace_over_seeds(case):
    model, batches, bn_mode, H, _ = case
    trace = float(H.trace())
    runs = [sharpness.hessian_trace(model, F.cross_entropy, batches, n_probes=30, seed=seed,
                                    bn_mode=bn_mode) for seed in range(20)]
    within = [abs(r.estimate - trace) <= 3 * r.stderr for r in runs]
    assert sum(within) >= 19, [(r.estimate, r.stderr) for r in runs]
    pooled = torch.cat([r.samples for r in runs])
    assert abs(float(pooled.mean()) - trace) <= 3 * float(pooled.std()) / math.sqrt(len(pooled))
    assert all(r.n_hvp == r.n_probes == 30 for r in runs)


def test_hutchinson_standard_error_is_the_spread_of_the_probes():
    model, batches = tiny_mlp(), tiny_batches()
    result = sharpness.hessian_trace(model, F.cross_entropy, batches, n_probes=10, seed=4)
    assert result.samples.shape == (10,)
    assert result.estimate == pytest.approx(float(result.samples.mean()), rel=1e-12)
    assert result.stderr == pytest.approx(float(result.samples.std()) / math.sqrt(10), rel=1e-12)


def test_slq_density_integrates_to_one_and_its_mean_matches_trace_over_n(case):
    model, batches, bn_mode, H, exact = case
    n, probes = H.shape[0], 20
    d = sharpness.spectral_density(model, F.cross_entropy, batches, n_probes=probes,
                                   n_steps=20, seed=1, bn_mode=bn_mode)
    assert float(torch.trapezoid(d.density, d.grid)) == pytest.approx(1.0, abs=1e-12)
    assert torch.all(d.density >= 0)
    assert float(d.weights.sum()) == pytest.approx(1.0, abs=1e-12)
    mean = float(torch.trapezoid(d.grid * d.density, d.grid))
    assert mean == pytest.approx(float(d.nodes @ d.weights), abs=1e-6 * float(exact.abs().max()))
    # v ~ uniform on the sphere: E[vᵀHv] = tr(H)/n, Var = 2(n Σλ² − (Σλ)²) / (n²(n + 2)).
    var = 2 * (n * float((exact ** 2).sum()) - float(exact.sum()) ** 2) / (n * n * (n + 2))
    assert abs(mean - float(H.trace()) / n) <= 4 * math.sqrt(var / probes)
    assert d.n_hvp == probes * 20
    # The Ritz nodes lie inside the spectrum, and the extreme ones reach its ends.
    assert float(d.nodes.max()) <= float(exact[0]) + 1e-9
    assert float(d.nodes.max()) == pytest.approx(float(exact[0]), rel=1e-6)
    assert float(d.nodes.min()) >= float(exact[-1]) - 1e-9


def test_slq_run_to_an_invariant_subspace_places_its_nodes_on_exact_eigenvalues(case):
    # The MLP's Hessian has repeated eigenvalues (a null space: softmax ignores a shift
    # of all logits), so one probe's Krylov space ends before n steps; each node is exact.
    model, batches, bn_mode, H, exact = case
    d = sharpness.spectral_density(model, F.cross_entropy, batches, n_probes=1,
                                   n_steps=H.shape[0], bn_mode=bn_mode)
    distance = (d.nodes[:, None] - exact[None, :]).abs().min(dim=1).values
    assert float(distance.max()) <= 1e-9 * float(exact.abs().max())
    assert float(d.nodes.max()) == pytest.approx(float(exact[0]), rel=1e-12)
    assert float(d.nodes.min()) == pytest.approx(float(exact[-1]), rel=1e-9)
