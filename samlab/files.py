"""Writing files so that a kill at any moment leaves the old file or the new one, never half.

The recipe (POSIX): write a temporary file in the same directory, flush and fsync it,
rename it over the target (``os.replace`` is atomic), then fsync the directory so the
rename itself survives a power cut. Checkpoints, ``config.json``, the JPEG cache and the
benchmark results are all written through :func:`atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Temporary files are named ``.<target name>.<random>.tmp``; a killed write leaves one.
TMP_SUFFIX = ".tmp"

#: Permissions of every file samlab writes (before the umask), as ``open()`` would give.
FILE_MODE = 0o666


def _read_umask() -> int:
    # Reading the umask means setting it; done once, at import, before any thread writes.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], *,
                 sole_writer: bool = False) -> None:
    """Call ``write(f)`` on a temporary file, then put it at ``path``: all of it or none.

    The temporary file is ``.<name>.<random>.tmp`` beside ``path``; with
    ``sole_writer=True`` (the caller holds a lock on the directory, as a trainer does on
    its run directory) it is ``.<name>.tmp``, so that every file a run writes has a name
    known in advance.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if sole_writer:
        tmp = str(path.with_name(f".{path.name}{TMP_SUFFIX}"))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    else:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        # mkstemp makes the file 0600; give it what open() would, so that every file of
        # a run directory has the same permissions.
        os.fchmod(fd, FILE_MODE & ~_UMASK)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # a full disk, a file-size limit: name the file
            raise OSError(err.errno, err.strerror, str(path)) from None
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, *, sole_writer: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(text.encode()), sole_writer=sole_writer)


def fsync_dir(directory: str | Path) -> None:
    """Flush a directory's entries (a rename, a new file) to disk, where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename still stands
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_write` calls left in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir()
             if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
