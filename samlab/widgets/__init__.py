"""Interactive figures: plotly ``FigureWidget`` panels driven by ipywidgets controls."""

from .phase import phase_diagram_figure
from .playground import Playground


def __getattr__(name: str):
    # The dashboard pulls in torch (through the trainer); import it only when asked for.
    if name in ("LiveDashboard", "RunWatcher"):
        from . import dashboard

        return getattr(dashboard, name)
    raise AttributeError(f"module 'samlab.widgets' has no attribute {name!r}")


__all__ = ["LiveDashboard", "Playground", "RunWatcher", "phase_diagram_figure"]
