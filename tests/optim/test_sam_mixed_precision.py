"""Mixed precision: bf16 autocast, and a GradScaler passed to the SAM step.

A GradScaler multiplies the loss by a power of two and divides the gradients by it
again: in float32 both are exact, so a scaled SAM run equals the unscaled one. A
non-finite gradient in either pass skips the whole step (weights and momentum
untouched) and the scaler backs off.
"""

from __future__ import annotations

import math

import pytest
import torch
from sam_truth import assert_tensors_close, detached, least_squares_loss
from torch import nn

from samlab.optim import ASAM, SAM, SSAM

OPTIMIZERS = {
    "sam": lambda params, **kw: SAM(params, rho=0.3, lr=0.05, momentum=0.9, **kw),
    "ssam": lambda params, **kw: SSAM(params, rho=0.3, lr=0.05, momentum=0.9, **kw),
    "asam": lambda params, **kw: ASAM(params, rho=0.5, lr=0.05, momentum=0.9, **kw),
}
# Plus late-phase switching: plain SGD steps (one pass each) for two steps, then SAM.
WITH_LATE_PHASE = {
    **OPTIMIZERS,
    "sam-late-phase": lambda params, **kw: SAM(params, rho=0.3, lr=0.05, momentum=0.9,
                                               switch_step=2, **kw),
}
EXACT = dict(rtol=0.0, atol=1e-6)


class Float32Problem:
    """Least squares on a float32 ``nn.Linear``; the closure can poison one pass with inf."""

    def __init__(self):
        torch.manual_seed(1)
        self.model = nn.Linear(3, 2)
        gen = torch.Generator().manual_seed(0)
        self.X = torch.randn(16, 3, generator=gen)
        self.Y = torch.randn(16, 2, generator=gen)
        self.calls = 0
        self.poison_call: int | None = None  # 1-based index of the closure call to poison
        self.model.weight.register_hook(self._maybe_poison)

    def _maybe_poison(self, grad):
        return torch.full_like(grad, math.inf) if self.calls == self.poison_call else grad

    def closure_for(self, opt, scaler=None):
        def closure():
            self.calls += 1
            opt.zero_grad()
            loss = least_squares_loss(self.model(self.X), self.Y)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            return loss

        return closure


def momentum(opt) -> list[torch.Tensor]:
    return [opt.base_optimizer.state[p]["momentum_buffer"].clone()
            for g in opt.param_groups for p in g["params"]]


@pytest.mark.parametrize("name", list(WITH_LATE_PHASE))
def test_grad_scaler_steps_equal_unscaled_steps(name):
    plain, scaled = Float32Problem(), Float32Problem()
    opt = WITH_LATE_PHASE[name](plain.model.parameters())
    opt_s = WITH_LATE_PHASE[name](scaled.model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for _ in range(4):
        opt.step(plain.closure_for(opt))
        opt_s.step(scaled.closure_for(opt_s, scaler), scaler=scaler)
        scaler.update()
        assert_tensors_close(detached(scaled.model.parameters()),
                             detached(plain.model.parameters()), **EXACT)
    assert scaler.get_scale() == 2.0**12  # no overflow happened: the scale was in use


def test_grad_scaler_with_the_two_call_form_equals_unscaled_steps():
    plain, scaled = Float32Problem(), Float32Problem()
    opt = SAM(plain.model.parameters(), rho=0.3, lr=0.05, momentum=0.9)
    opt_s = SAM(scaled.model.parameters(), rho=0.3, lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for _ in range(3):
        opt.step(plain.closure_for(opt))
        loss = least_squares_loss(scaled.model(scaled.X), scaled.Y)
        scaler.scale(loss).backward()
        opt_s.first_step(zero_grad=True, scaler=scaler)
        scaler.scale(least_squares_loss(scaled.model(scaled.X), scaled.Y)).backward()
        opt_s.second_step(zero_grad=True, scaler=scaler)
        scaler.update()
        assert_tensors_close(detached(scaled.model.parameters()),
                             detached(plain.model.parameters()), **EXACT)


@pytest.mark.parametrize("poisoned_pass", [1, 2], ids=["first-pass-inf", "second-pass-inf"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_an_inf_gradient_skips_the_step_and_the_scaler_backs_off(name, poisoned_pass):
    prob, reference = Float32Problem(), Float32Problem()
    opt = OPTIMIZERS[name](prob.model.parameters())
    ref = OPTIMIZERS[name](reference.model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)

    opt.step(prob.closure_for(opt, scaler), scaler=scaler)  # a clean step: momentum exists
    scaler.update()
    ref.step(reference.closure_for(ref))
    w, buf, scale = detached(prob.model.parameters()), momentum(opt), scaler.get_scale()

    prob.calls, prob.poison_call = 0, poisoned_pass
    opt.step(prob.closure_for(opt, scaler), scaler=scaler)
    scaler.update()

    assert prob.calls >= poisoned_pass  # the poisoned pass did run
    for a, b in zip(detached(prob.model.parameters()) + momentum(opt), w + buf):
        assert torch.equal(a, b)
    assert scaler.get_scale() < scale

    # The skipped step leaves no trace: the next step is the one the reference takes
    # from the same weights and momentum.
    prob.poison_call = None
    opt.step(prob.closure_for(opt, scaler), scaler=scaler)
    scaler.update()
    ref.step(reference.closure_for(ref))
    assert_tensors_close(detached(prob.model.parameters()),
                         detached(reference.model.parameters()), **EXACT)


def test_bf16_autocast_steps_are_finite_and_close_to_float32_steps():
    def mlp():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))

    gen = torch.Generator().manual_seed(0)
    X, Y = torch.randn(64, 8, generator=gen), torch.randn(64, 4, generator=gen)
    runs = {}
    for precision in ("float32", "bfloat16"):
        model = mlp()
        w0 = detached(model.parameters())
        opt = SAM(model.parameters(), rho=0.05, lr=0.05, momentum=0.9)

        def closure(model=model, opt=opt, precision=precision):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                out = model(X)
                assert out.dtype == getattr(torch, precision)
                loss = least_squares_loss(out.float(), Y)
            loss.backward()
            return loss

        for _ in range(3):
            loss = opt.step(closure)
            assert torch.isfinite(loss)
        runs[precision] = [w - w_0 for w, w_0 in zip(detached(model.parameters()), w0)]

    for name in ("grad_norm", "ascent_grad_norm", "gamma"):
        assert torch.isfinite(opt.last_stats[name])
    update32, update16 = runs["float32"], runs["bfloat16"]
    error = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(update16, update32)))
    size = math.sqrt(sum(float((a**2).sum()) for a in update32))
    assert error < 0.1 * size, (error, size)
