"""The loss along a line between two networks (docs/landscape.md), against truths computed
here: the closed-form quadratic of a linear least-squares model, networks evaluated
directly at the end points, BatchNorm statistics averaged by hand.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from batchnorm_truth import scramble_batchnorm
from model_state import assert_unchanged, snapshot
from torch import nn

from samlab.landscape import LinePath, distance, interpolate
from samlab.models import mlp

ALPHAS = np.linspace(-0.25, 1.25, 13)  # step 1/8: 0, 1/2 and 1 are on the grid exactly
IN, HIDDEN, CLASSES = 6, 10, 4
BATCH_SIZES = (9, 6, 5)  # unequal, so per-example weighting matters


# Tiny float64 models: one intra-op thread is faster, and steady on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")


# --- a linear least-squares model: L(w) = mean((Xw − y)²), a quadratic in α -------------

def least_squares(seed: int = 0, d: int = 5):
    gen = torch.Generator().manual_seed(seed)
    n = sum(BATCH_SIZES)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    models = []
    for _ in range(2):
        model = nn.Linear(d, 1, bias=False).double()
        with torch.no_grad():
            model.weight.copy_(torch.randn(1, d, generator=gen, dtype=torch.float64))
        models.append(model)
    batches = list(zip(X.split(BATCH_SIZES), y.split(BATCH_SIZES)))
    return *models, batches, X.numpy(), y.numpy()[:, 0]


def quadratic_in_alpha(X, y, w_a, w_b):
    """``L(α) = mean((r_a + α·X d)²) = c + b·α + a·α²``, ``r_a = X w_a − y``, ``d = w_b − w_a``."""
    r_a, Xd = X @ w_a - y, X @ (w_b - w_a)
    return np.mean(Xd**2), 2 * np.mean(r_a * Xd), np.mean(r_a**2)


def test_the_loss_along_the_line_is_the_closed_form_quadratic_inside_and_outside_0_1():
    model_a, model_b, batches, X, y = least_squares()
    a, b, c = quadratic_in_alpha(X, y, model_a.weight.detach().numpy()[0],
                                 model_b.weight.detach().numpy()[0])
    path = interpolate(model_a, model_b, batches, ALPHAS, loss_fn=F.mse_loss)
    np.testing.assert_allclose(path.losses, a * ALPHAS**2 + b * ALPHAS + c, rtol=1e-13)
    np.testing.assert_array_equal(path.alphas, ALPHAS)
    assert path.accuracies is None  # real-valued targets: no classes to count
    assert path.bn == "recompute"


def test_a_convex_loss_has_no_barrier_and_a_concave_one_rises_a_quarter_of_its_curvature():
    model_a, model_b, batches, X, y = least_squares(seed=3)
    a, _, _ = quadratic_in_alpha(X, y, model_a.weight.detach().numpy()[0],
                                 model_b.weight.detach().numpy()[0])
    convex = interpolate(model_a, model_b, batches, ALPHAS, loss_fn=F.mse_loss)
    assert convex.barrier == pytest.approx(0.0, abs=1e-12)
    # −L(α) − chord = a·α(1 − α), highest at α = 1/2 (on the grid): a/4.
    concave = interpolate(model_a, model_b, batches, ALPHAS,
                          loss_fn=lambda out, target: -F.mse_loss(out, target))
    assert concave.barrier == pytest.approx(a / 4, rel=1e-12)


def test_the_barrier_is_measured_from_the_chord_not_from_the_higher_end_point():
    path = LinePath(alphas=np.array([-0.5, 0.0, 0.5, 1.0, 1.5]),
                    losses=np.array([9.0, 0.0, 1.5, 2.0, 9.0]), accuracies=None, bn="eval")
    # The chord at 1/2 is 1: the middle stands 0.5 above it (though below L(1)); the
    # points outside [0, 1] do not count.
    assert path.barrier == pytest.approx(0.5)


def test_the_barrier_needs_both_end_points_on_the_grid():
    path = LinePath(alphas=np.array([0.25, 0.5, 1.0]), losses=np.zeros(3), accuracies=None,
                    bn="eval")
    with pytest.raises(ValueError, match="^alphas must be a grid that includes 0 and 1"):
        _ = path.barrier


# --- networks with BatchNorm ---------------------------------------------------------------

def bn_mlp(seed: int) -> nn.Module:
    """The repository's MLP with BatchNorm, float64, with running statistics that are not
    those of the data (so that the three modes differ)."""
    torch.manual_seed(seed)
    model = mlp(IN, HIDDEN, CLASSES, batch_norm=True).double()
    scramble_batchnorm(model[2])
    return model


def make_batches(seed: int, sizes=BATCH_SIZES):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, IN, generator=gen, dtype=torch.float64),
             torch.randint(0, CLASSES, (n,), generator=gen)) for n in sizes]


def mean_loss(model: nn.Module, batches) -> float:
    """``Σ_b (n_b/N)·CE(model(x_b), y_b)`` in whatever mode ``model`` is in."""
    total = sum(x.shape[0] for x, _ in batches)
    with torch.no_grad():
        return sum(F.cross_entropy(model(x), y).item() * x.shape[0] / total for x, y in batches)


def evaluated(model: nn.Module, mode: str, batches, bn_batches=None) -> float:
    """The loss of ``model`` evaluated directly in BatchNorm mode ``mode``, on a copy."""
    model = copy.deepcopy(model)
    if mode == "recompute":
        recompute_by_hand(model, bn_batches or batches)
    model.train(mode == "train")
    return mean_loss(model, batches)


def recompute_by_hand(model: nn.Module, batches) -> None:
    """Running statistics as the plain mean, over batches, of each batch's mean and
    unbiased variance of the BatchNorm's inputs (``model[:2]``: Flatten, Linear)."""
    with torch.no_grad():
        inputs = [model[:2](x) for x, _ in batches]
        model[2].running_mean.copy_(torch.stack([h.mean(0) for h in inputs]).mean(0))
        model[2].running_var.copy_(torch.stack([h.var(0, unbiased=True) for h in inputs]).mean(0))


