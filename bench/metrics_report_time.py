#!/usr/bin/env python3
"""Wall time of the whole interpretability report against its 15-minute budget.

Runs `visualize.py metrics` with its default settings (all four parts, both default targets,
all three methods, 50 samples) on two runs x 256 Breakout frames, in this process, and prints
the seconds of each part (from report.json's `timing_s`), the total and, last,
`ratio=<total seconds / 900>` (at most 1 meets the budget).
Usage: .venv/bin/python bench/metrics_report_time.py [--run A B] [--frames 256] [--out DIR]
Default runs: the reference agents in agents/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import visualize  # noqa: E402
from attnjax.devices import machine_line  # noqa: E402

BUDGET_S = 15 * 60
REFERENCE = [str(ROOT / "agents" / "Breakout__attn0__s0"),
             str(ROOT / "agents" / "Breakout__attn0.005__s1")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs=2, default=REFERENCE, help="two run folders of one game")
    p.add_argument("--frames", type=int, default=256)
    p.add_argument("--out", default=None, help="keep the report here (default: a temp folder)")
    args = p.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="attnjax-metrics-"))
    argv = ["metrics", "--run", *args.run, "--frames", str(args.frames), "--out", str(out),
            "--no-progress"]
    t0 = time.monotonic()
    code = visualize.run(argv)  # one process: JAX start-up and compilation count
    total = time.monotonic() - t0
    if code != 0:
        return code
    timing = json.loads((out / "report.json").read_text())["timing_s"]
    print(machine_line())
    print(f"runs: {', '.join(Path(r).name for r in args.run)}; frames: {args.frames}; "
          f"report in {out}")
    for part, seconds in timing.items():
        print(f"  {part:<16} {seconds:8.1f} s")
    print(f"  {'total (wall)':<16} {total:8.1f} s  (budget {BUDGET_S} s)")
    print(f"ratio={total / BUDGET_S:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
