"""The optimizer: SAM around any base optimizer, for every row of :mod:`samlab.methods`.

SAM's step is the section "the algorithm" below, in the paper's order: :meth:`SAM.first_step`
climbs to ``w + ε``, :meth:`SAM.second_step` returns to ``w`` and descends, :meth:`SAM.step`
runs both around two passes of the closure. The maths is :mod:`samlab.optim.update`; what
the machine needs (fp16, DDP, exact copies) is in small hooks after it and in
:mod:`~samlab.optim.parallel`; late-phase switching is :mod:`~samlab.optim.phases`, the
checkpoint :mod:`~samlab.optim.checkpoints` (docs/methods.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from contextlib import contextmanager, nullcontext
from typing import Any, Literal

import torch
from torch import nn

from .. import validate
from ..ascents import names as ascent_names
from ..methods import EPS, METHODS, Ascent, get_method
from .batchnorm import frozen_bn_stats
from .checkpoints import Checkpoints
from .parallel import copy_all, overflow_anywhere, rank_mean_norm
from .phases import LatePhase, check_switches
from .update import descent_scale, global_norm, perturbation

_ADAPTIVE_VARIANTS = ("original", "abs")


class SAM(LatePhase, Checkpoints, torch.optim.Optimizer):
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
        ascent = validate.choice("ascent", row.ascent if ascent is None else ascent,
                                 ascent_names())
        renormalize = validate.flag("renormalize", row.renormalize if renormalize is None
                                    else renormalize)
        rho = validate.number("rho", rho, low=0.0)
        adaptive_eta = validate.number("adaptive_eta", adaptive_eta, low=0.0)
        validate.choice("adaptive_variant", adaptive_variant, _ADAPTIVE_VARIANTS)
        _check_base_optimizer(base_optimizer)
        switches = check_switches(switch_step, switch_epoch, end_step, end_epoch)

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
        self.switch_step, self.switch_epoch, self.end_step, self.end_epoch = switches
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

    # -- the algorithm (docs/methods.md#the-table) ------------------------------------------
    @torch.no_grad()
    def first_step(self, zero_grad: bool = True,
                   scaler: torch.amp.GradScaler | None = None) -> None:
        """Climb: save ``w``, then ``w ← w + ε(g)`` with the gradients ``g`` now in ``.grad``."""
        w, g = self._gradients_at_w(scaler)
        g_norm = global_norm(g)                       # ‖g‖: one norm over all tensors
        self._params, self.last_stats = w, {"grad_norm": g_norm}
        if not self._skip:
            self._save_w(w)
            eps = perturbation(w, g, self._rhos(w), self.ascent, grad_norm=g_norm,
                               adaptive_eta=self.adaptive_eta,
                               adaptive_variant=self.adaptive_variant)
            torch._foreach_add_(w, eps)               # w_asc = w + ε
            self.last_stats["eps_norm"] = self._eps_norm(eps, g_norm)
            self._pending = True
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False,
                    scaler: torch.amp.GradScaler | None = None) -> None:
        """Return to ``w`` exactly and let the base optimizer step with ``[γ·]∇L(w_asc)``."""
        if not self._skip:
            g_asc = self._gradients_at_w_asc(scaler)  # ∇L(w_asc), the descent gradient
            g_norm, asc_norm = self.last_stats["grad_norm"], global_norm(g_asc)
            gamma = descent_scale(self._mean_over_ranks(g_norm), asc_norm)
            if self.renormalize:
                torch._foreach_mul_(g_asc, gamma)     # γ·∇L(w_asc): its norm is ‖g‖
            self.restore()                            # back at w, bit for bit
            self._base_step(scaler)                   # the base optimizer steps from w
            self.last_stats.update(ascent_grad_norm=asc_norm, gamma=gamma,
                                   rho=torch.tensor(float(self.param_groups[0]["rho"])))
        self._skip = False
        self._count_step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None,
             scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
        """One step: ``closure()`` at ``w``, climb, ``closure()`` at ``w_asc``, return, descend;
        the first loss back (docs/methods.md#using-the-optimizer). Before a late switch, one
        ``closure()`` and a base step. If the second pass raises, the weights are at ``w``."""
        closure = _checked_closure(closure)
        if not self.sam_active:
            loss = closure()
            self.plain_step(scaler)
            return loss
        with self._rank_local():
            loss = closure()                          # L(w) and g on this mini-batch
        self.first_step(zero_grad=False, scaler=scaler)
        if not self._skip:
            with self._restored_on_error(), frozen_bn_stats(self.model):
                closure()                             # ∇L(w_asc), same mini-batch
        self.second_step(scaler=scaler)
        return loss

    @torch.no_grad()
    def restore(self) -> None:
        """Put the weights back at ``w`` after :meth:`first_step` (nothing to do otherwise).

        :meth:`second_step` calls it; call it yourself to abandon a step half-way.
        """
        if self._pending:
            copy_all(self._params, self._w)
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
        self._base_step(scaler)
        self._count_step()

    # -- hooks: what the algorithm needs around it, each for one reason ------------------------
    def _gradients_at_w(self, scaler) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(w, g)``: the parameters that have a gradient and their gradients, after the
        checks of a first step, the late-phase switch, and fp16 unscaling; an fp16 overflow
        sets ``_skip`` (the whole step then does nothing)."""
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
        self._skip = scaler is not None and overflow_anywhere(self.model, grads)
        if scaler is not None:
            scaler.unscale_(self)  # records the overflow, so scaler.update() backs off
        return params, grads

    def _gradients_at_w_asc(self, scaler) -> list[torch.Tensor]:
        """The gradients of the second pass (unscaled with fp16), after checking that
        :meth:`first_step` climbed."""
        if not self._pending:
            raise RuntimeError(
                "second_step called without a first_step before it: each SAM step is "
                "first_step(), a backward pass at w_asc, then second_step()"
            )
        if scaler is not None:
            scaler.unscale_(self.base_optimizer)
        return [p.grad for p in self._params if p.grad is not None]

    def _save_w(self, params: list[torch.Tensor]) -> None:
        """Copy ``w`` into buffers kept from step to step (made again if the set changes)."""
        key = [id(p) for p in params]
        if self._w is None or self._w_key != key:
            self._w, self._w_key = [torch.empty_like(p) for p in params], key
        copy_all(self._w, params)

    def _mean_over_ranks(self, grad_norm: torch.Tensor) -> torch.Tensor:
        """``‖g‖`` for ``γ``: with renormalization under DDP, the ranks' root mean square,
        so that every rank takes the same step."""
        return rank_mean_norm(self.model, grad_norm) if self.renormalize else grad_norm

    def _base_step(self, scaler) -> None:
        """The base optimizer's step (through the GradScaler with fp16)."""
        if scaler is not None:
            scaler.step(self.base_optimizer)
        else:
            self.base_optimizer.step()

    def _rank_local(self):
        """Under DDP, the first pass without all-reduce: each rank climbs with its own ``g``."""
        ddp = isinstance(self.model, nn.parallel.DistributedDataParallel)
        return self.model.no_sync() if ddp else nullcontext()

    @contextmanager
    def _restored_on_error(self):
        """Whatever the second pass raises, the weights are back at ``w`` when it leaves."""
        try:
            yield
        except BaseException:
            self.restore()
            raise

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


def _check_base_optimizer(base_optimizer) -> None:
    """A torch optimizer class whose step needs no closure (SAM computes both gradients)."""
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


def _checked_closure(closure):
    if closure is None:
        raise ValueError(
            "closure is required: SAM evaluates the loss twice per step, so step() needs "
            "a closure that zeroes the gradients, runs forward and backward and returns "
            "the loss (or use first_step()/second_step())"
        )
    return torch.enable_grad()(closure)


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
