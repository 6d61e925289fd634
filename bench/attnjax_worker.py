#!/usr/bin/env python3
"""The attnjax side of bench/peer_throughput.py: one paper-preset training program in a process
of its own, as `train.py` runs it (restarted with tcmalloc where train.py would be, the CPU's
cores as host devices, the default execution).

Why a process of its own: two compiled programs in one process share XLA's thread pool and
caches, and the bench measured the attention program ~15 % slower beside the Nature-CNN one
than `train.py` trains it alone. Protocol (as bench/sb3_worker.py): after building, compiling
and --warmup iterations it prints `ready ...`; `train K` trains K more iterations and answers
`seconds <wall time> page_faults_per_iteration <minor faults>`; `quit` ends it.
Usage: .venv/bin/python bench/attnjax_worker.py --network attention|nature [--warmup 1]
       [--loops auto|unroll|split|scan] [--microbatch-size 0]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnjax.devices import eigen_convolution_options, prepare_process  # noqa: E402

MALLOC = prepare_process()  # before JAX runs anything, as train.py does

import jax  # noqa: E402

from attnjax.training.config import TrainConfig  # noqa: E402
from attnjax.training.loop import build_program, parameter_count  # noqa: E402
from attnjax.training.ppo import resolve_execution, rows_per_gradient_pass  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("attention", "nature"), default="attention")
    parser.add_argument("--env-id", default="Breakout-v5")
    parser.add_argument("--loops", default="auto", choices=("auto", "unroll", "split", "scan"),
                        help="train.py's --loops (default auto: its default on this machine)")
    parser.add_argument("--microbatch-size", type=int, default=0,
                        help="train.py's --microbatch-size (default 0: its default here)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="iterations before `ready` (the first compiles; default 1)")
    args = parser.parse_args()
    config = TrainConfig(env_id=args.env_id, network=args.network, loops=args.loops,
                         microbatch_size=args.microbatch_size, wandb_mode="disabled")
    program = build_program([config])
    state, iterate = program.state, program.iterate

    def train(iterations: int) -> tuple[float, float]:
        """(wall seconds, minor page faults per iteration) of `iterations` iterations."""
        nonlocal state
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        for _ in range(iterations):  # each call's metrics read back, as train.py's loop does
            state, metrics = iterate(state)
            jax.device_get(metrics)
        took = time.perf_counter() - t0
        return took, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / iterations

    train(args.warmup)  # compilation, the first rollout, the allocator's growth
    _, loops, _ = resolve_execution(config)
    backend = "eigen" if eigen_convolution_options() else "ynnpack"
    print(f"ready jax={jax.__version__} devices={len(jax.devices())} loops={loops} "
          f"microbatch={rows_per_gradient_pass(config)} backend={backend} malloc={MALLOC} "
          f"params={parameter_count(config)}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        took, faults = train(int(words[1]))
        print(f"seconds {took:.6f} page_faults_per_iteration {faults:.0f}", flush=True)
    program.close()


if __name__ == "__main__":
    main()
