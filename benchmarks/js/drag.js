// Drag a slider handle on a fixed clock: mousedown, `moves` mousemoves `px` apart, one
// every durationMs / moves ms, then mouseup. The events are dispatched from the page's own
// timers, so a move is sent when its time comes whatever the page is doing (a busy page
// gets them late and in a bunch, as a hand's would queue), never paced by the page's
// answers. ipywidgets' sliders (noUiSlider) take mouse events in Chromium.
// Called as page.evaluate(source, [selector, moves, durationMs, px]); returns how late the
// latest move was sent (ms).
async ([selector, moves, durationMs, px]) => {
  const handle = document.querySelector(selector);
  const r = handle.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const fire = (type, cx) => handle.dispatchEvent(new MouseEvent(type, {
    bubbles: true, cancelable: true, composed: true, view: window, clientX: cx, clientY: y,
    button: 0, buttons: type === "mouseup" ? 0 : 1 }));
  fire("mousedown", x);
  const t0 = performance.now();
  let late = 0;
  for (let i = 1; i <= moves; i++) {
    const due = t0 + (i * durationMs) / moves;
    await new Promise((done) => setTimeout(done, Math.max(0, due - performance.now())));
    late = Math.max(late, performance.now() - due);
    fire("mousemove", x + px * i);
  }
  fire("mouseup", x + px * moves);
  return late;
}
