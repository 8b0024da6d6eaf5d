"""SAM's update on one screen: the perturbation ``ε`` and the descent scale ``γ``.

Pure functions of the gradients ``g`` and the weights ``w`` (lists of tensors, one per
parameter), with no state and no side effects; :class:`samlab.optim.SAM` calls them and
does the engineering around them (docs/methods.md#the-table).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import validate
from ..ascents import get_ascent
from ..methods import EPS, Ascent


def perturbation(w: list[torch.Tensor], g: list[torch.Tensor], rho: float | Sequence[float],
                 ascent: Ascent, *, grad_norm: torch.Tensor | None = None,
                 **options) -> list[torch.Tensor]:
    """SAM's ascent ``ε(g, w)``, one tensor per parameter (docs/methods.md#the-table).

    ``ascent`` names a rule of :mod:`samlab.ascents`, which gives the direction ``u`` and
    its norm ``n``; then ``ε = ρ·u / (n + 1e-12)`` for a normalized rule, ``ρ·u`` otherwise:

    - ``"normalized"`` (Foret et al.): ``ε = ρ·g / (‖g‖ + 1e-12)``
    - ``"unnormalized"`` (USAM, SSAM): ``ε = ρ·g``
    - ``"adaptive"`` (Kwon et al.): ``ε = ρ·T²g / (‖Tg‖ + 1e-12)`` with ``T = |w| + η_a``
      on weight tensors and ``T = 1`` on biases and normalization parameters
      (``adaptive_variant="original"``), or ``T = |w|`` on every tensor (``"abs"``)

    ``‖·‖`` is one norm over all tensors together. ``rho`` is one number, or one per
    tensor (parameter groups with their own ``ρ``); ``grad_norm`` is ``‖g‖`` if known;
    ``options`` (``adaptive_eta``, ``adaptive_variant``) go to the rule.
    """
    rule = get_ascent(ascent)
    if rule.name == "none":
        raise validate.fail("ascent", "a rule that climbs, such as 'normalized', "
                            "'unnormalized' or 'adaptive'", ascent)
    u, n = rule.torch_direction(w, g, grad_norm, **options)
    rhos = list(rho) if isinstance(rho, Sequence) else [rho] * len(u)
    eps: list[torch.Tensor] = [u[0]] * len(u)
    for r in dict.fromkeys(rhos):  # one kernel per distinct ρ
        idx = [i for i, ri in enumerate(rhos) if ri == r]
        scale = r / (n + EPS) if rule.normalized else r
        for i, e in zip(idx, torch._foreach_mul([u[i] for i in idx], scale)):
            eps[i] = e
    return eps


def descent_scale(grad_norm: torch.Tensor, ascent_grad_norm: torch.Tensor) -> torch.Tensor:
    """SSAM's ``γ = ‖g‖ / (‖∇L(w_asc)‖ + 1e-12)`` (Tan et al.), the authors' guard included.

    With renormalization the descent gradient is ``γ·∇L(w_asc)``: its norm is ``‖g‖``.
    """
    return grad_norm / (ascent_grad_norm + EPS)


def global_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One L2 norm over all ``tensors`` together, as a 0-d tensor (no host sync)."""
    norms = torch._foreach_norm(tensors)
    # float64 models keep float64; lower precisions are summed in float32.
    dtype = torch.float64 if any(n.dtype == torch.float64 for n in norms) else torch.float32
    if any(n.dtype != dtype for n in norms):
        norms = [n.to(dtype) for n in norms]
    return torch.linalg.vector_norm(torch.stack(norms))
