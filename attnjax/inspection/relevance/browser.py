"""Debian's Chromium, headless, driven by Playwright's Python API: how the viewer's browser tests
and the documentation picture (docs/make_pictures.py) open the viewer, one way for both.

Playwright never downloads a browser here: it launches the executable at CHROMIUM
(`.ci/install-browser.sh` installs it; ATTNJAX_CHROMIUM points elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("ATTNJAX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = (1500, 950)  # width, height: the screenshots' window
READY = "body[data-ready=true]"  # set by viewer.js once the first frame is drawn


def launch(playwright: Any) -> Any:
    """A headless Chromium browser from a started `sync_playwright()`."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)


def open_viewer(page: Any, path: Path) -> None:
    """Load a viewer file into a page and wait until its first frame is drawn."""
    page.goto(Path(path).resolve().as_uri())
    page.wait_for_selector(READY, timeout=15_000)
