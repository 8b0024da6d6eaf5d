"""BatchNorm with a past: running statistics and affine parameters that are not the data's.

A freshly built BatchNorm normalizes with mean 0 and variance 1 and has ``γ = 1, β = 0``,
so its eval and train modes (and the tests that tell them apart) would hardly differ.
Shared by the sharpness, landscape and model-restoring tests.
"""

from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm


def scramble_batchnorm(bn: _BatchNorm) -> _BatchNorm:
    """Draw ``bn``'s running statistics and (if it has them) affine parameters from the
    global torch generator, in place; returns ``bn``."""
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        if bn.affine:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
        bn.num_batches_tracked.fill_(7)
    return bn
