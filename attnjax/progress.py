"""One progress bar for every long loop: training steps, frames played, saliency chunks, games.

Why one: the tools had three bars that each spelled out rich's columns and their own fallback.
On a terminal this is a rich bar (description, bar, count, extra info, elapsed time, ETA); where
output is not a terminal (CI, nohup, pipes) it prints one plain line every `every_s` seconds
with the count, rate and ETA, so logs stay short; disabled, it prints nothing.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO


def format_eta(seconds: float) -> str:
    """Seconds left as H:MM:SS ("?" when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class ProgressBar:
    """Progress of `total` units (from `start`, a resumed run's units already done).

    enabled: False prints nothing. stream: "stderr" (default: the tools' output stays clean on
    stdout) or "stdout". every_s: seconds between plain lines when the stream is not a
    terminal (None: no plain lines). info: extra text after the count (e.g. a loss), changed
    by `advance`/`update`.
    """

    def __init__(self, label: str, total: int, enabled: bool = True, *, unit: str = "frames",
                 start: int = 0, every_s: float | None = 15.0, stream: str = "stderr",
                 info: str = "") -> None:
        self.label, self.total, self.enabled, self.unit = label, total, enabled, unit
        self.start = self.done = start
        self.every_s, self.info = every_s, info
        self.t0 = self._last_line = time.monotonic()
        self._out: TextIO = sys.stdout if stream == "stdout" else sys.stderr
        self._bar: Any = None
        if enabled and self._out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(file=self._out))
            self._task = self._bar.add_task(label, total=total, completed=start, info=info)
            self._bar.start()

    @property
    def rate(self) -> float:
        """Units per second since the bar started (resumed units not counted)."""
        return (self.done - self.start) / max(time.monotonic() - self.t0, 1e-9)

    def line(self) -> str:
        """The plain progress line: label, count, percentage, average rate since the start
        (compilation included), ETA, info."""
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        pct = 100.0 * self.done / max(self.total, 1)
        info = f"  {self.info}" if self.info else ""
        return (f"[{self.label}] {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%, "
                f"{rate:,.1f}/s average, ETA {format_eta(eta)}){info}")

    def update(self, completed: int, info: str | None = None, final: bool = False) -> None:
        """Set the count to `completed`; a plain line is due every `every_s` s (and `final`)."""
        self.done = completed
        if info is not None:
            self.info = info
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, info=self.info)
            return
        now = time.monotonic()
        if self.every_s is not None and (final or now - self._last_line >= self.every_s):
            self._last_line = now
            print(self.line(), file=self._out, flush=True)

    def advance(self, n: int = 1, info: str | None = None) -> None:
        """`n` more units done."""
        self.update(self.done + n, info)

    def set_description(self, label: str) -> None:
        self.label = label
        if self._bar is not None:
            self._bar.update(self._task, description=label)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
