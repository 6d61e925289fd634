"""How batched saliency runs on the hardware: schedules, devices, memory, chunks.

Why a module of its own: `attnjax.inspection.saliency.methods` says WHAT is computed (targets,
noise, SmoothGrad and VarGrad of one frame's gradients); this module says how the F x G
frame-sample gradients of a chunk are laid onto the machine, which changes the speed and never the
results. Perturbation saliency's F x 289 perturbed forward passes are rows too, walked the same
way (on CPU in calls of CPU_FORWARD_BATCH).

On accelerators each device's F x G gradients are one call. On XLA:CPU the frames go one after
another inside the call (`one_after_another`), each frame's G gradients in micro-batches of 8
ordered by `lax.optimization_barrier` (`Schedule`, `walk_rows`) and reduced at once: network
gradients are ~1.35x faster per image in cache-sized batches, and a frame's gradients are still
in cache when they are reduced; and the command-line tools expose each core as its own host
device (`attnjax.devices.use_cpu_cores_as_devices`), so the cores compute different frames
side by side (`split_frames_over_devices`) instead of sharing each convolution. Chunks hold as
many frames per device as the memory budget allows (`frames_per_chunk`, estimated from the
activation sizes of one forward pass; on CPU one frame per device); the last chunk is padded
to the same size, so there is one compilation. The loop over chunks (`run_chunks`) is in
Python on purpose: on XLA:CPU convolution gradients inside `lax.map`/`scan` run many times
slower (docs/design.md).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from attnjax.devices import eigen_convolution_options
from attnjax.model.networks import OBS_SIZE

OBS_SHAPE = (4, OBS_SIZE, OBS_SIZE)  # one observation: 4 stacked frames
FLOAT_BYTES = 4
# XLA:CPU computes network gradients fastest over small batches: one frame's 50 gradients
# cost ~35% more per image in one call than in micro-batches of 8-17 (the activations of 50
# images leave the cache between layers). And it spreads one frame's convolutions over the 2
# cores of the CI machine only 1.15x faster than over one core, while frames side by side on
# separate XLA host devices (`use_cpu_cores_as_devices`) keep every core busy. So on CPU a
# call gives each device CPU_FRAMES_PER_DEVICE frame(s), whose gradients are walked in
# micro-batches of CPU_MICRO_BATCH; accelerators take one vmapped call per device and chunk,
# as large as the memory budget allows. Numbers: BENCHMARKS.md.
CPU_FRAMES_PER_DEVICE = 1
CPU_MICRO_BATCH = 8
CPU_CHAINS = 1
# perturbed forward passes (no gradients, so far less memory per row) per network call on CPU:
# 289 rows in 5 calls keeps the unrolled program, and its compilation, small
CPU_FORWARD_BATCH = 64
FRAMES_AXIS = "frames"
# chunks dispatched before the oldest is fetched: the devices never wait for Python between
# calls (with 1 frame per call on CPU, blocking on every call costs ~10%)
IN_FLIGHT = 3


@dataclass(frozen=True)
class Schedule:
    """How a compiled call walks its frame-sample gradients (execution only, same results).

    micro_batch: gradients per network call; 0 = all F x G rows of the chunk in one call (right
    for accelerators); otherwise frame after frame, each frame's rows in micro-batches.
    chains: independent sequences a frame's micro-batches are dealt to; inside a chain
    `lax.optimization_barrier` orders them, so each micro-batch's activations are used while
    they are still in cache (on the 2-core CPU 1 and 2 chains are equally fast).
    forward_batch: perturbed forward passes per network call (0 = all of them in one call).
    """

    micro_batch: int = 0
    chains: int = 1
    forward_batch: int = 0

    @classmethod
    def default(cls, backend: str | None = None) -> Schedule:
        if (backend or jax.default_backend()) == "cpu":
            return cls(micro_batch=CPU_MICRO_BATCH, chains=CPU_CHAINS,
                       forward_batch=CPU_FORWARD_BATCH)
        return cls()


def micro_batches(total: int, size: int) -> list[slice]:
    """`total` rows as ceil(total / size) consecutive slices of nearly equal length (50 rows
    at size 8: seven slices of 7 or 8, not six of 8 and one of 2)."""
    count = -(-total // size)
    bounds = [i * total // count for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def walk_rows(row_fn: Callable, params: Any, x: jax.Array, frame: jax.Array,
              row_args: tuple[jax.Array, ...], micro_batch: int, chains: int = 1) -> jax.Array:
    """`row_fn(params, x_rows, *args_rows)` of R rows (row r: frame x[frame[r]] and
    `a[r]` of every array of `row_args`), outputs [R, ...]: one call when micro_batch <= 0,
    else one per micro-batch, each after its chain's previous one (`chains` sequences)."""
    total = frame.shape[0]
    if micro_batch <= 0 or micro_batch >= total:
        return row_fn(params, x[frame], *row_args)
    outs: list[jax.Array] = []
    last: list[int | None] = [None] * max(1, chains)
    for b, sl in enumerate(micro_batches(total, micro_batch)):
        chain = b % len(last)
        args = (frame[sl], *(a[sl] for a in row_args))
        if last[chain] is not None:  # run after the chain's previous micro-batch
            done, args = jax.lax.optimization_barrier((outs[last[chain]], args))
            outs[last[chain]] = done
        outs.append(row_fn(params, x[args[0]], *args[1:]))
        last[chain] = b
    return jnp.concatenate(outs)


