#!/usr/bin/env python3
"""Whether bfloat16 compute makes a paper-preset minibatch gradient of the attention network
faster on this CPU than float32 (as attnjax trains today), and how far its gradient strays.

Paths, all differentiating the same float32 parameters:
- fp32: the network and loss as training runs them.
- bf16: parameters and the preprocessed input cast to bfloat16 inside the loss, so every
  convolution and dense layer, and the activations between them, are bfloat16; the attention
  logits, policy logits and value are cast back to float32 before the softmax, the entropies and
  the loss (`bf16_layers`).
- bf16-dots: only the convolutions and dense layers run in bfloat16 (inputs and kernels cast at
  each layer, each output cast straight back to float32; everything else float32), as a
  mixed-precision autocast would.
The loss is the PPO loss training uses (`losses.ppo_loss`, the paper preset's coefficients,
lambda 0.001) on one minibatch of random frames, actions and rollout statistics. Each path is
compiled with attnjax's XLA:CPU settings (Eigen convolutions, YNNPACK for dots:
`attnjax.devices.eigen_convolution_options`); the script prints, per path, how many of the
optimized program's convolutions and dots still compute in bfloat16 (XLA:CPU may convert them
to float32), and each bf16 gradient's distance from the fp32 one (relative norm over all
parameters, and over the worst parameter array). It also checks whether
`jax.default_matmul_precision("bfloat16")` changes the fp32 program at all. After a warm-up call
each, the paths are timed in alternating rounds (load from other processes slows all alike),
medians of all calls. Prints, last, `ratio=<fp32 ms / bf16 ms>` (above 1: bf16 faster).
Usage: .venv/bin/python bench/bf16_gradient.py [--rounds 7] [--calls 3] [--batch 256]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attnjax.devices import (  # noqa: E402
    eigen_convolution_options,
    machine_line,
    prepare_process,
)

prepare_process()  # as train.py does

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from conv_contraction import alternating_medians, relative_difference  # noqa: E402

from attnjax.model.networks import init_params, make_network  # noqa: E402
from attnjax.training.config import TrainConfig  # noqa: E402
from attnjax.training.losses import Minibatch, ppo_loss  # noqa: E402
from attnjax.training.ppo import loss_coefficients  # noqa: E402

PATHS = ("fp32", "bf16", "bf16-dots")
ATTN_COEF = 0.001  # a lambda of the sweeps; any nonzero value keeps the attention term
# layers whose outputs feed a softmax, an entropy or the loss: float32 again in every path
LOSS_INPUT_LAYERS = ("attn_logits", "policy", "value")


def bf16_layers(outputs_fp32: bool):
    """A flax method interceptor: every `nn.Conv` / `nn.Dense` call gets its input as bfloat16
    (with bfloat16 parameters, flax then computes the layer in bfloat16). Its output stays
    bfloat16 unless `outputs_fp32` or the layer feeds the loss (LOSS_INPUT_LAYERS)."""

    def intercept(next_fun, args, kwargs, context):
        module = context.module
        if not (isinstance(module, (nn.Conv, nn.Dense)) and context.method_name == "__call__"):
            return next_fun(*args, **kwargs)
        y = next_fun(args[0].astype(jnp.bfloat16), *args[1:], **kwargs)
        return y.astype(jnp.float32) if outputs_fp32 or module.name in LOSS_INPUT_LAYERS else y

    return intercept


def loss_of(network, path: str):
    """params (float32), batch -> (PPO loss, metrics), the network computed as `path` says."""
    coefs = loss_coefficients(TrainConfig(), ATTN_COEF)

    def loss(params, batch: Minibatch):
        if path == "fp32":
            out = network.apply({"params": params}, batch.obs)
        else:
            low = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
            with nn.intercept_methods(bf16_layers(outputs_fp32=path == "bf16-dots")):
                out = network.apply({"params": low}, batch.obs)
        assert out.logits.dtype == out.value.dtype == out.attention.dtype == jnp.float32
        return ppo_loss(out.logits, out.value, out.attention, batch, coefs)

    return loss


def random_minibatch(batch: int, num_actions: int, seed: int = 0) -> Minibatch:
    """Random frames [B, 4, 84, 84] uint8 and rollout statistics [B] of plausible scale."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, batch).astype(np.float32)
    advantages = rng.normal(0.0, 1.0, batch).astype(np.float32)
    return Minibatch(
        obs=jnp.asarray(rng.integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8)),
        actions=jnp.asarray(rng.integers(0, num_actions, batch, dtype=np.int32)),
        log_probs=jnp.full(batch, -np.log(num_actions), jnp.float32),
        values=jnp.asarray(values),
        advantages=jnp.asarray(advantages),
        returns=jnp.asarray(values + advantages),
        mask=jnp.ones(batch, jnp.float32),
    )


