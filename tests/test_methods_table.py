"""One table of methods (samlab/methods.py) serves the toy world, torch, training and figures.

A row added here, in a fixture, is seen by ``toy.run``, ``SAM(method=...)``,
``TrainConfig`` and the figures' colours, with no other change: that is what "adding a
method is one row" means.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samlab import methods, plot, toy
from samlab.methods import METHODS, Method, get_method
from samlab.optim import ASAM, SAM
from samlab.train import TrainConfig
from samlab.train.builders import build_optimizer

QUAD = toy.ConvexQuadratic((2.0, 0.3), angle=0.4)


def step(model, opt, x, y) -> None:
    """One ``opt.step(closure)`` on the cross-entropy of ``model`` on ``(x, y)``."""
    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)


@pytest.fixture
def new_row(monkeypatch):
    """Renormalized ASAM under a name of its own: an existing ascent, so one row is all."""
    row = Method("rasam", "adaptive", True, "ASAM + renorm", "#17becf", "a test's row")
    monkeypatch.setitem(METHODS, row.name, row)
    return row


def test_a_new_row_runs_in_the_toy_world_with_its_ascent_and_renormalization(new_row):
    lr, rho, eta, p = 0.1, 0.3, 0.01, np.array([0.9, -0.4])
    traj = toy.run(QUAD, "rasam", lr, rho, p, 1, adaptive_eta=eta)
    # ASAM's ascent, then SSAM's γ, written out: ε = ρ T²g/‖Tg‖, d = γ ∇f(w + ε).
    g = QUAD.H @ p
    t = np.abs(p) + eta
    eps = rho * t * t * g / (np.linalg.norm(t * g) + 1e-12)
    g_asc = QUAD.H @ (p + eps)
    d = np.linalg.norm(g) / (np.linalg.norm(g_asc) + 1e-12) * g_asc
    np.testing.assert_allclose(traj.positions[1], p - lr * d, rtol=1e-13)
    assert traj.method.item() == "rasam"


def test_a_new_row_builds_an_optimizer_that_steps_like_renormalized_asam(new_row):
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    b.load_state_dict(a.state_dict())
    opt_a = SAM(a.parameters(), method="rasam", rho=0.2, lr=0.1)
    opt_b = ASAM(b.parameters(), renormalize=True, rho=0.2, lr=0.1)
    assert (opt_a.ascent, opt_a.renormalize, opt_a.method) == ("adaptive", True, "rasam")
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    for model, opt in ((a, opt_a), (b, opt_b)):
        step(model, opt, x, y)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_new_row_is_a_training_method(new_row):
    config = TrainConfig(method="rasam", dataset="digits", model="mlp")
    opt = build_optimizer(config, torch.nn.Linear(2, 2))
    assert (opt.ascent, opt.renormalize) == ("adaptive", True)


def test_a_new_row_has_its_colour_and_label_in_figures(new_row):
    traj = toy.run(QUAD, ["sam", "rasam"], 0.1, 0.2, [1.0, 1.0], 5)
    ax = plot.trajectories(traj)
    colours = {line.get_label().split(":")[0]: line.get_color() for line in ax.lines
               if line.get_label() and not line.get_label().startswith("_")}
    assert colours["ASAM + renorm"] == "#17becf"
    assert colours["SAM"] == METHODS["sam"].color


def test_gd_is_the_sgd_row_under_its_full_batch_label():
    assert get_method("gd") is get_method("sgd")
    assert methods.label("gd") == "GD" and methods.label("sgd") == "SGD"
    assert methods.color("gd") == methods.color("sgd")
    gd = toy.run(QUAD, "gd", 0.1, 0.0, [1.0, 1.0], 20)
    sgd = toy.run(QUAD, "sgd", 0.1, 0.0, [1.0, 1.0], 20)
    np.testing.assert_array_equal(gd.positions, sgd.positions)


def test_every_name_and_alias_is_unique():
    names = methods.names()
    assert len(names) == len(set(names))
    assert methods.names(aliases=False) == tuple(METHODS)


def test_sam_with_method_sgd_is_the_base_optimizer_bit_for_bit():
    torch.manual_seed(1)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    opt_a = SAM(a.parameters(), method="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    for _ in range(5):
        for model, opt in ((a, opt_a), (b, opt_b)):
            step(model, opt, x, y)
    assert not opt_a.sam_active and opt_a.steps_taken == 5
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    with pytest.raises(RuntimeError, match="no ascent"):
        opt_a.first_step()
