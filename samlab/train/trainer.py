"""The trainer: SGD or the SAM family on a dataset, live, resumable, distributed.

One epoch: a pass over the (GPU-resident, augmented) training set with
``optimizer.step(closure)``; then validation and test; then λ_max (and tr(H)) when
due; then the epoch's record and, after it, the checkpoint (docs/training.md). With
``switch_log_steps`` the first steps after the switch to SAM get a record each, with the
distance ``‖w − w_switch‖`` from the weights at the switch (docs/training.md#the-switch-window).
Ctrl-C, a kernel interrupt or SIGTERM (a batch scheduler, ``docker stop``) finishes the
step in flight, saves a checkpoint of the exact position (mid-epoch included) and
stops: ``resume`` continues as if nothing had happened (bit-for-bit on CPU). A
non-finite loss stops the run with a clear message and leaves the last good
checkpoint in place. One trainer at a time holds a run directory (its lock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DeviceLoader, ImageData
from ..methods import get_method
from .builders import build_model, build_optimizer, load_data, lr_lambda
from .checkpointing import Checkpointing, config_diff, describe_diff
from .config import TrainConfig
from .metrics import EpochSums, all_reduce_sum, evaluate, measure_sharpness, sharpness_batches
from .placement import Placement
from .rundir import CHECKPOINT, RunDir, RunResult
from .stopping import StopRequest
from .switch_window import SwitchWindow

#: How often (in steps) the trainer looks at the loss and at a pending interrupt; each
#: look is one host sync, so not every step. A non-finite loss stops the run within it.
CHECK_EVERY = 25

#: Exit statuses of ``samlab train`` for each way a run ends (SIGINT: 128 + 2, SIGTERM:
#: 128 + 15, as shells report a process killed by them).
EXIT_STATUS = {"completed": 0, "diverged": 3, "interrupted": 130, "terminated": 143}


class Callback:
    """Hooks a trainer calls; override what you need (all optional)."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Every ``config.log_every`` steps, with a ``kind="step"`` record."""

    def on_switch_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """At the switch and after each step of the ``config.switch_log_steps`` window,
        with a ``kind="switch_step"`` record."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each epoch, with the ``kind="epoch"`` record written to metrics.jsonl."""

    def on_train_end(self, trainer: Trainer, result: RunResult) -> None: ...


class TrainingDiverged(RuntimeError):
    """The loss became non-finite."""


