"""samlab.sharpness on ResNet-20: what a Hessian-vector product costs, and how many λ_max needs.

Setup: ResNet-20 trained for ``STEPS`` SGD steps (lr 0.05, batch 128, momentum 0.9) on
``N_TRAIN`` JPEG-recompressed CIFAR-10 training images (random tensors where the JPEG copy
is absent, see :func:`benchmarks.common.jpeg_cifar10`; every row says which), so that it
is not at initialization;
then, on a fixed subset of ``N_SUBSET`` of those images, BatchNorm in eval mode:

- the time of one gradient of the mean loss over the subset, and of one Hessian-vector
  product each way (double backward; forward-over-reverse with ``torch.func``, eager and
  through ``torch.compile``); goal: HVP / gradient <= 2.5; and beside them, in the same
  run, the product as PyHessian computes it (samlab's default must be faster), and when
  compiling pays off;
- how many products λ_max needs to come within relative error 1e-3 of a tightly
  converged value (Lanczos from another start, to tol 1e-5): Lanczos (goal <= 10) against
  power iteration, and power iteration's own stop as PyHessian runs it (max 100
  iterations, stop when the estimate changes by less than 1e-3 relative).

Model and images are channels_last: on this CPU that makes convolutions (forward and
backward alike) several times faster than the contiguous layout, for every method here.
``SAMLAB_QUICK=1`` shrinks everything to a smoke run whose figures mean nothing.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from samlab import quick_mode, sharpness
from samlab.data import fixed_subset, load_cifar10_jpeg, to_tensor
from samlab.models import mlp, resnet20

from .common import Row, jpeg_cifar10, median, timeit

QUICK = quick_mode()
N_SUBSET = 64 if QUICK else 1000
SUBSET_BATCH = 32 if QUICK else 250
N_TRAIN = 256 if QUICK else 5000
STEPS = 5 if QUICK else 150
BATCH, LR, MOMENTUM = 128, 0.05, 0.9
ROUNDS = 1 if QUICK else 2
REL = 1e-3  # "within relative error 1e-3 of the reference"
REF_TOL, REF_ITER = 1e-5, 30
POWER_CAP = 8 if QUICK else 40


def training_data() -> tuple[torch.Tensor, torch.Tensor, str]:
    path = jpeg_cifar10()
    if path is None:
        gen = torch.Generator().manual_seed(0)
        return (torch.randn(N_TRAIN, 3, 32, 32, generator=gen),
                torch.randint(0, 10, (N_TRAIN,), generator=gen), "random tensors (no data)")
    images, labels = load_cifar10_jpeg("train", N_TRAIN, seed=0, path=path)
    return to_tensor(images), torch.from_numpy(labels), "JPEG-recompressed CIFAR-10"


def sgd_warm_up(model: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor) -> float:
    """``STEPS`` plain SGD steps on shuffled batches; returns the seconds taken."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(len(X), generator=gen)
    for step in range(STEPS):
        start = (step * BATCH) % (len(X) - BATCH + 1)
        idx = order[start:start + BATCH]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(X[idx]), Y[idx]).backward()
        opt.step()
    return time.perf_counter() - t0


def gradient(model: torch.nn.Module, batches) -> list[torch.Tensor]:
    """The mean-loss gradient over the subset, one graph at a time: the unit of cost."""
    params = list(model.parameters())
    total = sum(len(x) for x, _ in batches)
    out = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        for o, g in zip(out, torch.autograd.grad(F.cross_entropy(model(x), y), params)):
            o.add_(g, alpha=len(x) / total)
    return out


def pyhessian_hvp(model: torch.nn.Module, batches, v: torch.Tensor) -> list[torch.Tensor]:
    """The product as PyHessian computes it (``hessian.dataloader_hv_product``), for the
    comparison: per batch, ``loss.backward(create_graph=True)``, then ``autograd.grad`` of
    the ``.grad`` fields against ``v``; nn.BatchNorm2d as it is (eval mode)."""
    params = list(model.parameters())
    vs = [t.view_as(p) for t, p in zip(v.split([p.numel() for p in params]), params)]
    total = sum(len(x) for x, _ in batches)
    out = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward(create_graph=True)
        hv = torch.autograd.grad([p.grad for p in params], params, grad_outputs=vs,
                                 only_inputs=True, retain_graph=False)
        model.zero_grad(set_to_none=True)  # the .grad fields hold the graph: free it
        for o, h in zip(out, hv):
            o.add_(h, alpha=len(x) / total)
    return out


