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
# # 02 · Why SAM normalizes
#
# **What you will learn.** SAM climbs to `w + ρ·g/‖g‖`: a step of length `ρ`, whatever the
# gradient. Its unnormalized cousin USAM climbs `ρ·g`. Dai, Ahn & Sra (NeurIPS 2023) argue
# the normalization does two jobs: it **stabilizes** (USAM can blow up through its
# perturbation, SAM cannot) and it lets SAM **drift along a valley of minima** toward the
# flattest one (USAM's perturbation vanishes there). We check both on exact 2D landscapes,
# then sweep `ρ` for SAM and USAM on a small network trained on real data.
#
# **Time:** about 25 minutes. The 2D parts run in seconds; the network sweep takes about
# 3 minutes on a laptop CPU (a few seconds in quick mode). No GPU needed.
#
# **Contents.** 1 Stability on a convex quadratic · 2 Drift along a manifold of minima ·
# 3 Robustness to ρ on real data · 4 Figures for handouts

# %%
import sys

if "google.colab" in sys.modules:  # on Colab: install samlab and enable its widgets
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "samlab @ git+https://github.com/samlab-dev/samlab"], check=True)
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import samlab
from samlab import plot, toy
from samlab.toy import theory
from samlab.train import TrainConfig
from samlab.train.sweep import sweep
from samlab.widgets import Playground, phase_diagram_figure

# Quick mode: smaller grids and a shorter sweep, same experiments (seconds instead of
# minutes). SAMLAB_QUICK=1 turns it on (CI does); or write QUICK = True here.
QUICK = samlab.quick_mode()
GRID = 60 if QUICK else 150
print(f"samlab {samlab.__version__}, quick mode: {QUICK}")

# %% [markdown]
# ## 1 · Stability on a convex quadratic
#
# On `f(p) = ½ pᵀHp` USAM's step is the linear map `p ← (I − η(H + ρH²))p` (notebook 01).
# Along an eigenvector of curvature `λ > 0` it multiplies by `1 − ηλ(1 + ρλ)`, so USAM is
# stable iff
#
# $$\eta\,\lambda\,(1 + \rho\lambda) < 2 \quad\text{for every eigenvalue } \lambda .$$
#
# The `ρλ` term lowers GD's threshold `ηλ < 2`: a large `ρ` makes USAM blow up at learning
# rates where GD is fine. We take eigenvalues `(1, 0.1)`, run USAM over a grid of `(η, ρ)`,
# and draw the predicted boundary on the measured outcomes.

# %%
quad = toy.ConvexQuadratic(eigenvalues=(1.0, 0.1))
x0 = np.array([1.0, 1.0])
lams = np.array(quad.eigenvalues)
lrs, rhos = np.geomspace(0.05, 4.0, GRID), np.geomspace(0.01, 10.0, GRID)
usam = toy.phase_diagram(quad, "usam", lrs, rhos, x0, steps=1000)
stable = np.all(theory.usam_stable(lrs[:, None, None], rhos[None, :, None], lams), axis=-1)
agreement = np.mean(stable == (usam.outcome != "diverged"))
print(f"USAM: predicted stable <=> measured not diverged on {agreement:.2%} of {stable.size}")
assert agreement > 0.99
phase_diagram_figure(usam, predicted=stable, predicted_label="predicted: stable inside")

# %% [markdown]
# Now **SAM** on the same grid. Its perturbation has length `ρ` whatever `p` is, so in 1D
# near the minimum the step is `x ← (1 − ηλ)x − ηρλ·sign(x)`: the perturbation adds a
# *bounded* kick, it cannot multiply `x`. SAM should diverge only where GD does
# (`ηλ_max ≥ 2`), whatever `ρ`.

# %%
sam = toy.phase_diagram(quad, "sam", lrs, rhos, x0, steps=1000)
gd_stable = (lrs[:, None] * lams.max() < 2) & np.ones((1, rhos.size), bool)
diverged = sam.outcome == "diverged"
# Right at GD's edge the 2-cycle ηρλ/(2 − ηλ) itself grows past the landscape's bound.
swing = theory.sam_oscillation_amplitude(lrs[:, None], rhos[None, :], lams.max())
print(f"SAM diverged where GD diverges: {np.mean(diverged[~gd_stable]):.0%} of those settings")
print(f"SAM diverged where GD is stable: {np.sum(diverged & gd_stable)} settings, all with a "
      f"predicted swing beyond the bound: {bool(np.all(swing[diverged & gd_stable] > quad.bound))}")
