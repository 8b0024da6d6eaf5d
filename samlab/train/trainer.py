"""The trainer: SGD or the SAM family on a dataset, live, resumable, distributed.

One epoch: a pass over the (GPU-resident, augmented) training set with
``optimizer.step(closure)``; then validation and test; then λ_max (and tr(H)) when
due; then a checkpoint (atomic) and one line of ``metrics.jsonl``. Ctrl-C or a
kernel interrupt finishes the step in flight, saves a checkpoint of the exact
position (mid-epoch included) and stops: ``resume`` continues as if nothing had
happened (bit-for-bit on CPU). A non-finite loss stops the run with a clear
message and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import models, sharpness
from ..data import to_tensor
from ..optim import SAM, global_norm
from .checkpoint import (
    CHECKPOINT,
    CONFIG,
    append_metrics,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
    truncate_metrics,
)
from .config import TrainConfig

#: How often (in steps) the trainer looks at the loss and at a pending interrupt; each
#: look is one host sync, so not every step.
CHECK_EVERY = 25


class Callback:
    """Hooks a trainer calls; override what you need (all optional)."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Every ``config.log_every`` steps, with a ``kind="step"`` record."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each epoch, with the ``kind="epoch"`` record written to metrics.jsonl."""

    def on_train_end(self, trainer: Trainer, result: RunResult) -> None: ...


@dataclass
class RunResult:
    """How a run ended: ``completed``, ``interrupted`` (resumable) or ``diverged``."""

    status: str
    epochs_done: int
    run_dir: Path
    message: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        epochs = [r for r in self.records if r.get("kind") == "epoch"]
        return epochs[-1] if epochs else {}


class TrainingDiverged(RuntimeError):
    """The loss became non-finite."""


@dataclass
class _EpochSums:
    """Running sums of one epoch, kept on the device (no sync per step)."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    stat_steps: dict[str, int] = field(default_factory=dict)

    @classmethod
    def zeros(cls, device) -> _EpochSums:
        z = torch.zeros((), dtype=torch.float64, device=device)
        return cls(z.clone(), z.clone())

    def state(self) -> dict[str, Any]:
        return {"loss": self.loss.cpu(), "correct": self.correct.cpu(), "seen": self.seen,
                "stats": {k: v.cpu() for k, v in self.stats.items()},
                "stat_steps": dict(self.stat_steps)}

    @classmethod
    def from_state(cls, s: dict[str, Any], device) -> _EpochSums:
        return cls(s["loss"].to(device), s["correct"].to(device), int(s["seen"]),
                   {k: v.to(device) for k, v in s["stats"].items()}, dict(s["stat_steps"]))


