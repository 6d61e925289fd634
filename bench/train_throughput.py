#!/usr/bin/env python3
"""Training throughput of the compiled PPO iteration against its two ceilings, in one process.

Paper preset (attention network, Breakout-v5, 8 envs x 128 steps, 4 epochs x 4 minibatches).
Prints compile time, training SPS (agent steps/s), the env ceiling (envpool alone, random
actions, same envs), the compute ceiling (the same jitted loss+gradient on one minibatch timed
standalone x minibatches x epochs, plus one rollout's forward passes), and last
`efficiency=<SPS / min(env ceiling, compute ceiling)>`.
Usage: bench/train_throughput.py [--iterations 3] [--env-id Breakout-v5] [--update-epochs 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from attnjax.config import TrainConfig  # noqa: E402
from attnjax.envs import env_seeds, make_env  # noqa: E402
from attnjax.losses import LossCoefficients, Minibatch, ppo_loss  # noqa: E402
from attnjax.networks import init_params, make_network  # noqa: E402
from attnjax.ppo import init_state, make_iterate  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() (which must block), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--env-id", default="Breakout-v5")
    p.add_argument("--update-epochs", type=int, default=4)
    args = p.parse_args()
    config = TrainConfig(env_id=args.env_id, update_epochs=args.update_epochs,
                         attn_coef=0.001, wandb_mode="disabled")
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    env = make_env(config.env_id, env_seeds(0, config.num_envs))
    network = make_network(config.network, env.num_actions, config.attn_heads)
    state = init_state([config], network, *env.reset())
    iterate = make_iterate(config, network, env.step, num_runs=1,
                           reset_step_after_done=env.reset_step_after_done)

    t0 = time.perf_counter()
    compiled = iterate.lower(state).compile()
    compile_s = time.perf_counter() - t0
    state, m = compiled(state)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(args.iterations):
        state, m = compiled(state)
    jax.block_until_ready(m)
    train_sps = args.iterations * config.batch_size / (time.perf_counter() - t0)

    # env ceiling: the same envpool XLA step in a scanned loop with random actions
    env_state = state.env_state

    @jax.jit
    def env_only(env_state, key):
        def body(carry, k):
            s, _ = env.step(carry, jax.random.randint(k, (config.num_envs,), 0, env.num_actions))
            return s, None
        env_state, _ = jax.lax.scan(body, env_state, jax.random.split(key, config.num_steps))
        return env_state

    holder = {"s": env_state}

    def run_env():
        holder["s"] = env_only(holder["s"], jax.random.PRNGKey(0))
        jax.block_until_ready(holder["s"])

    env_sps = config.batch_size / timed(run_env, 3)

    # compute ceiling: standalone minibatch gradient and rollout forward passes
    params = init_params(network, jax.random.PRNGKey(0))
    mb = config.minibatch_size
    key = jax.random.PRNGKey(1)
    batch = Minibatch(
        obs=jax.random.randint(key, (mb, 4, 84, 84), 0, 255).astype(jnp.uint8),
        actions=jnp.zeros(mb, jnp.int32), log_probs=jnp.full(mb, -1.4),
        values=jnp.zeros(mb), advantages=jax.random.normal(key, (mb,)), returns=jnp.ones(mb),
        mask=jnp.ones(mb),
    )

    @jax.jit
    def grad_step(params, batch):
        def loss(p):
            out = network.apply({"params": p}, batch.obs)
            return ppo_loss(out.logits, out.value, out.attention, batch,
                            LossCoefficients(attn_coef=0.001))[0]
        return jax.grad(loss)(params)

    forward = jax.jit(lambda p, o: network.apply({"params": p}, o).logits)
    obs = batch.obs[: config.num_envs]
    grad_s = timed(lambda: jax.block_until_ready(grad_step(params, batch)), 3)
    fwd_s = timed(lambda: jax.block_until_ready(forward(params, obs)), 10)
    compute_s = grad_s * config.num_minibatches * config.update_epochs + fwd_s * config.num_steps
    compute_sps = config.batch_size / compute_s

    print(f"config: {config.env_id}, {config.num_envs} envs x {config.num_steps} steps, "
          f"{config.update_epochs} epochs x {config.num_minibatches} minibatches of {mb}")
    print(f"compile_s={compile_s:.1f}")
    print(f"train_sps={train_sps:.1f}")
    print(f"env_ceiling_sps={env_sps:.1f}")
    print(f"compute_ceiling_sps={compute_sps:.1f}  (grad {grad_s * 1e3:.0f} ms/minibatch, "
          f"forward {fwd_s * 1e3:.1f} ms/step)")
    print(f"efficiency={train_sps / min(env_sps, compute_sps):.3f}")
    env.close()


if __name__ == "__main__":
    main()
