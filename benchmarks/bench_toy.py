"""samlab.toy: phase diagrams and the playground's table.

- A 200 x 200 (lr, ρ) phase diagram, 500 steps each, on the bounded saddle, for every
  method (goal: <= 0.5 s on a 2-core machine), against two loops over settings timed
  on a sample and scaled per setting: a plain-Python SAM written here with floats, and
  ``toy.run`` called once per setting.
- The playground's kernel side: ``Playground.update``, the outcome table for the controls'
  values (all 6 methods x 500 steps, so each keeps its noise draws). The page draws without
  it (bench_playgrounds measures that); the table follows a pause in the input, so this is
  how long after the pause it lands (goal: <= 100 ms median).
"""

from __future__ import annotations

import math

import numpy as np

from samlab import toy
from samlab.widgets import Playground

from .common import Row, median, timeit

GRID, STEPS = 200, 500
LANDSCAPE = toy.BoundedSaddle(a=1.0, b=1.0, c=1.0)
X0 = (1.0, 0.05)
LRS = np.geomspace(1e-3, 1.0, GRID)
RHOS = np.geomspace(1e-2, 10.0, GRID)


def python_loop_sam(lr: float, rho: float, steps: int = STEPS) -> tuple[float, float]:
    """SAM on the bounded saddle with Python floats: the straightforward scalar loop."""
    a, b, c = LANDSCAPE.a, LANDSCAPE.b, LANDSCAPE.c
    x, y = X0
    for _ in range(steps):
        gx, gy = a * x, y * (c * y * y - b)
        scale = rho / (math.hypot(gx, gy) + 1e-12)
        xa, ya = x + scale * gx, y + scale * gy
        x, y = x - lr * a * xa, y - lr * ya * (c * ya * ya - b)
        if not (x * x + y * y <= 1e6):
            break
    return x, y


def run() -> list[Row]:
    rows = []
    for method in toy.METHODS:
        t = median(timeit(lambda m=method: toy.phase_diagram(LANDSCAPE, m, LRS, RHOS, X0, STEPS),
                          repeat=5))
        rows.append(Row(f"phase diagram {GRID}x{GRID}x{STEPS} steps, {method}", t, "s",
                        "<= 0.5 s", t <= 0.5))
    vectorized = next(r.value for r in rows if r.metric.endswith(", sam"))

    rng = np.random.default_rng(0)
    sample = list(zip(rng.choice(LRS, 100), rng.choice(RHOS, 100), strict=True))
    per_python = median(timeit(lambda: [python_loop_sam(lr, rho) for lr, rho in sample],
                               repeat=3)) / len(sample)
    few = sample[:40]
    per_run = median(timeit(lambda: [toy.run(LANDSCAPE, "sam", lr, rho, X0, STEPS)
                                     for lr, rho in few], repeat=3)) / len(few)
    n = GRID * GRID
    rows += [
        Row("plain-Python SAM loop, per setting", per_python * 1e3, "ms",
            note="100 sampled settings"),
        Row("toy.run called once per setting, per setting", per_run * 1e3, "ms",
            note="40 sampled settings"),
        Row("speed-up of phase_diagram over the plain-Python loop (SAM)",
            per_python * n / vectorized, "x", note=f"loop time scaled to {n} settings"),
        Row("speed-up of phase_diagram over toy.run per setting (SAM)",
            per_run * n / vectorized, "x", note=f"loop time scaled to {n} settings"),
    ]

    pg = Playground(LANDSCAPE, methods=("gd", "sam", "usam", "ssam"), lr=0.1, rho=0.5,
                    steps=STEPS)
    values = iter(np.tile(np.geomspace(0.01, 0.5, 20), 10))
    redraw = timeit(lambda: setattr(pg.lr_slider, "value", next(values)), repeat=100, warmup=5)
    rows.append(Row("playground outcome table (kernel), 6 methods x 500 steps (median of 100)",
                    median(redraw) * 1e3, "ms", "<= 100 ms", median(redraw) <= 0.100))
    rows.append(Row("playground outcome table (kernel), 95th percentile",
                    float(np.percentile(redraw, 95)) * 1e3, "ms"))
    return rows
