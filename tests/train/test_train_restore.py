"""load_model gives back the network a run trained, exactly, for analysis after training."""

from __future__ import annotations

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
