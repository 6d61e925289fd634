#!/usr/bin/env python3
"""How the paper-preset minibatch gradient's time depends on how many rows one forward/backward
pass takes: the whole minibatch of 256 in one pass against 256 / m passes of m rows whose
gradients are summed (`attnjax.training.ppo.make_minibatch_gradient` with `--microbatch-size
m`, as training computes it), one compiled program per size.

The gradient is training's: the PPO loss (λ = 0.001, advantages
normalised over the whole minibatch, some rows masked as envpool's reset steps are) of the
attention network on 256 random frames, with attnjax's XLA:CPU settings (Eigen convolutions,
YNNPACK dots). First checks that every size's gradient and metrics match the one-pass ones to
float rounding; after a warm-up call each, times all sizes in alternating rounds and takes
medians. Prints each size's milliseconds and, last, `speedup=<one pass ms / --microbatch ms>`
(above 1: the microbatched gradient is faster).
Usage: .venv/bin/python bench/microbatch_gradient.py [--sizes 32,64,128] [--microbatch 64]
       [--rounds 8] [--calls 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from attnjax.devices import eigen_convolution_options, machine_line, prepare_process  # noqa: E402

prepare_process()  # tcmalloc and the cores as host devices, as train.py runs

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from conv_contraction import alternating_medians, relative_difference  # noqa: E402

from attnjax.model.networks import init_params, make_network  # noqa: E402
from attnjax.training.config import TrainConfig  # noqa: E402
from attnjax.training.losses import Minibatch  # noqa: E402
from attnjax.training.ppo import make_minibatch_gradient  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32,64,128",
                   help="comma list of rows per pass to time beside the one pass of 256")
    p.add_argument("--microbatch", type=int, default=64,
                   help="the size whose speedup is printed last (default 64, the CPU default)")
    p.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    p.add_argument("--calls", type=int, default=3, help="timed calls per size per round")
    args = p.parse_args()
    config = TrainConfig(attn_coef=0.001)
    rows = config.minibatch_size
    sizes = sorted({int(s) for s in args.sizes.split(",")} | {args.microbatch, rows})
    if any(s < 1 or rows % s for s in sizes):
        p.error(f"--sizes and --microbatch must divide the minibatch of {rows} rows")
    network = make_network("attention", 4, config.attn_heads)
    params = init_params(network, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch = Minibatch(  # obs [256, 4, 84, 84] uint8; the rest [256]
        jnp.asarray(rng.integers(0, 256, (rows, 4, 84, 84), dtype=np.uint8)),
        jnp.asarray(rng.integers(0, 4, rows), jnp.int32), jnp.asarray(rng.normal(-1.4, 0.1, rows)),
        jnp.asarray(rng.normal(size=rows)), jnp.asarray(rng.normal(size=rows)),
        jnp.asarray(rng.normal(size=rows)), jnp.asarray(rng.random(rows) > 0.03))
    attn_coef = jnp.float32(config.attn_coef)

    def gradient(size):
        fn = make_minibatch_gradient(dataclasses.replace(config, microbatch_size=size), network)
        return lambda p, b: fn(p, b, attn_coef)

    options = eigen_convolution_options()
    print(f"{machine_line()}, {jax.default_backend()}, compiler_options {options}; minibatch "
          f"{rows}, {args.rounds} rounds x {args.calls} calls", flush=True)
    names = {size: f"{rows // size}x{size}" for size in sizes}
    compiled, results = {}, {}
    for size in sizes:
        compiled[names[size]] = jax.jit(gradient(size), compiler_options=options).lower(
            params, batch).compile()
        results[size] = jax.block_until_ready(compiled[names[size]](params, batch))  # warm-up
    for size in sizes:
        grad_diff = relative_difference(results[size][0], results[rows][0])
        metric_diff = relative_difference(results[size][1], results[rows][1])
        print(f"  {names[size]} vs 1x{rows}: gradient {grad_diff:.1e}, metrics {metric_diff:.1e} "
              "(relative, norm)", flush=True)
        assert grad_diff < 1e-5 and metric_diff < 1e-5, "microbatched sums beyond float rounding"
    ms = alternating_medians(compiled, (params, batch), tuple(names.values()), args.rounds,
                             args.calls)
    for size in sizes:
        print(f"ms[{names[size]}]={ms[names[size]]:.1f}")
    print(f"speedup={ms[names[rows]] / ms[names[args.microbatch]]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
