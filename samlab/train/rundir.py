"""A run's directory, and the one owner of everything in it (docs/training.md#a-run-directory).

::

    runs/<name>/
      config.json     the run's identity: the TrainConfig that made it
      metrics.jsonl   one JSON record per line: epochs, steps (log_every), the switch
                      window (switch_log_steps), how it ended
      checkpoint.pt   the exact position: weights, optimizer, scheduler, RNG, epoch, batch
                      (and w_switch while a switch window is open)
      .lock           held (flock) by the one trainer writing the run

The order of writes is what makes a kill at any moment lose nothing: a record is
appended and fsynced *before* the checkpoint that claims it is renamed into place
(:meth:`RunDir.save_checkpoint`, atomic). After a kill, every epoch the checkpoint
claims has its record; a record written just before the kill, past the checkpoint,
belongs to a timeline that is gone and is dropped on resume.
Checkpoints hold only tensors and plain Python values, so they load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
import pickle
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..files import (
    FILE_MODE,
    TMP_SUFFIX,
    atomic_write,
    atomic_write_text,
    fsync_dir,
    remove_stale_temporaries,
)
from .config import TrainConfig

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
LOCK = ".lock"

#: How a run can stand: not started, finished, stopped by a non-finite loss, or resumable.
STATUSES = ("new", "completed", "diverged", "interrupted")


def last_epoch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The last epoch record of ``records`` (``{}`` if no epoch finished)."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    return epochs[-1] if epochs else {}


@dataclass
class RunResult:
    """How a run ended (``completed``, ``interrupted`` or ``diverged``), and its records.

    From :meth:`Trainer.fit` the records are those this call wrote; from a sweep (and
    :meth:`RunDir.result`) they are every record of the run.
    """

    status: str
    epochs_done: int
    run_dir: Path
    message: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)
    config: TrainConfig | None = None

    @property
    def last(self) -> dict[str, Any]:
        """The last epoch record (``{}`` if no epoch finished)."""
        return last_epoch(self.records)

    def final(self, key: str) -> float:
        """``key`` of the last epoch; NaN when missing or when the run diverged."""
        value = self.last.get(key) if self.status != "diverged" else None
        return float(value) if value is not None else math.nan

    def best(self, key: str = "val_acc") -> dict[str, Any]:
        """The epoch record where ``key`` was highest: early stopping on the validation
        split (``best()["test_acc"]`` is the test accuracy of that epoch's weights; the
        earliest such epoch on a tie); ``{}`` if no epoch recorded a finite ``key``."""
        epochs = [r for r in self.records if r.get("kind") == "epoch"
                  and isinstance(r.get(key), int | float) and math.isfinite(r[key])]
        return max(epochs, key=lambda r: r[key]) if epochs else {}

    @property
    def passes(self) -> int:
        """Forward-backward passes of its epochs: one per plain step, two per SAM step (the
        cost of a late switch, in the unit that does not depend on the machine)."""
        epochs = [r for r in self.records if r.get("kind") == "epoch"]
        return sum((r["step"] // (r["epoch"] + 1)) * (2 if r["sam_active"] else 1)
                   for r in epochs)

    @property
    def train_time(self) -> float:
        """Seconds spent training over its epoch records (evaluation and λ_max left out)."""
        return float(sum(r["train_time"] for r in self.records if r.get("kind") == "epoch"))


class RunInUse(RuntimeError):
    """Another process holds the run directory's lock."""


