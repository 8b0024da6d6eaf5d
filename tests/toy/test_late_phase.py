"""Late-phase switching in the toy world (docs/toy.md#late-phase-switching).

The truth: GD run by hand for ``S`` steps, then the method run by hand from where GD
stopped. A switched run must be that, bit for bit, whatever else shares its batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from samlab.toy import BoundedSaddle, ConvexQuadratic, SharpFlatValley, phase_diagram, run

VALLEY = SharpFlatValley()
START = [0.3, 1.0]


def by_hand(landscape, method, lr, rho, x0, steps, switch):
    """GD for ``switch`` steps, then ``method`` from GD's last point: two separate calls."""
    switch = min(switch, steps)
    gd = run(landscape, "gd", lr, rho, x0, switch) if switch else None
    start = gd.positions[-1] if gd is not None else np.asarray(x0, float)
    if switch == steps:
        return gd.positions
    rest = run(landscape, method, lr, rho, start, steps - switch)
    return rest.positions if gd is None else np.concatenate([gd.positions, rest.positions[1:]])


@pytest.mark.parametrize("method", ["sam", "usam", "ssam", "asam", "rsam"])
@pytest.mark.parametrize("switch", [0, 1, 37, 120, 200, 500])
def test_a_switched_run_is_gd_then_the_method_by_hand_bit_for_bit(method, switch):
    traj = run(VALLEY, method, 0.05, 0.2, START, 200, switch_step=switch)
    np.testing.assert_array_equal(traj.positions, by_hand(VALLEY, method, 0.05, 0.2, START,
                                                          200, switch))


def test_a_batch_of_switch_steps_gives_each_run_what_it_would_give_alone():
    switches = np.array([0, 10, 50, 150, 300])
    methods = np.array(["sam", "usam", "ssam"])[:, None]
    traj = run(VALLEY, methods, 0.05, 0.3, START, 300, switch_step=switches)
    assert traj.positions.shape == (301, 3, 5, 2)
    np.testing.assert_array_equal(traj.switch_step, np.broadcast_to(switches, (3, 5)))
    for i, m in enumerate(methods[:, 0]):
        for j, s in enumerate(switches):
            np.testing.assert_array_equal(
                traj.positions[:, i, j], by_hand(VALLEY, str(m), 0.05, 0.3, START, 300, int(s)))


def test_before_the_switch_the_statistics_are_gds_and_gamma_is_one():
    traj = run(VALLEY, "ssam", 0.05, 0.5, START, 50, switch_step=20)
    gd = run(VALLEY, "gd", 0.05, 0.5, START, 20)
    for name in ("grad_norms", "ascent_grad_norms", "gammas"):
        np.testing.assert_array_equal(getattr(traj, name)[:20], getattr(gd, name))
    np.testing.assert_allclose(traj.gammas[:20], 1.0, rtol=1e-6)  # ‖g‖/(‖g‖ + 1e-12)
    assert (traj.gammas[20:] < 0.9).all()  # SSAM's γ = ‖g‖/‖∇f(w_asc)‖ < 1 here


def test_switch_zero_is_the_method_throughout_and_a_late_switch_is_gd_throughout():
    kw = dict(lr=0.05, rho=0.2, x0=START, steps=100)
    np.testing.assert_array_equal(run(VALLEY, "sam", switch_step=0, **kw).positions,
                                  run(VALLEY, "sam", **kw).positions)
    np.testing.assert_array_equal(run(VALLEY, "sam", switch_step=100, **kw).positions,
                                  run(VALLEY, "gd", **kw).positions)
    np.testing.assert_array_equal(run(VALLEY, "sam", switch_step=10**6, **kw).positions,
                                  run(VALLEY, "gd", **kw).positions)


def test_with_noise_the_switch_keeps_one_noise_stream_across_it():
    kw = dict(lr=0.05, rho=0.2, x0=START, steps=60, noise=0.01, seed=3)
    gd = run(VALLEY, "gd", **kw)
    np.testing.assert_array_equal(run(VALLEY, "sam", switch_step=60, **kw).positions,
                                  gd.positions)
    switched = run(VALLEY, "sam", switch_step=30, **kw)
    np.testing.assert_array_equal(switched.positions[:31], gd.positions[:31])
    assert not np.array_equal(switched.positions[31:], gd.positions[31:])


