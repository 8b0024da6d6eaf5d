"""sharpness_compile: "auto" measures eagerly first and compiles the later measurements'
Hessian-vector products only when the first one's time says it pays
(docs/sharpness.md#speed); "always" and "never" do as they say."""

from __future__ import annotations

import pytest
from train_tools import digits_config
from train_truth import read_jsonl

from samlab import sharpness
from samlab.sharpness import hessian
from samlab.train import Trainer
from samlab.train.trainer import Callback

EPOCHS = 3


def compiled_flags(tmp_path, name: str, **overrides) -> list[bool]:
    config = digits_config(tmp_path, name, epochs=EPOCHS, sharpness_every=1,
                           sharpness_subset=64, **overrides)
    Trainer(config, progress=False).fit()
    records = read_jsonl(tmp_path / name / "metrics.jsonl")
    assert all(r["sharpness_time"] >= r["lambda_max_time"] > 0 and r["lambda_max"] > 0
               for r in records)
    failed = next((r["sharpness_compile_error"] for r in records
                   if "sharpness_compile_error" in r), None)
    if failed:  # compiling is impossible here: the fallback's own test covers that case
        pytest.skip(f"torch.compile does not work on this machine: {failed}")
    return [r["sharpness_compiled"] for r in records]


def test_auto_compiles_from_the_second_measurement_when_compiling_pays(tmp_path, monkeypatch):
    monkeypatch.setattr(hessian, "COMPILE_SECONDS", 0.0)  # compiling costs nothing: it pays
    assert compiled_flags(tmp_path, "pays", sharpness_compile="auto") == [False, True, True]


def test_auto_stays_eager_when_compiling_would_not_pay(tmp_path, monkeypatch):
    monkeypatch.setattr(hessian, "COMPILE_SECONDS", 1e9)
    assert compiled_flags(tmp_path, "eager", sharpness_compile="auto") == [False] * EPOCHS


@pytest.mark.parametrize("setting, flags", [("always", [True] * EPOCHS),
                                            ("never", [False] * EPOCHS)])
def test_always_and_never_do_as_they_say(tmp_path, setting, flags):
    assert compiled_flags(tmp_path, setting, sharpness_compile=setting) == flags


@pytest.mark.parametrize("seconds, left, pays", [(10.0, 3, True), (10.0, 2, False),
                                                 (1.0, 19, False), (1.0, 21, True),
                                                 (0.0, 10**6, False), (10**6, 0, False)])
def test_compiling_pays_when_the_time_it_saves_exceeds_what_it_costs(seconds, left, pays,
                                                                     monkeypatch):
    # Compiled products at half the cost, a compilation of 10 s: each eager second of a
    # measurement left saves half a second.
    monkeypatch.setattr(hessian, "COMPILED_SHARE", 0.5)
    monkeypatch.setattr(hessian, "COMPILE_SECONDS", 10.0)
    assert sharpness.compile_pays_off(seconds, left) == pays


@pytest.mark.parametrize("args, says", [((-1.0, 3), "eager_seconds"),
                                        ((1.0, -1), "measurements_left"),
                                        ((float("nan"), 3), "eager_seconds")])
def test_compile_pays_off_refuses_what_is_not_a_time_or_a_count(args, says):
    with pytest.raises(ValueError, match=says):
        sharpness.compile_pays_off(*args)


def test_a_resumed_run_keeps_the_decision_of_the_run_it_continues(tmp_path, monkeypatch):
    """Compiled and eager products round differently: a run stopped after auto decided
    must not decide again (eagerly, from its first measurement after the resume)."""
    monkeypatch.setattr(hessian, "COMPILE_SECONDS", 0.0)
    config = digits_config(tmp_path, "resumed", epochs=EPOCHS, sharpness_every=1,
                           sharpness_subset=64, sharpness_compile="auto")
    class StopAfterEpoch1(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.request_stop()

    stopped = Trainer(config, progress=False, callbacks=[StopAfterEpoch1()]).fit()
    assert stopped.status != "completed" and stopped.epochs_done == 2
    assert Trainer(config, resume=True, progress=False).fit().status == "completed"
    records = read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
    if any("sharpness_compile_error" in r for r in records):
        pytest.skip("torch.compile does not work on this machine")
    assert [r["sharpness_compiled"] for r in records] == [False, True, True]
