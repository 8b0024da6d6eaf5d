"""Hessian-vector products of a network's mean loss, with the model borrowed, not changed.

:class:`HessianOperator` is ``v ↦ H v`` over a list of batches; :func:`borrowed` puts the
model in measuring state and gives every flag and buffer back; :func:`hvp` is the
public verb. Conventions: :mod:`samlab.sharpness`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, jvp
from torch.nn.modules.batchnorm import _BatchNorm

from .. import validate

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BNMode = Literal["eval", "train"]
HVPMode = Literal["auto", "double_backward", "forward_over_reverse"]

BN_MODES = ("eval", "train")
HVP_MODES = ("auto", "double_backward", "forward_over_reverse")

#: What ``mode="auto"`` uses without and with ``compile=True`` (the costs are
#: ``make bench``'s, docs/sharpness.md#speed): eager, double backward is the cheaper way
#: on ResNet-20 and much the cheaper on a small model, where torch.func's per-call overhead
#: dominates, and it works with any module autograd can differentiate twice; compiled,
#: forward-over-reverse is the only way that compiles.
AUTO_MODE = {False: "double_backward", True: "forward_over_reverse"}


def check_batches(batches) -> list[Batch]:
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


@contextmanager
def borrowed(model: nn.Module, params: Sequence[nn.Parameter], bn_mode: str) -> Iterator[None]:
    """Put ``model`` in measuring state; give every flag and buffer back on exit.

    ``"train"`` BatchNorm runs with ``track_running_stats=False``: batch statistics,
    and no running-statistics update. ``"eval"`` BatchNorm runs as the affine map it is
    (:func:`_affine_forward`). Buffers are restored as well, for modules that update
    state of their own.
    """
    training = [(m, m.training) for m in model.modules()]
    tracking = [(m, m.track_running_stats) for m in model.modules() if isinstance(m, _BatchNorm)]
    requires = [(p, p.requires_grad) for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    # A forward set on the instance (rare) is put back as it was; ours is then removed.
    forwards = [(m, m.__dict__.get("forward")) for m, _ in tracking]
    chosen = {id(p) for p in params}
    try:
        model.eval()
        if bn_mode == "train":
            for m, _ in tracking:
                m.train()
                m.track_running_stats = False
        else:
            for m, _ in tracking:
                # Only the stock BatchNorm: a subclass's or an instance's own forward may
                # compute something else, and is measured as it is.
                if (m.running_mean is not None and m.running_var is not None
                        and type(m).forward is _BatchNorm.forward
                        and "forward" not in m.__dict__):
                    m.forward = _affine_forward(m)
        for p, _ in requires:
            p.requires_grad_(id(p) in chosen)
        with torch.enable_grad():
            yield
    finally:
        for m, flag in training:
            m.training = flag
        for m, flag in tracking:
            m.track_running_stats = flag
        for m, forward in forwards:
            m.__dict__.pop("forward", None)
            if forward is not None:
                m.forward = forward
        for p, flag in requires:
            p.requires_grad_(flag)
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def _affine_forward(bn: _BatchNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    """Eval-mode BatchNorm as the per-channel affine map it is: ``y = x·s + (β − μ·s)``,
    ``s = γ/√(σ² + ε)`` (``γ = 1, β = 0`` without affine parameters).

    The same function as ``F.batch_norm(..., training=False)``, to rounding. Its second
    derivatives are a few elementwise products, where autograd's BatchNorm double backward
    is written for batch statistics and reduces over the whole batch several times: on
    ResNet-20 (CPU) that was a third of a Hessian-vector product, more than the convolutions'.
    The module's parameters are read at each call, so ``torch.func.functional_call`` sees
    the ones it swaps in.
    """
    def forward(x: torch.Tensor) -> torch.Tensor:
        bn._check_input_dim(x)  # the module's own check of the input's rank
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = bn.weight * scale
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * scale.to(x.dtype).view(shape) + shift.to(x.dtype).view(shape)

    return forward


class HessianOperator:
    """``v ↦ H v`` for the mean loss over ``batches``; use it while the model is borrowed.

    ``H v = Σ_b (n_b/N) H_b v``: the product of each batch's mean loss, weighted by its
    share of the examples (linear in the loss, so the weight is applied afterwards).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: list[Batch],
                 params: list[nn.Parameter], mode: str, compile: bool = False):
        self.model, self.loss_fn, self.params = model, loss_fn, params
        total = sum(x.shape[0] for x, _ in batches)
        self.batches = [(x, y, x.shape[0] / total) for x, y in batches]
        #: Whether the products run compiled: False from the start without ``compile``, or
        #: once compiling failed (then :attr:`compile_error` says why and they run eagerly).
        self.compiled = compile and _compile_error is None
        self.compile_error = _compile_error if compile else None
        self.requested_mode = mode
        self.mode = AUTO_MODE[self.compiled] if mode == "auto" else mode
        self.sizes = [p.numel() for p in params]
        self.n = sum(self.sizes)
        self.dtype, self.device = params[0].dtype, params[0].device
        self.n_hvp = 0
        names = {id(p): name for name, p in model.named_parameters()}
        self.names = [names[id(p)] for p in params]
        self.product = _compiled_product() if self.compiled else _forward_over_reverse

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        tangents = [_shaped_like(t, p) for t, p in zip(v.split(self.sizes), self.params)]
        out = torch.zeros(self.n, dtype=self.dtype, device=self.device)
        for x, y, weight in self.batches:
            # One batch per call, so that its graph is freed before the next one is built.
            hv = self._batch(x, y, tangents)
            out.add_(torch.cat([h.reshape(-1) for h in hv]), alpha=weight)
        self.n_hvp += 1
        if not bool(torch.isfinite(out).all()):  # one check per product: Lanczos syncs anyway
            bad = int((~torch.isfinite(out)).sum())
            raise FloatingPointError(
                f"the Hessian-vector product {self.n_hvp} is not finite ({bad} of {self.n} "
                f"entries are nan or inf): the loss is not finite at these weights and "
                "batches, so it has no curvature to measure; check that the model's weights "
                "and the inputs are finite (a run that diverged has no λ_max)")
        return out

    def _batch(self, x, y, tangents) -> list[torch.Tensor]:
        if self.mode == "double_backward":
            return _double_backward(self.model, self.loss_fn, self.params, tangents, x, y)
        primals = {n: p.detach() for n, p in zip(self.names, self.params)}
        args = (self.model, self.loss_fn, primals, dict(zip(self.names, tangents)), x, y)
        try:
            hv = self.product(*args)
        except Exception as error:
            if not self.compiled or self.n_hvp:
                raise
            # Compiling can fail where running cannot (no C++ compiler on the machine, an
            # operation the compiler does not know). The same product eagerly tells which:
            # if it fails too, the error is the model's or the loss's, and is raised as such.
            eager = _forward_over_reverse(*args)
            self._give_up_compiling(error)
            return [eager[n] for n in self.names]
        return [hv[n] for n in self.names]

    def _give_up_compiling(self, error: Exception) -> None:
        """Run eagerly from now on (this process: restart it to try again), and say why."""
        global _compile_error
        lines = str(error).strip().splitlines()
        _compile_error = f"{type(error).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")
        warnings.warn(f"samlab.sharpness: torch.compile failed ({_compile_error}); Hessian-"
                      "vector products run eagerly from now on", RuntimeWarning, stacklevel=5)
        self.compiled, self.compile_error = False, _compile_error
        self.product = _forward_over_reverse
        if self.requested_mode == "auto":  # eager, double backward is the cheaper way
            self.mode = AUTO_MODE[False]


