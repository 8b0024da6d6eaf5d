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
  double backward, with eval-mode BatchNorm run as the affine map it is (its second
  derivatives are then elementwise); ``compile=True`` runs forward-over-reverse
  through ``torch.compile``, about 0.6 of the eager cost on ResNet-20 after a
  compilation of 20-40 s per model, mode and batch shape (falling back to eager, with a
  warning, where compiling fails). :func:`compile_pays_off` says when that is worth it;
  the trainer asks it after its first measurement (docs/sharpness.md#speed). On a CPU, a
  channels_last model and inputs make every convolution, hence every product, faster.
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
