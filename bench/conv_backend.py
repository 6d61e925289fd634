#!/usr/bin/env python3
"""Why attnjax moves XLA:CPU's convolutions off YNNPACK: the paper preset trained with Eigen
convolutions (attnjax's default for training, `attnjax.devices.eigen_convolution_options`)
against XLA's default (YNNPACK fusions for convolutions, `ATTNJAX_XLA_CPU_DEFAULTS=1`),
interleaved in one script run.

Each backend trains in its own worker process (bench/attnjax_worker.py, with or without
`ATTNJAX_XLA_CPU_DEFAULTS=1`), so the two never share XLA state; after a warm-up iteration each
(compilation), they train the same number of iterations in alternating rounds. Prints agent
steps/s of each and, last, `speedup=<Eigen SPS / YNNPACK SPS>`.
Usage: bench/conv_backend.py [--rounds 3] [--iterations 2] [--network attention|nature]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--iterations", type=int, default=2,
                   help="PPO iterations (1024 agent steps) per backend per round (default 2)")
    p.add_argument("--network", default="attention", choices=("attention", "nature"))
    args = p.parse_args()
    from peer_throughput import WorkerTrainer, interleaved_sps

    from attnjax.devices import machine_line

    print(machine_line(), flush=True)

    command = [sys.executable, str(ROOT / "bench" / "attnjax_worker.py"), "--network",
               args.network]
    base = dict(os.environ)
    trainers = {
        "eigen": WorkerTrainer(command, {**base, "ATTNJAX_XLA_CPU_DEFAULTS": "0"}),
        "ynnpack": WorkerTrainer(command, {**base, "ATTNJAX_XLA_CPU_DEFAULTS": "1"}),
    }
    for name, trainer in trainers.items():
        print(f"{name}: {trainer.banner}", flush=True)
    t0 = time.perf_counter()
    sps = interleaved_sps(trainers, args.rounds, args.iterations)
    for trainer in trainers.values():
        trainer.close()
    print(f"wall_s={time.perf_counter() - t0:.0f}")
    print(f"speedup={sps['eigen'] / sps['ynnpack']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
