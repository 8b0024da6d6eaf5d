"""metrics.jsonl: one record per epoch with the losses, accuracies, timing, lr, the SAM
statistics, and λ_max when due; the numbers agree with an independent evaluation of the
saved checkpoint and with the cosine schedule."""

from __future__ import annotations

import pytest
from train_tools import digits_config, steps_per_epoch
from train_truth import cosine_lr, epoch_records, evaluate, load_weights_only, read_jsonl

from samlab.data import load_dataset
from samlab.models import small_cnn
from samlab.train import Trainer

EPOCHS, SHARPNESS_EVERY = 3, 2


@pytest.fixture(scope="module")
def sam_run(tmp_path_factory):
    """A 3-epoch SAM run of a small CNN (with BatchNorm) on the digits, λ_max every 2 epochs."""
    runs = tmp_path_factory.mktemp("runs")
    config = digits_config(runs, "sam-cnn", model="small_cnn", epochs=EPOCHS,
                           sharpness_every=SHARPNESS_EVERY, sharpness_subset=64, sharpness_k=2)
    result = Trainer(config, progress=False).fit()
    return config, result, read_jsonl(runs / "sam-cnn" / "metrics.jsonl")


@pytest.fixture(scope="module")
def sgd_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    config = digits_config(runs, "sgd", method="sgd", epochs=2)
    Trainer(config, progress=False).fit()
    return read_jsonl(runs / "sgd" / "metrics.jsonl")


def test_there_is_one_epoch_record_per_epoch_in_order(sam_run):
    config, result, records = sam_run
    assert result.status == "completed"
    assert [r["kind"] for r in records] == ["epoch"] * EPOCHS
    assert [r["epoch"] for r in records] == list(range(EPOCHS))
    assert records == result.records


@pytest.mark.parametrize("key", ["train_loss", "train_acc", "val_loss", "val_acc",
                                 "test_loss", "test_acc", "train_time", "eval_time", "lr",
                                 "grad_norm_mean", "gamma_mean"])
def test_every_sam_epoch_record_has(sam_run, key):
    for r in sam_run[2]:
        assert isinstance(r[key], float), (r["epoch"], key, r.get(key))


def test_losses_are_positive_accuracies_are_fractions_and_time_was_spent(sam_run):
    for r in sam_run[2]:
        for split in ("train", "val", "test"):
            assert r[f"{split}_loss"] > 0 and 0 <= r[f"{split}_acc"] <= 1
        assert r["train_time"] > 0 and r["eval_time"] > 0
        assert r["grad_norm_mean"] > 0 and r["gamma_mean"] > 0


def test_the_run_learns_the_digits(sam_run):
    records = sam_run[2]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert records[-1]["test_acc"] > 0.8  # chance is 0.1


def test_lambda_max_and_the_top_eigenvalues_appear_exactly_when_sharpness_is_due(sam_run):
    # Due after epochs 2, 4, ... (every SHARPNESS_EVERY) and after the last one.
    due = [(e + 1) % SHARPNESS_EVERY == 0 or e + 1 == EPOCHS for e in range(EPOCHS)]
    assert due == [False, True, True]
    for r, is_due in zip(sam_run[2], due):
        assert ("lambda_max" in r) == is_due and ("eigenvalues" in r) == is_due
        if is_due:
            assert len(r["eigenvalues"]) == 2
            assert r["lambda_max"] == r["eigenvalues"][0] >= r["eigenvalues"][1]
            assert r["lambda_max"] > 0


def test_sgd_records_the_gradient_norm_but_no_gamma(sgd_run):
    for r in sgd_run:
        assert r["grad_norm_mean"] > 0
        assert "gamma_mean" not in r and r["sam_active"] is False


def test_the_recorded_test_accuracy_is_the_saved_models_accuracy_on_the_test_split(sam_run):
    config, _, records = sam_run
    checkpoint = load_weights_only(config.run_dir / "checkpoint.pt")
    assert checkpoint["epoch"] == EPOCHS
    model = small_cnn(num_classes=10, in_channels=1)
    model.load_state_dict(checkpoint["model"])
    data = load_dataset("digits", split_seed=config.seed)

    loss, acc, _ = evaluate(model, data.test_images, data.test_labels, data.mean, data.std)

    assert records[-1]["test_acc"] == acc
    assert records[-1]["test_loss"] == pytest.approx(loss, rel=1e-5)


def test_the_recorded_lr_is_the_cosine_rate_of_each_epochs_last_step(sam_run):
    # An epoch record holds the lr its last step used: η·½(1 + cos(π t/T)) with
    # t = steps done before that step, T = all steps.
    config, _, records = sam_run
    n = steps_per_epoch(config)
    for r in records:
        assert r["step"] == (r["epoch"] + 1) * n
        assert r["lr"] == pytest.approx(cosine_lr(config.lr, r["step"] - 1, EPOCHS * n),
                                        rel=1e-12, abs=1e-15)


def test_step_records_follow_the_cosine_schedule_too(tmp_path):
    config = digits_config(tmp_path, "steps", method="sgd", epochs=2, n_train=320, log_every=3)
    Trainer(config, progress=False).fit()
    n = steps_per_epoch(config)
    steps = [r for r in read_jsonl(config.run_dir / "metrics.jsonl") if r["kind"] == "step"]

    assert [r["step"] for r in steps] == list(range(3, 2 * n + 1, 3))
    for r in steps:
        assert r["epoch"] == (r["step"] - 1) // n
        assert r["lr"] == pytest.approx(cosine_lr(config.lr, r["step"] - 1, 2 * n), abs=1e-15)
    assert epoch_records(read_jsonl(config.run_dir / "metrics.jsonl"))[-1]["lr"] > 0.0
