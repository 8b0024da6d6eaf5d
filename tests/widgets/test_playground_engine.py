"""The page's engine (samlab/widgets/js/engine.js, in V8) computes what samlab.toy.run does.

The playground draws what the browser computes, and the kernel's table and
``Playground.trajectory`` come from NumPy: these tests hold the two within 1e-12 on every
method and landscape, with and without noise and a late switch, runs that leave the
landscape included.
"""

from __future__ import annotations

import numpy as np
import pytest

from samlab import methods, plot, toy
from samlab.widgets import Playground

pytest.importorskip("py_mini_racer", reason="the JavaScript engine test needs mini-racer")

from js_engine import Engine, state_of  # noqa: E402

EVERY_METHOD = methods.names(aliases=False)

# Each landscape with a start and settings where every method moves for a while.
LANDSCAPES = {
    "saddle quadratic": (toy.SaddleQuadratic(a=1.0, b=0.5), (1.0, 0.05), 0.1, 0.5),
    "bounded saddle": (toy.BoundedSaddle(a=1.0, b=1.0, c=1.0), (1.0, 0.05), 0.1, 0.5),
    "convex quadratic": (toy.ConvexQuadratic((1.0, 0.1), angle=0.4), (1.0, 1.0), 0.5, 1.0),
    "hyperbola": (toy.Hyperbola(), (2.0, 0.55), 0.05, 0.1),
    "valley": (toy.SharpFlatValley(), (0.3, 1.0), 0.05, 0.3),
    "tilted valley": (toy.TiltedValley(), (0.5, 0.0), 0.1, 0.05),
}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def playground(name: str, **kwargs) -> Playground:
    land, x0, lr, rho = LANDSCAPES[name]
    kwargs = {"methods": EVERY_METHOD, "lr": lr, "rho": rho, "steps": 400, "x0": x0,
              "lr_range": (1e-3, 5.0), **kwargs}
    return Playground(land, **kwargs)


def assert_same_runs(engine: Engine, pg: Playground) -> None:
    js = engine.run(pg.view.spec, pg.view.noise_z, state_of(pg))
    ref = pg._runs.positions
    assert js.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(js), np.isnan(ref))
    np.testing.assert_allclose(js, ref, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_every_method_steps_as_numpy_does(engine, name):
    pg = playground(name)
    assert pg.view.spec["engine"] == "browser"
    assert_same_runs(engine, pg)


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_with_gradient_noise_and_a_late_switch_too(engine, name):
    pg = playground(name, noise=0.01, switch=150, seed=3)
    assert_same_runs(engine, pg)
    pg.noise_box.value = 0.2  # another σ scales the same draws
    pg.switch_slider.value = 0
    assert_same_runs(engine, pg)


def test_the_noise_the_page_adds_is_toy_runs_seeded_draw():
    # toy.run draws (2, runs) normals a step; the page gets them all at once.
    pg = playground("bounded saddle", noise=0.05, seed=7)
    z = np.frombuffer(pg.view.noise_z, "<f8").reshape(pg.steps_slider.max, 2,
                                                      len(pg.available))
    rng = np.random.default_rng(7)
    for t in range(5):
        np.testing.assert_array_equal(z[t], rng.standard_normal((2, len(pg.available))))


def test_runs_that_leave_the_landscape_end_where_numpy_ends_them(engine):
    pg = playground("bounded saddle", lr=2.5, rho=8.0)
    assert "diverged" in pg._runs.outcome
    assert_same_runs(engine, pg)


def test_what_the_page_draws_splits_each_path_at_the_switch_and_shows_its_values(engine):
    valley = toy.SharpFlatValley()
    pg = Playground(valley, methods=("gd", "sam", "usam"), lr=0.05, rho=0.2, steps=300,
                    x0=(0.3, 1.0), switch=120, metric=("sharpness s(x)", valley.sharpness))
    drawn = engine.traces(pg.view.spec, pg.view.noise_z, state_of(pg))
    traj = pg.trajectory
    assert list(drawn["traces"]) == pg.methods == ["gd", "sam", "usam"]
    gd, sam = drawn["traces"]["gd"], drawn["traces"]["sam"]
    assert gd["before"] is None  # GD has no switch: all of it is its path
    np.testing.assert_allclose(gd["path"], traj.positions[:, 0], rtol=1e-12)
    np.testing.assert_allclose(sam["before"], traj.positions[:121, 1], rtol=1e-12)
    np.testing.assert_allclose(sam["path"], traj.positions[120:, 1], rtol=1e-12)
    np.testing.assert_allclose(sam["values"], valley.sharpness(traj.positions[:, 1]),
                               rtol=1e-12)
    np.testing.assert_allclose(drawn["range"],
                               plot.loss_range(traj, valley.sharpness(traj.positions)),
                               rtol=1e-9)


def test_unchecked_methods_are_not_drawn_and_the_range_follows_the_checked(engine):
    pg = playground("bounded saddle", methods=("gd", "sam"))
    pg.method_boxes["ssam"].value = True
    drawn = engine.traces(pg.view.spec, pg.view.noise_z, state_of(pg))
    assert list(drawn["traces"]) == ["gd", "sam", "ssam"]
    np.testing.assert_allclose(drawn["traces"]["ssam"]["values"], pg.trajectory.losses[:, 2],
                               rtol=1e-12)
    np.testing.assert_allclose(drawn["range"], plot.loss_range(pg.trajectory), rtol=1e-9)


def test_a_landscape_without_a_javascript_twin_is_computed_by_the_kernel():
    class Bowl(toy.ConvexQuadratic):  # a user's subclass: the page cannot step it
        name = "bowl"

    pg = Playground(Bowl((1.0, 0.5)), methods=("gd", "sam"), steps=50)
    assert pg.view.spec["engine"] == "kernel"
    sent = pg.view.kernel_runs
    positions = np.frombuffer(sent["positions"], "<f8").reshape(51, len(pg.available), 2)
    np.testing.assert_array_equal(positions, pg._runs.positions)
    pg.lr_slider.value = 0.3
    assert pg.view.kernel_runs["state"]["lr"] == pytest.approx(0.3)
    # and so is a metric the page does not know
    land = toy.Hyperbola()
    pg = Playground(land, metric=("x", lambda p: p[..., 0]), steps=20)
    assert pg.view.spec["engine"] == "kernel"
    values = np.frombuffer(pg.view.kernel_runs["values"], "<f8").reshape(21, -1)
    np.testing.assert_array_equal(values, pg._runs.positions[..., 0])
