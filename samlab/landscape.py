"""The loss along a straight line between two networks (docs/landscape.md).

``w(α) = (1 − α)·w_a + α·w_b``: at ``α = 0`` the network ``a``, at ``α = 1`` the network
``b``, outside ``[0, 1]`` the line continued past them. If the loss stays below the chord
joining its end points, the two solutions lie in one valley; a bump above the chord (the
:attr:`LinePath.barrier`) says a ridge separates them.

- :func:`interpolate` evaluates the loss (and accuracy) at each ``α``;
- :func:`distance` is ``‖w_a − w_b‖``, the length of the segment.

The loss follows the conventions of :mod:`samlab.sharpness`: ``batches`` is a list of
``(inputs, targets)`` on the models' device and ``L(w) = Σ_b (n_b / N) · loss_fn(model(x_b),
y_b)``. Both models are borrowed, not changed: every network on the line is a copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import validate
from .sharpness.hessian import check_batches, scalar_loss

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BNMode = Literal["recompute", "eval", "train"]

BN_MODES = ("recompute", "eval", "train")

#: How close an ``α`` must be to 0 or 1 to serve as an end point of the barrier's chord
#: (``np.linspace`` does not always hit them exactly).
END_TOL = 1e-9

__all__ = ["BN_MODES", "LinePath", "distance", "interpolate"]


@dataclass(frozen=True)
class LinePath:
    """The loss ``L(α)`` (and accuracy) at each ``α`` of the line, and the BatchNorm mode.

    ``accuracies`` is ``None`` where the targets are not class labels (integer, one per
    example) or the outputs are not 2-D logits.
    """

    alphas: np.ndarray
    losses: np.ndarray
    accuracies: np.ndarray | None
    bn: str

    @property
    def barrier(self) -> float:
        """The height of the loss above the chord between the end points (Entezari et al.,
        ICLR 2022): ``max_{α ∈ [0, 1]} L(α) − [(1 − α)·L(0) + α·L(1)]``.

        Taken over the evaluated ``α`` in ``[0, 1]``, so it is ``≥ 0`` (the end points
        themselves give 0) and a lower bound of the supremum over the whole segment: a
        grid too coarse can miss a narrow ridge. ``alphas`` must include 0 and 1.
        """
        a = self.alphas
        start, end = np.abs(a) <= END_TOL, np.abs(a - 1) <= END_TOL
        if not (start.any() and end.any()):
            raise validate.fail("alphas", "a grid that includes 0 and 1 to give a barrier",
                                a.tolist())
        l0, l1 = self.losses[start][0], self.losses[end][0]
        inside = (a >= -END_TOL) & (a <= 1 + END_TOL)
        t = a[inside]
        return float(np.max(self.losses[inside] - ((1 - t) * l0 + t * l1)))


def _check_model(name: str, model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise validate.fail(name, "a torch.nn.Module", type(model).__name__)
    return model


def _check_finite(name: str, model: nn.Module) -> None:
    """Every floating-point entry of ``model``'s state finite: a NaN weight would make
    every point of the line NaN, even the other model's end."""
    for key, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = t[~torch.isfinite(t)].flatten()[0].item()
            raise ValueError(f"{name} must have finite weights, got {bad} in {key} "
                             f"({int((~torch.isfinite(t)).sum())} of {t.numel()} entries): "
                             "a run that diverged has no line to walk")


def _check_same_architecture(model_a: nn.Module, model_b: nn.Module) -> None:
    """Same ``state_dict`` keys, and at each key the same shape and dtype."""
    sa, sb = model_a.state_dict(), model_b.state_dict()
    missing, extra = sorted(sa.keys() - sb.keys()), sorted(sb.keys() - sa.keys())
    if missing or extra:
        got = "; ".join(part for part in (f"keys missing: {missing}" if missing else "",
                                          f"extra: {extra}" if extra else "") if part)
        raise ValueError("model_b must be of model_a's architecture (the same "
                         f"state_dict keys), got {got}")
    for key, ta in sa.items():
        tb = sb[key]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            raise ValueError(
                "model_b must be of model_a's architecture (the same shape and dtype "
                f"at every state_dict key), got {key} of {tuple(tb.shape)} {tb.dtype} where "
                f"model_a has {tuple(ta.shape)} {ta.dtype}")


def _check_alphas(alphas) -> np.ndarray:
    arr = validate.numbers("alphas", alphas)
    if arr.ndim != 1 or arr.size == 0:
        raise validate.fail("alphas", "a non-empty list of finite numbers", alphas)
    return arr


def _recompute_bn(model: nn.Module, norms: list[_BatchNorm], batches: list[Batch]) -> None:
    """Reset the running statistics and average them afresh over ``batches``, as
    ``torch.optim.swa_utils.update_bn`` does (``momentum=None``: the plain mean of the
    batch statistics)."""
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for x, _ in batches:
        model(x)
    for m in norms:
        m.eval()


