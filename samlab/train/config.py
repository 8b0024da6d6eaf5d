"""The training configuration: one dataclass, saved as ``config.json`` with every run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

METHODS = ("sgd", "sam", "usam", "ssam", "asam")
MODELS = ("resnet20", "small_cnn", "mlp")
DATASETS = ("cifar10", "cifar10-jpeg", "digits", "random")
SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
BN_MODES = ("eval", "train")


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults follow SPEC §4 (ResNet-20 on CIFAR-10).

    ``method`` picks the optimizer: ``sgd`` (the base optimizer alone), ``sam``
    (normalized ascent, Foret et al.), ``usam``, ``ssam`` (unnormalized ascent +
    renormalization, Tan et al.) or ``asam`` (Kwon et al.). ``switch_epoch`` makes it
    late-phase: plain SGD before that epoch, ``method`` from it on (Zhou et al.).
    """

    name: str = "run"
    model: str = "resnet20"
    dataset: str = "cifar10"
    n_train: int | None = None          # a seeded subset of the training split (quick mode)
    n_val: int | None = None            # held out of the training set (None: the dataset's
                                        # default, 5,000 for CIFAR-10: 45,000 / 5,000)
    method: str = "sgd"
    rho: float = 0.05
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    epochs: int = 200
    batch_size: int = 128               # the global batch; each of N ranks takes 1/N of it
    schedule: str = "cosine"            # cosine | step (x step_gamma at step_epochs) | constant
    step_epochs: list[int] = field(default_factory=list)
    step_gamma: float = 0.1
    label_smoothing: float = 0.0
    switch_epoch: int | None = None     # late phase: base optimizer before, `method` from it on
    reset_on_switch: bool = False
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    precision: str = "auto"             # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    channels_last: bool | None = None   # None: on for CUDA
    augment: bool | None = None         # crop (pad 4) + flip; None: on for 32x32 images only
    sharpness_every: int = 0            # epochs between λ_max measurements (0: never)
    sharpness_subset: int = 5000        # fixed, seeded training examples for the Hessian
    sharpness_k: int = 2                # top-k eigenvalues (the late-phase paper's top-2)
    sharpness_bn_mode: str = "eval"
    trace_probes: int = 0               # Hutchinson probes for tr(H) (0: skip the trace)
    log_every: int = 0                  # steps between step-level records (0: epochs only)
    cpu_threads: int | None = None      # torch threads on CPU (None: 1 for models under
                                        # 200k parameters, whose ops are too small to split)
    runs_dir: str = "runs"

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, the value and what is allowed."""
        _choice("method", self.method, METHODS)
        _choice("model", self.model, MODELS)
        _choice("dataset", self.dataset, DATASETS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("sharpness_bn_mode", self.sharpness_bn_mode, BN_MODES)
        _number("lr", self.lr, lower=0.0, strict=True)
        _number("rho", self.rho, lower=0.0)
        _number("weight_decay", self.weight_decay, lower=0.0)
        _number("momentum", self.momentum, lower=0.0)
        _number("step_gamma", self.step_gamma, lower=0.0, strict=True)
        _number("label_smoothing", self.label_smoothing, lower=0.0)
        if self.label_smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        _integer("epochs", self.epochs, lower=1)
        _integer("batch_size", self.batch_size, lower=1)
        if self.n_val is not None:
            _integer("n_val", self.n_val, lower=0)
        _integer("seed", self.seed, lower=0)
        _integer("sharpness_every", self.sharpness_every, lower=0)
        _integer("sharpness_subset", self.sharpness_subset, lower=1)
        _integer("sharpness_k", self.sharpness_k, lower=1)
        _integer("trace_probes", self.trace_probes, lower=0)
        _integer("log_every", self.log_every, lower=0)
        if self.cpu_threads is not None:
            _integer("cpu_threads", self.cpu_threads, lower=1)
        if self.n_train is not None:
            _integer("n_train", self.n_train, lower=1)
        if self.switch_epoch is not None:
            _integer("switch_epoch", self.switch_epoch, lower=0)
            if self.switch_epoch > self.epochs:
                raise ValueError(
                    f"switch_epoch must be <= epochs ({self.epochs}), got {self.switch_epoch}"
                )
            if self.method == "sgd":
                raise ValueError("switch_epoch needs a SAM-family method to switch to "
                                 f"(one of {METHODS[1:]}), got method='sgd'")
        if not isinstance(self.step_epochs, (list, tuple)) or not all(
                isinstance(e, int) and e >= 0 for e in self.step_epochs):
            raise ValueError(
                f"step_epochs must be a list of integers >= 0, got {self.step_epochs!r}")
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty string without '/', got {self.name!r}")

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""
        from .checkpoint import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _number(name: str, value: Any, *, lower: float, strict: bool = False) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > lower if strict else value >= lower))
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {lower:g}, got {value!r}")


def _integer(name: str, value: Any, *, lower: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lower:
        raise ValueError(f"{name} must be an integer >= {lower}, got {value!r}")