class Trainer:
    """Train ``config`` and write ``runs/<name>/`` (config.json, metrics.jsonl, checkpoint.pt).

    >>> result = Trainer(TrainConfig(name="demo", dataset="digits", model="mlp",
    ...                              method="sam", epochs=5)).fit()
    """

    def __init__(self, config: TrainConfig, *, callbacks: Sequence[Callback] = (),
                 resume: bool = False, progress: bool = True, data=None):
        config.validate()
        self.config = config
        self.callbacks = list(callbacks)
        self.progress = progress
        self.run_dir = config.run_dir
        self._init_distributed()
        torch.manual_seed(config.seed)

        self.data = data if data is not None else _load_data(config)
        self.model = _build_model(config, self.data).to(self.device)
        # Random crops with 4 pixels of padding are for 32x32 images, not 8x8 digits.
        self.augment = (self.data.image_shape[:2] == (32, 32) if config.augment is None
                        else config.augment)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model  # what the optimizer steps: the DDP wrapper when distributed
        if self.world_size > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = _build_optimizer(config, self.net)
        self.train_loader = self._loader("train", train=True)
        self.steps_per_epoch = len(self.train_loader)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(config, self.steps_per_epoch))
        self._hessian_batches = None

        self._lr_used = self.optimizer.param_groups[0]["lr"]
        self.start_epoch, self.start_batch = 0, 0
        self._resume_sums: dict[str, Any] | None = None
        self._stop = threading.Event()
        if resume:
            self._load()
        elif self.is_main:
            self._fresh_run_dir()

    # -- setup --------------------------------------------------------------------------------
    def _init_distributed(self) -> None:
        cfg = self.config
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if cfg.device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            device = cfg.device
        if device == "cuda" and self.world_size > 1:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(
                backend="nccl" if self.device.type == "cuda" else "gloo")
        if cfg.batch_size % self.world_size:
            raise ValueError(f"batch_size must be divisible by the number of processes "
                             f"({self.world_size}), got {cfg.batch_size}")
        self.is_main = self.rank == 0
        on_cuda = self.device.type == "cuda"
        self.precision = ("bf16" if on_cuda else "fp32") if cfg.precision == "auto" \
            else cfg.precision
        self.channels_last = on_cuda if cfg.channels_last is None else cfg.channels_last

    def _loader(self, split: str, train: bool):
        from ..data import DeviceLoader

        d = self.data
        x, y = getattr(d, f"{split}_images"), getattr(d, f"{split}_labels")
        return DeviceLoader(
            x, y, self.config.batch_size if train else max(self.config.batch_size, 512),
            device=self.device, train=train, augment=train and self.augment,
            mean=d.mean, std=d.std, seed=self.config.seed, drop_last=train,
            channels_last=self.channels_last,
        )

    def _fresh_run_dir(self) -> None:
        run_dir = self.run_dir
        if (run_dir / CHECKPOINT).exists():
            raise FileExistsError(
                f"{run_dir} already holds a run: resume it (samlab train --resume {run_dir}) "
                "or choose another name"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        self.config.save(run_dir / CONFIG)
        (run_dir / "metrics.jsonl").write_text("")

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> RunResult:
        """Train from where the run stands to ``config.epochs``; return how it ended."""
        cfg = self.config
        records: list[dict[str, Any]] = []
        result = None
        for cb in self.callbacks:
            cb.on_train_begin(self)
        with self._deferred_interrupt(), self._cpu_threads():
            try:
                for epoch in range(self.start_epoch, cfg.epochs):
                    record = self._train_epoch(epoch)
                    if record is None:  # interrupted and saved
                        result = RunResult(
                            "interrupted", epoch, self.run_dir,
                            f"interrupted during epoch {epoch}; saved to {self.run_dir}/"
                            f"{CHECKPOINT}: resume with samlab train --resume {self.run_dir}",
                            records)
                        break
                    records.append(record)
                    for cb in self.callbacks:
                        cb.on_epoch_end(self, record)
                    if self._stop.is_set() and epoch + 1 < cfg.epochs:
                        result = RunResult(
                            "interrupted", epoch + 1, self.run_dir,
                            f"interrupted after epoch {epoch}; resume with "
                            f"samlab train --resume {self.run_dir}", records)
                        break
            except TrainingDiverged as err:
                result = RunResult("diverged", self._epochs_saved(), self.run_dir, str(err),
                                   records)
                if self.is_main:  # the outcome is part of the run's record
                    append_metrics(self.run_dir, {"kind": "diverged", "epoch": result.epochs_done,
                                                  "message": str(err)})
        if result is None:
            result = RunResult("completed", cfg.epochs, self.run_dir,
                               f"completed {cfg.epochs} epochs", records)
        if self.is_main:  # how the run ended is said even without progress bars
            print(f"samlab: {result.message}")
        for cb in self.callbacks:
            cb.on_train_end(self, result)
        return result

    def _train_epoch(self, epoch: int) -> dict[str, Any] | None:
        cfg, opt = self.config, self.optimizer
        self.net.train()
        if hasattr(opt, "set_epoch"):
            opt.set_epoch(epoch)
        start_batch = self.start_batch if epoch == self.start_epoch else 0
        self.train_loader.set_epoch(epoch, batch=start_batch)  # (seed, epoch) fix its randomness
        sums = (_EpochSums.from_state(self._resume_sums, self.device)
                if start_batch and self._resume_sums else _EpochSums.zeros(self.device))
        t0 = time.perf_counter()
        bar = _progress(self.steps_per_epoch, f"epoch {epoch}", start_batch,
                        enabled=self.progress and self.is_main)
        for i, (x, y) in enumerate(self.train_loader, start=start_batch):
            x, y = self._shard(x), self._shard(y)
            loss, correct = self._step(x, y)
            sums.loss += loss.double() * y.shape[0]
            sums.correct += correct
            sums.seen += y.shape[0]
            self._add_stats(sums)
            self._lr_used = self.optimizer.param_groups[0]["lr"]  # what this step used
            self.scheduler.step()
            bar.update(1)
            step = epoch * self.steps_per_epoch + i + 1
            if cfg.log_every and step % cfg.log_every == 0:
                self._log_step(epoch, step, loss)
            if (i + 1) % CHECK_EVERY == 0 or i + 1 == self.steps_per_epoch:
                if not math.isfinite(float(sums.loss)):
                    bar.close()
                    raise TrainingDiverged(self._diverged_message(epoch))
                bar.set_postfix(loss=f"{float(sums.loss) / max(sums.seen, 1):.4f}")
                if self._stop_requested() and i + 1 < self.steps_per_epoch:
                    bar.close()
                    self._save(epoch, i + 1, sums)
                    return None
        bar.close()
        train_time = time.perf_counter() - t0
        record = self._epoch_record(epoch, sums, train_time)
        self._save(epoch + 1, 0, None)
        if self.is_main:
            append_metrics(self.run_dir, record)
        return record

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, net, opt = self.config, self.net, self.optimizer
        outputs: list[torch.Tensor] = []

        def closure():
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                out = net(x)
                loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
            loss.backward()
            if not outputs:
                outputs.append(out.detach())
            return loss

        loss = opt.step(closure)
        correct = (outputs[0].argmax(1) == y).sum()
        return loss.detach(), correct

    def _add_stats(self, sums: _EpochSums) -> None:
        opt = self.optimizer
        if isinstance(opt, SAM):
            stats = opt.last_stats
        else:  # plain SGD: the gradient is still in .grad after the step
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            stats = {"grad_norm": global_norm(grads)}
        for k, v in stats.items():
            if k == "rho":
                continue
            v = v.detach().to(self.device, torch.float64)
            if k != "grad_norm" and isinstance(opt, SAM) and not torch.isfinite(v):
                continue  # the plain phase has no ascent: NaN there is not a measurement
            sums.stats[k] = sums.stats.get(k, torch.zeros((), dtype=torch.float64,
                                                          device=self.device)) + v
            sums.stat_steps[k] = sums.stat_steps.get(k, 0) + 1

    def _shard(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch."""
        if self.world_size == 1:
            return t
        return t.tensor_split(self.world_size)[self.rank]

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    # -- measurements -------------------------------------------------------------------------
    def _epoch_record(self, epoch: int, sums: _EpochSums, train_time: float) -> dict[str, Any]:
        cfg = self.config
        loss_sum, correct, seen = sums.loss, sums.correct.double(), sums.seen
        if self.world_size > 1:
            packed = torch.stack([loss_sum, correct, torch.tensor(float(seen), dtype=torch.float64,
                                                                  device=self.device)])
            torch.distributed.all_reduce(packed)
            loss_sum, correct, seen = packed[0], packed[1], int(packed[2])
        record: dict[str, Any] = {
            "kind": "epoch", "epoch": epoch, "step": (epoch + 1) * self.steps_per_epoch,
            "lr": self._lr_used,  # the rate the epoch's last step used
            "sam_active": bool(getattr(self.optimizer, "sam_active", False)),
            "train_loss": float(loss_sum) / max(seen, 1),
            "train_acc": float(correct) / max(seen, 1),
            "train_time": train_time,
        }
        for k, v in sums.stats.items():
            record[f"{k}_mean"] = float(v) / sums.stat_steps[k]
        for split in ("val", "test"):
            if len(getattr(self.data, f"{split}_labels")):
                record[f"{split}_loss"], record[f"{split}_acc"] = self.evaluate(split)
        if cfg.sharpness_every and ((epoch + 1) % cfg.sharpness_every == 0
                                    or epoch + 1 == cfg.epochs):
            t = time.perf_counter()
            record.update(self.measure_sharpness())
            record["sharpness_time"] = time.perf_counter() - t
        record["dataset"] = self.data.label
        return record

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float]:
        """Mean loss and accuracy on ``split`` ("val" or "test"), in eval mode."""
        loader = self._loader(split, train=False)
        self.model.eval()
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        n = 0
        for x, y in loader:
            x, y = self._shard(x), self._shard(y)
            with self._autocast():
                out = self.model(x)
            loss += F.cross_entropy(out.float(), y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
            n += y.shape[0]
        self.model.train()
        if self.world_size > 1:
            packed = torch.stack([loss, correct, torch.tensor(float(n), dtype=torch.float64,
                                                              device=self.device)])
            torch.distributed.all_reduce(packed)
            loss, correct, n = packed[0], packed[1], int(packed[2])
        return float(loss) / max(n, 1), float(correct) / max(n, 1)

    def measure_sharpness(self) -> dict[str, Any]:
        """Top-k Hessian eigenvalues (and trace) on the fixed training subset (SPEC §3)."""
        cfg = self.config
        if self._hessian_batches is None:
            d = self.data
            n = min(cfg.sharpness_subset, len(d.train_labels))
            x = to_tensor(d.train_images, mean=d.mean, std=d.std)
            self._hessian_batches = sharpness.fixed_subset(
                (x, torch.as_tensor(d.train_labels)), n=n, seed=cfg.seed, batch_size=cfg.batch_size,
                device=self.device)
        loss_fn = nn.CrossEntropyLoss()
        k = min(cfg.sharpness_k, sum(p.numel() for p in self.model.parameters()))
        eig = sharpness.top_eigenvalues(self.model, loss_fn, self._hessian_batches, k=k,
                                        bn_mode=cfg.sharpness_bn_mode, seed=cfg.seed)
        out: dict[str, Any] = {"lambda_max": eig.lambda_max,
                               "eigenvalues": [float(v) for v in eig.eigenvalues],
                               "sharpness_hvps": eig.n_hvp,
                               "sharpness_converged": bool(eig.converged),
                               "sharpness_bn_mode": cfg.sharpness_bn_mode}
        if cfg.trace_probes:
            tr = sharpness.hessian_trace(self.model, loss_fn, self._hessian_batches,
                                         n_probes=cfg.trace_probes, seed=cfg.seed,
                                         bn_mode=cfg.sharpness_bn_mode)
            out.update(trace=float(tr.estimate), trace_stderr=float(tr.stderr))
        return out

    def _log_step(self, epoch: int, step: int, loss: torch.Tensor) -> None:
        stats = getattr(self.optimizer, "last_stats", {})
        record = {"kind": "step", "epoch": epoch, "step": step, "loss": float(loss),
                  "lr": self._lr_used, "steps_per_epoch": self.steps_per_epoch,
                  **{k: float(v) for k, v in stats.items() if k != "rho"}}
        if self.is_main:
            append_metrics(self.run_dir, record)
        for cb in self.callbacks:
            cb.on_step(self, record)

    def _diverged_message(self, epoch: int) -> str:
        saved = self._epochs_saved()
        keep = (f"the last good checkpoint (after epoch {saved - 1}) is kept in "
                f"{self.run_dir / CHECKPOINT}") if saved else "no epoch had completed"
        cfg = self.config
        setting = f"method={cfg.method}, lr={cfg.lr}" + (
            f", rho={cfg.rho}" if cfg.method != "sgd" else "")
        smaller = "lr or rho" if cfg.method != "sgd" else "lr"
        return (f"the training loss became non-finite during epoch {epoch} ({setting}); the "
                f"run stopped and {keep}. A smaller {smaller} usually helps.")

    def _epochs_saved(self) -> int:
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return 0
        return int(load_checkpoint(path)["epoch"])

    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, epoch: int, batch: int, sums: _EpochSums | None) -> None:
        """Checkpoint the exact position: ``epoch`` and ``batch`` steps into it."""
        if not self.is_main:
            return
        state = {
            "epoch": epoch, "batch": batch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sums": sums.state() if sums is not None else None,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "config": self.config.to_dict(),
        }
        save_checkpoint(self.run_dir / CHECKPOINT, state)

    def _load(self) -> None:
        state = load_checkpoint(self.run_dir / CHECKPOINT, map_location=self.device)
        saved = TrainConfig.from_dict(state["config"])
        diff = {k: (v, getattr(self.config, k)) for k, v in saved.to_dict().items()
                if k != "runs_dir" and getattr(self.config, k) != v}
        if diff:
            changes = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume {self.run_dir} with a different config: {changes}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        self.start_epoch, self.start_batch = int(state["epoch"]), int(state["batch"])
        self._resume_sums = state["sums"]
        if self.is_main:  # records past the checkpoint belong to a timeline that is gone
            done = self.start_epoch * self.steps_per_epoch + self.start_batch
            truncate_metrics(self.run_dir, lambda r: r.get("epoch", -1) < self.start_epoch
                             or (r.get("kind") == "step" and r.get("step", 0) <= done))

    @contextmanager
    def _cpu_threads(self):
        """On CPU, small models run faster on one thread (their ops are too small to split)."""
        n = self.config.cpu_threads
        if n is None and self.device.type == "cpu":
            n = 1 if sum(p.numel() for p in self.model.parameters()) < 200_000 else None
        if n is None or self.device.type != "cpu":
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    # -- interrupts ---------------------------------------------------------------------------
    @contextmanager
    def _deferred_interrupt(self):
        """Ctrl-C (SIGINT, a Jupyter kernel interrupt) asks to stop after the step in flight.

        A second Ctrl-C interrupts at once (the last saved checkpoint stays as it was).
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop.is_set():
                raise KeyboardInterrupt
            self._stop.set()
            if self.is_main:
                print("\nsamlab: stopping after this step and saving a checkpoint "
                      "(Ctrl-C again to abort now)", flush=True)

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def request_stop(self) -> None:
        """Stop at the next check, saving a resumable checkpoint (as Ctrl-C does)."""
        self._stop.set()

    def _stop_requested(self) -> bool:
        stop = self._stop.is_set()
        if self.world_size > 1:  # all ranks stop at the same step
            flag = torch.tensor(float(stop), device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag)
            if stop:
                self._stop.set()
        return stop


# -- builders --------------------------------------------------------------------------------


def _load_data(config: TrainConfig):
    from ..data import load_dataset

    return load_dataset(config.dataset, n_train=config.n_train, n_val=config.n_val,
                        split_seed=config.seed, download=config.dataset == "cifar10")


def _build_model(config: TrainConfig, data) -> nn.Module:
    h, w, c = data.image_shape
    if config.model == "resnet20":
        if c != 3:
            raise ValueError(f"model 'resnet20' needs 3-channel images; dataset "
                             f"{config.dataset!r} has {c}: use model 'small_cnn' or 'mlp'")
        return models.resnet20(num_classes=data.num_classes)
    if config.model == "small_cnn":
        return models.small_cnn(num_classes=data.num_classes, in_channels=c)
    return models.mlp(in_features=c * h * w, hidden=64, num_classes=data.num_classes)


def _build_optimizer(config: TrainConfig, net: nn.Module) -> torch.optim.Optimizer:
    base = dict(lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                nesterov=config.nesterov)
    if config.method == "sgd":
        return torch.optim.SGD(net.parameters(), **base)
    ascent = {"sam": "normalized", "usam": "unnormalized", "ssam": "unnormalized",
              "asam": "adaptive"}[config.method]
    return SAM(net.parameters(), torch.optim.SGD, rho=config.rho, ascent=ascent,
               renormalize=config.method == "ssam", switch_epoch=config.switch_epoch,
               reset_on_switch=config.reset_on_switch, model=net, **base)


def _lr_lambda(config: TrainConfig, steps_per_epoch: int):
    """The learning-rate factor after ``step`` optimizer steps."""
    total = config.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        if config.schedule == "step":
            epoch = step // steps_per_epoch
            return config.step_gamma ** sum(epoch >= e for e in config.step_epochs)
        return 1.0

    return factor


def _progress(total: int, desc: str, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, leave=False, dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **kw) -> None: ...

    def close(self) -> None: ...


def read_run(run_dir: str | Path) -> tuple[TrainConfig, list[dict[str, Any]]]:
    """A finished or running run's config and metrics records."""
    run_dir = Path(run_dir)
    return TrainConfig.load(run_dir / CONFIG), read_metrics(run_dir)
