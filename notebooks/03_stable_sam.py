# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Stable SAM
#
# **What you will learn.** Stable SAM (SSAM; Tan et al., JMLR 2025) keeps USAM's ascent
# `ε = ρ·g` and rescales the *descent* gradient `∇L(w_asc)` to the length of the gradient
# `g(w)` at the current weights:
#
# $$d = \gamma\,\nabla L(w_{asc}),\qquad
# \gamma = \frac{\lVert g(w)\rVert}{\lVert \nabla L(w_{asc})\rVert}.$$
#
# We compute `γ` in closed form on a quadratic and check it, test the paper's claim that
# SSAM widens the range of learning rates where sharpness-aware training works (and look
# for where it does not), then watch `γ_t` while training a small network on real data.
#
# **Time:** about 25 minutes. The 2D parts run in seconds; the network part takes about
# 2 minutes on a laptop CPU (about 30 seconds in quick mode). No GPU needed.
#
# **A note on ρ.** In the SSAM paper "SAM" means the *unnormalized* ascent (USAM here), so
# its `ρ` values are on USAM's scale, not comparable with Foret's `ρ = 0.05`
# ([docs/methods.md](../docs/methods.md#two-scales-of-ρ)). Every result below names the
# ascent it used.
#
# **Contents.** 1 What γ is · 2 The learning-rate regime · 3 γ_t on a real network ·
# 4 Figures for handouts

# %%
import sys

if "google.colab" in sys.modules:  # on Colab: install samlab and enable its widgets
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "samlab @ git+https://github.com/samlab-dev/samlab"], check=True)
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import samlab
from samlab import plot, toy
from samlab.toy import theory
from samlab.train import TrainConfig
from samlab.train.sweep import sweep
from samlab.widgets import Playground

# Quick mode: smaller grids and a shorter sweep, same experiments (seconds instead of
# minutes). SAMLAB_QUICK=1 turns it on (CI does); or write QUICK = True here.
QUICK = samlab.quick_mode()
print(f"samlab {samlab.__version__}, quick mode: {QUICK}")

# %% [markdown]
# ## 1 · What γ is
#
# On a quadratic `f = ½ pᵀHp` the gradient is `Hp` and USAM's ascent lands at
# `p + ρHp`, where the gradient is `(H + ρH²)p`. So
#
# $$\gamma(p) = \frac{\lVert Hp\rVert}{\lVert (H + \rho H^2)p\rVert} \le 1
# \quad\text{for } H \succeq 0,$$
#
# and SSAM's step `η·γ·(H + ρH²)p` has exactly GD's length `η‖Hp‖`, in USAM's direction.
# The cell compares the `γ_t` recorded by an SSAM run with this formula at every step.

# %%
quad = toy.ConvexQuadratic(eigenvalues=(1.0, 0.1), angle=0.3)
run = toy.run(quad, "ssam", lr=0.5, rho=2.0, x0=[1.0, 1.0], steps=50)
closed_form = theory.ssam_gamma(quad.H, run.positions[:-1], rho=2.0)
rel_err = np.max(np.abs(run.gammas / closed_form - 1))
print(f"γ_t: first {run.gammas[0]:.4f}, last {run.gammas[-1]:.4f}; "
      f"max relative error against ‖Hp‖/‖(H+ρH²)p‖: {rel_err:.1e}")
step_len = np.linalg.norm(np.diff(run.positions, axis=0), axis=-1)
gd_len = 0.5 * np.linalg.norm(run.positions[:-1] @ quad.H.T, axis=-1)
print(f"SSAM step length / GD step length: max deviation from 1 = "
      f"{np.max(np.abs(step_len / gd_len - 1)):.1e}")
assert rel_err < 1e-9

# %% [markdown]
# ## 2 · The learning-rate regime
#
# USAM is stable on a quadratic iff `ηλ(1 + ρλ) < 2` (notebook 02): its usable learning
# rates shrink as `ρ` grows. SSAM's step has GD's length, so the claim to test is that it
# keeps GD's range `ηλ_max < 2` for every `ρ`. Phase diagrams of USAM, SSAM and SAM side by
# side on the quadratic (eigenvalues 1 and 0.1), from the same start:

# %%
GRID = 60 if QUICK else 150
lrs, rhos = np.geomspace(0.05, 8.0, GRID), np.geomspace(0.01, 10.0, GRID)
methods = ["usam", "ssam", "sam"]
on_quad = {m: toy.phase_diagram(quad, m, lrs, rhos, [1.0, 1.0], steps=1000) for m in methods}
gd_range = lrs[:, None] * max(quad.eigenvalues) < 2
fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
for ax, m in zip(axes, methods):
    plot.phase_diagram(on_quad[m], ax, predicted=gd_range & np.ones((1, GRID), bool),
                       predicted_label="GD stable: ηλ_max < 2")
