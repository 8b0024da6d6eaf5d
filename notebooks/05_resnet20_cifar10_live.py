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
# # 05 · ResNet-20 on CIFAR-10, live
#
# **What you will learn.** The experiment of notebook 04 at the scale of the papers:
# ResNet-20 on CIFAR-10 trained with SGD, SAM, late-phase SAM and SSAM, with the loss,
# the accuracy and the Hessian's top eigenvalue `λ_max` drawn live as training runs, and
# `λ_max` set against each method's *stability edge*: the sharpness above which its
# iteration cannot stay (docs/edges.md). Then the results beside the papers' numbers, and
# the loss along the line between the SGD and late-SAM solutions.
#
# **Time:** about 30 minutes to read. It runs in three sizes, chosen in the next cells:
# - **quick** (any CPU, what `make test` runs): a few hundred images, two epochs per arm,
#   every cell once; Run All takes about 70 s on a 2-core CPU, with a peak of 1.7 GB of
#   kernel memory (1.2 GB with the CPU build of torch that Binder installs);
# - **lab** (one GPU of the kind Colab gives): the four arms for 12 epochs on the full
#   training set, `λ_max` every 3 epochs, sized for about 15 minutes on a Colab GPU (an
#   estimate from about 10 s per SGD epoch on a T4: this size has not been timed on a GPU
#   yet);
# - **paper** (200 epochs, 3 seeds, several GPUs or days): the notebook prints the exact
#   commands and plots whatever of those runs exists in `runs/`, finished or still going.
#
# **Contents.** 1 Size and data · 2 Training, live · 3 λ_max against the stability edge ·
# 4 Results beside the papers · 5 The same valley · 6 The paper-size runs · 7 Figures.
# Exercises (checked by samlab): power iteration for λ_max and SGD's momentum edge, at the
# end of section 3.

# %%
import subprocess
import sys

