"""How a run ended: one label per run, judged over the last tenth of its steps.

:class:`TailWatch` follows every run through the tail of a simulation (at most its last
100 steps) and :meth:`TailWatch.classify` turns what it saw into one of
:data:`OUTCOMES` and the critical point it ended at (docs/toy.md#outcomes).
"""

from __future__ import annotations

import numpy as np

from .landscapes import CriticalPoint, Landscape

#: Every outcome a run can end in, in the order of the integer codes.
OUTCOMES: tuple[str, ...] = (
    "converged", "trapped", "oscillating", "unsettled", "diverged", "escaped"
)
CONVERGED, TRAPPED, OSCILLATING, UNSETTLED, DIVERGED, ESCAPED = range(len(OUTCOMES))


def outcome_code(name: str) -> int:
    """The integer code of outcome ``name`` (its index in :data:`OUTCOMES`)."""
    if name not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {name!r}")
    return OUTCOMES.index(name)


def escape_direction(landscape: Landscape, c: CriticalPoint):
    """Unit eigenvector of a saddle's most negative curvature: the way down from it."""
    if c.kind != "saddle":
        return None, None
    _, vecs = np.linalg.eigh(landscape.hessian(np.asarray(c.point)))
    return float(vecs[0, 0]), float(vecs[1, 0])


class TailWatch:
    """What the runs did during the tail: distances to critical points, turns, drift.

    Call :meth:`observe` after every step ``t`` (it ignores the steps before the tail),
    then :meth:`classify` once.
    """

    def __init__(self, landscape: Landscape, shape: tuple[int, ...], steps: int):
        self.landscape, self.steps = landscape, steps
        self.tail = max(1, min(steps // 10, 100))
        cps = landscape.critical_points
        self.points = [c.point for c in cps]
        self.escape = [escape_direction(landscape, c) for c in cps]
        # Per critical point: the largest distance seen in the tail (along the way down,
        # for a saddle); per saddle, the tail steps that moved further away along it. A run
        # escaping slowly moves away at (nearly) every step.
        self.dist2 = np.zeros((len(cps), *shape))
        self.outward = np.zeros((len(cps), *shape), dtype=np.int64)
        self.prev_along2 = np.zeros((len(cps), *shape))
        self.resid = np.zeros(shape) if landscape.has_minimum_manifold else None
        self.reversals = np.zeros(shape, dtype=np.int64)  # steps that turned back on the last
        self._prev_step = None

    def observe(self, t: int, x_old, y_old, x, y) -> None:
        steps, tail = self.steps, self.tail
        if t >= steps - tail - 1:
            dx, dy = x - x_old, y - y_old
            if self._prev_step is not None:
                px, py = self._prev_step
                self.reversals += dx * px + dy * py < 0
            self._prev_step = dx, dy
        if t < steps - tail:
            return
        for k, ((cx, cy), (ux, uy)) in enumerate(zip(self.points, self.escape)):
            dx, dy = x - cx, y - cy
            if ux is None:
                self.dist2[k] = np.fmax(self.dist2[k], dx * dx + dy * dy)
            else:
                along2 = (ux * dx + uy * dy) ** 2
                self.dist2[k] = np.fmax(self.dist2[k], along2)
                if t > steps - tail:
                    self.outward[k] += along2 > self.prev_along2[k]
                self.prev_along2[k] = along2
        if self.resid is not None:
            self.resid = np.fmax(self.resid, self.landscape.minimum_residual_xy(x, y))

    def classify(self, exit_step, exit_loss, loss0, x, y, tol: float, trap_radius: float):
        """``(codes, at)``: each run's outcome code and the critical point it ended at."""
        landscape, tail = self.landscape, self.tail
        escaping = (self.outward >= 0.9 * (tail - 1) if tail > 1
                    else np.zeros_like(self.outward, bool))
        dist2 = np.where(escaping, np.inf, self.dist2)
        shape = exit_step.shape
        codes = np.full(shape, OSCILLATING, dtype=np.int8)
        at = np.full(shape, "", dtype=object)
        cps = landscape.critical_points

        # Nearest known critical point, reported with every bounded outcome.
        if cps:
            final_d2 = np.stack([(x - px) ** 2 + (y - py) ** 2 for px, py in self.points])
            nearest = np.nanargmin(np.where(np.isnan(final_d2), np.inf, final_d2), axis=0)
            at[...] = np.asarray([c.name for c in cps], dtype=object)[nearest]
        if self.resid is not None:
            nearest_d2 = np.min(final_d2, axis=0) if cps else np.inf
            at[landscape.minimum_residual_xy(x, y) ** 2 < nearest_d2] = "manifold"
            on_manifold = self.resid < tol
            at[on_manifold] = "manifold"
            codes[on_manifold] = CONVERGED

        # Trapped: never further than trap_radius from a saddle along its way down during
        # the tail, and not moving away along it at (nearly) every step (it may still
        # swing along the uphill direction).
        for k, c in enumerate(cps):
            if c.kind == "saddle":
                hit = (dist2[k] < trap_radius**2) & (codes == OSCILLATING)
                codes[hit], at[hit] = TRAPPED, c.name
        for k, c in enumerate(cps):
            if c.kind == "minimum":
                hit = dist2[k] < tol**2
                codes[hit], at[hit] = CONVERGED, c.name

        left = exit_step >= 0
        codes[left] = DIVERGED
        codes[left & landscape.unbounded_below & (exit_loss < loss0)] = ESCAPED
        at[left] = ""
        # Oscillating needs turns: at least a quarter of the step pairs seen turned back.
        few_turns = 4 * self.reversals < max(1, min(tail, self.steps - 1))
        codes[(codes == OSCILLATING) & few_turns] = UNSETTLED
        return codes, at
