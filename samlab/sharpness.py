"""Sharpness of a network's loss (SPEC §3): Hessian-vector products, top eigenvalues,
trace and spectral density, all on a fixed subset of training data.

One verb per measurement, each from Hessian-vector products only (the Hessian is
never formed):

==========================  =====================================================
:func:`hvp`                 ``H v`` by automatic differentiation
:func:`top_eigenvalues`     ``λ_1 ≥ … ≥ λ_k`` by Lanczos or power iteration
:func:`hessian_trace`       ``tr(H)`` by Hutchinson's estimator, with its standard error
:func:`spectral_density`    the eigenvalue density by stochastic Lanczos quadrature
:func:`fixed_subset`        the seeded subset every measurement should use
==========================  =====================================================

Conventions shared by every function:

- **The loss** is the mean over all examples of ``batches``, a list of
  ``(inputs, targets)`` pairs already on the model's device:
  ``L(w) = Σ_b (n_b / N) · loss_fn(model(x_b), y_b)``, where ``loss_fn`` returns
  the mean loss of a batch (e.g. ``torch.nn.functional.cross_entropy``).
- **The parameters** are those with ``requires_grad=True`` at call time, in
  ``model.parameters()`` order, or the list passed as ``params=``. A vector is a
  flat tensor over them: ``torch.cat([p.reshape(-1) for p in params])``.
- **BatchNorm** (``bn_mode``): ``"eval"`` (default) normalizes with the running
  statistics, so ``L`` is a fixed function of ``w``; ``"train"`` normalizes each
  batch with its own statistics, as the late-phase paper's code measures, and
  never updates the running statistics. Dropout is always off: a random loss has
  no Hessian to measure.
- **The model is borrowed, not changed**: weights are untouched, and every
  module's ``training`` flag, every parameter's ``requires_grad`` and ``.grad``,
  and every buffer are exactly as before the call, also when the call raises.
- **Memory**: one batch's autograd graph at a time.
- **Speed**: a product costs a few gradients over the subset. ``mode="auto"`` is
  double backward; ``compile=True`` runs forward-over-reverse through
  ``torch.compile``, about half the cost on ResNet-20 after a compilation of a
  minute or so per model, mode and batch shape (worth it when sharpness is measured
  every few epochs). On a CPU, a channels_last model and inputs make every
  convolution, hence every product, faster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, jvp
from torch.nn.modules.batchnorm import _BatchNorm

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BNMode = Literal["eval", "train"]
HVPMode = Literal["auto", "double_backward", "forward_over_reverse"]
Method = Literal["lanczos", "power"]
Which = Literal["LA", "LM"]

BN_MODES = ("eval", "train")
HVP_MODES = ("auto", "double_backward", "forward_over_reverse")
METHODS = ("lanczos", "power")
WHICH = ("LA", "LM")

#: What ``mode="auto"`` uses without and with ``compile=True``, from
#: ``benchmarks/bench_sharpness.py``. Eager on ResNet-20 (CPU) the two ways cost about
#: the same, 5 gradients (forward-over-reverse a little less with channels_last weights,
#: a little more with contiguous ones); on a small model torch.func's per-call overhead
#: makes forward-over-reverse several times slower, and double backward works with any
#: module autograd can differentiate twice. Compiled, forward-over-reverse costs about
#: 2.6 gradients, and is the only way that compiles.
AUTO_MODE = {False: "double_backward", True: "forward_over_reverse"}


# -- results ---------------------------------------------------------------------------------


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

    @property
    def lambda_max(self) -> float:
        """The first eigenvalue: ``λ_max`` for ``which="LA"``."""
        return float(self.eigenvalues[0])


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


# -- validation ------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value, lower: int, upper: int | None = None) -> int:
    if not _is_int(value) or value < lower or (upper is not None and value > upper):
        bound = f"an integer in {lower}..{upper}" if upper is not None else \
            f"an integer >= {lower}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _check_batches(batches) -> list[Batch]:
    if not isinstance(batches, (list, tuple)) or len(batches) == 0:
        got = "an empty list" if isinstance(batches, (list, tuple)) else type(batches).__name__
        raise ValueError(f"batches must be a non-empty list of (inputs, targets) pairs, got {got}")
    for i, batch in enumerate(batches):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2
                and all(isinstance(t, torch.Tensor) for t in batch)):
            raise ValueError(f"batches[{i}] must be a pair (inputs, targets) of tensors, "
                             f"got {type(batch).__name__}")
        x, y = batch
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"batches[{i}] must hold at least one example, got inputs of "
                             f"shape {tuple(x.shape)}")
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"batches[{i}] must have as many targets as inputs, got "
                             f"{tuple(y.shape)} targets for {x.shape[0]} inputs")
    return list(batches)


def _check_params(model: nn.Module, params) -> list[nn.Parameter]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    own = list(model.parameters())
    if params is None:
        chosen = [p for p in own if p.requires_grad]
        if not chosen:
            raise ValueError("model has no parameters with requires_grad=True; pass params=")
    else:
        chosen = list(params)
        if not chosen:
            raise ValueError("params must be a non-empty list of the model's parameters, got []")
        ids = {id(p) for p in own}
        for i, p in enumerate(chosen):
            if id(p) not in ids:
                raise ValueError(f"params[{i}] is not a parameter of model")
        if len({id(p) for p in chosen}) != len(chosen):
            raise ValueError("params must not repeat a parameter")
    kinds = {(p.dtype, p.device) for p in chosen}
    if len(kinds) != 1:
        raise ValueError("parameters must share one dtype and device, got "
                         f"{sorted(map(str, kinds))}")
    return chosen


# -- borrowing the model ---------------------------------------------------------------------


@contextmanager
def _borrowed(model: nn.Module, params: Sequence[nn.Parameter], bn_mode: str) -> Iterator[None]:
    """Put ``model`` in measuring state; give every flag and buffer back on exit.

    ``"train"`` BatchNorm runs with ``track_running_stats=False``: batch statistics,
    and no running-statistics update. Buffers are restored as well, for modules that
    update state of their own.
    """
    training = [(m, m.training) for m in model.modules()]
    tracking = [(m, m.track_running_stats) for m in model.modules() if isinstance(m, _BatchNorm)]
    requires = [(p, p.requires_grad) for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    chosen = {id(p) for p in params}
    try:
        model.eval()
        if bn_mode == "train":
            for m, _ in tracking:
                m.train()
                m.track_running_stats = False
        for p, _ in requires:
            p.requires_grad_(id(p) in chosen)
        with torch.enable_grad():
            yield
    finally:
        for m, flag in training:
            m.training = flag
        for m, flag in tracking:
            m.track_running_stats = flag
        for p, flag in requires:
            p.requires_grad_(flag)
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


class _Hessian:
    """``v ↦ H v`` for the mean loss over ``batches``; use it while the model is borrowed.

    ``H v = Σ_b (n_b/N) H_b v``: the product of each batch's mean loss, weighted by its
    share of the examples (linear in the loss, so the weight is applied afterwards).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: list[Batch],
                 params: list[nn.Parameter], mode: str, compile: bool = False):
        self.model, self.loss_fn, self.params = model, loss_fn, params
        total = sum(x.shape[0] for x, _ in batches)
        self.batches = [(x, y, x.shape[0] / total) for x, y in batches]
        self.mode = AUTO_MODE[compile] if mode == "auto" else mode
        self.sizes = [p.numel() for p in params]
        self.n = sum(self.sizes)
        self.dtype, self.device = params[0].dtype, params[0].device
        self.n_hvp = 0
        if self.mode == "forward_over_reverse":
            names = {id(p): name for name, p in model.named_parameters()}
            self.names = [names[id(p)] for p in params]
            self.product = _compiled_product() if compile else _forward_over_reverse

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        tangents = [_shaped_like(t, p) for t, p in zip(v.split(self.sizes), self.params)]
        out = torch.zeros(self.n, dtype=self.dtype, device=self.device)
        for x, y, weight in self.batches:
            # One batch per call, so that its graph is freed before the next one is built.
            hv = self._batch(x, y, tangents)
            out.add_(torch.cat([h.reshape(-1) for h in hv]), alpha=weight)
        self.n_hvp += 1
        return out

    def _batch(self, x, y, tangents) -> list[torch.Tensor]:
        if self.mode == "double_backward":
            return _double_backward(self.model, self.loss_fn, self.params, tangents, x, y)
        primals = {n: p.detach() for n, p in zip(self.names, self.params)}
        hv = self.product(self.model, self.loss_fn, primals, dict(zip(self.names, tangents)),
                          x, y)
        return [hv[n] for n in self.names]


