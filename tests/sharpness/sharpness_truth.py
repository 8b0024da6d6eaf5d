"""Independent truth for the sharpness tests: the full Hessian of tiny models.

``exact_hessian`` writes the mean loss as a function of the flat parameter vector and
differentiates it twice with ``torch.func.hessian``; nothing here goes through
``samlab.sharpness``. Models are float64 so that comparisons can be tight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from batchnorm_truth import scramble_batchnorm
from torch import nn
from torch.func import functional_call, hessian

from samlab.models import mlp

IN, HIDDEN, CLASSES = 6, 14, 4  # 6*14 + 14 + 14*4 + 4 = 158 parameters (186 with BatchNorm)
BATCH_SIZES = (25, 20, 15)  # unequal, so per-example weighting matters


def tiny_mlp(batch_norm: bool = False, seed: int = 0) -> nn.Module:
    """The repository's MLP, small enough to form its Hessian, in float64.

    BatchNorm gets non-trivial running statistics and affine parameters, so that eval
    mode and train mode give different Hessians.
    """
    torch.manual_seed(seed)
    model = mlp(IN, HIDDEN, CLASSES, batch_norm=batch_norm).double()
    if batch_norm:
        scramble_batchnorm(model[2])
    return model


def tiny_batches(seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, IN, generator=gen, dtype=torch.float64),
             torch.randint(0, CLASSES, (n,), generator=gen)) for n in BATCH_SIZES]


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


def exact_hessian(model: nn.Module, batches, bn_mode: str = "eval") -> torch.Tensor:
    """``∇²L`` of ``L(w) = Σ_b (n_b/N)·CE(model(x_b), y_b)``, as an ``n x n`` matrix.

    In "train" BatchNorm mode the MLP is written out by hand with batch statistics,
    so this truth shares no code path with the module's BatchNorm handling.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    sizes = [p.numel() for _, p in named]
    total = sum(x.shape[0] for x, _ in batches)

    def unflatten(w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: t.view_as(p) for (name, p), t in zip(named, w.split(sizes))}

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if bn_mode == "eval":
            return functional_call(model.eval(), params, (x,))
        h = x.flatten(1) @ params["1.weight"].T + params["1.bias"]
        mean, var = h.mean(0), h.var(0, unbiased=False)
        bn = model[2]
        h = (h - mean) / torch.sqrt(var + bn.eps) * params["2.weight"] + params["2.bias"]
        return F.relu(h) @ params["4.weight"].T + params["4.bias"]

    def loss(w: torch.Tensor) -> torch.Tensor:
        params = unflatten(w)
        return sum(F.cross_entropy(forward(params, x), y) * (x.shape[0] / total)
                   for x, y in batches)

    return hessian(loss)(flat_params(model))


class Quadratic(nn.Module):
    """``L(w) = ½ wᵀ A w`` for every example: its Hessian is ``A``, exactly."""

    def __init__(self, A: torch.Tensor, w0: torch.Tensor):
        super().__init__()
        self.register_buffer("A", A)
        self.w = nn.Parameter(w0.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.w @ self.A @ self.w) * torch.ones(x.shape[0], dtype=x.dtype)


def quadratic_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs.mean()


def quadratic_with_spectrum(eigenvalues, seed: int = 0) -> tuple[Quadratic, torch.Tensor]:
    """A quadratic model whose Hessian ``Q diag(λ) Qᵀ`` has the given eigenvalues."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(lam), len(lam), generator=gen, dtype=torch.float64))
    A = Q @ torch.diag(lam) @ Q.T
    A = (A + A.T) / 2
    return Quadratic(A, torch.randn(len(lam), generator=gen, dtype=torch.float64)), A
