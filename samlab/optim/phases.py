"""Late-phase switching (Zhou et al., ICLR 2025): when a SAM optimizer is SAM at all.

Plain base-optimizer steps before ``switch_step``/``switch_epoch``, SAM from there on, and
back to the base optimizer from ``end_step``/``end_epoch`` (docs/methods.md#late-phase-switching).
:class:`LatePhase` is the part of :class:`samlab.optim.SAM` that decides it.
"""

from __future__ import annotations

from .. import validate


class LatePhase:
    """The switch to SAM and the switch back, for :class:`samlab.optim.SAM`.

    Uses the optimizer's ``ascent``, ``switch_*``, ``end_*``, ``steps_taken``, ``epoch``,
    ``reset_on_switch`` and ``base_optimizer``.
    """

    def set_epoch(self, epoch: int) -> None:
        """Tell the optimizer which epoch starts (needed with ``switch_epoch``, ``end_epoch``)."""
        self.epoch = validate.integer("epoch", epoch, low=0)

    @property
    def sam_active(self) -> bool:
        """True when the next step is a SAM step; False in a plain phase, before the switch
        or from the switch back on."""
        if self.ascent == "none" or self._ended or self._end_reached():
            return False
        if self._switched or self.switch_step is not None and self.steps_taken >= self.switch_step:
            return True
        if self.switch_epoch is None:
            return False
        return self._known_epoch("switch_epoch") >= self.switch_epoch

    def _end_reached(self) -> bool:
        if self.end_step is not None:
            return self.steps_taken >= self.end_step
        if self.end_epoch is not None:
            return self._known_epoch("end_epoch") >= self.end_epoch
        return False

    def _known_epoch(self, name: str) -> int:
        if self.epoch is None:
            raise RuntimeError(
                f"{name} is set but the epoch is unknown: call "
                "optimizer.set_epoch(epoch) at the start of every epoch"
            )
        return self.epoch

    def _enter_sam_phase(self) -> None:
        if not self._switched:
            self._switched = True
            if self.reset_on_switch:
                self.base_optimizer.state.clear()

    def _leave_sam_phase(self) -> None:
        """The switch back: from here on the base optimizer alone (the authors' SAM-then-SGD)."""
        if self._switched and not self._ended and self._end_reached():
            self._ended = True
            if self.reset_on_switch:
                self.base_optimizer.state.clear()


def check_switches(switch_step, switch_epoch, end_step, end_epoch
                   ) -> tuple[int | None, int | None, int | None, int | None]:
    """The four switch points, checked: at most one of each pair, the end in the switch's
    unit and after it."""
    switch_step = validate.integer("switch_step", switch_step, low=0, none=True)
    switch_epoch = validate.integer("switch_epoch", switch_epoch, low=0, none=True)
    if switch_step is not None and switch_epoch is not None:
        raise ValueError("give switch_step or switch_epoch, not both")
    end_step = validate.integer("end_step", end_step, low=1, none=True)
    end_epoch = validate.integer("end_epoch", end_epoch, low=1, none=True)
    if end_step is not None and end_epoch is not None:
        raise ValueError("give end_step or end_epoch, not both")
    if end_step is not None and switch_epoch is not None:
        raise ValueError("end_step counts steps but switch_epoch counts epochs: give "
                         "end_epoch with switch_epoch (or end_step with switch_step)")
    if end_epoch is not None and switch_step is not None:
        raise ValueError("end_epoch counts epochs but switch_step counts steps: give "
                         "end_step with switch_step (or end_epoch with switch_epoch)")
    if end_step is not None and switch_step is not None and end_step <= switch_step:
        raise validate.fail("end_step", f"an integer > switch_step ({switch_step})", end_step)
    if end_epoch is not None and switch_epoch is not None and end_epoch <= switch_epoch:
        raise validate.fail("end_epoch", f"an integer > switch_epoch ({switch_epoch})",
                            end_epoch)
    return switch_step, switch_epoch, end_step, end_epoch