def one_after_another(fn: Callable[..., dict[str, jax.Array]],
                      items: list[tuple]) -> dict[str, jax.Array]:
    """`fn(*item)` for every item, each ordered after the previous one's result by
    `lax.optimization_barrier` (so a frame's gradients are reduced while still in cache, not
    interleaved with the next frame's); the results (dicts of arrays) stacked on a new axis."""
    results: list[dict[str, jax.Array]] = []
    for item in items:
        if results:
            results[-1], item = jax.lax.optimization_barrier((results[-1], item))
        results.append(fn(*item))
    return {k: jnp.stack([r[k] for r in results]) for k in results[0]}


def saliency_devices() -> tuple[Any, ...]:
    """The devices batched saliency splits its frames over: all of the default backend's."""
    return tuple(jax.devices())


def split_frames_over_devices(batch: Callable, devices: tuple[Any, ...]) -> Callable:
    """`batch(params, x, keys, sigma)` on every device's share of the frames, one compiled
    program: the parameters replicated (copied to the devices once per set of parameter arrays,
    not on every call), x, keys and sigma split on their leading axis, padded with copies of
    the last frame to a multiple of the device count."""
    mesh = Mesh(np.array(devices), (FRAMES_AXIS,))
    frames_spec = PartitionSpec(FRAMES_AXIS)
    sharded = jax.jit(jax.shard_map(
        batch, mesh=mesh, in_specs=(PartitionSpec(), frames_spec, frames_spec, frames_spec),
        out_specs=frames_spec), compiler_options=eigen_convolution_options())
    replicated = NamedSharding(mesh, PartitionSpec())
    # the last parameters seen: (their leaves, their replicated copy); compared leaf by leaf,
    # so a dict of parameters edited in place is not mistaken for the one placed before
    placed: list[tuple[list[Any], Any]] = []

    def call(params: Any, x: jax.Array, keys: jax.Array, sigma: jax.Array) -> dict[str, Any]:
        leaves = jax.tree_util.tree_leaves(params)
        if not placed or len(placed[0][0]) != len(leaves) or any(
                a is not b for a, b in zip(placed[0][0], leaves, strict=True)):
            placed[:] = [(leaves, jax.device_put(params, replicated))]
        count = x.shape[0]
        pad = -count % mesh.size
        if pad:
            x, keys, sigma = (jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)])
                              for a in (x, keys, sigma))
        out = sharded(placed[0][1], x, keys, sigma)
        return jax.tree_util.tree_map(lambda a: a[:count], out) if pad else out

    return call


# --------------------------------------------------------------------------------------------
# memory and chunks