@pytest.mark.parametrize("bn", ["eval", "train", "recompute"])
def test_the_end_points_are_the_two_networks_evaluated_directly(bn):
    model_a, model_b, batches = bn_mlp(0), bn_mlp(1), make_batches(2)
    path = interpolate(model_a, model_b, batches, [0.0, 1.0], bn=bn)
    expected = [evaluated(model_a, bn, batches), evaluated(model_b, bn, batches)]
    if bn == "eval":
        np.testing.assert_array_equal(path.losses, expected)
    else:
        np.testing.assert_allclose(path.losses, expected, rtol=1e-12)
    assert path.bn == bn


def test_recompute_averages_the_statistics_of_bn_batches_not_of_the_evaluated_batches():
    model_a, model_b, batches = bn_mlp(0), bn_mlp(1), make_batches(2)
    bn_batches = make_batches(5, sizes=(8, 8, 4))
    path = interpolate(model_a, model_b, batches, [0.0], bn_batches=bn_batches)
    assert path.losses[0] == pytest.approx(evaluated(model_a, "recompute", batches, bn_batches),
                                           rel=1e-12)
    assert path.losses[0] != pytest.approx(evaluated(model_a, "recompute", batches), rel=1e-6)


def test_the_accuracy_is_the_fraction_of_all_examples_labelled_correctly():
    model_a, model_b, batches = bn_mlp(0), bn_mlp(1), make_batches(2)
    path = interpolate(model_a, model_b, batches, [0.0, 1.0], bn="eval")
    x = torch.cat([x for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    with torch.no_grad():
        expected = [(model.eval()(x).argmax(1) == y).double().mean().item()
                    for model in (copy.deepcopy(model_a), copy.deepcopy(model_b))]
    np.testing.assert_allclose(path.accuracies, expected, rtol=1e-15)


def test_without_batchnorm_the_three_modes_agree():
    torch.manual_seed(0)
    model_a = mlp(IN, HIDDEN, CLASSES).double()
    model_b = mlp(IN, HIDDEN, CLASSES).double()
    batches = make_batches(2)
    paths = [interpolate(model_a, model_b, batches, ALPHAS, bn=bn)
             for bn in ("recompute", "eval", "train")]
    for path in paths[1:]:
        np.testing.assert_array_equal(path.losses, paths[0].losses)
        np.testing.assert_array_equal(path.accuracies, paths[0].accuracies)


# --- the models are borrowed, not changed --------------------------------------------------

def borrowed_pair():
    """Two BatchNorm MLPs in states worth restoring: one in train mode with its BatchNorm
    in eval, one in eval mode."""
    model_a, model_b = bn_mlp(0), bn_mlp(1)
    model_a.train()
    model_a[2].eval()
    model_b.eval()
    return model_a, model_b


@pytest.mark.parametrize("bn", ["recompute", "eval", "train"])
def test_neither_model_changes(bn):
    model_a, model_b = borrowed_pair()
    before = snapshot(model_a), snapshot(model_b)
    interpolate(model_a, model_b, make_batches(2), ALPHAS, bn=bn)
    assert_unchanged(model_a, before[0])
    assert_unchanged(model_b, before[1])


def test_neither_model_changes_when_the_loss_raises_half_way():
    model_a, model_b = borrowed_pair()
    before = snapshot(model_a), snapshot(model_b)
    calls = []

    def failing_loss(out, target):
        calls.append(1)
        if len(calls) == 5:  # at α = −0.125, after the statistics were recomputed twice
            raise RuntimeError("loss failed")
        return F.cross_entropy(out, target)

    with pytest.raises(RuntimeError, match="loss failed"):
        interpolate(model_a, model_b, make_batches(2), ALPHAS, loss_fn=failing_loss)
    assert_unchanged(model_a, before[0])
    assert_unchanged(model_b, before[1])


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("model_b, match", [
    (lambda: mlp(IN, HIDDEN + 1, CLASSES, batch_norm=True).double(), r"shape"),
    (lambda: mlp(IN, HIDDEN, CLASSES, batch_norm=False).double(), r"keys missing: \['2\.bias'"),
    (lambda: mlp(IN, HIDDEN, CLASSES, batch_norm=True), r"dtype"),
])
def test_two_architectures_that_differ_are_refused_saying_what_differs(model_b, match):
    refused = f"^model_b must be of model_a's architecture.*{match}"
    with pytest.raises(ValueError, match=refused):
        interpolate(bn_mlp(0), model_b(), make_batches(2), [0.0, 1.0])
    with pytest.raises(ValueError, match="^model_b must be of model_a's architecture"):
        distance(bn_mlp(0), model_b())


@pytest.mark.parametrize("options, match", [
    ({"alphas": []}, r"^alphas must be a non-empty list of finite numbers, got \[\]"),
    ({"alphas": [0.0, float("nan")]}, r"^alphas must be a finite number, got nan"),
    ({"alphas": [0.0, np.inf]}, r"^alphas must be a finite number, got inf"),
    ({"alphas": ["a"]}, r"^alphas must be"),
    ({"bn": "batch"}, r"^bn must be one of 'recompute', 'eval', 'train', got 'batch'"),
    ({"bn_batches": []}, r"^bn_batches must be a non-empty list"),
    ({"batches": []}, r"^batches must be a non-empty list"),
    ({"loss_fn": 3}, r"^loss_fn must be callable"),
])
def test_bad_arguments_are_refused_naming_the_argument(options, match):
    arguments = {"batches": make_batches(2), "alphas": [0.0, 1.0], **options}
    batches, alphas = arguments.pop("batches"), arguments.pop("alphas")
    with pytest.raises(ValueError, match=match):
        interpolate(bn_mlp(0), bn_mlp(1), batches, alphas, **arguments)


# --- distance ------------------------------------------------------------------------------

def test_distance_is_one_norm_over_all_parameters_together():
    model_a, model_b = bn_mlp(0), bn_mlp(1)
    differences = torch.cat([(pa - pb).detach().reshape(-1) for pa, pb
                             in zip(model_a.parameters(), model_b.parameters())])
    assert distance(model_a, model_b) == pytest.approx(torch.linalg.norm(differences).item(),
                                                       rel=1e-14)
    assert distance(model_a, model_a) == 0.0
