"""The ``samlab`` command: ``samlab --version``, ``samlab doctor``.

One function builds each subcommand's parser and one function runs it. To add
``samlab foo``: write ``_add_foo(subcommands)`` (it sets ``func=_foo``) and
``_foo(args) -> int``, then list ``_add_foo`` in ``SUBCOMMANDS``.

Keep module-level imports light: ``samlab --version`` must not wait for torch.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import samlab
from samlab.paths import CIFAR10_FILES, CIFAR10_FOLDER, data_dir

# Distribution names whose versions `samlab doctor` reports, in the order it reports them.
PACKAGES = (
    "numpy",
    "scikit-learn",
    "tqdm",
    "torch",
    "torchvision",
    "matplotlib",
    "plotly",
    "ipywidgets",
    "anywidget",
    "jupyterlab",
    "jupytext",
)


# Where JupyterLab finds the browser side of each widget library.
IPYWIDGETS_LABEXTENSION = "@jupyter-widgets/jupyterlab-manager"
ANYWIDGET_LABEXTENSION = "anywidget"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``samlab`` console script and of ``python -m samlab``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``samlab train: error: ...``), not usage plus error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="samlab",
        description="A workbench for sharpness-aware minimization (SAM).",
    )
    parser.add_argument("--version", action="version", version=f"samlab {samlab.__version__}")
    parser.set_defaults(func=None)
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subcommands)
    return parser


# --- samlab doctor -------------------------------------------------------------------


def _add_doctor(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "doctor",
        help="report versions, CUDA, widget front-ends and data",
        description="Report what samlab can use on this machine: package versions, CUDA, "
        "the JupyterLab widget front-ends, and whether CIFAR-10 is in the data directory.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    report = doctor_report()
    print(json.dumps(report, indent=2) if args.json else format_doctor_report(report))
    # A report, not a check: missing pieces are explained in it, and the exit status stays 0.
    return 0


def doctor_report() -> dict[str, Any]:
    """Everything ``samlab doctor`` reports, as plain JSON-serialisable data."""
    versions = {name: _version(name) for name in PACKAGES}
    return {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "samlab": {"version": samlab.__version__, "location": str(Path(samlab.__file__).parent)},
        "packages": versions,
        "cuda": _cuda_report(),
        "widgets": _widgets_report(versions),
        "data": _data_report(),
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_report() -> dict[str, Any]:
    try:
        import torch  # deliberately here: importing torch takes seconds
    except Exception as error:  # a broken CUDA install fails at import with many error types
        return {"available": False, "torch_cuda": None, "devices": [], "error": repr(error)}
    available = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "available": available,
        "torch_cuda": torch.version.cuda,  # None for a CPU-only build of torch
        "devices": devices if available else [],
        "error": None,
    }


def _labextension_dirs() -> list[Path]:
    """The directories JupyterLab searches for prebuilt extensions (user, env, system)."""
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    return [Path(p) for p in jupyter_path("labextensions")]


def _find_labextension(name: str) -> str | None:
    for root in _labextension_dirs():
        if (root / name / "package.json").is_file():
            return str(root / name)
    return None


def _widgets_report(versions: dict[str, str | None]) -> dict[str, Any]:
    ipywidgets = {
        "jupyterlab_widgets": _version("jupyterlab_widgets"),
        "labextension": _find_labextension(IPYWIDGETS_LABEXTENSION),
    }
    ipywidgets["ok"] = bool(
        versions["ipywidgets"] and ipywidgets["jupyterlab_widgets"] and ipywidgets["labextension"]
    )
    anywidget = {
        "version": versions["anywidget"],
        "labextension": _find_labextension(ANYWIDGET_LABEXTENSION),
    }
    anywidget["ok"] = bool(anywidget["version"] and anywidget["labextension"])

    plotly = versions["plotly"]
    if plotly is None:
        figurewidget = {"ok": False, "detail": "plotly is not installed"}
    elif _major(plotly) < 6:
        figurewidget = {
            "ok": False,
            "detail": f"plotly {plotly} is older than 6; samlab needs plotly>=6, "
            "whose FigureWidget is an anywidget",
        }
    elif not anywidget["ok"]:
        figurewidget = {
            "ok": False,
            "detail": f"plotly {plotly} draws FigureWidget with anywidget, "
            "and anywidget's front-end is missing",
        }
    else:
        figurewidget = {"ok": True, "detail": f"plotly {plotly} draws FigureWidget with anywidget"}
    return {"ipywidgets": ipywidgets, "anywidget": anywidget, "plotly_figurewidget": figurewidget}


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0


def _data_report() -> dict[str, Any]:
    root = data_dir()
    folder = root / CIFAR10_FOLDER
    missing = [name for name in CIFAR10_FILES if not (folder / name).is_file()]
    corrupt = [name for name in CIFAR10_FILES
               if name not in missing and not _md5_ok(folder / name)]
    return {
        "dir": str(root),
        "cifar10": {"path": str(folder), "present": not missing, "missing": missing,
                    "corrupt": corrupt, "ok": not missing and not corrupt},
    }


def _md5_ok(path: Path) -> bool:
    """Whether ``path`` has the md5 torchvision ships for its CIFAR-10 file."""
    try:
        from torchvision.datasets.utils import check_integrity

        from samlab.data.cifar10 import cifar10_md5

        return check_integrity(str(path), cifar10_md5()[path.name])
    except Exception:  # no torchvision: the versions section says so; do not guess
        return True


def format_doctor_report(report: dict[str, Any]) -> str:
    """The report as a person reads it: one line per item, problems say what to do."""
    width = 22
    lines = ["samlab doctor", ""]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<{width}}{text}")

    lines.append("Versions")
    python = report["python"]
    row("Python", f"{python['version']}  ({python['executable']})")
    row("samlab", f"{report['samlab']['version']}  ({report['samlab']['location']})")
    for name, version in report["packages"].items():
        row(name, version or "not installed")

    lines += ["", "CUDA"]
    cuda = report["cuda"]
    if cuda["error"]:
        row("torch.cuda", f"unknown: importing torch failed: {cuda['error']}")
    else:
        row("available", "yes" if cuda["available"] else "no")
        row("torch.version.cuda", cuda["torch_cuda"] or "None (a CPU-only build of torch)")
        for i, name in enumerate(cuda["devices"]):
            row(f"cuda:{i}", name)

    lines += ["", "Widget front-ends (JupyterLab extensions)"]
    widgets = report["widgets"]
    ipywidgets = widgets["ipywidgets"]
    if ipywidgets["ok"]:
        row(
            "ipywidgets",
            f"ok  jupyterlab_widgets {ipywidgets['jupyterlab_widgets']}, "
            f"{ipywidgets['labextension']}",
        )
    else:
        row(
            "ipywidgets",
            "MISSING  install ipywidgets>=8 and jupyterlab_widgets in the "
            "environment that runs JupyterLab",
        )
    anywidget = widgets["anywidget"]
    if anywidget["ok"]:
        row("anywidget", f"ok  {anywidget['labextension']}")
    else:
        row("anywidget", "MISSING  install anywidget in the environment that runs JupyterLab")
    figurewidget = widgets["plotly_figurewidget"]
    row(
        "plotly FigureWidget",
        ("ok  " if figurewidget["ok"] else "MISSING  ") + figurewidget["detail"],
    )

    data = report["data"]
    lines += ["", f"Data  ({data['dir']}; set SAMLAB_DATA to use another directory)"]
    cifar10 = data["cifar10"]
    if cifar10["ok"]:
        row("CIFAR-10", f"ok  {cifar10['path']} (md5s checked)")
    else:
        if cifar10["present"]:
            row("CIFAR-10", f"CORRUPT  {', '.join(cifar10['corrupt'])} in {cifar10['path']} "
                            "do not have torchvision's md5: delete them and download again")
        elif len(cifar10["missing"]) == len(CIFAR10_FILES):
            row("CIFAR-10", f"not found  no {cifar10['path']}")
        else:
            row("CIFAR-10", f"incomplete  {cifar10['path']} lacks {', '.join(cifar10['missing'])}")
        row("", "torchvision downloads it (about 170 MB):")
        row(
            "",
            f'python -c "import torchvision; '
            f"torchvision.datasets.CIFAR10('{data['dir']}', download=True)\"",
        )
    return "\n".join(lines)


# -- samlab train ---------------------------------------------------------------------------

_TRAIN_HELP = """Train a model with SGD or the SAM family; write runs/<name>/.

