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
# # 01 · SAM on a saddle
#
# **What you will learn.** Gradient descent always escapes a saddle point. Sharpness-aware
# minimization (SAM) and its unnormalized cousin USAM can be *captured* by one instead. On
# the simplest saddle, a 2D quadratic, we derive exactly when that happens — a direction of
# curvature `λ < 0` becomes attracting once `λ < −1/ρ` — and then measure it.
#
# **Time:** about 20 minutes to read and play. Run All takes about 9 s (measured on a
# 2-core CPU by `make bench`), with a peak of 0.3 GB of kernel memory (0.3 GB with the CPU
# build of torch that Binder installs). No GPU needed.
#
# **Contents.** 1 The saddle · 2 GD escapes · 3 SAM and USAM can be captured · 4 Why: the
# linear map · 5 The threshold, derived then measured · 6 What normalization and
# renormalization change · 7 Playground · 8 Figures for handouts. Exercises (checked by
# samlab): USAM's step as a matrix and its contraction test, at the end of section 4.
#
# The formulas: [docs/methods.md](../docs/methods.md) (the optimizers) and
# [docs/toy.md](../docs/toy.md) (the toy landscapes).

# %%
import subprocess
import sys

REPOSITORY = "https://github.com/samlab-dev/samlab"  # see the README: not published yet
if "google.colab" in sys.modules:  # on Colab: install samlab, then turn its widgets on
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                          f"samlab @ git+{REPOSITORY}"], capture_output=True, text=True)
    if pip.returncode:
        why = (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise SystemExit(f"could not install samlab from {REPOSITORY}: {why}")
    from samlab import colab
    colab.setup()

# %%
import matplotlib.pyplot as plt
import numpy as np

import samlab
from samlab import plot, toy
from samlab.toy import theory
from samlab.widgets import Playground, phase_diagram_figure

QUICK = samlab.quick_mode()  # SAMLAB_QUICK=1 (CI) shrinks the grids; the lesson is the same
GRID = 60 if QUICK else 200
print(f"samlab {samlab.__version__}, quick mode: {QUICK}")

# %% [markdown]
# ## 1 · The saddle
#
# $$f(x, y) = \tfrac12\,(a\,x^2 - b\,y^2), \qquad \nabla f = (a x,\ -b y), \qquad
# H = \begin{pmatrix} a & 0 \\ 0 & -b \end{pmatrix}.$$
#
# The origin is a saddle: uphill along `x` (curvature `a > 0`), downhill along `y`
# (curvature `λ = −b < 0`). The loss is unbounded below, so "escaping" means running off
# along `y`. We take `a = 1`, `b = 0.5`.

# %%
saddle = toy.SaddleQuadratic(a=1.0, b=0.5)
x0 = np.array([1.0, 0.01])  # start near the x-axis, a hair off the saddle's stable line
print(saddle, "\ncritical points:", saddle.critical_points)
print("Hessian at the saddle:\n", saddle.hessian([0.0, 0.0]))

# %% [markdown]
# ## 2 · GD escapes
#
# Gradient descent `p ← p − η∇f(p)` acts on each coordinate separately:
# `x ← (1 − ηa)x` shrinks, while `y ← (1 + ηb)y` **grows** for every `η > 0`. So from any
# start with `y ≠ 0`, GD escapes: `y_t = (1 + ηb)^t y_0`. The cell checks the simulation
# against that closed form.

# %%
lr = 0.1
gd = toy.run(saddle, "gd", lr=lr, rho=0.0, x0=x0, steps=300)
inside = gd.exit_step if gd.exit_step > 0 else gd.steps + 1  # the steps before it left
t = np.arange(inside)
y_closed_form = (1 + lr * saddle.b) ** t * x0[1]
print(f"outcome: {gd.outcome}; y went from {x0[1]} to {gd.positions[inside - 1, 1]:.4g} "
      f"in {inside - 1} steps")
print("max relative error of y_t against (1 + ηb)^t·y0:",
      np.max(np.abs(gd.positions[t, 1] / y_closed_form - 1)))

# %% [markdown]
# A word on the labels (all of them: [docs/toy.md](../docs/toy.md#outcomes)). On this
# landscape, which is unbounded below, a run is **escaped** once it is further than
# `saddle.bound = 1000` from the origin, far outside any plotted window; a run that is
# still on its way out when the steps run out is **unsettled**. With a smaller `b` GD
# needs more steps than 300 to get there.

# %% [markdown]
# ## 3 · SAM and USAM can be captured
#
# SAM first climbs to `w_asc = w + ε` and then descends from `w` with the gradient measured
# at `w_asc`. SAM takes `ε = ρ·g/‖g‖` (length `ρ`); USAM takes `ε = ρ·g`. Run GD, SAM and
# USAM side by side, for a small and a large `ρ`:

# %%
for rho in (1.0, 3.0):
    runs = toy.run(saddle, ["gd", "sam", "usam"], lr=lr, rho=rho, x0=x0, steps=400)
    ends = []
    for i, m in enumerate(runs.method):
        k = runs.exit_step[i] - 1 if runs.exit_step[i] > 0 else runs.steps  # last step inside
        ends.append(f"{m} {runs.outcome[i]} (y = {runs.positions[k, i, 1]:.3g} at step {k})")
    print(f"ρ = {rho}:", ", ".join(ends))

escape_figure, axes = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
for ax, rho in zip(axes, (1.0, 3.0)):
    plot.trajectories(toy.run(saddle, ["gd", "sam", "usam"], lr, rho, x0, 400), ax)
plt.show()

# %% [markdown]
# Read the printout: at `ρ = 3` both SAM and USAM stay at the saddle while GD leaves. At
# `ρ = 1` USAM leaves too, only more slowly than GD: after 400 steps it is far up the
# `y`-axis (`y ≈ 195`) but not yet past the bound, hence "unsettled", while GD passed it
# after 235 steps; SAM stays at the saddle. The
# next two sections explain both.
#
# ## 4 · Why: the linear map
#
# On a quadratic `f = ½ pᵀHp` the gradient is `Hp`, so USAM's ascent lands at
# `p + ρHp`, where the gradient is `H(p + ρHp)`. One USAM step is therefore **linear**:
#
# $$p \leftarrow \bigl(I - \eta\,(H + \rho H^2)\bigr)\,p .$$
#
# Along an eigendirection with curvature `λ` it multiplies by `1 − ηλ(1 + ρλ)`. For the
# downhill direction `λ = −b`:
#
# $$1 - \eta(-b)(1 - \rho b) = 1 + \eta b\,(1 - \rho b),$$
#
# which is **below 1 exactly when `ρb > 1`**, i.e. when `λ < −1/ρ`. The `ρH²` term has
# turned negative curvature into positive: the saddle attracts. (It also must not overshoot:
# the factor must stay above −1, `ηb(ρb − 1) < 2`, and the `x` factor `1 − ηa(1 + ρa)` must
# lie in (−1, 1).) The cell checks the map against one simulated step.

# %%
rho = 3.0
p = np.array([0.7, -0.2])
one_step = toy.run(saddle, "usam", lr, rho, p, steps=1).positions[1]
print("simulated step:     ", one_step)
print("(I − η(H + ρH²)) p: ", theory.usam_map(saddle.H, lr, rho) @ p)
print("factor along y for ρ = 1, 3:", theory.usam_factor(-saddle.b, lr, np.array([1.0, 3.0])))

# %% [markdown]
# ### Exercises: the map in code
# **Exercise 1.** Write USAM's step on `f = ½ pᵀHp` as the matrix `M` of `p ← M p`, for any
# symmetric `H` (it need not be this saddle's). **Exercise 2.** From the factor along an
# eigendirection, write whether USAM shrinks a direction of curvature `λ`, of either sign,
# at every step (for `λ < 0`: captured). Each check runs your function on six to ten cases
# (random, indefinite, float32, overshooting steps) against samlab's `theory` and says
# what it found: passed, or the first case that failed with a hint.
#
# Each exercise is worth one point. Write the function's body in its cell: until you do,
# it raises `NotImplementedError` and the check says "not attempted yet". The cell after
# it runs the check; where a course grades with nbgrader, that cell is the test, and it
# fails, showing the same verdict, unless the check passes.

# %% nbgrader={"grade": false, "grade_id": "usam_matrix", "locked": false, "schema_version": 3, "solution": true, "task": false}
def usam_matrix(H, lr, rho):
    """USAM's step on f(p) = ½ pᵀHp as the matrix M with p_new = M p (H: (n, n) array)."""
    ### BEGIN SOLUTION
    H = np.asarray(H)
    return np.eye(len(H), dtype=H.dtype) - lr * (H + rho * H @ H)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_usam_matrix", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from samlab.exercises import check_usam_matrix

check_usam_matrix(usam_matrix)

# %% nbgrader={"grade": false, "grade_id": "usam_contracts", "locked": false, "schema_version": 3, "solution": true, "task": false}
def usam_contracts(lam, lr, rho):
    """True if USAM shrinks a direction of curvature lam (of either sign) at every step."""
    ### BEGIN SOLUTION
    return abs(1 - lr * lam * (1 + rho * lam)) < 1
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_usam_contracts", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from samlab.exercises import check_usam_contracts

check_usam_contracts(usam_contracts)

# %% [markdown]
# ## 5 · The threshold, derived then measured
#
# The derivation predicts the region of `(η, ρ)` where USAM converges to the saddle
# (`theory.usam_saddle_trapped`). Now measure it: run USAM from `x0` for every setting of a
# `GRID × GRID` grid (one vectorized call, no Python loop over settings) and label each
# run's outcome. The dashed line is the predicted boundary.

# %%
lrs, rhos = np.geomspace(1e-2, 2.0, GRID), np.geomspace(0.1, 20.0, GRID)
usam_pd = toy.phase_diagram(saddle, "usam", lrs, rhos, x0, steps=500)
predicted = theory.usam_saddle_trapped(lrs[:, None], rhos[None, :], saddle.a, saddle.b)
measured = usam_pd.codes == toy.OUTCOMES.index("trapped")
agreement = np.mean(predicted == measured)
print(f"prediction and simulation agree on {agreement:.2%} of {predicted.size} settings")
assert agreement > 0.99
phase_diagram_figure(usam_pd, predicted=predicted, predicted_label="predicted: trapped inside")

# %% [markdown]
# Inside the dashed line USAM is trapped; at large `η` the step overshoots and it diverges.
# Below `ρ = 1/b` it leaves the saddle, and how far it gets in 500 steps depends on `η`:
# at the smallest learning rates (`η` below about 0.05 here) it is still on its way out,
# "unsettled", whatever `ρ` — a budget of steps, not a property of the boundary. Hover
# over the map to read any setting.
#
# **Question.** Move `b` (the downhill curvature): where should the horizontal boundary go?
# Change `b` in section 1 (`toy.SaddleQuadratic(a=1.0, b=0.5)`), re-run all cells, and
# check. (Try `b = 0.25` and `b = 1.0`.)
#
# ## 6 · What normalization and renormalization change
#
# **SAM** normalizes its ascent: `ε = ρ·g/‖g‖` has length `ρ` however small `g` is. At
# `w_asc` the `y`-gradient is `−b·y·(1 − ρb/‖g‖)`, so the descent pulls `y` *back* to the
# saddle whenever `‖g‖ < ρb`. Near a saddle `‖g‖ → 0`, so this always happens eventually.
# Starting on the `y`-axis (`x = 0`, `‖g‖ = b|y|`) the condition reads `|y| < ρ`: SAM is
# captured as soon as it is within `ρ` of the saddle along the escape direction. Measured:

# %%
y0s = np.geomspace(1e-3, 0.5, 7)
rho_grid = np.geomspace(1e-4, 1.0, 161)
starts = np.stack([np.zeros_like(y0s), y0s], axis=-1)
sam_runs = toy.run(saddle, "sam", lr, rho_grid[:, None], starts[None], steps=600)
# Captured: at the saddle ("trapped"), or swinging across it in a 2-cycle wider than the
# trap radius ("oscillating"); either way it never got away.
captured = np.isin(sam_runs.outcome, ["trapped", "oscillating"])
smallest = np.array([rho_grid[captured[:, j]].min() for j in range(len(y0s))])
print("start y0:              ", np.round(y0s, 4))
print("smallest capturing ρ:  ", np.round(smallest, 4))
print("ratio (grid step 6%):  ", np.round(smallest / y0s, 3))
assert np.all(np.abs(smallest / y0s - 1) < 0.07)

# %% [markdown]
# So for SAM the threshold is not `ρ > 1/b` but "within `ρ` of the saddle". That holds
# while SAM stays close to the `y`-axis. Off the axis, the `x`-direction (a convex
# parabola) adds its own share to `‖g‖`: normalized SAM settles there into a 2-cycle of
# amplitude `A = ηρa/(2 − ηa)` (notebook 02), so `‖g‖ ≈ aA` near the saddle, and the
# capture condition `‖g‖ < ρb` becomes
#
# $$\frac{\eta\rho a^2}{2 - \eta a} < \rho b \iff \eta < \eta^* = \frac{2b}{a(a + b)},$$
#
# independent of `ρ`: above `η*` the swing along `x` keeps the gradient too large for the
# pull back, and SAM escapes. The phase diagrams below show it; the cell after them
# measures it.
#
# **SSAM** (Stable SAM) keeps USAM's ascent and rescales the descent gradient by
# `γ = ‖g‖ / ‖∇f(w_asc)‖ > 0`. A positive factor cannot change the *sign* of the `y`-step,
# so the capture condition should stay `ρ > 1/b`; what `γ` changes is the step length. The
# four phase diagrams, side by side:

# %%
methods = ["usam", "ssam", "sam", "rsam"]
diagrams = {m: toy.phase_diagram(saddle, m, lrs, rhos, x0, steps=500) for m in methods}
below = rhos[None, :] < 1 / saddle.b
for m, pd in diagrams.items():
    tr = pd.outcome == "trapped"
    print(f"{m:>5}: trapped {pd.fraction('trapped'):6.1%}, diverged {pd.fraction('diverged'):6.1%},"
          f" trapped with ρ < 1/b: {np.mean(tr & below):6.1%}")
usam_diverged = (diagrams["usam"].outcome == "diverged") & ~below
ssam_there = diagrams["ssam"].outcome[usam_diverged]
print(f"where USAM diverges with ρ > 1/b, SSAM is trapped in {np.mean(ssam_there == 'trapped'):.1%}"
      f" of {ssam_there.size} settings")

# %%
diagram_figure, axes = plt.subplots(2, 2, figsize=(12, 9), layout="constrained")
for ax, m in zip(axes.ravel(), methods):
    plot.phase_diagram(diagrams[m], ax, predicted=predicted, predicted_label="USAM prediction")
plt.show()

# %%
eta_star = 2 * saddle.b / (saddle.a * (saddle.a + saddle.b))
escaped = diagrams["sam"].outcome == "escaped"
above = lrs > eta_star
print(f"η* = 2b/(a(a + b)) = {eta_star:.3f}")
print(f"SAM escaped: {np.mean(escaped[~above]):.1%} of the settings with η < η*, "
      f"{np.mean(escaped[above]):.1%} of those with η > η*")
assert np.mean(escaped[~above]) < 0.01 and np.mean(escaped[above]) > 0.9

# %% [markdown]
# What the printout and the maps show:
#
# - **SSAM** is never trapped below `ρ = 1/b`: renormalization leaves the capture threshold
#   where USAM has it. Above it, at the large `η` where USAM diverges, SSAM is trapped
#   instead (last line of the printout): renormalization keeps the step from blowing up, it
#   does not rescue the run from the saddle.
# - **SAM** is trapped over most of the plane, including small `ρ`, as section 6 predicts
#   for a start this close to the saddle; it escapes only at learning rates above `η*`,
#   whatever `ρ` (the vertical edge of its map, where the last printout puts it).
# - **Renormalized SAM** (`rsam`) is trapped almost everywhere (98.9% of the map in the
#   printout).
#
# ## 7 · Playground
#
# Now explore on a saddle with a floor: `f = ½x² − ½y² + y⁴/4` has the same saddle at the
# origin and two minima at `y = ±1`, so an escape ends in a minimum. Move the sliders
# (`η` and `ρ` are on log scales), tick methods, type a start point or **click the contour**
# to start there. The table under the plot labels each run's outcome.

# %%
playground = Playground(toy.BoundedSaddle(a=1.0, b=1.0, c=1.0),
                        methods=("gd", "sam", "usam", "ssam"),
                        lr=0.1, rho=0.5, steps=300, x0=(1.0, 0.05))
playground

# %% [markdown]
# **Questions.**
# 1. With `η = 0.1`, find the smallest `ρ` that traps USAM. Does it match `1/b = 1`?
# 2. Keep `ρ = 0.5` and start SAM at `(0, 0.3)`, then at `(0, 0.8)`. Which is captured? Why
#    (section 6)?
# 3. Push `η` up with `ρ = 2`. Which method diverges first, and which stays at the saddle?
#
# The playground is plain Python: its current runs are `playground.trajectory`.

# %%
traj = playground.trajectory
print(dict(zip(traj.method.tolist(), traj.outcome.tolist())))

# %% [markdown]
# ## 8 · Figures for handouts
#
# The figures of sections 3, 5 and 6 as PNGs in `notebooks/figures/`, at least 1600 pixels
# wide, for slides (`plot.save_figure`). The playground has its twin too:
# `playground.static_figure()` draws whatever it shows now.

# %%
from pathlib import Path

out = Path("figures")
out.mkdir(exist_ok=True)
ax = plot.phase_diagram(usam_pd, predicted=predicted, predicted_label="predicted: trapped inside")
saved = [plot.save_figure(escape_figure, out / "01_escape.png"),
         plot.save_figure(diagram_figure, out / "01_phase_diagrams.png"),
         plot.save_figure(ax.figure, out / "01_usam_phase_diagram.png")]
print("saved:", saved)

# %% [markdown]
# **Take-aways.** GD escapes a saddle at any learning rate. USAM is captured exactly when
# the negative curvature is steeper than `−1/ρ`. SSAM is never captured below that
# threshold, and above it is captured also where USAM would diverge. Normalized SAM is
# captured whenever it comes within `ρ` of the saddle, at any learning rate below
# `η* = 2b/(a(a + b))`. Next: notebook 02, *why SAM normalizes* — what normalization buys
# in exchange.
