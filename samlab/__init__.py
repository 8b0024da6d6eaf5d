"""samlab: a workbench for learning and researching sharpness-aware minimization.

The NumPy world of exact 2D landscapes lives in :mod:`samlab.toy`; the
interactive figures in :mod:`samlab.widgets`; static figures in :mod:`samlab.plot`.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"


def quick_mode() -> bool:
    """True when ``SAMLAB_QUICK`` is set to anything but ``""``/``0``.

    Notebooks read this to shrink their experiments so that CI (and a student on
    a 2 GB Binder) runs them top to bottom in seconds.
    """
    return os.environ.get("SAMLAB_QUICK", "").strip() not in ("", "0")
