"""The SAM family for PyTorch: one optimizer class for every row of :mod:`samlab.methods`.

:class:`SAM` climbs to ``w + ε`` (:func:`perturbation`), measures the gradient there on the
same mini-batch, returns to ``w`` exactly and lets a base optimizer step with it, rescaled
by ``γ`` (:func:`descent_scale`) where the method renormalizes. How to use it (the closure,
the two-call form, accumulation) is in docs/methods.md#using-the-optimizer; late-phase
switching in docs/methods.md#late-phase-switching; fp16 and DDP in
docs/methods.md#mixed-precision-and-several-processes.
"""

from .batchnorm import frozen_bn_stats
from .sam import ASAM, SAM, SSAM, USAM
from .update import descent_scale, global_norm, perturbation

__all__ = ["ASAM", "SAM", "SSAM", "USAM", "descent_scale", "frozen_bn_stats", "global_norm",
           "perturbation"]
