"""The trainer's checkpoint: the exact position of a run (epoch and batch, weights,
optimizer, scheduler, RNG, the open switch window), saved after the records it claims and
loaded on resume (docs/training.md#a-run-directory)."""

from __future__ import annotations

from typing import Any

import torch

from .config import TrainConfig
from .metrics import EpochSums


class Checkpointing:
    """The part of :class:`samlab.train.Trainer` that saves and loads its position."""

    def _save(self, epoch: int, batch: int, sums: EpochSums | None) -> None:
        """Checkpoint the exact position: ``epoch`` and ``batch`` steps into it."""
        if not self.is_main:
            return
        self.rundir.save_checkpoint({
            "epoch": epoch, "batch": batch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sums": sums.state() if sums is not None else None,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "config": self.config.to_dict(),
            # The switch window's origin, while the window is open and the run goes on.
            "w_switch": ({name: w for (name, _), w in zip(self.model.named_parameters(),
                                                          self._w_switch)}
                         if self._w_switch is not None and epoch < self.config.epochs
                         else None),
            # sharpness_compile="auto"'s decision, so that a resumed run measures as the
            # uninterrupted one would (compiled products round differently).
            "compile_hvps": self._compile_hvps,
        })

    def _load(self) -> None:
        rd = self.rundir
        if self.is_main:
            rd.remove_temporaries()
        state = rd.load_checkpoint(map_location=self.device)
        diff = config_diff(TrainConfig.from_dict(state["config"]), self.config)
        if diff:
            raise ValueError(f"cannot resume {self.run_dir} with a different config: "
                             f"{describe_diff(diff)}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        self.start_epoch, self.start_batch = int(state["epoch"]), int(state["batch"])
        self._resume_sums = state["sums"]
        self._compile_hvps = state.get("compile_hvps")
        if state.get("w_switch") is not None:
            w = state["w_switch"]
            self._w_switch = [w[name].to(self.device) for name, _ in self.model.named_parameters()]
        if self.is_main:  # records past the checkpoint belong to a timeline that is gone
            done = self.start_epoch * self.steps_per_epoch + self.start_batch
            rd.keep_records(lambda r: r.get("epoch", -1) < self.start_epoch
                            or (r.get("kind") == "step" and r.get("step", 0) <= done)
                            or (r.get("kind") == "switch_step" and _claimed(r, done)))


def _claimed(record: dict[str, Any], done: int) -> bool:
    """Whether a checkpoint ``done`` steps in claims a switch window's record: those of
    the steps it holds, and step 0, written at the switch, once a step followed it."""
    return record["step"] < done or (record["step"] == done and record["k"] > 0)


def config_diff(saved: TrainConfig, now: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The fields that affect results and differ (where a run lives does not)."""
    return {k: (v, getattr(now, k)) for k, v in saved.to_dict().items()
            if k not in ("runs_dir", "name") and getattr(now, k) != v}


def describe_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
