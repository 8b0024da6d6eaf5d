"""Every measurement borrows the model and gives it back exactly (STYLE: "restore what you
borrow"): weights and buffers bit-identical, each module's ``training`` flag, each
parameter's ``requires_grad`` and ``.grad``; also when the loss raises half-way.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from batchnorm_truth import scramble_batchnorm
from model_state import assert_unchanged, snapshot
from sharpness_truth import exact_hessian, tiny_batches, tiny_mlp
from torch import nn

from samlab import sharpness
from samlab.models import small_cnn
from samlab.sharpness.hessian import _affine_forward


def cnn_and_batches():
    torch.manual_seed(0)
    model = small_cnn(num_classes=3, width=4).double()
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(n, 3, 8, 8, generator=gen, dtype=torch.float64),
                torch.randint(0, 3, (n,), generator=gen)) for n in (6, 4)]
    return model, batches


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def measure(name: str, model: nn.Module, batches, loss_fn=F.cross_entropy, **options):
    """One small call of each public measurement."""
    if name.startswith("hvp"):
        v = torch.ones(n_params(model), dtype=torch.float64)
        return sharpness.hvp(model, loss_fn, batches, v, mode=name.removeprefix("hvp-"),
                             **options)
    if name in ("lanczos", "power"):
        return sharpness.top_eigenvalues(model, loss_fn, batches, k=2, method=name,
                                         max_iter=4, **options)
    if name == "trace":
        return sharpness.hessian_trace(model, loss_fn, batches, n_probes=2, **options)
    return sharpness.spectral_density(model, loss_fn, batches, n_probes=1, n_steps=3, **options)


NAMES = ["hvp-double_backward", "hvp-forward_over_reverse", "lanczos", "power", "trace",
         "density"]


def borrowed_state(model: nn.Module) -> None:
    """A state worth restoring: train mode but one submodule in eval, one tensor frozen,
    some ``.grad`` set and some None."""
    model.train()
    list(model.children())[1].eval()
    params = list(model.parameters())
    params[-1].requires_grad_(False)
    params[0].grad = torch.full_like(params[0], 0.25)


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("build", ["mlp-bn", "cnn-bn"])
def test_measurement_leaves_weights_buffers_modes_flags_and_grads_exactly_as_found(
        build, name, bn_mode):
    model, batches = (tiny_mlp(batch_norm=True), tiny_batches()) if build == "mlp-bn" \
        else cnn_and_batches()
    borrowed_state(model)
    before = snapshot(model)
    measure(name, model, batches, bn_mode=bn_mode)
    assert_unchanged(model, before)


@pytest.mark.parametrize("name", NAMES)
def test_model_is_restored_even_when_the_loss_raises_half_way(name):
    model, batches = tiny_mlp(batch_norm=True), tiny_batches()
    borrowed_state(model)
    before = snapshot(model)
    calls = []

    def failing_loss(outputs, targets):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return F.cross_entropy(outputs, targets)

    with pytest.raises(RuntimeError, match="disk full"):
        measure(name, model, batches, failing_loss, bn_mode="train")
    assert_unchanged(model, before)


def test_hvp_works_inside_torch_no_grad():
    model, batches = tiny_mlp(), tiny_batches()
    v = torch.ones(n_params(model), dtype=torch.float64)
    expected = sharpness.hvp(model, F.cross_entropy, batches, v)
    with torch.no_grad():
        torch.testing.assert_close(sharpness.hvp(model, F.cross_entropy, batches, v), expected,
                                   rtol=0, atol=0)


def test_params_selects_a_block_of_the_hessian_and_leaves_the_others_frozen_as_found():
    model, batches = tiny_mlp(), tiny_batches()
    H = exact_hessian(model, batches)
    last = list(model.parameters())[-2:]  # the output layer's weight and bias
    block = sum(p.numel() for p in last)
    v = torch.randn(block, dtype=torch.float64)
    Hv = sharpness.hvp(model, F.cross_entropy, batches, v, params=last)
    torch.testing.assert_close(Hv, H[-block:, -block:] @ v, rtol=0, atol=1e-12)
    assert all(p.requires_grad for p in model.parameters())


def test_train_mode_batchnorm_uses_batch_statistics_and_eval_mode_the_running_ones():
    model, batches = tiny_mlp(batch_norm=True), tiny_batches()
    v = torch.ones(n_params(model), dtype=torch.float64)
    for bn_mode in ("eval", "train"):
        torch.testing.assert_close(
            sharpness.hvp(model, F.cross_entropy, batches, v, bn_mode=bn_mode),
            exact_hessian(model, batches, bn_mode) @ v, rtol=0, atol=1e-12)


def test_dropout_is_off_during_a_measurement_even_in_a_training_model():
    torch.manual_seed(0)
    with_dropout = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Dropout(0.5),
                                 nn.Linear(8, 4)).double().train()
    without = nn.Sequential(*[m for m in with_dropout if not isinstance(m, nn.Dropout)])
    batches = tiny_batches()
    v = torch.ones(n_params(with_dropout), dtype=torch.float64)
    torch.testing.assert_close(sharpness.hvp(with_dropout, F.cross_entropy, batches, v),
                               sharpness.hvp(without, F.cross_entropy, batches, v),
                               rtol=0, atol=0)
    assert with_dropout.training and with_dropout[2].training


def test_eval_batchnorm_is_measured_as_its_affine_map_and_its_forward_given_back():
    """In eval mode torch's BatchNorm runs as ``x·s + (β − μ·s)`` during a measurement (its
    double backward is then elementwise); afterwards each module has its own forward again.
    A forward the user set on an instance is left alone, during and after."""
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 8),
                          nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 4)).double()
    scramble_batchnorm(model[1])
    scramble_batchnorm(model[4])
    mine = model[4].forward = lambda x: nn.BatchNorm1d.forward(model[4], x)
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append((model[1].forward,
                                                             model[4].forward)))
    batches = tiny_batches()
    v = torch.ones(n_params(model), dtype=torch.float64)
    sharpness.hvp(model, F.cross_entropy, batches, v, bn_mode="eval")
    assert seen and "_affine_forward" in seen[0][0].__qualname__ and seen[0][1] is mine
    assert "forward" not in model[1].__dict__ and model[4].__dict__["forward"] is mine


@pytest.mark.parametrize("bn, x", [
    (nn.BatchNorm1d(5), torch.randn(7, 5)),
    (nn.BatchNorm2d(5), torch.randn(7, 5, 4, 3)),
    (nn.BatchNorm2d(5, affine=False), torch.randn(7, 5, 4, 3)),
    (nn.BatchNorm2d(5), torch.randn(7, 5, 4, 3).contiguous(memory_format=torch.channels_last)),
], ids=["1d", "2d", "2d-no-affine", "2d-channels-last"])
def test_the_affine_map_is_eval_batchnorm(bn, x):
    bn = scramble_batchnorm(bn.double().eval())
    x = x.double()
    with torch.no_grad():
        torch.testing.assert_close(_affine_forward(bn)(x), bn(x), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="expected 4D input"):
        _affine_forward(nn.BatchNorm2d(5).eval())(torch.randn(5, 4, 3))
