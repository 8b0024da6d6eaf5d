"""A model's whole observable state, to check that a function borrowed it and gave it back.

Landscape interpolation and every sharpness measurement run a caller's model in the mode
they need and must return it exactly as it was: weights and buffers (values and dtypes),
train/eval flags, ``requires_grad``, ``.grad`` (None stays None), and BatchNorm's
momentum and ``track_running_stats``.
"""

from __future__ import annotations

import torch
from torch import nn


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grad": {name: None if p.grad is None else p.grad.clone()
                 for name, p in model.named_parameters()},
        "bn": {name: (m.momentum, m.track_running_stats) for name, m in model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)},
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), f"{key} changed"
        assert after["state"][key].dtype == value.dtype, f"{key}'s dtype changed"
    for part in ("training", "requires_grad", "bn"):
        assert after[part] == before[part], part
    for name, g in before["grad"].items():
        if g is None:
            assert after["grad"][name] is None, f"{name}.grad appeared"
        else:
            assert torch.equal(after["grad"][name], g), f"{name}.grad changed"
