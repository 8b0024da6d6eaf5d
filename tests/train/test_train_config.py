"""TrainConfig: validation names the field, the value and what is allowed; JSON round trip;
every run directory holds its config.json."""

from __future__ import annotations

import json

import pytest
from train_tools import digits_config

from samlab.train import TrainConfig, Trainer


@pytest.mark.parametrize("fields, expected", [
    (dict(method="adam"), ["method", "'adam'", "sgd", "sam", "usam", "ssam", "asam"]),
    (dict(lr=0.0), ["lr", "0.0", "> 0"]),
    (dict(lr=-0.1), ["lr", "-0.1", "> 0"]),
    (dict(lr=float("nan")), ["lr", "nan", "finite"]),
    (dict(epochs=3, method="sam", switch_epoch=5), ["switch_epoch", "5", "<= epochs", "3"]),
    (dict(method="sgd", switch_epoch=1), ["switch_epoch", "'sgd'", "sam"]),
    (dict(epochs=0), ["epochs", "0", ">= 1"]),
    (dict(batch_size=2.5), ["batch_size", "2.5", "integer"]),
    (dict(model="vgg"), ["model", "'vgg'", "resnet20", "small_cnn", "mlp"]),
])
def test_an_invalid_field_is_refused_with_its_name_value_and_what_is_allowed(fields, expected):
    with pytest.raises(ValueError) as err:
        TrainConfig(**fields)
    for text in expected:
        assert text in str(err.value), f"{text!r} missing from: {err.value}"


def test_from_dict_refuses_an_unknown_field_by_name_and_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        TrainConfig.from_dict({"lr": 0.1, "learning_rate": 0.1})
    assert "learning_rate" in str(err.value)
    assert "known fields" in str(err.value) and "'lr'" in str(err.value)


def test_a_config_changed_after_creation_is_checked_again_by_the_trainer(tmp_path):
    config = digits_config(tmp_path)
    config.lr = -1.0
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1.0"):
        Trainer(config, progress=False)
    assert not (tmp_path / "run").exists()


def test_save_then_load_gives_an_equal_config(tmp_path):
    config = TrainConfig(name="late", model="small_cnn", dataset="digits", n_train=300,
                         n_val=50, method="asam", rho=1.0, lr=0.02, epochs=7,
                         schedule="step", step_epochs=[3, 5], step_gamma=0.2,
                         switch_epoch=4, reset_on_switch=True, label_smoothing=0.1,
                         channels_last=False, augment=None, sharpness_every=2, seed=3)
    config.save(tmp_path / "config.json")

    loaded = TrainConfig.load(tmp_path / "config.json")

    assert loaded == config
    assert json.loads((tmp_path / "config.json").read_text()) == config.to_dict()


def test_every_run_directory_holds_the_config_that_made_it(tmp_path):
    config = digits_config(tmp_path, "with-config", epochs=1, n_train=64)
    Trainer(config, progress=False).fit()
    assert TrainConfig.load(tmp_path / "with-config" / "config.json") == config