def scalar_loss(loss) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar (the mean loss), got {shape}")
    return loss


def _double_backward(model, loss_fn, params, tangents, x, y) -> list[torch.Tensor]:
    """``H v = ∇_w (∇_w L · v)``: differentiate the gradient's graph once more."""
    loss = scalar_loss(loss_fn(model(x), y))
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
        return scalar_loss(loss_fn(functional_call(model, p, (x,)), y))

    return jvp(grad(loss), (primals,), (tangents,))[1]


_compiled = None
#: Why compiling failed in this process, if it did: later products do not try again.
_compile_error: str | None = None

#: What compiling buys, for :func:`compile_pays_off`, from ``make bench`` (ResNet-20 on a
#: 2-core CPU): a compiled product costs about 0.63 of an eager one, after a first call
#: that compiles for 20-40 s. Taken as 0.7 and 60 s, to err on the side of not compiling.
COMPILED_SHARE, COMPILE_SECONDS = 0.7, 60.0


def compile_pays_off(eager_seconds: float, measurements_left: int) -> bool:
    """Whether compiling the products of the ``measurements_left`` measurements still to
    come would save more time than it costs, when one eager measurement took
    ``eager_seconds``: ``left · (1 − share) · t > compile time`` (docs/sharpness.md#speed).
    """
    eager_seconds = validate.number("eager_seconds", eager_seconds, low=0.0)
    measurements_left = validate.integer("measurements_left", measurements_left, low=0)
    return measurements_left * (1.0 - COMPILED_SHARE) * eager_seconds > COMPILE_SECONDS


def _compiled_product():
    """``_forward_over_reverse`` through ``torch.compile``, built once per process.

    Compiling fuses the many elementwise operations of the tangent passes around the
    convolutions (docs/sharpness.md#speed), at the price of one compilation per model,
    mode and batch shape (past torch._dynamo's recompile limit, 8, it runs eagerly). Give
    the subset equal batches (``n`` a multiple of ``batch_size``) to compile once.
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


def prepare(model, loss_fn, batches, params, bn_mode, mode, compile):
    batches = check_batches(batches)
    params = _check_params(model, params)
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    validate.choice("bn_mode", bn_mode, BN_MODES)
    validate.choice("mode", mode, HVP_MODES)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if compile and mode == "double_backward":
        raise ValueError("compile=True needs mode='forward_over_reverse' or 'auto' "
                         "(torch.compile does not differentiate twice), got 'double_backward'")
    return batches, params


def random_vector(n: int, gen: torch.Generator, op: HessianOperator,
                  rademacher: bool = False) -> torch.Tensor:
    """Seeded on the CPU, so a seed gives the same vector on every device."""
    if rademacher:
        v = torch.randint(0, 2, (n,), generator=gen).to(op.dtype).mul_(2).sub_(1)
    else:
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(op.dtype)
    return v.to(op.device)


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
    batches, params = prepare(model, loss_fn, batches, params, bn_mode, mode, compile)
    n = sum(p.numel() for p in params)
    if not isinstance(v, torch.Tensor) or v.shape != (n,):
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"v must be a flat tensor of the {n} parameter entries, got {shape}")
    with borrowed(model, params, bn_mode):
        op = HessianOperator(model, loss_fn, batches, params, mode, compile)
        return op(v.detach().to(dtype=op.dtype, device=op.device))
