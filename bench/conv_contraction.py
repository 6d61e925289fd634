#!/usr/bin/env python3
"""Whether the network's convolutions as patch extraction + one dense contraction each (im2col
without gathers) make a paper-preset minibatch gradient faster on this CPU than attnjax's
convolutions (`nn.Conv` on XLA's Eigen convolutions, `conv_with_fast_input_gradient`).

The contraction path is the same attention network with every `nn.Conv` call intercepted
(`contraction_convs`) and computed by `conv_as_contraction` from the same parameters. One
process, one set of parameters and one minibatch of 256 random frames: the gradient of a
loss-like scalar (sum of logits² + value² + every head's attention entropy) with respect to all
parameters, compiled for each path with attnjax's XLA:CPU settings (Eigen convolutions, YNNPACK
for dots: `attnjax.devices.eigen_convolution_options`). First checks that both paths' forward
outputs and gradients agree to float rounding; after a warm-up call each, times them in
alternating rounds (so load from other processes slows both alike) and takes medians.
Prints both times and, last, `ratio=<xla ms / contraction ms>` (above 1: contraction faster).
`--form blocks` replaces the patches + contraction by the other way around a strided
convolution: the same convolution with stride 1 over s x s pixel blocks
(`conv_as_block_convolution`; conv1: [B,21,21,64] * [2,2,64,32]), still an XLA convolution.
Usage: .venv/bin/python bench/conv_contraction.py [--rounds 7] [--calls 3] [--batch 256]
       [--layers conv1,conv2] [--form patches|blocks]
"""

from __future__ import annotations

import argparse
import resource
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

from attnjax.model.networks import (  # noqa: E402
    _kernel_to_depth,
    _space_to_depth,
    head_entropies,
    init_params,
    make_network,
)

PATHS = ("xla", "contraction")
# --layers names -> the nn.Conv modules they replace
LAYERS = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "attn_hidden": "attention",
          "attn_logits": "attention"}
ALL_LAYERS = ("conv1", "conv2", "conv3", "attention")


