#!/usr/bin/env python3
"""How much faster the paper preset trains with one of attnjax's CPU settings than with the
alternative, interleaved in one script run:
- `--setting malloc`: tcmalloc preloaded (`attnjax.devices.restart_with_tcmalloc`; the
  machine must have it, e.g. Debian's libtcmalloc-minimal4) against glibc's malloc
  (`ATTNJAX_MALLOC_DEFAULTS=1`).
- `--setting convolutions`: Eigen convolutions (`attnjax.devices.eigen_convolution_options`)
  against XLA's default YNNPACK convolution fusions (`ATTNJAX_XLA_CPU_DEFAULTS=1`).
- `--setting loops`: `--loops unroll` (one program over all cores, the CPU default) against
  `--loops split` (each minibatch's rows split over the cores as host devices).
- `--setting microbatch`: each minibatch's gradient as 4 passes of 64 rows, summed
  (`--microbatch-size 64`), against one pass over its 256 rows.

Each side trains in its own worker process (bench/attnjax_worker.py, which starts as train.py
does, with the side's environment variable or flags), so the two never share XLA or malloc
state; after peer_throughput's WARMUP iterations each (compilation, the allocator's growth),
they train the same number of iterations in alternating rounds. By default both workers live
through all rounds, the idle one waiting beside the one that trains; with --fresh every round
starts a new worker for each side and ends it after its iterations, so that the measured process
is the only one on the machine, as a lone train.py is (an idle process beside it makes glibc's
page faults dearer). The workers report their page faults per iteration too. Prints agent
steps/s of each and, last, `speedup=<SPS of the first side named above / SPS of the second>`.
Usage: bench/setting_speedup.py [--setting malloc|convolutions|loops|microbatch] [--rounds 3]
       [--iterations 2] [--fresh] [--network attention|nature]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# setting -> ((name, environment variables, worker arguments) with it, the same without it)
SETTINGS = {
    "malloc": (("tcmalloc", {"ATTNJAX_MALLOC_DEFAULTS": "0"}, []),
               ("glibc", {"ATTNJAX_MALLOC_DEFAULTS": "1"}, [])),
    "convolutions": (("eigen", {"ATTNJAX_XLA_CPU_DEFAULTS": "0"}, []),
                     ("ynnpack", {"ATTNJAX_XLA_CPU_DEFAULTS": "1"}, [])),
    "loops": (("unroll", {}, ["--loops", "unroll"]), ("split", {}, ["--loops", "split"])),
    "microbatch": (("microbatch64", {}, ["--microbatch-size", "64"]),
                   ("whole256", {}, ["--microbatch-size", "256"])),
}


def faults_of(trainer) -> str:
    """The page faults per iteration of the worker's last `train` answer."""
    return trainer.last_reply.split("page_faults_per_iteration")[-1].strip()


def fresh_worker_sps(sides: dict[str, tuple[list[str], dict]], rounds: int,
                     iterations: int) -> dict[str, float]:
    """Agent steps/s of each side over `rounds` rounds, each round starting one worker per side
    in turn (order alternating), training it `iterations` iterations after its warm-up, and
    ending it before the next starts; prints every round and the totals as `sps[name]=...`."""
    from peer_throughput import WorkerTrainer

    seconds = dict.fromkeys(sides, 0.0)
    names = list(sides)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            trainer = WorkerTrainer(*sides[name])
            took = trainer.train(iterations)
            trainer.close()
            seconds[name] += took
            print(f"round {round_ + 1}: {name:15s} {iterations * 1024 / took:7.1f} steps/s, "
                  f"{faults_of(trainer)} page faults per iteration", flush=True)
    sps = {name: rounds * iterations * 1024 / s for name, s in seconds.items()}
    for name, value in sps.items():
        print(f"sps[{name}]={value:.1f}")
    return sps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setting", default="malloc", choices=tuple(SETTINGS),
                   help="which setting to time with and without (default malloc)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--iterations", type=int, default=2,
                   help="PPO iterations (1024 agent steps) per side per round (default 2)")
    p.add_argument("--fresh", action="store_true",
                   help="a new worker per side and round, alone on the machine while it trains")
    p.add_argument("--network", default="attention", choices=("attention", "nature"))
    args = p.parse_args()
    from peer_throughput import WARMUP, WorkerTrainer, interleaved_sps

    from attnjax.devices import machine_line, tcmalloc_library

    print(machine_line(), flush=True)
    (with_name, *_), (without_name, *_) = SETTINGS[args.setting]
    if args.setting == "malloc" and tcmalloc_library() is None:
        print("error: no tcmalloc on this machine; install it (Debian/Ubuntu: apt-get install "
              "libtcmalloc-minimal4) and run again", file=sys.stderr)
        return 2
    command = [sys.executable, str(ROOT / "bench" / "attnjax_worker.py"), "--warmup",
               str(WARMUP), "--network", args.network]
    sides = {name: (command + arguments, {**os.environ, **variables})
             for name, variables, arguments in SETTINGS[args.setting]}  # name -> (command, env)
    t0 = time.perf_counter()
    if args.fresh:
        sps = fresh_worker_sps(sides, args.rounds, args.iterations)
    else:
        trainers = {name: WorkerTrainer(*side) for name, side in sides.items()}
        for name, trainer in trainers.items():
            print(f"{name}: {trainer.banner}", flush=True)
        sps = interleaved_sps(trainers, args.rounds, args.iterations)
        for name, trainer in trainers.items():
            print(f"page_faults_per_iteration[{name}]={faults_of(trainer)} (last round)")
            trainer.close()
    print(f"wall_s={time.perf_counter() - t0:.0f}")
    print(f"speedup={sps[with_name] / sps[without_name]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