assert np.all(swing[diverged & gd_stable] > quad.bound)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
plot.phase_diagram(usam, axes[0], predicted=stable, predicted_label="USAM stable (predicted)")
plot.phase_diagram(sam, axes[1], predicted=gd_stable, predicted_label="GD stable: ηλ_max < 2")
plt.tight_layout()
plt.show()

# %% [markdown]
# SAM does not converge either: it settles into a **2-cycle** around the minimum. Along
# the sharp axis the fixed points of `x ↦ −x` under the step above are
# `x* = ±ηρλ / (2 − ηλ)`: a swing of about `ηρλ`. Measured against predicted:

# %%
settings = [(0.1, 0.1), (0.5, 0.1), (1.0, 0.05), (1.5, 0.2)]
print(" lr    rho   |x| measured   ηρλ/(2−ηλ)   outcome")
for lr, rho in settings:
    run = toy.run(quad, "sam", lr, rho, x0=[1.0, 0.0], steps=2000)
    predicted_swing = theory.sam_oscillation_amplitude(lr, rho, lams.max())
    print(f"{lr:4.1f}  {rho:5.2f}   {abs(run.final[0]):.6f}       {predicted_swing:.6f}     "
          f"{run.outcome}")
    assert abs(abs(run.final[0]) - predicted_swing) < 1e-6

# %% [markdown]
# **Question.** Why does the swing grow without bound as `ηλ → 2`, even for tiny `ρ`?
#
# ## 2 · Drift along a manifold of minima
#
# On `f(x, y) = ½(xy − 1)²` every point of the hyperbola `xy = 1` is a minimum, with
# sharpness (top Hessian eigenvalue) `x² + y²`: sharp far out, flattest at `x = y = 1`
# (sharpness 2). Start on the manifold at a sharp point and watch the sharpness along the
# way. For a fair comparison USAM gets the *same perturbation length at the start*:
# `ρ_USAM = ρ / ‖g(x0)‖`.

# %%
hyperbola = toy.Hyperbola()
start = np.array([2.0, 0.55])  # near the minimum (2, 0.5), sharpness 4.25
rho = 0.1
rho_usam = rho / np.linalg.norm(hyperbola.grad(start))
drift = toy.run(hyperbola, ["gd", "sam", "usam"], lr=0.05, rho=np.array([0.0, rho, rho_usam]),
                x0=start, steps=3000)
sharp = hyperbola.sharpness(drift.positions)
for i, m in enumerate(drift.method):
    print(f"{m:>5}: sharpness {sharp[0, i]:.3f} -> {sharp[-1, i]:.3f}, "
          f"ends at ({drift.final[i, 0]:.3f}, {drift.final[i, 1]:.3f}), {drift.outcome[i]}")
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
plot.trajectories(drift, axes[0], title="drift on ½(xy − 1)²")
plot.loss_curves(drift, axes[1], values=sharp, label="sharpness x² + y²")
axes[1].axhline(2.0, color="k", lw=0.8, ls=":")
plt.tight_layout()
plt.show()

# %% [markdown]
# SAM travels along the valley to the flattest minimum (sharpness → 2, the dotted line);
# GD stops where it lands; USAM, though it starts with the same perturbation length, barely
# moves. The printout says why: near the manifold `g → 0`, so USAM's perturbation `ρ·g`
# vanishes with it, while SAM's stays `ρ` long. That residual perturbation is what
# measures — and descends — the sharpness.
#
# Try it: the playground's right panel shows the sharpness per step. Move `ρ`, `η`, the start
# point (type it, or click the contour), and the methods.

# %%
playground = Playground(hyperbola, methods=("gd", "sam", "usam"), lr=0.05, rho=0.1,
                        steps=1000, x0=tuple(start), lr_range=(1e-3, 0.5),
                        metric=("sharpness x²+y²", hyperbola.sharpness))
playground

# %% [markdown]
# **Questions.** (1) With the same `ρ` for both (no matching), does USAM drift? (2) Push
# `ρ` up for USAM: what happens before it gets anywhere? (3) Does SAM reach `(1, 1)` or
# `(−1, −1)` from a start in the first quadrant, and why?
#
# ## 3 · Robustness to ρ on real data
#
# Now a real network: an MLP on scikit-learn's bundled `digits` (1,797 8×8 images; trained
# on 1,257, validated on 180, tested on 360), SGD with momentum as the base optimizer. We
# sweep `ρ` for SAM and USAM and record the final training loss, test accuracy, and the
# sharpness `λ_max` (top Hessian eigenvalue on 1,000 training examples, by Lanczos).

