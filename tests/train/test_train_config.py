"""TrainConfig: validation names the field, the value and what is allowed; JSON round trip;
every run directory holds its config.json."""

from __future__ import annotations

import dataclasses
import json

import pytest
from train_tools import digits_config

from samlab.train import TrainConfig, Trainer
from samlab.train import config as config_module
from samlab.train.config import HELP
from samlab.train.sweep import config_key


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
    (dict(epochs=10, method="sam", end_epoch=11), ["end_epoch", "11", "<= epochs (10)"]),
    (dict(method="sam", switch_epoch=5, end_epoch=5), ["end_epoch", "> switch_epoch (5)", "5"]),
    (dict(method="sgd", end_epoch=5), ["end_epoch", "'sgd'", "SAM-family", "sam"]),
    (dict(method="sam", switch_log_steps=50), ["switch_log_steps needs switch_epoch"]),
    (dict(method="sam", switch_epoch=1, switch_log_sharpness_every=5),
     ["switch_log_sharpness_every needs switch_log_steps > 0"]),
    (dict(sharpness_subset_order="sorted"),
     ["sharpness_subset_order", "'random'", "'first'", "'sorted'"]),
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


def test_every_field_has_one_line_of_help_for_samlab_train():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(HELP) == names
    assert all(text and "\n" not in text for text in HELP.values())


def test_a_sweeps_run_keys_do_not_change_when_fields_are_added_at_their_default():
    # The keys these configs had before end_epoch, switch_log_* and sharpness_subset_order
    # existed: a sweep run trained then is still found.
    assert config_key(TrainConfig()) == "d2f2eeec"
    assert config_key(TrainConfig(method="sam", switch_epoch=3, dataset="digits")) == "d4ed2e34"
    late = TrainConfig(method="sam", switch_epoch=3, dataset="digits", end_epoch=4)
    assert config_key(late) != "d4ed2e34"


def test_the_config_and_the_data_agree_on_the_subset_orders():
    from samlab.data.datasets import SUBSET_ORDERS as DATA_ORDERS

    assert config_module.SUBSET_ORDERS == DATA_ORDERS