def conv_as_contraction(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A VALID NHWC convolution, x [B, H, W, C] * kernel [k, k, C, F] (stride s dividing k),
    as patches + one `dot_general`: the input as s x s pixel blocks (`_space_to_depth`; conv1
    [B,84,84,4] -> [B,21,21,64]), the k/s x k/s neighbouring blocks of each output cell side by
    side as shifted slices (conv1: 4 slices -> [B,20,20,256]; conv3: 9 -> [B,7,7,576]), then
    one contraction against the kernel reshaped to that channel order (`_kernel_to_depth`)."""
    k, features = kernel.shape[0], kernel.shape[-1]
    assert k % stride == 0, "the stride must divide the kernel"
    span = k // stride  # neighbouring blocks per output cell, per side
    out_h, out_w = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    # only the rows / columns some window reads, so that the stride divides the size
    x = x[:, : (out_h - 1 + span) * stride, : (out_w - 1 + span) * stride, :]
    blocks = _space_to_depth(x, stride)  # [B, out_h + span - 1, out_w + span - 1, s*s*C]
    patches = jnp.concatenate(
        [blocks[:, i : i + out_h, j : j + out_w, :] for i in range(span) for j in range(span)],
        axis=-1,
    )  # [B, out_h, out_w, span*span*s*s*C], channels ordered (i, j, block channel)
    flat_kernel = _kernel_to_depth(kernel, stride).reshape(-1, features)  # [span²s²C, F]
    return jax.lax.dot_general(patches, flat_kernel, (((3,), (0,)), ((), ())))


def conv_as_block_convolution(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A VALID NHWC convolution with stride s dividing the kernel and the input size, as the
    stride-1 convolution of the s x s pixel blocks (`_space_to_depth`) with the kernel in the
    blocks' channel order (`_kernel_to_depth`): the same sums, no strided access."""
    blocks, blocks_kernel = _space_to_depth(x, stride), _kernel_to_depth(kernel, stride)
    return jax.lax.conv_general_dilated(blocks, blocks_kernel, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


FORMS = {"patches": conv_as_contraction, "blocks": conv_as_block_convolution}


def contraction_convs(layers: tuple[str, ...], form: str = "patches"):
    """A flax method interceptor: the `nn.Conv` calls named in `layers` (LAYERS; all VALID or
    1x1 in these networks, all with a bias) computed by FORMS[form] from the module's own
    parameters; everything else runs as written."""

    def intercept(next_fun, args, kwargs, context):
        module = context.module
        if (isinstance(module, nn.Conv) and context.method_name == "__call__"
                and LAYERS[module.name] in layers):
            return _contraction_call(module, args[0], FORMS[form])
        return next_fun(*args, **kwargs)

    return intercept


def _contraction_call(module: nn.Conv, x: jax.Array, conv) -> jax.Array:
    assert module.padding == "VALID" or tuple(module.kernel_size) == (1, 1)
    strides = module.strides or 1  # an int or a per-axis sequence in flax
    stride = strides if isinstance(strides, int) else strides[0]
    y = conv(x, module.get_variable("params", "kernel"), stride)
    return y + module.get_variable("params", "bias")


def apply_network(network, path: str, layers: tuple[str, ...] = ALL_LAYERS,
                  form: str = "patches"):
    """params, obs -> AgentOutput through attnjax's convolutions ("xla") or with `layers`'
    convolutions in FORMS[form] ("contraction")."""

    def apply(params, obs):
        if path == "xla":
            return network.apply({"params": params}, obs)
        with nn.intercept_methods(contraction_convs(layers, form)):
            return network.apply({"params": params}, obs)

    return apply


def loss_like(apply):
    """params, obs -> a scalar touching every output, as PPO's loss does."""

    def loss(params, obs):
        out = apply(params, obs)
        return (jnp.sum(out.logits**2) + jnp.sum(out.value**2)
                + jnp.sum(head_entropies(out.attention)))

    return loss


def relative_difference(a, b) -> float:
    """||a - b|| / ||b|| over all leaves of two pytrees together."""
    diff = sum(float(jnp.sum((x - y) ** 2)) for x, y in zip(jax.tree.leaves(a),
                                                           jax.tree.leaves(b), strict=True))
    norm = sum(float(jnp.sum(y**2)) for y in jax.tree.leaves(b))
    return (diff / norm) ** 0.5


def process_cpu_seconds() -> float:
    """CPU seconds of this process so far, all its threads (XLA's, envpool's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def alternating_medians(compiled: dict, inputs: tuple, paths: tuple[str, ...], rounds: int,
                        calls: int, cores_busy: dict | None = None) -> dict[str, float]:
    """Median milliseconds of each compiled path, timed in rounds whose order alternates (so
    a machine that gets busier slows every path alike), printing each round's medians. With a
    `cores_busy` dict, also fills in each path's median CPU seconds / wall seconds per call."""
    seconds: dict[str, list[float]] = {path: [] for path in paths}
    busy: dict[str, list[float]] = {path: [] for path in paths}
    for r in range(rounds):
        for path in paths if r % 2 == 0 else paths[::-1]:
            for _ in range(calls):
                cpu0, t0 = process_cpu_seconds(), time.perf_counter()
                jax.block_until_ready(compiled[path](*inputs))
                seconds[path].append(time.perf_counter() - t0)
                busy[path].append((process_cpu_seconds() - cpu0) / seconds[path][-1])
        print(f"  round {r + 1}: " + ", ".join(
            f"{path} {1e3 * np.median(seconds[path][-calls:]):.1f} ms" for path in paths),
            flush=True)
    if cores_busy is not None:
        cores_busy.update({path: float(np.median(b)) for path, b in busy.items()})
    return {path: 1e3 * float(np.median(s)) for path, s in seconds.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    p.add_argument("--calls", type=int, default=3, help="timed calls per path per round")
    p.add_argument("--batch", type=int, default=256, help="frames (paper minibatch: 256)")
    p.add_argument("--layers", default=",".join(ALL_LAYERS),
                   help="convolutions the contraction path replaces: a comma list of conv1, "
                   "conv2, conv3, attention (its two 1x1 convolutions); default all")
    p.add_argument("--form", default="patches", choices=tuple(FORMS),
                   help="patches: patches + one contraction (default); blocks: a stride-1 "
                   "convolution over pixel blocks")
    args = p.parse_args()
    layers = tuple(args.layers.split(","))
    if not set(layers) <= set(ALL_LAYERS):
        p.error(f"--layers: a comma list of {', '.join(ALL_LAYERS)}; got {args.layers!r}")
    network = make_network("attention", 4, 2)
    applies = {path: apply_network(network, path, layers, args.form) for path in PATHS}
    params = init_params(network, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.integers(0, 256, (args.batch, 4, 84, 84), dtype=np.uint8))
    options = eigen_convolution_options()
    print(f"{machine_line()}, {jax.default_backend()}, "
          f"compiler_options {options}; batch {args.batch}, {args.rounds} rounds x "
          f"{args.calls} calls; contraction path ({args.form}): {', '.join(layers)}", flush=True)

    outputs, grads = {}, {}
    for path, apply in applies.items():
        out = jax.jit(apply, compiler_options=options)(params, obs)
        outputs[path] = (out.logits, out.value, out.attention)
    contraction_program = str(jax.make_jaxpr(applies["contraction"])(params, obs))
    if args.form == "patches":  # (blocks are convolutions too)
        replaced = len(LAYERS) - contraction_program.count("conv_general_dilated")
        assert replaced == sum(name in layers for name in LAYERS.values()), "convs replaced"
    else:  # the pixel blocks are there: a reshape/transpose the xla path does not have
        xla_program = str(jax.make_jaxpr(applies["xla"])(params, obs))
        assert contraction_program.count("transpose") > xla_program.count("transpose")
    compiled = {}
    for path, apply in applies.items():
        t0 = time.perf_counter()
        compiled[path] = jax.jit(jax.grad(loss_like(apply)), compiler_options=options).lower(
            params, obs).compile()
        grads[path] = jax.block_until_ready(compiled[path](params, obs))  # warm-up
        print(f"  compile {path}: {time.perf_counter() - t0:.1f} s", flush=True)
    forward_diff = relative_difference(outputs["contraction"], outputs["xla"])
    grad_diff = relative_difference(grads["contraction"], grads["xla"])
    print(f"contraction vs xla, relative difference (norm): forward outputs {forward_diff:.1e}, "
          f"gradients {grad_diff:.1e}", flush=True)
    assert grad_diff < 1e-4, "the two paths' gradients differ beyond float rounding"
    for (got, want) in zip(jax.tree.leaves(outputs["contraction"]),
                           jax.tree.leaves(outputs["xla"]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))

    ms = alternating_medians(compiled, (params, obs), PATHS, args.rounds, args.calls)
    print(f"xla_ms={ms['xla']:.1f}")
    print(f"contraction_ms={ms['contraction']:.1f}")
    print(f"ratio={ms['xla'] / ms['contraction']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
