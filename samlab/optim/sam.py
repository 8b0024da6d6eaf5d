"""The optimizer: SAM around any base optimizer, for every row of :mod:`samlab.methods`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any, Literal

import torch
from torch import nn

from .. import validate
from ..methods import ASCENTS, EPS, METHODS, Ascent, get_method
from .batchnorm import frozen_bn_stats
from .update import descent_scale, global_norm, perturbation

_ADAPTIVE_VARIANTS = ("original", "abs")


def _copy_all(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    """``dst[i].copy_(src[i])`` for all ``i``: bit-exact, the way that is fastest per device.

    On CUDA one multi-tensor kernel; on a CPU ``_foreach_copy_`` takes a slower path than
    plain copies (measured on ResNet-20's 65 tensors: 0.5 ms against 0.19 ms).
    """
    if dst and dst[0].device.type == "cpu":
        for d, s in zip(dst, src):
            d.copy_(s)
    else:
        torch._foreach_copy_(dst, src)


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization around any base optimizer (Foret et al., ICLR 2021).

    Args:
        params: parameters or parameter groups, as for any torch optimizer. A group
            may set its own ``rho``.
        base_optimizer: the optimizer *class* that takes the descent step
            (``torch.optim.SGD`` by default); ``**base_kwargs`` go to it.
        method: a row of :mod:`samlab.methods` (``"sam"``, ``"usam"``, ``"ssam"``,
            ``"asam"``, ``"rsam"``, ``"sgd"``): its ascent and renormalization are the
            defaults of ``ascent`` and ``renormalize``. ``None``: as ``"sam"``.
        rho: perturbation radius ``ρ >= 0``.
        ascent: ``"normalized"`` (``ε = ρg/‖g‖``), ``"unnormalized"`` (``ε = ρg``),
            ``"adaptive"`` (``ε = ρT²g/‖Tg‖``) or ``"none"`` (the base optimizer alone).
        renormalize: rescale the descent gradient by ``γ = ‖g‖/‖∇L(w_asc)‖`` (SSAM's
            renormalization; with any ascent).
        adaptive_eta: ``η_a`` of ASAM's ``T = |w| + η_a``.
        adaptive_variant: ``"original"`` (Kwon et al.: ``T = |w| + η_a`` on weight
            tensors, ``T = 1`` on biases and normalization parameters) or ``"abs"``
            (the widely copied ``T = |w|`` on every tensor).
        switch_step, switch_epoch: late-phase switching: plain base-optimizer steps
            before this step count / epoch (see :meth:`set_epoch`), SAM from it on.
        end_step, end_epoch: the switch back: SAM before this step count / epoch, plain
            base-optimizer steps from it on (None: SAM to the end). In the unit of the
            switch (``end_step`` with ``switch_step``, ``end_epoch`` with
            ``switch_epoch``) and after it; without a switch, SAM from the start.
        reset_on_switch: clear the base optimizer's state (momentum) at each switch, to
            SAM and back, as building a second optimizer does; by default it is carried
            across.
        model: the model being trained; optional. With it BatchNorm freezing is
            scoped to this model, and a DDP model's first pass runs in ``no_sync``.
    """

    #: The row of :mod:`samlab.methods` a class stands for (its defaults).
    default_method: str = "sam"

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        *,
        method: str | None = None,
        rho: float = 0.05,
        ascent: Ascent | None = None,
        renormalize: bool | None = None,
        adaptive_eta: float = 0.01,
        adaptive_variant: Literal["original", "abs"] = "original",
        switch_step: int | None = None,
        switch_epoch: int | None = None,
        end_step: int | None = None,
        end_epoch: int | None = None,
        reset_on_switch: bool = False,
        model: nn.Module | None = None,
        **base_kwargs: Any,
    ):
        row = get_method(self.default_method if method is None else method)
        ascent = validate.choice("ascent", row.ascent if ascent is None else ascent, ASCENTS)
        renormalize = validate.flag("renormalize", row.renormalize if renormalize is None
                                    else renormalize)
        rho = validate.number("rho", rho, low=0.0)
        adaptive_eta = validate.number("adaptive_eta", adaptive_eta, low=0.0)
        validate.choice("adaptive_variant", adaptive_variant, _ADAPTIVE_VARIANTS)
        if not (isinstance(base_optimizer, type)
                and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise validate.fail("base_optimizer",
                                "a torch.optim.Optimizer class such as torch.optim.SGD",
                                base_optimizer)
        closure = inspect.signature(base_optimizer.step).parameters.get("closure")
        if closure is not None and closure.default is inspect.Parameter.empty:
            raise validate.fail("base_optimizer", "an optimizer whose step needs no closure "
                                "(SAM computes both gradients itself), such as "
                                "torch.optim.SGD", base_optimizer)
        switch_step = validate.integer("switch_step", switch_step, low=0, none=True)
        switch_epoch = validate.integer("switch_epoch", switch_epoch, low=0, none=True)
        if switch_step is not None and switch_epoch is not None:
            raise ValueError("give switch_step or switch_epoch, not both")
        end_step, end_epoch = _check_end(switch_step, switch_epoch, end_step, end_epoch)

        super().__init__(params, dict(rho=rho, **base_kwargs))
        for group in self.param_groups:
            group["rho"] = validate.number("rho", group["rho"], low=0.0)
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        # One list of groups, shared: schedulers that change lr here change it for the base.
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

        self.ascent = ascent
        self.renormalize = renormalize
        #: The table's name for this (ascent, renormalize), or None (e.g. renormalized ASAM).
        self.method = next((m.name for m in METHODS.values()
                            if (m.ascent, m.renormalize) == (ascent, renormalize)), None)
        self.adaptive_eta = adaptive_eta
        self.adaptive_variant = adaptive_variant
        self.switch_step = switch_step
        self.switch_epoch = switch_epoch
        self.end_step = end_step
        self.end_epoch = end_epoch
        self.reset_on_switch = validate.flag("reset_on_switch", reset_on_switch)
        self.model = model
        self.steps_taken = 0          # optimizer steps so far (plain and SAM)
        self.epoch: int | None = None
        self._switched = switch_step is None and switch_epoch is None
        self._ended = False  # the switch back to the base optimizer has happened
        self._w: list[torch.Tensor] | None = None  # w saved by first_step, restored by second
        self._w_key: list[int] = []
        self._params: list[torch.Tensor] = []
        self._skip = False     # the first pass overflowed (fp16): this step does nothing
        self._pending = False  # first_step has climbed; second_step must come back
        self.last_stats: dict[str, torch.Tensor] = {}

    # -- late-phase switching -----------------------------------------------------------------
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

    # -- the algorithm --------------------------------------------------------------------------
    @torch.no_grad()
    def first_step(self, zero_grad: bool = True,
                   scaler: torch.amp.GradScaler | None = None) -> None:
        """Climb: save ``w``, then ``w ← w + ε(g)`` with the gradients now in ``.grad``."""
        if self.ascent == "none":
            raise RuntimeError("this optimizer has no ascent (method 'sgd'): use step(), "
                               "which takes the base optimizer's step")
        if self._pending:
            raise RuntimeError(
                "first_step called again before second_step: the weights are at w + ε; call "
                "second_step() (after a backward pass there) to return to w first"
            )
        self._enter_sam_phase()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            raise RuntimeError("first_step found no gradients: call loss.backward() before it")
        grads = [p.grad for p in params]
        self._skip = scaler is not None and self._overflow_anywhere(grads)
        if scaler is not None:
            scaler.unscale_(self)  # records the overflow, so scaler.update() backs off
        grad_norm = global_norm(grads)
        self._params = params
        self.last_stats = {"grad_norm": grad_norm}
        if self._skip:  # fp16 overflow: no step this time
            if zero_grad:
                self.zero_grad()
            return

        key = [id(p) for p in params]
        if self._w is None or self._w_key != key:
            self._w, self._w_key = [torch.empty_like(p) for p in params], key
        _copy_all(self._w, params)
        eps = perturbation(params, grads, self._rhos(params), self.ascent, grad_norm=grad_norm,
                           adaptive_eta=self.adaptive_eta,
                           adaptive_variant=self.adaptive_variant)
        torch._foreach_add_(params, eps)
        self.last_stats["eps_norm"] = self._eps_norm(eps, grad_norm)
        self._pending = True
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False,
                    scaler: torch.amp.GradScaler | None = None) -> None:
        """Return to ``w`` exactly and let the base optimizer step with ``[γ·]∇L(w_asc)``."""
        if self._skip:
            self._skip = False
            self._count_step()  # a (skipped) step happened, for LR schedulers' bookkeeping
            if zero_grad:
                self.zero_grad()
            return
        if not self._pending:
            raise RuntimeError(
                "second_step called without a first_step before it: each SAM step is "
                "first_step(), a backward pass at w_asc, then second_step()"
            )
        if scaler is not None:
            scaler.unscale_(self.base_optimizer)
        params = self._params
        grads = [p.grad for p in params if p.grad is not None]
        ascent_norm = global_norm(grads)
        grad_norm = self.last_stats["grad_norm"]
        gamma = descent_scale(self._rank_mean_norm(grad_norm) if self.renormalize
                              else grad_norm, ascent_norm)
        if self.renormalize:
            torch._foreach_mul_(grads, gamma)
        self.restore()
        if scaler is not None:
            scaler.step(self.base_optimizer)
        else:
            self.base_optimizer.step()
        self._count_step()
        self.last_stats.update(ascent_grad_norm=ascent_norm, gamma=gamma,
                               rho=torch.tensor(float(self.param_groups[0]["rho"])))
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def restore(self) -> None:
        """Put the weights back at ``w`` after :meth:`first_step` (nothing to do otherwise).

        :meth:`second_step` calls it; call it yourself to abandon a step half-way.
        """
        if self._pending:
            _copy_all(self._params, self._w)
            self._pending = False

    @torch.no_grad()
    def plain_step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """A step of the base optimizer alone with the gradients in ``.grad`` (plain phase).

        Bit-identical to ``base_optimizer.step()``; also counts the step and records
        ``grad_norm`` in :attr:`last_stats` (the ascent entries are NaN).
        """
        self._leave_sam_phase()
        if scaler is not None:
            scaler.unscale_(self.base_optimizer)
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        nan = self._nan(grads[0].device if grads else torch.device("cpu"))
        self.last_stats = {"grad_norm": global_norm(grads) if grads else nan,
                           "ascent_grad_norm": nan, "gamma": nan, "eps_norm": nan,
                           "rho": torch.tensor(0.0)}
        if scaler is not None:
            scaler.step(self.base_optimizer)
        else:
            self.base_optimizer.step()
        self._count_step()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None,
             scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
        """One step: ``closure()`` at ``w``, climb, ``closure()`` at ``w_asc``, return, descend.

        The closure zeroes the gradients, runs forward and backward, and returns the loss
        (``scaler.scale(loss).backward()`` with a GradScaler). Returns the first loss.
        In the plain phase of late-phase switching: one ``closure()``, one base step.
        If the closure raises at ``w_asc`` (a KeyboardInterrupt, an out-of-memory
        error), the weights are back at ``w`` before the exception leaves.
        """
        if closure is None:
            raise ValueError(
                "closure is required: SAM evaluates the loss twice per step, so step() needs "
                "a closure that zeroes the gradients, runs forward and backward and returns "
                "the loss (or use first_step()/second_step())"
            )
        closure = torch.enable_grad()(closure)
        if not self.sam_active:
            loss = closure()
            self.plain_step(scaler)
            return loss

        model = self.model
        ddp = isinstance(model, nn.parallel.DistributedDataParallel)
        with model.no_sync() if ddp else nullcontext():
            loss = closure()
        self.first_step(zero_grad=False, scaler=scaler)
        if not self._skip:
            try:
                with frozen_bn_stats(model):
                    closure()
            except BaseException:
                self.restore()
                raise
        self.second_step(scaler=scaler)
        return loss

    # -- helpers ---------------------------------------------------------------------------------
    def _count_step(self) -> None:
        self.steps_taken += 1
        self._opt_called = True  # tells LR schedulers that the optimizer stepped

    def _nan(self, device: torch.device) -> torch.Tensor:
        """A NaN on ``device``, made once (a new CPU tensor per step would be copied over)."""
        cache = self.__dict__.setdefault("_nans", {})
        if device not in cache:
            cache[device] = torch.full((), float("nan"), device=device)
        return cache[device]

    def _eps_norm(self, eps: list[torch.Tensor], grad_norm: torch.Tensor) -> torch.Tensor:
        """``‖ε‖``, the perturbation's length: in closed form where there is one (no pass
        over the parameters), else measured."""
        rho = self._rhos(self._params)
        if isinstance(rho, float) and self.ascent == "normalized":
            return rho * grad_norm / (grad_norm + EPS)
        if isinstance(rho, float) and self.ascent == "unnormalized":
            return rho * grad_norm
        return global_norm(eps)

    def _rhos(self, params: list[torch.Tensor]) -> float | list[float]:
        """``ρ`` for ``params``: one number, or one per tensor when groups set their own."""
        if len(self.param_groups) == 1:
            return float(self.param_groups[0]["rho"])
        rho_of = {id(p): float(g["rho"]) for g in self.param_groups for p in g["params"]}
        return [rho_of[id(p)] for p in params]

    def _ddp_group(self):
        """``(True, process group)`` when training under DDP, ``(False, None)`` otherwise."""
        dist = torch.distributed
        if (isinstance(self.model, nn.parallel.DistributedDataParallel)
                and dist.is_available() and dist.is_initialized()):
            return True, getattr(self.model, "process_group", None)
        return False, None

    def _rank_mean_norm(self, grad_norm: torch.Tensor) -> torch.Tensor:
        """Under DDP, ``sqrt(mean over ranks of ‖g_r‖²)`` so every rank takes the same step."""
        ddp, group = self._ddp_group()
        if not ddp:
            return grad_norm
        dist = torch.distributed
        sq = grad_norm.square().to(next(self.model.parameters()).device)
        dist.all_reduce(sq, op=dist.ReduceOp.SUM, group=group)
        return (sq / dist.get_world_size(group)).sqrt().to(grad_norm.device)

    def _overflow_anywhere(self, scaled_grads: list[torch.Tensor]) -> bool:
        """Whether the (still scaled) first-pass gradients overflowed, on any rank.

        Under DDP the first pass is rank-local (``no_sync``), so ranks must agree before
        skipping; a rank that saw no overflow itself marks one gradient non-finite so that
        its GradScaler backs off like the others'. One host sync, as ``GradScaler.step``.
        """
        bad = (~torch.isfinite(global_norm(scaled_grads))).float()
        ddp, group = self._ddp_group()
        if ddp:
            local = bool(bad)
            bad = bad.to(next(self.model.parameters()).device)
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX, group=group)
            if bool(bad) and not local:
                scaled_grads[0].view(-1)[0] = float("inf")
        return bool(bad)

    # -- checkpoints -----------------------------------------------------------------------------
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

    def __repr__(self) -> str:
        extra = (f"ascent={self.ascent!r}, renormalize={self.renormalize}, "
                 f"rho={self.defaults['rho']}")
        if self.switch_step is not None or self.switch_epoch is not None:
            at = (f"switch_step={self.switch_step}" if self.switch_step is not None
                  else f"switch_epoch={self.switch_epoch}")
            extra += f", {at}"
        if self.end_step is not None or self.end_epoch is not None:
            extra += (f", end_step={self.end_step}" if self.end_step is not None
                      else f", end_epoch={self.end_epoch}")
        return f"{type(self).__name__}({extra}, base={self.base_optimizer!r})"


def _check_end(switch_step: int | None, switch_epoch: int | None, end_step, end_epoch
               ) -> tuple[int | None, int | None]:
    """``(end_step, end_epoch)`` checked: at most one, in the switch's unit, after it."""
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
    return end_step, end_epoch


class USAM(SAM):
    """Unnormalized SAM: ``ε = ρ·g`` (the ``usam`` row)."""

    default_method = "usam"


class SSAM(SAM):
    """Stable SAM (Tan et al., JMLR 2025): ``ε = ρ·g``, descent ``γ·∇L(w_asc)`` (``ssam``).

    As the authors' code: unnormalized ascent plus renormalization. Its ``ρ`` lives
    on the unnormalized scale, not comparable with SAM's ``ρ = 0.05``.
    """

    default_method = "ssam"


class ASAM(SAM):
    """Adaptive SAM (Kwon et al., ICML 2021): ``ε = ρ·T²g/‖Tg‖``, ``T = |w| + η_a`` (``asam``)."""

    default_method = "asam"
