"""A headless page of the system chromium, driven by Playwright, recording the console;
the playground's selectors and the scripts that read the page (benchmarks/js/)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .server import CHROMIUM, CHROMIUM_ARGS, VIEWPORT


@dataclass
class LabPage:
    """A chromium page, what its console said (errors and warnings), dialogs answered."""

    page: Any
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def console_tail(self, lines: int = 30) -> str:
        return "\n".join(self.console[-lines:]) or "(nothing)"


@contextmanager
def chromium_page(chromium: Path = CHROMIUM) -> Iterator[LabPage]:
    """A fresh headless chromium page (1400x1000) driven by Playwright."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(30_000)
            lab_page = LabPage(page)

            def on_console(message: Any) -> None:
                if message.type in ("error", "warning"):
                    lab_page.console.append(f"[{message.type}] {message.text[:600]}")

            page.on("console", on_console)
            page.on("pageerror", lambda error: lab_page.console.append(f"[pageerror] {error}"))
            yield lab_page
        finally:
            browser.close()


PLAYGROUND = ".samlab-playground"
PLOT = f"{PLAYGROUND} .samlab-plot"  # the canvas view (samlab/widgets/js/view.js)
LR_HANDLE = f"{PLAYGROUND} .samlab-lr .noUi-handle"
LR_READOUT = f"{PLAYGROUND} .samlab-lr .widget-readout"

_JS = Path(__file__).resolve().parents[1] / "js"
NOTEBOOK_STATE_JS = (_JS / "notebook_state.js").read_text()
PLOT_TRACES_JS = (_JS / "plot_traces.js").read_text()
PLAYGROUND_STATE_JS = (_JS / "playground_state.js").read_text()