plt.tight_layout()
plt.show()

# %% [markdown]
# The largest learning rate that does not diverge, for a few `ρ`, read off the same grids:

# %%
print("   rho    USAM     SSAM      SAM     (GD: 2/λ_max = 2)")
for j in np.linspace(0, GRID - 1, 6).astype(int):
    row = []
    for m in methods:
        ok = on_quad[m].outcome[:, j] != "diverged"
        row.append(lrs[ok].max() if ok.any() else 0.0)
    print(f"{rhos[j]:6.2f}  " + "  ".join(f"{v:7.3f}" for v in row))
ssam_ok = on_quad["ssam"].outcome != "diverged"
print("SSAM diverges exactly where GD does:", bool(np.all(ssam_ok == gd_range)))
assert np.mean(ssam_ok == gd_range) > 0.99

# %% [markdown]
# On the quadratic the claim holds: SSAM's stable range is GD's, `η < 2/λ_max`, for every
# `ρ`, while USAM's shrinks as `ρ` grows. Two limits, visible in the same pictures:
#
# - SSAM does **not** go beyond GD's range: the renormalization restores the range that the
#   perturbation took away, nothing more.
# - SAM (normalized) never diverges through its perturbation either (notebook 02) but, unlike
#   SSAM, it does not converge: it keeps a swing of about `ηρλ`.
#
# And where SSAM does not help at all: on the **saddle** of notebook 01 the renormalization
# cannot change the sign of a step, so SSAM is captured under the same condition as USAM.

# %%
saddle = toy.SaddleQuadratic(a=1.0, b=0.5)
srhos = np.geomspace(0.1, 20.0, GRID)
on_saddle = {m: toy.phase_diagram(saddle, m, lrs, srhos, [1.0, 0.01], steps=500)
             for m in methods}
below = srhos[None, :] < 1 / saddle.b
for m in methods:
    tr = on_saddle[m].outcome == "trapped"
    print(f"{m:>5}: trapped in {np.mean(tr):6.1%} of settings; "
          f"with ρ < 1/b: {np.mean(tr & below):6.1%}")
assert not np.any((on_saddle["ssam"].outcome == "trapped") & below)

# %% [markdown]
# The sliders re-run USAM, SSAM and SAM in place. Push `η` towards 2 with a large `ρ` and
# watch which one leaves. (To explore the saddle, pass `saddle` instead of `quad`.)

# %%
playground = Playground(quad, methods=("usam", "ssam", "sam"), lr=0.5, rho=1.0, steps=300,
                        x0=(1.0, 1.0), lr_range=(0.01, 4.0))
playground

# %% [markdown]
# **Questions.** (1) At `ρ = 1`, what is the largest `η` where USAM still converges? Check
# it against `ηλ(1 + ρλ) = 2`. (2) Why does SSAM's path bend like USAM's while its step
# lengths match GD's?
#
# ## 3 · γ_t on a real network
#
# An MLP on scikit-learn's `digits` (1,257 training images), SSAM with `ρ = 0.3` on the
# unnormalized scale, SGD with momentum as the base. The trainer records `γ`, `‖g‖` and
# `‖∇L(w_asc)‖` at every step and `λ_max` (top Hessian eigenvalue on 1,000 training
# examples) every other epoch. The paper reports `γ_t` mostly below 1 and decreasing.

# %%
epochs = 6 if QUICK else 20
runs_dir = "runs/quick" if QUICK else "runs"
base = TrainConfig(name="03_ssam", dataset="digits", model="mlp", method="ssam", rho=0.3,
                   epochs=epochs, batch_size=64, lr=0.05, log_every=1, sharpness_every=2,
                   sharpness_subset=1000, runs_dir=runs_dir)
(ssam_run,) = sweep(base, {"seed": [0]})
steps = [r for r in ssam_run.records if r["kind"] == "step"]
epochs_done = [r for r in ssam_run.records if r["kind"] == "epoch"]
per_epoch = len(steps) // epochs
t = np.array([r["step"] for r in steps]) / per_epoch
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
axes[0].plot(t, [r["gamma"] for r in steps], lw=0.7)
axes[0].axhline(1, color="k", ls=":")
axes[1].plot(t, [r["grad_norm"] for r in steps], lw=0.7, label="‖g(w)‖")
axes[1].plot(t, [r["ascent_grad_norm"] for r in steps], lw=0.7, label="‖∇L(w_asc)‖")
lam = [(r["epoch"] + 1, r["lambda_max"]) for r in epochs_done if "lambda_max" in r]
axes[2].plot(*zip(*lam), "o-")
for ax, title in zip(axes, ("γ_t (SSAM, ρ = 0.3, unnormalized)", "gradient norms", "λ_max")):
    ax.set(title=title, xlabel="epoch")
