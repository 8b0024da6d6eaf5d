"""The switch window: a record for each of the first steps after the switch to SAM
(docs/training.md#the-switch-window), with the distance ``‖w − w_switch‖`` from the weights
at the switch and, every ``switch_log_sharpness_every`` steps, λ_max."""

from __future__ import annotations

from typing import Any

import torch

from ..optim import global_norm


class SwitchWindow:
    """The part of :class:`samlab.train.Trainer` that writes the switch window's records."""

    def _open_switch_window(self, epoch: int) -> None:
        """At the switch, before the first step of ``config.method``: keep ``w_switch``, and
        write the window's step 0 (distance 0; λ_max at ``w_switch`` when measured)."""
        self._w_switch = [p.detach().clone() for p in self.model.parameters()]
        record = {"kind": "switch_step", "epoch": epoch, "step": self._switch_at, "k": 0,
                  "distance": 0.0, "lr": self.optimizer.param_groups[0]["lr"]}
        self._write_switch_record(record)

    def _log_switch_step(self, epoch: int, step: int, loss: torch.Tensor) -> None:
        """The record of the ``k``-th step after the switch: the step's mini-batch loss at
        the weights it started from and the optimizer's statistics (as a step record),
        and ``distance = ‖w − w_switch‖`` after it, one norm over all parameters."""
        k = step - self._switch_at
        params = [p.detach() for p in self.model.parameters()]
        distance = global_norm(torch._foreach_sub(params, self._w_switch))
        stats = {name: v for name, v in self.optimizer.last_stats.items() if name != "rho"}
        # One host sync for the whole record: what writing a record per step costs anyway.
        values = torch.stack([v.detach().to(self.device, torch.float64)
                              for v in (loss, distance, *stats.values())]).tolist()
        record = {"kind": "switch_step", "epoch": epoch, "step": step, "k": k,
                  "loss": values[0], "distance": values[1], "lr": self._lr_used,
                  **dict(zip(stats, values[2:]))}
        if k == self.config.switch_log_steps:
            self._w_switch = None  # the window is closed: nothing left to measure from
        self._write_switch_record(record)

    def _write_switch_record(self, record: dict[str, Any]) -> None:
        every = self.config.switch_log_sharpness_every
        if every and record["k"] % every == 0:
            left = (self.config.switch_log_steps - record["k"]) // every
            record.update(self.measure_sharpness(measurements_left=left))
        if self.is_main:  # before the checkpoint that claims it, as every record
            self.rundir.append(record)
        for cb in self.callbacks:
            cb.on_switch_step(self, record)
