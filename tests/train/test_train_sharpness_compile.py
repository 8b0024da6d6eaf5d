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

EPOCHS = 3


def compiled_flags(tmp_path, name: str, **overrides) -> list[bool]:
    config = digits_config(tmp_path, name, epochs=EPOCHS, sharpness_every=1,
                           sharpness_subset=64, **overrides)
    Trainer(config, progress=False).fit()
    records = read_jsonl(tmp_path / name / "metrics.jsonl")
    assert all(r["sharpness_time"] > 0 and r["lambda_max"] > 0 for r in records)
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


@pytest.mark.parametrize("seconds, left, pays", [(100.0, 2, True), (100.0, 1, False),
                                                 (1.0, 100, False), (0.0, 10**6, False)])
def test_compiling_pays_when_the_time_it_saves_exceeds_what_it_costs(seconds, left, pays):
    saved = left * (1 - hessian.COMPILED_SHARE) * seconds
    assert (saved > hessian.COMPILE_SECONDS) == pays
    assert sharpness.compile_pays_off(seconds, left) == pays
