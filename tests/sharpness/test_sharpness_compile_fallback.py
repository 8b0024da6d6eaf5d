"""Where torch.compile fails (no C++ compiler, an unknown operation), a measurement with
``compile=True`` still finishes: eagerly, with a warning and the reason in its result."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from sharpness_truth import tiny_batches, tiny_mlp

from samlab import sharpness
from samlab.sharpness import hessian


def test_a_failed_compilation_falls_back_to_eager_products_and_says_why(monkeypatch):
    """Fault injection: the compiled product raises on its first call (as it does on a
    machine without a C++ compiler). The measurement finishes eagerly, with the same
    eigenvalues, a warning, and the reason in the result; later calls do not retry."""
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore lines")

    monkeypatch.setattr(hessian, "_compiled_product", lambda: broken)
    monkeypatch.setattr(hessian, "_compile_error", None)
    model, batches = tiny_mlp(), tiny_batches()
    eager = sharpness.top_eigenvalues(model, F.cross_entropy, batches, k=2,
                                      mode="forward_over_reverse")
    with pytest.warns(RuntimeWarning, match="torch.compile failed .RuntimeError: no C"):
        fell_back = sharpness.top_eigenvalues(model, F.cross_entropy, batches, k=2,
                                              compile=True)
    assert not fell_back.compiled
    assert fell_back.compile_error == "RuntimeError: no C++ compiler found"
    assert fell_back.eigenvalues.tolist() == pytest.approx(eager.eigenvalues.tolist(),
                                                           rel=1e-10)
    again = sharpness.top_eigenvalues(model, F.cross_entropy, batches, compile=True)
    assert not again.compiled and again.compile_error == fell_back.compile_error


def test_an_error_of_the_loss_is_raised_as_it_is_not_blamed_on_the_compiler(monkeypatch):
    """The first compiled product fails, and so does the eager one: the model's or the
    loss's error, raised as such; compiling is not given up for it."""
    def broken(*args, **kwargs):
        raise RuntimeError("compiled: whatever")

    monkeypatch.setattr(hessian, "_compiled_product", lambda: broken)
    monkeypatch.setattr(hessian, "_compile_error", None)
    model, batches = tiny_mlp(), tiny_batches()
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        sharpness.top_eigenvalues(model, lambda out, y: F.cross_entropy(out, y, reduction="none"),
                                  batches, compile=True)
    assert hessian._compile_error is None
