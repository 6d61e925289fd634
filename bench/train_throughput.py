#!/usr/bin/env python3
"""Training throughput of the compiled PPO iteration on this machine, per execution mode, in one
process, interleaved.

Paper preset (attention network, Breakout-v5, 8 envs x 128 steps, 4 epochs x 4 minibatches of
256). On a multi-core CPU it times `--loops unroll` (the CPU default: one program, XLA's own
threads over all cores) against `--loops split` (each minibatch's rows over the cores as host
devices), alternating iterations after --warmup untimed ones each, plus the env ceiling
(envpool alone, random actions, same envs). On an accelerator it times scan (the default there)
against unroll. The process starts as train.py does (tcmalloc where the machine has it). Prints
agent steps/s of each and last `speedup=<default mode SPS / the other mode's SPS>`.
Usage: bench/train_throughput.py [--iterations 4] [--warmup 12] [--network attention|nature]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnjax.devices import machine_line, prepare_process  # noqa: E402

prepare_process()  # before JAX runs anything, as train.py does

import jax  # noqa: E402

from attnjax.model.envs import env_seeds, make_env  # noqa: E402
from attnjax.training.config import TrainConfig  # noqa: E402
from attnjax.training.loop import build_program  # noqa: E402
from attnjax.training.ppo import resolve_execution  # noqa: E402


def program(config: TrainConfig, warmup: int) -> dict:
    """A warmed-up training program (compiled by its first iteration, then `warmup` more
    untimed iterations: tcmalloc grows its heap once, in a process's first ~10) and its env."""
    built = build_program([config])
    t0 = time.perf_counter()
    state, metrics = built.iterate(built.state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        state, metrics = built.iterate(state)
        jax.device_get(metrics)
    return {"program": built, "state": state, "iterate": built.iterate, "seconds": 0.0,
            "compile_s": compile_s}


def env_ceiling(config: TrainConfig, repeats: int = 3) -> float:
    """Agent steps/s of envpool alone (the same XLA step in a scan, random actions)."""
    env = make_env(config.env_id, env_seeds(1, config.num_envs))
    state, _ = env.reset()

    @jax.jit
    def run(state, key):
        def body(s, k):
            s, _ = env.step(s, jax.random.randint(k, (config.num_envs,), 0, env.num_actions))
            return s, None
        return jax.lax.scan(body, state, jax.random.split(key, config.num_steps))[0]

    state = jax.block_until_ready(run(state, jax.random.PRNGKey(0)))
    t0 = time.perf_counter()
    for i in range(repeats):
        state = jax.block_until_ready(run(state, jax.random.PRNGKey(i + 1)))
    env.close()
    return repeats * config.batch_size / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=4, help="timed iterations per mode")
    p.add_argument("--warmup", type=int, default=12,
                   help="untimed iterations per mode after compiling (default 12)")
    p.add_argument("--network", default="attention", choices=("attention", "nature"))
    p.add_argument("--env-id", default="Breakout-v5")
    args = p.parse_args()
    base = TrainConfig(env_id=args.env_id, network=args.network, attn_coef=0.001,
                       wandb_mode="disabled")
    default_mode = resolve_execution(base)[1]
    print(machine_line(), flush=True)
    print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())} "
          f"({jax.default_backend()}), jax {jax.__version__}; default loops={default_mode}")
    print(f"config: {base.env_id}, {args.network}, {base.num_envs} envs x {base.num_steps} "
          f"steps, {base.update_epochs} epochs x {base.num_minibatches} minibatches of "
          f"{base.minibatch_size}")
    other = "split" if default_mode == "unroll" else "unroll"
    if other == "split" and len(jax.devices()) < 2:
        raise SystemExit("error: one CPU device: the split mode needs 2 or more host devices")
    modes = [default_mode, other]
    programs = {m: program(dataclasses.replace(base, loops=m), args.warmup) for m in modes}
    for _ in range(args.iterations):  # alternate: a machine getting busier slows both alike
        for prog in programs.values():
            t0 = time.perf_counter()
            prog["state"], metrics = prog["iterate"](prog["state"])
            jax.block_until_ready(metrics)
            prog["seconds"] += time.perf_counter() - t0
    sps = {m: args.iterations * base.batch_size / prog["seconds"] for m, prog in programs.items()}
    for m, prog in programs.items():
        print(f"compile_s[{m}]={prog['compile_s']:.1f}")
        print(f"train_sps[{m}]={sps[m]:.1f}")
        prog["program"].close()
    print(f"env_ceiling_sps={env_ceiling(base):.1f}")
    print(f"speedup={sps[default_mode] / sps[other]:.3f}")


if __name__ == "__main__":
    main()
