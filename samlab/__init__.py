"""samlab: a workbench for learning and researching sharpness-aware minimization.

- :mod:`samlab.methods`: the one table of methods (SGD, SAM, USAM, SSAM, ASAM, renormalized
  SAM) that every other module reads.
- :mod:`samlab.toy`: exact 2D landscapes and the SAM family in NumPy, vectorized.
- :mod:`samlab.optim`: the SAM family for PyTorch, with late-phase switching.
- :mod:`samlab.sharpness`: Hessian eigenvalues, trace and spectral density by HVPs.
- :mod:`samlab.edges`: each method's stability edge, the sharpness it cannot exceed;
  :mod:`samlab.landscape`: the loss along the line between two networks.
- :mod:`samlab.models`, :mod:`samlab.data`, :mod:`samlab.train`: ResNet-20 on CIFAR-10
  (and digits) with a GPU-resident loader, a resumable trainer and ``samlab train``.
- :mod:`samlab.widgets` (interactive) and :mod:`samlab.plot` (static) figures.
- :mod:`samlab.validate` and :mod:`samlab.files`: argument checks and atomic writes.

The reference for every formula is in ``docs/`` (docs/README.md).
"""

from __future__ import annotations

import os

__version__ = "0.1.0"


def quick_mode() -> bool:
    """True when ``SAMLAB_QUICK`` is set to anything but ``""``/``0``.

    Notebooks read this to shrink their experiments so that CI (and a student on
    a 2 GB Binder) runs them top to bottom in seconds.
    """
    return os.environ.get("SAMLAB_QUICK", "").strip() not in ("", "0")


def epochs_override(epochs: int) -> int:
    """``SAMLAB_EPOCHS`` if set, else ``epochs``: a run of a notebook cut short.

    ``make gpu-check`` runs notebook 05 at lab size with ``SAMLAB_EPOCHS=1`` to time one
    epoch per arm (docs/training.md#speed). A value that is not a positive integer is an
    error naming the variable.
    """
    text = os.environ.get("SAMLAB_EPOCHS", "").strip()
    if not text:
        return epochs
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"SAMLAB_EPOCHS must be a positive integer (epochs per run), "
                         f"got {text!r}")
    return int(text)