def _scalar(loss) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar (the mean loss), got {shape}")
    return loss


def _double_backward(model, loss_fn, params, tangents, x, y) -> list[torch.Tensor]:
    """``H v = ∇_w (∇_w L · v)``: differentiate the gradient's graph once more."""
    loss = _scalar(loss_fn(model(x), y))
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    # A gradient that does not depend on w (loss linear in that tensor) adds nothing.
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    hv = [torch.zeros_like(p) for p in params]
    if live:
        second = torch.autograd.grad([grads[i] for i in live], params,
                                     grad_outputs=[tangents[i] for i in live], allow_unused=True)
        hv = [h if h is not None else z for h, z in zip(second, hv)]
    return hv


def _forward_over_reverse(model, loss_fn, primals, tangents, x, y) -> dict[str, torch.Tensor]:
    """``H v = d/dt ∇L(w + t v)`` at ``t = 0``: the JVP of the gradient (Pearlmutter 1994)."""
    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return _scalar(loss_fn(functional_call(model, p, (x,)), y))

    return jvp(grad(loss), (primals,), (tangents,))[1]


_compiled = None


def _compiled_product():
    """``_forward_over_reverse`` through ``torch.compile``, built once per process.

    Compiling fuses the many elementwise operations of the tangent passes around the
    convolutions (ResNet-20 on this CPU: about 2.6 instead of 5 gradients per product),
    at the price of one compilation per model, mode and batch shape (a minute or so;
    past torch._dynamo's recompile limit, 8, it runs eagerly). Give the subset equal
    batches (``n`` a multiple of ``batch_size``) to compile once.
    """
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(_forward_over_reverse, dynamic=False)
    return _compiled