class RunDir:
    """``runs/<name>/``: its files, its lock, its identity, the order of its writes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def of(cls, config: TrainConfig) -> RunDir:
        return cls(config.run_dir)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    # -- identity ------------------------------------------------------------------------------
    def read_config(self) -> TrainConfig:
        """The config that made this run; a clear error when it is missing or damaged."""
        if not self.config_file.is_file():
            raise FileNotFoundError(f"no {CONFIG} in {self.path}: is it a samlab run directory?")
        try:
            return TrainConfig.load(self.config_file)
        except ValueError as err:
            raise ValueError(f"{err}; it is the run's identity, so the run cannot be "
                             "resumed: start it again under a new name (or delete the "
                             "directory)") from None

    def write_config(self, config: TrainConfig) -> None:
        atomic_write_text(self.config_file, config.to_json(), sole_writer=True)

    def started(self) -> bool:
        """Whether the run has begun writing here (its config.json is there).

        False while the directory does not exist or holds only what a starting trainer
        writes before its config (the lock, temporaries); a ValueError naming the path when
        it is something else: a file, or a directory of other things (``runs/`` itself).
        """
        if not self.path.exists():
            return False
        if not self.path.is_dir():
            raise ValueError(f"{self.path} is not a samlab run directory: it is a file")
        if self.config_file.is_file():
            return True
        others = sorted(p.name for p in self.path.iterdir() if p.name != LOCK
                        and not (p.name.startswith(".") and p.name.endswith(TMP_SUFFIX)))
        if not others:
            return False
        runs = [name for name in others if (self.path / name / CONFIG).is_file()]
        hint = (f"; it holds runs ({', '.join(runs[:3])}{', ...' if len(runs) > 3 else ''}): "
                f"name one, e.g. {self.path / runs[0]}" if runs else "")
        raise ValueError(f"{self.path} is not a samlab run directory (no {CONFIG}, and it "
                         f"holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''})"
                         f"{hint}")

    # -- records -------------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl``. A torn last line (no line ending: a kill while
        it was appended) is ignored; a whole line that is not a record raises
        :class:`DamagedRecords`, so that nothing after it is silently dropped."""
        if not self.metrics_file.is_file():
            raise FileNotFoundError(f"no {METRICS} in {self.path}: is it a samlab run directory?")
        *lines, _torn = self.metrics_file.read_bytes().split(b"\n")
        return [parse_record(line, self.metrics_file, number, len(lines))
                for number, line in enumerate(lines, 1)]

    def append(self, record: dict[str, Any]) -> None:
        """Append one JSON line and fsync it: on disk before anything that claims it."""
        data = memoryview((json.dumps(record) + "\n").encode())
        fd = os.open(self.metrics_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            while data:  # a short write leaves a torn last line, which a reader ignores
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as err:  # a full disk, a file-size limit: name the file
            raise OSError(err.errno, err.strerror, str(self.metrics_file)) from None
        finally:
            os.close(fd)

    def start_records(self) -> None:
        """An empty ``metrics.jsonl`` (a fresh run)."""
        atomic_write_text(self.metrics_file, "", sole_writer=True)

    def keep_records(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Rewrite ``metrics.jsonl`` (atomically) with the records for which ``keep`` holds."""
        if self.metrics_file.is_file():
            kept = [r for r in self.records() if keep(r)]
            atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept),
                              sole_writer=True)

    # -- the checkpoint ------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """``torch.save`` to a temporary file, then rename over ``checkpoint.pt``.

        Serialized in memory first, so that a full disk is the ``OSError`` of a write
        (naming the file) rather than torch's own error from inside its zip writer."""
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(self.checkpoint_file, lambda f: f.write(buffer.getbuffer()),
                     sole_writer=True)

    def load_checkpoint(self, map_location: Any = "cpu", *, mmap: bool = False
                        ) -> dict[str, Any]:
        """The checkpoint, loaded with ``weights_only=True`` (no arbitrary code runs);
        with ``mmap`` its tensors are mapped from the file, not read."""
        import torch

        path = self.checkpoint_file
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume")
        try:
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError,
                zipfile.BadZipFile) as err:
            raise ValueError(
                f"{path} is corrupt or truncated ({type(err).__name__} while loading it); "
                "samlab writes checkpoints atomically, so it was damaged outside samlab. The "
                f"way out: start the run again (delete {self.path} or choose another name)"
            ) from None

    def epochs_done(self) -> int:
        """Epochs the checkpoint holds (0 without one). Its tensors are mapped, not read:
        the answer costs the small pickle of the checkpoint, not the weights."""
        if not self.checkpoint_file.exists():
            return 0
        return int(self.load_checkpoint(mmap=True)["epoch"])

    # -- status --------------------------------------------------------------------------------
    def status(self, epochs: int, epochs_done: int | None = None) -> str:
        """One of :data:`STATUSES`, for a run of ``epochs`` epochs, from what is on disk
        (``epochs_done``: :meth:`epochs_done`, if the caller has it already)."""
        if not self.checkpoint_file.exists():
            return "new"
        if (self.epochs_done() if epochs_done is None else epochs_done) >= epochs:
            return "completed"
        records = self.records() if self.metrics_file.is_file() else []
        if records and records[-1].get("kind") == "diverged":
            return "diverged"
        return "interrupted"

    def result(self) -> RunResult:
        """The run as it stands on disk: config, status, every record."""
        config = self.read_config()
        records = self.records()
        done = self.epochs_done()
        return RunResult(self.status(config.epochs, done), done, self.path, records=records,
                         config=config)

    # -- one writer ------------------------------------------------------------------------------
    def trainer_gone(self) -> int | None:
        """The process id of the run's last trainer if that process has exited on this
        machine and nobody holds the run's lock (killed or interrupted, unless the run
        finished); None while it runs, or when that cannot be told."""
        try:
            pid = int((self.path / LOCK).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
            return None  # alive
        except PermissionError:
            return None  # alive, someone else's
        except ProcessLookupError:
            pass
        try:  # no process of that id here; a trainer elsewhere would still hold the lock
            fd = os.open(self.path / LOCK, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        finally:
            os.close(fd)  # and with it the probe's lock
        return pid


    def acquire(self) -> RunLock:
        """Take the run's exclusive lock (until :meth:`RunLock.release`), or raise
        :class:`RunInUse` naming the process that holds it."""
        return RunLock(self.path)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's exclusive lock for the block (see :meth:`acquire`)."""
        held = self.acquire()
        try:
            yield
        finally:
            held.release()

    def remove_if_only_lock(self) -> None:
        """Remove the run directory if it holds nothing but its ``.lock`` (a run that
        failed before writing anything); anything else in it is left alone."""
        try:
            if [p.name for p in self.path.iterdir()] == [LOCK]:
                (self.path / LOCK).unlink()
                self.path.rmdir()
        except OSError:
            pass

    def remove_temporaries(self) -> list[Path]:
        """Delete what killed atomic writes left behind; returns what was removed."""
        removed = remove_stale_temporaries(self.path)
        if removed:
            fsync_dir(self.path)
        return removed


class RunLock:
    """``fcntl.flock`` on ``runs/<name>/.lock``, holding the owner's process id.

    The kernel drops the lock when its holder dies, so a lock left by a killed process
    never blocks the next trainer.
    """

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            self.release()
            raise RunInUse(f"{run_dir} is in use by process {holder}") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


class DamagedRecords(ValueError):
    """A whole line of ``metrics.jsonl`` that is not a JSON record."""


def parse_record(line: bytes, path: Path, number: int, lines: int | None = None) -> dict:
    """Line ``number`` of ``path`` as a record, or :class:`DamagedRecords` naming it."""
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        record = None
    if isinstance(record, dict):
        return record
    after = f", before {lines - number} more" if lines is not None else ""
    raise DamagedRecords(
        f"{path}, line {number}{after}: {bytes(line[:40])!r} is not a record; samlab appends "
        f"whole JSON lines, so the file was changed outside samlab. Nothing was dropped. The "
        f"way out: fix that line or delete it (sed -i '{number}d' {path}), then resume or "
        "read the run again")


class RecordTail:
    """The records appended to a ``metrics.jsonl`` since the last look, for a reader in
    another process than the trainer's (docs/training.md#watching-a-run).

    Only whole lines are taken: a line still being written is left for the next look.
    A resume rewrites the file atomically (a new file renamed over the old one, with
    records dropped): :meth:`read` notices that the file got shorter or is another file
    and starts over from its first line. The file being read is held open, so that its
    inode cannot be reused by a later rewrite and mistaken for it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file: BinaryIO | None = None
        self._offset = 0  # bytes of the held file already turned into records
        self._lines = 0  # and the lines they held

    def read(self) -> tuple[list[dict[str, Any]], bool]:
        """``(records, restarted)``: the records written since the last call; when
        ``restarted``, they are every record of a new or rewritten file and replace those
        returned before. Nothing while the file does not exist."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return [], False
        restarted = False
        if self._file is not None:
            held = os.fstat(self._file.fileno())
            if ((held.st_dev, held.st_ino) != (on_disk.st_dev, on_disk.st_ino)
                    or held.st_size < self._offset):
                self.close()
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                return [], False
            self._offset, self._lines, restarted = 0, 0, True
        self._file.seek(self._offset)
        data = self._file.read()
        records = []
        for line in data[:data.rfind(b"\n") + 1].splitlines(keepends=True):
            # as records(): a whole line that is not a record is reported, not skipped
            records.append(parse_record(line.rstrip(b"\r\n"), self.path, self._lines + 1))
            self._offset += len(line)
            self._lines += 1
        return records, restarted

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_run(run_dir: str | Path) -> tuple[TrainConfig, list[dict[str, Any]]]:
    """A finished or running run's config and metrics records."""
    rd = RunDir(run_dir)
    return rd.read_config(), rd.records()