REPOSITORY = "https://github.com/samlab-dev/samlab"  # see the README: not published yet
if "google.colab" in sys.modules:  # on Colab: install samlab, turn widgets on, look for a GPU
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                          f"samlab @ git+{REPOSITORY}"], capture_output=True, text=True)
    if pip.returncode:
        why = (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise SystemExit(f"could not install samlab from {REPOSITORY}: {why}")
    from samlab import colab
    colab.setup(gpu=True)

# %%
import matplotlib.pyplot as plt
import torch

import samlab
from samlab import landscape, plot
from samlab.train import TrainConfig, arm_configs, load_model, sharpness_batches, sweep
from samlab.widgets import LiveDashboard

# Quick with SAMLAB_QUICK=1 (CI) or without a GPU, lab with one; or write SIZE = "paper".
SIZE = "quick" if samlab.quick_mode() or not torch.cuda.is_available() else "lab"
print(f"samlab {samlab.__version__}; size: {SIZE}; device: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}")

# %% [markdown]
# ## 1 · Size and data
#
# The lab and paper sizes train on **CIFAR-10** itself, which torchvision downloads into
# `data/` the first time (170,498,071 bytes, checked against its MD5: about 15 s at
# 100 Mbit/s, a few minutes on a slow line). Where it cannot be downloaded (no network),
# the **JPEG-recompressed copy** of CIFAR-10 can stand in, if samlab finds it (`SAMLAB_DATA`,
# docs/training.md#data): set `SAMLAB_DATASET=cifar10-jpeg`, or write it in the next cell.
# It holds the same images re-encoded as JPEG, so every number from it says so. A run cut
# short (`SAMLAB_EPOCHS=1`: one epoch per arm, how `make gpu-check` times the lab size)
# keeps everything else of its size. Quick mode uses a few hundred images of that copy
# (500 of its test images), or random images of CIFAR-10's shape when it is absent too
# (then the accuracies mean nothing; the point is that every cell runs).

# %%
import os

from samlab.data import find_cifar10_jpeg

if SIZE == "quick":
    dataset = "cifar10-jpeg" if find_cifar10_jpeg() else "random"
else:  # without network: write "cifar10-jpeg" here, or set SAMLAB_DATASET=cifar10-jpeg
    dataset = os.environ.get("SAMLAB_DATASET", "cifar10")

# %% [markdown]
# What each size changes: epochs, images, and how often and on how many images `λ_max` is
# measured (otherwise on 5,000 training images, the top two eigenvalues). The `recipe` is
# the same at every size: the SAM-family papers' CIFAR-10 settings
# (docs/training.md#the-cifar-10-recipe).

# %%
SIZES = {
    "quick": dict(epochs=2, n_train=512, n_val=500, n_test=500, sharpness_every=2,
                  sharpness_subset=64, sharpness_k=1),
    "lab": dict(epochs=12, sharpness_every=3),
    "paper": dict(epochs=200, sharpness_every=10),
}
size = dict(SIZES[SIZE], epochs=samlab.epochs_override(SIZES[SIZE]["epochs"]))
recipe = dict(name="r20", model="resnet20", method="sgd", lr=0.1, momentum=0.9,
              weight_decay=5e-4, batch_size=128, schedule="cosine")
base = TrainConfig(**recipe, dataset=dataset, runs_dir=f"runs/05_{SIZE}", **size)
print(f"data: {dataset}; {base.epochs} epoch(s); "
      f"training images: {base.n_train or 'the whole training split'}")

# %% [markdown]
# The arms, same schedule and seed: SGD; SAM (`ρ = 0.05`, Foret et al.'s value for
# CIFAR-10) from the first epoch; late SAM, switched on for the last eighth of the epochs
# (Zhou et al.'s late phase, notebook 04: 25 of 200 at paper size; at least the last
# epoch, so one of 12 at lab size; at quick size it is SAM for the second of two epochs,
# which shows that the switch runs, not what it does); and SSAM (notebook 03), whose
# ascent is unnormalized: its `ρ = 0.1` multiplies the gradient, so its perturbation has length
# `ρ‖g‖` (section 4 prints it, to set beside SAM's 0.05). Lab size: 12 epochs of a cosine
# schedule let the learning rate decay all the way, so the arms' `λ_max` curves separate
# as they do in a full run, while four arms still fit a Colab session (SAM and SSAM cost
# two gradients a step, late SAM one for most of its run: about 6 SGD-runs in all); the
# accuracies stay below the 200-epoch references.

# %%
E = base.epochs
arms = {"SGD": dict(method="sgd"),
        "SAM": dict(method="sam", rho=0.05),
        "late SAM": dict(method="sam", rho=0.05, switch_epoch=E - max(1, E // 8)),
        "SSAM": dict(method="ssam", rho=0.1)}
configs = arm_configs(base, arms)
for name, cfg in configs.items():
    print(f"{name:>9}: {plot.run_label(cfg)}")

# %% [markdown]
# ## 2 · Training, live
#
# Each arm trains with a `LiveDashboard` attached: the panels update in place after every
# epoch (loss, accuracy, `λ_max` with its stability edges, `γ_t`). A finished arm is read
# back from `runs/` instead of trained again, so a second Run All costs nothing. To train
# elsewhere (a terminal, a bigger machine) and only watch here, see section 6.

# %%
from IPython.display import display

results = {}
for name, cfg in configs.items():
    dash = LiveDashboard(title=f"{name}: {plot.run_label(cfg)}")
    display(dash)
    (run,) = sweep(cfg, {"seed": [0]}, callbacks=[dash])
    results[name] = run
    dash.update(run.records)  # a run read back from runs/ draws here too
    print(f"{name}: {run.status}, test accuracy {run.final('test_acc'):.3f} after "
          f"{run.epochs_done} epoch(s), {run.train_time:.0f} s of training")

# %% [markdown]
# ## 3 · λ_max against the stability edge
#
# Along the top Hessian eigenvector a method's step multiplies the deviation by
# `1 − η·λ_eff`; with heavy-ball momentum `β` it is stable while `η·λ_eff < 2 + 2β`
# (docs/edges.md). For SGD `λ_eff = λ`, so its edge is `(2 + 2β)/η`, rising as the
# learning rate decays. For SAM `λ_eff = λ + ρλ²/‖g‖`: its edge lies below SGD's and falls
# as the gradient norm `‖g‖` falls. The panels draw each arm's `λ_max` with the edges of
# its own run: SGD's from the learning rate each epoch used, SAM's from the same and the
# epoch's mean mini-batch `‖g‖` (not the full-batch gradient norm: the plot says which),
# SSAM's from USAM's edge with `η` scaled by the epoch's mean `γ`.

# %%
rows = (len(results) + 1) // 2  # two panels a row: readable on a slide
fig, axes = plt.subplots(rows, 2, figsize=(11, 3.9 * rows), squeeze=False)
for ax, (name, run) in zip(axes.flat, results.items()):
    plot.sharpness_and_edges(run, ax)
    ax.set_title(name)
plt.tight_layout()
plt.show()
edges_figure = fig

# %%
for name, run in results.items():
    print(f"{name:>9}: " + plot.edge_summary(run))

# %% [markdown]
# Read the panels with the printout (the ratio `λ_max / edge` of the last measurement): a
# method *rides* its edge when the ratio stays just below 1, epoch after epoch; it trains
# *below* the edge when the ratio is well under 1. For mini-batch training these lines are
# references, not laws: the full-batch `λ_max` of SGD often settles below `(2 + 2β)/η`
# (docs/edges.md). The quick size's numbers (two epochs on 512 images, BatchNorm statistics
# that have barely moved) say nothing either way: read them on a lab-size run.
#
# ### Exercises: λ_max and its edge
# **Exercise 1.** Write the power iteration behind a `λ_max` measurement: from a function
# `hvp(v)` that returns `Hv` (`samlab.sharpness` builds one from a network and a batch),
# find the eigenvalue of largest magnitude, sign included. **Exercise 2.** Write SGD's edge
# with heavy-ball momentum, the dashed line of the panels above. The checks run your power
# iteration on small symmetric matrices against their exact eigenvalues (also one whose
# top eigenvalue is negative, and one large enough to overflow without normalizing), and
# your edge against `samlab.edges`.
#
#
# Each exercise is worth one point. Write the function's body in its cell: until you do,
# it raises `NotImplementedError` and the check says "not attempted yet". The cell after
# it runs the check; where a course grades with nbgrader, that cell is the test, and it
# fails, showing the same verdict, unless the check passes.

# %% nbgrader={"grade": false, "grade_id": "power_iteration", "locked": false, "schema_version": 3, "solution": true, "task": false}
def power_iteration(hvp, v0, iters):
    """The eigenvalue of largest magnitude of H, from v ↦ Hv, starting at v0 (1-D)."""
    ### BEGIN SOLUTION
    v = v0 / v0.norm()
    for _ in range(iters):
        hv = hvp(v)
        v = hv / hv.norm()
    return float(v @ hvp(v))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_power_iteration", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from samlab.exercises import check_power_iteration

check_power_iteration(power_iteration)

# %% nbgrader={"grade": false, "grade_id": "momentum_edge", "locked": false, "schema_version": 3, "solution": true, "task": false}
def momentum_edge(lr, momentum):
    """The largest curvature λ that GD with heavy-ball momentum β is stable on."""
    ### BEGIN SOLUTION
    return (2 + 2 * momentum) / lr
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_momentum_edge", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from samlab.exercises import check_momentum_edge

check_momentum_edge(momentum_edge)

# %% [markdown]
#
# ## 4 · Results beside the papers
#
# Final test accuracy per arm, and what it cost, next to the references: He et al. (2016)
# report 91.25% for ResNet-20 with SGD (160 epochs of the step schedule); the SAM-family
# papers report a fraction of a point to a point on top. What a size can show: at quick
# size (two epochs on 512 images) the accuracies are near chance and say nothing about
# the arms, and the cell says so; the cost columns are real at every size. Lab size
# (12 epochs) ranks the arms' sharpness and cost, with accuracies below the 200-epoch
# references; only the paper size compares with the papers.

# %%
print(plot.arms_table({name: [run] for name, run in results.items()}, baseline="SGD",
                      decimals={"test_acc": 4}))  # four, beside the reference's 0.9125
print(f"reference: ResNet-20 with SGD, He et al. 2016: 0.9125 (data here: "
      f"{results['SGD'].last.get('dataset', dataset)})")
ssam_eps = results["SSAM"].config.rho * results["SSAM"].final("grad_norm_mean")
print(f"SSAM's perturbation in its last epoch: ρ·mean‖g‖ = {ssam_eps:.4f} (SAM's: 0.05)")
n_images = results["SGD"].last["step"] // E * base.batch_size  # what an epoch went through
print(f"{SIZE} size, {E} epoch(s) on {n_images} images: " + {
    "quick": "accuracies near chance (0.10): the rows show that every arm runs, no more.",
    "lab": "accuracies below the 200-epoch references; sharpness and costs are this size's.",
    "paper": "the papers' size."}[SIZE])

# %% [markdown]
# ## 5 · The same valley
#
# Notebook 04's test on ResNet-20: the training loss along the line from the SGD solution
# to the late-SAM one, and from SGD to SAM, with BatchNorm statistics recomputed at every
# point on the same training batches (docs/landscape.md#batchnorm). At quick size the
# solutions are two epochs from the same start, so the line shows the method, not an
# answer: one valley or two is a question for a lab- or paper-size run.

# %%
import numpy as np

device = "cuda" if torch.cuda.is_available() else "cpu"
sgd_model, data = load_model(results["SGD"], device=device)
batches = sharpness_batches(results["SGD"].config, data, device)[:8]  # ≤ 1,024 images
alphas, lines = np.linspace(-0.25, 1.25, 7 if SIZE == "quick" else 13), {}  # 0, 1 among them
for name in ("late SAM", "SAM"):
    other, _ = load_model(results[name], device=device, data=data)
    line = lines[f"SGD → {name}"] = landscape.interpolate(sgd_model, other, batches, alphas)
    print(f"SGD → {name}: distance {landscape.distance(sgd_model, other):.2f}, "
          f"barrier {line.barrier:.4f}")

# %%
valley_figure = plot.interpolation(lines, accuracy=False,
                                   xlabel="α (0: SGD, 1: the other solution)")

# %% [markdown]
# ## 6 · The paper-size runs
#
# 200 epochs and three seeds per arm are for a machine that can run for hours; there is no
# need to keep a notebook open meanwhile. The commands, one run each (add `--device cuda:N`
# to spread them over GPUs, or use `torchrun` for one run on several):

# %%
import dataclasses

from samlab.cli import train_command

# The paper size whatever size this notebook runs at, on canonical CIFAR-10 (write
# "cifar10-jpeg" on a machine without network); late SAM for the last 25 epochs.
paper = TrainConfig(**recipe, dataset="cifar10", runs_dir="runs/05_paper", **SIZES["paper"])
paper_arms = {**arms, "late SAM": {**arms["late SAM"], "switch_epoch": 175}}
commands = [dataclasses.replace(cfg, name=f"{cfg.name}-s{seed}", seed=seed)
            for cfg in arm_configs(paper, paper_arms).values() for seed in (0, 1, 2)]
print("\n".join(train_command(cfg) for cfg in commands))
print("\non several GPUs, one run:\n" + train_command(commands[1], nproc=4))

# %% [markdown]
# Start them in a terminal. This cell plots whatever of them exists, finished or still
# going; `LiveDashboard.watch(run_dir)` follows one as it trains, without blocking the
# notebook.

# %%
existing = [c.run_dir for c in commands if (c.run_dir / "metrics.jsonl").is_file()]
print(f"{len(existing)} of {len(commands)} paper-size runs found in {paper.runs_dir}")
if existing:
    plot.plot_run(existing)
    plt.show()
    watcher = LiveDashboard.watch(existing[0])
    display(watcher)

# %% [markdown]
# ## 7 · Figures for handouts

# %%
from pathlib import Path

out = Path("figures")
out.mkdir(exist_ok=True)
saved = [plot.save_figure(edges_figure, out / "05_sharpness_and_edges.png"),
         plot.save_figure(valley_figure, out / "05_same_valley.png"),
         plot.save_figure(plot.plot_run([r.run_dir for r in results.values()],
                                        labels=list(results)), out / "05_runs.png")]
print("saved:", saved)

# %% [markdown]
# **Take-aways.** Notebook 04's three arms and notebook 03's SSAM, at the papers' scale,
# with `λ_max` set against the edge each method's own learning rate, gradient norm (and
# `γ`) allow. The
# printouts of sections 3–5 are this run's answers (accuracy, sharpness against the edge,
# cost, one valley or two); the paper-size commands of section 6 give the numbers to set
# beside the papers'.
