"""A SAM optimizer's checkpoint: the base optimizer's state plus samlab's own, nothing
transient, checked before anything is loaded (docs/methods.md#state-and-resume)."""

from __future__ import annotations

from typing import Any

import torch

from .. import validate


class Checkpoints:
    """``state_dict``/``load_state_dict`` of :class:`samlab.optim.SAM`."""

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state (momentum, moments) plus samlab's own, nothing transient."""
        return {
            "base": self.base_optimizer.state_dict(),
            "samlab": {
                "version": 1,
                "steps_taken": self.steps_taken,
                "epoch": self.epoch,
                "switched": self._switched,
                "ended": self._ended,
                "ascent": self.ascent,
                "renormalize": self.renormalize,
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not (isinstance(state_dict, dict) and {"base", "samlab"} <= state_dict.keys()):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(
                "state_dict must come from samlab.optim.SAM.state_dict() (keys 'base' and "
                f"'samlab'), got {got!r}"
            )
        own = state_dict["samlab"]
        needed = ("steps_taken", "epoch", "switched")
        if not isinstance(own, dict) or not set(needed) <= own.keys():
            lacks = [k for k in needed if not isinstance(own, dict) or k not in own]
            raise ValueError(f"state_dict['samlab'] must hold {', '.join(needed)} (as "
                             f"SAM.state_dict() writes it), got one without {', '.join(lacks)}")
        validate.integer("steps_taken", own["steps_taken"], low=0)
        validate.integer("epoch", own["epoch"], low=0, none=True)
        for name in ("switched", "ended"):
            if not isinstance(own.get(name, False), bool):
                raise validate.fail(name, "True or False", own[name])
        self._check_base_state(state_dict["base"])
        for name in ("ascent", "renormalize"):
            if own.get(name, getattr(self, name)) != getattr(self, name):
                raise ValueError(
                    f"this checkpoint was saved with {name}={own[name]!r}, but this optimizer "
                    f"has {name}={getattr(self, name)!r}: build the optimizer it was saved from"
                )
        # Checked as the constructor checks them: a loaded ρ = −5 would otherwise be used.
        for group in state_dict["base"].get("param_groups", []):
            if "rho" in group:
                validate.number("rho", group["rho"], low=0.0)
            for name in ("lr", "momentum", "weight_decay"):
                if isinstance(group.get(name), (int, float)):
                    validate.number(name, group[name], low=0.0)
        self.base_optimizer.load_state_dict(state_dict["base"])
        # The base replaced its group list: share it again.
        self.param_groups = self.base_optimizer.param_groups
        self.steps_taken = int(own["steps_taken"])
        self.epoch = own["epoch"]
        self._switched = bool(own["switched"])
        self._ended = bool(own.get("ended", False))  # absent from checkpoints before end_*

    def _check_base_state(self, base: Any) -> None:
        """The base optimizer's state fits this base optimizer and these parameters, checked
        before anything is loaded (torch's own load would fail at the next step instead)."""
        kind = type(self.base_optimizer).__name__
        if not (isinstance(base, dict) and isinstance(base.get("param_groups"), list)
                and isinstance(base.get("state"), dict)):
            raise ValueError(f"state_dict['base'] must be a {kind}.state_dict() (param_groups "
                             "and state), got " + (f"keys {sorted(base)}" if isinstance(base, dict)
                                                  else type(base).__name__))
        # Another optimizer's hyperparameters (Adam's betas in an SGD's groups) tell it;
        # a key merely missing may be a newer torch's default, which torch fills in.
        known = {*self.base_optimizer.defaults, "initial_lr",  # a scheduler's
                 *(k for g in self.base_optimizer.param_groups for k in g)}
        for group in base["param_groups"]:
            foreign = sorted(k for k in group if k not in known)
            if foreign:
                raise ValueError(f"this checkpoint's base optimizer has {', '.join(foreign)}, "
                                 f"which {kind} has not: it was saved around another base "
                                 f"optimizer; build SAM around that one")
        params = [p for g in self.base_optimizer.param_groups for p in g["params"]]
        for index, entry in base["state"].items():
            if not isinstance(index, int) or not 0 <= index < len(params):
                raise ValueError(f"state_dict['base'] has state for parameter {index!r}, but "
                                 f"this optimizer has {len(params)} parameters")
            for key, value in entry.items():
                if (isinstance(value, torch.Tensor) and value.dim() > 0
                        and value.shape != params[index].shape):
                    raise ValueError(
                        f"state_dict['base'] holds {key} of shape {tuple(value.shape)} for "
                        f"parameter {index}, of shape {tuple(params[index].shape)}: it was "
                        "saved for another model")
