"""The playground: its controls, what the kernel computes (the outcome table and
``trajectory``, exactly samlab.toy.run) and what it hands the page to draw.

What the page draws is held to NumPy in test_playground_engine.py, and in the browser in
tests/browser/test_notebook_browser.py.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from plotly.basedatatypes import BaseFigure

from samlab import methods, toy
from samlab.widgets import Playground, phase_diagram_figure
from samlab.widgets.playground import PlaygroundView


@pytest.fixture
def playground():
    return Playground(toy.BoundedSaddle(), methods=("gd", "sam", "usam", "ssam"),
                      lr=0.1, rho=0.5, steps=150, x0=(1.0, 0.05))


def assert_trajectory_is_runs_output(pg: Playground) -> None:
    """``pg.trajectory`` holds the checked methods' runs, as toy.run computes them."""
    ref = toy.run(pg.landscape, pg.methods, pg.lr_slider.value, pg.rho_slider.value, pg.x0,
                  pg.steps_slider.value, switch_step=pg.switch)
    traj = pg.trajectory
    assert list(traj.method) == pg.methods
    np.testing.assert_array_equal(traj.positions, ref.positions)
    np.testing.assert_array_equal(traj.losses, ref.losses)
    np.testing.assert_array_equal(traj.outcome, ref.outcome)


def test_initial_trajectory_is_exactly_what_run_returns(playground):
    assert_trajectory_is_runs_output(playground)


@pytest.mark.parametrize("slider, value", [("lr_slider", 0.37), ("rho_slider", 2.5),
                                           ("steps_slider", 400)])
def test_moving_a_slider_replaces_the_runs(playground, slider, value):
    before = playground.trajectory.positions.copy()
    getattr(playground, slider).value = value
    assert_trajectory_is_runs_output(playground)
    after = playground.trajectory.positions
    assert before.shape != after.shape or not np.array_equal(before, after, equal_nan=True)


def test_the_page_reads_every_control_of_the_playground(playground):
    controls = playground.view.controls
    assert controls["lr"] is playground.lr_slider and controls["rho"] is playground.rho_slider
    assert controls["steps"] is playground.steps_slider and controls["switch"] is None
    assert (controls["x"], controls["y"]) == (playground.x0_x, playground.x0_y)
    assert controls["sigma"] is playground.noise_box
    assert controls["methods"] == playground.method_boxes
    spec = playground.view.spec
    assert [m["name"] for m in spec["methods"]] == list(playground.available)
    assert spec["landscape"]["kind"] == "bounded_saddle" and spec["engine"] == "browser"
    assert spec["contour"].startswith("data:image/png;base64,")
    # the widget's module is the engine followed by the view
    assert "var samlabToy" in playground.view._esm and "export default" in playground.view._esm
    assert isinstance(playground.view, PlaygroundView)


def test_unchecking_a_method_drops_it_from_the_table_and_the_trajectory(playground):
    playground.method_boxes["usam"].value = False
    assert playground.methods == ["gd", "sam", "ssam"]
    assert_trajectory_is_runs_output(playground)
    assert "USAM" not in playground.status.value
    playground.method_boxes["asam"].value = True
    assert "asam" in playground.methods
    assert_trajectory_is_runs_output(playground)
    for box in playground.method_boxes.values():
        box.value = False
    assert playground.trajectory is None and "no method selected" in playground.status.value


def test_typed_or_clicked_start_point_moves_every_run(playground):
    playground.x0_y.value = -0.3
    assert_trajectory_is_runs_output(playground)
    playground.set_start(0.4, 0.7)  # what a click on the contour does in the page
    assert playground.x0 == (0.4, 0.7)
    assert_trajectory_is_runs_output(playground)
    assert np.all(playground.trajectory.positions[0] == (0.4, 0.7))


def test_status_table_reports_each_outcome(playground):
    playground.rho_slider.value = 2.0
    traj = playground.trajectory
    for m, outcome in zip(traj.method, traj.outcome, strict=True):
        assert f"{methods.label(str(m))}</b></td><td>{outcome}" in playground.status.value


def test_the_table_shows_final_points_a_reader_can_read():
    valley = toy.SharpFlatValley()
    pg = Playground(valley, methods=("gd",), lr=0.05, steps=1500, max_steps=3000,
                    x0=(0.3, 1.0))
    y = pg.trajectory.final[0, 1]
    assert 0 < abs(y) < 1e-300  # GD's y is a denormal here: printed as 4.94e-324 before
    assert "(0.394, 0.000)" in pg.status.value


def test_diverging_runs_stay_in_the_table_as_outcomes(playground):
    playground.lr_slider.value = 1.0
    playground.rho_slider.value = 10.0
    assert "diverged" in playground.trajectory.outcome
    assert "diverged" in playground.status.value
    assert "<td>—</td>" in playground.status.value  # no final point, not "(nan, nan)"


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="methods must be among .* got 'adam'"):
        Playground(methods=("gd", "adam"))
    with pytest.raises(ValueError, match=r"lr must be a finite number in \[0.001, 1\]"):
        Playground(lr=5.0)
    with pytest.raises(ValueError, match="steps must be an integer in 1..1000, got 0"):
        Playground(steps=0)
    with pytest.raises(ValueError, match=r"noise must be a finite number >= 0, got -1"):
        Playground(noise=-1)


def test_static_figure_draws_the_same_runs(playground):
    fig = playground.static_figure()
    ax = fig.axes[0]
    n = playground.steps_slider.value + 1
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == n]
    traj = playground.trajectory
    assert len(lines) == len(playground.methods)
    for i, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_xdata(), traj.positions[:, i, 0])


