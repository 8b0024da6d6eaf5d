"""The playground's figure shows exactly what samlab.toy.run computes, updated in place."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from plotly.basedatatypes import BaseFigure

from samlab import methods, toy
from samlab.widgets import Playground, phase_diagram_figure


@pytest.fixture
def playground():
    return Playground(toy.BoundedSaddle(), methods=("gd", "sam", "usam", "ssam"),
                      lr=0.1, rho=0.5, steps=150, x0=(1.0, 0.05))


def assert_figure_shows_runs(pg: Playground) -> None:
    for m in pg.available:
        path = pg.figure.data[pg.trace_index(m, "path")]
        loss = pg.figure.data[pg.trace_index(m, "loss")]
        assert path.visible == loss.visible == (m in pg.methods)
        if m not in pg.methods:
            continue
        ref = toy.run(pg.landscape, m, pg.lr_slider.value, pg.rho_slider.value, pg.x0,
                      pg.steps_slider.value)
        np.testing.assert_array_equal(np.asarray(path.x, float), ref.positions[:, 0])
        np.testing.assert_array_equal(np.asarray(path.y, float), ref.positions[:, 1])
        np.testing.assert_array_equal(np.asarray(loss.y, float), ref.losses)
        np.testing.assert_array_equal(np.asarray(loss.x), np.arange(ref.steps + 1))


def test_initial_figure_shows_exactly_what_run_returns(playground):
    assert_figure_shows_runs(playground)


@pytest.mark.parametrize("slider, value", [("lr_slider", 0.37), ("rho_slider", 2.5),
                                           ("steps_slider", 400)])
def test_moving_a_slider_replaces_trajectories_with_runs_output(playground, slider, value):
    before = np.asarray(playground.figure.data[playground.trace_index("sam")].x, float).copy()
    getattr(playground, slider).value = value
    assert_figure_shows_runs(playground)
    after = np.asarray(playground.figure.data[playground.trace_index("sam")].x, float)
    assert before.shape != after.shape or not np.array_equal(before, after, equal_nan=True)


def test_slider_updates_figure_in_place_without_rebuilding_traces(playground):
    fig = playground.figure
    traces = list(fig.data)
    playground.lr_slider.value = 0.02
    assert playground.figure is fig
    assert all(a is b for a, b in zip(fig.data, traces, strict=True))


def test_unchecking_a_method_hides_its_traces(playground):
    playground.method_boxes["usam"].value = False
    assert playground.methods == ["gd", "sam", "ssam"]
    assert_figure_shows_runs(playground)
    playground.method_boxes["asam"].value = True
    assert "asam" in playground.methods
    assert_figure_shows_runs(playground)


def test_typed_or_clicked_start_point_moves_every_run(playground):
    playground.x0_y.value = -0.3
    assert_figure_shows_runs(playground)
    # A click on the contour arrives as plotly Points; the start moves there, one redraw.
    calls = []
    original = playground.update
    playground.update = lambda: calls.append(1) or original()
    catcher = playground.figure.data[-1]  # the transparent grid on top of the panel
    points = type("Points", (), {"xs": [0.4], "ys": [0.7]})()
    playground._on_click(catcher, points, None)
    assert playground.x0 == (0.4, 0.7)
    assert len(calls) == 1
    assert_figure_shows_runs(playground)
    assert playground.start_trace.x == (0.4,) and playground.start_trace.y == (0.7,)


def test_status_table_reports_each_outcome(playground):
    playground.rho_slider.value = 2.0
    traj = playground.trajectory
    for m, outcome in zip(traj.method, traj.outcome, strict=True):
        assert f"{methods.label(str(m))}</b></td><td>{outcome}" in playground.status.value


def test_diverging_runs_do_not_break_the_figure(playground):
    playground.lr_slider.value = 1.0
    playground.rho_slider.value = 10.0
    traj = playground.trajectory
    assert "diverged" in traj.outcome
    lo, hi = playground.figure.layout.yaxis2.range
    assert np.isfinite([lo, hi]).all() and lo < hi


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="methods must be among .* got 'adam'"):
        Playground(methods=("gd", "adam"))
    with pytest.raises(ValueError, match=r"lr must be a finite number in \[0.001, 1\]"):
        Playground(lr=5.0)
    with pytest.raises(ValueError, match="steps must be an integer in 1..1000, got 0"):
        Playground(steps=0)


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


def test_a_metric_panel_shows_the_metric_of_each_runs_positions():
    land = toy.Hyperbola()
    pg = Playground(land, methods=("gd", "sam"), lr=0.05, rho=0.1, steps=200, x0=(2.0, 0.55),
                    metric=("sharpness x²+y²", land.sharpness))
    pg.rho_slider.value = 0.2
    for m in pg.methods:
        ref = toy.run(land, m, 0.05, pg.rho_slider.value, (2.0, 0.55), 200)
        shown = np.asarray(pg.figure.data[pg.trace_index(m, "loss")].y, float)
        np.testing.assert_array_equal(shown, ref.positions[:, 0] ** 2 + ref.positions[:, 1] ** 2)
    assert "sharpness" in pg.figure.layout.yaxis2.title.text
    sam = np.asarray(pg.figure.data[pg.trace_index("sam", "loss")].y, float)
    assert sam[-1] < sam[0]  # SAM drifts toward the flat end of the valley of minima


def test_a_click_anywhere_on_the_panel_starts_there_shown_rounded(playground):
    catcher = playground.figure.data[-1]
    assert catcher.type == "heatmap" and catcher.opacity == 0  # on top of every trajectory
    (x0, x1), (y0, y1) = playground.landscape.extent
    assert (min(catcher.x), max(catcher.x)) == pytest.approx((x0, x1))
    assert (min(catcher.y), max(catcher.y)) == pytest.approx((y0, y1))
    points = type("Points", (), {"xs": [1.4874999999999998], "ys": [-0.30000000000000004]})()
    playground._on_click(catcher, points, None)
    assert playground.x0 == (1.49, -0.3)
    assert_figure_shows_runs(playground)


def test_the_level_lines_are_a_background_image_not_a_trace(playground):
    (image,) = playground.figure.layout.images
    assert image.source.startswith("data:image/png;base64,") and image.layer == "below"
    assert all(t.type in ("scatter", "heatmap") for t in playground.figure.data)


def test_a_burst_of_changes_in_a_kernel_redraws_once_with_the_last_values(playground):
    import asyncio

    calls = []
    original = playground.update
    playground.update = lambda: calls.append(playground.lr_slider.value) or original()

    async def drag():
        for v in (0.11, 0.12, 0.13, 0.14, 0.15):  # as messages queued behind a redraw
            playground.lr_slider.value = v
        await asyncio.sleep(0)  # the event loop runs the scheduled update

    asyncio.run(drag())
    assert calls == [pytest.approx(0.15, rel=0.02)]
    assert_figure_shows_runs(playground)


def test_a_switch_slider_runs_gd_until_the_switch_and_colours_the_two_phases():
    valley = toy.SharpFlatValley()
    pg = Playground(valley, methods=("gd", "sam"), lr=0.05, rho=0.2, steps=300, x0=(0.3, 1.0),
                    switch=120, metric=("sharpness", valley.sharpness))
    truth = toy.run(valley, ["gd", "sam"], 0.05, 0.2, (0.3, 1.0), 300, switch_step=120)
    fig = pg.figure
    sam_path, sam_before = (fig.data[pg.trace_index("sam", p)] for p in ("path", "before"))
    np.testing.assert_array_equal(sam_before.x, truth.positions[:121, 1, 0])
    np.testing.assert_array_equal(sam_path.x, truth.positions[120:, 1, 0])
    np.testing.assert_array_equal(sam_path.y, truth.positions[120:, 1, 1])
    # GD has no switch: its whole path is its own colour, nothing before.
    np.testing.assert_array_equal(fig.data[pg.trace_index("gd", "path")].x,
                                  truth.positions[:, 0, 0])
    assert len(fig.data[pg.trace_index("gd", "before")].x) == 0
    np.testing.assert_allclose(fig.data[pg.trace_index("sam", "loss")].y,
                               valley.sharpness(truth.positions[:, 1]))
    assert fig.layout.shapes[0].x0 == 120 and fig.layout.meta["switch"] == 120

    pg.switch_slider.value = 0  # SAM throughout: no GD phase left to draw
    np.testing.assert_array_equal(fig.data[pg.trace_index("sam", "path")].x,
                                  toy.run(valley, "sam", 0.05, 0.2, (0.3, 1.0),
                                          300).positions[:, 0])
    assert len(fig.data[pg.trace_index("sam", "before")].x) == 0
    assert fig.layout.shapes[0].x0 == 0 and fig.layout.meta["switch"] == 0

    with pytest.raises(ValueError, match="switch must be None or an integer in 0..1000, got 5000"):
        Playground(valley, switch=5000)


def test_the_figure_drops_what_its_view_echoes_back_but_not_clicks(playground):
    # A browser view reports plotly.js's defaults after every update, and every hover;
    # the playground needs neither, and answering them cost the kernel and the page.
    fig = playground.figure
    sent = []
    fig._send = lambda msg, buffers=None: sent.append(msg)
    before = fig.to_dict()
    fig.set_state({"_js2py_traceDeltas": {
        "trace_deltas": [{"uid": t.uid, "mode": "lines", "opacity": 1} for t in fig.data],
        "trace_edit_id": fig._last_trace_edit_id}})
    assert fig.to_dict() == before and sent == []

    catcher = fig.data[-1]
    hovered = []
    catcher.on_hover(lambda *args: hovered.append(args))
    event = {"points": {"trace_indexes": [len(fig.data) - 1], "point_indexes": [0],
                        "xs": [0.4], "ys": [0.7]}, "device_state": None, "selector": None}
    fig.set_state({"_js2py_pointsCallback": {"event_type": "plotly_hover", **event}})
    assert hovered == [] and sent == []
    fig.set_state({"_js2py_pointsCallback": {"event_type": "plotly_click", **event}})
    assert playground.x0 == (0.4, 0.7)
    assert_figure_shows_runs(playground)


def test_a_start_typed_as_nan_is_refused_in_the_status_line_not_raised():
    from samlab import toy
    from samlab.widgets import Playground

    pg = Playground(toy.ConvexQuadratic((1.0, 0.5)), steps=20)
    before = pg.trajectory
    pg.x0_x.value = float("nan")  # a student types "nan": no traceback out of the box
    assert "start (nan, 0.05) is not a point" in pg.status.value
    assert pg.trajectory is before
    pg.x0_x.value = 0.5  # and a number again redraws
    assert "is not a point" not in pg.status.value and pg.trajectory is not before
