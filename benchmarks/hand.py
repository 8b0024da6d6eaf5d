"""A student's hand on a playground, and what the student sees: input → changed frame.

Shared by ``make bench`` (bench_playgrounds) and the browser test. The page is watched
by ``js/watch.js`` (every animation frame; a change counts once its frame is rendered),
and the inputs are real ones (Playwright's mouse and keyboard, through the browser's
input pipeline), at hand speed:

- ``key_presses``: ArrowRight on the lr slider's handle, a pause between presses;
- ``checkbox_toggles``: a click on a method's checkbox;
- ``typed_values``: a start coordinate typed into its box and Enter;
- ``contour_clicks``: a click on the landscape panel (start there);
- ``drag``: the lr handle dragged for a second in 25 moves sent on a fixed clock by the
  page's own timers (``js/drag.js``): a move is sent when its time comes, whether or not
  the page has drawn the last one, so a page that falls behind builds a queue that the
  measurement sees (Playwright's mouse would wait for the page to take each move).

Each returns latencies in ms, from the input event (keydown or mousedown) to the first
rendered frame whose plot differs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .lab import LR_HANDLE, LR_READOUT, PLAYGROUND, PLOT, poll, read_readout

WATCH_JS = (Path(__file__).parent / "js" / "watch.js").read_text()
DRAG_JS = (Path(__file__).parent / "js" / "drag.js").read_text()
PAUSE_S = 0.4  # between inputs: the plot has settled before the next one
TIMEOUT_S = 10
DRAG_MOVES, DRAG_S, DRAG_PX = 25, 1.0, 5


def watch(page: Any, selector: str = PLOT) -> None:
    page.evaluate(WATCH_JS, selector)


def _latency_after(page: Any, n_events: int, types: tuple[str, ...]) -> float | None:
    """ms from the first event of ``types`` recorded after ``n_events`` to the first
    change after it (None if the plot did not change within TIMEOUT_S)."""
    def found():
        return page.evaluate("""([n, types]) => {
            const s = window.__samlab, e = s.events.slice(n).find(e => types.includes(e.type));
            if (!e) return null;
            const c = s.changes.find(c => c.t > e.t);
            return c ? c.t - e.t : null; }""", [n_events, list(types)])
    return poll(found, TIMEOUT_S, 0.02)


def _measure(page: Any, act, types: tuple[str, ...]) -> float | None:
    n = page.evaluate("() => window.__samlab.events.length")
    act()
    latency = _latency_after(page, n, types)
    time.sleep(PAUSE_S)
    return latency


def key_presses(page: Any, n: int) -> list[float]:
    handle = page.locator(LR_HANDLE)
    handle.scroll_into_view_if_needed()
    handle.focus()
    keys = ["ArrowRight"] * (n // 2) + ["ArrowLeft"] * (n - n // 2)
    out = [_measure(page, lambda k=k: handle.press(k), ("keydown",)) for k in keys]
    return [v for v in out if v is not None]


def checkbox_toggles(page: Any, n: int, method: str = "asam") -> list[float]:
    box = page.locator(f"{PLAYGROUND} .samlab-method-{method} input")
    if not box.count():  # a playground without that method: the last one it offers
        box = page.locator(f"{PLAYGROUND} .widget-checkbox input").last
    out = [_measure(page, box.click, ("mousedown",)) for _ in range(n)]
    return [v for v in out if v is not None]


def typed_values(page: Any, values: list[float]) -> list[float]:
    box = page.locator(f"{PLAYGROUND} .samlab-x0-x input")
    out = []
    for v in values:
        box.fill(f"{v:g}")  # typed, not yet sent: the value goes on Enter
        out.append(_measure(page, lambda: box.press("Enter"), ("keydown",)))
    return [v for v in out if v is not None]


def contour_clicks(page: Any, n: int) -> list[float]:
    canvas = page.locator(f"{PLOT} canvas")
    canvas.scroll_into_view_if_needed()
    out = []
    for i in range(n):  # spread over the landscape panel (x 55..475, y 30..360 of the canvas)
        pos = {"x": 100 + 330 * ((i * 0.37) % 1), "y": 60 + 270 * ((i * 0.61 + 0.2) % 1)}
        out.append(_measure(page, lambda p=pos: canvas.click(position=p), ("mousedown",)))
    return [v for v in out if v is not None]


def drag(page: Any) -> dict:
    """Drag the lr handle for DRAG_S seconds in DRAG_MOVES moves on a fixed clock.

    Returns ``gap``: the longest time between rendered changes from the first move to the
    mouse-up (the plot following the hand), ``settle``: mouse-up → the last change, and
    whether that last frame shows the slider's final value (``shown`` vs ``readout``);
    ``late``: how late the latest move was sent (the page's timers were busy).
    """
    # A first click in a cell's output makes the cell active, and JupyterLab may scroll it:
    # click the outcome table first, as a student's first click would, then find the handle.
    page.locator(f"{PLAYGROUND} .samlab-outcomes").click()
    page.locator(LR_HANDLE).scroll_into_view_if_needed()
    time.sleep(0.3)  # the notebook settles where it scrolled to
    box = page.locator(LR_HANDLE).bounding_box()
    x = box["x"] + box["width"] / 2
    # Toward the end of the track with more room, never past it (a value clamped at the
    # end would stop changing the plot, and the drag would measure nothing).
    track = page.locator(f"{PLAYGROUND} .samlab-lr .noUi-target").bounding_box()
    room_left, room_right = x - track["x"], track["x"] + track["width"] - x
    px = (-1 if room_left > room_right else 1) * min(DRAG_PX, 0.8 * max(room_left, room_right)
                                                     / DRAG_MOVES)
    n = page.evaluate("() => window.__samlab.changes.length")
    late = page.evaluate(DRAG_JS, [LR_HANDLE, DRAG_MOVES, DRAG_S * 1000, px])
    readout = float(read_readout(page.locator(LR_READOUT)))

    def settled():  # nothing new drawn for a second
        r = page.evaluate("() => window.__samlab.changes.length ? "
                          "performance.now() - window.__samlab.changes.at(-1).t : 1e9")
        return r > 1000

    poll(settled, 30, 0.1)
    rec = page.evaluate("""(n) => { const s = window.__samlab;
        const downs = s.events.filter(e => e.type === 'mousedown');
        const ups = s.events.filter(e => e.type === 'mouseup');
        return {down: downs.at(-1).t, up: ups.at(-1).t, changes: s.changes.slice(n)}; }""", n)
    times = [rec["down"]] + [c["t"] for c in rec["changes"] if c["t"] <= rec["up"]] + [rec["up"]]
    changes = rec["changes"]
    last = changes[-1] if changes else None
    return {
        "gap": max(b - a for a, b in zip(times, times[1:])),
        "settle": max(0.0, last["t"] - rec["up"]) if last else float("nan"),
        "redraws": len(changes),
        "shown": last["lr"] if last else None,
        "readout": readout,
        "late": late,
    }