def activation_bytes(network: Any) -> int:
    """Bytes of everything one forward pass of one frame produces (activations and outputs),
    from the shapes `network.apply` returns (no computation)."""
    params = jax.eval_shape(
        lambda: network.init(jax.random.PRNGKey(0), jnp.zeros((1, *OBS_SHAPE), jnp.float32))
    )["params"]
    out = jax.eval_shape(
        lambda p, o: network.apply({"params": p}, o),
        params,
        jax.ShapeDtypeStruct((1, *OBS_SHAPE), jnp.float32),
    )
    leaves = jax.tree_util.tree_leaves(out)
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in leaves)


def bytes_per_gradient(network: Any) -> int:
    """Estimated peak bytes of one frame-sample's input gradient: one forward pass's outputs
    and activations (what the backward pass keeps; its cotangents reuse the buffers of the
    activations already consumed) plus the noisy input and its gradient. XLA:CPU's own memory
    analysis of the compiled function reports ~70% of this (checked in the tests)."""
    input_bytes = math.prod(OBS_SHAPE) * FLOAT_BYTES
    return activation_bytes(network) + 2 * input_bytes


def bytes_per_forward(network: Any) -> int:
    """Estimated peak bytes of one perturbed frame's forward pass (no gradient): its outputs
    and activations plus the perturbed input."""
    return activation_bytes(network) + math.prod(OBS_SHAPE) * FLOAT_BYTES


def bytes_per_frame(network: Any, config: Any) -> int:
    """Estimated peak bytes of one frame of a `SaliencyConfig`: its input gradients and its
    perturbed forward passes."""
    return (config.gradients_per_frame * bytes_per_gradient(network)
            + config.forwards_per_frame * bytes_per_forward(network))


def frames_per_chunk(network: Any, config: Any, num_frames: int, backend: str | None = None,
                     num_devices: int | None = None) -> int:
    """How many frames one compiled call takes for a `SaliencyConfig` (`bytes_per_frame`,
    its `memory_budget_mb`): on each of `num_devices` devices (default:
    `saliency_devices()`), as many as the budget holds (on XLA:CPU, whose host devices share
    the RAM, the budget is for all of them together, and at most CPU_FRAMES_PER_DEVICE per
    device); at least one frame per device, and no more than `num_frames` needs (rounded up
    to a multiple of the device count)."""
    devices = num_devices or len(saliency_devices())
    cpu = (backend or jax.default_backend()) == "cpu"
    device_bytes = config.memory_budget_mb * 2**20 / (devices if cpu else 1)  # CPU: one RAM
    fit = int(device_bytes // bytes_per_frame(network, config))
    if cpu:
        fit = min(fit, CPU_FRAMES_PER_DEVICE)
    per_device = max(1, min(-(-num_frames // devices), fit))
    rounds = -(-num_frames // (per_device * devices))
    per_device = -(-num_frames // (rounds * devices))  # equal chunks: no more padding than needed
    return per_device * devices


def run_chunks(fn: Callable, params: Any, x: np.ndarray, keys: jax.Array, sigma: np.ndarray,
               chunk: int, progress: Callable[[int], None] | None = None
               ) -> dict[str, np.ndarray]:
    """`fn(params, x, keys, sigma)` over the B frames (x [B, 4, 84, 84], keys [B, key], sigma
    [B]) in chunks of `chunk` frames (the last padded with copies of the last frame), up to
    IN_FLIGHT chunks dispatched before the oldest is fetched; outputs concatenated on the host,
    [B, ...] each. progress: called with the frames finished after each chunk."""
    num = len(x)
    parts: list[dict[str, np.ndarray]] = []
    pending: collections.deque[tuple[dict[str, jax.Array], int]] = collections.deque()

    def collect(done: tuple[dict[str, jax.Array], int]) -> None:
        out, count = done
        parts.append({k: np.asarray(v)[:count] for k, v in out.items()})
        if progress is not None:
            progress(count)

    for start in range(0, num, chunk):
        stop = min(start + chunk, num)
        idx = np.arange(start, start + chunk).clip(max=num - 1)  # pad with the last frame
        pending.append((fn(params, jnp.asarray(x[idx]), keys[idx], jnp.asarray(sigma[idx])),
                        stop - start))
        if len(pending) > IN_FLIGHT:  # fetch older chunks while the newer ones compute
            collect(pending.popleft())
    while pending:
        collect(pending.popleft())
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
