"""The small torch problem the optimizer exercises step on: several weight tensors of
different sizes and curvatures, a loss, and the ``grad(w)`` a student's function calls."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .. import validate


class Problem:
    """``L(w) = Σ_i ½ s_i·w_iᵀA_iw_i + ¼ Σ w⁴`` over tensors ``w_i`` (flattened), with random
    positive definite ``A_i`` and scales ``s_i`` far apart, so that one norm over all
    tensors and one per tensor differ, and a quartic term so that the Hessian is not
    constant."""

    def __init__(self, shapes: Sequence[tuple[int, ...]], scales: Sequence[float], seed: int,
                 dtype: torch.dtype = torch.float64):
        gen = torch.Generator().manual_seed(seed)
        self.shapes, self.dtype = [tuple(s) for s in shapes], dtype
        self.A = []
        for shape, scale in zip(self.shapes, scales):
            n = math.prod(shape)
            m = torch.randn(n, n, generator=gen, dtype=torch.float64)
            self.A.append((scale * (m @ m.T / n + 0.2 * torch.eye(n, dtype=torch.float64)))
                          .to(dtype))
        self.w0 = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)
                   for s in self.shapes]

    def start(self, scale: float = 1.0) -> list[torch.Tensor]:
        """A fresh copy of the starting weights times ``scale``: 0 is a minimum, where
        ``g = 0``; with negative scales ``s_i`` a small one starts where the quadratic part
        dominates, so the curvature along ``g`` is negative."""
        return [scale * w for w in self.w0]

    def loss(self, w: Sequence[torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for wi, A in zip(w, self.A):
            x = wi.reshape(-1)
            total = total + 0.5 * x @ (A.to(x.dtype) @ x) + 0.25 * x.pow(4).sum()
        return total

    def grad(self, w: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``∇L(w)``, one tensor per tensor of ``w``; ``w`` is left as it was."""
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in w] \
            if isinstance(w, (list, tuple)) else None
        if shapes != self.shapes:
            raise validate.fail("w", f"a list of {len(self.shapes)} tensors of shapes "
                                f"{self.shapes} (grad(w) takes weights shaped like w)", w)
        x = [t.detach().clone().requires_grad_(True) for t in w]
        with torch.enable_grad():
            return list(torch.autograd.grad(self.loss(x), x))

    def run(self, make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
            w: Sequence[torch.Tensor], steps: int = 1) -> list[list[torch.Tensor]]:
        """The weights after each of ``steps`` steps of the optimizer ``make(params)``,
        stepping with a closure, from ``w``."""
        params = [t.detach().clone().requires_grad_(True) for t in w]
        opt = make(params)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = self.loss(params)
            loss.backward()
            return loss

        out = []
        for _ in range(steps):
            opt.step(closure)
            out.append([p.detach().clone() for p in params])
        return out