def _shaped_like(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``t`` viewed in the shape of ``p``, and in its memory format: a channels_last weight
    with a contiguous tangent would send every later operation down a slow strided path."""
    t = t.view(p.shape)
    return t if t.stride() == p.stride() else torch.empty_like(p).copy_(t)


def _setup(model, loss_fn, batches, params, bn_mode, mode, compile):
    batches = _check_batches(batches)
    params = _check_params(model, params)
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    _check_choice("bn_mode", bn_mode, BN_MODES)
    _check_choice("mode", mode, HVP_MODES)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if compile and mode == "double_backward":
        raise ValueError("compile=True needs mode='forward_over_reverse' or 'auto' "
                         "(torch.compile does not differentiate twice), got 'double_backward'")
    return batches, params


def _random(n: int, gen: torch.Generator, op: _Hessian, rademacher: bool = False) -> torch.Tensor:
    """Seeded on the CPU, so a seed gives the same vector on every device."""
    if rademacher:
        v = torch.randint(0, 2, (n,), generator=gen).to(op.dtype).mul_(2).sub_(1)
    else:
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(op.dtype)
    return v.to(op.device)


# -- Hessian-vector product ------------------------------------------------------------------


def hvp(model: nn.Module, loss_fn: LossFn, batches: Sequence[Batch], v: torch.Tensor, *,
        params: Sequence[nn.Parameter] | None = None, bn_mode: BNMode = "eval",
        mode: HVPMode = "auto", compile: bool = False) -> torch.Tensor:
    """The Hessian-vector product ``H v`` of the mean loss over ``batches``.

    ``H v = ∇_w (∇_w L(w) · v)``, by automatic differentiation (Pearlmutter 1994):
    ``mode="double_backward"`` differentiates the gradient's graph again;
    ``"forward_over_reverse"`` takes the JVP of the gradient with ``torch.func``
    (through ``torch.compile`` with ``compile=True``); ``"auto"`` picks per
    :data:`AUTO_MODE`. ``v`` and the result are flat vectors over the parameters
    (see the module docstring).
    """
    batches, params = _setup(model, loss_fn, batches, params, bn_mode, mode, compile)
    n = sum(p.numel() for p in params)
    if not isinstance(v, torch.Tensor) or v.shape != (n,):
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"v must be a flat tensor of the {n} parameter entries, got {shape}")
    with _borrowed(model, params, bn_mode):
        op = _Hessian(model, loss_fn, batches, params, mode, compile)
        return op(v.detach().to(dtype=op.dtype, device=op.device))


# -- top eigenvalues -------------------------------------------------------------------------


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


def _lanczos(op: _Hessian, q: torch.Tensor, steps: int, *, k: int = 1, which: str = "LA",
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
            q = _random(op.n, restart, op)
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
    T, Q, beta, converged, history = _lanczos(op, _random(op.n, gen, op), min(max_iter, op.n),
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
        u = deflate(_random(op.n, gen, op))
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

    "Largest" is algebraic (``which="LA"``: ``λ_max`` first, the sharpness of SPEC §3);
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
    batches, params = _setup(model, loss_fn, batches, params, bn_mode, mode, compile)
    n = sum(p.numel() for p in params)
    _check_int("k", k, 1, n)
    _check_choice("method", method, METHODS)
    _check_choice("which", which, WHICH)
    tol = _check_positive("tol", tol)
    _check_int("max_iter", max_iter, k if method == "lanczos" else 1)
    _check_int("seed", seed, 0)
    gen = torch.Generator().manual_seed(seed)
    solve = _lanczos_eigen if method == "lanczos" else _power_eigen
    with _borrowed(model, params, bn_mode):
        op = _Hessian(model, loss_fn, batches, params, mode, compile)
        values, vectors, residuals, converged, history = solve(
            op, k, which, tol, max_iter, gen, eigenvectors)
    return EigenResult(values, vectors, op.n_hvp, converged, tol, method, which, residuals,
                       history)


# -- trace -----------------------------------------------------------------------------------


def hessian_trace(model: nn.Module, loss_fn: LossFn, batches: Sequence[Batch],
                  n_probes: int = 30, seed: int = 0, *,
                  params: Sequence[nn.Parameter] | None = None, bn_mode: BNMode = "eval",
                  mode: HVPMode = "auto", compile: bool = False) -> TraceResult:
    """Hutchinson's estimate ``tr(H) ≈ (1/P) Σ_p z_pᵀ H z_p``, ``z_p`` Rademacher (±1).

    Unbiased, since ``E[z zᵀ] = I`` (Hutchinson 1989); the standard error is the
    sample standard deviation of ``z_pᵀ H z_p`` over ``√P``. One product per probe.
    """
    batches, params = _setup(model, loss_fn, batches, params, bn_mode, mode, compile)
    _check_int("n_probes", n_probes, 2)
    _check_int("seed", seed, 0)
    gen = torch.Generator().manual_seed(seed)
    with _borrowed(model, params, bn_mode):
        op = _Hessian(model, loss_fn, batches, params, mode, compile)
        samples = []
        for _ in range(n_probes):
            z = _random(op.n, gen, op, rademacher=True)
            samples.append(float(torch.dot(z, op(z))))
    samples_t = torch.tensor(samples, dtype=torch.float64)
    stderr = float(samples_t.std()) / math.sqrt(n_probes)
    return TraceResult(float(samples_t.mean()), stderr, n_probes, op.n_hvp, samples_t)


# -- spectral density ------------------------------------------------------------------------


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
    batches, params = _setup(model, loss_fn, batches, params, bn_mode, mode, compile)
    _check_int("n_probes", n_probes, 1)
    _check_int("n_steps", n_steps, 1)
    _check_int("n_grid", n_grid, 2)
    _check_int("seed", seed, 0)
    if sigma is not None:
        sigma = _check_positive("sigma", sigma)
    gen = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    with _borrowed(model, params, bn_mode):
        op = _Hessian(model, loss_fn, batches, params, mode, compile)
        for _ in range(n_probes):
            T, _, _, _, _ = _lanczos(op, _random(op.n, gen, op), min(n_steps, op.n))
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


# -- the fixed subset ------------------------------------------------------------------------


def fixed_subset(data, n: int = 5000, seed: int = 0, batch_size: int = 128,
                 device: torch.device | str | None = None) -> list[Batch]:
    """The same ``n`` examples on every call: a seeded draw without replacement, in batches.

    ``data`` is a pair ``(inputs, targets)`` of tensors (first dimension: examples)
    or a map-style dataset whose items are ``(input, target)``. Batches keep the
    drawn (shuffled) order, so each mixes classes even when ``data`` is sorted by
    class; in ``bn_mode="train"`` the value depends on ``batch_size``, 128 as in
    training (SPEC §4). Use the same ``n``, ``seed`` and ``batch_size`` wherever one
    sharpness curve is compared with another (SPEC §3: 5,000 examples).
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 \
            and all(isinstance(t, torch.Tensor) for t in data):
        inputs, targets = data
        if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"data must hold as many targets as inputs, got shapes "
                             f"{tuple(inputs.shape)} and {tuple(targets.shape)}")
        total = inputs.shape[0]
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__") \
            and not isinstance(data, (tuple, list, torch.Tensor)):
        inputs = targets = None
        total = len(data)
    else:
        raise ValueError("data must be a pair (inputs, targets) of tensors or a map-style "
                         f"dataset, got {type(data).__name__}")
    if total == 0:
        raise ValueError("data must hold at least one example, got an empty dataset")
    _check_int("n", n, 1, total)
    _check_int("seed", seed, 0)
    _check_int("batch_size", batch_size, 1)
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    if inputs is None:
        items = [data[int(i)] for i in order]
        inputs = torch.stack([torch.as_tensor(x) for x, _ in items])
        targets = torch.stack([torch.as_tensor(y) for _, y in items])
    else:
        inputs, targets = inputs[order], targets[order]
    return [(x.to(device), y.to(device)) if device is not None else (x, y)
            for x, y in zip(inputs.split(batch_size), targets.split(batch_size))]
