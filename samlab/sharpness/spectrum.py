"""The trace (Hutchinson) and the spectral density (stochastic Lanczos quadrature) of ``H``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import validate
from .eigen import lanczos
from .hessian import (
    Batch,
    BNMode,
    HessianOperator,
    HVPMode,
    LossFn,
    borrowed,
    prepare,
    random_vector,
)


@dataclass
class TraceResult:
    """Hutchinson's estimate of ``tr(H)``, its standard error and the per-probe values."""

    estimate: float
    stderr: float
    n_probes: int
    n_hvp: int
    samples: torch.Tensor = field(repr=False)


@dataclass
class DensityResult:
    """The smoothed spectral density on ``grid`` (integrates to 1 there) and its raw parts.

    ``nodes`` and ``weights`` are the Ritz values and weights of every probe,
    concatenated; the weights sum to 1. ``density`` is their mixture of
    Gaussians of width ``sigma``.
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float
    n_probes: int
    n_hvp: int


def hessian_trace(model: nn.Module, loss_fn: LossFn, batches: Sequence[Batch],
                  n_probes: int = 30, seed: int = 0, *,
                  params: Sequence[nn.Parameter] | None = None, bn_mode: BNMode = "eval",
                  mode: HVPMode = "auto", compile: bool = False) -> TraceResult:
    """Hutchinson's estimate ``tr(H) ≈ (1/P) Σ_p z_pᵀ H z_p``, ``z_p`` Rademacher (±1).

    Unbiased, since ``E[z zᵀ] = I`` (Hutchinson 1989); the standard error is the
    sample standard deviation of ``z_pᵀ H z_p`` over ``√P``. One product per probe.
    """
    batches, params = prepare(model, loss_fn, batches, params, bn_mode, mode, compile)
    n_probes = validate.integer("n_probes", n_probes, low=2)
    seed = validate.integer("seed", seed, low=0)
    gen = torch.Generator().manual_seed(seed)
    with borrowed(model, params, bn_mode):
        op = HessianOperator(model, loss_fn, batches, params, mode, compile)
        samples = []
        for _ in range(n_probes):
            z = random_vector(op.n, gen, op, rademacher=True)
            samples.append(float(torch.dot(z, op(z))))
    samples_t = torch.tensor(samples, dtype=torch.float64)
    stderr = float(samples_t.std()) / math.sqrt(n_probes)
    return TraceResult(float(samples_t.mean()), stderr, n_probes, op.n_hvp, samples_t)


def spectral_density(model: nn.Module, loss_fn: LossFn, batches: Sequence[Batch],
                     n_probes: int = 4, n_steps: int = 32, sigma: float | None = None,
                     n_grid: int = 1000, seed: int = 0, *,
                     params: Sequence[nn.Parameter] | None = None, bn_mode: BNMode = "eval",
                     mode: HVPMode = "auto", compile: bool = False) -> DensityResult:
    """The eigenvalue density ``φ(t) = (1/n) Σ_i δ(t − λ_i)`` by stochastic Lanczos quadrature.

    For each of ``P`` random unit probes ``v``, ``n_steps`` Lanczos steps give
    ``T = S diag(θ) Sᵀ`` and ``vᵀ f(H) v ≈ Σ_i s_{1i}² f(θ_i)``; averaging over
    probes, ``φ ≈ (1/P) Σ_p Σ_i s_{1i}² g_σ(t − θ_i)`` with a Gaussian ``g_σ``
    (Ghorbani, Krishnan & Xiao, ICML 2019). ``sigma`` defaults to 1% of the spread
    of the nodes; ``grid`` spans the nodes ± 5σ and ``density`` integrates to 1 on it
    (trapezoid rule). Its mean is ``(1/P) Σ_p v_pᵀ H v_p``, an estimate of ``tr(H)/n``.
    ``n_probes × n_steps`` Hessian-vector products.
    """
    batches, params = prepare(model, loss_fn, batches, params, bn_mode, mode, compile)
    n_probes = validate.integer("n_probes", n_probes, low=1)
    n_steps = validate.integer("n_steps", n_steps, low=1)
    n_grid = validate.integer("n_grid", n_grid, low=2)
    seed = validate.integer("seed", seed, low=0)
    if sigma is not None:
        sigma = validate.number("sigma", sigma, low=0.0, strict_low=True)
    gen = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    with borrowed(model, params, bn_mode):
        op = HessianOperator(model, loss_fn, batches, params, mode, compile)
        for _ in range(n_probes):
            T, _, _, _, _ = lanczos(op, random_vector(op.n, gen, op), min(n_steps, op.n))
            theta, S = torch.linalg.eigh(T)
            nodes.append(theta)
            weights.append(S[0] ** 2 / n_probes)
    nodes_t, weights_t = torch.cat(nodes), torch.cat(weights)
    low, high = float(nodes_t.min()), float(nodes_t.max())
    if sigma is None:
        sigma = 0.01 * (high - low) if high > low else 0.01 * max(abs(high), 1.0)
    grid = torch.linspace(low - 5 * sigma, high + 5 * sigma, n_grid, dtype=torch.float64)
    kernel = torch.exp(-0.5 * ((grid[:, None] - nodes_t[None, :]) / sigma) ** 2)
    density = kernel @ weights_t / (sigma * math.sqrt(2 * math.pi))
    density /= torch.trapezoid(density, grid)
    return DensityResult(grid, density, nodes_t, weights_t, sigma, n_probes, op.n_hvp)
