"""samlab/widgets/js/engine.js evaluated in V8 (mini-racer), called with numpy in and out.

The playground's page runs this file; the tests hold it to samlab.toy (NumPy, the
reference) through this helper.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ENGINE = Path(__file__).resolve().parents[2] / "samlab" / "widgets" / "js" / "engine.js"


def _floats(values) -> str:
    return json.dumps([None if not np.isfinite(v) else float(v) for v in np.ravel(values)])


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


class Engine:
    """One V8 context holding engine.js."""

    def __init__(self):
        from py_mini_racer import MiniRacer

        self.ctx = MiniRacer()
        self.ctx.eval(ENGINE.read_text())

    def eval(self, code: str):
        return self.ctx.eval(code)

    def _call(self, spec: dict, noise_z: bytes, state: dict, body: str) -> dict:
        spec = {k: v for k, v in spec.items() if k != "contour"}
        z = np.frombuffer(noise_z, "<f8") if noise_z else np.zeros(0)
        return json.loads(self.ctx.eval(f"""(() => {{
            const spec = {json.dumps(spec)};
            const s = {json.dumps(state)};
            s.z = new Float64Array({_floats(z)});
            const rules = spec.methods.map(m => ({{ascent: m.ascent, renormalize: m.renormalize}}));
            const runs = samlabToy.run(spec, rules, s);
            const plain = a => Array.from(a, v => Number.isFinite(v) ? v : null);
            {body}
        }})()"""))

    def run(self, spec: dict, noise_z: bytes, state: dict) -> np.ndarray:
        """Every method's positions, ``[steps + 1, methods, 2]`` as toy.run lays them out."""
        out = self._call(spec, noise_z, state, """
            return JSON.stringify(runs.map(r => [plain(r.xs), plain(r.ys)]));""")
        return np.stack([np.stack([_array(x), _array(y)], -1) for x, y in out], axis=1)

    def traces(self, spec: dict, noise_z: bytes, state: dict) -> dict:
        """What the page draws for ``state``: per checked method ``before``/``path``
        (``[k, 2]`` or None) and ``values``; and the right panel's ``range``."""
        out = self._call(spec, noise_z, state, """
            const d = samlabToy.traces(spec, s, runs);
            const xy = p => p && [plain(p.xs), plain(p.ys)];
            return JSON.stringify({range: d.range, traces: d.traces.map(t => ({
                method: t.method, before: xy(t.before), path: xy(t.path),
                values: plain(t.values)}))});""")
        pts = lambda p: None if p is None else np.stack([_array(p[0]), _array(p[1])], -1)  # noqa: E731
        return {"range": tuple(out["range"]),
                "traces": {t["method"]: {"before": pts(t["before"]), "path": pts(t["path"]),
                                         "values": _array(t["values"])}
                           for t in out["traces"]}}


def state_of(pg) -> dict:
    """The state the page reads off a Playground's controls (view.js: state())."""
    return {"lr": pg.lr_slider.value, "rho": pg.rho_slider.value,
            "steps": pg.steps_slider.value, "switchStep": pg.switch, "x0": list(pg.x0),
            "sigma": pg.noise, "methods": pg.methods}
