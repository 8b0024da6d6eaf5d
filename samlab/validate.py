"""One way to check arguments at a public boundary.

Every check returns the value as a plain Python type (NumPy integer and float scalars are
numbers, and come back as ``int``/``float``), and every failure is a ``ValueError`` that
reads ``"<name> must be <what is allowed>, got <value>"``. ``bool`` is never a number.

>>> number("rho", 0.05, low=0)
0.05
>>> integer("steps", np.int64(5), low=1)
5
>>> number("lr", True, low=0, strict_low=True)
Traceback (most recent call last):
ValueError: lr must be a finite number > 0, got True
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "choice", "fail", "flag", "integer", "integers", "is_integer", "is_number", "number",
    "numbers", "path", "show",
]


def show(value: Any) -> str:
    """``value`` as an error message shows it: plain numbers, quoted strings, short."""
    if isinstance(value, (np.generic,)) and np.ndim(value) == 0:
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(name: str, allowed: str, value: Any) -> ValueError:
    """The error every check raises: ``raise fail("x0", "a point (x, y)", x0)``."""
    return ValueError(f"{name} must be {allowed}, got {show(value)}")


def is_number(value: Any) -> bool:
    """A real number: Python or NumPy int or float, never a bool."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def is_integer(value: Any) -> bool:
    """A Python or NumPy integer, never a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _range_text(low, high, strict_low: bool, strict_high: bool, integer: bool) -> str:
    if low is not None and high is not None:
        if integer:
            return f" in {low}..{high}"
        return f" in {'(' if strict_low else '['}{low:g}, {high:g}{')' if strict_high else ']'}"
    if low is not None:
        return f" {'>' if strict_low else '>='} {low if integer else format(low, 'g')}"
    if high is not None:
        return f" {'<' if strict_high else '<='} {high if integer else format(high, 'g')}"
    return ""


def _within(v, low, high, strict_low: bool, strict_high: bool) -> bool:
    if low is not None and (v <= low if strict_low else v < low):
        return False
    return not (high is not None and (v >= high if strict_high else v > high))


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           strict_low: bool = False, strict_high: bool = False,
           none: bool = False) -> float | None:
    """A finite real number within the bounds (``strict_*``: the bound itself excluded)."""
    if value is None and none:
        return None
    if not (is_number(value) and math.isfinite(value)
            and _within(value, low, high, strict_low, strict_high)):
        allowed = "a finite number" + _range_text(low, high, strict_low, strict_high, False)
        raise fail(name, f"None or {allowed}" if none else allowed, value)
    return float(value)


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None,
            none: bool = False) -> int | None:
    """An integer within ``low..high`` (both included)."""
    if value is None and none:
        return None
    if not (is_integer(value) and _within(value, low, high, False, False)):
        allowed = "an integer" + _range_text(low, high, False, False, True)
        raise fail(name, f"None or {allowed}" if none else allowed, value)
    return int(value)


def choice(name: str, value: Any, allowed: Iterable[str], *, none: bool = False) -> str | None:
    """One of the strings ``allowed``."""
    allowed = tuple(allowed)
    if value is None and none:
        return None
    if not (isinstance(value, str) and value in allowed):
        text = "one of " + ", ".join(map(repr, allowed))
        raise fail(name, f"None or {text}" if none else text, value)
    return value


def flag(name: str, value: Any, *, none: bool = False) -> bool | None:
    """``True`` or ``False`` (NumPy's bools too); no other value stands for one."""
    if value is None and none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise fail(name, "None, True or False" if none else "True or False", value)
    return bool(value)


def numbers(name: str, value: Any, *, low: float | None = None,
            strict_low: bool = False) -> np.ndarray:
    """A number or an array of numbers (float64), every entry finite and above ``low``."""
    arr = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if arr is None or arr.dtype.kind not in "iuf":
        raise fail(name, "a number or an array of numbers", value)
    arr = arr.astype(float)
    ok = np.isfinite(arr)
    if low is not None:
        ok &= arr > low if strict_low else arr >= low
    if not ok.all():
        raise fail(name, "a finite number" + _range_text(low, None, strict_low, False, False),
                   float(arr[~ok].flat[0]))
    return arr


def integers(name: str, value: Any, *, low: int | None = None) -> np.ndarray:
    """An integer or an array of integers (int64), every entry ``>= low``; bools are not."""
    arr = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if arr is None or arr.dtype.kind not in "iu":
        raise fail(name, "an integer or an array of integers", value)
    arr = arr.astype(np.int64)
    if low is not None and (arr < low).any():
        raise fail(name, "an integer" + _range_text(low, None, False, False, True),
                   int(arr[arr < low].flat[0]))
    return arr


def path(name: str, value: Any, *, exists: str | None = None) -> Path:
    """A path (``str`` or ``os.PathLike``); ``exists="file"`` or ``"dir"`` requires one."""
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise fail(name, "a path", value)
    p = Path(value).expanduser()
    if exists == "file" and not p.is_file():
        raise fail(name, "an existing file", str(p))
    if exists == "dir" and not p.is_dir():
        raise fail(name, "an existing directory", str(p))
    return p
