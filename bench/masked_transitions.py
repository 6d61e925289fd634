#!/usr/bin/env python3
"""What masking envpool's reset steps costs in data: the share of rollout transitions that
`losses.valid_transitions` drops (the step after each done, whose action envpool ignores).

Plays Breakout-v5 with the paper's preprocessing (8 envs x 128 steps per iteration, like one
training batch) with a policy (random actions by default, or a trained agent's sampled
actions with --run) and prints the share of masked transitions per batch and last
`masked_ratio=<masked / all transitions>`.
Usage: bench/masked_transitions.py [--iterations 10] [--run RUN]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from attnjax.devices import machine_line  # noqa: E402
from attnjax.model.envs import env_seeds, make_env  # noqa: E402
from attnjax.training.losses import valid_transitions  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--run", default=None, help="a trained agent to act (default: random)")
    p.add_argument("--env-id", default="Breakout-v5")
    args = p.parse_args()
    print(machine_line(), flush=True)
    num_envs, num_steps = 8, 128
    agent = None
    if args.run:
        from attnjax import load_agent

        agent = load_agent(args.run)
    env = make_env(args.env_id, env_seeds(0, num_envs))
    state, obs = env.reset()

    @jax.jit
    def rollout(state, obs, done, key):
        def body(carry, k):
            state, obs, done = carry
            if agent is None:
                actions = jax.random.randint(k, (num_envs,), 0, env.num_actions)
            else:
                logits = agent.network.apply({"params": agent.params}, obs).logits
                actions = jax.random.categorical(k, logits).astype(jnp.int32)
            state, step = env.step(state, actions)
            return (state, step.obs, step.done), done
        (state, obs, done), dones = jax.lax.scan(body, (state, obs, done),
                                                 jax.random.split(key, num_steps))
        return state, obs, done, dones  # dones [T, N]: obs[t] ended the previous episode

    done = jnp.zeros(num_envs, bool)
    shares = []
    for i in range(args.iterations):
        state, obs, done, dones = rollout(state, obs, done, jax.random.PRNGKey(i))
        mask = np.asarray(valid_transitions(dones, env.reset_step_after_done))
        shares.append(1.0 - mask.mean())
    env.close()
    who = args.run or "random actions"
    print(f"{args.env_id}, {who}: masked share per batch of {num_envs * num_steps}: "
          + " ".join(f"{s:.3f}" for s in shares))
    print(f"masked_ratio={np.mean(shares):.4f}")


if __name__ == "__main__":
    main()
