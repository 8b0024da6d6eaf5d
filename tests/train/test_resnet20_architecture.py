"""ResNet-20 for CIFAR-10 (He et al. 2016, docs/training.md#the-cifar-10-recipe): 3 stages x 3
basic blocks, 16/32/64
channels, option-A shortcuts, about 0.27 M parameters, (N, 3, 32, 32) → (N, 10)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from samlab.models import resnet20


def option_a_resnet20_parameters(num_classes: int = 10) -> int:
    """The count written out from the architecture, layer by layer.

    Stem: a 3x3 conv 3→16 and its BatchNorm (γ, β). Each basic block: two 3x3 convs
    (no bias) and two BatchNorms. Option-A shortcuts (subsample + zero-pad) have no
    parameters. Head: global average pooling, then a 64→classes linear layer with bias.
    """
    total = 3 * 16 * 3 * 3 + 2 * 16
    in_channels = 16
    for width in (16, 32, 64):
        for _ in range(3):
            total += in_channels * width * 9 + width * width * 9 + 2 * (2 * width)
            in_channels = width
    return total + 64 * num_classes + num_classes


def test_the_architecture_count_is_the_published_269722():
    # The derivation above, checked against the number the papers' tables round to 0.27 M.
    assert option_a_resnet20_parameters() == 269_722


def test_resnet20_has_exactly_the_option_a_parameter_count():
    model = resnet20()
    assert sum(p.numel() for p in model.parameters()) == option_a_resnet20_parameters()


def test_resnet20_has_19_convolutions_and_one_linear_layer_all_convs_3x3():
    # "20" counts the weighted layers; a 1x1 projection shortcut (option B) would add convs.
    model = resnet20()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 19 and len(linears) == 1
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert [c.out_channels for c in convs] == [16] * 7 + [32] * 6 + [64] * 6


@pytest.mark.parametrize("n", [1, 4])
def test_resnet20_maps_cifar_batches_to_ten_logits(n):
    model = resnet20().eval()
    with torch.no_grad():
        out = model(torch.randn(n, 3, 32, 32))
    assert out.shape == (n, 10) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_resnet20_halves_the_resolution_twice_32_16_8():
    model = resnet20().eval()
    sizes = []
    hooks = [block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
             for block in model.layers]
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert sizes == [(16, 32, 32)] * 3 + [(32, 16, 16)] * 3 + [(64, 8, 8)] * 3