def evaluate(model: torch.nn.Module, batches) -> tuple[float, float]:
    total = sum(len(x) for x, _ in batches)
    loss = correct = 0.0
    with torch.no_grad():
        for x, y in batches:
            out = model(x)
            loss += float(F.cross_entropy(out, y)) * len(x) / total
            correct += float((out.argmax(1) == y).sum())
    return loss, correct / total


def first_within(history: list[float], reference: float) -> int | None:
    """How many products until the estimate is within ``REL`` of ``reference``."""
    for i, value in enumerate(history):
        if abs(value - reference) <= REL * abs(reference):
            return i + 1
    return None


def pyhessian_stop(history: list[float]) -> tuple[int, float] | None:
    """Where PyHessian's power iteration stops on this sequence of Rayleigh quotients.

    Its loop: ``θ_c = vᵀHv``, ``v ← Hv/‖Hv‖``; it breaks at the first product ``c ≥ 2``
    with ``|θ_{c-1} − θ_c| / (|θ_{c-1}| + 1e-6) < 1e-3`` and returns ``θ_{c-1}``.
    """
    for c in range(1, len(history)):
        previous, current = history[c - 1], history[c]
        if abs(previous - current) / (abs(previous) + 1e-6) < 1e-3:
            return c + 1, previous
    return None


def small_model_rows() -> list[Row]:
    """On a small model the per-call overhead of torch.func, not arithmetic, sets the cost."""
    torch.manual_seed(0)
    model = mlp(64, 64, 10).eval()
    gen = torch.Generator().manual_seed(0)
    X, Y = torch.randn(1000, 64, generator=gen), torch.randint(0, 10, (1000,), generator=gen)
    batches = fixed_subset((X, Y), n=1000, batch_size=128)
    v = torch.randn(sum(p.numel() for p in model.parameters()), generator=gen)
    rows = []
    # One thread: operations this small gain nothing from a second one, and on a busy
    # machine the idle OpenMP thread's waiting would dominate what is measured.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for mode in ("double_backward", "forward_over_reverse"):
            t = median(timeit(lambda m=mode: sharpness.hvp(model, F.cross_entropy, batches, v,
                                                           mode=m), repeat=7))
            rows.append(Row(f"HVP on a digits-sized MLP, {mode.replace('_', ' ')}", t * 1e3,
                            "ms", note="mlp(64, 64, 10), 1000 random examples in batches of "
                                       "128, 1 thread"))
    finally:
        torch.set_num_threads(threads)
    return rows


