"""Late-phase SAM (Zhou et al.; docs/methods.md#late-phase-switching): with ``switch_epoch=s``,
epochs before ``s`` are
plain SGD (bit-identical to ``method="sgd"``), SAM from ``s`` on; the records say which."""

from __future__ import annotations

import pytest
import torch
from train_tools import WeightsAfterEachEpoch, digits_config
from train_truth import assert_identical, read_jsonl

from samlab.train import Trainer

SWITCH, EPOCHS = 2, 3


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The late-phase run and a plain SGD run of the same config, weights after each epoch."""
    out = {}
    for name, fields in (("late", dict(method="sam", switch_epoch=SWITCH)),
                         ("sgd", dict(method="sgd"))):
        runs_dir = tmp_path_factory.mktemp(name)
        spy = WeightsAfterEachEpoch()
        config = digits_config(runs_dir, name, epochs=EPOCHS, n_train=640, **fields)
        Trainer(config, callbacks=[spy], progress=False).fit()
        out[name] = (read_jsonl(config.run_dir / "metrics.jsonl"), spy.weights)
    return out


def test_records_before_the_switch_say_sgd_and_have_no_gamma(runs):
    records = runs["late"][0]
    for r in records[:SWITCH]:
        assert r["sam_active"] is False and "gamma_mean" not in r


def test_records_from_the_switch_on_say_sam_and_have_gamma(runs):
    records = runs["late"][0]
    assert len(records) == EPOCHS
    for r in records[SWITCH:]:
        assert r["sam_active"] is True and r["gamma_mean"] > 0


def test_epochs_before_the_switch_are_exactly_plain_sgd(runs):
    late, sgd = runs["late"][1], runs["sgd"][1]
    for epoch in range(SWITCH):
        assert_identical(late[epoch], sgd[epoch], f"after epoch {epoch}")
    for key in ("train_loss", "test_loss", "grad_norm_mean"):
        assert [r[key] for r in runs["late"][0][:SWITCH]] == \
            [r[key] for r in runs["sgd"][0][:SWITCH]]


def test_from_the_switch_on_the_steps_are_sam_not_sgd(runs):
    late, sgd = runs["late"][1], runs["sgd"][1]
    assert late[SWITCH].keys() == sgd[SWITCH].keys()
    assert not any(torch.equal(late[SWITCH][k], sgd[SWITCH][k]) for k in late[SWITCH])


@pytest.mark.parametrize("fields, active", [
    (dict(switch_epoch=1, end_epoch=2), [False, True, False]),
    (dict(end_epoch=1), [True, False, False]),
], ids=["sgd, sam, sgd", "sam from the start, then sgd"])
def test_with_end_epoch_the_epochs_from_it_on_are_plain_sgd_again(tmp_path, fields, active):
    config = digits_config(tmp_path, "back", epochs=EPOCHS, n_train=640, method="sam",
                           **fields)
    trainer = Trainer(config, progress=False)
    assert trainer.optimizer.end_epoch == fields["end_epoch"]
    trainer.fit()
    records = read_jsonl(config.run_dir / "metrics.jsonl")
    assert [r["sam_active"] for r in records] == active
    assert [("gamma_mean" in r) for r in records] == active


def test_a_runs_label_names_its_switches(tmp_path):
    from samlab.plot import run_label

    late = digits_config(tmp_path, name="late", switch_epoch=2, epochs=4)
    both = digits_config(tmp_path, name="both", switch_epoch=1, end_epoch=3, epochs=4)
    assert run_label(late) == "late (SGD→SAM@2, ρ=0.05)"
    assert run_label(both) == "both (SGD→SAM@1→SGD@3, ρ=0.05)"


def test_a_runs_cost_counts_two_passes_per_sam_step_and_one_per_sgd_step(tmp_path):
    from train_tools import steps_per_epoch

    config = digits_config(tmp_path, switch_epoch=1, epochs=3)
    result = Trainer(config, progress=False, report=False).fit()
    assert result.passes == steps_per_epoch(config) * (1 + 2 + 2)
    sgd = Trainer(digits_config(tmp_path, name="sgd", method="sgd", epochs=3), progress=False,
                  report=False).fit()
    assert sgd.passes == steps_per_epoch(config) * 3
    assert 0 < sgd.train_time == sum(r["train_time"] for r in sgd.records
                                     if r["kind"] == "epoch")
