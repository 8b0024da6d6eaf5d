"""An ascent is one entry: a rule registered in a fixture reaches every part of samlab.

The rule here, sign-SAM, climbs along the gradient's signs: ``u = sign(g)``,
``ε = ρ·u/‖u‖``. It is registered (with a method row that uses it) and then met, with
nothing else written, in ``toy.run``, ``SAM(...)``, ``TrainConfig``, ``edges.edge`` (which
refuses it, naming it and why), the playground (computed in the kernel: the page's
engine has no twin of it) and the figures' colours. Each step is checked by hand.
"""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pytest
import torch

from samlab import ascents, edges, methods, toy
from samlab.ascents import AscentRule
from samlab.methods import Method
from samlab.optim import SAM, global_norm

matplotlib.use("Agg")

NO_EDGE = "sign(g) is not linear in g, so the quadratic model gives no λ_eff"


def _sign_torch(w, g, grad_norm, **options):
    u = [t.sign() for t in g]
    return u, global_norm(u)


def _sign_numpy(x, y, gx, gy, grad_norm, adaptive_eta):
    ux, uy = np.sign(gx), np.sign(gy)
    return ux, uy, np.sqrt(ux * ux + uy * uy)


@pytest.fixture
def sign_sam():
    ascents.register(AscentRule("sign", True, _sign_torch, _sign_numpy, no_edge=NO_EDGE))
    methods.register(Method("signsam", "sign", False, "sign-SAM", "#17becf", "a test's rule"))
    yield "signsam"
    methods.unregister("signsam")
    ascents.unregister("sign")


def test_toy_run_takes_the_new_ascent_as_by_hand(sign_sam):
    land = toy.SaddleQuadratic(a=2.0, b=1.0)
    lr, rho, w = 0.1, 0.3, np.array([0.5, -0.2])
    traj = toy.run(land, sign_sam, lr, rho, w, 1)
    g = np.array(land.grad_xy(*w))
    eps = rho * np.sign(g) / (np.linalg.norm(np.sign(g)) + 1e-12)
    expected = w - lr * np.array(land.grad_xy(*(w + eps)))
    np.testing.assert_allclose(traj.positions[1].ravel(), expected, rtol=0, atol=1e-15)
    # Beside the built-in rules in one batch, each run keeps its own rule.
    both = toy.run(land, [sign_sam, "sam"], lr, rho, w, 1)
    np.testing.assert_allclose(both.positions[1, 0], expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(both.positions[1, 1],
                                  toy.run(land, "sam", lr, rho, w, 1).positions[1].ravel())


def test_the_optimizer_takes_the_new_ascent_as_by_hand(sign_sam):
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def loss_at(v):
        return ((x @ v - y) ** 2).mean()

    opt = SAM([w], method=sign_sam, rho=0.05, lr=0.1)
    assert opt.method == sign_sam and opt.ascent == "sign"
    w0 = w.detach().clone()
    g = torch.autograd.grad(loss_at(w0.requires_grad_()), w0)[0]
    eps = 0.05 * g.sign() / (g.sign().norm() + 1e-12)
    w_asc = (w0.detach() + eps).requires_grad_()
    expected = w0.detach() - 0.1 * torch.autograd.grad(loss_at(w_asc), w_asc)[0]

    def closure():
        opt.zero_grad()
        loss = loss_at(w)
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-15)


def test_the_trainer_config_accepts_it(sign_sam):
    from samlab.train import TrainConfig

    assert TrainConfig(method=sign_sam, dataset="digits", model="mlp").method == sign_sam


def test_the_edges_refuse_it_naming_it_and_why(sign_sam):
    says = f"method 'signsam' has no stability edge in closed form: {NO_EDGE}"
    with pytest.raises(ValueError, match=re.escape(says)):
        edges.edge(sign_sam, 0.1, rho=0.05, grad_norm=1.0)


def test_the_figures_draw_it_in_its_colour(sign_sam):
    assert methods.color(sign_sam) == "#17becf" and methods.label(sign_sam) == "sign-SAM"
    from samlab import plot

    traj = toy.run(toy.BoundedSaddle(), sign_sam, 0.1, 0.3, [1.0, 0.05], 20)
    ax = plot.trajectories(traj)
    lines = [line for line in ax.lines if line.get_label().startswith("sign-SAM")]
    assert lines and matplotlib.colors.to_hex(lines[0].get_color()) == "#17becf"


def test_the_playground_computes_it_in_the_kernel(sign_sam):
    from samlab.widgets import Playground

    pg = Playground(methods=("gd", sign_sam), available=("gd", "sam", sign_sam))
    assert pg.view.spec["engine"] == "kernel"  # the page's engine has no twin of it
    # What the page draws is the kernel's run of every available method, sign-SAM's too.
    sent = np.frombuffer(pg.view.kernel_runs["positions"], "<f8").reshape(201, 3, 2)
    alone = toy.run(pg.landscape, sign_sam, 0.1, 0.5, [1.0, 0.05], 200)
    np.testing.assert_array_equal(sent[:, 2], alone.positions.reshape(201, 2))
    # Without it, the same playground is drawn in the page.
    assert Playground(methods=("gd", "sam"), available=("gd", "sam")).view.spec[
        "engine"] == "browser"


def test_a_rule_needs_an_edge_or_the_reason_it_has_none():
    with pytest.raises(ValueError, match="give its edge, or no_edge"):
        AscentRule("bare", True, _sign_torch, _sign_numpy)


def test_names_are_taken_once_and_built_ins_stay(sign_sam):
    with pytest.raises(ValueError, match="an ascent called 'sign' exists already"):
        ascents.register(AscentRule("sign", True, _sign_torch, _sign_numpy, no_edge="x"))
    with pytest.raises(ValueError, match="a method called 'signsam' exists already"):
        methods.register(Method("signsam", "sign", False, "x", "#000000", ""))
    with pytest.raises(ValueError, match="ascent 'normalized' is built in"):
        ascents.unregister("normalized")
    with pytest.raises(ValueError, match="method 'sam' is built in"):
        methods.unregister("sam")
    with pytest.raises(ValueError, match="ascent must be one of"):
        methods.register(Method("nosuch", "no-such-rule", False, "x", "#000000", ""))
