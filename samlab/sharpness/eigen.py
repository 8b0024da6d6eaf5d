"""The top eigenvalues of the loss Hessian: Lanczos and power iteration, from products only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from .. import validate
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

Method = Literal["lanczos", "power"]
Which = Literal["LA", "LM"]
METHODS = ("lanczos", "power")
WHICH = ("LA", "LM")


@dataclass
class EigenResult:
    """The top ``k`` eigenvalues of ``H``, largest first, and what they cost.

    ``residuals[i]`` bounds ``‖H y_i − λ_i y_i‖ / |λ_i|`` for the returned
    (Ritz) vector ``y_i``; ``converged`` says every one is ``≤ tol``. ``history``
    is the estimate after each Hessian-vector product (Lanczos: the top Ritz
    value; power iteration: the Rayleigh quotient of the eigenvalue in progress).
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    n_hvp: int
    converged: bool
    tol: float
    method: str
    which: str = "LA"
    residuals: torch.Tensor | None = None
    history: list[float] = field(default_factory=list, repr=False)
    #: Whether the products ran through ``torch.compile`` (False where compiling failed:
    #: then ``compile_error`` says why).
    compiled: bool = False
    compile_error: str | None = None

    @property
    def lambda_max(self) -> float:
        """The first eigenvalue: ``λ_max`` for ``which="LA"``."""
        return float(self.eigenvalues[0])


def _top(theta: torch.Tensor, k: int, which: str) -> torch.Tensor:
    """Indices of the ``k`` largest of ``theta``: algebraically ("LA") or in magnitude ("LM")."""
    key = theta if which == "LA" else theta.abs()
    return torch.argsort(key, descending=True)[:k]


def _tridiagonal(alphas: list[float], betas: list[float]) -> torch.Tensor:
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    return T


def _ritz_converged(T: torch.Tensor, beta: float, k: int, which: str, tol: float) -> bool:
    """``|β_m s_{m,i}| ≤ tol·|θ_i|`` for the top ``k`` Ritz pairs of ``T``."""
    theta, S = torch.linalg.eigh(T)
    top = _top(theta, k, which)
    return bool(((beta * S[-1, top]).abs() <= tol * theta[top].abs()).all())


def lanczos(op: HessianOperator, q: torch.Tensor, steps: int, *, k: int = 1, which: str = "LA",
             tol: float = 0.0, restart: torch.Generator | None = None):
    """Lanczos with full reorthogonalization: ``H Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ``.

    Stops early once the top ``k`` Ritz pairs have ``|β_m s_{m,i}| ≤ tol·|θ_i|``
    (never with ``tol=0``). At an invariant subspace (``β ≈ 0``) it restarts from a
    random vector orthogonal to ``Q`` when ``restart`` is a generator, so that a
    repeated eigenvalue is found again, and stops otherwise. After a restart, the new
    block's own top Ritz value must have converged too: a larger eigenvalue hidden
    from the first block shows up there first.

    Returns ``T`` (float64), the basis ``Q`` (rows), the last ``β``, whether it
    converged and the top Ritz value after every step.
    """
    Q = torch.empty(steps, op.n, dtype=op.dtype, device=op.device)
    alphas: list[float] = []
    betas: list[float] = []
    history: list[float] = []
    beta, scale, block, converged = 0.0, 0.0, 0, False
    eps = torch.finfo(op.dtype).eps
    q = q / q.norm()
    for j in range(steps):
        Q[j] = q
        w = op(q)
        alpha = float(torch.dot(w, q))
        w.sub_(q, alpha=alpha)
        if j > block:
            w.sub_(Q[j - 1], alpha=beta)
        # Full reorthogonalization, twice ("twice is enough", Parlett): without it the
        # basis loses orthogonality as Ritz values converge and ghost copies appear.
        basis = Q[: j + 1]
        for _ in range(2):
            w.sub_(basis.T @ (basis @ w))
        beta = float(w.norm())
        alphas.append(alpha)
        T = _tridiagonal(alphas, betas)
        theta = torch.linalg.eigvalsh(T)
        history.append(float(theta[_top(theta, 1, which)[0]]))
        scale = max(scale, float(theta.abs().max()))
        if j + 1 == op.n:  # Q spans the whole space: T is H in the basis Q
            converged = True
            break
        invariant = beta <= 100 * eps * scale
        if invariant and restart is not None and j + 1 < steps:
            q = random_vector(op.n, restart, op)
            for _ in range(2):
                q.sub_(basis.T @ (basis @ q))
            q.div_(q.norm())
            beta, block = 0.0, j + 1
            betas.append(0.0)
            continue
        if tol > 0 and j + 1 >= k:
            converged = _ritz_converged(T, beta, k, which, tol) and (
                block == 0 or _ritz_converged(T[block:, block:], beta, 1, which, tol))
        if converged or invariant or j + 1 == steps:
            break
        q = w / beta
        betas.append(beta)
    m = len(alphas)
    return T, Q[:m], beta, converged, history


