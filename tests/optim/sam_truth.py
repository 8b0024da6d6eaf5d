"""The truth the optimizer tests compare against, written out from docs/methods.md.

Nothing here imports samlab. The least-squares loss has a closed-form gradient, the
SAM-family ascents and the SGD update are written line by line from the formulas,
so a test that compares ``samlab.optim`` with them compares it with the paper.

Least squares on a linear layer ``f(x) = W x + b``::

    L(W, b) = 1/(2n) · Σ_i ‖W x_i + b − y_i‖²
    ∇_W L = Rᵀ X / n,   ∇_b L = Σ_i r_i / n,   R = X Wᵀ + b − Y
"""

from __future__ import annotations

import copy
import io

import torch
from torch import nn

GUARD = 1e-12  # docs/methods.md#the-table: every division by a norm is guarded by this epsilon
ADAPTIVE_ETA = 0.01  # docs/methods.md#asams-two-variants: ASAM's T = |w| + η_a with η_a = 0.01

# samlab takes the global norm ‖·‖ in float32 even for float64 parameters (see
# test_a_float64_model_keeps_float64_precision, which fails on it). That moves a float64
# step by ~1e-9; every error in a formula (a missing normalization, ρ applied twice, the
# wrong T) moves it by orders of magnitude more, so the formula tests use this tolerance.
FORMULA_TOL = dict(rtol=1e-6, atol=1e-7)


# -- the closed-form problem ---------------------------------------------------------------


def least_squares_data(n: int = 12, d_in: int = 3, d_out: int = 2, seed: int = 0):
    """``(X, Y)``: float64 inputs and targets, deterministic in ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=gen, dtype=torch.float64)
    Y = torch.randn(n, d_out, generator=gen, dtype=torch.float64)
    return X, Y


def linear_model(d_in: int = 3, d_out: int = 2, seed: int = 1) -> nn.Linear:
    """A float64 ``nn.Linear`` with weights of mixed magnitudes and signs."""
    torch.manual_seed(seed)
    lin = nn.Linear(d_in, d_out).double()
    with torch.no_grad():
        lin.weight.mul_(3.0)
        lin.bias.uniform_(-1.0, 1.0)
    return lin


def least_squares_loss(output: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``1/(2n) Σ_i ‖output_i − y_i‖²``: the loss every closure in these tests minimizes."""
    return 0.5 * ((output - Y) ** 2).sum(dim=1).mean()


def least_squares_grad(W, b, X, Y) -> list[torch.Tensor]:
    """``[∇_W L, ∇_b L]`` in closed form."""
    R = X @ W.T + b - Y
    n = X.shape[0]
    return [R.T @ X / n, R.sum(dim=0) / n]


# -- the SAM family, from the table in docs/methods.md
# -----------------------------------------------


def global_norm(tensors) -> torch.Tensor:
    """One L2 norm over all tensors together, in float64."""
    return torch.sqrt(sum((t.double() ** 2).sum() for t in tensors))


def ascent(method: str, w, g, rho, *, variant: str = "original", eta=ADAPTIVE_ETA):
    """``ε`` of docs/methods.md#the-table. ``rho`` is a number or one number per tensor (per-group
    ρ)."""
    rhos = list(rho) if isinstance(rho, (list, tuple)) else [rho] * len(w)
    if method in ("sam", "sam-renormalized"):
        n = global_norm(g)
        return [r * gi / (n + GUARD) for r, gi in zip(rhos, g)]
    if method in ("usam", "ssam"):
        return [r * gi for r, gi in zip(rhos, g)]
    if method in ("asam", "asam-renormalized"):
        if variant == "original":  # Kwon et al.: T = |w| + η_a on weights, 1 on biases
            T = [wi.abs() + eta if wi.ndim > 1 else torch.ones_like(wi) for wi in w]
        else:  # the widely copied variant: T = |w| on every tensor
            T = [wi.abs() for wi in w]
        n = global_norm([t * gi for t, gi in zip(T, g)])
        return [r * t * t * gi / (n + GUARD) for r, t, gi in zip(rhos, T, g)]
    raise ValueError(method)


def descent(method: str, g, g_asc):
    """The descent gradient ``d``: ``∇L(w_asc)``, times ``γ = ‖g‖/‖∇L(w_asc)‖`` for SSAM."""
    if method in ("ssam", "sam-renormalized", "asam-renormalized"):
        gamma = global_norm(g) / (global_norm(g_asc) + GUARD)
        return [gamma * d for d in g_asc]
    return list(g_asc)


