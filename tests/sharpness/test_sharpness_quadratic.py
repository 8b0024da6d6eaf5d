"""On ``L(w) = ½ wᵀ A w`` the Hessian is ``A``: every method must be exact there."""

from __future__ import annotations

import pytest
import torch
from sharpness_truth import Quadratic, quadratic_loss, quadratic_with_spectrum

from samlab import sharpness

SPECTRUM = [9.0, 4.0, 2.5, 1.0, 0.5, -0.3, -1.5]
BATCHES = [(torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3)),
           (torch.zeros(5, 1, dtype=torch.float64), torch.zeros(5))]


def measure(verb, model, **options):
    return verb(model, quadratic_loss, BATCHES, **options)


@pytest.mark.parametrize("mode", ["double_backward", "forward_over_reverse"])
def test_hvp_of_a_quadratic_is_A_times_v(mode):
    model, A = quadratic_with_spectrum(SPECTRUM)
    v = torch.arange(1.0, 8.0, dtype=torch.float64)
    torch.testing.assert_close(measure(sharpness.hvp, model, v=v, mode=mode), A @ v,
                               rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenvalues_of_a_quadratic_are_exact(method):
    model, _ = quadratic_with_spectrum(SPECTRUM)
    result = measure(sharpness.top_eigenvalues, model, k=3, method=method, tol=1e-10,
                     max_iter=1000)
    assert result.converged
    torch.testing.assert_close(result.eigenvalues, torch.tensor([9.0, 4.0, 2.5],
                                                                dtype=torch.float64),
                               rtol=1e-9, atol=0)


def test_lanczos_terminates_after_as_many_products_as_dimensions():
    model, _ = quadratic_with_spectrum(SPECTRUM)
    result = measure(sharpness.top_eigenvalues, model, k=7, tol=1e-12)
    assert result.converged and result.n_hvp == 7
    torch.testing.assert_close(result.eigenvalues, torch.tensor(SPECTRUM, dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_lanczos_finds_a_repeated_eigenvalue_by_restarting_at_the_invariant_subspace():
    model, _ = quadratic_with_spectrum([5.0, 5.0, 3.0, 1.0, 1.0, 0.5])
    result = measure(sharpness.top_eigenvalues, model, k=2, tol=1e-10)
    assert result.converged
    torch.testing.assert_close(result.eigenvalues, torch.tensor([5.0, 5.0], dtype=torch.float64),
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_largest_is_algebraic_by_default_and_in_magnitude_with_which_LM(method):
    model, _ = quadratic_with_spectrum([2.0, 1.0, 0.5, -10.0, -4.0])
    la = measure(sharpness.top_eigenvalues, model, k=2, method=method, tol=1e-8,
                 max_iter=2000)
    lm = measure(sharpness.top_eigenvalues, model, k=2, method=method, tol=1e-8,
                 max_iter=2000, which="LM")
    assert la.converged and lm.converged
    torch.testing.assert_close(la.eigenvalues, torch.tensor([2.0, 1.0], dtype=torch.float64),
                               rtol=1e-8, atol=0)
    torch.testing.assert_close(lm.eigenvalues, torch.tensor([-10.0, -4.0], dtype=torch.float64),
                               rtol=1e-8, atol=0)


def test_power_iteration_finds_lambda_max_of_a_negative_definite_hessian():
    model, _ = quadratic_with_spectrum([-1.0, -2.0, -6.0])
    result = measure(sharpness.top_eigenvalues, model, method="power", tol=1e-10,
                     max_iter=2000)
    assert result.converged
    assert result.lambda_max == pytest.approx(-1.0, rel=1e-9)


def test_hutchinson_is_exact_with_zero_error_on_a_diagonal_hessian():
    # zᵀ D z = Σ d_i z_i² = tr(D) for every Rademacher z.
    d = torch.tensor(SPECTRUM, dtype=torch.float64)
    model = Quadratic(torch.diag(d), torch.ones(7, dtype=torch.float64))
    result = measure(sharpness.hessian_trace, model, n_probes=5, seed=2)
    assert result.estimate == pytest.approx(float(d.sum()), abs=1e-12)
    assert result.stderr == pytest.approx(0.0, abs=1e-12)


def test_slq_nodes_are_the_exact_eigenvalues_and_weights_the_probe_components():
    model, _ = quadratic_with_spectrum(SPECTRUM)
    d = measure(sharpness.spectral_density, model, n_probes=3, n_steps=7, seed=5)
    for probe in range(3):
        nodes = d.nodes[7 * probe: 7 * (probe + 1)]
        torch.testing.assert_close(nodes.sort(descending=True).values,
                                   torch.tensor(SPECTRUM, dtype=torch.float64),
                                   rtol=0, atol=1e-12)
    assert d.n_hvp == 21
    assert float(d.nodes @ d.weights) == pytest.approx(
        float(torch.trapezoid(d.grid * d.density, d.grid)), abs=1e-6)


def test_slq_stops_a_probe_at_an_invariant_subspace_instead_of_inventing_nodes():
    # Three distinct eigenvalues: the Krylov space of any probe has dimension three.
    model, _ = quadratic_with_spectrum([3.0, 3.0, 3.0, 1.0, 1.0, -2.0])
    d = measure(sharpness.spectral_density, model, n_probes=2, n_steps=6, seed=0)
    assert d.nodes.numel() == 6 and d.n_hvp == 6
    assert sorted(set(round(float(x), 9) for x in d.nodes)) == [-2.0, 1.0, 3.0]
    assert float(d.weights.sum()) == pytest.approx(1.0, abs=1e-12)
