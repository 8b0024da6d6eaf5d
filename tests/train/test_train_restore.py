"""load_model gives back the network a run trained, exactly, for analysis after training."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from train_tools import digits_config

from samlab.data import to_tensor
from samlab.train import Trainer, load_model


def test_load_model_returns_the_trained_weights_in_eval_mode(tmp_path):
    trainer = Trainer(digits_config(tmp_path, epochs=2), progress=False, report=False)
    result = trainer.fit()
    for run in (result, result.run_dir, str(result.run_dir)):
        model, data = load_model(run)
        assert not model.training
        trained = trainer.model.state_dict()
        for key, value in model.state_dict().items():
            assert torch.equal(value, trained[key]), key
    # It is the network the records describe: its test accuracy is the recorded one.
    model, data = load_model(result, data=data)
    x = to_tensor(data.test_images, mean=data.mean, std=data.std)
    with torch.no_grad():
        correct = (model(x).argmax(1) == torch.as_tensor(data.test_labels)).double().mean()
    assert float(correct) == pytest.approx(result.final("test_acc"), abs=1e-9)


def test_load_model_names_a_directory_that_holds_no_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="is it a samlab run directory"):
        load_model(tmp_path)


def exact_lambda_max(model, batches):
    """The top eigenvalue of the dense Hessian of the mean cross-entropy over ``batches``."""
    from torch.func import functional_call, hessian

    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().double().reshape(-1) for _, p in model.named_parameters()])
    model = model.double()

    def loss(w):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = w[i:i + s.numel()].reshape(s)
            i += s.numel()
        return torch.nn.functional.cross_entropy(functional_call(model, params, (x.double(),)), y)

    from scipy.sparse.linalg import eigsh  # ARPACK on the dense matrix: no samlab code

    return float(eigsh(hessian(loss)(flat).numpy(), k=1, which="LA")[0][0])


def test_lambda_max_of_a_run_is_the_recorded_value_and_the_exact_hessians(tmp_path):
    from samlab.train import lambda_max, sharpness_batches

    config = digits_config(tmp_path, epochs=2, sharpness_every=2, sharpness_subset=96)
    result = Trainer(config, progress=False, report=False).fit()
    measured = lambda_max(result)
    assert measured == result.final("lambda_max")  # what the trainer measured, to the bit
    model, data = load_model(result)
    exact = exact_lambda_max(model, sharpness_batches(config, data))
    assert measured == pytest.approx(exact, rel=1e-3)
    # Another protocol's subset (the first 96 images, not a seeded draw) is another loss:
    first = dataclasses.replace(config, sharpness_subset_order="first")
    exact_first = exact_lambda_max(model, sharpness_batches(first, data))
    assert lambda_max(result.run_dir, measured_as=first) == pytest.approx(exact_first, rel=1e-3)
    assert abs(exact_first - exact) > 1e-3 * exact