def _evaluate(model: nn.Module, loss_fn: LossFn, batches: list[Batch],
              classify: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``Σ_b (n_b/N)·loss_fn(model(x_b), y_b)`` and the number of correct labels, as
    tensors on the device: one transfer for the whole line, not one per batch."""
    total = sum(x.shape[0] for x, _ in batches)
    loss, correct = 0.0, 0
    for x, y in batches:
        out = model(x)
        loss = loss + scalar_loss(loss_fn(out, y)) * (x.shape[0] / total)
        classify = classify and out.ndim == 2 and out.shape[0] == y.shape[0]
        if classify:
            correct = correct + (out.argmax(dim=1) == y).sum()
    return loss, (correct if classify else None)


def interpolate(model_a: nn.Module, model_b: nn.Module, batches: Sequence[Batch],
                alphas: Sequence[float] | np.ndarray, *, loss_fn: LossFn = F.cross_entropy,
                bn: BNMode = "recompute",
                bn_batches: Sequence[Batch] | None = None) -> LinePath:
    """The loss ``L(w(α))`` and accuracy along ``w(α) = (1 − α)·w_a + α·w_b``.

    Every floating-point entry of the ``state_dict`` is interpolated: parameters and
    buffers (BatchNorm's running statistics among them); integer buffers (BatchNorm's
    ``num_batches_tracked``) are ``model_a``'s. ``L`` is the example-weighted mean over
    ``batches``, ``Σ_b (n_b/N)·loss_fn(model(x_b), y_b)``, and the accuracy likewise.
    Dropout is off. BatchNorm (docs/landscape.md#batchnorm), ``bn``:

    - ``"recompute"``: at each ``α``, reset the running statistics, average them afresh
      in train mode over ``bn_batches`` (default ``batches``), then evaluate in eval
      mode. Interpolated statistics do not describe the interpolated weights' features;
      recomputed ones do.
    - ``"eval"``: evaluate with the interpolated running statistics.
    - ``"train"``: normalize each batch with its own statistics.

    Neither model changes, also when the call raises: the line is walked by a
    ``copy.deepcopy`` of ``model_a`` (one more model in memory), into which the
    interpolated state is written once per ``α``.
    """
    _check_model("model_a", model_a)
    _check_model("model_b", model_b)
    _check_same_architecture(model_a, model_b)
    _check_finite("model_a", model_a)
    _check_finite("model_b", model_b)
    batches = check_batches(batches)
    alphas = _check_alphas(alphas)
    if not callable(loss_fn):
        raise validate.fail("loss_fn", "callable", type(loss_fn).__name__)
    validate.choice("bn", bn, BN_MODES)
    if bn_batches is None:
        bn_batches = batches
    else:
        try:
            bn_batches = check_batches(bn_batches)
        except ValueError as error:  # its messages name "batches"; this argument is bn_
            raise ValueError(f"bn_{error}") from None
    classify = all(y.ndim == 1 and not (y.is_floating_point() or y.is_complex())
                   for _, y in batches)

    with torch.no_grad():
        model = copy.deepcopy(model_a)
        state = model.state_dict()  # aliases of the copy's tensors: writing them loads it
        state_a, state_b = model_a.state_dict(), model_b.state_dict()
        line = [(w, state_a[k], state_b[k].to(w.device))
                for k, w in state.items() if w.is_floating_point()]
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        model.eval()
        if bn == "train":
            for m in norms:
                m.train()
                m.track_running_stats = False
        losses, corrects = [], []
        for alpha in alphas.tolist():
            for w, w_a, w_b in line:
                # In place, no new tensors per α; lerp gives w_a and w_b exactly at 0 and 1.
                torch.lerp(w_a, w_b, alpha, out=w)
            if bn == "recompute" and norms:
                _recompute_bn(model, norms, bn_batches)
            loss, correct = _evaluate(model, loss_fn, batches, classify)
            losses.append(loss)
            corrects.append(correct)

    accuracies = None
    if all(c is not None for c in corrects):
        n = sum(x.shape[0] for x, _ in batches)
        accuracies = torch.stack(corrects).cpu().numpy() / n
    return LinePath(alphas=alphas, losses=torch.stack(losses).double().cpu().numpy(),
                    accuracies=accuracies, bn=bn)


def distance(model_a: nn.Module, model_b: nn.Module) -> float:
    """``‖w_a − w_b‖``: one Euclidean norm over all parameters together, in float64.

    The length of the segment :func:`interpolate` walks from ``α = 0`` to ``α = 1``.
    """
    _check_model("model_a", model_a)
    _check_model("model_b", model_b)
    _check_same_architecture(model_a, model_b)
    params_b = dict(model_b.named_parameters())
    with torch.no_grad():
        squares = [torch.linalg.vector_norm(p - params_b[name].to(p.device),
                                            dtype=torch.float64).item() ** 2
                   for name, p in model_a.named_parameters()]
    return math.sqrt(sum(squares))
