"""The ``samlab`` command: ``--version``, ``doctor``, ``train`` and ``plot``.

One function builds each subcommand's parser and one function runs it. To add
``samlab foo``: write ``_add_foo(subcommands)`` (it sets ``func=_foo``) and
``_foo(args) -> int``, then list ``_add_foo`` in ``SUBCOMMANDS``.

Keep module-level imports light: ``samlab --version`` must not wait for torch.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import samlab
from samlab.doctor import doctor_report, format_doctor_report


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

# -- samlab train ---------------------------------------------------------------------------

_TRAIN_HELP = """Train a model with SGD or the SAM family; write runs/<name>/.

Every field of samlab.train.TrainConfig is a flag (defaults: ResNet-20 on CIFAR-10,
docs/training.md#the-cifar-10-recipe). --config FILE starts from a saved config.json;
--protocol NAME from a paper's settings (zhou2025: the late-phase authors' code,
docs/training.md#protocols); flags override either. --resume RUN_DIR continues an
interrupted run exactly where it stopped. Under torchrun (torchrun --nproc_per_node=N
-m samlab train ...) it trains with DDP.

Exit status: 0 completed, 2 bad input (one line on stderr; SAMLAB_DEBUG=1 shows the
traceback), 3 the loss diverged, 130 interrupted by Ctrl-C, 143 by SIGTERM (both
resumable)."""


def _add_train(subcommands: argparse._SubParsersAction) -> None:
    import dataclasses

    from samlab.train.config import HELP, TrainConfig, choices
    from samlab.train.protocols import PROTOCOLS

    p = subcommands.add_parser("train", help="train a model with any method of the table",
                               description=_TRAIN_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="a config.json to start from")
    p.add_argument("--protocol", metavar="{" + ",".join(PROTOCOLS) + "}",
                   help="start from a named protocol's settings (docs/training.md#protocols); "
                        "the other flags override them")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        text = HELP[f.name] if "(default:" in HELP[f.name] else \
            f"{HELP[f.name]} (default: {'auto' if default is None else default})"
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
        if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            from samlab.train.rundir import CHECKPOINT

            again = (f"resume: samlab train --resume {trainer.run_dir}"
                     if (Path(trainer.run_dir) / CHECKPOINT).is_file() else
                     "run the same command again (no checkpoint was saved yet)")
            err = OSError(f"{err.strerror} while writing {err.filename or 'a file'}; what "
                          "was written before it stands: make room (or raise the file-size "
                          f"limit), then {again}")
        return _error("train", err, status=1)
    if result.status == "interrupted" and trainer.stop_signal == "SIGTERM":
        return EXIT_STATUS["terminated"]
    return EXIT_STATUS[result.status]


def _trainer_from_args(args: argparse.Namespace):
    import dataclasses

    from samlab.train import TrainConfig, Trainer
    from samlab.train.protocols import protocol
    from samlab.train.rundir import RunDir

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    flags = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.protocol is not None and args.config is not None:
        raise ValueError("give --protocol or --config, not both: a config.json holds every "
                         "field, so nothing of the protocol would be left")
    # The protocol first, the flags on top; on resume they must agree with the saved run.
    given = {**(protocol(args.protocol) if args.protocol is not None else {}), **flags}
    if args.resume is not None:
        run_dir = args.resume.resolve()  # `--resume .` from inside the run directory
        if not run_dir.is_dir():
            raise ValueError(f"--resume {args.resume}: there is no run directory there (a run "
                             "lives in <runs-dir>/<name>, which holds its config.json)")
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
    try:
        config = TrainConfig.from_dict({**base, **given})
    except ValueError as err:
        raise ValueError(_blame_the_protocol(str(err), args.protocol, flags)) from None
    return Trainer(config, progress=not args.no_progress)


def _blame_the_protocol(message: str, name: str | None, typed: dict[str, Any]) -> str:
    """``message``, saying which of the fields it names the protocol set, not the user."""
    if name is None:
        return message
    import re

    from samlab.train.protocols import protocol

    # The fields the message names, in the order they appear: its subject first.
    found = ((re.search(rf"\b{field}\b", message), field) for field in protocol(name)
             if field not in typed)
    set_by_it = sorted((m.start(), field) for m, field in found if m)
    if not set_by_it:
        return message
    fields = [field for _, field in set_by_it]
    values = ", ".join(f"{f} = {protocol(name)[f]!r}" for f in fields)
    flags = " or ".join("--" + f.replace("_", "-") for f in fields)
    return f"{message} ({values} comes from --protocol {name}: give {flags} to change it)"


def train_command(config, *, nproc: int | None = None) -> str:
    """The ``samlab train`` command line that trains ``config`` (the fields that differ
    from the defaults, as flags); with ``nproc``, under ``torchrun`` on that many GPUs."""
    import dataclasses
    import shlex

    from samlab.train import TrainConfig

    default = TrainConfig()
    words = ["samlab", "train"] if nproc is None else [
        "torchrun", f"--nproc_per_node={nproc}", "-m", "samlab", "train"]
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        else:
            words += [flag, "none" if value is None else str(value)]
    return shlex.join(words)


def _error(command: str, err: BaseException, status: int = 2) -> int:
    """``samlab <command>: error: <what>`` on stderr; the traceback with SAMLAB_DEBUG=1."""
    if os.environ.get("SAMLAB_DEBUG", "").strip() not in ("", "0"):
        raise err
    text = " ".join(str(err).split("\n"))  # one line, whatever the message's own layout
    print(f"samlab {command}: error: {text}", file=sys.stderr)
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
    import matplotlib.figure

    matplotlib.use("Agg")
    from samlab.plot import plot_run

    out = args.out or (args.run_dirs[0] / "plot.png" if len(args.run_dirs) == 1
                       else args.run_dirs[0].parent / "runs_comparison.png")
    formats = sorted(matplotlib.figure.Figure().canvas.get_supported_filetypes())
    if out.suffix.lstrip(".").lower() not in formats:
        print(f"samlab plot: --out must end in an image format matplotlib writes "
              f"({', '.join(formats)}), got {str(out)!r}", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"samlab plot: --out {out}: there is no folder {out.parent} to write it into",
              file=sys.stderr)
        return 2
    try:
        fig = plot_run(args.run_dirs)
    except (FileNotFoundError, ValueError) as err:
        print(f"samlab plot: {err}", file=sys.stderr)
        return 2
    try:
        fig.savefig(out, dpi=150)
    except OSError as err:
        print(f"samlab plot: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(out)
    return 0


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_doctor, _add_train, _add_plot,
]
