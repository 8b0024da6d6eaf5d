"""Run the SAM family on a landscape: whole batches at once, labelled outcomes.

:func:`run` keeps the full trajectory of every run; :func:`phase_diagram`
keeps only the outcome of each ``(lr, ρ)`` setting, so a 200 x 200 grid of
500-step runs fits in memory and in half a second.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .. import validate
from ..methods import get_method, names
from .landscapes import Landscape
from .methods import Rules, step
from .outcomes import OUTCOMES, TailWatch, outcome_code

_EXIT_CHECK_EVERY = 4


@dataclass
class Trajectory:
    """Every step of a batch of runs. Time is the first axis.

    ``positions[t]`` is the point after ``t`` steps (``positions[0] = x0``);
    ``grad_norms[t]``, ``ascent_grad_norms[t]`` and ``gammas[t]`` are
    ``‖g‖``, ``‖∇f(w_asc)‖`` and ``γ = ‖g‖/‖∇f(w_asc)‖`` measured during step
    ``t``. After a run leaves the landscape (``exit_step``), its positions and
    losses are NaN: plots show a gap, never an overflow.
    """

    landscape: Landscape
    method: np.ndarray
    lr: np.ndarray
    rho: np.ndarray
    positions: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    ascent_grad_norms: np.ndarray
    gammas: np.ndarray
    outcome: np.ndarray
    at: np.ndarray
    exit_step: np.ndarray
    #: Step from which each run follows its method (plain GD before it; 0: from the start).
    switch_step: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return self.positions.shape[0] - 1

    @property
    def final(self) -> np.ndarray:
        """Last position of every run, ``[..., 2]`` (NaN where it diverged)."""
        return self.positions[-1]

    def __getitem__(self, index) -> Trajectory:
        """The runs at ``index`` of the batch, e.g. ``traj[1]`` or ``traj[:, 0]``."""
        index = index if isinstance(index, tuple) else (index,)
        t = (slice(None), *index)
        a = np.asarray
        return Trajectory(
            self.landscape, a(self.method[index]), a(self.lr[index]), a(self.rho[index]),
            self.positions[(*t, slice(None))], self.losses[t], self.grad_norms[t],
            self.ascent_grad_norms[t], self.gammas[t],
            a(self.outcome[index]), a(self.at[index]), a(self.exit_step[index]),
            None if self.switch_step is None else a(self.switch_step[index]),
        )


@dataclass
class PhaseDiagram:
    """Outcome of every ``(lr, ρ)`` setting: ``codes[i, j]`` is for ``lrs[i]``, ``rhos[j]``."""

    landscape: Landscape
    method: str
    lrs: np.ndarray
    rhos: np.ndarray
    x0: np.ndarray
    steps: int
    codes: np.ndarray
    at: np.ndarray
    final: np.ndarray
    switch_step: np.ndarray | None = None

    @property
    def outcome(self) -> np.ndarray:
        """The outcome names, same shape as :attr:`codes`."""
        return np.asarray(OUTCOMES)[self.codes]

    def fraction(self, outcome: str) -> float:
        """Share of settings that ended in ``outcome``."""
        return float(np.mean(self.codes == outcome_code(outcome)))


# -- validation at the public boundary ----------------------------------------------------


def _check_methods(method) -> np.ndarray:
    arr = np.asarray(method) if not isinstance(method, np.ndarray) else method
    if arr.dtype.kind not in "US" or arr.size == 0:
        raise validate.fail("method", "one of " + ", ".join(map(repr, names())), method)
    for name in np.unique(arr):
        get_method(str(name))
    return arr.astype(str)


def _check_x0(x0) -> np.ndarray:
    try:
        arr = np.asarray(x0)
    except ValueError:  # a ragged list
        arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        raise validate.fail("x0", "a point (x, y) or an array of shape (..., 2)", x0)
    arr = arr.astype(float)
    if arr.ndim == 0 or arr.shape[-1] != 2:
        raise ValueError(f"x0 must have shape (2,) or (..., 2), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise validate.fail("x0", "finite", float(arr[~np.isfinite(arr)].flat[0]))
    return arr


def _check_landscape(landscape) -> Landscape:
    if not isinstance(landscape, Landscape):
        raise validate.fail("landscape", "a samlab.toy landscape (e.g. toy.BoundedSaddle())",
                            landscape)
    return landscape


def _batch_shape(methods, lr, rho, x0, switch=None) -> tuple[int, ...]:
    """The shape ``method``, ``lr``, ``rho``, ``x0[..., 2]`` (and ``switch_step``) broadcast
    to, or a clear error."""
    shapes = {"method": np.shape(methods), "lr": np.shape(lr), "rho": np.shape(rho),
              "x0[..., 2]": x0.shape[:-1]}
    if switch is not None:
        shapes["switch_step"] = np.shape(switch)
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        names = [k.removesuffix("[..., 2]") for k in shapes]
        given = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ValueError(f"{', '.join(names[:-1])} and {names[-1]} must broadcast against "
                         f"each other, got shapes {given}") from None


#: Share of the memory available now that one call may plan to use.
MEMORY_SHARE = 0.5


def _check_memory(n_runs: int, steps: int, record: bool, max_bytes: int | None) -> None:
    """Refuse, before allocating, a call whose arrays would not fit."""
    # Recorded: positions (2), loss, ‖g‖, ‖∇f(w_asc)‖, γ per step and run, held in per-step
    # lists until they are stacked at the end, when lists and arrays coexist: twice that,
    # plus a NumPy object of ~100 bytes per list entry. Plus about 40 arrays per run of
    # working state either way.
    need = 8 * n_runs * ((12 * (steps + 1) if record else 0) + 40)
    if record:
        need += 5 * 100 * (steps + 1)
    limit = max_bytes if max_bytes is not None else int(MEMORY_SHARE * _available_memory())
    if need > limit:
        way_out = ("keep only outcomes with toy.phase_diagram, or fewer runs or steps"
                   if record else "fewer settings")
        raise MemoryError(f"this call needs about {need / 2**30:.1f} GiB for {n_runs:,} runs "
                          f"of {steps} steps, more than the {limit / 2**30:.1f} GiB allowed "
                          "(max_bytes, default half the memory available to this process: "
                          f"free memory, ulimit -v and the container's limit): {way_out}")


def _available_memory() -> int:
    """The least of what the machine has free, what the process's address-space limit
    (``ulimit -v``) leaves, and what its container's memory limit (a cgroup: Binder's
    2 GB) leaves; each is skipped where the platform does not tell."""
    found = [1 << 62]  # none known: do not refuse
    try:
        found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:  # the address space in use, in pages
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            found.append(max(soft - used, 0))
    except (ImportError, OSError, ValueError):
        pass
    for limit, current in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                           ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                            "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit) as f, open(current) as g:
                text = f.read().strip()
                if text != "max" and int(text) < 1 << 60:  # cgroup v1 says "no limit" so
                    found.append(max(int(text) - int(g.read()), 0))
        except (OSError, ValueError):
            pass
    return min(found)


def _check_switch(switch_step) -> np.ndarray | None:
    if switch_step is None:
        return None
    return validate.integers("switch_step", switch_step, low=0)


def _options(noise, seed, adaptive_eta, tol, trap_radius) -> dict:
    """The keyword arguments :func:`run` and :func:`phase_diagram` share, checked."""
    return dict(
        noise=validate.number("noise", noise, low=0.0),
        seed=validate.integer("seed", seed, low=0),
        adaptive_eta=validate.number("adaptive_eta", adaptive_eta, low=0.0, strict_low=True),
        tol=validate.number("tol", tol, low=0.0, strict_low=True),
        trap_radius=validate.number("trap_radius", trap_radius, low=0.0, strict_low=True),
    )


# -- the simulation loop -------------------------------------------------------------------


@dataclass
class _Result:
    final_x: np.ndarray
    final_y: np.ndarray
    codes: np.ndarray
    at: np.ndarray
    exit_step: np.ndarray
    record: dict | None


def _simulate(landscape: Landscape, methods: np.ndarray, lr, rho, x0, steps: int, *,
              noise: float, seed: int, adaptive_eta: float, tol: float, trap_radius: float,
              record: bool, switch: np.ndarray | None = None) -> _Result:
    shape = _batch_shape(methods, lr, rho, x0, switch)
    rules = Rules.of(methods)
    # Late-phase switching: GD's rules before each run's switch step, its method's from it.
    if switch is not None:
        switch = np.broadcast_to(switch, shape)
        first, last = int(switch.min()), int(switch.max())
        plain = rules.switched_on(False)
    lr = np.broadcast_to(lr, shape)
    rho = np.broadcast_to(rho, shape)
    x = np.broadcast_to(x0[..., 0], shape).astype(float)
    y = np.broadcast_to(x0[..., 1], shape).astype(float)
    rng = np.random.default_rng(seed) if noise > 0 else None

    loss0 = landscape.loss_xy(x, y)
    exit_step = np.full(shape, -1, dtype=np.int64)
    exit_loss = np.full(shape, np.nan)
    bound2 = landscape.bound**2
    watch = TailWatch(landscape, shape, steps)
    # Recorded per step into lists, stacked once at the end (and the losses computed then,
    # in one call): with a playground's few runs, each indexed write into a preallocated
    # array costs as much as a step's arithmetic.
    xs, ys, gns, ans, gms = [x], [y], [], [], []

    with np.errstate(all="ignore"):
        for t in range(steps):
            x_old, y_old = x, y
            xi = rng.standard_normal((2, *shape)) * noise if rng is not None else None
            now = rules
            if switch is not None and t < last:
                now = plain if t < first else rules.switched_on(t >= switch)
            x, y, gn, an, gamma = step(landscape, x, y, lr, rho, now, adaptive_eta, xi, record)

            # Leaving the landscape: remember where and at what loss, then freeze as NaN.
            # Checked every few steps (the check costs a sixth of a step); a recorded
            # trajectory is then trimmed back to the first step past the bound, below.
            if (t + 1) % _EXIT_CHECK_EVERY == 0 or t + 1 == steps:
                out = ~(x * x + y * y <= bound2)
                if out.any():
                    new = out & (exit_step < 0)
                    exit_step[new] = t + 1
                    exit_loss[new] = landscape.loss_xy(x[new], y[new])
                    x = np.where(out, np.nan, x)
                    y = np.where(out, np.nan, y)
            watch.observe(t, x_old, y_old, x, y)
            if record:
                xs.append(x)
                ys.append(y)
                gns.append(gn)
                ans.append(an)
                gms.append(gamma)
        codes, at = watch.classify(exit_step, exit_loss, loss0, x, y, tol, trap_radius)

    rec = None
    if record:
        positions = np.stack([np.broadcast_to(xs, (steps + 1, *shape)),
                              np.broadcast_to(ys, (steps + 1, *shape))], axis=-1)
        grad_norms, ascent_norms, gammas = (np.broadcast_to(v, (steps, *shape)).copy()
                                            for v in (gns, ans, gms))
        with np.errstate(all="ignore"):
            losses = landscape.loss_xy(positions[..., 0], positions[..., 1])
        # The first recorded step past the bound (or non-finite) is the exit; blank what follows.
        with np.errstate(all="ignore"):
            beyond = ~(positions[..., 0] ** 2 + positions[..., 1] ** 2 <= bound2)
        first = np.where(beyond.any(axis=0), beyond.argmax(axis=0), -1)
        after = (first >= 0) & (np.arange(steps + 1).reshape(-1, *(1,) * len(shape)) >= first)
        positions[after] = np.nan
        losses[after] = np.nan
        for arr in (grad_norms, ascent_norms, gammas):
            arr[after[1:]] = np.nan  # measured at a point already past the bound
        exit_step = np.where(first >= 0, first, exit_step)
        rec = dict(positions=positions, losses=losses, grad_norms=grad_norms,
                   ascent_grad_norms=ascent_norms, gammas=gammas)
    return _Result(x, y, codes, at, exit_step, rec)


def run(
    landscape: Landscape,
    method: str | list[str] | np.ndarray,
    lr: float | np.ndarray,
    rho: float | np.ndarray,
    x0,
    steps: int,
    *,
    switch_step: int | np.ndarray | None = None,
    noise: float = 0.0,
    seed: int = 0,
    adaptive_eta: float = 0.01,
    tol: float = 1e-3,
    trap_radius: float = 0.05,
    max_bytes: int | None = None,
) -> Trajectory:
    """Run ``method`` on ``landscape`` for ``steps`` steps: ``w ← w − η·d(w)``.

    ``method`` names rows of :mod:`samlab.methods` (docs/methods.md#the-table).
    ``method``, ``lr``, ``rho`` and ``x0[..., 2]`` broadcast against each other,
    so one call runs a whole batch: ``run(L, ["gd", "sam"], 0.1, 0.5, [1, 0.1], 300)``
    runs GD and SAM side by side. ``noise > 0`` adds seeded Gaussian noise of
    that standard deviation to every gradient (SGD; the same draw at ``w`` and
    ``w_asc``, as one mini-batch).

    Each run ends in one of :data:`OUTCOMES` (docs/toy.md#outcomes), judged over its
    last tenth of steps (at most 100): ``converged`` (stayed within ``tol`` of a minimum,
    named in ``at``, or of the manifold of minima), ``trapped`` (never further
    than ``trap_radius`` from a saddle along its negative-curvature direction,
    and not moving steadily away: it did not escape, though it may swing along
    the other direction), ``oscillating`` (bounded, not settled, and
    turning back on itself in at least a quarter of those steps), ``unsettled``
    (bounded, still moving on: more steps would tell), ``diverged`` (left the
    landscape's bound or became non-finite) or
    ``escaped`` (left the bound downhill, on a landscape unbounded below).

    The memory a call needs is estimated first; above ``max_bytes`` (default: half the
    memory available) it raises ``MemoryError`` with the estimate, before allocating.
    """
    _check_landscape(landscape)
    methods = _check_methods(method)
    lr = validate.numbers("lr", lr, low=0.0, strict_low=True)
    rho = validate.numbers("rho", rho, low=0.0)
    x0 = _check_x0(x0)
    steps = validate.integer("steps", steps, low=1)
    switch = _check_switch(switch_step)
    options = _options(noise, seed, adaptive_eta, tol, trap_radius)
    max_bytes = validate.integer("max_bytes", max_bytes, low=1, none=True)
    _check_memory(int(np.prod(_batch_shape(methods, lr, rho, x0, switch))), steps, True,
                  max_bytes)

    res = _simulate(landscape, methods, lr, rho, x0, steps, record=True, switch=switch,
                    **options)
    shape = res.codes.shape
    return Trajectory(
        landscape=landscape,
        method=np.broadcast_to(methods, shape).copy(),
        lr=np.broadcast_to(lr, shape).copy(),
        rho=np.broadcast_to(rho, shape).copy(),
        **res.record,
        outcome=np.asarray(OUTCOMES)[res.codes],
        at=res.at.astype(str),
        exit_step=res.exit_step,
        switch_step=None if switch is None else np.broadcast_to(switch, shape).copy(),
    )


def phase_diagram(
    landscape: Landscape,
    method: str,
    lrs,
    rhos,
    x0,
    steps: int,
    *,
    switch_step: int | np.ndarray | None = None,
    noise: float = 0.0,
    seed: int = 0,
    adaptive_eta: float = 0.01,
    tol: float = 1e-3,
    trap_radius: float = 0.05,
    max_bytes: int | None = None,
) -> PhaseDiagram:
    """The outcome of ``method`` from ``x0`` for every ``(lr, ρ)`` in ``lrs × rhos``.

    All settings run as one batch (no Python loop over settings); only the
    final state and the outcome are kept. Labels are those of :func:`run`.
    ``switch_step`` (GD before it, as in :func:`run`) is one step for the whole grid or
    an array broadcasting against ``(len(lrs), len(rhos))``.
    """
    _check_landscape(landscape)
    if not isinstance(method, str):
        raise validate.fail("method", "one method name (a phase diagram shows one method: "
                            "call it once per method)", method)
    get_method(method)
    lrs = validate.numbers("lrs", lrs, low=0.0, strict_low=True).ravel()
    rhos = validate.numbers("rhos", rhos, low=0.0).ravel()
    if lrs.size == 0 or rhos.size == 0:
        raise ValueError(f"lrs and rhos must be non-empty, got {lrs.size} lrs and {rhos.size} rhos")
    x0 = _check_x0(x0)
    if x0.shape != (2,):
        raise ValueError(f"x0 must be one point (x, y) for a phase diagram, got shape {x0.shape}")
    steps = validate.integer("steps", steps, low=1)
    switch = _check_switch(switch_step)
    if switch is not None and switch.ndim:
        try:
            switch = np.broadcast_to(switch, (lrs.size, rhos.size))
        except ValueError:
            raise ValueError(f"switch_step must broadcast against the grid (len(lrs), len(rhos)) "
                             f"= {(lrs.size, rhos.size)}, got shape {switch.shape}") from None
    kwargs = dict(record=False, **_options(noise, seed, adaptive_eta, tol, trap_radius))
    max_bytes = validate.integer("max_bytes", max_bytes, low=1, none=True)
    _check_memory(lrs.size * rhos.size, steps, False, max_bytes)

    methods = np.asarray(method)
    # Every setting is independent, so without noise the grid splits into row blocks run
    # in threads (NumPy releases the GIL inside each array operation): same numbers, ~2x
    # faster on two cores. With noise one generator must serve the whole grid.
    n_threads = min(os.cpu_count() or 1, 8, lrs.size) if kwargs["noise"] == 0 else 1
    if n_threads > 1 and lrs.size * rhos.size >= 4096:
        rows = np.array_split(np.arange(lrs.size), n_threads)
        with ThreadPoolExecutor(n_threads) as pool:
            parts = list(pool.map(
                lambda r: _simulate(landscape, methods, lrs[r, None], rhos[None, :], x0, steps,
                                    switch=switch if switch is None or not switch.ndim
                                    else switch[r], **kwargs),
                rows,
            ))
        res = _Result(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("final_x", "final_y", "codes", "at", "exit_step")), None)
    else:
        res = _simulate(landscape, methods, lrs[:, None], rhos[None, :], x0, steps,
                        switch=switch, **kwargs)
    return PhaseDiagram(
        landscape=landscape, method=str(method), lrs=lrs, rhos=rhos, x0=x0, steps=steps,
        codes=res.codes, at=res.at.astype(str), final=np.stack([res.final_x, res.final_y], -1),
        switch_step=None if switch is None else np.broadcast_to(switch, res.codes.shape).copy(),
    )
