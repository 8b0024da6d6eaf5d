"""The truth the training tests compare against, written out here, not taken from samlab.

Nothing here imports samlab: the cosine schedule is the formula of
docs/training.md#the-cifar-10-recipe, the evaluation is
plain torch on the raw uint8 images, and the comparisons are exact (``torch.equal``), so
a test that compares the trainer with them compares it with the claim, not with itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Record fields that measure wall time: they differ between any two runs.
WALL_TIME_FIELDS = frozenset({"train_time", "eval_time", "sharpness_time",
                              "lambda_max_time"})


def cosine_lr(lr: float, steps_done: int, total_steps: int) -> float:
    """The cosine decay of docs/training.md#the-cifar-10-recipe: ``η_t = η · ½ (1 + cos(π t / T))``
    after ``t`` of ``T`` steps."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * steps_done / total_steps))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file, parsed here (not with samlab's reader)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def epoch_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") == "epoch"]


def without_wall_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in WALL_TIME_FIELDS} for r in records]


def load_weights_only(path: Path) -> dict[str, Any]:
    """A checkpoint as a user loads it: tensors and plain values only, no code runs."""
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_identical(a: Any, b: Any, where: str = "") -> None:
    """``a`` and ``b`` are the same nested structure with bit-identical tensors."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{list(a.shape)} " \
                                                          f"vs {b.dtype}{list(b.shape)}"
        assert torch.equal(a, b), f"{where}: tensors differ (max |diff| " \
                                  f"{(a.double() - b.double()).abs().max().item():.3g})"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), \
            f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def normalize(images: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 ``[N, H, W, C]`` → float32 ``[N, C, H, W]`` = ``(x/255 − mean) / std``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double() / 255
    m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    return ((x - m) / s).float()


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, mean, std
             ) -> tuple[float, float, int]:
    """``(mean cross-entropy, accuracy, number correct)`` of ``model`` in eval mode, one batch."""
    model.eval()
    out = model(normalize(images, mean, std)).double()
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    correct = int((out.argmax(1) == y).sum())
    return float(F.cross_entropy(out, y)), correct / len(y), correct