def run() -> list[Row]:
    t_start = time.perf_counter()
    torch.manual_seed(0)
    X, Y, source = training_data()
    X = X.contiguous(memory_format=torch.channels_last)
    model = resnet20().to(memory_format=torch.channels_last)
    train_s = sgd_warm_up(model, X, Y)
    batches = fixed_subset((X, Y), n=N_SUBSET, seed=0, batch_size=SUBSET_BATCH)
    model.eval()
    loss, acc = evaluate(model, batches)
    where = f"ResNet-20, {N_SUBSET} {source}, after {STEPS} SGD steps, BN eval, CPU"
    rows = [Row("SGD warm-up", train_s, "s",
                note=f"{STEPS} steps of {BATCH} on {N_TRAIN} {source}; subset loss "
                     f"{loss:.3f}, accuracy {acc:.1%}")]

    # -- cost of one product, in gradients -------------------------------------------------
    n = sum(p.numel() for p in model.parameters())
    v = torch.randn(n, generator=torch.Generator().manual_seed(0))
    ways = {
        "gradient": lambda b: gradient(model, b),
        "double backward": lambda b: sharpness.hvp(model, F.cross_entropy, b, v,
                                                   mode="double_backward"),
        "PyHessian-style double backward": lambda b: pyhessian_hvp(model, b, v),
        "forward-over-reverse (torch.func)": lambda b: sharpness.hvp(
            model, F.cross_entropy, b, v, mode="forward_over_reverse"),
    }
    if not QUICK:
        ways["forward-over-reverse, torch.compile"] = lambda b: sharpness.hvp(
            model, F.cross_entropy, b, v, compile=True)
    first = {}
    for name, fn in ways.items():  # warm-up on one batch: allocator, torch.func, compiler
        t0 = time.perf_counter()
        fn(batches[:1])
        first[name] = time.perf_counter() - t0
    times = {name: [] for name in ways}
    for _ in range(ROUNDS):  # round-robin, so a change of load on the machine hits all alike
        for name, fn in ways.items():
            t0 = time.perf_counter()
            fn(batches)
            times[name].append(time.perf_counter() - t0)
    grad_s = median(times["gradient"])
    rows.append(Row("gradient of the mean loss over the subset", grad_s, "s", note=where))
    auto = sharpness.AUTO_MODE[False].replace("_", " ")
    for name in list(ways)[1:]:
        t = median(times[name])
        default = " (default, mode='auto')" if name == auto else ""
        rows.append(Row(f"HVP, {name}{default}", t, "s"))
        rows.append(Row(f"HVP / gradient, {name}{default}", t / grad_s, "x", "<= 2.5",
                        t / grad_s <= 2.5))
    ours, theirs = median(times[auto]), median(times["PyHessian-style double backward"])
    rows.append(Row("HVP time, samlab's default / PyHessian-style", ours / theirs, "x",
                    "< 1", ours < theirs, note="same model, batches and vector, one run"))
    compiled = "forward-over-reverse, torch.compile"
    if compiled in first:
        compile_s = first[compiled] - median(times[compiled]) / len(batches)
        rows.append(Row("torch.compile of the HVP, first call (one batch shape)",
                        first[compiled], "s", note="once per model, mode and batch shape; "
                        f"about {compile_s:.0f} s of it compiling"))
        share = median(times[compiled]) / ours
        rows.append(Row("compiled HVP / eager default HVP", share, "x",
                        note=f"samlab.sharpness assumes {sharpness.hessian.COMPILED_SHARE} "
                             "(COMPILED_SHARE) when it decides whether to compile"))
        # A λ_max measurement is ~9 products (Lanczos, top-2): compiling pays off after
        # compile time / (what one measurement saves) measurements.
        saved = 9 * (ours - median(times[compiled]))
        rows.append(Row("λ_max measurements (9 HVPs on this subset) until compiling pays off",
                        compile_s / saved if saved > 0 else float("nan"), "",
                        note="the trainer's sharpness_compile='auto' compiles when the "
                             "measurements left repay it (docs/sharpness.md#speed)"))

    # -- products until λ_max is within 1e-3 -------------------------------------------------
    fast = dict(compile=not QUICK)  # the counts do not depend on how a product is computed
    ref = sharpness.top_eigenvalues(model, F.cross_entropy, batches, tol=REF_TOL,
                                    max_iter=REF_ITER, seed=1, **fast)
    lam = ref.lambda_max
    rows.append(Row("λ_max reference (Lanczos, other start)", lam, "",
                    note=f"tol {REF_TOL:g}, {ref.n_hvp} HVPs, converged={ref.converged}, "
                         f"residual {float(ref.residuals[0]):.1e}"))

    lanczos = sharpness.top_eigenvalues(model, F.cross_entropy, batches, tol=REL,
                                        max_iter=REF_ITER, seed=0, **fast)
    reach = first_within(lanczos.history, lam)
    rows.append(Row("Lanczos: HVPs until λ_max within 1e-3 of the reference",
                    reach if reach is not None else float("nan"), "HVPs", "<= 10",
                    reach is not None and reach <= 10,
                    note=f"estimates {', '.join(f'{x:.4g}' for x in lanczos.history)}"))
    rows.append(Row("Lanczos (tol=1e-3): HVPs until its own stopping rule",
                    lanczos.n_hvp, "HVPs",
                    note=f"converged={lanczos.converged}, relative error "
                         f"{abs(lanczos.lambda_max - lam) / lam:.1e}"))

    power = sharpness.top_eigenvalues(model, F.cross_entropy, batches, method="power",
                                      tol=REL, max_iter=POWER_CAP, seed=0, **fast)
    reach = first_within(power.history, lam)
    rows.append(Row("power iteration: HVPs until λ_max within 1e-3 of the reference",
                    reach if reach is not None else float("nan"), "HVPs",
                    note="not reached" if reach is None else
                    f"estimates {', '.join(f'{x:.4g}' for x in power.history)}"))
    stop = pyhessian_stop(power.history)
    if stop is not None:
        count, value = stop
        rows.append(Row("power iteration, PyHessian's stopping rule: HVPs", count, "HVPs",
                        note="max 100, stop when the estimate changes < 1e-3 relative"))
        rows.append(Row("power iteration, PyHessian's stopping rule: relative error at stop",
                        abs(value - lam) / lam, ""))
    else:
        rows.append(Row("power iteration, PyHessian's stopping rule: HVPs", float("nan"),
                        "HVPs", note=f"had not stopped after {power.n_hvp}"))
    rows.append(Row("power iteration (tol=1e-3 on the residual): HVPs until its own rule",
                    power.n_hvp, "HVPs", note=f"converged={power.converged}"))
    rows += small_model_rows()
    rows.append(Row("whole benchmark", time.perf_counter() - t_start, "s",
                    note="quick mode" if QUICK else ""))
    return rows
