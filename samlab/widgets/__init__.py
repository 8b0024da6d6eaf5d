"""Interactive figures: plotly ``FigureWidget`` panels driven by ipywidgets controls."""

from .phase import phase_diagram_figure
from .playground import Playground

__all__ = ["Playground", "phase_diagram_figure"]