def test_gd_settles_in_the_sharp_region_and_sam_switched_late_ends_nearly_as_flat():
    steps = 3000
    switches = np.array([0, steps // 2, 3 * steps // 4, steps])
    traj = run(VALLEY, "sam", 0.05, 0.2, START, steps, switch_step=switches)
    s = VALLEY.sharpness(traj.final)
    gd, full, half, late = s[3], s[0], s[1], s[2]
    assert gd > 0.9 * VALLEY.lambda_sharp  # GD stops near x = 0.4: the sharp region
    assert full < 1.1 * VALLEY.lambda_flat
    assert half < 1.1 * full and late < 1.5 * full  # nearly as flat, far flatter than GD
    assert late < gd / 5


def test_usam_escapes_gds_minimum_at_the_linearized_rate():
    """Across the valley at GD's point the loss is ½ s* y²: USAM multiplies y by
    1 − ηs*(1 + ρs*) per step; when that exceeds 1 in size, y grows by it per step."""
    lr, rho, switch = 0.05, 0.5, 150
    traj = run(VALLEY, "usam", lr, rho, START, switch + 60, switch_step=switch)
    s_star = float(VALLEY.sharpness(traj.positions[switch]))
    factor = abs(1 - lr * s_star * (1 + rho * s_star))
    y = np.abs(traj.positions[switch:switch + 40, 1])
    measured = np.exp(np.polyfit(np.arange(40), np.log(y), 1)[0])
    assert factor > 1
    assert measured == pytest.approx(factor, rel=1e-3)


def test_phase_diagram_takes_a_switch_step_for_the_grid_or_per_setting():
    lrs, rhos = np.array([0.02, 0.05, 0.1]), np.array([0.1, 0.3])
    one = phase_diagram(VALLEY, "sam", lrs, rhos, START, 200, switch_step=80)
    per = phase_diagram(VALLEY, "sam", lrs, rhos, START, 200, switch_step=np.array([0, 80]))
    for i, lr in enumerate(lrs):
        for j, rho in enumerate(rhos):
            t = run(VALLEY, "sam", lr, rho, START, 200, switch_step=80)
            np.testing.assert_array_equal(one.final[i, j], t.final)
            assert one.outcome[i, j] == t.outcome
            t = run(VALLEY, "sam", lr, rho, START, 200, switch_step=[0, 80][j])
            np.testing.assert_array_equal(per.final[i, j], t.final)
    np.testing.assert_array_equal(per.switch_step, [[0, 80]] * 3)


def test_phase_diagram_with_a_switch_is_the_same_threaded_or_not():
    lrs, rhos = np.geomspace(0.01, 0.15, 70), np.geomspace(0.05, 1.0, 70)  # >= 4096: threads
    switch = np.arange(70)[:, None] * 3 + np.zeros(70, int)
    big = phase_diagram(VALLEY, "usam", lrs, rhos, START, 120, switch_step=switch)
    for i in (0, 33, 69):
        row = phase_diagram(VALLEY, "usam", lrs[i:i + 1], rhos, START, 120,
                            switch_step=switch[i:i + 1])
        np.testing.assert_array_equal(big.codes[i], row.codes[0])
        np.testing.assert_array_equal(big.final[i], row.final[0])


@pytest.mark.parametrize("value, message", [
    (-1, "switch_step must be an integer >= 0, got -1"),
    (1.5, "switch_step must be an integer or an array of integers, got 1.5"),
    (True, "switch_step must be an integer or an array of integers, got True"),
    ("10", "switch_step must be an integer or an array of integers, got '10'"),
    ([3, -2], "switch_step must be an integer >= 0, got -2"),
])
def test_a_bad_switch_step_is_refused_by_name(value, message):
    with pytest.raises(ValueError) as err:
        run(ConvexQuadratic(), "sam", 0.1, 0.1, [1.0, 1.0], 5, switch_step=value)
    assert str(err.value) == message


def test_switch_steps_that_do_not_broadcast_are_named():
    with pytest.raises(ValueError, match="switch_step"):
        run(BoundedSaddle(), ["sam", "usam"], 0.1, 0.1, [1.0, 0.1], 5, switch_step=[1, 2, 3])
    with pytest.raises(ValueError, match=r"switch_step must broadcast against the grid"):
        phase_diagram(BoundedSaddle(), "sam", [0.1, 0.2], [0.1], [1.0, 0.1], 5,
                      switch_step=[1, 2, 3])
