// What the widget outputs show, to tell "widget failed" from "not yet there".
() => {
  const outputs = Array.from(document.querySelectorAll('.jp-OutputArea-output'));
  const text = outputs.map(o => o.textContent || '').join('\n');
  const plot = document.querySelector('.samlab-playground .samlab-plot');
  return {
    playground: !!document.querySelector('.samlab-playground'),
    plot: !!plot,
    traces: plot && plot.samlabPlot ? plot.samlabPlot.frame : 0,
    loading: (text.match(/Loading widget\.\.\./g) || []).length,
    widget_outputs: document.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.widget-view+json"]').length,
    plots_with_data: Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot'))
      .filter(p => Array.isArray(p.data) && p.data.length > 0).length
      + Array.from(document.querySelectorAll('.samlab-plot')).filter(p => p.samlabPlot).length,
    widget_errors: text.split('\n')
      .filter(l => /Error displaying widget|Error rendering|Failed to load model class/.test(l))
      .slice(0, 5)
      .concat(Array.from(document.querySelectorAll('.jupyter-widgets-error-widget'),
        () => 'ipywidgets error view "Click to show javascript error." (see the console)')),
  };
}
