#!/usr/bin/env python3
"""A lambda grid (R = 6 runs) in one compiled program against the same 6 runs trained one after
another as single runs, each for the same iterations after compilation, in one process.

Prints the aggregate SPS (agent steps per second over all runs) of both and, last,
`ratio=<grid/sequential>`. Defaults are sized for the 2-core CPU machine (Breakout, 8 envs x 32
steps, 1 epoch); pass --num-steps 128 --update-epochs 4 for the paper preset on a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from attnjax.config import TrainConfig, expand_grid  # noqa: E402
from attnjax.envs import env_seeds, make_env  # noqa: E402
from attnjax.networks import make_network  # noqa: E402
from attnjax.ppo import init_state, make_iterate  # noqa: E402

LAMBDAS = [0.0, 0.0005, 0.001, 0.002, 0.003, 0.005]


def steps_per_second(configs: list[TrainConfig], iterations: int) -> float:
    """Aggregate agent steps/s of `configs` trained together, after compilation."""
    base = configs[0]
    seeds = [s for c in configs for s in env_seeds(c.seed, c.num_envs)]
    env = make_env(base.env_id, seeds)
    network = make_network(base.network, env.num_actions, base.attn_heads)
    state = init_state(configs, network, *env.reset())
    compiled = make_iterate(base, network, env.step, len(configs)).lower(state).compile()
    state, m = compiled(state)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(iterations):
        state, m = compiled(state)
    jax.block_until_ready(m)
    elapsed = time.perf_counter() - t0
    env.close()
    return len(configs) * iterations * base.batch_size / elapsed


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
    print(f"device: {jax.devices()[0].device_kind}; {len(grid)} runs of {base.env_id}, "
          f"{base.num_envs} envs x {base.num_steps} steps, {base.update_epochs} epoch(s), "
          f"{args.iterations} timed iterations each")
    grid_sps = steps_per_second(grid, args.iterations)
    print(f"grid_sps={grid_sps:.1f}", flush=True)
    t_total = 0.0
    for config in grid:
        t_total += args.iterations * config.batch_size / steps_per_second([config], args.iterations)
    sequential_sps = len(grid) * args.iterations * base.batch_size / t_total
    print(f"sequential_sps={sequential_sps:.1f}")
    print(f"ratio={grid_sps / sequential_sps:.3f}")


if __name__ == "__main__":
    main()