def heavy_ops_by_dtype(hlo_text: str) -> dict[str, collections.Counter]:
    """An optimized HLO module's convolution and dot instructions, counted by their result's
    element type: {"convolution": Counter({"f32": 9}), "dot": ...}."""
    counts = {"convolution": collections.Counter(), "dot": collections.Counter()}
    for dtype, op in re.findall(r"= (\w+)\[[^\]]*\]\S* (convolution|dot)\(", hlo_text):
        counts[op][dtype] += 1
    return counts


def program_instructions(hlo_text: str) -> list[str]:
    """An optimized HLO module's instructions without source locations (the `metadata` of each
    and the numbered tables of files, functions and frames), so that two programs compare equal
    when they compute the same thing."""
    lines = (re.sub(r", metadata=\{[^}]*\}", "", line) for line in hlo_text.splitlines())
    return [line for line in lines if not re.match(r"^\d+ ", line)]


def worst_leaf_difference(a, b, floor: float = 1e-4) -> tuple[str, float]:
    """(name, ||a - b|| / ||b||) of the parameter array where pytree a strays most from b,
    among the arrays whose norm in b is at least `floor` x b's whole norm (the attention logits'
    bias has a zero gradient, since a softmax ignores a constant shift: only rounding is left)."""
    whole = sum(float(jnp.sum(y**2)) for y in jax.tree.leaves(b)) ** 0.5
    worst = ("", 0.0)
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b),
                            strict=True):
        norm = float(jnp.linalg.norm(y))
        diff = float(jnp.linalg.norm(x - y)) / norm if norm >= floor * whole else 0.0
        if diff > worst[1]:
            worst = (jax.tree_util.keystr(path, simple=True, separator="/"), diff)
    return worst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    p.add_argument("--calls", type=int, default=3, help="timed calls per path per round")
    p.add_argument("--batch", type=int, default=256, help="frames (paper minibatch: 256)")
    args = p.parse_args()
    num_actions = 4  # Breakout
    network = make_network("attention", num_actions, 2)
    params = init_params(network, jax.random.PRNGKey(0))
    batch = random_minibatch(args.batch, num_actions)
    options = eigen_convolution_options()
    print(f"{machine_line()}, {jax.default_backend()}, "
          f"compiler_options {options}; batch {args.batch}, {args.rounds} rounds x "
          f"{args.calls} calls", flush=True)

    compiled, grads = {}, {}
    for path in PATHS:
        t0 = time.perf_counter()
        grad = jax.jit(jax.grad(loss_of(network, path), has_aux=True), compiler_options=options)
        compiled[path] = grad.lower(params, batch).compile()
        grads[path] = jax.block_until_ready(compiled[path](params, batch))[0]  # warm-up
        counts = heavy_ops_by_dtype(compiled[path].as_text())
        print(f"  compile {path}: {time.perf_counter() - t0:.1f} s; optimized program: "
              + "; ".join(f"{op}s {dict(c)}" for op, c in counts.items()), flush=True)
    with jax.default_matmul_precision("bfloat16"):
        lowered = jax.jit(jax.grad(loss_of(network, "fp32"), has_aux=True),
                          compiler_options=options).lower(params, batch)
    same = (program_instructions(lowered.compile().as_text())
            == program_instructions(compiled["fp32"].as_text()))
    print(f"fp32 under jax.default_matmul_precision('bfloat16'): "
          f"{'the same optimized program' if same else 'a different optimized program'}",
          flush=True)
    for path in PATHS[1:]:
        name, worst = worst_leaf_difference(grads[path], grads["fp32"])
        print(f"{path} gradient vs fp32, relative difference (norm): all parameters "
              f"{relative_difference(grads[path], grads['fp32']):.1e}, worst array {name} "
              f"{worst:.1e}", flush=True)

    ms = alternating_medians(compiled, (params, batch), PATHS, args.rounds, args.calls)
    for path in PATHS:
        print(f"{path.replace('-', '_')}_ms={ms[path]:.1f}")
    print(f"ratio_dots={ms['fp32'] / ms['bf16-dots']:.3f}")
    print(f"ratio={ms['fp32'] / ms['bf16']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