def sam_descent_gradient(method, w, grad_fn, rho, **ascent_kw):
    """``(d, ε)`` for one step of ``method`` at ``w``; ``grad_fn(w)`` returns ``∇L_B(w)``."""
    g = grad_fn(w)
    eps = ascent(method, w, g, rho, **ascent_kw)
    g_asc = grad_fn([wi + ei for wi, ei in zip(w, eps)])
    return descent(method, g, g_asc), eps


class HandSGD:
    """torch's SGD written out: ``b ← μ·b + (d + λw)`` (first ``b = d + λw``), ``w ← w − η·b``."""

    def __init__(self, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buf: list[torch.Tensor] | None = None

    def step(self, w, d) -> list[torch.Tensor]:
        d = [di + self.weight_decay * wi for wi, di in zip(w, d)]
        if self.momentum:
            if self.buf is None:
                self.buf = [di.clone() for di in d]
            else:
                self.buf = [self.momentum * b + di for b, di in zip(self.buf, d)]
            d = self.buf
        return [wi - self.lr * di for wi, di in zip(w, d)]


class LeastSquares:
    """A float64 linear layer on least squares, with a closure that records every call."""

    def __init__(self, seed: int = 0, zero_residual: bool = False, model_seed: int = 1):
        self.model = linear_model(seed=model_seed)
        self.X, self.Y = least_squares_data(seed=seed)
        if zero_residual:
            with torch.no_grad():
                self.Y = self.model(self.X)
        self.calls: list[dict] = []

    def params(self):
        return list(self.model.parameters())

    def grad_fn(self, w):
        return least_squares_grad(w[0], w[1], self.X, self.Y)

    def closure_for(self, opt):
        def closure():
            opt.zero_grad()
            loss = least_squares_loss(self.model(self.X), self.Y)
            loss.backward()
            self.calls.append({"w": detached(self.model.parameters()), "loss": loss})
            return loss

        return closure


def assert_tensors_close(actual, expected, **tol):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **(tol or FORMULA_TOL))


def assert_tensors_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert torch.equal(a, e), (a - e).abs().max()


# -- models for the torch-side tests ----------------------------------------------------------


def detached(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def autograd_grad_fn(model: nn.Module, loss_of_output, *inputs):
    """``grad_fn(w)`` for a copy of ``model``: ``∇`` of ``loss_of_output(model_w(*inputs))``.

    The copy runs in the model's mode (BatchNorm in train mode uses batch statistics);
    its running statistics are its own, so the model under test is never touched.
    """
    replica = copy.deepcopy(model)
    names = [n for n, _ in replica.named_parameters()]

    def grad_fn(w):
        params = {n: wi.detach().clone().requires_grad_() for n, wi in zip(names, w)}
        out = torch.func.functional_call(replica, params, inputs)
        return list(torch.autograd.grad(loss_of_output(out), list(params.values())))

    return grad_fn


def checkpoint_bytes(prob: LeastSquares, opt) -> bytes:
    """The model and optimizer as ``torch.save`` writes them."""
    buffer = io.BytesIO()
    torch.save({"model": prob.model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    return buffer.getvalue()


def assert_resume_is_exact(build, checkpoint_at: int, n: int, after_load=None) -> None:
    """``n`` steps of ``build(params)`` on :class:`LeastSquares`, checkpointed before step
    ``checkpoint_at``; the checkpoint loaded (``weights_only=True``) into a fresh problem
    of another seed and a fresh optimizer (``after_load(optimizer)`` may look at it), whose
    every later step must equal the uninterrupted run's bit for bit."""
    prob = LeastSquares()
    opt = build(prob.params())
    uninterrupted = []
    for step in range(n):
        if step == checkpoint_at:
            checkpoint = checkpoint_bytes(prob, opt)
        opt.step(prob.closure_for(opt))
        uninterrupted.append(detached(prob.params()))

    resumed = LeastSquares(model_seed=99)
    opt2 = build(resumed.params())
    state = torch.load(io.BytesIO(checkpoint), weights_only=True)
    resumed.model.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    if after_load is not None:
        after_load(opt2)
    for step in range(checkpoint_at, n):
        opt2.step(resumed.closure_for(opt2))
        assert_tensors_equal(detached(resumed.params()), uninterrupted[step])
