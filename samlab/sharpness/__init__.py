"""Sharpness of a network's loss (docs/sharpness.md): Hessian-vector products, top
eigenvalues, trace and spectral density, all on a fixed subset of training data.

One verb per measurement, each from Hessian-vector products only (the Hessian is
never formed):

==========================  =====================================================
:func:`hvp`                 ``H v`` by automatic differentiation
:func:`top_eigenvalues`     ``λ_1 ≥ … ≥ λ_k`` by Lanczos or power iteration
:func:`hessian_trace`       ``tr(H)`` by Hutchinson's estimator, with its standard error
:func:`spectral_density`    the eigenvalue density by stochastic Lanczos quadrature
==========================  =====================================================

The subset every measurement should use is :func:`samlab.data.fixed_subset`. The modules:
:mod:`~samlab.sharpness.hessian` (the product, the borrowed model),
:mod:`~samlab.sharpness.eigen` (Lanczos, power iteration) and
:mod:`~samlab.sharpness.spectrum` (trace, density).

Every function measures the mean loss over ``batches``, on the parameters with
``requires_grad``, with BatchNorm in ``bn_mode`` (eval by default), and gives the model
back exactly as it was: docs/sharpness.md (#the-subset, #batchnorm-mode,
#the-model-is-borrowed, #speed).
"""

from .eigen import METHODS, WHICH, EigenResult, top_eigenvalues
from .hessian import (
    AUTO_MODE,
    BN_MODES,
    HVP_MODES,
    HessianOperator,
    compile_pays_off,
    hvp,
)
from .spectrum import DensityResult, TraceResult, hessian_trace, spectral_density

__all__ = [
    "AUTO_MODE", "BN_MODES", "HVP_MODES", "METHODS", "WHICH", "DensityResult", "EigenResult",
    "HessianOperator", "TraceResult", "compile_pays_off", "hessian_trace", "hvp",
    "spectral_density",
    "top_eigenvalues",
]
