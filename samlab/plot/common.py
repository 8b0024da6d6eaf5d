"""What every figure shares: the outcome colours, the legend outside the axes, saving
for slides."""

from __future__ import annotations

import math

#: One colour per outcome (same order as :data:`samlab.toy.OUTCOMES`).
OUTCOME_COLORS: dict[str, str] = {
    "converged": "#4daf4a",
    "trapped": "#e41a1c",
    "oscillating": "#ff7f00",
    "unsettled": "#bdbdbd",
    "diverged": "#252525",
    "escaped": "#377eb8",
}

_MARKERS = {"minimum": "*", "saddle": "X", "maximum": "^"}


def outside_legend(ax, **kwargs):
    """The legend to the right of the axes, never on the data."""
    kwargs = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.02, 1.0),
              "borderaxespad": 0.0, **kwargs}
    return ax.legend(**kwargs)


def save_figure(fig, path, *, min_width_px: int = 1600) -> str:
    """Save ``fig`` for slides and handouts (at least ``min_width_px`` wide), then close it.

    The resolution is chosen for the figure's tight bounding box, legends outside the axes
    included, so a figure of any size comes out at least that wide. Returns the path.
    """

    import matplotlib.pyplot as plt

    width_in = fig.get_tightbbox().width + 0.2  # savefig's pad_inches, 0.1 each side
    dpi = max(150, math.ceil(1.05 * min_width_px / width_in))  # 5%: the tight box moves a bit
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return str(path)


