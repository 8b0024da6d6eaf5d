"""The SAM family for PyTorch: one optimizer class for every row of :mod:`samlab.methods`.

Every method climbs to ``w_asc = w + ε``, measures the gradient there on the same
mini-batch, returns to ``w`` exactly and lets a base optimizer (SGD with momentum by
default) step with that gradient ``d``, rescaled by ``γ = ‖g‖/‖∇L(w_asc)‖`` if the method
renormalizes (docs/methods.md#the-table). The mathematics is two pure functions,
:func:`perturbation` (``ε``) and :func:`descent_scale` (``γ``); :meth:`SAM.first_step`
and :meth:`SAM.second_step` call them, with the engineering (fp16, DDP, late phase)
around them. The whole update runs as a handful of ``torch._foreach_*`` kernels over all
parameters at once, with no per-tensor Python loop and no host synchronization.

Typical use, the torch closure convention::

    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)        # two forward-backward passes, one base step

The two-call form, as the algorithm is taught::

    F.cross_entropy(model(x), y).backward()
    opt.first_step()                # w -> w + ε, gradients zeroed
    with frozen_bn_stats(model):    # the second pass must not move BatchNorm statistics
        F.cross_entropy(model(x), y).backward()
    opt.second_step()               # back to w, base optimizer steps with ∇L(w + ε)

Any row of the table by name: ``SAM(params, method="rsam", rho=0.05, lr=0.1)``
(renormalized SAM); ``USAM``, ``SSAM`` and ``ASAM`` are ``SAM`` with their row's defaults.
``method="sgd"`` is the base optimizer itself, with SAM's bookkeeping (statistics,
late-phase epochs), so a training loop can treat every method alike.

Late-phase switching (Zhou et al., ICLR 2025): ``SAM(..., switch_epoch=150)`` runs the
plain base optimizer (one forward-backward per step, bit-identical to it) until epoch
150, then SAM; the loop's one extra line is ``opt.set_epoch(epoch)``. ``end_epoch=``
switches back: SAM before it, the base optimizer alone from it on.

Gradient accumulation: a closure that loops over micro-batches (each loss divided by
their number) accumulates both the ascent and the descent gradient; so does the
two-call form with the loop written out twice.

Mixed precision: under ``torch.autocast`` (bf16) nothing changes. With fp16 and a
``torch.amp.GradScaler`` pass it to :meth:`SAM.step` (or to ``first_step`` and
``second_step``); the closure calls ``scaler.scale(loss).backward()``, and the loop
calls ``scaler.update()`` after the step. A non-finite gradient in either pass skips
the whole step (weights and base-optimizer state untouched) and the scaler backs off.

DDP (m-sharpness): give the DDP-wrapped ``model=`` so that :meth:`SAM.step` runs the
first pass inside ``model.no_sync()``: each rank perturbs with its own gradient, and
only the descent gradient is all-reduced (once). SSAM's ``γ`` then uses the ranks'
mean ``‖g‖²`` so that every rank takes the same step.
"""

from .batchnorm import frozen_bn_stats
from .sam import ASAM, SAM, SSAM, USAM
from .update import descent_scale, global_norm, perturbation

__all__ = ["ASAM", "SAM", "SSAM", "USAM", "descent_scale", "frozen_bn_stats", "global_norm",
           "perturbation"]
