"""Protocols by name (docs/training.md#protocols): ``TrainConfig.from_protocol("zhou2025")``
and ``samlab train --protocol zhou2025`` are the late-phase authors' code defaults (Zhou et
al., ICLR 2025); overrides win. Their sharpness subset is the first N training images in
consecutive batches, which ``fixed_subset(order="first")`` and the trainer take.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from train_tools import StopAfterEpochs
from train_truth import load_weights_only, normalize

from samlab.cli import main
from samlab.data import fixed_subset
from samlab.train import TrainConfig, Trainer
from samlab.train.protocols import PROTOCOLS

#: Zhou et al.'s ERM_to_SAM.py and flatness.py defaults, written out from their code.
ZHOU2025 = {
    "n_val": 0,
    "epochs": 160,
    "lr": 0.01,
    "batch_size": 128,
    "weight_decay": 1e-4,
    "momentum": 0.9,
    "label_smoothing": 0.1,
    "schedule": "step",
    "step_epochs": [80, 160],
    "step_gamma": 0.1,
    "method": "sam",
    "rho": 2.0,
    "switch_epoch": 150,
    "end_epoch": None,
    "reset_on_switch": True,
    "sharpness_subset": 5000,
    "sharpness_subset_order": "first",
    "sharpness_k": 2,
    "sharpness_bn_mode": "train",
}


def test_zhou2025_is_the_authors_code_defaults_field_by_field():
    config = TrainConfig.from_protocol("zhou2025")
    for field, value in ZHOU2025.items():
        assert getattr(config, field) == value, field
    assert PROTOCOLS["zhou2025"] == ZHOU2025


def test_fields_a_protocol_does_not_name_keep_samlabs_defaults():
    config, default = TrainConfig.from_protocol("zhou2025"), TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name not in ZHOU2025:
            assert getattr(config, f.name) == getattr(default, f.name), f.name


def test_the_samlab_protocol_is_trainconfigs_own_defaults():
    assert PROTOCOLS["samlab"].keys() == ZHOU2025.keys()
    assert TrainConfig.from_protocol("samlab") == TrainConfig()


def test_overrides_win_over_the_protocol():
    config = TrainConfig.from_protocol("zhou2025", model="small_cnn", rho=0.5, epochs=200)
    assert (config.model, config.rho, config.epochs) == ("small_cnn", 0.5, 200)
    assert config.lr == 0.01 and config.switch_epoch == 150


def test_a_protocol_hands_out_copies():
    TrainConfig.from_protocol("zhou2025").step_epochs.append(120)
    assert PROTOCOLS["zhou2025"]["step_epochs"] == [80, 160]


def test_an_unknown_protocol_is_refused_listing_the_known_ones():
    with pytest.raises(ValueError) as err:
        TrainConfig.from_protocol("foret2021")
    assert str(err.value) == "protocol must be one of 'samlab', 'zhou2025', got 'foret2021'"


def test_an_unknown_override_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown config fields \\['learning_rate'\\]"):
        TrainConfig.from_protocol("zhou2025", learning_rate=0.1)


# -- samlab train --protocol --------------------------------------------------------------------

SMALL = ["--dataset", "digits", "--model", "mlp", "--epochs", "2", "--switch-epoch", "1",
         "--batch-size", "64", "--no-progress"]


def test_samlab_train_protocol_starts_from_the_protocol_and_flags_override_it(tmp_path):
    assert main(["train", "--protocol", "zhou2025", "--name", "Z", "--runs-dir",
                 str(tmp_path), *SMALL]) == 0
    config = TrainConfig.load(tmp_path / "Z" / "config.json")
    assert config == TrainConfig.from_protocol(
        "zhou2025", name="Z", runs_dir=str(tmp_path), dataset="digits", model="mlp",
        epochs=2, switch_epoch=1, batch_size=64)
    assert load_weights_only(tmp_path / "Z" / "checkpoint.pt")["epoch"] == 2


def test_the_same_command_with_resume_added_continues_a_protocol_run(tmp_path, capsys):
    config = TrainConfig.from_protocol("zhou2025", name="Z", runs_dir=str(tmp_path),
                                       dataset="digits", model="mlp", epochs=2,
                                       switch_epoch=1, batch_size=64)
    Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False).fit()
    status = main(["train", "--protocol", "zhou2025", "--name", "Z", "--runs-dir",
                   str(tmp_path), *SMALL, "--resume", str(tmp_path / "Z")])
    assert status == 0, capsys.readouterr().err
    assert load_weights_only(tmp_path / "Z" / "checkpoint.pt")["epoch"] == 2


def test_protocol_and_config_together_are_refused(tmp_path, capsys):
    TrainConfig().save(tmp_path / "config.json")
    status = main(["train", "--protocol", "zhou2025", "--config", str(tmp_path / "config.json"),
                   "--runs-dir", str(tmp_path)])
    assert status == 2
    assert "give --protocol or --config, not both" in capsys.readouterr().err


# -- the first N, in order ----------------------------------------------------------------------


def test_fixed_subset_first_is_the_first_n_examples_in_order_in_consecutive_batches():
    x, y = torch.arange(40.0).view(20, 2), torch.arange(20)
    batches = fixed_subset((x, y), n=10, batch_size=4, order="first", seed=7)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(torch.cat([b[0] for b in batches]), x[:10])


class Numbers(torch.utils.data.Dataset):
    """Item ``i`` is ``([i], i)``."""

    def __len__(self):
        return 9

    def __getitem__(self, i):
        return torch.tensor([float(i)]), torch.tensor(i)


def test_fixed_subset_first_takes_a_map_style_dataset_in_order_too():
    dataset = Numbers()
    batches = fixed_subset(dataset, n=5, batch_size=2, order="first")
    assert [b[1].tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_fixed_subset_by_default_is_the_seeded_draw_it_always_was():
    x, y = torch.arange(40.0).view(20, 2), torch.arange(20)
    drawn = torch.randperm(20, generator=torch.Generator().manual_seed(3))[:10]
    batches = fixed_subset((x, y), n=10, seed=3, batch_size=4)
    assert torch.cat([b[1] for b in batches]).tolist() == drawn.tolist()
    assert [b[1].tolist() for b in batches] == \
        [b[1].tolist() for b in fixed_subset((x, y), n=10, seed=3, batch_size=4,
                                            order="random")]


def test_fixed_subset_refuses_an_unknown_order():
    with pytest.raises(ValueError, match="order must be one of 'random', 'first', got 'last'"):
        fixed_subset((torch.zeros(4, 1), torch.zeros(4)), n=2, order="last")


def test_the_trainers_first_subset_is_the_datasets_first_images_in_batches_of_the_run(
        tmp_path):
    config = TrainConfig(name="F", dataset="digits", model="mlp", method="sam", n_val=0,
                         batch_size=32, sharpness_subset=100, sharpness_subset_order="first",
                         sharpness_bn_mode="train", runs_dir=str(tmp_path))
    trainer = Trainer(config, progress=False)
    try:
        result = trainer.measure_sharpness()
        d = trainer.data
        # With no validation split, the training images are all the non-test digits, and
        # the dataset's order is theirs: train_index is a permutation of 0..N-1.
        assert sorted(d.train_index) == list(range(len(d.train_labels)))
        first = np.argsort(d.train_index)[:100]
        batches = trainer._hessian_batches
        assert [len(yb) for _, yb in batches] == [32, 32, 32, 4]
        assert torch.equal(torch.cat([yb for _, yb in batches]),
                           torch.as_tensor(d.train_labels[first]))
        assert torch.allclose(torch.cat([xb for xb, _ in batches]),
                              normalize(d.train_images[first], d.mean, d.std))
        assert result["sharpness_bn_mode"] == "train" and result["lambda_max"] > 0
    finally:
        trainer.close()
