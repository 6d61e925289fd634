#!/usr/bin/env python3
"""How much faster the paper preset trains with one of attnjax's CPU process settings than
without it, interleaved in one script run:
- `--setting malloc`: tcmalloc preloaded (`attnjax.devices.restart_with_tcmalloc`; the
  machine must have it, e.g. Debian's libtcmalloc-minimal4) against glibc's malloc
  (`ATTNJAX_MALLOC_DEFAULTS=1`).
- `--setting convolutions`: Eigen convolutions (`attnjax.devices.eigen_convolution_options`)
  against XLA's default YNNPACK convolution fusions (`ATTNJAX_XLA_CPU_DEFAULTS=1`).

Each side trains in its own worker process (bench/attnjax_worker.py, which starts as train.py
does, with or without the setting's opt-out variable), so the two never share XLA or malloc
state; after a warm-up iteration each (compilation), they train the same number of iterations
in alternating rounds. The workers report their page faults per iteration too. Prints agent
steps/s of each and, last, `speedup=<SPS with the setting / SPS without>`.
Usage: bench/setting_speedup.py [--setting malloc|convolutions] [--rounds 3] [--iterations 2]
       [--network attention|nature]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# setting -> (its opt-out variable, name with it, name without it)
SETTINGS = {
    "malloc": ("ATTNJAX_MALLOC_DEFAULTS", "tcmalloc", "glibc"),
    "convolutions": ("ATTNJAX_XLA_CPU_DEFAULTS", "eigen", "ynnpack"),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setting", default="malloc", choices=tuple(SETTINGS),
                   help="which setting to time with and without (default malloc)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--iterations", type=int, default=2,
                   help="PPO iterations (1024 agent steps) per side per round (default 2)")
    p.add_argument("--network", default="attention", choices=("attention", "nature"))
    args = p.parse_args()
    from peer_throughput import WorkerTrainer, interleaved_sps

    from attnjax.devices import machine_line, tcmalloc_library

    print(machine_line(), flush=True)
    variable, with_name, without_name = SETTINGS[args.setting]
    if args.setting == "malloc" and tcmalloc_library() is None:
        print("error: no tcmalloc on this machine; install it (Debian/Ubuntu: apt-get install "
              "libtcmalloc-minimal4) and run again", file=sys.stderr)
        return 2
    command = [sys.executable, str(ROOT / "bench" / "attnjax_worker.py"), "--network",
               args.network]
    base = dict(os.environ)
    trainers = {
        with_name: WorkerTrainer(command, {**base, variable: "0"}),
        without_name: WorkerTrainer(command, {**base, variable: "1"}),
    }
    for name, trainer in trainers.items():
        print(f"{name}: {trainer.banner}", flush=True)
    t0 = time.perf_counter()
    sps = interleaved_sps(trainers, args.rounds, args.iterations)
    for name, trainer in trainers.items():
        faults = trainer.last_reply.split("page_faults_per_iteration")[-1].strip()
        print(f"page_faults_per_iteration[{name}]={faults} (last round)")
        trainer.close()
    print(f"wall_s={time.perf_counter() - t0:.0f}")
    print(f"speedup={sps[with_name] / sps[without_name]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
