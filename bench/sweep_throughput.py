#!/usr/bin/env python3
"""A lambda grid (R = 6 runs) in one compiled program against the same 6 runs trained one after
another as single runs, each for the same iterations after compilation, in one process.

The timed iterations of the grid and of the single runs are interleaved. Prints the
aggregate SPS (agent steps per second over all runs) of both and, last,
`ratio=<grid/sequential>`. Defaults are sized for the 2-core CPU machine (Breakout, 8 envs x 32
steps, 1 epoch); pass --num-steps 128 --update-epochs 4 for the paper preset on a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnjax.devices import machine_line, prepare_process  # noqa: E402

prepare_process()  # before JAX runs anything, as train.py does

import jax  # noqa: E402

from attnjax.training.config import TrainConfig, expand_grid  # noqa: E402
from attnjax.training.loop import build_program  # noqa: E402

LAMBDAS = [0.0, 0.0005, 0.001, 0.002, 0.003, 0.005]


def compiled_program(configs: list[TrainConfig]):
    """(step function, state, program) of `configs` trained together, warmed up (compiled)."""
    program = build_program(configs)
    state, m = program.iterate(program.state)
    jax.block_until_ready(m)
    return program.iterate, state, program


def timed_iteration(program: list) -> float:
    """Seconds of one PPO iteration of a compiled program (its state is updated in place)."""
    compiled, state, _ = program
    t0 = time.perf_counter()
    state, m = compiled(state)
    jax.block_until_ready(m)
    program[1] = state
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--env-id", default="Breakout-v5")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=32)
    p.add_argument("--update-epochs", type=int, default=1)
    args = p.parse_args()
    base = TrainConfig(env_id=args.env_id, num_envs=args.num_envs, num_steps=args.num_steps,
                       update_epochs=args.update_epochs, wandb_mode="disabled")
    grid = expand_grid(base, LAMBDAS, [0])
    print(machine_line(), flush=True)
    print(f"device: {jax.devices()[0].device_kind}; {len(grid)} runs of {base.env_id}, "
          f"{base.num_envs} envs x {base.num_steps} steps, {base.update_epochs} epoch(s), "
          f"{args.iterations} timed iterations each")
    grid_program = list(compiled_program(grid))
    single_programs = [list(compiled_program([c])) for c in grid]
    # interleave the timed iterations so load from other processes hits both sides alike
    grid_s = sequential_s = 0.0
    for _ in range(args.iterations):
        grid_s += timed_iteration(grid_program)
        sequential_s += sum(timed_iteration(p) for p in single_programs)
    steps = len(grid) * args.iterations * base.batch_size
    grid_sps, sequential_sps = steps / grid_s, steps / sequential_s
    print(f"grid_sps={grid_sps:.1f}")
    print(f"sequential_sps={sequential_sps:.1f}")
    print(f"ratio={grid_sps / sequential_sps:.3f}")


if __name__ == "__main__":
    main()
