"""Run the SAM family on a landscape: whole batches at once, labelled outcomes.

:func:`run` keeps the full trajectory of every run; :func:`phase_diagram`
keeps only the outcome of each ``(lr, ρ)`` setting, so a 200 x 200 grid of
500-step runs fits in memory and in half a second.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .landscapes import Landscape
from .methods import METHODS, StepFlags, get_method, step

#: Every outcome a run can end in, in the order of the integer codes.
OUTCOMES: tuple[str, ...] = (
    "converged", "trapped", "oscillating", "unsettled", "diverged", "escaped"
)
CONVERGED, TRAPPED, OSCILLATING, UNSETTLED, DIVERGED, ESCAPED = range(len(OUTCOMES))
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

    @property
    def outcome(self) -> np.ndarray:
        """The outcome names, same shape as :attr:`codes`."""
        return np.asarray(OUTCOMES)[self.codes]

    def fraction(self, outcome: str) -> float:
        """Share of settings that ended in ``outcome``."""
        return float(np.mean(self.codes == _outcome_code(outcome)))


def _outcome_code(name: str) -> int:
    if name not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {name!r}")
    return OUTCOMES.index(name)


# -- validation at the public boundary ----------------------------------------------------


def _check_array(name: str, value, *, lower: float, strict: bool) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    ok = np.isfinite(arr) & ((arr > lower) if strict else (arr >= lower))
    if not ok.all():
        bad = arr[~ok].flat[0]
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {lower:g}, got {float(bad)!r}")
    return arr


def _check_methods(method) -> np.ndarray:
    arr = np.asarray(method)
    if arr.dtype.kind not in "US" or arr.size == 0:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    for name in np.unique(arr):
        get_method(str(name))
    return arr.astype(str)


def _check_x0(x0) -> np.ndarray:
    try:
        arr = np.asarray(x0, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"x0 must be a point (x, y) or an array of shape (..., 2), got {x0!r}"
        ) from None
    if arr.ndim == 0 or arr.shape[-1] != 2:
        raise ValueError(f"x0 must have shape (2,) or (..., 2), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"x0 must be finite, got {float(arr[~np.isfinite(arr)].flat[0])!r}")
    return arr


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


def _check_positive(name: str, value) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


# -- the simulation loop -------------------------------------------------------------------


@dataclass
class _Result:
    final_x: np.ndarray
    final_y: np.ndarray
    codes: np.ndarray
    at: np.ndarray
    exit_step: np.ndarray
    record: dict | None


def _simulate(
    landscape: Landscape, methods: np.ndarray, lr, rho, x0, steps: int, *,
    noise: float, seed: int, adaptive_eta: float, tol: float, trap_radius: float,
    record: bool,
) -> _Result:
    shape = np.broadcast_shapes(methods.shape, np.shape(lr), np.shape(rho), x0.shape[:-1])
    flags = StepFlags.for_methods(methods)
    if flags.ascent is True and (methods == "gd").any():
        rho = np.where(methods == "gd", 0.0, rho)  # GD in a mixed batch: an ascent of length 0
    lr = np.broadcast_to(lr, shape)
    rho = np.broadcast_to(rho, shape)
    x = np.broadcast_to(x0[..., 0], shape).astype(float)
    y = np.broadcast_to(x0[..., 1], shape).astype(float)
    rng = np.random.default_rng(seed) if noise > 0 else None

    loss0 = landscape._loss(x, y)
    exit_step = np.full(shape, -1, dtype=np.int64)
    exit_loss = np.full(shape, np.nan)
    bound2 = landscape.bound**2

    tail = max(1, min(steps // 10, 100))
    points = [c.point for c in landscape.critical_points]
    escape = [_escape_direction(landscape, c) for c in landscape.critical_points]
    tail_dist2 = np.zeros((len(points), *shape))
    # Per saddle: tail steps that moved further away along its way down, and the last
    # such distance. A run escaping slowly moves away at (nearly) every step.
    outward = np.zeros((len(points), *shape), dtype=np.int64)
    prev_along2 = np.zeros((len(points), *shape))
    tail_resid = np.zeros(shape) if landscape.has_minimum_manifold else None
    reversals = np.zeros(shape, dtype=np.int64)  # tail steps that turned back on the last one
    dx_prev = dy_prev = None

    if record:
        positions = np.empty((steps + 1, *shape, 2))
        positions[0, ..., 0], positions[0, ..., 1] = x, y
        losses = np.empty((steps + 1, *shape))
        losses[0] = loss0
        grad_norms = np.empty((steps, *shape))
        ascent_norms = np.empty((steps, *shape))
        gammas = np.empty((steps, *shape))

    with np.errstate(all="ignore"):
        for t in range(steps):
            xi = rng.standard_normal((2, *shape)) * noise if rng is not None else None
            x_old, y_old = x, y
            x, y, gn, an, gamma = step(landscape, x, y, lr, rho, flags, adaptive_eta, xi, record)

            # Leaving the landscape: remember where and at what loss, then freeze as NaN.
            # Checked every few steps (the check costs a sixth of a step); a recorded
            # trajectory is then trimmed back to the first step past the bound, below.
            if (t + 1) % _EXIT_CHECK_EVERY and t + 1 < steps:
                out = None
            else:
                out = ~(x * x + y * y <= bound2)
            if out is not None and out.any():
                new = out & (exit_step < 0)
                exit_step[new] = t + 1
                exit_loss[new] = landscape._loss(x[new], y[new])
                x = np.where(out, np.nan, x)
                y = np.where(out, np.nan, y)

            if t >= steps - tail - 1:
                dx_step, dy_step = x - x_old, y - y_old
                if dx_prev is not None:
                    reversals += dx_step * dx_prev + dy_step * dy_prev < 0
                dx_prev, dy_prev = dx_step, dy_step
            if t >= steps - tail:
                for k, ((px, py), (ux, uy)) in enumerate(zip(points, escape)):
                    dx, dy = x - px, y - py
                    if ux is None:
                        tail_dist2[k] = np.fmax(tail_dist2[k], dx * dx + dy * dy)
                    else:  # a saddle: how far along its downhill direction
                        along2 = (ux * dx + uy * dy) ** 2
                        tail_dist2[k] = np.fmax(tail_dist2[k], along2)
                        if t > steps - tail:
                            outward[k] += along2 > prev_along2[k]
                        prev_along2[k] = along2
                if tail_resid is not None:
                    tail_resid = np.fmax(tail_resid, landscape._minimum_residual(x, y))

            if record:
                positions[t + 1, ..., 0], positions[t + 1, ..., 1] = x, y
                losses[t + 1] = landscape._loss(x, y)
                grad_norms[t], ascent_norms[t], gammas[t] = gn, an, gamma

        escaping = outward >= 0.9 * (tail - 1) if tail > 1 else np.zeros_like(outward, bool)
        tail_dist2 = np.where(escaping, np.inf, tail_dist2)
        codes, at = _classify(
            landscape, exit_step, exit_loss, loss0, tail_dist2, tail_resid, x, y, tol, trap_radius
        )
        # Fewer reversals than a quarter of the step pairs seen (none seen: can't call it one).
        codes[(codes == OSCILLATING) & (4 * reversals < max(1, min(tail, steps - 1)))] = UNSETTLED

    rec = None
    if record:
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


def _escape_direction(landscape: Landscape, c) -> tuple[float, float] | tuple[None, None]:
    """Unit eigenvector of a saddle's most negative curvature: the way down from it."""
    if c.kind != "saddle":
        return None, None
    _, vecs = np.linalg.eigh(landscape.hessian(np.asarray(c.point)))
    return float(vecs[0, 0]), float(vecs[1, 0])


