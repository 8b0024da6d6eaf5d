// Watch a playground's plot at every animation frame, as a student's eye would.
//
// Input events (keydown, mousedown, mouseup) are timestamped as they happen. At each
// animation frame a digest of what is drawn is compared with the last one: the canvas's
// pixels for samlab's playground, the plotted data for a plotly figure (the playground
// before it drew in the page). A change is timed once that frame has been rendered (a
// task queued from the frame callback runs after the frame's style, layout and paint),
// with the lr the plot says it shows.
//
// Called as page.evaluate(source, selector); the record is window.__samlab.
(selector) => {
  const el = document.querySelector(selector);
  if (!el) throw new Error("no plot at " + selector);
  const canvas = el.querySelector("canvas");
  const plotly = el.classList.contains("js-plotly-plot");
  const sum = (a) => { let s = 0; if (a) for (let i = 0; i < a.length; i++) { const v = Number(a[i]); if (v === v) s += v; } return s; };
  const digest = plotly
    ? () => (el.data || []).map((t) => `${t.visible}:${t.x ? t.x.length : 0}:${sum(t.x)}:${sum(t.y)}`).join("|")
    : () => {
        const px = new Uint32Array(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data.buffer);
        let h = 0;
        for (let i = 0; i < px.length; i++) h = (Math.imul(h, 31) + px[i]) | 0;
        return h;
      };
  const shownLr = () => (plotly ? el.layout && el.layout.meta && el.layout.meta.lr
                                : el.samlabPlot && el.samlabPlot.meta.lr);
  if (window.__samlab) window.__samlab.stop = true;
  const s = (window.__samlab = { events: [], changes: [], stop: false });
  for (const type of ["keydown", "mousedown", "mouseup"]) {
    document.addEventListener(type, (e) => s.events.push({ type, key: e.key || "", t: performance.now() }), true);
  }
  let last = digest();
  const tick = () => {
    if (s.stop) return;
    const now = digest();
    if (now !== last) {
      last = now;
      const lr = shownLr();
      setTimeout(() => s.changes.push({ t: performance.now(), lr }), 0);
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
