#!/usr/bin/env python3
"""SmoothGrad throughput: batched (jitted, vmapped over frames x samples, chunked) versus a
per-frame Python loop over the jitted single-frame function, in one process.

The process starts as `visualize.py saliency` does (`attnjax.devices.prepare_process`:
tcmalloc where the machine has it, the CPU exposed as one XLA host device per core): the
batched path splits each call's frames over the devices; the loop's single-frame function runs
on the default device, where XLA spreads each of its convolutions over all cores as usual (the
device split does not slow it: checked).

Frames: 256 Breakout-v5 observations from envpool with random actions (8 envs, after a
warm-up so the ball is in play). Network: the attention network (K = 2), randomly initialised,
or a trained run with --run. SmoothGrad with 50 samples and the max_sum target (VarGrad comes
out of the same pass). Both sides are compiled first (compile times printed), then timed
alternately --repeats times; the best time of each counts (the dev machines are shared).
Prints frames/s of both, gradients/s, and as its last line `speedup=<batched/loop>`.

--sweep also times other chunk sizes, micro-batch schedules and one device for the batched
path, and the loop over a micro-batched single-frame function, to show where the speedup comes
from.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from attnjax.devices import machine_line, prepare_process  # noqa: E402
from attnjax.inspection.saliency import methods as S  # noqa: E402


def breakout_frames(n: int, seed: int = 0, warmup: int = 40) -> np.ndarray:
    """n observations [n, 4, 84, 84] uint8 from 8 Breakout envs playing random actions."""
    from attnjax.model.envs import env_seeds, make_env

    envs = 8
    env = make_env("Breakout-v5", env_seeds(seed, envs))
    step = jax.jit(env.step)
    rng = np.random.default_rng(seed)
    state, obs = env.reset()
    frames = []
    t = 0
    while sum(len(f) for f in frames) < n:
        actions = jnp.asarray(rng.integers(0, env.num_actions, envs), jnp.int32)
        state, result = step(state, actions)
        obs = result.obs
        if t >= warmup:
            frames.append(np.asarray(obs))
        t += 1
    env.close()
    return np.concatenate(frames)[:n]


def network_and_params(run: str | None):
    from attnjax.model.networks import init_params, make_network

    if run:
        from attnjax.agents.load import load_agent

        agent = load_agent(run)
        return agent.network, agent.params, f"run {run} (step {agent.step})"
    network = make_network("attention", num_actions=4, num_heads=2)
    return network, init_params(network, jax.random.PRNGKey(0)), "attention K=2, random init"


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--target", default="max_sum", choices=S.TARGETS)
    parser.add_argument("--run", default=None, help="a trained run instead of random init")
    parser.add_argument("--chunk-frames", type=int, default=None,
                        help="frames per compiled call (default: the library's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true",
                        help="also time other chunk sizes and schedules")
    args = parser.parse_args()

    prepare_process()  # before JAX runs anything
    devices = S.saliency_devices()
    device = devices[0]
    print(machine_line(), flush=True)
    print(f"device: {device.platform} {device.device_kind} x {len(devices)} | "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    t0 = time.perf_counter()
    obs = breakout_frames(args.frames)
    print(f"frames: {len(obs)} Breakout-v5 observations (random actions) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    network, params, what = network_and_params(args.run)
    config = S.SaliencyConfig(methods=("smoothgrad", "vargrad"), samples=args.samples,
                              target=args.target)
    x = S.to_unit(obs)
    sigma = S.noise_sigma(x, config.spread, config.sigma_scope)
    key = jax.random.PRNGKey(0)
    keys = S.frame_keys(key, len(x))
    schedule = S.Schedule.default()
    chunk = args.chunk_frames or S.frames_per_chunk(network, config, len(x))
    print(f"network: {what} | SmoothGrad+VarGrad, {args.samples} samples, target "
          f"{args.target} | batched: {chunk} frames per call over {len(devices)} device(s), "
          f"schedule {schedule}", flush=True)

    # batched
    batch_fn = S.make_batch_saliency(network, config, schedule)

    def batched(chunk_frames=chunk, fn=batch_fn):
        return S.compute_saliency(network, params, obs, config, key, chunk_frames=chunk_frames,
                                  sigma=sigma, fn=fn)

    t0 = time.perf_counter()
    batch_fn(params, jnp.asarray(x[:chunk]), keys[:chunk], jnp.asarray(sigma[:chunk]))
    compile_batch = time.perf_counter() - t0

    # per-frame loop over the jitted single-frame function
    frame_fn = S.make_frame_saliency(network, config)

    def loop(fn=frame_fn):
        out = []
        for i in range(len(x)):
            res = fn(params, jnp.asarray(x[i]), keys[i], jnp.asarray(sigma[i]))
            out.append({k: np.asarray(v) for k, v in res.items()})
        return out

    t0 = time.perf_counter()
    jax.block_until_ready(frame_fn(params, jnp.asarray(x[0]), keys[0], jnp.asarray(sigma[0])))
    compile_loop = time.perf_counter() - t0
    print(f"compile: batched {compile_batch:.1f} s, single-frame {compile_loop:.1f} s",
          flush=True)

    # same numbers both ways (a few frames)
    check = batched()
    for i in (0, len(x) // 2, len(x) - 1):
        single = frame_fn(params, jnp.asarray(x[i]), keys[i], jnp.asarray(sigma[i]))
        want = np.asarray(single["smoothgrad"])
        np.testing.assert_allclose(check.maps["smoothgrad"][i], want, rtol=1e-4,
                                   atol=1e-5 * np.abs(want).max())

    t_batch, t_loop = float("inf"), float("inf")
    for _ in range(args.repeats):  # alternate, keep the best of each
        t_loop = min(t_loop, best_time(loop, 1))
        t_batch = min(t_batch, best_time(batched, 1))
    n, g = len(x), len(x) * config.gradients_per_frame
    print(f"loop:    {n / t_loop:8.2f} frames/s  ({g / t_loop:,.0f} gradients/s, {t_loop:.1f} s)")
    print(f"batched: {n / t_batch:8.2f} frames/s  ({g / t_batch:,.0f} gradients/s, "
          f"{t_batch:.1f} s)", flush=True)

    if args.sweep:
        # every variant compiled first, then timed in turns (repeats rounds), best of each
        variants = []
        nd = len(devices)
        for c in sorted({nd, 2 * nd, 5 * nd, chunk}):
            variants.append((c, schedule, devices))
        for sched in (S.Schedule(0, 1), S.Schedule(16, 1), S.Schedule(8, 2), S.Schedule(25, 1)):
            variants.append((chunk, sched, devices))
        for c in (1, 2, 10):
            variants.append((c, schedule, devices[:1]))
        runs = []
        for c, sched, devs in variants:
            fn = S.make_batch_saliency(network, config, sched, devs)
            label = f"batched, {c:2d} frames/call, {len(devs)} device(s), {sched}"
            runs.append((label, lambda c=c, fn=fn: batched(c, fn)))
        one_frame = S.make_batch_saliency(network, config, schedule, devices[:1])

        def loop_scheduled():
            return [{k: np.asarray(v) for k, v in one_frame(
                params, jnp.asarray(x[i : i + 1]), keys[i : i + 1],
                jnp.asarray(sigma[i : i + 1])).items()} for i in range(n)]

        runs.append((f"loop over 1-frame calls, {schedule}", loop_scheduled))
        runs.append(("loop over the single-frame function (as above)", loop))
        for _, run in runs:
            run()  # compile
        best = {label: float("inf") for label, _ in runs}
        for _ in range(args.repeats):
            for label, run in runs:
                best[label] = min(best[label], best_time(run, 1))
        print(f"sweep (best of {args.repeats} interleaved rounds; frames/s):", flush=True)
        for label, t in best.items():
            print(f"  {label:76s} {n / t:7.2f}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes share the "
          "CPU; the ratio is what counts)")
    print(f"speedup={t_loop / t_batch:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
