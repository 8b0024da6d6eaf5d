"""Where samlab looks for things on disk."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The data directory: ``$SAMLAB_DATA`` if set, else ``data/`` at the repository root.

    The default assumes the usual checkout with an editable install (``pip install -e .``),
    where the package sits at ``<repo>/samlab`` and ``<repo>/data`` is beside it.
    """
    override = os.environ.get("SAMLAB_DATA", "").strip()
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "data"
