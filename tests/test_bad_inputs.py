"""The same bad values, fed to every public entry point, give the same kind of error.

Every message reads ``"<name> must be <what is allowed>, got <value>"`` (STYLE: "Fail
early, say exactly"), the value shown as Python shows it; NumPy integer and float scalars
are numbers everywhere; ``True`` is never a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samlab import data, sharpness, toy
from samlab.optim import SAM
from samlab.train import TrainConfig
from samlab.widgets import Playground

NAN, INF = math.nan, math.inf
BAD = {
    "> 0": [-1.0, 0.0, NAN, INF, -INF, True, "0.5", None],
    ">= 0": [-1.0, NAN, INF, True, "0.5", None],
    "finite": [NAN, INF, True, "0.5", None],
    "int >= 1": [-1, 0, 2.5, NAN, True, "3", None],
    "int >= 0": [-1, 2.5, True, "3", None],
}
NUMPY_GOOD = {"> 0": np.float64(0.5), ">= 0": np.float32(0.5), "finite": np.float64(0.5),
              "int >= 1": np.int64(3), "int >= 0": np.int32(3)}

QUAD = toy.ConvexQuadratic((1.0, 0.5))


def tiny_problem():
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 2)
    return model, [(torch.randn(8, 3, generator=gen), torch.randint(0, 2, (8,), generator=gen))]


def sam(**kw):
    return SAM(torch.nn.Linear(2, 1).parameters(), lr=0.1, **kw)


def loader(**kw):
    images = np.zeros((8, 4, 4, 1), np.uint8)
    return data.DeviceLoader(images, np.zeros(8, np.int64), **{"batch_size": 4, **kw},
                             device="cpu", mean=(0.5,), std=(0.25,))


def eig(**kw):
    model, batches = tiny_problem()
    return sharpness.top_eigenvalues(model, F.cross_entropy, batches, **kw)


def trace(**kw):
    model, batches = tiny_problem()
    return sharpness.hessian_trace(model, F.cross_entropy, batches, **kw)


def density(**kw):
    model, batches = tiny_problem()
    return sharpness.spectral_density(model, F.cross_entropy, batches,
                                      **{"n_probes": 1, "n_steps": 3, **kw})


def subset(**kw):
    return data.fixed_subset((torch.zeros(20, 2), torch.zeros(20)), **{"n": 10, **kw})


# (entry point, parameter, domain, call with the value, None allowed)
ENTRIES: list[tuple[str, str, str, Callable[[Any], Any], bool]] = [
    ("toy.run", "lr", "> 0", lambda v: toy.run(QUAD, "sam", v, 0.1, [1.0, 1.0], 5), False),
    ("toy.run", "rho", ">= 0", lambda v: toy.run(QUAD, "sam", 0.1, v, [1.0, 1.0], 5), False),
    ("toy.run", "steps", "int >= 1", lambda v: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], v), False),
    ("toy.run", "noise", ">= 0",
     lambda v: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], 5, noise=v), False),
    ("toy.run", "seed", "int >= 0",
     lambda v: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], 5, seed=v), False),
    ("toy.run", "tol", "> 0", lambda v: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], 5, tol=v), False),
    ("toy.run", "trap_radius", "> 0",
     lambda v: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], 5, trap_radius=v), False),
    ("toy.run", "adaptive_eta", "> 0",
     lambda v: toy.run(QUAD, "asam", 0.1, 0.1, [1, 1], 5, adaptive_eta=v), False),
    ("toy.phase_diagram", "lrs", "> 0",
     lambda v: toy.phase_diagram(QUAD, "sam", v, [0.1], [1, 1], 5), False),
    ("toy.phase_diagram", "rhos", ">= 0",
     lambda v: toy.phase_diagram(QUAD, "sam", [0.1], v, [1, 1], 5), False),
    ("toy.phase_diagram", "steps", "int >= 1",
     lambda v: toy.phase_diagram(QUAD, "sam", [0.1], [0.1], [1, 1], v), False),
    ("toy.SaddleQuadratic", "a", "> 0", lambda v: toy.SaddleQuadratic(a=v), False),
    ("toy.BoundedSaddle", "c", "> 0", lambda v: toy.BoundedSaddle(c=v), False),
    ("toy.ConvexQuadratic", "eigenvalues", "> 0", lambda v: toy.ConvexQuadratic((1.0, v)), False),
    ("toy.ConvexQuadratic", "angle", "finite", lambda v: toy.ConvexQuadratic(angle=v), False),
    ("toy.SharpFlatValley", "width", "> 0", lambda v: toy.SharpFlatValley(width=v), False),
    ("SAM", "rho", ">= 0", lambda v: sam(rho=v), False),
    ("SAM", "adaptive_eta", ">= 0", lambda v: sam(method="asam", adaptive_eta=v), False),
    ("SAM", "switch_step", "int >= 0", lambda v: sam(switch_step=v), True),
    ("SAM", "switch_epoch", "int >= 0", lambda v: sam(switch_epoch=v), True),
    ("SAM", "end_step", "int >= 1", lambda v: sam(end_step=v), True),
    ("SAM", "end_epoch", "int >= 1", lambda v: sam(end_epoch=v), True),
    ("SAM.set_epoch", "epoch", "int >= 0", lambda v: sam(switch_epoch=1).set_epoch(v), False),
    ("top_eigenvalues", "k", "int >= 1", lambda v: eig(k=v), False),
    ("top_eigenvalues", "tol", "> 0", lambda v: eig(tol=v), False),
    ("top_eigenvalues", "max_iter", "int >= 1", lambda v: eig(max_iter=v), False),
    ("top_eigenvalues", "seed", "int >= 0", lambda v: eig(seed=v), False),
    ("hessian_trace", "n_probes", "int >= 1", lambda v: trace(n_probes=v), False),
    ("spectral_density", "sigma", "> 0", lambda v: density(sigma=v), True),
    ("spectral_density", "n_steps", "int >= 1", lambda v: density(n_steps=v), False),
    ("fixed_subset", "n", "int >= 1", lambda v: subset(n=v), False),
    ("fixed_subset", "batch_size", "int >= 1", lambda v: subset(batch_size=v), False),
    ("fixed_subset", "seed", "int >= 0", lambda v: subset(seed=v), False),
    ("split_train_val", "n_val", "int >= 0", lambda v: data.split_train_val(100, n_val=v), False),
    ("split_train_val", "seed", "int >= 0", lambda v: data.split_train_val(100, 10, seed=v), False),
    ("load_dataset", "n_train", "int >= 1",
     lambda v: data.load_dataset("digits", n_train=v), True),
    ("load_dataset", "split_seed", "int >= 0",
     lambda v: data.load_dataset("digits", split_seed=v), False),
    ("DeviceLoader", "batch_size", "int >= 1", lambda v: loader(batch_size=v), False),
    ("DeviceLoader", "padding", "int >= 0", lambda v: loader(padding=v), False),
    ("DeviceLoader", "seed", "int >= 0", lambda v: loader(seed=v), False),
    ("Playground", "steps", "int >= 1", lambda v: Playground(QUAD, steps=v), False),
    *[("TrainConfig", name, kind, lambda v, n=name: TrainConfig(**{"batch_size": 1, n: v}),
       none)
      for name, kind, none in [
          ("lr", "> 0", False), ("rho", ">= 0", False), ("weight_decay", ">= 0", False),
          ("momentum", ">= 0", False), ("step_gamma", "> 0", False),
          ("label_smoothing", ">= 0", False), ("epochs", "int >= 1", False),
          ("batch_size", "int >= 1", False), ("seed", "int >= 0", False),
          ("sharpness_every", "int >= 0", False), ("sharpness_subset", "int >= 1", False),
          ("log_every", "int >= 0", False), ("n_train", "int >= 1", True),
          ("n_val", "int >= 0", True), ("cpu_threads", "int >= 1", True)]],
    ("TrainConfig", "end_epoch", "int >= 1",
     lambda v: TrainConfig(method="sam", end_epoch=v), True),
    ("TrainConfig", "switch_log_steps", "int >= 0",
     lambda v: TrainConfig(method="sam", switch_epoch=1, switch_log_steps=v), False),
    ("TrainConfig", "switch_log_sharpness_every", "int >= 0",
     lambda v: TrainConfig(method="sam", switch_epoch=1, switch_log_steps=5,
                           switch_log_sharpness_every=v), False),
]

CASES = [(entry, name, kind, call, value)
         for entry, name, kind, call, none in ENTRIES
         for value in BAD[kind] if not (none and value is None)]


@pytest.mark.parametrize("entry, name, kind, call, value", CASES,
                         ids=[f"{e}-{n}={v!r}" for e, n, _, _, v in CASES])
def test_a_bad_value_is_a_value_error_naming_the_parameter_and_the_value(
        entry, name, kind, call, value):
    with pytest.raises(ValueError) as err:
        call(value)
    message = str(err.value)
    assert message.startswith(f"{name} must be "), message
    assert message.endswith(f"got {value!r}"), message


@pytest.mark.parametrize("entry, name, kind, call, none", ENTRIES,
                         ids=[f"{e}-{n}" for e, n, *_ in ENTRIES])
def test_a_numpy_scalar_is_a_number(entry, name, kind, call, none):
    call(NUMPY_GOOD[kind])  # no error


def test_a_numpy_scalar_in_a_config_is_stored_as_a_python_number():
    config = TrainConfig(seed=np.int64(1), lr=np.float64(0.5))
    assert type(config.seed) is int and type(config.lr) is float
    assert config.to_dict()["seed"] == 1


# -- refusals: what used to be accepted, guessed at or answered with a traceback ----------------


def sam_state(rho):
    opt = sam()
    state = opt.state_dict()
    state["base"]["param_groups"][0]["rho"] = rho
    return opt.load_state_dict(state)


def load_changed_state(change, into=None):
    """A stepped SAM(SGD, momentum)'s state, changed, loaded into a fresh SAM (``into``).
    The optimizer loaded into must be left as it was: nothing is loaded unless all is valid."""
    model = torch.nn.Linear(2, 1)
    opt = SAM(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    opt.first_step()
    model(torch.ones(1, 2)).sum().backward()
    opt.second_step()
    state = opt.state_dict()
    change(state)
    target = into() if into else SAM(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
    before = target.state_dict()
    try:
        target.load_state_dict(state)
    finally:
        assert repr(target.state_dict()) == repr(before)


def adam_state(state):
    adam = SAM(torch.nn.Linear(2, 1).parameters(), torch.optim.Adam, lr=0.1)
    state.clear()
    state.update(adam.state_dict())


def climb_twice():
    model = torch.nn.Linear(2, 1)
    opt = SAM(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    opt.first_step(zero_grad=False)
    opt.first_step()


def truncated_cifar10_batch(tmp, monkeypatch):
    """A batch cut short after its md5 was taken: the md5 matches, the pickle is damaged."""
    from hashlib import md5

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "data"))
    from fake_cifar import write_fake_cifar10

    fake = write_fake_cifar10(tmp)
    batch = fake.folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    data.load_cifar10(fake.root, md5={**fake.md5, batch.name: md5(batch.read_bytes())
                                      .hexdigest()})


def bad_jpeg_npz(tmp, arrays: dict | None):
    path = tmp / "cifar10-jpeg.npz"
    if arrays is None:
        path.write_bytes(b"garbage")
    else:
        np.savez(path, **arrays)
    data.load_cifar10_jpeg("train", 2, path=path, cache=False)


JPEG_PARTS = dict(train_jpeg=np.zeros(3, np.uint8), train_offsets=np.array([0, 1, 3]))


def corrupt_cifar10_offline(tmp, monkeypatch):
    import urllib.error
    import urllib.request

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "data"))
    from fake_cifar import write_fake_cifar10

    fake = write_fake_cifar10(tmp)
    (fake.folder / "data_batch_2").write_bytes(b"damaged")

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    data.load_cifar10(fake.root, download=True, md5=fake.md5)


def eig_of_nan_weights():
    model, batches = tiny_problem()
    with torch.no_grad():
        model.weight[0, 0] = NAN
    sharpness.top_eigenvalues(model, F.cross_entropy, batches)


def eig_of_nan_inputs():
    model, [(x, y)] = tiny_problem()
    x[3, 1] = NAN
    sharpness.top_eigenvalues(model, F.cross_entropy, [(x, y)], method="power")


def interpolate_to_nan():
    from samlab import landscape

    model, batches = tiny_problem()
    broken = torch.nn.Linear(3, 2)
    with torch.no_grad():
        broken.weight[0, 1] = NAN
    landscape.interpolate(model, broken, batches, [0.0, 1.0])


def cuda_on_a_machine_without_one(tmp):
    from samlab.train import Trainer

    Trainer(TrainConfig(dataset="digits", model="mlp", device="cuda", runs_dir=str(tmp)))


REFUSALS = [
    ("phase_diagram of a list of methods",
     lambda t, m: toy.phase_diagram(QUAD, ["sam", "sgd"], [0.1], [0.1], [1, 1], 5),
     ValueError, "method must be one method name"),
    ("angle=nan", lambda t, m: toy.ConvexQuadratic(angle=NAN), ValueError,
     "angle must be a finite number, got nan"),
    ("eigenvalues=5", lambda t, m: toy.ConvexQuadratic(eigenvalues=5), ValueError,
     "eigenvalues must be two numbers > 0, got 5"),
    ("noise=[...]", lambda t, m: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], 5, noise=[0.1]),
     ValueError, "noise must be a finite number >= 0, got [0.1]"),
    ("tol='x'", lambda t, m: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], 5, tol="x"), ValueError,
     "tol must be a finite number > 0, got 'x'"),
    ("seed='a'", lambda t, m: toy.run(QUAD, "sam", 0.1, 0.1, [1, 1], 5, seed="a"), ValueError,
     "seed must be an integer >= 0, got 'a'"),
    ("landscape=None", lambda t, m: toy.run(None, "sam", 0.1, 0.1, [1, 1], 5), ValueError,
     "landscape must be a samlab.toy landscape"),
    ("broadcast mismatch", lambda t, m: toy.run(QUAD, ["sam", "gd", "usam"], [0.1, 0.2], 0.1,
                                                [1, 1], 5),
     ValueError, "method, lr, rho and x0 must broadcast against each other, got shapes "
                 "method (3,), lr (2,)"),
    ("a run too big for memory", lambda t, m: toy.run(QUAD, "sam", np.full((2000, 2000), 0.1),
                                                      0.1, [1, 1], 500, max_bytes=2**30),
     MemoryError, "this call needs about 180.4 GiB for 4,000,000 runs of 500 steps"),
    ("Playground(steps=1.5)", lambda t, m: Playground(QUAD, steps=1.5), ValueError,
     "steps must be an integer in 1..1000, got 1.5"),
    ("Playground(methods=adam)", lambda t, m: Playground(QUAD, methods=("sam", "adam")),
     ValueError, "got 'adam'"),
    ("SAM(method='adam')", lambda t, m: sam(method="adam"), ValueError,
     "method must be one of 'sgd', 'gd', 'sam'"),
    ("a loaded rho = -5", lambda t, m: sam_state(-5.0), ValueError,
     "rho must be a finite number >= 0, got -5.0"),
    ("first_step twice", lambda t, m: climb_twice(), RuntimeError,
     "first_step called again before second_step"),
    ("bn_mode='test'", lambda t, m: eig(bn_mode="test"), ValueError,
     "bn_mode must be one of 'eval', 'train', got 'test'"),
    ("corrupt CIFAR-10, offline", corrupt_cifar10_offline, RuntimeError, "data_batch_2: corrupt"),
    ("no JPEG copy", lambda t, m: data.load_cifar10_jpeg(path=t / "nope.npz"), FileNotFoundError,
     "cifar10-jpeg.npz not found"),
    ("trace_probes=1", lambda t, m: TrainConfig(trace_probes=1), ValueError,
     "trace_probes must be 0 (no trace) or an integer >= 2"),
    ("sharpness_k=150", lambda t, m: TrainConfig(sharpness_k=150), ValueError,
     "sharpness_k must be an integer in 1..100, got 150"),
    ("device='potato'", lambda t, m: TrainConfig(device="potato"), ValueError,
     "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'potato'"),
    ("augment='banana'", lambda t, m: TrainConfig(augment="banana"), ValueError,
     "augment must be None, True or False, got 'banana'"),
    ("channels_last='maybe'", lambda t, m: TrainConfig(channels_last="maybe"), ValueError,
     "channels_last must be None, True or False, got 'maybe'"),
    ("nesterov=1", lambda t, m: TrainConfig(nesterov=1), ValueError,
     "nesterov must be True or False, got 1"),
    ("batch_size > n_train", lambda t, m: TrainConfig(n_train=10, batch_size=32), ValueError,
     "batch_size must be at most n_train (10)"),
    ("end_step <= switch_step", lambda t, m: sam(switch_step=5, end_step=5), ValueError,
     "end_step must be an integer > switch_step (5), got 5"),
    ("end_step with switch_epoch", lambda t, m: sam(switch_epoch=5, end_step=50), ValueError,
     "end_step counts steps but switch_epoch counts epochs"),
    ("end_epoch > epochs", lambda t, m: TrainConfig(method="sam", epochs=10, end_epoch=11),
     ValueError, "end_epoch must be an integer <= epochs (10), got 11"),
    ("end_epoch <= switch_epoch",
     lambda t, m: TrainConfig(method="sam", switch_epoch=150, end_epoch=150), ValueError,
     "end_epoch must be an integer > switch_epoch (150), got 150"),
    ("end_epoch with sgd", lambda t, m: TrainConfig(end_epoch=5), ValueError,
     "end_epoch needs a SAM-family method to switch back from"),
    ("switch_log_steps without a switch",
     lambda t, m: TrainConfig(method="sam", switch_log_steps=50), ValueError,
     "switch_log_steps needs switch_epoch"),
    ("switch_log_sharpness_every without a window",
     lambda t, m: TrainConfig(method="sam", switch_epoch=1, switch_log_sharpness_every=5),
     ValueError, "switch_log_sharpness_every needs switch_log_steps > 0"),
    ("sharpness_subset_order='sorted'",
     lambda t, m: TrainConfig(sharpness_subset_order="sorted"), ValueError,
     "sharpness_subset_order must be one of 'random', 'first', got 'sorted'"),
    ("fixed_subset(order='last')", lambda t, m: subset(order="last"), ValueError,
     "order must be one of 'random', 'first', got 'last'"),
    ("protocol='foret2021'", lambda t, m: TrainConfig.from_protocol("foret2021"), ValueError,
     "protocol must be one of 'samlab', 'zhou2025', got 'foret2021'"),
    ("λ_max of NaN weights", lambda t, m: eig_of_nan_weights(), FloatingPointError,
     "the Hessian-vector product 1 is not finite (8 of 8 entries are nan or inf)"),
    ("λ_max of NaN inputs", lambda t, m: eig_of_nan_inputs(), FloatingPointError,
     "is not finite"),
    ("SAM(Adam)'s state into SAM(SGD)", lambda t, m: load_changed_state(adam_state),
     ValueError, "this checkpoint's base optimizer has amsgrad, betas"),
    ("state['samlab'] = {}", lambda t, m: load_changed_state(
        lambda s: s.update(samlab={})), ValueError,
     "state_dict['samlab'] must hold steps_taken, epoch, switched"),
    ("steps_taken = -5", lambda t, m: load_changed_state(
        lambda s: s["samlab"].update(steps_taken=-5)), ValueError,
     "steps_taken must be an integer >= 0, got -5"),
    ("epoch = 'x'", lambda t, m: load_changed_state(lambda s: s["samlab"].update(epoch="x")),
     ValueError, "epoch must be None or an integer >= 0, got 'x'"),
    ("a momentum buffer of another shape", lambda t, m: load_changed_state(
        lambda s: None, into=lambda: SAM(torch.nn.Linear(3, 1).parameters(), lr=0.1,
                                         momentum=0.9)), ValueError,
     "holds momentum_buffer of shape (1, 2) for parameter 0, of shape (1, 3)"),
    ("a truncated CIFAR-10 batch with a matching md5", truncated_cifar10_batch, RuntimeError,
     "data_batch_3 does not unpickle (UnpicklingError"),
    ("a JPEG npz that is no npz", lambda t, m: bad_jpeg_npz(t, None), ValueError,
     "cifar10-jpeg.npz is not a valid cifar10-jpeg.npz: not an npz archive of arrays"),
    ("a JPEG npz without labels", lambda t, m: bad_jpeg_npz(t, JPEG_PARTS), ValueError,
     "is not a valid cifar10-jpeg.npz: it lacks train_labels"),
    ("a JPEG npz of other labels", lambda t, m: bad_jpeg_npz(
        t, {**JPEG_PARTS, "train_labels": np.zeros(5, np.int64)}), ValueError,
     "its train arrays do not fit together (5 labels, 3 offsets)"),
    ("a JPEG npz whose images do not decode", lambda t, m: bad_jpeg_npz(
        t, {**JPEG_PARTS, "train_labels": np.zeros(2, np.int64)}), ValueError,
     "is not a valid cifar10-jpeg.npz: train image"),
    ("SAM(LBFGS)", lambda t, m: SAM(torch.nn.Linear(2, 1).parameters(), torch.optim.LBFGS,
                                    lr=0.1), ValueError,
     "base_optimizer must be an optimizer whose step needs no closure"),
    ("interpolate to NaN weights", lambda t, m: interpolate_to_nan(), ValueError,
     "model_b must have finite weights, got nan in weight (1 of 6 entries)"),
    ("n_val = the whole training pool", lambda t, m: data.load_dataset("digits", n_val=1437),
     ValueError, "n_val must be smaller than the 1437 training images of digits, so that "
                 "some are left to train on, got 1437"),
    ("Playground('saddle')", lambda t, m: Playground("saddle"), ValueError,
     "landscape must be a samlab.toy landscape such as toy.BoundedSaddle() (an instance, "
     "not a name), got 'saddle'"),
    ("Playground(x0=(1,))", lambda t, m: Playground(QUAD, x0=(1,)), ValueError,
     "x0 must be two finite numbers (x, y), got (1,)"),
    ("Playground(x0=(1, 2, 3))", lambda t, m: Playground(QUAD, x0=(1, 2, 3)), ValueError,
     "x0 must be two finite numbers (x, y), got (1, 2, 3)"),
    ("Playground(x0=(1, nan))", lambda t, m: Playground(QUAD, x0=(1, NAN)), ValueError,
     "x0 must be two finite numbers (x, y), got (1, nan)"),
]
if not torch.cuda.is_available():
    REFUSALS.append(("device='cuda' without one", lambda t, m: cuda_on_a_machine_without_one(t),
                     ValueError, "device must be 'cpu' or 'auto' on this machine"))


@pytest.mark.parametrize("case, call, kind, fragment", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refused_input_says_what_and_why(case, call, kind, fragment, tmp_path, monkeypatch):
    with pytest.raises(kind) as err:
        call(tmp_path, monkeypatch)
    assert fragment in str(err.value)


CLI_REFUSALS = [
    (["--trace-probes", "1"], "trace_probes must be 0 (no trace)"),
    (["--sharpness-k", "150"], "sharpness_k must be an integer in 1..100"),
    (["--batch-size", "5000"], "batch_size must be at most the 1257 training images"),
    (["--device", "potato"], "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    (["--method", "adam"], "method must be one of"),
    (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    (["--augment", "banana"], "unrecognized arguments: banana"),
    (["--channels-last", "maybe"], "unrecognized arguments: maybe"),
    (["--name", ".."], "name must be a directory name"),
    (["--config", "/nonexistent/config.json"], "no config file at /nonexistent/config.json"),
    (["--protocol", "foret2021"], "protocol must be one of 'samlab', 'zhou2025', got 'foret2021'"),
    (["--method", "sam", "--end-epoch", "2"], "end_epoch must be an integer <= epochs (1), got 2"),
    (["--switch-log-steps", "10"], "switch_log_steps needs switch_epoch"),
    (["--sharpness-subset-order", "sorted"], "sharpness_subset_order must be one of"),
    (["--n-val", "1437"], "n_val must be smaller than the 1437 training images of digits"),
    (["--protocol", "zhou2025", "--epochs", "3"], "switch_epoch must be <= epochs (3), got 150 "
     "(switch_epoch = 150 comes from --protocol zhou2025: give --switch-epoch to change it)"),
    (["--protocol", "zhou2025", "--method", "sgd", "--epochs", "200"], "got method='sgd' "
     "(switch_epoch = 150 "
     "comes from --protocol zhou2025: give --switch-epoch to change it)"),
]


@pytest.mark.parametrize("flags, fragment", CLI_REFUSALS,
                         ids=[" ".join(f) for f, _ in CLI_REFUSALS])
def test_samlab_train_refuses_bad_input_in_one_line_with_status_2(flags, fragment, tmp_path,
                                                                   capsys):
    from samlab.cli import main

    with pytest.raises(SystemExit) if fragment.startswith(("argument", "unrecognized")) \
            else nullcontext() as exit_:
        status = main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1",
                       "--runs-dir", str(tmp_path), "--no-progress", *flags])
    status = exit_.value.code if exit_ is not None else status
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "error: " in err and fragment in err, err
    assert "Traceback" not in err
