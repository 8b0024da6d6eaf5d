"""``make gpu-check``: the GPU half of samlab, measured in one command of about 6 minutes.

``python -m benchmarks gpu`` runs three parts, each in its own process with its own time
box, so that a part that fails or hangs is recorded and the others still run:

- ``epoch``: ResNet-20's epoch time (45,000 images, batch 128) for SGD and SAM in each
  setting (eager fp32; channels_last + bf16 autocast; ``torch.compile``; CUDA graphs through
  ``torch.compile(mode="reduce-overhead")``), the baseline a researcher would write
  (torchvision ``DataLoader`` with CPU augmentation, a per-tensor-loop SAM, fp32), and one
  λ_max measurement (top-2 Lanczos);
- ``real``: ``samlab train`` for a few epochs on the JPEG copy of CIFAR-10, SGD and SAM,
  test accuracy and λ_max every epoch, the SAM run stopped by SIGTERM and resumed;
- ``notebook``: notebook 05 executed headless with every arm cut to one epoch
  (``SAMLAB_EPOCHS=1``), its time per epoch per arm, and from it the total of the size it
  ran at, predicted beside the total the notebook states.

Then the goals (docs/training.md#speed) are checked against the measured rows, and
everything goes to ``benchmarks/results/gpu.json`` and to a table on the terminal. Without
CUDA (``--dry``, the default there) the same code runs at a dry size (a few steps, a few
hundred images, the notebook's quick path) so that ``make test`` keeps every path working;
the compiled arms are skipped with the reason in the JSON. Exit status 1 if a part failed.

To run it on a lent GPU machine, see ``benchmarks/gpu_bundle.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from samlab.files import atomic_write_text

from .common import REPO, RESULTS, Row, jpeg_cifar10, machine

BATCH = 128
EPOCH_IMAGES = 45_000
STEPS_PER_EPOCH = EPOCH_IMAGES // BATCH  # 351
SWITCH = 0.875                           # late phase: SAM for the last eighth of the epochs
NOTEBOOK = REPO / "notebooks" / "05_resnet20_cifar10_live.py"


@dataclass(frozen=True)
class Size:
    steps: int          # timed steps per arm
    warmup: int         # untimed steps per arm first (the compile happens here)
    lanczos_images: int
    real_epochs: int
    real_train: int | None   # training images of the real run (None: the whole split)
    real_test: int | None
    real_subset: int         # images of the real run's Hessian subset
    real_sharpness_every: int
    timeouts: dict[str, int]  # seconds per part


SIZES = {
    "gpu": Size(steps=100, warmup=15, lanczos_images=5000, real_epochs=4, real_train=None,
                real_test=None, real_subset=5000, real_sharpness_every=1,
                timeouts={"epoch": 250, "real": 120, "notebook": 170}),
    # A CPU in CI: every path once, in about a minute and a half.
    "dry": Size(steps=1, warmup=1, lanczos_images=32, real_epochs=3, real_train=256,
                real_test=256, real_subset=32, real_sharpness_every=3,
                timeouts={"epoch": 300, "real": 300, "notebook": 400}),
}
PARTS = ("epoch", "real", "notebook")


# -- the settings of the epoch part ------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    name: str
    bf16: bool
    channels_last: bool
    compile: str | None = None   # a torch.compile mode
    samlab_train: str = ""       # how `samlab train` runs this setting ("" if it cannot)


SETTINGS = (
    Setting("eager fp32", False, False, samlab_train="--precision fp32 --no-channels-last"),
    Setting("channels_last + bf16", True, True, samlab_train="its CUDA default"),
    Setting("torch.compile", True, True, "default", samlab_train="--compile"),
    Setting("CUDA graphs", True, True, "reduce-overhead"),
)
BASELINE = "baseline (torchvision DataLoader, per-tensor-loop SAM, fp32)"
OPTIMIZERS = ("SGD", "SAM")


def epoch_metric(opt: str, setting: str) -> str:
    return f"epoch time, {opt}, {setting}"


def planned(part: str) -> list[tuple[str, str]]:
    """``[(metric, unit)]`` every part promises, so a part that dies is still listed."""
    if part == "epoch":
        rows = [(epoch_metric(o, s.name), "s") for s in SETTINGS for o in OPTIMIZERS]
        return rows + [(epoch_metric(o, BASELINE), "s") for o in OPTIMIZERS] + \
            [("λ_max measurement (top-2 Lanczos)", "s")]
    if part == "real":
        return [(f"real run, {arm}: final test accuracy", "") for arm in OPTIMIZERS] + \
            [("real run, SAM: stopped by SIGTERM and resumed", "")]
    return [("notebook 05: predicted total of its size", "")]


# -- running the parts -------------------------------------------------------------------------
def run_part(part: str, size: str, timeout: int, work: Path) -> tuple[list[Row], str | None]:
    """Run ``part`` in a child process for at most ``timeout`` s: its rows, and why it
    failed (None if it did not). The child and everything it started are killed at the
    time limit; rows it wrote before are kept."""
    rows_file = work / f"{part}.jsonl"
    log = work / f"{part}.log"
    cmd = [sys.executable, "-m", "benchmarks.gpu", "--part", part, "--size", size,
           "--rows", str(rows_file), "--work", str(work)]
    t0 = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            rc = child.wait(timeout=timeout)
            why = None if rc == 0 else f"exit status {rc}"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            why = f"timed out after {timeout} s"
    rows = [Row(**json.loads(line)) for line in rows_file.read_text().splitlines()] \
        if rows_file.is_file() else []
    if why:
        tail = log.read_text(errors="replace").strip().splitlines()[-12:]
        why += ": " + (" | ".join(tail) if tail else "no output")
    print(f"   {part}: {len(rows)} rows in {time.perf_counter() - t0:.0f} s"
          + (f"; FAILED ({why})" if why else ""), flush=True)
    return rows, why


def complete(part: str, rows: list[Row], why: str | None) -> list[Row]:
    """``rows``, plus a row for every promised figure the part did not write."""
    have = {r.metric for r in rows}
    missing = [Row(m, None, unit, ok=False if why else None,
                   note=f"not measured: the {part} part {'failed' if why else 'skipped it'}"
                        + (f" ({why[:200]})" if why else ""))
               for m, unit in planned(part) if m not in have]
    return rows + missing


def value(rows: list[Row], metric: str) -> float | None:
    found = [r.value for r in rows if r.metric == metric and r.value is not None]
    return found[0] if found else None


def goals(rows: list[Row], cuda: bool) -> list[Row]:
    """The issue's goals, checked against the measured rows (GPU goals: unjudged on a CPU)."""
    out = []

    def judge(metric, v, unit, goal, met, note=""):
        if v is None:  # a goal that could not be checked is not met
            met, note = False, "not measured"
        out.append(Row(metric, v, unit, goal, met if cuda else None, note))

    best = {}
    for opt in OPTIMIZERS:
        measured = [(value(rows, epoch_metric(opt, s.name)), s) for s in SETTINGS]
        measured = [(v, s) for v, s in measured if v is not None]
        v, s = min(measured, key=lambda m: m[0]) if measured else (None, None)
        best[opt] = (v, s)
        limit = 2.0 if opt == "SGD" else 4.0
        judge(f"epoch time, {opt}, samlab's best setting", v, "s", f"<= {limit:g} s",
              v is not None and v <= limit, s.name if s else "")
        base = value(rows, epoch_metric(opt, BASELINE))
        speed = base / v if v and base else None
        judge(f"{opt}: baseline / samlab's best", speed, "x", ">= 2x",
              speed is not None and speed >= 2)
    # The late run's epoch (7/8 SGD, 1/8 SAM, in one setting: the one that makes it
    # fastest) against SGD's fastest epoch.
    lates = []
    for s in SETTINGS:
        sgd, sam = (value(rows, epoch_metric(o, s.name)) for o in OPTIMIZERS)
        if sgd and sam:
            lates.append((SWITCH * sgd + (1 - SWITCH) * sam, s.name))
    fastest, where = min(lates) if lates else (None, "")
    late = fastest / best["SGD"][0] if fastest and best["SGD"][0] else None
    judge("late SAM (switch at 7/8) total / SGD total", late, "x", "<= 1.15x",
          late is not None and late <= 1.15,
          f"(0.875 SGD + 0.125 SAM) in {where}, over SGD in {best['SGD'][1].name}"
          if late is not None else "")
    lam = value(rows, "λ_max measurement (top-2 Lanczos)")
    sgd_best = best["SGD"][0]
    ratio = lam / sgd_best if lam and sgd_best else None
    judge("λ_max measurement / SGD epoch (best setting)", ratio, "x", "<= 1",
          ratio is not None and ratio <= 1)
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks gpu", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--dry", action="store_true", help="the dry size (default without CUDA)")
    p.add_argument("--out", type=Path, help="the JSON to write (default: results/gpu.json, "
                   "results/gpu-dry.json for a dry run)")
    p.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS))
    p.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)    # in the child
    p.add_argument("--size", choices=SIZES, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.part:
        return child(args.part, SIZES[args.size], args.rows, args.work)

    import torch

    cuda = torch.cuda.is_available()
    size = "dry" if args.dry or not cuda else "gpu"
    out = args.out or RESULTS / ("gpu.json" if size == "gpu" else "gpu-dry.json")
    print(f"== gpu-check, {size} size, on "
          f"{torch.cuda.get_device_name(0) if cuda else 'the CPU'}"
          + ("" if size == "gpu" else " (the goals are a GPU's: stated, not judged)"), flush=True)
    rows, failed = [], {}
    with tempfile.TemporaryDirectory(prefix="samlab-gpu-check-") as tmp:
        for part in args.parts:
            work = Path(tmp) / part
            work.mkdir()
            got, why = run_part(part, size, SIZES[size].timeouts[part], work)
            rows += complete(part, got, why)
            if why:
                failed[part] = why
    if "epoch" in args.parts:
        rows += goals(rows, cuda and size == "gpu")
    info = machine() | {"cuda_version": torch.version.cuda, "size": size,
                        "device": torch.cuda.get_device_name(0) if cuda else "cpu"}
    payload = {"benchmark": "gpu", "machine": info, "failed": failed,
               "rows": [asdict(r) for r in rows]}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    print("\n" + table(rows) + f"\n\nwrote {out}", flush=True)
    return 1 if failed else 0


def table(rows: list[Row]) -> str:
    lines = ["| figure | value | goal | met | note |", "|---|---|---|---|---|"]
    for r in rows:
        v = "—" if r.value is None else f"{r.value:.4g} {r.unit}".strip()
        met = {True: "yes", False: "**no**", None: ""}[r.ok]
        lines.append(f"| {r.metric} | {v} | {r.goal} | {met} | {r.note} |")
    return "\n".join(lines)


# -- in the child ------------------------------------------------------------------------------
def child(part: str, size: Size, rows_file: Path, work: Path) -> int:
    def emit(row: Row) -> None:  # each row as soon as it is measured: a time-out keeps it
        with open(rows_file, "a") as f:
            f.write(json.dumps(asdict(row)) + "\n")
        print(f"   {row.metric}: {row.value} {row.unit} {row.note}", flush=True)

    {"epoch": part_epoch, "real": part_real, "notebook": part_notebook}[part](size, emit, work)
    return 0


def _failed(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"failed: {type(err).__name__}: {first[:160]}"


def part_epoch(size: Size, emit: Callable[[Row], None], work: Path) -> None:
    import torch

    from .gpu_arms import lanczos_seconds, time_arm

    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    where = f"{dev.type}; {size.steps} steps x {STEPS_PER_EPOCH}"
    # The eager settings and the baseline first: a compile that hangs costs only itself.
    order = [s for s in SETTINGS if not s.compile] + [BASELINE] + \
        [s for s in SETTINGS if s.compile]
    for setting in order:
        for opt in OPTIMIZERS:
            name = setting if isinstance(setting, str) else setting.name
            metric = epoch_metric(opt, name)
            if not isinstance(setting, str) and setting.compile and not cuda:
                emit(Row(metric, None, "s", note="skipped on a CPU: torch.compile and CUDA "
                         "graphs are measured on CUDA only (a CPU compile takes minutes)"))
                continue
            try:
                per_step, warm, extra = time_arm(dev, opt, setting, size.steps, size.warmup)
            except Exception as err:  # recorded; the next arm still runs
                emit(Row(metric, None, "s", ok=False, note=_failed(err)))
                continue
            how = "" if isinstance(setting, str) else (
                f"samlab train: {setting.samlab_train}" if setting.samlab_train
                else "not a samlab train option")
            note = f"{where}; warm-up {warm:.1f} s" + (f"; {how}" if how else "") + extra
            emit(Row(metric, per_step * STEPS_PER_EPOCH, "s", note=note))
        if setting == BASELINE:
            try:
                seconds, note = lanczos_seconds(dev, size.lanczos_images, BATCH)
                emit(Row("λ_max measurement (top-2 Lanczos)", seconds, "s", note=note))
            except Exception as err:
                emit(Row("λ_max measurement (top-2 Lanczos)", None, "s", ok=False,
                         note=_failed(err)))


def _data_env() -> tuple[str, dict[str, str], str]:
    """The dataset the real run and the notebook use, the environment that finds it, and
    the words for it: canonical CIFAR-10 if on disk, else the JPEG copy, else random."""
    from samlab.paths import data_dir

    if (data_dir() / "cifar-10-batches-py").is_dir():
        return "cifar10", {}, "CIFAR-10"
    jpeg = jpeg_cifar10()
    if jpeg is not None:
        return "cifar10-jpeg", {"SAMLAB_DATA": str(jpeg.parent)}, "JPEG-recompressed CIFAR-10"
    return "random", {}, "random images (no CIFAR-10 found: accuracies mean nothing)"


def _epochs(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("kind") == "epoch"]


def part_real(size: Size, emit: Callable[[Row], None], work: Path) -> None:
    import torch

    dataset, env, label = _data_env()
    env = os.environ | env | {"PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "samlab", "train", "--dataset", dataset, "--model", "resnet20",
           "--epochs", str(size.real_epochs), "--lr", "0.1", "--batch-size", str(BATCH),
           "--sharpness-every", str(size.real_sharpness_every), "--sharpness-k", "2",
           "--sharpness-subset", str(size.real_subset), "--runs-dir", str(work / "runs"),
           "--no-progress", "--device", "cuda" if torch.cuda.is_available() else "cpu"]
    if size.real_train:
        cmd += ["--n-train", str(size.real_train), "--n-val", "128",
                "--n-test", str(size.real_test)]
    for arm in OPTIMIZERS:
        run_dir = work / "runs" / arm.lower()
        argv = cmd + ["--name", arm.lower(), "--method", arm.lower()]
        if arm == "SGD":
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"samlab train (SGD) exited {done.returncode}: "
                                   f"{done.stderr.strip()[-300:]}")
        else:
            _stopped_and_resumed(argv, run_dir, env, emit)
        epochs = _epochs(run_dir)
        for r in epochs:
            lam = (f"λ_max {r['lambda_max']:.2f} (measured in {r['sharpness_time']:.1f} s)"
                   if "lambda_max" in r else "λ_max not measured this epoch")
            emit(Row(f"real run, {arm}, epoch {r['epoch'] + 1}: test accuracy",
                     r.get("test_acc"), "", note=f"{label}; {lam}; steps {r['train_time']:.1f} s"
                     f", evaluation {r.get('eval_time', 0):.1f} s"))
        if epochs:
            n = epochs[-1]["step"] // (epochs[-1]["epoch"] + 1) * BATCH
            emit(Row(f"real run, {arm}: final test accuracy", epochs[-1].get("test_acc"), "",
                     note=f"{label}, {len(epochs)} epochs of about {n} images, batch {BATCH}"))


def _stopped_and_resumed(argv: list[str], run_dir: Path, env: dict, emit) -> None:
    """Start ``argv``; at its first epoch record send SIGTERM; expect exit 143, then resume
    it and expect every epoch recorded exactly once."""
    metric = "real run, SAM: stopped by SIGTERM and resumed"
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    while proc.poll() is None and not _epochs(run_dir):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    said = proc.communicate()[0].strip().splitlines()
    if proc.returncode != 143:
        emit(Row(metric, 0, "", ok=False, note=f"exit status {proc.returncode}, not 143: "
                 + " | ".join(said[-3:])))
        return
    stopped_at = said[-1] if said else ""
    done = subprocess.run([sys.executable, "-m", "samlab", "train", "--resume", str(run_dir),
                           "--no-progress"], env=env, capture_output=True, text=True)
    epochs = [r["epoch"] for r in _epochs(run_dir)]
    expected = list(range(int(argv[argv.index("--epochs") + 1])))
    ok = done.returncode == 0 and epochs == expected
    emit(Row(metric, 1 if ok else 0, "", "exit 143, then resumed to the end", ok,
             note=f"{stopped_at.removeprefix('samlab: ')[:120]}; resume exit "
                  f"{done.returncode}; epochs recorded {epochs}"))


def part_notebook(size: Size, emit: Callable[[Row], None], work: Path) -> None:
    import nbformat

    from . import notebook_runner

    dataset, env, label = _data_env()
    copy = work / NOTEBOOK.name  # its runs/ and figures/ land in the work folder
    copy.write_text(NOTEBOOK.read_text())
    notebook = notebook_runner.load(copy)
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import json as _json\nprint('SAMLAB_RECIPE', _json.dumps({'size': SIZE, "
        "'recipe': SIZES[SIZE], 'runs': {n: c.name for n, c in configs.items()}}))"))
    # This process exists for this part alone: the kernel inherits what is set here.
    os.environ.update(env, SAMLAB_EPOCHS="1")
    if size is SIZES["gpu"] and dataset != "cifar10":
        os.environ["SAMLAB_DATASET"] = dataset
    done = notebook_runner.execute(copy, quick=size is SIZES["dry"], notebook=notebook,
                                   timeout=size.timeouts["notebook"])
    printed = "".join(text for _, text in notebook_runner.printed(done.notebook))
    found = re.search(r"SAMLAB_RECIPE (.*)", printed)
    if not found:
        raise RuntimeError("the notebook's recipe was not printed")
    told = json.loads(found.group(1))
    recipe, nb_size = told["recipe"], told["size"]
    slug = {run: name for name, run in told["runs"].items()}  # run directory -> arm
    arms, ran = {}, {}  # the notebook's arm name -> its first epoch record; epochs run
    for config in sorted(work.glob(f"runs/05_{nb_size}/*/*/config.json")):
        epochs = _epochs(config.parent)
        if epochs:
            name = slug.get(config.parent.parent.name, config.parent.parent.name)
            arms[name], ran[name] = epochs[0], len(epochs)
    emit(Row("notebook 05: wall time, one epoch per arm", done.seconds, "s",
             note=f"{nb_size} size cut to 1 epoch per arm (SAMLAB_EPOCHS=1); {label}; "
                  f"peak kernel memory {done.peak_mb:.0f} MB"))
    for name, r in arms.items():
        emit(Row(f"notebook 05, {name}: epoch time", r["train_time"], "s",
                 note=f"{ran[name]} epoch(s) run; {r['step'] * BATCH} images; "
                      f"evaluation {r.get('eval_time', 0):.1f} s"
                      f"; λ_max {r.get('sharpness_time', 0):.1f} s"
                      f"; SAM {'on' if r.get('sam_active') else 'off'}"))
    predicted = predict(recipe, arms, done.seconds, nb_size)
    stated = stated_total(NOTEBOOK.read_text(), nb_size)
    minutes = nb_size != "quick"
    unit, scale = ("min", 60) if minutes else ("s", 1)
    goal = f"<= {stated / scale:g} {unit} (stated)" if stated else ""
    emit(Row("notebook 05: predicted total of its size", predicted / scale, unit, goal,
             predicted <= stated if stated and size is SIZES["gpu"] else None,
             note=f"{nb_size} size: {recipe['epochs']} epochs per arm, λ_max every "
                  f"{recipe['sharpness_every']}; from this run's epoch times"
                  + (", scaled to 45,000 images" if minutes else "")))


def predict(recipe: dict, arms: dict[str, dict], wall: float, size: str) -> float:
    """Seconds a full run of ``recipe`` takes, from a run of one epoch per arm.

    Each arm's epochs cost its measured epoch: the training steps (scaled to 45,000 images
    above the quick size) and the evaluation passes; late SAM's SGD epochs cost SGD's, its
    SAM epochs (the last eighth, at least one, as the notebook sets them) its own; each
    λ_max measurement costs what this run's did; the rest of the notebook's time (data,
    figures, the other sections) is paid once, as measured.
    """
    E, every = recipe["epochs"], recipe["sharpness_every"]
    measurements = sum(1 for e in range(E) if (e + 1) % every == 0 or e + 1 == E)
    scale = 1.0 if size == "quick" else EPOCH_IMAGES / max(
        r["step"] * BATCH for r in arms.values())
    epoch = {k: r["train_time"] * scale + r.get("eval_time", 0.0) for k, r in arms.items()}
    total = wall - sum(r["train_time"] + r.get("eval_time", 0.0) + r.get("sharpness_time", 0.0)
                       for r in arms.values())
    for name, r in arms.items():
        sam_epochs = max(1, E // 8) if "late" in name else E
        total += (E - sam_epochs) * epoch.get("SGD", epoch[name]) + sam_epochs * epoch[name]
        total += measurements * r.get("sharpness_time", 0.0)
    return total


def stated_total(text: str, size: str) -> float | None:
    """The seconds the notebook's first screen states for ``size`` (None if it states none)."""
    pattern = {"quick": r"Run All takes about (\d+) s",
               "lab": r"sized for about (\d+) minutes"}.get(size)
    found = re.search(pattern, re.sub(r"\s*\n#\s*", " ", text)) if pattern else None
    if not found:
        return None
    return float(found.group(1)) * (60 if size == "lab" else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
