// The state of the notebook in the page: prompts of the code cells, kernel status, and
// every output that reads like an error (tracebacks, widget failures).
() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const prompts = Array.from(nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
    .map(e => e.textContent.trim());
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const errors = [];
  nb.querySelectorAll('.jp-CodeCell').forEach((cell, i) => {
    cell.querySelectorAll('.jp-OutputArea-output').forEach(out => {
      const text = out.textContent || '';
      const stderr = out.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr';
      if ((stderr && (/Traceback/.test(text) || /^\s*\w*(Error|Exception)\b/m.test(text)))
          || /Error displaying widget|Error rendering/.test(text)) {
        const prompt = cell.querySelector('.jp-InputArea-prompt');
        errors.push({cell: i + 1, prompt: prompt ? prompt.textContent.trim() : '',
                     text: text.slice(0, 3000)});
      }
    });
    cell.querySelectorAll('.jupyter-widgets-error-widget').forEach(() => {
      const prompt = cell.querySelector('.jp-InputArea-prompt');
      errors.push({cell: i + 1, prompt: prompt ? prompt.textContent.trim() : '',
                   text: 'a widget failed to render (ipywidgets error view: "Click to show '
                         + 'javascript error."; the browser console below says why)'});
    });
  });
  return {
    prompts,
    status: indicator ? indicator.getAttribute('data-status') : null,
    errors,
    dialogs: Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.innerText),
  };
}
