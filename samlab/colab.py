"""What a notebook's first cell does on Colab once pip has installed samlab (README.md, Notebooks).

The install itself stays in the cell: before it, there is no samlab to import.
"""

from __future__ import annotations


def setup(*, gpu: bool = False) -> None:
    """Turn on Colab's widget manager (the playgrounds and dashboards are ipywidgets); with
    ``gpu``, say how to get one when the runtime has none."""
    try:
        from google.colab import output
    except ImportError:
        raise RuntimeError("samlab.colab.setup() is for Colab: google.colab cannot be "
                           "imported here") from None
    output.enable_custom_widget_manager()
    if gpu:
        import torch

        if not torch.cuda.is_available():
            print("No GPU: choose Runtime → Change runtime type → T4 GPU, then run again. "
                  "Until then this notebook runs in quick mode.")
