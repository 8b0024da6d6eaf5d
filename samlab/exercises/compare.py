"""How a result is compared with the truth, and shown in a verdict: one short line each."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import validate

if TYPE_CHECKING:
    from .core import Case


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch: the NumPy exercises
    (lectures 01 and 02) must not pay torch's import, half a gigabyte on Binder."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def short(text: str, width: int = 90) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def show(value: Any) -> str:
    """A result as one short line: numbers to 6 digits, arrays and tensors flattened."""
    if is_tensor(value):
        return show(value.detach().cpu().numpy()) + f" ({str(value.dtype)[6:]})"
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=6, separator=", ", threshold=8, edgeitems=2,
                               max_line_width=10**6)
        return short(text)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return short(repr(value))


def as_number(got: Any) -> float | None:
    """``got`` as a float if it is one real number (a 0-d tensor or array too), else None."""
    if (is_tensor(got) or isinstance(got, np.ndarray)) and got.ndim == 0 \
            and str(got.dtype) not in ("bool", "torch.bool"):
        got = got.item()
    return float(got) if validate.is_number(got) else None


def _scale(*arrays: np.ndarray) -> float:
    """The largest finite entry's size: the unit of every tolerance."""
    return max((float(np.abs(a[np.isfinite(a)]).max(initial=0.0)) for a in arrays), default=0.0)


def _close(expected: np.ndarray, got: np.ndarray, rtol: float, scale: float | None = None) -> bool:
    """Within ``rtol`` of the largest entry; NaN matches NaN (a mistake's output may have it)."""
    atol = rtol * (_scale(expected) if scale is None else scale)
    return bool(np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True))


def _gap(expected: np.ndarray, got: np.ndarray, rtol: float, scale: float) -> str:
    """The largest difference against the tolerance, when both are finite: for results
    that agree to the digits shown."""
    if not (np.isfinite(expected).all() and np.isfinite(got).all()):
        return ""
    return (f"\n  largest difference {float(np.abs(got - expected).max()):.3g}, "
            f"tolerance {rtol * scale:.3g}")


def close_number(expected: float, got: Any, case: Case) -> str | None:
    """One real number, within ``case.rtol`` of ``expected``."""
    value = as_number(got)
    if value is None:
        return f"expected a number, got {show(got)}"
    if not _close(np.array(expected), np.array(value), case.rtol):
        e, g = f"{float(expected):.6g}", f"{value:.6g}"
        if e == g:
            e, g = f"{float(expected):.15g}", f"{value:.15g}"
        return f"expected {e}, got {g}"
    return None


def same_bool(expected: bool, got: Any, case: Case) -> str | None:
    """``True`` or ``False`` (NumPy's too), equal to ``expected``."""
    if not isinstance(got, (bool, np.bool_)):
        return f"expected True or False, got {show(got)}"
    return None if bool(got) == bool(expected) else f"expected {bool(expected)}, got {bool(got)}"


def close_array(expected: np.ndarray, got: Any, case: Case) -> str | None:
    """A NumPy array of ``expected``'s shape, close to it."""
    if not isinstance(got, np.ndarray) or got.dtype.kind not in "iuf":
        return f"expected a NumPy array of numbers, got {show(got)}"
    if got.shape != expected.shape:
        return f"expected shape {expected.shape}, got shape {got.shape}"
    if not _close(expected, got, case.rtol):
        return (f"expected {show(expected)}\n  got      {show(got)}"
                + _gap(expected, got.astype(float), case.rtol, _scale(expected)))
    return None


def close_tensors(expected: list, got: Any, case: Case,
                  what: str = "result") -> str | None:
    """A list (or tuple) of tensors with ``expected``'s shapes and dtypes, close to it; the
    tolerance is relative to the largest entry over all of them."""
    n = len(expected)
    if not isinstance(got, (list, tuple)):
        return f"expected a list of {n} tensors, got {show(got)}"
    other = next((t for t in got if not is_tensor(t)), None)
    if other is not None:
        return f"expected a list of {n} tensors, got a list holding {show(other)}"
    if len(got) != n:
        return f"expected a list of {n} tensors, got {len(got)}"
    exp = [e.detach().double().cpu().numpy() for e in expected]
    scale = _scale(*exp)
    for k, (e, g, t) in enumerate(zip(exp, got, expected)):
        name = f"{what}[{k}]"
        if g.shape != t.shape:
            return f"{name}: expected shape {tuple(t.shape)}, got {tuple(g.shape)}"
        if g.dtype != t.dtype:
            return f"{name}: expected dtype {t.dtype}, got {g.dtype}"
        gv = g.detach().double().cpu().numpy()
        if not _close(e, gv, case.rtol, scale):
            return (f"{name}: expected {show(t)}\n  got      {show(g)}"
                    + _gap(e, gv, case.rtol, scale))
    return None