def _classify(
    landscape, exit_step, exit_loss, loss0, tail_dist2, tail_resid, x, y, tol, trap_radius
):
    """Label each run by where it spent the last tenth of its steps (at most 100)."""
    shape = exit_step.shape
    codes = np.full(shape, OSCILLATING, dtype=np.int8)
    at = np.full(shape, "", dtype=object)
    cps = landscape.critical_points

    # Nearest known critical point, reported with every bounded outcome.
    if cps:
        final_d2 = np.stack([(x - px) ** 2 + (y - py) ** 2 for px, py in (c.point for c in cps)])
        nearest = np.nanargmin(np.where(np.isnan(final_d2), np.inf, final_d2), axis=0)
        at[...] = np.asarray([c.name for c in cps], dtype=object)[nearest]
    if tail_resid is not None:
        nearest_d2 = np.min(final_d2, axis=0) if cps else np.inf
        nearer = landscape._minimum_residual(x, y) ** 2 < nearest_d2
        at[nearer] = "manifold"
        on_manifold = tail_resid < tol
        at[on_manifold] = "manifold"
        codes[on_manifold] = CONVERGED

    # Trapped: never got further than trap_radius from a saddle along its downhill
    # direction during the tail, and not moving away along it at (nearly) every step (it
    # may still swing along the uphill one).
    for k, c in enumerate(cps):
        if c.kind == "saddle":
            hit = (tail_dist2[k] < trap_radius**2) & (codes == OSCILLATING)
            codes[hit], at[hit] = TRAPPED, c.name
    for k, c in enumerate(cps):
        if c.kind == "minimum":
            hit = tail_dist2[k] < tol**2
            codes[hit], at[hit] = CONVERGED, c.name

    left = exit_step >= 0
    escaped = left & landscape.unbounded_below & (exit_loss < loss0)
    codes[left] = DIVERGED
    codes[escaped] = ESCAPED
    at[left] = ""
    return codes, at