def _lanczos_eigen(op, k, which, tol, max_iter, gen, want_vectors):
    T, Q, beta, converged, history = lanczos(op, random_vector(op.n, gen, op), min(max_iter, op.n),
                                              k=k, which=which, tol=tol, restart=gen)
    theta, S = torch.linalg.eigh(T)
    top = _top(theta, k, which)
    eigenvalues = theta[top]
    residuals = (beta * S[-1, top]).abs() / eigenvalues.abs().clamp_min(1e-300)
    if Q.shape[0] == op.n:
        residuals.zero_()
    vectors = None
    if want_vectors:
        vectors = S[:, top].T.to(op.dtype).to(op.device) @ Q
        vectors /= vectors.norm(dim=1, keepdim=True)
    return eigenvalues, vectors, residuals, converged and len(top) == k, history


def _power_eigen(op, k, which, tol, max_iter, gen, want_vectors):
    found: list[torch.Tensor] = []
    values: list[float] = []
    residuals: list[float] = []
    history: list[float] = []
    converged = True

    def deflate(u: torch.Tensor) -> torch.Tensor:
        for q in found:
            u.sub_(q, alpha=float(torch.dot(q, u)))
        return u

    def start() -> torch.Tensor:
        u = deflate(random_vector(op.n, gen, op))
        return u / u.norm()

    for _ in range(k):
        v, shift, theta, rel = start(), 0.0, 0.0, math.inf
        for _ in range(max_iter):
            w = deflate(op(v))
            theta = float(torch.dot(v, w))
            rel = float((w - theta * v).norm()) / max(abs(theta), 1e-300)
            history.append(theta)
            if rel <= tol:
                if which == "LA" and theta < 0 and shift == 0.0:
                    # Power iteration finds the largest |λ|. A negative one bounds the
                    # rest of the spectrum from below, so H − θI has λ_max − θ as its
                    # largest magnitude: iterate on it from a fresh start.
                    shift, v = theta, start()
                    continue
                break
            w.sub_(v, alpha=shift)
            norm = float(w.norm())
            if norm == 0.0:  # v lies in the null space of H − shift·I: an exact eigenvector
                rel = 0.0
                break
            v = w / norm
        converged = converged and rel <= tol
        found.append(v)
        values.append(theta)
        residuals.append(rel)
    eigenvalues = torch.tensor(values, dtype=torch.float64)
    order = _top(eigenvalues, k, which)
    vectors = torch.stack(found)[order.to(op.device)] if want_vectors else None
    return (eigenvalues[order], vectors, torch.tensor(residuals, dtype=torch.float64)[order],
            converged, history)


def top_eigenvalues(
    model: nn.Module, loss_fn: LossFn, batches: Sequence[Batch], k: int = 1,
    method: Method = "lanczos", tol: float = 1e-3, max_iter: int = 100, seed: int = 0, *,
    which: Which = "LA", eigenvectors: bool = False,
    params: Sequence[nn.Parameter] | None = None, bn_mode: BNMode = "eval",
    mode: HVPMode = "auto", compile: bool = False,
) -> EigenResult:
    """The ``k`` largest eigenvalues of the loss Hessian ``H``, largest first.

    "Largest" is algebraic (``which="LA"``: ``λ_max`` first, the sharpness of docs/sharpness.md);
    ``which="LM"`` orders by magnitude, which power iteration converges to on its own
    and which differs when the Hessian of a non-convex loss has a large negative
    eigenvalue. Converged when every returned ``(λ_i, y_i)`` has
    ``‖H y_i − λ_i y_i‖ ≤ tol·|λ_i|`` (so ``λ_i`` is within ``tol·|λ_i|`` of an
    eigenvalue of ``H``).

    - ``"lanczos"``: Lanczos with full reorthogonalization, Ritz values of the
      tridiagonal ``T_m = Q_mᵀ H Q_m`` in float64; the residual of a Ritz pair is
      ``|β_m s_{m,i}|``. At most ``max_iter`` Hessian-vector products in all.
    - ``"power"``: ``v ← H v / ‖H v‖`` with deflation against the eigenvectors already
      found (as PyHessian), at most ``max_iter`` products per eigenvalue, and a shift
      by a negative eigenvalue when ``which="LA"`` and it dominates.

    Lanczos needs far fewer products than power iteration for the same ``tol``; it keeps
    its basis, up to ``max_iter`` vectors of the parameters' size, in memory. The random
    start is seeded (``seed``) on the CPU, so a seed gives the same start on every device.
    ``eigenvectors=True`` returns them as the rows of a ``(k, n)`` tensor.
    """
    batches, params = prepare(model, loss_fn, batches, params, bn_mode, mode, compile)
    n = sum(p.numel() for p in params)
    k = validate.integer("k", k, low=1, high=n)
    validate.choice("method", method, METHODS)
    validate.choice("which", which, WHICH)
    tol = validate.number("tol", tol, low=0.0, strict_low=True)
    max_iter = validate.integer("max_iter", max_iter, low=k if method == "lanczos" else 1)
    seed = validate.integer("seed", seed, low=0)
    gen = torch.Generator().manual_seed(seed)
    solve = _lanczos_eigen if method == "lanczos" else _power_eigen
    with borrowed(model, params, bn_mode):
        op = HessianOperator(model, loss_fn, batches, params, mode, compile)
        values, vectors, residuals, converged, history = solve(
            op, k, which, tol, max_iter, gen, eigenvectors)
    return EigenResult(values, vectors, op.n_hvp, converged, tol, method, which, residuals,
                       history, op.compiled, op.compile_error)