axes[1].legend()
plt.tight_layout()
plt.show()

# %%
gammas = np.array([r["gamma"] for r in steps])
first, last = gammas[:per_epoch].mean(), gammas[-per_epoch:].mean()
print(f"γ_t < 1 at {np.mean(gammas < 1):.1%} of {gammas.size} steps; "
      f"mean over the first epoch {first:.3f}, over the last {last:.3f}")
print("epoch means:", np.round([r["gamma_mean"] for r in epochs_done], 3).tolist())
assert np.mean(gammas < 1) > 0.9 and last < first

# %% [markdown]
# As the paper reports, `γ_t` is below 1 almost always here, and lower at the end than at
# the start: SSAM shortens USAM's steps. The epoch means show *how* it gets there: the drop
# happens within the first epochs; whether it keeps falling after that is for the plot to
# say, not the paper — read the epoch means above.
#
# Finally the comparison: SGD, SAM (normalized, `ρ = 0.1`), USAM and SSAM (unnormalized,
# `ρ = 0.3`), three seeds each, same schedule. Final test accuracy and `λ_max`, mean ± std:

# %%
seeds = [0, 1, 2]
settings = [("sgd", 0.0), ("sam", 0.1), ("usam", 0.3), ("ssam", 0.3)]
compare = []
for method, rho in settings:
    cfg = dataclasses.replace(base, name=f"03_compare_{method}", method=method, rho=rho,
                              log_every=0, sharpness_every=100)
    compare += sweep(cfg, {"seed": seeds})
acc = plot.sweep_stats(compare, "test_acc", ("method",))
lam = plot.sweep_stats(compare, "lambda_max", ("method",))
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, stats, name in ((axes[0], acc, "test accuracy"), (axes[1], lam, "λ_max")):
    names = [f"{m.upper()}\nρ={r}" if m != "sgd" else "SGD" for m, r in settings]
    ax.bar(names, [stats[(m,)][0] for m, _ in settings], yerr=[stats[(m,)][1] for m, _ in settings],
           capsize=4, color=[plot.method_color(m) for m, _ in settings])
    ax.set(title=f"{name} (mean ± std, {len(seeds)} seeds)")
plt.tight_layout()
plt.show()
for m, r in settings:
    print(f"{m:>5} ρ={r:<4}: test acc {acc[(m,)][0]:.3f} ± {acc[(m,)][1]:.3f}, "
          f"λ_max {lam[(m,)][0]:.3f} ± {lam[(m,)][1]:.3f}")

# %% [markdown]
# Read the accuracies with their spread across seeds before ranking methods: on a problem
# this small the differences are of the order of that spread. `λ_max` is another matter:
# each sharpness-aware method ends in a flatter minimum than SGD (checked below). That is
# what the methods optimize; whether flatter means more accurate is the question notebook 05
# asks on CIFAR-10.

# %%
for m, _ in settings[1:]:
    assert lam[(m,)][0] < lam[("sgd",)][0], m
print("every SAM-family method ends flatter than SGD (λ_max)")

# %% [markdown]
# ## 4 · Figures for handouts

# %%
out = Path("figures")
out.mkdir(exist_ok=True)
playground.static_figure().savefig(out / "03_playground.png", dpi=150)
fig.savefig(out / "03_compare.png", dpi=150)
ax = plot.phase_diagram(on_quad["ssam"], predicted=gd_range & np.ones((1, GRID), bool),
                        predicted_label="GD stable: ηλ_max < 2")
ax.figure.savefig(out / "03_ssam_phase_diagram.png", dpi=150, bbox_inches="tight")
print("saved:", sorted(p.name for p in out.glob("03_*.png")))

# %% [markdown]
# **Take-aways.** SSAM's `γ = ‖g‖/‖∇L(w_asc)‖` gives each step GD's length in USAM's
# direction. On a quadratic that restores GD's learning-rate range for every `ρ` — no more
# — and on a saddle it changes nothing about capture. On a real network `γ_t` sits below 1.
# Next: notebook 04, late-phase switching from SGD to SAM.