def run(
    landscape: Landscape,
    method: str | list[str] | np.ndarray,
    lr: float | np.ndarray,
    rho: float | np.ndarray,
    x0,
    steps: int,
    *,
    noise: float = 0.0,
    seed: int = 0,
    adaptive_eta: float = 0.01,
    tol: float = 1e-3,
    trap_radius: float = 0.05,
) -> Trajectory:
    """Run ``method`` on ``landscape`` for ``steps`` steps: ``w ← w − η·d(w)`` (SPEC §1).

    ``method``, ``lr``, ``rho`` and ``x0[..., 2]`` broadcast against each other,
    so one call runs a whole batch: ``run(L, ["gd", "sam"], 0.1, 0.5, [1, 0.1], 300)``
    runs GD and SAM side by side. ``noise > 0`` adds seeded Gaussian noise of
    that standard deviation to every gradient (SGD; the same draw at ``w`` and
    ``w_asc``, as one mini-batch).

    Each run ends in one of :data:`OUTCOMES`, judged over its last tenth of
    steps (at most 100): ``converged`` (stayed within ``tol`` of a minimum,
    named in ``at``, or of the manifold of minima), ``trapped`` (never further
    than ``trap_radius`` from a saddle along its negative-curvature direction,
    and not moving steadily away: it did not escape, though it may swing along
    the other direction), ``oscillating`` (bounded, not settled, and
    turning back on itself in at least a quarter of those steps), ``unsettled``
    (bounded, still moving on: more steps would tell), ``diverged`` (left the
    landscape's bound or became non-finite) or
    ``escaped`` (left the bound downhill, on a landscape unbounded below).
    """
    methods = _check_methods(method)
    lr = _check_array("lr", lr, lower=0.0, strict=True)
    rho = _check_array("rho", rho, lower=0.0, strict=False)
    x0 = _check_x0(x0)
    steps = _check_steps(steps)
    noise = float(_check_array("noise", noise, lower=0.0, strict=False))
    adaptive_eta = _check_positive("adaptive_eta", adaptive_eta)
    tol = _check_positive("tol", tol)
    trap_radius = _check_positive("trap_radius", trap_radius)

    res = _simulate(landscape, methods, lr, rho, x0, steps, noise=noise, seed=seed,
                    adaptive_eta=adaptive_eta, tol=tol, trap_radius=trap_radius, record=True)
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
    )


def phase_diagram(
    landscape: Landscape,
    method: str,
    lrs,
    rhos,
    x0,
    steps: int,
    *,
    noise: float = 0.0,
    seed: int = 0,
    adaptive_eta: float = 0.01,
    tol: float = 1e-3,
    trap_radius: float = 0.05,
) -> PhaseDiagram:
    """The outcome of ``method`` from ``x0`` for every ``(lr, ρ)`` in ``lrs × rhos``.

    All settings run as one batch (no Python loop over settings); only the
    final state and the outcome are kept. Labels are those of :func:`run`.
    """
    get_method(method) if isinstance(method, str) else _check_methods(method)
    lrs = _check_array("lrs", lrs, lower=0.0, strict=True).ravel()
    rhos = _check_array("rhos", rhos, lower=0.0, strict=False).ravel()
    if lrs.size == 0 or rhos.size == 0:
        raise ValueError(f"lrs and rhos must be non-empty, got {lrs.size} lrs and {rhos.size} rhos")
    x0 = _check_x0(x0)
    if x0.shape != (2,):
        raise ValueError(f"x0 must be one point (x, y) for a phase diagram, got shape {x0.shape}")
    steps = _check_steps(steps)
    noise = float(_check_array("noise", noise, lower=0.0, strict=False))

    kwargs = dict(
        noise=noise, seed=seed, adaptive_eta=_check_positive("adaptive_eta", adaptive_eta),
        tol=_check_positive("tol", tol), trap_radius=_check_positive("trap_radius", trap_radius),
        record=False,
    )
    methods = np.asarray(method)
    # Every setting is independent, so without noise the grid splits into row blocks run
    # in threads (NumPy releases the GIL inside each array operation): same numbers, ~2x
    # faster on two cores. With noise one generator must serve the whole grid.
    n_threads = min(os.cpu_count() or 1, 8, lrs.size) if noise == 0 else 1
    if n_threads > 1 and lrs.size * rhos.size >= 4096:
        blocks = np.array_split(lrs, n_threads)
        with ThreadPoolExecutor(n_threads) as pool:
            parts = list(pool.map(
                lambda b: _simulate(landscape, methods, b[:, None], rhos[None, :], x0, steps,
                                    **kwargs),
                blocks,
            ))
        res = _Result(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("final_x", "final_y", "codes", "at", "exit_step")), None)
    else:
        res = _simulate(landscape, methods, lrs[:, None], rhos[None, :], x0, steps, **kwargs)
    return PhaseDiagram(
        landscape=landscape, method=str(method), lrs=lrs, rhos=rhos, x0=x0, steps=steps,
        codes=res.codes, at=res.at.astype(str), final=np.stack([res.final_x, res.final_y], -1),
    )
