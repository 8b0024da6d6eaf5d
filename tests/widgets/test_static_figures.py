"""Static figures for slides: legends beside the data, never on it; handouts wide enough."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from samlab import plot, toy  # noqa: E402

QUAD = toy.ConvexQuadratic((1.0, 0.1))


def figures():
    traj = toy.run(QUAD, ["gd", "sam", "usam"], 0.1, 0.5, [1.0, 1.0], 50)
    pd = toy.phase_diagram(QUAD, "usam", np.geomspace(0.1, 3, 12), np.geomspace(0.01, 3, 12),
                           [1.0, 1.0], 50)
    return {"trajectories": plot.trajectories(traj), "loss curves": plot.loss_curves(traj),
            "phase diagram": plot.phase_diagram(pd, predicted=pd.codes == 0)}


@pytest.mark.parametrize("name", ["trajectories", "loss curves", "phase diagram"])
def test_the_legend_sits_outside_the_axes(name):
    ax = figures()[name]
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    axes = ax.get_window_extent()
    assert legend.x0 >= axes.x1, (legend, axes)
    plt.close("all")


@pytest.mark.parametrize("size", [(3.0, 2.0), (20.0, 4.0)])
def test_a_saved_figure_is_at_least_1600_pixels_wide_and_closed(tmp_path, size):
    fig, ax = plt.subplots(figsize=size)
    ax.plot([0, 1], [0, 1], label="a line")
    plot.outside_legend(ax)
    path = plot.save_figure(fig, tmp_path / "figure.png")
    assert Image.open(path).size[0] >= 1600
    assert not plt.fignum_exists(fig.number)  # not shown a second time inline


def test_trajectories_draw_the_valley_of_minima():
    traj = toy.run(toy.Hyperbola(), "sam", 0.05, 0.1, [2.0, 0.55], 20)
    ax = plot.trajectories(traj)
    minima = [line for line in ax.lines if line.get_label() == "minima"]
    assert minima
    x, y = minima[0].get_data()
    np.testing.assert_allclose(np.asarray(x) * np.asarray(y), 1.0, rtol=1e-12)
    plt.close("all")


def test_edge_series_puts_each_epochs_edges_beside_its_lambda_max():
    import math

    from samlab.train import TrainConfig

    config = TrainConfig(method="sam", rho=0.05, momentum=0.9, switch_epoch=1, epochs=3)
    records = [
        {"kind": "epoch", "epoch": 0, "lr": 0.1, "sam_active": False, "grad_norm_mean": 2.0,
         "lambda_max": 30.0},
        {"kind": "step", "epoch": 1, "lr": 0.05},
        {"kind": "epoch", "epoch": 1, "lr": 0.05, "sam_active": True, "grad_norm_mean": 0.5},
        {"kind": "epoch", "epoch": 2, "lr": 0.01, "sam_active": True, "grad_norm_mean": 0.2,
         "lambda_max": 12.0},
    ]
    series = plot.edge_series(config, records)
    assert series["lambda_max"] == ([1, 3], [30.0, 12.0])
    assert series["gd_edge"][0] == [1, 2, 3]
    for lr, edge in zip((0.1, 0.05, 0.01), series["gd_edge"][1]):
        assert edge == pytest.approx((2 + 2 * 0.9) / lr)
    # SAM's edge only where SAM ran: the root of η(λ + ρλ²/‖g‖) = 2 + 2β.
    assert series["method_edge"][0] == [2, 3]
    for (lr, g), lam in zip(((0.05, 0.5), (0.01, 0.2)), series["method_edge"][1]):
        assert lr * (lam + 0.05 * lam**2 / g) == pytest.approx(3.8)
        assert lam < (2 + 2 * 0.9) / lr
    assert not math.isnan(series["method_edge"][1][0])
