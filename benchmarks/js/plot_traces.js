// The playground's drawn traces (el.samlabPlot, set by the view at every drawing), as
// plotly-like line traces: a path per checked method ("lines+markers") and its values per
// step ("lines"); null while the plot is not there.
(selector) => {
  const el = document.querySelector(selector);
  if (!el || !el.samlabPlot) return null;
  const plain = a => Array.from(a, v => (Number.isFinite(v) ? v : null));
  return el.samlabPlot.traces.flatMap(t => [
    {name: t.label, mode: 'lines+markers', x: plain(t.path.xs), y: plain(t.path.ys)},
    {name: t.label, mode: 'lines', x: plain(t.values.map((_, i) => i)), y: plain(t.values)}]);
}
