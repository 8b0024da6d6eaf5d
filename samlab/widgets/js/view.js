// The playground's figure, drawn in the page (docs/toy.md#the-playground).
//
// The view listens to the ipywidgets controls' own models in the page (sliders, boxes,
// checkboxes), so an input is computed (engine.js) and drawn before the next frame,
// with no message to the kernel on the way; the kernel only writes the outcome table.
// A canvas, not plotly: plotly.js redraws every trace of its SVG on any change (35-55 ms
// here for a playground), a canvas of a few polylines takes a millisecond or two.
//
// For tests and benchmarks the root element carries what was drawn last:
// el.samlabPlot = {frame, meta: {lr, rho, steps, x0, methods, switch, sigma}, traces}.

const W = 900, H = 430;
const PANELS = [ // plot areas in CSS pixels: the landscape, then the value per step
  { left: 55, top: 30, width: 420, height: 330 },
  { left: 560, top: 30, width: 320, height: 330 },
];
const MAX_MARKERS = 20; // markers per path; the line shows every step
const FONT = "12px -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";

function niceTicks(lo, hi, count = 6) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [lo];
  const raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return ticks;
}

function tickLabel(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

function scale(panel, xr, yr) {
  const sx = panel.width / (xr[1] - xr[0]), sy = panel.height / (yr[1] - yr[0]);
  return {
    x: (v) => panel.left + (v - xr[0]) * sx,
    y: (v) => panel.top + panel.height - (v - yr[0]) * sy,
    invX: (px) => xr[0] + (px - panel.left) / sx,
    invY: (py) => yr[0] + (panel.top + panel.height - py) / sy,
  };
}

function polyline(ctx, xs, ys, sc) {
  ctx.beginPath();
  let pen = false;
  for (let t = 0; t < xs.length; t++) {
    const x = xs[t], y = ys[t];
    if (!Number.isFinite(x) || !Number.isFinite(y)) { pen = false; continue; }
    const px = sc.x(x), py = sc.y(y);
    if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    pen = true;
  }
  ctx.stroke();
}

function markers(ctx, xs, ys, sc, color) {
  const n = xs.length, every = Math.max(1, Math.ceil(n / MAX_MARKERS));
  ctx.fillStyle = color;
  for (let t = 0; t < n; t += every) {
    if (!Number.isFinite(xs[t]) || !Number.isFinite(ys[t])) continue;
    ctx.beginPath();
    ctx.arc(sc.x(xs[t]), sc.y(ys[t]), 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function symbol(ctx, kind, px, py) {
  ctx.fillStyle = ctx.strokeStyle = "black";
  ctx.lineWidth = 2;
  ctx.beginPath();
  if (kind === "saddle") {
    ctx.moveTo(px - 5, py - 5); ctx.lineTo(px + 5, py + 5);
    ctx.moveTo(px + 5, py - 5); ctx.lineTo(px - 5, py + 5);
    ctx.stroke();
    return;
  }
  if (kind === "maximum") {
    ctx.moveTo(px, py - 6); ctx.lineTo(px + 6, py + 5); ctx.lineTo(px - 6, py + 5);
  } else { // a star for a minimum
    for (let k = 0; k < 10; k++) {
      const r = k % 2 ? 3 : 7, a = -Math.PI / 2 + (k * Math.PI) / 5;
      ctx.lineTo(px + r * Math.cos(a), py + r * Math.sin(a));
    }
  }
  ctx.closePath();
  ctx.fill();
}

function axes(ctx, panel, sc, xr, yr, xlabel, ylabel, title) {
  ctx.strokeStyle = "#ebebeb";
  ctx.lineWidth = 1;
  ctx.fillStyle = "#444";
  ctx.font = FONT;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const v of niceTicks(xr[0], xr[1])) {
    const px = Math.round(sc.x(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(px, panel.top); ctx.lineTo(px, panel.top + panel.height); ctx.stroke();
    ctx.fillText(tickLabel(v), px, panel.top + panel.height + 4);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of niceTicks(yr[0], yr[1], 5)) {
    const py = Math.round(sc.y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(panel.left, py); ctx.lineTo(panel.left + panel.width, py); ctx.stroke();
    ctx.fillText(tickLabel(v), panel.left - 5, py);
  }
  ctx.strokeStyle = "#999";
  ctx.strokeRect(panel.left + 0.5, panel.top + 0.5, panel.width, panel.height);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.fillText(xlabel, panel.left + panel.width / 2, panel.top + panel.height + 20);
  ctx.font = "14px -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
  ctx.textBaseline = "bottom";
  ctx.fillText(title, panel.left + panel.width / 2, panel.top - 6);
  ctx.font = FONT;
  ctx.save();
  ctx.translate(panel.left - 42, panel.top + panel.height / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(ylabel, 0, 0);
  ctx.restore();
}

function roundTo(v, spacing) { // as many decimals as a grid of `spacing` resolves
  const d = Math.max(0, Math.ceil(-Math.log10(spacing)));
  return Number(v.toFixed(d));
}

async function render({ model, el }) {
  const spec = model.get("spec");
  const ids = model.get("controls");
  const manager = model.widget_manager;
  const resolve = (ref) => (ref ? manager.get_model(String(ref).replace(/^IPY_MODEL_/, "")) : null);
  const c = {};
  for (const key of ["lr", "rho", "steps", "switch", "x", "y", "sigma"]) c[key] = await resolve(ids[key]);
  const boxes = {};
  for (const [name, ref] of Object.entries(ids.methods)) boxes[name] = await resolve(ref);
  const rules = spec.methods.map((m) => ({ ascent: m.ascent, renormalize: m.renormalize }));
  const bytes = model.get("noise_z");
  const z = bytes && bytes.byteLength
    ? new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
    : null;

  const canvas = document.createElement("canvas");
  const dpr = window.devicePixelRatio || 1;
  canvas.width = W * dpr; canvas.height = H * dpr;
  canvas.style.width = W + "px"; canvas.style.height = H + "px";
  canvas.style.cursor = "crosshair";
  const tip = document.createElement("div");
  tip.style.cssText = "position:absolute;pointer-events:none;display:none;background:rgba(255,255,255,.92);"
    + "border:1px solid #999;border-radius:3px;padding:2px 5px;font:12px sans-serif;white-space:nowrap";
  el.style.position = "relative";
  el.classList.add("samlab-plot");
  el.append(canvas, tip);
  // willReadFrequently: a canvas kept in memory, which a few polylines draw on as fast, and
  // whose pixels a test or benchmark can read back at every frame without a GPU readback.
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const image = new Image();
  image.onload = () => draw();
  image.src = spec.contour;
  const [xr, yr] = spec.landscape.extent;
  const left = scale(PANELS[0], xr, yr);
  let frame = 0;

  function state() {
    const sw = c.switch ? c.switch.get("value") : null;
    return {
      lr: c.lr.get("value"), rho: c.rho.get("value"), steps: c.steps.get("value"),
      switchStep: sw, x0: [c.x.get("value"), c.y.get("value")],
      sigma: c.sigma.get("value"), z,
      methods: spec.methods.map((m) => m.name).filter((n) => boxes[n].get("value")),
    };
  }

  function computed(s) {
    if (spec.engine === "browser") return samlabToy.run(spec, rules, s);
    // A landscape or metric with no JavaScript twin: the kernel sends its runs.
    const k = model.get("kernel_runs");
    if (!k || !k.positions) return null;
    const f64 = (b) => new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const pos = f64(k.positions), vals = f64(k.values);
    const n = spec.methods.length, T = vals.length / n;
    return spec.methods.map((_, i) => {
      const xs = new Float64Array(T), ys = new Float64Array(T), values = new Float64Array(T);
      for (let t = 0; t < T; t++) {
        xs[t] = pos[(t * n + i) * 2]; ys[t] = pos[(t * n + i) * 2 + 1]; values[t] = vals[t * n + i];
      }
      return { xs, ys, values };
    });
  }

  function draw() {
    const s = state();
    const ok = [s.lr, s.rho, s.sigma, s.x0[0], s.x0[1]].every(Number.isFinite) && s.sigma >= 0;
    if (!ok) return; // a typed nan or a negative σ: the kernel's status line says so
    if (spec.engine === "kernel") { // the kernel's runs, for the state they were run with
      const k = model.get("kernel_runs") || {};
      Object.assign(s, k.state || {}, { z });
    }
    const runs = computed(s);
    if (!runs) return;
    const { traces, range } = samlabToy.traces(spec, s, runs);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "white";
    ctx.fillRect(0, 0, W, H);
    const p0 = PANELS[0], p1 = PANELS[1];
    axes(ctx, p0, left, xr, yr, "x", "y", spec.landscape.name);
    if (image.complete && image.naturalWidth) ctx.drawImage(image, p0.left, p0.top, p0.width, p0.height);
    const steps = [0, Math.max(1, s.steps)];
    const right = scale(p1, steps, range);
    axes(ctx, p1, right, steps, range, "step", spec.metric_name, spec.metric_name + " per step");

    ctx.save();
    ctx.beginPath(); ctx.rect(p0.left, p0.top, p0.width, p0.height); ctx.clip();
    ctx.lineWidth = 2;
    for (const tr of traces) {
      if (tr.before) {
        ctx.strokeStyle = spec.gd_color;
        ctx.setLineDash([2, 3]);
        polyline(ctx, tr.before.xs, tr.before.ys, left);
        ctx.setLineDash([]);
      }
      ctx.strokeStyle = tr.color;
      polyline(ctx, tr.path.xs, tr.path.ys, left);
      markers(ctx, tr.path.xs, tr.path.ys, left, tr.color);
    }
    for (const cp of spec.critical_points) symbol(ctx, cp.kind, left.x(cp.x), left.y(cp.y));
    ctx.fillStyle = "white"; ctx.strokeStyle = "black"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(left.x(s.x0[0]), left.y(s.x0[1]), 5.5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    ctx.restore();

    ctx.save();
    ctx.beginPath(); ctx.rect(p1.left, p1.top, p1.width, p1.height); ctx.clip();
    const stepAxis = Float64Array.from({ length: s.steps + 1 }, (_, t) => t);
    ctx.lineWidth = 2;
    for (const tr of traces) { ctx.strokeStyle = tr.color; polyline(ctx, stepAxis, tr.values, right); }
    if (s.switchStep !== null) {
      ctx.strokeStyle = "grey"; ctx.lineWidth = 1; ctx.setLineDash([2, 3]);
      ctx.beginPath(); ctx.moveTo(right.x(s.switchStep), p1.top); ctx.lineTo(right.x(s.switchStep), p1.top + p1.height);
      ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.restore();

    // The legend, under the panels.
    ctx.font = FONT; ctx.textBaseline = "middle"; ctx.textAlign = "left";
    let lx = p0.left;
    for (const tr of traces) {
      ctx.strokeStyle = tr.color; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(lx, H - 14); ctx.lineTo(lx + 22, H - 14); ctx.stroke();
      ctx.fillStyle = "#222";
      ctx.fillText(tr.label, lx + 27, H - 14);
      lx += 40 + ctx.measureText(tr.label).width;
    }
    if (s.switchStep !== null && traces.some((t) => t.before)) {
      ctx.strokeStyle = spec.gd_color; ctx.setLineDash([2, 3]);
      ctx.beginPath(); ctx.moveTo(lx, H - 14); ctx.lineTo(lx + 22, H - 14); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillText("GD before the switch", lx + 27, H - 14);
    }
    frame += 1;
    el.samlabPlot = {
      frame,
      meta: { lr: s.lr, rho: s.rho, steps: s.steps, x0: s.x0, methods: s.methods,
              switch: s.switchStep, sigma: s.sigma },
      traces,
    };
  }

  // Every control redraws at once: the next frame shows the new runs.
  const controls = [...Object.values(c).filter(Boolean), ...Object.values(boxes)];
  for (const m of controls) m.on("change:value", draw);
  model.on("change:kernel_runs", draw);

  function inLeft(ev) {
    const r = canvas.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
    const p = PANELS[0];
    const inside = px >= p.left && px <= p.left + p.width && py >= p.top && py <= p.top + p.height;
    return inside ? { px, py, x: roundTo(left.invX(px), (xr[1] - xr[0]) / spec.click_grid),
                      y: roundTo(left.invY(py), (yr[1] - yr[0]) / spec.click_grid) } : null;
  }
  canvas.addEventListener("mousemove", (ev) => {
    const at = inLeft(ev);
    tip.style.display = at ? "block" : "none";
    if (!at) return;
    const near = spec.critical_points.find((cp) => Math.hypot(left.x(cp.x) - at.px, left.y(cp.y) - at.py) < 8);
    tip.textContent = near ? `${near.kind}: ${near.name}` : `click to start here: x=${at.x}, y=${at.y}`;
    tip.style.left = at.px + 14 + "px";
    tip.style.top = at.py + 10 + "px";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("click", (ev) => {
    const at = inLeft(ev);
    if (!at) return;
    c.x.set("value", at.x); c.x.save_changes();
    c.y.set("value", at.y); c.y.save_changes();
  });

  draw();
  return () => {
    for (const m of controls) m.off("change:value", draw);
    model.off("change:kernel_runs", draw);
  };
}

export default { render };
