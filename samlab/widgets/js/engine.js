// samlab's toy engine in JavaScript: the playground's twin of samlab.toy.run.
//
// The browser steps the runs itself, so a slider answers in the frame after the input
// instead of after a round trip through the kernel (docs/toy.md#the-playground). NumPy
// (samlab/toy) is the reference: tests/widgets/test_playground_engine.py holds this
// file to it within 1e-12 on every method and landscape, so each formula below repeats
// its Python twin operation for operation (same order, so the same rounding).
//
// A plain script (no import/export): the widget module is this file followed by view.js,
// and the tests evaluate it alone in V8.
var samlabToy = (function () {
  "use strict";
  const EPS = 1e-12; // samlab.methods.EPS: every division by a norm is guarded by it

  // Each landscape: grad(x, y) -> [gx, gy], loss(x, y), and sharpness(x, y) where the
  // Python class has one. Parameters come from samlab.widgets.playground.landscape_spec.
  function sharpFlatS(p, x) {
    const w2 = p.width * p.width;
    const bump = (p.lambda_sharp - p.lambda_flat) * Math.exp(-0.5 * x * x / w2);
    return [p.lambda_flat + bump, -x / w2 * bump];
  }
  const LANDSCAPES = {
    saddle_quadratic: (p) => ({
      grad: (x, y) => [p.a * x, -p.b * y],
      loss: (x, y) => 0.5 * (p.a * x * x - p.b * y * y),
    }),
    bounded_saddle: (p) => ({
      grad: (x, y) => [p.a * x, y * (p.c * y * y - p.b)],
      loss: (x, y) => { const y2 = y * y; return 0.5 * p.a * x * x - 0.5 * p.b * y2 + 0.25 * p.c * y2 * y2; },
    }),
    convex_quadratic: (p) => ({
      grad: (x, y) => [p.hxx * x + p.hxy * y, p.hxy * x + p.hyy * y],
      loss: (x, y) => 0.5 * (p.hxx * x * x + 2.0 * p.hxy * x * y + p.hyy * y * y),
    }),
    hyperbola: () => ({
      grad: (x, y) => { const r = x * y - 1.0; return [r * y, r * x]; },
      loss: (x, y) => { const r = x * y - 1.0; return 0.5 * r * r; },
      sharpness: (x, y) => x * x + y * y,
    }),
    sharp_flat_valley: (p) => ({
      grad: (x, y) => { const [s, ds] = sharpFlatS(p, x); return [0.5 * ds * y * y, s * y]; },
      loss: (x, y) => 0.5 * sharpFlatS(p, x)[0] * y * y,
      sharpness: (x) => sharpFlatS(p, x)[0],
    }),
    tilted_valley: (p) => ({
      grad: (x) => [p.lam * x, p.c],
      loss: (x, y) => 0.5 * p.lam * x * x + p.c * y,
    }),
  };

  function landscape(spec) {
    const make = LANDSCAPES[spec.kind];
    if (!make) throw new Error("no JavaScript twin for the landscape " + spec.kind);
    return make(spec.params || {});
  }

  // One step of one run (samlab/toy/methods.py: step and perturbation). `rule` is the
  // method's row ({ascent, renormalize}) or null for a plain GD step (before a switch).
  function step(L, x, y, lr, rho, rule, eta, nx, ny) {
    let [gx, gy] = L.grad(x, y);
    if (nx !== undefined) { gx = gx + nx; gy = gy + ny; }
    if (rule === null || rule.ascent === "none") return [x - lr * gx, y - lr * gy];
    const gradNorm = Math.sqrt(gx * gx + gy * gy);
    let ux = gx, uy = gy, n = gradNorm;
    if (rule.ascent === "adaptive") {
      const tx = Math.abs(x) + eta, ty = Math.abs(y) + eta;
      const tgx = tx * gx, tgy = ty * gy;
      ux = tx * tx * gx; uy = ty * ty * gy; n = Math.sqrt(tgx * tgx + tgy * tgy);
    }
    const scale = rule.ascent === "unnormalized" ? rho : rho / (n + EPS);
    let [ax, ay] = L.grad(x + scale * ux, y + scale * uy);
    if (nx !== undefined) { ax = ax + nx; ay = ay + ny; }
    if (rule.renormalize) {
      const gamma = gradNorm / (Math.sqrt(ax * ax + ay * ay) + EPS);
      ax = gamma * ax; ay = gamma * ay;
    }
    return [x - lr * ax, y - lr * ay];
  }

  // Every run of the playground, as samlab.toy.run(landscape, methods, lr, rho, x0,
  // steps, switch_step=switchStep, noise=sigma, seed) computes them: run i uses the unit
  // normals z[(t * 2 + k) * nRuns + i] (the seeded draws the kernel sent, shape
  // [max_steps, 2, nRuns]) at step t. A run that leaves the bound is NaN from there on.
  // Returns [{xs, ys}] of Float64Arrays of steps + 1 points.
  function run(spec, rules, s) {
    const L = landscape(spec.landscape);
    const b2 = spec.landscape.bound * spec.landscape.bound;
    const nRuns = rules.length, out = [];
    const noisy = s.sigma > 0 && s.z;
    for (let i = 0; i < nRuns; i++) {
      const xs = new Float64Array(s.steps + 1).fill(NaN);
      const ys = new Float64Array(s.steps + 1).fill(NaN);
      let x = s.x0[0], y = s.x0[1];
      xs[0] = x; ys[0] = y;
      for (let t = 0; t < s.steps; t++) {
        const rule = s.switchStep !== null && t < s.switchStep ? null : rules[i];
        const nx = noisy ? s.z[(t * 2) * nRuns + i] * s.sigma : undefined;
        const ny = noisy ? s.z[(t * 2 + 1) * nRuns + i] * s.sigma : undefined;
        [x, y] = step(L, x, y, s.lr, s.rho, rule, spec.adaptive_eta, nx, ny);
        if (!(x * x + y * y <= b2)) break; // left the landscape (or non-finite)
        xs[t + 1] = x; ys[t + 1] = y;
      }
      out.push({ xs, ys });
    }
    return out;
  }

  // The right panel's value per step: the loss, or the landscape's sharpness.
  function values(spec, r) {
    const L = landscape(spec.landscape);
    const f = spec.metric === "sharpness" ? L.sharpness : L.loss;
    const v = new Float64Array(r.xs.length);
    for (let t = 0; t < v.length; t++) v[t] = f(r.xs[t], r.ys[t]);
    return v;
  }

  // A y-range for the right panel that ignores points outside the landscape's window
  // (samlab.plot.loss_range).
  function valueRange(spec, runs, vals) {
    const [[x0, x1], [y0, y1]] = spec.landscape.extent;
    let lo = Infinity, hi = -Infinity;
    runs.forEach((r, i) => {
      for (let t = 0; t < r.xs.length; t++) {
        const x = r.xs[t], y = r.ys[t], v = vals[i][t];
        if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && Number.isFinite(v)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    });
    if (lo > hi) return [-1.0, 1.0];
    const pad = 0.05 * (hi - lo) || 0.5;
    return [lo - pad, hi + pad];
  }

  // What the figure draws for a state, as data: per checked method its path (split at the
  // switch: `before`, in GD's colour, is steps 0..cut, `path` is cut..steps), its values
  // per step, and the right panel's range. `runs[i]` belongs to spec.methods[i]; a run
  // the kernel computed brings its `values`.
  function traces(spec, s, runs) {
    const shown = [], vals = [];
    spec.methods.forEach((m, i) => {
      if (!s.methods.includes(m.name)) return;
      const r = runs[i];
      const cut = s.switchStep === null || m.ascent === "none" ? 0 : Math.min(s.switchStep, s.steps);
      const v = r.values || values(spec, r);
      shown.push({
        method: m.name, label: m.label, color: m.color,
        before: cut ? { xs: r.xs.subarray(0, cut + 1), ys: r.ys.subarray(0, cut + 1) } : null,
        path: { xs: r.xs.subarray(cut), ys: r.ys.subarray(cut) },
        values: v,
      });
      vals.push(v);
    });
    const range = shown.length
      ? valueRange(spec, runs.filter((_, i) => s.methods.includes(spec.methods[i].name)), vals)
      : [-1.0, 1.0];
    return { traces: shown, range };
  }

  return { EPS, LANDSCAPES, landscape, step, run, values, valueRange, traces };
})();
