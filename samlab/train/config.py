"""The training configuration: one dataclass, saved as ``config.json`` with every run.

Every field is checked against what its consumer needs (docs/training.md#the-config), so
a config that validates never fails later for a config reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import methods, validate

MODELS = ("resnet20", "small_cnn", "mlp")
DATASETS = ("cifar10", "cifar10-jpeg", "digits", "random")
SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
BN_MODES = ("eval", "train")
#: How the fixed Hessian subset is taken (samlab.data.fixed_subset).
SUBSET_ORDERS = ("random", "first")
SHARPNESS_COMPILE = ("auto", "always", "never")
#: Lanczos takes at most this many Hessian-vector products per measurement.
MAX_SHARPNESS_K = 100
#: Longest run name: a path component (255 bytes on most filesystems), with room to spare.
MAX_NAME = 200


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults: ResNet-20 on CIFAR-10, the papers' recipe
    (docs/training.md#the-cifar-10-recipe).

    ``method`` is a row of :mod:`samlab.methods` (``sgd``, ``sam``, ``usam``, ``ssam``,
    ``asam``, ``rsam``). ``switch_epoch`` makes it late-phase: plain SGD before that
    epoch, ``method`` from it on (Zhou et al.). ``end_epoch`` switches back: ``method``
    before it, plain SGD from it on (without ``switch_epoch``: ``method`` from the start).
    ``switch_log_steps`` logs each of the first steps after the switch.

    :meth:`from_protocol` starts from a named protocol instead of these defaults
    (docs/training.md#protocols).
    """

    name: str = "run"
    model: str = "resnet20"
    dataset: str = "cifar10"
    n_train: int | None = None          # a seeded subset of the training split (quick mode)
    n_val: int | None = None            # held out of the training set (None: the dataset's
                                        # default, 5,000 for CIFAR-10: 45,000 / 5,000)
    n_test: int | None = None           # a fixed subset of the test set (quick mode)
    label_noise: float = 0.0            # this fraction of training labels made wrong
    label_noise_seed: int = 0           # which ones, and to what: not the training seed
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
    end_epoch: int | None = None        # the switch back: `method` before, base optimizer from it
    reset_on_switch: bool = False       # at both switches
    switch_log_steps: int = 0           # a switch_step record for each of the first N steps
    switch_log_sharpness_every: int = 0  # λ_max every K steps of that window (0: never)
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    precision: str = "auto"             # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    channels_last: bool | None = None   # None: on for CUDA
    compile: bool = False               # torch.compile the forward-backward of training steps
    augment: bool | None = None         # crop (pad 4) + flip; None: on for 32x32 images only
    sharpness_every: int = 0            # epochs between λ_max measurements (0: never)
    sharpness_subset: int = 5000        # fixed, seeded training examples for the Hessian
    sharpness_subset_order: str = "random"  # random (seeded draw) | first (the first N, in order)
    sharpness_k: int = 2                # top-k eigenvalues (the late-phase paper's top-2)
    sharpness_bn_mode: str = "eval"
    sharpness_compile: str = "auto"     # torch.compile the HVPs: auto | always | never
    trace_probes: int = 0               # Hutchinson probes for tr(H) (0: skip the trace)
    log_every: int = 0                  # steps between step-level records (0: epochs only)
    cpu_threads: int | None = None      # torch threads on CPU (None: 1 for models under
                                        # 200k parameters, whose ops are too small to split)
    runs_dir: str = "runs"

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, the value and what is allowed.

        Values are normalized on the way: NumPy scalars become Python numbers, a tuple of
        ``step_epochs`` a list, so the config saves as plain JSON.
        """
        v = validate
        self.name = _run_name(self.name)
        self.runs_dir = str(v.path("runs_dir", self.runs_dir))
        self.method = v.choice("method", self.method, methods.names())
        self.model = v.choice("model", self.model, MODELS)
        self.dataset = v.choice("dataset", self.dataset, DATASETS)
        self.schedule = v.choice("schedule", self.schedule, SCHEDULES)
        self.precision = v.choice("precision", self.precision, PRECISIONS)
        self.sharpness_bn_mode = v.choice("sharpness_bn_mode", self.sharpness_bn_mode, BN_MODES)
        self.sharpness_subset_order = v.choice("sharpness_subset_order",
                                               self.sharpness_subset_order, SUBSET_ORDERS)
        self.sharpness_compile = v.choice("sharpness_compile", self.sharpness_compile,
                                          SHARPNESS_COMPILE)
        self.device = _device(self.device)
        self.lr = v.number("lr", self.lr, low=0.0, strict_low=True)
        self.rho = v.number("rho", self.rho, low=0.0)
        self.weight_decay = v.number("weight_decay", self.weight_decay, low=0.0)
        self.momentum = v.number("momentum", self.momentum, low=0.0)
        self.step_gamma = v.number("step_gamma", self.step_gamma, low=0.0, strict_low=True)
        self.label_smoothing = v.number("label_smoothing", self.label_smoothing, low=0.0,
                                        high=1.0, strict_high=True)
        self.nesterov = v.flag("nesterov", self.nesterov)
        self.reset_on_switch = v.flag("reset_on_switch", self.reset_on_switch)
        self.channels_last = v.flag("channels_last", self.channels_last, none=True)
        self.compile = v.flag("compile", self.compile)
        self.augment = v.flag("augment", self.augment, none=True)
        self.epochs = v.integer("epochs", self.epochs, low=1)
        self.batch_size = v.integer("batch_size", self.batch_size, low=1)
        self.n_train = v.integer("n_train", self.n_train, low=1, none=True)
        self.n_val = v.integer("n_val", self.n_val, low=0, none=True)
        self.n_test = v.integer("n_test", self.n_test, low=1, none=True)
        self.label_noise = v.number("label_noise", self.label_noise, low=0.0, high=1.0)
        self.label_noise_seed = v.integer("label_noise_seed", self.label_noise_seed, low=0)
        self.seed = v.integer("seed", self.seed, low=0)
        self.sharpness_every = v.integer("sharpness_every", self.sharpness_every, low=0)
        self.sharpness_subset = v.integer("sharpness_subset", self.sharpness_subset, low=1)
        self.sharpness_k = v.integer("sharpness_k", self.sharpness_k, low=1,
                                     high=MAX_SHARPNESS_K)
        self.trace_probes = v.integer("trace_probes", self.trace_probes, low=0)
        if self.trace_probes == 1:
            raise v.fail("trace_probes", "0 (no trace) or an integer >= 2 (a standard error "
                         "needs two probes)", 1)
        self.log_every = v.integer("log_every", self.log_every, low=0)
        self.cpu_threads = v.integer("cpu_threads", self.cpu_threads, low=1, none=True)
        if self.n_train is not None and self.batch_size > self.n_train:
            raise v.fail("batch_size", f"at most n_train ({self.n_train}): the trainer drops "
                         "the last partial batch, so a larger one leaves no step",
                         self.batch_size)
        self.switch_epoch = v.integer("switch_epoch", self.switch_epoch, low=0, none=True)
        if self.switch_epoch is not None:
            if self.switch_epoch > self.epochs:
                raise v.fail("switch_epoch", f"<= epochs ({self.epochs})", self.switch_epoch)
            self._needs_sam_family("switch_epoch", "to switch to")
        self.end_epoch = v.integer("end_epoch", self.end_epoch, low=1, none=True)
        if self.end_epoch is not None:
            if self.end_epoch > self.epochs:
                raise v.fail("end_epoch", f"an integer <= epochs ({self.epochs})", self.end_epoch)
            if self.switch_epoch is not None and self.end_epoch <= self.switch_epoch:
                raise v.fail("end_epoch", f"an integer > switch_epoch ({self.switch_epoch})",
                             self.end_epoch)
            self._needs_sam_family("end_epoch", "to switch back from")
        self.switch_log_steps = v.integer("switch_log_steps", self.switch_log_steps, low=0)
        self.switch_log_sharpness_every = v.integer(
            "switch_log_sharpness_every", self.switch_log_sharpness_every, low=0)
        if self.switch_log_steps and self.switch_epoch is None:
            raise ValueError("switch_log_steps needs switch_epoch: it logs the first steps "
                             "after the switch to the method, and there is none")
        if self.switch_log_sharpness_every and not self.switch_log_steps:
            raise ValueError("switch_log_sharpness_every needs switch_log_steps > 0: it "
                             "measures inside that window of steps after the switch")
        if isinstance(self.step_epochs, tuple):
            self.step_epochs = list(self.step_epochs)
        if not isinstance(self.step_epochs, list):
            raise v.fail("step_epochs", "a list of integers >= 0", self.step_epochs)
        self.step_epochs = [v.integer("step_epochs", e, low=0) for e in self.step_epochs]

    def _needs_sam_family(self, name: str, what: str) -> None:
        if not methods.get_method(self.method).has_ascent:
            sam_family = [m for m in methods.names() if methods.get_method(m).has_ascent]
            raise ValueError(f"{name} needs a SAM-family method {what} (one of "
                             f"{', '.join(sam_family)}), got method={self.method!r}")

    # -- protocols ----------------------------------------------------------------------------
    @classmethod
    def from_protocol(cls, protocol: str, /, **overrides: Any) -> TrainConfig:
        """The config of a named protocol (:data:`~samlab.train.protocols.PROTOCOLS`), with
        ``overrides`` (any fields, ``name`` included) on top:
        ``TrainConfig.from_protocol("zhou2025", name="late", model="small_cnn")``.

        ``"zhou2025"`` is the late-phase authors' code defaults (Zhou et al., ICLR 2025;
        docs/training.md#protocols); ``"samlab"`` is this class's own defaults.
        """
        from .protocols import protocol as fields_of

        return cls.from_dict({**fields_of(protocol), **overrides})

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known fields: {sorted(known)}")
        return cls(**data)  # validates every field

    def to_json(self) -> str:
        """The config as ``config.json`` holds it."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""
        from ..files import atomic_write_text

        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """A config saved by :meth:`save`; a clear error for a missing or damaged file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is corrupt (not the JSON samlab writes: {err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} is corrupt (not a JSON object of config fields)")
        return cls.from_dict(data)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


#: One line of documentation per field: ``samlab train --help`` shows it.
HELP: dict[str, str] = {
    "name": "the run's directory inside runs_dir",
    "model": "the network",
    "dataset": "the data (cifar10-jpeg: the JPEG-recompressed copy, labelled so)",
    "n_train": "train on a seeded, stratified subset of this many images (default: all)",
    "n_val": "images held out of the training set for validation (default: the "
             "dataset's, 5,000 for CIFAR-10)",
    "n_test": "evaluate on a fixed, stratified subset of this many test images (default: all)",
    "label_noise": "give this fraction of the training labels a wrong class, in [0, 1] "
                   "(validation and test stay clean; docs/training.md#label-noise)",
    "label_noise_seed": "which labels the noise changes, and to what: the same for every "
                        "training seed and method",
    "method": "the optimizer: a row of the method table (docs/methods.md#the-table)",
    "rho": "perturbation radius ρ (on the ascent's own scale: docs/methods.md)",
    "lr": "peak learning rate η of the schedule",
    "weight_decay": "weight decay of the base SGD",
    "momentum": "heavy-ball momentum of the base SGD",
    "nesterov": "Nesterov momentum",
    "epochs": "epochs to train",
    "batch_size": "the global batch (each of N processes takes 1/N of it)",
    "schedule": "learning-rate schedule: cosine decay, steps at step_epochs, or constant",
    "step_epochs": "epochs at which the step schedule multiplies the rate by step_gamma",
    "step_gamma": "factor of each step of the step schedule",
    "label_smoothing": "label smoothing of the cross-entropy, in [0, 1)",
    "switch_epoch": "late phase: plain SGD before this epoch, the method from it on",
    "end_epoch": "switch back: the method before this epoch, plain SGD from it on",
    "reset_on_switch": "clear the momentum at each switch (as a second optimizer would)",
    "switch_log_steps": "a switch_step record (loss, distance from the switch) for each of "
                        "the first N steps after switch_epoch (0: none)",
    "switch_log_sharpness_every": "λ_max every K steps of the switch_log_steps window, "
                                  "its step 0 included (0: never)",
    "seed": "seed of the initialization, the split, the augmentation and the subset",
    "device": "auto, cpu, cuda or cuda:N",
    "precision": "auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16 autocast",
    "channels_last": "channels_last memory format (default: on for CUDA)",
    "compile": "torch.compile the training forward pass (compiles once per run, a minute "
               "or so; pays off on a GPU over many epochs)",
    "augment": "random crop (padding 4) and flip (default: on for 32x32 images)",
    "sharpness_every": "epochs between λ_max measurements (0: never; the last epoch too)",
    "sharpness_subset": "training images of the fixed Hessian subset",
    "sharpness_subset_order": "the subset: random (a seeded draw) or first (the first N "
                              "training images in the dataset's order, as Zhou et al.)",
    "sharpness_k": f"top-k Hessian eigenvalues per measurement (at most {MAX_SHARPNESS_K})",
    "sharpness_bn_mode": "BatchNorm during the measurement: eval (fixed statistics) or train",
    "sharpness_compile": "torch.compile the Hessian-vector products: auto (from the 2nd "
                         "measurement on, when the first one's time says it pays), always "
                         "or never",
    "trace_probes": "Hutchinson probes for tr(H) (0: no trace; otherwise at least 2)",
    "log_every": "steps between step records in metrics.jsonl (0: epochs only)",
    "cpu_threads": "torch threads on a CPU (default: 1 for models under 200k parameters)",
    "runs_dir": "where run directories live",
}


def choices(name: str) -> tuple[str, ...] | None:
    """The allowed values of field ``name``, if it is an enumeration."""
    return {"method": methods.names(), "model": MODELS, "dataset": DATASETS,
            "schedule": SCHEDULES, "precision": PRECISIONS,
            "sharpness_bn_mode": BN_MODES, "sharpness_subset_order": SUBSET_ORDERS,
            "sharpness_compile": SHARPNESS_COMPILE}.get(name)


def _run_name(name: Any) -> str:
    """A run's name is one directory inside ``runs_dir``: never a path that leaves it."""
    if not isinstance(name, str) or not name or name in (".", "..") or len(name) > MAX_NAME \
            or re.search(r"[/\\\x00]", name):
        raise validate.fail("name", f"a directory name of 1..{MAX_NAME} characters, not '.' "
                            "or '..', without '/', '\\' or NUL", name)
    return name


def _device(device: Any) -> str:
    if not (isinstance(device, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", device)):
        raise validate.fail("device", "'auto', 'cpu', 'cuda' or 'cuda:N'", device)
    return device