def test_phase_diagram_figure_colours_every_setting_by_its_outcome():
    pd = toy.phase_diagram(toy.SaddleQuadratic(a=1, b=0.5), "usam", np.geomspace(0.01, 1, 7),
                           np.geomspace(0.1, 10, 5), [1.0, 0.01], 200)
    predicted = toy.theory.usam_saddle_trapped(pd.lrs[:, None], pd.rhos[None, :], 1.0, 0.5)
    fig = phase_diagram_figure(pd, predicted=predicted)
    assert isinstance(fig, BaseFigure)
    heat = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heat.z), pd.codes.T)
    assert np.asarray(heat.customdata).tolist() == pd.outcome.T.tolist()
    np.testing.assert_array_equal(np.asarray(fig.data[1].z, float), predicted.T.astype(float))


def test_a_landscapes_sharpness_as_metric_is_drawn_by_the_page():
    land = toy.Hyperbola()
    pg = Playground(land, methods=("gd", "sam"), lr=0.05, rho=0.1, steps=200, x0=(2.0, 0.55),
                    metric=("sharpness x²+y²", land.sharpness))
    assert pg.view.spec["engine"] == "browser"
    assert pg.view.spec["metric"] == "sharpness"
    assert pg.view.spec["metric_name"] == "sharpness x²+y²"
    assert pg.view.kernel_runs == {}  # nothing for the kernel to send
    sam = land.sharpness(pg.trajectory.positions[:, 1])
    assert sam[-1] < sam[0]  # SAM drifts toward the flat end of the valley of minima


def test_a_switch_slider_runs_gd_until_the_switch_and_its_range_follows_the_steps():
    valley = toy.SharpFlatValley()
    pg = Playground(valley, methods=("gd", "sam"), lr=0.05, rho=0.2, steps=300, x0=(0.3, 1.0),
                    switch=120, max_steps=2000, metric=("sharpness", valley.sharpness))
    assert pg.view.controls["switch"] is pg.switch_slider
    assert pg.switch_slider.max == 300
    assert_trajectory_is_runs_output(pg)
    pg.steps_slider.value = 100  # a switch beyond the steps is no switch: range and value
    assert pg.switch_slider.max == 100 and pg.switch == 100
    assert_trajectory_is_runs_output(pg)
    pg.steps_slider.value = 1500
    assert pg.switch_slider.max == 1500 and pg.switch == 100
    pg.switch_slider.value = 0  # SAM throughout
    np.testing.assert_array_equal(pg.trajectory.positions[:, 1],
                                  toy.run(valley, "sam", 0.05, 0.2, (0.3, 1.0), 1500).positions)

    with pytest.raises(ValueError, match="switch must be None or an integer in 0..200, got 500"):
        Playground(valley, switch=500)


def test_gradient_noise_is_toy_runs_seeded_noise_and_a_method_keeps_its_own_draws():
    valley = toy.SharpFlatValley()
    kw = dict(lr=0.0706, rho=0.501, steps=1500, max_steps=3000, x0=(0.3, 1.0), switch=750,
              metric=("sharpness", valley.sharpness))
    pg = Playground(valley, methods=("gd", "sam", "usam"), noise=1e-6, **kw)
    ref = toy.run(valley, list(pg.available), 0.0706, 0.501, (0.3, 1.0), 1500, switch_step=750,
                  noise=1e-6, seed=0)
    np.testing.assert_array_equal(pg.trajectory.positions, ref.positions[:, :3])
    usam = pg.trajectory.positions[:, 2].copy()
    pg.method_boxes["sam"].value = False  # ticking another method leaves USAM's path as it is
    np.testing.assert_array_equal(pg.trajectory.positions[:, 1], usam)
    # The lecture's escape: with the notebook's noise USAM leaves GD's sharp point after the
    # switch; with exact gradients it never does (the valley floor has zero gradient).
    assert valley.sharpness(usam[-1]) < 2
    pg.noise_box.value = 0.0
    assert valley.sharpness(pg.trajectory.positions[-1, 1]) > 9


@pytest.mark.parametrize("box, typed", [("x0_x", float("nan")), ("x0_x", float("inf")),
                                        ("noise_box", -0.1), ("noise_box", float("nan"))])
def test_a_typed_value_that_is_not_allowed_is_refused_in_the_status_line(box, typed):
    pg = Playground(toy.ConvexQuadratic((1.0, 0.5)), steps=20)
    before = pg.trajectory
    getattr(pg, box).value = typed  # a student types it: no traceback out of the box
    assert "is not allowed" in pg.status.value
    assert pg.trajectory is before
    getattr(pg, box).value = 0.5 if box == "x0_x" else 0.0  # and a number again redraws
    assert "is not allowed" not in pg.status.value and pg.trajectory is not before


def test_in_a_kernel_a_burst_of_changes_recomputes_the_table_once_and_reads_are_current(
        playground):
    import asyncio

    from samlab.widgets import playground as module

    calls = []
    original = playground.update
    playground.update = lambda: calls.append(playground.lr_slider.value) or original()

    async def drag():
        for v in (0.11, 0.12, 0.13, 0.14, 0.15):  # a drag's values, as the page sends them
            playground.lr_slider.value = v
        assert calls == []  # the page drew them; the kernel waits for the hand to pause
        await asyncio.sleep(module.TABLE_DELAY_S * 2)
        assert calls == [pytest.approx(0.15, rel=0.02)]
        playground.rho_slider.value = 1.2
        assert playground.trajectory.rho[0] == pytest.approx(1.2, rel=0.02)  # read: computed now
        assert len(calls) == 2
        await asyncio.sleep(module.TABLE_DELAY_S * 2)
        assert len(calls) == 2  # and not again

    asyncio.run(drag())
    assert_trajectory_is_runs_output(playground)