Every field of samlab.train.TrainConfig is a flag (defaults: ResNet-20 on CIFAR-10,
docs/training.md#the-cifar-10-recipe). --config FILE starts from a saved config.json;
flags override it. --resume RUN_DIR continues an interrupted run exactly where it
stopped. Under torchrun (torchrun --nproc_per_node=N -m samlab train ...) it trains
with DDP.

Exit status: 0 completed, 2 bad input (one line on stderr; SAMLAB_DEBUG=1 shows the
traceback), 3 the loss diverged, 130 interrupted by Ctrl-C, 143 by SIGTERM (both
resumable)."""


def _add_train(subcommands: argparse._SubParsersAction) -> None:
    import dataclasses

    from samlab.train.config import HELP, TrainConfig, choices

    p = subcommands.add_parser("train", help="train a model with any method of the table",
                               description=_TRAIN_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="a config.json to start from")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        text = f"{HELP[f.name]} (default: {'auto' if default is None else default})"
        if "bool" in kind:  # --x / --no-x; absent: the default (None: decided by the run)
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                           default=None, help=text)
        elif "list" in kind:
            p.add_argument(flag, dest=f.name, type=int, nargs="*", default=None,
                           metavar="EPOCH", help=text)
        elif choices(f.name):  # checked by TrainConfig, which says it in one line
            allowed = choices(f.name)
            p.add_argument(flag, dest=f.name, default=None, metavar="{" + ",".join(allowed) + "}",
                           help=text)
        else:
            base = int if "int" in kind else float if "float" in kind else str
            p.add_argument(flag, dest=f.name, type=_optional(base) if "None" in kind else base,
                           default=None, help=text)
    p.set_defaults(func=_train)


def _optional(base: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text.lower() in ("none", "null", "auto"):
            return None
        return base(text)

    parse.__name__ = getattr(base, "__name__", "value")
    return parse


def _train(args: argparse.Namespace) -> int:
    from samlab.train.trainer import EXIT_STATUS

    try:
        trainer = _trainer_from_args(args)
    except Exception as err:  # every way the input can be wrong: one line, no traceback
        return _error("train", err)
    try:
        result = trainer.fit()
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint stands
        print(f"samlab train: aborted; the last checkpoint stands: resume with "
              f"samlab train --resume {trainer.run_dir}", file=sys.stderr)
        return EXIT_STATUS["interrupted"]
    except OSError as err:  # a full disk, a vanished directory: not a bug of samlab's
        return _error("train", err, status=1)
    if result.status == "interrupted" and trainer.stop_signal == "SIGTERM":
        return EXIT_STATUS["terminated"]
    return EXIT_STATUS[result.status]


def _trainer_from_args(args: argparse.Namespace):
    import dataclasses

    from samlab.train import TrainConfig, Trainer
    from samlab.train.rundir import RunDir

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.resume is not None:
        run_dir = args.resume
        # The run directory names the run: a repeated --name/--runs-dir must agree with it.
        for key, value in (("name", run_dir.name), ("runs_dir", run_dir.parent)):
            if key in given and Path(given.pop(key)) != Path(value):
                raise ValueError(f"--resume {run_dir} is run {run_dir.name!r} in "
                                 f"{run_dir.parent}; --{key.replace('_', '-')} disagrees")
        config = RunDir(run_dir).read_config()
        config = dataclasses.replace(config, runs_dir=str(run_dir.parent), name=run_dir.name,
                                     **given)
        return Trainer(config, resume=True, progress=not args.no_progress)
    base = TrainConfig.load(args.config).to_dict() if args.config else {}
    config = TrainConfig.from_dict({**base, **given})
    return Trainer(config, progress=not args.no_progress)


def _error(command: str, err: BaseException, status: int = 2) -> int:
    """``samlab <command>: error: <what>`` on stderr; the traceback with SAMLAB_DEBUG=1."""
    if os.environ.get("SAMLAB_DEBUG", "").strip() not in ("", "0"):
        raise err
    print(f"samlab {command}: error: {err}", file=sys.stderr)
    return status


# -- samlab plot ----------------------------------------------------------------------------


def _add_plot(subcommands: argparse._SubParsersAction) -> None:
    p = subcommands.add_parser("plot", help="plot finished runs (loss, accuracy, λ_max, γ_t)")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="image file to write (default: plot.png in the "
                                            "run directory, or runs_comparison.png)")
    p.set_defaults(func=_plot)


def _plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from samlab.plot import plot_run

    try:
        fig = plot_run(args.run_dirs)
    except (FileNotFoundError, ValueError) as err:
        print(f"samlab plot: {err}", file=sys.stderr)
        return 2
    out = args.out or (args.run_dirs[0] / "plot.png" if len(args.run_dirs) == 1
                       else args.run_dirs[0].parent / "runs_comparison.png")
    fig.savefig(out, dpi=150)
    print(out)
    return 0


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_doctor, _add_train, _add_plot,
]