# %%
rho_values = [0.03, 0.3, 3.0] if QUICK else [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
seeds = [0] if QUICK else [0, 1, 2]
base = TrainConfig(name="02_rho_sweep", dataset="digits", model="mlp", epochs=6 if QUICK else 20,
                   batch_size=64, lr=0.05, sharpness_every=100, sharpness_subset=1000,
                   runs_dir="runs/quick" if QUICK else "runs")
runs = sweep(base, {"method": ["sam", "usam"], "rho": rho_values, "seed": seeds})
fig = plot.sweep_summary(runs, x="rho", metrics=["train_loss", "test_acc", "lambda_max"])

# %% [markdown]
# The table below reads the same runs. "Stalled" means the training loss stayed near
# `ln 10 ≈ 2.30`, the loss of a uniform guess: the perturbation overwhelmed training.

# %%
stats = {m: plot.sweep_stats(runs, m, ("method", "rho"))
         for m in ("train_loss", "test_acc", "lambda_max", "grad_norm_mean")}
print("method   rho    train loss   test acc   λ_max    mean ‖ε‖   verdict")
for (method, r), (loss, _, _) in stats["train_loss"].items():
    acc, lam = stats["test_acc"][method, r][0], stats["lambda_max"][method, r][0]
    # SAM's ascent has length ρ; USAM's has length ρ‖g‖ (its epoch mean, last epoch).
    eps = r if method == "sam" else r * stats["grad_norm_mean"][method, r][0]
    verdict = "stalled" if loss > 2.0 else "trains"
    print(f"{method:>6} {r:6.2f}   {loss:9.3f}   {acc:8.3f}  {lam:7.3f}   {eps:8.3f}   {verdict}")

# %% [markdown]
# What these runs show (read it against the table; the sweep is yours to extend):
#
# - Both methods flatten the minimum they reach as `ρ` grows — `λ_max` falls — until the
#   perturbation is so large that training stalls.
# - The two `ρ` live on **different scales**
#   ([docs/methods.md](../docs/methods.md#two-scales-of-ρ)): SAM's perturbation has
#   length `ρ`, USAM's `ρ·‖g‖`, and `‖g‖` shrinks as training converges. Compare them by the
#   `mean ‖ε‖` column, not by `ρ`.
# - On this network the normalization does not buy a wider range of working `ρ`: the
#   advantage the paper reports is about stability and drift (sections 1–2), which this
#   small, well-conditioned problem does not stress. Which `ρ` works best is a property of
#   the problem, not of the method.
#
# The checks below hold in every mode:

# %%
working = {}
for method in ("sam", "usam"):
    working[method] = [r for r in rho_values if stats["train_loss"][method, r][0] < 2.0]
    lam = [stats["lambda_max"][method, r][0] for r in working[method]]
    print(f"{method}: trains for ρ in {working[method]}; λ_max there: {np.round(lam, 3).tolist()}")
    assert len(working[method]) >= 2 and lam[-1] < lam[0]  # flatter with larger working ρ
assert stats["train_loss"]["sam", rho_values[-1]][0] > 2.0  # the largest ρ stalls SAM
assert len(working["sam"]) <= len(working["usam"])  # no wider working range for SAM here

# %% [markdown]
# ## 4 · Figures for handouts
#
# Static versions of this notebook's figures, saved as PNGs in `notebooks/figures/`.

# %%
out = Path("figures")
out.mkdir(exist_ok=True)
ax = plot.phase_diagram(usam, predicted=stable, predicted_label="USAM stable (predicted)")
ax.figure.savefig(out / "02_usam_stability.png", dpi=150, bbox_inches="tight")
playground.static_figure().savefig(out / "02_drift.png", dpi=150)
fig.savefig(out / "02_rho_sweep.png", dpi=150)
print("saved:", sorted(p.name for p in out.glob("02_*.png")))

# %% [markdown]
# **Take-aways.** USAM's stability threshold `ηλ(1 + ρλ) < 2` tightens with `ρ`; SAM's
# normalized perturbation cannot blow up on its own and leaves a swing of `≈ ηρλ`. On a
# valley of minima the normalized perturbation keeps its length and drives SAM to the
# flattest point, where USAM's vanishes. Next: notebook 03, *Stable SAM* — renormalizing
# the descent instead of the ascent.
