"""Interactive phase diagrams: the outcome of every ``(lr, ρ)`` as a plotly heatmap."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .. import methods, plot
from ..toy import OUTCOMES, PhaseDiagram


def phase_diagram_figure(pd: PhaseDiagram, *, predicted: np.ndarray | None = None,
                         predicted_label: str = "prediction") -> go.FigureWidget:
    """A heatmap of ``pd``'s outcomes on log axes; hover shows lr, ρ and the outcome.

    ``predicted`` (boolean, shape of ``pd.codes``) is drawn as the boundary of a
    closed-form prediction, so the measured and the predicted regions can be
    compared point by point. The static twin is :func:`samlab.plot.phase_diagram`.
    """
    n = len(OUTCOMES)
    # A stepped colour scale: code k gets the k-th outcome colour.
    scale = []
    for k, o in enumerate(OUTCOMES):
        scale += [(k / n, plot.OUTCOME_COLORS[o]), ((k + 1) / n, plot.OUTCOME_COLORS[o])]
    labels = pd.outcome.T
    fig = go.FigureWidget(go.Heatmap(
        x=pd.lrs, y=pd.rhos, z=pd.codes.T, zmin=-0.5, zmax=n - 0.5, colorscale=scale,
        customdata=labels, name="outcome",
        hovertemplate="η=%{x:.3g}, ρ=%{y:.3g}: %{customdata}<extra></extra>",
        colorbar=dict(tickvals=list(range(n)), ticktext=list(OUTCOMES), title="outcome"),
    ))
    if predicted is not None:
        fig.add_trace(go.Contour(
            x=pd.lrs, y=pd.rhos, z=np.asarray(predicted, float).T, showscale=False,
            contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
            line=dict(color="white", width=3, dash="dash"), name=predicted_label,
            showlegend=True, hoverinfo="skip",
        ))
    fig.update_layout(
        title=f"{methods.label(pd.method)} on the {pd.landscape.name}, {pd.steps} steps",
        xaxis=dict(type="log", title="learning rate η"), yaxis=dict(type="log", title="ρ"),
        height=430, width=620, template="plotly_white", legend=dict(x=0, y=1.12, orientation="h"),
    )
    return fig