class Trainer(SwitchWindow, Checkpointing):
    """Train ``config`` and write ``runs/<name>/`` (config.json, metrics.jsonl, checkpoint.pt).

    >>> result = Trainer(TrainConfig(name="demo", dataset="digits", model="mlp",
    ...                              method="sam", epochs=5)).fit()

    The run directory is locked from here until :meth:`fit` returns: a second trainer
    on it raises :class:`~samlab.train.rundir.RunInUse`.
    """

    def __init__(self, config: TrainConfig, *, callbacks: Sequence[Callback] = (),
                 resume: bool = False, progress: bool = True, report: bool = True,
                 data: ImageData | None = None):
        config.validate()
        self.config = config
        self.callbacks = list(callbacks)
        self.progress = progress
        self.report = report  # print how the run ended (a sweep has its own progress bar)
        self.rundir = RunDir.of(config)
        self.run_dir = self.rundir.path
        self.placement = Placement.for_config(config)
        self.device, self.world_size = self.placement.device, self.placement.world_size
        self.is_main = self.placement.is_main
        fresh = not self.run_dir.exists()
        self._lock = self.rundir.acquire() if self.is_main else None
        try:
            self._build(data, resume)
        except BaseException:
            self.close()
            if fresh and self.is_main:  # a failed start leaves no directory of a lone .lock
                self.rundir.remove_if_only_lock()
            raise

    def _build(self, data: ImageData | None, resume: bool) -> None:
        config = self.config
        torch.manual_seed(config.seed)
        self.data = data if data is not None else load_data(config)
        n_train = len(self.data.train_labels)
        if config.batch_size > n_train:
            raise ValueError(f"batch_size must be at most the {n_train} training images of "
                             f"{self.data.label}, got {config.batch_size}")
        self.model = build_model(config, self.data).to(self.device)
        # Random crops with 4 pixels of padding are for 32x32 images, not 8x8 digits.
        self.augment = (self.data.image_shape[:2] == (32, 32) if config.augment is None
                        else config.augment)
        if self.placement.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model  # what the optimizer steps: the DDP wrapper when distributed
        if self.world_size > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = build_optimizer(config, self.net)
        # What a training step calls: the same module, compiled if asked. The optimizer,
        # evaluation, sharpness and checkpoints keep the eager module (same parameters).
        self.step_net = torch.compile(self.net) if config.compile else self.net
        self.train_loader = self._loader("train", train=True)
        self.steps_per_epoch = len(self.train_loader)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(config, self.steps_per_epoch))
        self._hessian_batches = None
        self._compile_hvps: bool | None = None  # sharpness_compile="auto": decided once
        # The switch window: optimizer steps done at the switch, and w_switch while it is open.
        self._switch_at = (config.switch_epoch * self.steps_per_epoch
                           if config.switch_log_steps and config.switch_epoch is not None
                           and config.switch_epoch < config.epochs else None)
        self._w_switch: list[torch.Tensor] | None = None

        self._lr_used = self.optimizer.param_groups[0]["lr"]
        self.start_epoch, self.start_batch = 0, 0
        self._resume_sums: dict[str, Any] | None = None
        self._stop = StopRequest(announce=self.is_main)
        if resume:
            self._load()
        elif self.is_main:
            self._create_run_dir()

    def close(self) -> None:
        """Release the run directory (:meth:`fit` does it when it returns)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __del__(self):
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    # -- setup --------------------------------------------------------------------------------
    def _loader(self, split: str, train: bool) -> DeviceLoader:
        d = self.data
        x, y = getattr(d, f"{split}_images"), getattr(d, f"{split}_labels")
        return DeviceLoader(
            x, y, self.config.batch_size if train else max(self.config.batch_size, 512),
            device=self.device, train=train, augment=train and self.augment,
            mean=d.mean, std=d.std, seed=self.config.seed, drop_last=train,
            channels_last=self.placement.channels_last,
        )

    def _create_run_dir(self) -> None:
        rd = self.rundir
        if rd.checkpoint_file.exists():
            saved = rd.read_config() if rd.config_file.is_file() else None
            diff = config_diff(saved, self.config) if saved is not None else {}
            if diff:
                raise ValueError(f"{rd.path} already holds a run with another config "
                                 f"({describe_diff(diff)}): choose another name, or delete it")
            raise FileExistsError(
                f"{rd.path} already holds a run: resume it (samlab train --resume {rd.path}) "
                "or choose another name"
            )
        rd.remove_temporaries()  # of a start killed before its first checkpoint
        rd.write_config(self.config)
        rd.start_records()

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> RunResult:
        """Train from where the run stands to ``config.epochs``; return how it ended."""
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> RunResult:
        cfg = self.config
        records: list[dict[str, Any]] = []
        result = None
        for cb in self.callbacks:
            cb.on_train_begin(self)
        with self._stop.on_signals(), self.placement.cpu_threads(self.model, cfg.cpu_threads):
            try:
                for epoch in range(self.start_epoch, cfg.epochs):
                    record = self._train_epoch(epoch)
                    if record is None:  # interrupted and saved
                        result = self._interrupted(epoch, f"during epoch {epoch}; saved to "
                                                   f"{self.run_dir / CHECKPOINT}", records)
                        break
                    records.append(record)
                    for cb in self.callbacks:
                        cb.on_epoch_end(self, record)
                    if self._stop.is_set() and epoch + 1 < cfg.epochs:
                        result = self._interrupted(epoch + 1, f"after epoch {epoch}", records)
                        break
            except TrainingDiverged as err:
                result = RunResult("diverged", self._epochs_saved(), self.run_dir, str(err),
                                   records, cfg)
                if self.is_main:  # the outcome is part of the run's record
                    self.rundir.append({"kind": "diverged", "epoch": result.epochs_done,
                                        "message": str(err)})
        if result is None:
            done = f"completed {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}"
            result = RunResult("completed", cfg.epochs, self.run_dir, done, records, cfg)
        if self.is_main and self.report:  # said even without progress bars
            print(f"samlab: {result.message}", flush=True)
        for cb in self.callbacks:
            cb.on_train_end(self, result)
        return result

    def _interrupted(self, epochs_done: int, where: str, records) -> RunResult:
        by = f" by {self.stop_signal}" if self.stop_signal else ""
        return RunResult("interrupted", epochs_done, self.run_dir,
                         f"interrupted{by} {where}: resume with samlab train --resume "
                         f"{self.run_dir}", records, self.config)

    def _train_epoch(self, epoch: int) -> dict[str, Any] | None:
        cfg, opt = self.config, self.optimizer
        self.net.train()
        opt.set_epoch(epoch)
        start_batch = self.start_batch if epoch == self.start_epoch else 0
        self.train_loader.set_epoch(epoch, batch=start_batch)  # (seed, epoch) fix its randomness
        sums = (EpochSums.from_state(self._resume_sums, self.device)
                if start_batch and self._resume_sums else EpochSums.zeros(self.device))
        t0 = time.perf_counter()
        bar = _progress(self.steps_per_epoch, f"epoch {epoch}", start_batch,
                        enabled=self.progress and self.is_main)
        if epoch == cfg.switch_epoch and start_batch == 0 and self._switch_at is not None:
            self._open_switch_window(epoch)
        for i, (x, y) in enumerate(self.train_loader, start=start_batch):
            loss = self.train_step(x, y, sums)
            bar.update(1)
            step = epoch * self.steps_per_epoch + i + 1
            if cfg.log_every and step % cfg.log_every == 0:
                self._log_step(epoch, step, loss)
            if self._w_switch is not None:
                self._log_switch_step(epoch, step, loss)
            if (i + 1) % CHECK_EVERY == 0 or i + 1 == self.steps_per_epoch:
                mean = sums.mean_loss()
                if not math.isfinite(mean):
                    bar.close()
                    raise TrainingDiverged(self._diverged_message(epoch))
                bar.set_postfix(loss=f"{mean:.4f}")
                if self._stop.agreed(self.world_size, self.device) \
                        and i + 1 < self.steps_per_epoch:
                    bar.close()
                    self._save(epoch, i + 1, sums)
                    return None
        bar.close()
        record = self._epoch_record(epoch, sums, time.perf_counter() - t0)
        if self.is_main:  # the record first, then the checkpoint that claims it
            self.rundir.append(record)
        self._save(epoch + 1, 0, None)
        return record

    def train_step(self, x: torch.Tensor, y: torch.Tensor, sums: EpochSums) -> torch.Tensor:
        """One optimizer step on the global batch ``(x, y)``, added to ``sums``.

        No host synchronization: the loss, the accuracy and the optimizer's statistics
        stay on the device until the trainer looks at them.
        """
        cfg, net, opt = self.config, self.step_net, self.optimizer
        x, y = self.placement.shard(x), self.placement.shard(y)
        outputs: list[torch.Tensor] = []

        def closure():
            opt.zero_grad(set_to_none=True)
            with self.placement.autocast():
                out = net(x)
                loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
            loss.backward()
            if not outputs:
                outputs.append(out.detach())
            return loss

        loss = opt.step(closure).detach()
        correct = (outputs[0].argmax(1) == y).sum()
        sums.add_step(loss, correct, y.shape[0], opt.last_stats)
        self._lr_used = opt.param_groups[0]["lr"]  # what this step used
        self.scheduler.step()
        return loss

    # -- measurements -------------------------------------------------------------------------
    def _epoch_record(self, epoch: int, sums: EpochSums, train_time: float) -> dict[str, Any]:
        cfg = self.config
        loss_sum, correct, seen = all_reduce_sum([sums.loss, sums.correct, sums.seen],
                                                 self.device, self.world_size)
        record: dict[str, Any] = {
            "kind": "epoch", "epoch": epoch, "step": (epoch + 1) * self.steps_per_epoch,
            "lr": self._lr_used,  # the rate the epoch's last step used
            "sam_active": self.optimizer.sam_active,
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "train_time": train_time,
            **sums.stat_means(),
        }
        t0 = time.perf_counter()
        for split in ("val", "test"):
            if len(getattr(self.data, f"{split}_labels")):
                record[f"{split}_loss"], record[f"{split}_acc"] = self.evaluate(split)
        record["eval_time"] = time.perf_counter() - t0
        if self._sharpness_due(epoch):
            left = sum(map(self._sharpness_due, range(epoch + 1, cfg.epochs)))
            record.update(self.measure_sharpness(measurements_left=left))
        record["dataset"] = self.data.label
        return record

    def evaluate(self, split: str) -> tuple[float, float]:
        """Mean loss and accuracy on ``split`` ("val" or "test"), in eval mode."""
        shard = self.placement.shard
        batches = ((shard(x), shard(y)) for x, y in self._loader(split, train=False))
        return evaluate(self.model, batches, self.placement.autocast, self.device,
                        self.world_size)

    def _sharpness_due(self, epoch: int) -> bool:
        """λ_max is measured after every ``sharpness_every``-th epoch, and the last."""
        every, epochs = self.config.sharpness_every, self.config.epochs
        return bool(every) and ((epoch + 1) % every == 0 or epoch + 1 == epochs)

    def measure_sharpness(self, measurements_left: int | None = None) -> dict[str, Any]:
        """Top-k Hessian eigenvalues (and trace) on the fixed training subset, with the
        seconds it took (``sharpness_time``; ``lambda_max_time`` for the eigenvalues alone).

        With ``sharpness_compile="auto"`` the first measurement of the schedule (one given
        ``measurements_left``) runs eagerly, and its eigenvalues' time decides, once,
        whether the measurements left compile their products
        (:func:`samlab.sharpness.compile_pays_off`, docs/sharpness.md#speed).
        """
        cfg = self.config
        if self._hessian_batches is None:
            self._hessian_batches = sharpness_batches(cfg, self.data, self.device)
        compile = {"always": True, "never": False}.get(cfg.sharpness_compile,
                                                       bool(self._compile_hvps))
        t = time.perf_counter()
        out = measure_sharpness(self.model, self._hessian_batches, cfg, compile=compile)
        out["sharpness_time"] = time.perf_counter() - t
        if (cfg.sharpness_compile == "auto" and self._compile_hvps is None
                and measurements_left is not None):
            from ..sharpness import compile_pays_off

            self._compile_hvps = compile_pays_off(out["lambda_max_time"], measurements_left)
        return out

    def _log_step(self, epoch: int, step: int, loss: torch.Tensor) -> None:
        stats = self.optimizer.last_stats
        record = {"kind": "step", "epoch": epoch, "step": step, "loss": float(loss),
                  "lr": self._lr_used, "steps_per_epoch": self.steps_per_epoch,
                  **{k: float(v) for k, v in stats.items() if k != "rho"}}
        if self.is_main:
            self.rundir.append(record)
        for cb in self.callbacks:
            cb.on_step(self, record)

    def _diverged_message(self, epoch: int) -> str:
        saved = self._epochs_saved()
        keep = (f"the last good checkpoint (after epoch {saved - 1}) is kept in "
                f"{self.run_dir / CHECKPOINT}") if saved else "no epoch had completed"
        cfg = self.config
        has_rho = get_method(cfg.method).has_ascent
        setting = f"method={cfg.method}, lr={cfg.lr}" + (f", rho={cfg.rho}" if has_rho else "")
        return (f"the training loss became non-finite during epoch {epoch} ({setting}); the "
                f"run stopped and {keep}. A smaller {'lr or rho' if has_rho else 'lr'} "
                "usually helps.")

    def _epochs_saved(self) -> int:
        return self.rundir.epochs_done()

    # -- stopping -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop at the next check, saving a resumable checkpoint (as Ctrl-C does)."""
        self._stop.set()

    @property
    def stop_signal(self) -> str | None:
        """``"SIGINT"`` or ``"SIGTERM"`` once a signal asked the run to stop."""
        return self._stop.signal


def _progress(total: int, desc: str, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, leave=False, dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **kw) -> None: ...

    def close(self) -> None: ...
