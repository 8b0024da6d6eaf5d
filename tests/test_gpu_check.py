"""``make gpu-check`` cannot rot: its dry run executes every path here, on the CPU.

The dry run is the command a user types (``make gpu-check``, on a machine without CUDA);
the figures differ from a GPU's, the code that makes them does not. Around it: the
prediction of a notebook's total against arithmetic done by hand, the goals against
rows made up for the purpose, and parts that die (a time limit that cannot be met).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import gpu
from benchmarks.common import Row

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, notebook_data_dir, repo_root):
    """The whole dry run, once: ``(exit status, printed text, gpu.json)``."""
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLAB_")}
    if notebook_data_dir is not None:  # the JPEG copy of CIFAR-10, found by the tests' fixture
        env["SAMLAB_DATA"] = str(notebook_data_dir)
    # As a user runs it: make (this interpreter, so as not to touch .venv), no CUDA here.
    done = subprocess.run(["make", "-s", "gpu-check", f"PY={sys.executable}",
                           f"GPU_ARGS=--out {out}"], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout + done.stderr, json.loads(out.read_text())


def test_the_dry_run_passes_and_lists_every_figure(dry_run):
    rc, printed, result = dry_run
    assert rc == 0, printed[-3000:]
    assert result["failed"] == {}
    metrics = [r["metric"] for r in result["rows"]]
    for part in gpu.PARTS:
        for metric, _ in gpu.planned(part):
            assert metric in metrics
            assert f"| {metric} |" in printed  # the table on the terminal lists it
    for goal in ("epoch time, SGD, samlab's best setting", "SAM: baseline / samlab's best",
                 "late SAM (switch at 7/8) total / SGD total",
                 "λ_max measurement / SGD epoch (best setting)"):
        assert goal in metrics
    assert result["machine"]["size"] == "dry" and result["machine"]["device"] == "cpu"


def test_the_compiled_arms_are_skipped_on_a_cpu_with_the_reason(dry_run):
    rows = {r["metric"]: r for r in dry_run[2]["rows"]}
    for setting in gpu.SETTINGS:
        for opt in gpu.OPTIMIZERS:
            row = rows[gpu.epoch_metric(opt, setting.name)]
            if setting.compile:
                assert row["value"] is None and "skipped on a CPU" in row["note"]
            else:  # measured: a positive, finite epoch time
                assert row["value"] > 0 and math.isfinite(row["value"])
    # The goals are a GPU's: stated, not judged, on a CPU.
    assert all(r["ok"] is None for r in dry_run[2]["rows"] if r["goal"] and "real run" not in
               r["metric"])


def test_the_real_run_records_accuracy_and_lambda_max_and_survives_sigterm(dry_run):
    rows = {r["metric"]: r for r in dry_run[2]["rows"]}
    epochs = gpu.SIZES["dry"].real_epochs
    for arm in gpu.OPTIMIZERS:
        for e in range(1, epochs + 1):
            acc = rows[f"real run, {arm}, epoch {e}: test accuracy"]["value"]
            assert 0 <= acc <= 1
        last = rows[f"real run, {arm}, epoch {epochs}: test accuracy"]["note"]
        assert "λ_max" in last and "λ_max not measured" not in last
    resumed = rows["real run, SAM: stopped by SIGTERM and resumed"]
    assert resumed["ok"] is True and "interrupted by SIGTERM" in resumed["note"]
    assert f"epochs recorded {list(range(epochs))}" in resumed["note"]


def test_the_notebook_runs_one_epoch_per_arm_and_predicts_its_total(dry_run):
    rows = {r["metric"]: r for r in dry_run[2]["rows"]}
    for arm in ("SGD", "SAM", "late SAM", "SSAM"):  # SAMLAB_EPOCHS=1: one epoch each
        assert rows[f"notebook 05, {arm}: epoch time"]["value"] > 0
        assert rows[f"notebook 05, {arm}: epoch time"]["note"].startswith("1 epoch(s) run;")
    wall = rows["notebook 05: wall time, one epoch per arm"]["value"]
    predicted = rows["notebook 05: predicted total of its size"]
    # Quick size is two epochs per arm: more than the one-epoch run, less than twice it.
    assert wall < predicted["value"] < 2 * wall
    stated = gpu.stated_total(gpu.NOTEBOOK.read_text(), "quick")
    assert predicted["goal"] == f"<= {stated:g} s (stated)"


def test_predict_adds_each_arms_epochs_and_measurements_by_hand():
    recipe = {"epochs": 16, "sharpness_every": 5}  # λ_max after epochs 5, 10, 15 and 16
    one = dict(step=100, eval_time=1.0)  # 12,800 images an epoch
    arms = {"SGD": dict(one, train_time=2.0, sharpness_time=3.0),
            "SAM": dict(one, train_time=4.0, sharpness_time=3.0),
            "late SAM": dict(one, train_time=4.0, sharpness_time=5.0)}
    wall = 100.0
    spent = (2 + 1 + 3) + (4 + 1 + 3) + (4 + 1 + 5)
    rest = wall - spent
    scale = 45_000 / 12_800
    sgd, sam = 2 * scale + 1, 4 * scale + 1
    expected = rest + 16 * sgd + 16 * sam + (14 * sgd + 2 * sam) + 4 * (3 + 3 + 5)
    assert gpu.predict(recipe, arms, wall, "lab") == pytest.approx(expected)
    # At quick size the images are the recipe's own: no scaling.
    expected_quick = rest + 16 * 3 + 16 * 5 + (14 * 3 + 2 * 5) + 4 * (3 + 3 + 5)
    assert gpu.predict(recipe, arms, wall, "quick") == pytest.approx(expected_quick)


def test_the_stated_totals_are_read_from_the_notebooks_first_screen():
    text = gpu.NOTEBOOK.read_text()
    assert gpu.stated_total(text, "lab") == 15 * 60
    assert gpu.stated_total(text, "quick") == 70
    assert gpu.stated_total(text, "paper") is None


def _epoch_rows(sgd: dict, sam: dict) -> list[Row]:
    rows = [Row(gpu.epoch_metric("SGD", s), v, "s") for s, v in sgd.items()]
    return rows + [Row(gpu.epoch_metric("SAM", s), v, "s") for s, v in sam.items()]


def test_the_goals_take_the_best_setting_and_compare_it_with_the_baseline():
    names = [s.name for s in gpu.SETTINGS]
    rows = _epoch_rows({names[0]: 6.0, names[1]: 1.8, names[2]: None, gpu.BASELINE: 9.0},
                       {names[0]: 12.0, names[1]: 4.4, names[3]: 3.9, gpu.BASELINE: 7.0})
    rows.append(Row("λ_max measurement (top-2 Lanczos)", 2.0, "s"))
    judged = {r.metric: r for r in gpu.goals(rows, cuda=True)}
    assert judged["epoch time, SGD, samlab's best setting"].value == 1.8
    assert judged["epoch time, SGD, samlab's best setting"].ok is True
    assert judged["epoch time, SAM, samlab's best setting"].value == 3.9
    assert judged["SGD: baseline / samlab's best"].value == pytest.approx(5.0)
    assert judged["SAM: baseline / samlab's best"].ok is False  # 7.0 / 3.9 < 2
    # The late phase in one setting (SGD and SAM both measured): 0.875 + 0.125 * 4.4/1.8.
    late = judged["late SAM (switch at 7/8) total / SGD total"]
    assert late.value == pytest.approx(0.875 + 0.125 * 4.4 / 1.8) and late.ok is False
    assert judged["λ_max measurement / SGD epoch (best setting)"].value == pytest.approx(2 / 1.8)
    # On a CPU the same figures are stated, not judged.
    assert all(r.ok is None for r in gpu.goals(rows, cuda=False))


def test_a_part_that_dies_is_recorded_and_the_next_part_still_runs(tmp_path, monkeypatch):
    # Neither part can finish in a second (torch alone takes longer to import): both are
    # killed, both are recorded as failed with every promised figure, the command exits 1.
    sizes = dict(gpu.SIZES)
    sizes["dry"] = gpu.Size(**{**gpu.SIZES["dry"].__dict__,
                               "timeouts": {"epoch": 1, "real": 1, "notebook": 1}})
    monkeypatch.setattr(gpu, "SIZES", sizes)
    out = tmp_path / "gpu.json"
    assert gpu.main(["--dry", "--parts", "epoch", "real", "--out", str(out)]) == 1
    result = json.loads(out.read_text())
    assert set(result["failed"]) == {"epoch", "real"}
    assert all("timed out after 1 s" in why for why in result["failed"].values())
    rows = {r["metric"]: r for r in result["rows"]}
    for part in ("epoch", "real"):
        for metric, _ in gpu.planned(part):
            assert rows[metric]["value"] is None and rows[metric]["ok"] is False
            assert f"the {part} part failed" in rows[metric]["note"]
    assert rows["epoch time, SGD, samlab's best setting"]["note"] == "not measured"


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5"])
def test_a_bad_samlab_epochs_is_an_error_naming_it(monkeypatch, text):
    import samlab

    monkeypatch.setenv("SAMLAB_EPOCHS", text)
    with pytest.raises(ValueError, match=rf"SAMLAB_EPOCHS must be a positive integer .*'{text}'"):
        samlab.epochs_override(12)
    monkeypatch.setenv("SAMLAB_EPOCHS", " 3 ")
    assert samlab.epochs_override(12) == 3
    monkeypatch.delenv("SAMLAB_EPOCHS")
    assert samlab.epochs_override(12) == 12
