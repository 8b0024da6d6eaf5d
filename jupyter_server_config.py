"""Jupyter server settings for working on samlab's notebooks (`make lab` loads this file).

A notebook's source is its jupytext `.py`; the paired `.ipynb` is committed without
outputs, for Binder and Colab. So that saving a notebook in JupyterLab (after running it)
never leaves outputs in a tracked `.ipynb`, and `make test` keeps passing after a save,
outputs are stripped from `notebooks/NN_*.ipynb` as they are saved. The outputs are not
lost for the session: they stay in the open notebook until it is closed.
"""

import re

# The notebooks whose .ipynb is tracked: notebooks/NN_name.ipynb (the path as the server
# sees it, relative to its root: "notebooks/01_x.ipynb", or "01_x.ipynb" when served from
# notebooks/ as `make lab` does).
TRACKED = re.compile(r"(^|/)\d\d_[^/]+\.ipynb$")


def strip_outputs(model, path, contents_manager, **kwargs):
    """Pre-save hook: clear outputs and execution counts of a tracked notebook's code cells."""
    if model.get("type") != "notebook" or not TRACKED.search(path or ""):
        return
    for cell in model.get("content", {}).get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None


c = get_config()  # noqa: F821  (Jupyter's config loader defines it)
c.FileContentsManager.pre_save_hook = strip_outputs
