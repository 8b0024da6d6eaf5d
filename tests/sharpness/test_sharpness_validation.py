"""Bad input fails at the public boundary, naming the argument and the value it got."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sharpness_truth import tiny_batches, tiny_mlp
from torch import nn

from samlab import sharpness

N = 158  # parameters of tiny_mlp()


def top(**changes):
    args = dict(model=tiny_mlp(), loss_fn=F.cross_entropy, batches=tiny_batches())
    args.update(changes)
    return sharpness.top_eigenvalues(**args)


BAD_EIGEN = [
    ("k", 0, r"k must be an integer in 1\.\.158, got 0"),
    ("k", -2, r"k must be an integer in 1\.\.158, got -2"),
    ("k", 159, r"k must be an integer in 1\.\.158, got 159"),
    ("k", 2.0, r"k must be an integer in 1\.\.158, got 2\.0"),
    ("k", True, r"k must be an integer in 1\.\.158, got True"),
    ("tol", 0.0, r"tol must be a finite number > 0, got 0\.0"),
    ("tol", -1e-3, r"tol must be a finite number > 0, got -0\.001"),
    ("tol", float("nan"), r"tol must be a finite number > 0, got nan"),
    ("tol", float("inf"), r"tol must be a finite number > 0, got inf"),
    ("max_iter", 0, r"max_iter must be an integer >= 1, got 0"),
    ("method", "arnoldi", r"method must be one of 'lanczos', 'power', got 'arnoldi'"),
    ("which", "SA", r"which must be one of 'LA', 'LM', got 'SA'"),
    ("bn_mode", "training", r"bn_mode must be one of 'eval', 'train', got 'training'"),
    ("mode", "fast", r"mode must be one of 'auto', 'double_backward', 'forward_over_reverse', "
                     r"got 'fast'"),
    ("seed", -1, r"seed must be an integer >= 0, got -1"),
    ("batches", [], r"batches must be a non-empty list of \(inputs, targets\) pairs, "
                    r"got an empty list"),
    ("batches", None, r"batches must be a non-empty list .* got NoneType"),
    ("batches", [(torch.zeros(0, 6), torch.zeros(0))],
     r"batches\[0\] must hold at least one example, got inputs of shape \(0, 6\)"),
    ("batches", [(torch.zeros(3, 6), torch.zeros(2))],
     r"batches\[0\] must have as many targets as inputs, got \(2,\) targets for 3 inputs"),
    ("batches", [torch.zeros(3, 6)], r"batches\[0\] must be a pair \(inputs, targets\)"),
    ("loss_fn", "cross_entropy", r"loss_fn must be callable, got str"),
    ("compile", "yes", r"compile must be True or False, got 'yes'"),
]


@pytest.mark.parametrize("name, value, message", BAD_EIGEN,
                         ids=[f"{n}={v!r}"[:40] for n, v, _ in BAD_EIGEN])
def test_top_eigenvalues_rejects_a_bad_argument_naming_it_and_its_value(name, value, message):
    with pytest.raises(ValueError, match=message):
        top(**{name: value})


def test_lanczos_needs_at_least_k_steps():
    with pytest.raises(ValueError, match=r"max_iter must be an integer >= 3, got 2"):
        top(k=3, max_iter=2)


def test_compile_is_refused_with_double_backward():
    with pytest.raises(ValueError, match=r"compile=True needs mode='forward_over_reverse'"):
        top(mode="double_backward", compile=True)


def test_a_model_without_trainable_parameters_is_refused():
    model = tiny_mlp().requires_grad_(False)
    with pytest.raises(ValueError, match=r"no parameters with requires_grad=True; pass params="):
        top(model=model)


def test_params_must_belong_to_the_model():
    stranger = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"params\[0\] is not a parameter of model"):
        top(params=[stranger])


def test_a_loss_that_is_not_a_scalar_is_refused_by_every_hvp_mode():
    for mode in ("double_backward", "forward_over_reverse"):
        with pytest.raises(ValueError, match=r"loss_fn must return a scalar .*got \(25,\)"):
            top(loss_fn=lambda out, y: F.cross_entropy(out, y, reduction="none"), mode=mode)


def test_hvp_rejects_a_vector_of_the_wrong_size():
    with pytest.raises(ValueError, match=rf"v must be a flat tensor of the {N} parameter "
                                         r"entries, got \(157,\)"):
        sharpness.hvp(tiny_mlp(), F.cross_entropy, tiny_batches(),
                      torch.zeros(N - 1, dtype=torch.float64))


@pytest.mark.parametrize("n_probes", [0, 1, 2.5])
def test_hutchinson_needs_two_probes_for_a_standard_error(n_probes):
    with pytest.raises(ValueError, match=rf"n_probes must be an integer >= 2, got {n_probes}"):
        sharpness.hessian_trace(tiny_mlp(), F.cross_entropy, tiny_batches(), n_probes=n_probes)


@pytest.mark.parametrize("name, value, message", [
    ("n_probes", 0, r"n_probes must be an integer >= 1, got 0"),
    ("n_steps", 0, r"n_steps must be an integer >= 1, got 0"),
    ("sigma", 0.0, r"sigma must be a finite number > 0, got 0\.0"),
    ("n_grid", 1, r"n_grid must be an integer >= 2, got 1"),
])
def test_spectral_density_rejects_a_bad_argument(name, value, message):
    with pytest.raises(ValueError, match=message):
        sharpness.spectral_density(tiny_mlp(), F.cross_entropy, tiny_batches(), **{name: value})
