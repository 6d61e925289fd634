"""The one progress bar (attnjax/progress.py): count, rate and ETA; quiet when disabled."""

from __future__ import annotations

import io

from attnjax import progress
from attnjax.progress import ProgressBar, format_eta


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_off_a_terminal_show_count_rate_and_eta(capsys, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    with ProgressBar("playing", 10, every_s=1.0, unit="frames", info="x") as bar:
        bar.advance(1)  # t = 100: no line yet
        now[0] = 102.0
        bar.advance(1)  # 2 frames in 2 s, 8 left
        now[0] = 104.0
        bar.advance(2, info="loss 0.5")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "[playing] 2/10 frames (20%, 1.0/s average, ETA 0:00:08)  x"
    assert err[1] == "[playing] 4/10 frames (40%, 1.0/s average, ETA 0:00:06)  loss 0.5"


def test_resumed_units_do_not_count_in_the_rate(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    bar = ProgressBar("train", 1000, enabled=False, start=500)
    now[0] = 10.0
    bar.update(600)
    assert bar.rate == 10.0 and bar.done == 600


def test_disabled_or_no_lines_prints_nothing(capsys):
    for bar in (ProgressBar("a", 3, enabled=False, every_s=0.0),
                ProgressBar("b", 3, every_s=None)):
        bar.advance(3)
        bar.update(3, final=True)
        bar.close()
    assert capsys.readouterr() == ("", "")


def test_a_terminal_gets_the_rich_bar(monkeypatch):
    term = Terminal()
    monkeypatch.setattr(progress.sys, "stdout", term)
    with ProgressBar("drawing", 5, stream="stdout", unit="PNGs") as bar:
        bar.advance(3)
        bar.set_description("drawing PNGs")
    assert "drawing PNGs" in term.getvalue() and "3/5" in term.getvalue()


def test_format_eta():
    assert format_eta(3725) == "1:02:05"
    assert format_eta(float("inf")) == "?"
