#!/usr/bin/env python3
"""Where one paper-preset PPO iteration spends its time on this CPU, against the CPU's limit.

Times, each compiled on its own with attnjax's convolution settings (Eigen), one call of each
per round in `--repeats` alternating rounds (medians):
env stepping (128 steps of 8 envpool Breakout envs, fixed actions), the rollout's forward
passes (128 x [8] frames), the two interleaved as training runs them (each step's forward,
sampled actions, env step: what the hand-offs between XLA's and envpool's threads cost),
GAE ([128, 8]), and one minibatch update of 256 frames split into
forward (loss), forward + backward (gradient, as training computes it: in passes of
`--microbatch-size` rows, 64 on CPU) and the optimizer (Adam step); then the whole
compiled iteration as training runs it. The iteration is predicted from its parts as
interleaved rollout + GAE + 16 x gradient + 16 x optimizer and compared with the measured one.
Achieved GFLOP/s come from XLA's own flop counts of each program (`cost_analysis`; a loop's
body counts once, so the rollout's are one step's times its steps), against
this machine's measured peak: a 2048 x 2048 fp32 matmul and a batch-1024 convolution of the
network's second layer, timed in the same process. "cores busy" is the process's CPU time
(all threads, XLA's and envpool's) over the wall time: below the machine's cores, threads waited.
Usage: .venv/bin/python bench/profile_iteration.py [--repeats 5] [--network attention|nature]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from attnjax.devices import (  # noqa: E402
    eigen_convolution_options,
    machine_line,
    prepare_process,
)

prepare_process()  # as train.py does, so the whole iteration is what a user runs

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from conv_contraction import alternating_medians, process_cpu_seconds  # noqa: E402

from attnjax.model.envs import env_seeds, make_env  # noqa: E402
from attnjax.model.networks import init_params, make_network  # noqa: E402
from attnjax.training.config import TrainConfig  # noqa: E402
from attnjax.training.loop import build_program  # noqa: E402
from attnjax.training.losses import Minibatch, gae, ppo_loss  # noqa: E402
from attnjax.training.ppo import (  # noqa: E402
    apply_gradients,
    loss_coefficients,
    make_minibatch_gradient,
    make_optimizer,
    resolve_microbatch,
)


class Timing(NamedTuple):
    seconds: float  # median wall seconds per call
    flops: float  # XLA's flop count of the program
    cores_busy: float  # median process CPU seconds / wall seconds per call (threads' idle time)


def compile_part(fn, args):
    """(the compiled program after one warm-up call, XLA's flop count of it)."""
    compiled = jax.jit(fn, compiler_options=eigen_convolution_options()).lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    jax.block_until_ready(compiled(*args))
    return compiled, float((cost or {}).get("flops", 0.0))


def timed_rounds(parts: dict, repeats: int) -> dict[str, Timing]:
    """Each part {name: (fn, args)} compiled, then `repeats` alternating rounds calling every
    part once, so that a VM that slows down for a while slows every part alike."""
    programs = {name: compile_part(fn, args) for name, (fn, args) in parts.items()}
    calls = {name: functools.partial(programs[name][0], *args)  # each part with its own inputs
             for name, (_, args) in parts.items()}
    busy: dict[str, float] = {}
    ms = alternating_medians(calls, (), tuple(parts), repeats, 1, busy)
    return {name: Timing(ms[name] / 1e3, programs[name][1], busy[name]) for name in parts}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5,
                   help="rounds, each timing one call of every part (default 5)")
    p.add_argument("--network", default="attention", choices=("attention", "nature"))
    args = p.parse_args()
    config = TrainConfig(env_id="Breakout-v5", network=args.network, wandb_mode="disabled")
    n, t, mb = config.num_envs, config.num_steps, config.minibatch_size
    rng = np.random.default_rng(0)
    env = make_env(config.env_id, env_seeds(0, n))
    env_state, _ = env.reset()
    network = make_network(config.network, env.num_actions, config.attn_heads)
    params = init_params(network, jax.random.PRNGKey(0))
    tx = make_optimizer(config)
    opt_state = tx.init(params)
    frames = jnp.asarray(rng.integers(0, 256, (t, n, 4, 84, 84), dtype=np.uint8))
    actions = jnp.ones((n,), jnp.int32)

    def env_steps(env_state):
        return jax.lax.scan(lambda s, _: (env.step(s, actions)[0], None), env_state, None,
                            length=t)[0]

    def rollout_forward(params, frames):  # [T, N, 4, 84, 84]
        return jax.lax.map(lambda obs: network.apply({"params": params}, obs).logits, frames)

    def rollout_interleaved(params, env_state, key):
        """The two above as training runs them: each step's forward, sampled actions, env step."""
        def step(carry, _):
            env_state, obs, key = carry  # obs [N, 4, 84, 84]
            key, sample_key = jax.random.split(key)
            logits = network.apply({"params": params}, obs).logits
            env_state, result = env.step(
                env_state, jax.random.categorical(sample_key, logits).astype(jnp.int32))
            return (env_state, result.obs, key), None
        return jax.lax.scan(step, (env_state, frames[0], key), None, length=t)[0][0]

    batch = Minibatch(frames.reshape(t * n, 4, 84, 84)[:mb], jnp.zeros(mb, jnp.int32),
                      jnp.full(mb, -1.4), jnp.zeros(mb), jnp.asarray(rng.normal(size=mb)),
                      jnp.asarray(rng.normal(size=mb)), jnp.ones(mb, bool))
    attn_coef = jnp.float32(0.001)  # lambda of the timed loss and gradient
    coefs = loss_coefficients(config, attn_coef)

    def loss(params, batch):
        out = network.apply({"params": params}, batch.obs)
        return ppo_loss(out.logits, out.value, out.attention, batch, coefs)[0]

    training_gradient = make_minibatch_gradient(config, network)

    def gradient(params, batch):
        return training_gradient(params, batch, attn_coef)[0]

    grads = gradient(params, batch)
    rewards, values = jnp.asarray(rng.normal(size=(t, n))), jnp.asarray(rng.normal(size=(t, n)))
    dones = jnp.zeros((t, n), bool)
    parts = {
        "env stepping (128 x 8 envs)": (env_steps, (env_state,)),
        "rollout forward (128 x [8])": (rollout_forward, (params, frames)),
        "rollout, forward and env steps interleaved": (
            rollout_interleaved, (params, env_state, jax.random.PRNGKey(1))),
        "GAE ([128, 8])": (lambda r, v, d: gae(r, v, d, v[0], d[0], 0.99, 0.95),
                           (rewards, values, dones)),
        "minibatch forward (loss, [256])": (loss, (params, batch)),
        "minibatch gradient (forward + backward)": (gradient, (params, batch)),
        "minibatch optimizer (Adam step)": (
            lambda p, o, g: apply_gradients(tx, p, o, g, jnp.float32(2.5e-4)),
            (params, opt_state, grads)),
    }
    print(f"{machine_line()}, {len(jax.devices())} "
          f"{jax.default_backend()} device(s); network {config.network}; gradient in passes of "
          f"{resolve_microbatch(config)} rows; median of "
          f"{args.repeats} alternating rounds")
    # XLA counts a loop's body once: the rollout's flops are one step's times its T steps
    step_flops = compile_part(
        lambda params, obs: network.apply({"params": params}, obs).logits, (params, frames[0]))[1]
    timings = timed_rounds(parts, args.repeats)
    measured = {}
    for name, (seconds, flops, cores) in timings.items():
        if parts[name][0] is rollout_forward:
            flops = step_flops * t
        if parts[name][0] is rollout_interleaved:
            flops = 0.0  # the env's custom call has no flop count
        measured[name] = seconds
        rate = f"{flops / seconds / 1e9:7.1f} GFLOP/s" if flops else "      - GFLOP/s"
        print(f"  {name:42s} {seconds * 1e3:9.1f} ms  {rate}  {cores:4.2f} cores busy",
              flush=True)
    interleaving = (measured["rollout, forward and env steps interleaved"]
                    - measured["env stepping (128 x 8 envs)"]
                    - measured["rollout forward (128 x [8])"])
    print(f"  interleaving the rollout's forward passes with env steps costs "
          f"{interleaving * 1e3:.1f} ms beyond the two alone")
    updates = config.update_epochs * config.num_minibatches
    predicted = (measured["rollout, forward and env steps interleaved"]
                 + measured["GAE ([128, 8])"]
                 + updates * (measured["minibatch gradient (forward + backward)"]
                              + measured["minibatch optimizer (Adam step)"]))
    env.close()

    program = build_program([config])
    state, iterate = program.state, program.iterate
    state, metrics = iterate(state)  # compilation
    jax.block_until_ready(metrics)
    seconds, busy = [], []
    for _ in range(args.repeats):
        cpu0, t0 = process_cpu_seconds(), time.perf_counter()
        state, metrics = iterate(state)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - t0)
        busy.append((process_cpu_seconds() - cpu0) / seconds[-1])
    program.close()
    whole = float(np.median(seconds))
    grad_share = updates * measured["minibatch gradient (forward + backward)"] / whole
    print(f"  {'whole iteration (as train.py runs it)':42s} {whole * 1e3:9.1f} ms  "
          f"{config.batch_size / whole:7.1f} agent steps/s  {np.median(busy):4.2f} cores busy")
    print(f"  predicted from the parts: {predicted * 1e3:.1f} ms; {updates} gradients are "
          f"{100 * grad_share:.0f} % of the iteration")

    a = jnp.asarray(rng.normal(size=(2048, 2048)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(1024, 32, 20, 20)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(64, 32, 4, 4)), jnp.float32)
    peaks = timed_rounds({
        "matmul": (lambda x: x @ x, (a,)),
        "conv": (lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), "VALID"), (x, w)),
    }, args.repeats)
    (matmul_s, matmul_flops, _), (conv_s, conv_flops, _) = peaks["matmul"], peaks["conv"]
    print(f"peak: fp32 matmul 2048^3 {matmul_flops / matmul_s / 1e9:.1f} GFLOP/s, "
          f"conv 1024x32x20x20 * 64x32x4x4 {conv_flops / conv_s / 1e9:.1f} GFLOP/s")
    grad_flops = timings["minibatch gradient (forward + backward)"].flops
    achieved = grad_flops / measured["minibatch gradient (forward + backward)"] / 1e9
    print(f"gradient_share={grad_share:.3f}")
    print(f"gradient_fraction_of_matmul_peak={achieved / (matmul_flops / matmul_s / 1e9):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
