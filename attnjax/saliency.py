"""Input saliency of the attention layer (and of the policy and value) for many frames at once.

Methods, as Nikulin et al. (2019) compared them:

- `gradient` (Simonyan et al. 2014): the squared gradient of a scalar target with respect to the
  input observation (`magnitude="abs"`: its absolute value).
- `smoothgrad` (Smilkov et al. 2017): the mean of the squared gradients over N noisy copies
  x + e, e ~ Normal(0, sigma^2), with sigma = spread x (max - min) of the input.
- `vargrad` (Adebayo et al. 2018): the variance (population, ddof = 0) of the same squared
  gradients; SmoothGrad and VarGrad come out of ONE set of N gradient evaluations.

Input space. The gradient is taken with respect to the float observation the network computes
on: `x = obs / 255` in [0, 1], layout [4, 84, 84] (envpool's: 4 stacked frames, newest last).
Noise is added in that space and never clipped, so sigma = spread x (max(x) - min(x)) is in
[0, 1] units too (0.15 x 1.0 for a frame that spans black to white). Gradients with respect to
the raw 0..255 pixels are these divided by 255 (squared maps: by 255^2). The network is always
run through its own `apply`: it receives `x * 255` as float32, which `preprocess` divides by 255
again, so nothing of the network is re-implemented here.

Targets, scalars per frame, from the attention tensor `[7, 7, K]` (`layer="attention"`, the
softmax weights; `layer="attention_logits"`, the pre-softmax logits, the original's `a2`):
`max` (max over cells and heads), `sum_max` (max over cells of the sum over heads), `max_sum`
(sum over heads of each head's max over cells; attnjax's default; in the original only a class
default that its scripts overrode), `sum` (sum of everything: what the paper ran, on `a2`).
Note: the softmax weights of each head sum to 1, so `sum` of `attention` is the constant K and
its gradient is zero up to rounding; use it with `attention_logits`. Besides: `action` (the
logit of the greedy action, the argmax of the logits of the un-noised frame, kept fixed across
the noisy copies) and `value`. The paper's settings: `attnjax.presets.SALIENCY_PRESETS`;
where the original's own code differed: docs/saliency_and_videos.md.

Execution. One compiled function takes a chunk of F frames: `jax.vmap` over frames draws each
frame's noisy copies (its own PRNG key from `jax.random.split` of the one key, so results do not
depend on chunking, batching or devices) and runs the clean forward pass; the F x G
frame-sample inputs (G = N, plus the clean frame when `gradient` is asked for) go through one
`jax.vmap`ped input gradient; `jax.vmap` over frames reduces each frame's G gradients to its
maps. With several devices the chunk's frames are split over them (`jax.shard_map`). On
accelerators each device's F x G gradients are one call. On XLA:CPU the frames go one after
another inside the call, each frame's G gradients in micro-batches of 8 ordered by
`lax.optimization_barrier` (`Schedule`) and reduced at once: network gradients are ~1.35x
faster per image in cache-sized batches, and a frame's gradients are still in cache when they
are reduced; and the command-line tools expose each core as its own host device
(`use_cpu_cores_as_devices`), so the cores compute different frames side by side instead of
sharing each convolution. Chunks hold as many frames per device as `memory_budget_mb` allows
(estimated from the activation sizes of one forward pass; on CPU one frame per device); the
last chunk is padded to the same size, so there is one compilation.
The loop over chunks is in Python on purpose: on XLA:CPU convolution gradients inside
`lax.map`/`scan` run many times slower (docs/design.md).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from attnjax.errors import UserError

METHODS = ("gradient", "smoothgrad", "vargrad")
ATTENTION_TARGETS = ("max", "sum_max", "max_sum", "sum")
TARGETS = (*ATTENTION_TARGETS, "action", "value")
LAYERS = ("attention", "attention_logits")
MAGNITUDES = ("square", "abs")
SIGMA_SCOPES = ("batch", "frame")
STACKS = ("max", "newest")  # how a map of the 4 stacked frames becomes the one map shown
OBS_SHAPE = (4, 84, 84)
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
FRAMES_AXIS = "frames"
# chunks dispatched before the oldest is fetched: the devices never wait for Python between
# calls (with 1 frame per call on CPU, blocking on every call costs ~10%)
IN_FLIGHT = 3


@dataclass(frozen=True)
class SaliencyConfig:
    """What to compute.

    methods: any of gradient, smoothgrad, vargrad. target: see the module docstring. layer:
    attention (softmax weights) or attention_logits. samples: N noisy copies. spread: sigma as
    a fraction of the input's range. magnitude: square (as the paper) or abs of the gradient.
    sigma_scope: batch (one sigma from the range over all frames given; the original's batch
    was the 9 envs of one step) or frame (each frame's own range). clean_first: make the first
    of the N copies noise-free, as the original code did. stack: the map `aggregate` shows of
    the 4 stacked frames: their max, or the newest (as the original drew it).
    memory_budget_mb: memory one chunk may use on each device (host devices of a CPU share it).
    """

    methods: tuple[str, ...] = METHODS
    target: str = "max_sum"
    layer: str = "attention"
    samples: int = 50
    spread: float = 0.15
    magnitude: str = "square"
    sigma_scope: str = "batch"
    clean_first: bool = False
    stack: str = "max"
    memory_budget_mb: float = 2048.0

    def __post_init__(self) -> None:
        methods = tuple(dict.fromkeys(self.methods))  # de-duplicated, order kept
        object.__setattr__(self, "methods", methods)
        if not methods:
            raise UserError(f"--methods needs at least one of {', '.join(METHODS)}")
        for method in methods:
            if method not in METHODS:
                raise UserError(
                    f"unknown saliency method {method!r}; choose from {', '.join(METHODS)}"
                )
        _check_choice("--target", self.target, TARGETS)
        _check_choice("--layer", self.layer, LAYERS)
        _check_choice("--magnitude", self.magnitude, MAGNITUDES)
        _check_choice("--sigma-scope", self.sigma_scope, SIGMA_SCOPES)
        _check_choice("--stack", self.stack, STACKS)
        if self.samples < 1:
            raise UserError(f"--samples must be at least 1, got {self.samples}")
        if not (math.isfinite(self.spread) and self.spread >= 0):
            raise UserError(f"--spread must be a finite number >= 0, got {self.spread}")
        if not (math.isfinite(self.memory_budget_mb) and self.memory_budget_mb > 0):
            raise UserError(
                f"--memory-budget-mb must be a positive number, got {self.memory_budget_mb}"
            )

    @property
    def noisy(self) -> bool:
        """Whether any method needs the N noisy copies."""
        return "smoothgrad" in self.methods or "vargrad" in self.methods

    @property
    def gradients_per_frame(self) -> int:
        """Input gradients evaluated per frame: the clean one and/or the N noisy ones."""
        return ("gradient" in self.methods) + (self.samples if self.noisy else 0)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        d["input_space"] = "obs / 255 in [0, 1], [4, 84, 84]"
        return d


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def check_network(network: Any, config: SaliencyConfig) -> None:
    """Attention targets need a network with attention; raise UserError naming the fix."""
    has_attention = getattr(network, "num_heads", None) is not None
    if config.target in ATTENTION_TARGETS and not has_attention:
        raise UserError(
            f"target {config.target!r} reads the attention layer, but this network has none "
            f"({type(network).__name__}); use --target action or --target value"
        )


# --------------------------------------------------------------------------------------------
# targets


def attention_target(attention: jax.Array, target: str) -> jax.Array:
    """[B, 7, 7, K] -> [B]: the scalar each frame's gradient is taken of."""
    b = attention.shape[0]
    cells = attention.reshape(b, -1, attention.shape[-1])  # [B, 49, K]
    if target == "max":
        return jnp.max(cells, axis=(1, 2))
    if target == "sum_max":
        return jnp.max(jnp.sum(cells, axis=2), axis=1)
    if target == "max_sum":
        return jnp.sum(jnp.max(cells, axis=1), axis=1)
    if target == "sum":
        return jnp.sum(cells, axis=(1, 2))
    raise ValueError(f"not an attention target: {target!r}")


def target_value(output: Any, target: str, layer: str = "attention",
                 action: jax.Array | None = None) -> jax.Array:
    """The target of an `AgentOutput` of B frames -> [B]. `action` [B] picks the logit for
    the `action` target (default: the argmax of these logits)."""
    if target == "value":
        return output.value
    if target == "action":
        if action is None:
            action = jnp.argmax(output.logits, axis=-1)
        return jnp.take_along_axis(output.logits, action[:, None], axis=-1)[:, 0]
    tensor = output.attention if layer == "attention" else output.activations[layer]
    return attention_target(tensor, target)


# --------------------------------------------------------------------------------------------
# the compiled per-frame function and its batched form


def standard_normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """float32 N(0, 1) noise of `shape` from one PRNG key, at a third of the cost of
    `jax.random.normal` on CPU (where drawing 50 noisy copies otherwise takes ~40% of
    SmoothGrad's time): threefry bits in JAX's non-partitionable counter layout (the same
    hash, fewer operations), each 32-bit word split into two 16-bit uniforms u (cell centres
    (i + 0.5) / 65536), mapped through sqrt(2) erfinv(2u - 1). The 16-bit grid truncates the
    tails at 4.3 sigma, which Gaussian smoothing noise does not miss."""
    size = math.prod(shape)
    with jax.threefry_partitionable(False):
        bits = jax.random.bits(key, ((size + 1) // 2,), jnp.uint32)
    halves = jnp.concatenate([bits & 0xFFFF, bits >> 16])[:size].astype(jnp.float32)
    u = (halves + 0.5) * (2.0 / 65536.0) - 1.0
    return (math.sqrt(2.0) * jax.scipy.special.erfinv(u)).reshape(shape)


@dataclass(frozen=True)
class Schedule:
    """How a compiled call walks its frame-sample gradients (execution only, same results).

    micro_batch: gradients per network call; 0 = all F x G rows of the chunk in one call (right
    for accelerators); otherwise frame after frame, each frame's rows in micro-batches.
    chains: independent sequences a frame's micro-batches are dealt to; inside a chain
    `lax.optimization_barrier` orders them, so each micro-batch's activations are used while
    they are still in cache (on the 2-core CPU 1 and 2 chains are equally fast).
    """

    micro_batch: int = 0
    chains: int = 1

    @classmethod
    def default(cls, backend: str | None = None) -> Schedule:
        if (backend or jax.default_backend()) == "cpu":
            return cls(micro_batch=CPU_MICRO_BATCH, chains=CPU_CHAINS)
        return cls()


def micro_batches(total: int, size: int) -> list[slice]:
    """`total` rows as ceil(total / size) consecutive slices of nearly equal length (50 rows
    at size 8: seven slices of 7 or 8, not six of 8 and one of 2)."""
    count = -(-total // size)
    bounds = [i * total // count for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class _Parts:
    """The per-frame pieces shared by the single-frame and the batched function.

    A frame's G gradient inputs ("rows") are the clean frame (when `gradient` is asked for) and
    N noisy copies; copy s of a frame uses noise `normal(split(frame_key, N)[s])`, drawn inside
    the row's own gradient computation. So the noise of a row never depends on how rows are
    batched, and on CPU each micro-batch draws its noise right before using it (no F x N x
    input-sized tensor in memory, and the random numbers of one chain are drawn while the
    other chain computes gradients)."""

    def __init__(self, network: Any, config: SaliencyConfig) -> None:
        self.network, self.config = network, config

        def scalar(params: Any, x: jax.Array, action: jax.Array) -> jax.Array:
            out = self.forward(params, x)
            return target_value(out, config.target, config.layer, action[None])[0]

        grad = jax.grad(scalar, argnums=1)

        def row(params: Any, x: jax.Array, key: jax.Array, scale: jax.Array,
                action: jax.Array) -> jax.Array:
            return grad(params, x + scale * standard_normal(key, x.shape), action)

        self.grad_rows = jax.vmap(row, in_axes=(None, 0, 0, 0, 0))

    def forward(self, params: Any, x: jax.Array) -> Any:
        """One frame [4, 84, 84] in [0, 1] through the network's own apply."""
        return self.network.apply({"params": params}, (x * 255.0)[None])

    def clean(self, params: Any, x: jax.Array) -> dict[str, Any]:
        """Outputs of the un-noised frame: target, logits, value, greedy action, attention."""
        config = self.config
        out = self.forward(params, x)
        action = jnp.argmax(out.logits[0]).astype(jnp.int32)
        result: dict[str, Any] = {
            "target": target_value(out, config.target, config.layer, action[None])[0],
            "logits": out.logits[0],
            "value": out.value[0],
            "action": action,
        }
        if out.attention is not None:
            result["attention"] = out.attention[0]
        return result

    def rows(self, key: jax.Array, sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One frame's G row keys [G, key] and noise scales [G] (0: the clean frame)."""
        config = self.config
        keys, scales = [], []
        if "gradient" in config.methods:
            keys.append(key[None])
            scales.append(jnp.zeros(1))
        if config.noisy:
            keys.append(jax.random.split(key, config.samples))
            noise = jnp.full(config.samples, 1.0)
            if config.clean_first:
                noise = noise.at[0].set(0.0)
            scales.append(sigma * noise)
        return jnp.concatenate(keys), jnp.concatenate(scales).astype(jnp.float32)

    def reduce(self, grads: jax.Array) -> dict[str, jax.Array]:
        """One frame's G gradients -> its maps: gradient, and SmoothGrad (mean) and VarGrad
        (population variance) of the N noisy ones, from the same evaluations."""
        config = self.config
        maps = jnp.square(grads) if config.magnitude == "square" else jnp.abs(grads)
        out = {}
        if "gradient" in config.methods:
            out["gradient"] = maps[0]
            maps = maps[1:]
        if config.noisy:
            # means over the samples as products with a 1/N vector: XLA:CPU reduces a
            # [50, 4, 84, 84] array over its leading axis ~5x slower (5.7 vs 1.0 ms, a sixth of
            # a frame's time)
            shape = maps.shape[1:]
            maps = maps.reshape(maps.shape[0], -1)  # [N, 4 * 84 * 84]
            weights = jnp.full(maps.shape[0], 1.0 / maps.shape[0], maps.dtype)  # [N]
            mean = weights @ maps
            if "smoothgrad" in config.methods:
                out["smoothgrad"] = mean.reshape(shape)
            if "vargrad" in config.methods:
                out["vargrad"] = (weights @ jnp.square(maps - mean)).reshape(shape)
        return out

    def gradients(self, params: Any, x: jax.Array, frame: jax.Array, keys: jax.Array,
                  scales: jax.Array, actions: jax.Array, schedule: Schedule) -> jax.Array:
        """Input gradients [R, 4, 84, 84] of R rows (row r: frame x[frame[r]], noise key
        keys[r] times scales[r], action actions[r]), walked as `schedule` says."""
        total = frame.shape[0]
        micro = schedule.micro_batch
        if micro <= 0 or micro >= total:
            return self.grad_rows(params, x[frame], keys, scales, actions)
        outs: list[jax.Array] = []
        last: list[int | None] = [None] * max(1, schedule.chains)
        for b, sl in enumerate(micro_batches(total, micro)):
            chain = b % len(last)
            args = (frame[sl], keys[sl], scales[sl], actions[sl])
            if last[chain] is not None:  # run after the chain's previous micro-batch
                done, args = jax.lax.optimization_barrier((outs[last[chain]], args))
                outs[last[chain]] = done
            rows_frame, rows_key, rows_scale, rows_action = args
            outs.append(self.grad_rows(params, x[rows_frame], rows_key, rows_scale, rows_action))
            last[chain] = b
        return jnp.concatenate(outs)


@functools.lru_cache(maxsize=16)
def make_frame_saliency(network: Any, config: SaliencyConfig) -> Callable:
    """Jitted saliency of ONE frame: (params, x [4,84,84] float in [0,1], key, sigma) -> dict
    with the requested methods' maps [4,84,84], `target`, `logits`, `value`, `action` and
    (attention networks) `attention` [7,7,K]. Its G gradients are one vmapped call. The
    per-frame reference of the tests and the loop of the benchmark."""
    parts = _Parts(network, config)

    def frame(params: Any, x: jax.Array, key: jax.Array, sigma: jax.Array) -> dict[str, Any]:
        out = parts.clean(params, x)
        keys, scales = parts.rows(key, sigma)
        g = keys.shape[0]
        grads = parts.grad_rows(params, jnp.broadcast_to(x, (g, *x.shape)), keys, scales,
                                jnp.broadcast_to(out["action"], (g,)))
        return {**out, **parts.reduce(grads)}

    return jax.jit(frame)


def saliency_devices() -> tuple[Any, ...]:
    """The devices batched saliency splits its frames over: all of the default backend's."""
    return tuple(jax.devices())


def make_batch_saliency(network: Any, config: SaliencyConfig, schedule: Schedule | None = None,
                        devices: tuple[Any, ...] | None = None) -> Callable:
    """Jitted saliency of F frames: (params, x [F,4,84,84], keys [F, key], sigma [F]) -> dict
    of [F, ...] arrays. `jax.vmap` over frames for the clean pass, the rows and the
    reductions; the F x G frame-sample gradients are one vmapped set of rows, computed as
    `schedule` says (default: `Schedule.default()` for the backend). With several `devices`
    (default `saliency_devices()`) the frames are split over them with `jax.shard_map`, every
    device computing its own frames (F is padded to a multiple of the device count). Functions
    are cached by (network, config, schedule, devices): flax modules compare by their fields,
    so repeated exports or videos of the same architecture in one process compile once per
    frame count."""
    return _batch_saliency(network, config, schedule or Schedule.default(),
                           tuple(devices or saliency_devices()))


@functools.lru_cache(maxsize=16)
def _batch_saliency(network: Any, config: SaliencyConfig, schedule: Schedule,
                    devices: tuple[Any, ...]) -> Callable:
    parts = _Parts(network, config)

    def batch(params: Any, x: jax.Array, keys: jax.Array, sigma: jax.Array) -> dict[str, Any]:
        out = jax.vmap(parts.clean, in_axes=(None, 0))(params, x)
        row_keys, scales = jax.vmap(parts.rows)(keys, sigma)  # [F, G, key], [F, G]
        frames, per_frame = scales.shape
        if schedule.micro_batch <= 0:  # accelerators: all F x G rows in one vmapped call
            frame = jnp.repeat(jnp.arange(frames), per_frame)
            grads = parts.gradients(params, x, frame,
                                    row_keys.reshape(frames * per_frame, *row_keys.shape[2:]),
                                    scales.reshape(-1), out["action"][frame], schedule)
            maps = jax.vmap(parts.reduce)(grads.reshape(frames, per_frame, *x.shape[1:]))
            return {**out, **maps}
        # CPU: frame after frame (barrier-ordered), each frame's G gradients in micro-batches
        # and reduced at once while they are in cache: ~15% faster per frame than
        # micro-batching all F x G rows and reducing [F, G, 4, 84, 84] at the end
        per_frame_maps: list[dict[str, jax.Array]] = []
        rows_frame = jnp.zeros(per_frame, jnp.int32)  # [G] every row reads frame 0 of x[f][None]
        for f in range(frames):
            args = (x[f][None], row_keys[f], scales[f], out["action"][f] + rows_frame)
            if per_frame_maps:
                per_frame_maps[-1], args = jax.lax.optimization_barrier((per_frame_maps[-1], args))
            grads = parts.gradients(params, args[0], rows_frame, *args[1:], schedule)
            per_frame_maps.append(parts.reduce(grads))
        maps = {m: jnp.stack([fm[m] for fm in per_frame_maps]) for m in per_frame_maps[0]}
        return {**out, **maps}

    if devices == (jax.devices()[0],):
        return jax.jit(batch)
    return _split_frames_over_devices(batch, Mesh(np.array(devices), (FRAMES_AXIS,)))


def _split_frames_over_devices(batch: Callable, mesh: Mesh) -> Callable:
    """`batch` on every device's share of the frames, one compiled program: the parameters
    replicated (copied to the devices once per set of parameter arrays, not on every call),
    x, keys and sigma split on their leading axis, padded with copies of the last frame to a
    multiple of the device count."""
    frames_spec = PartitionSpec(FRAMES_AXIS)
    sharded = jax.jit(jax.shard_map(
        batch, mesh=mesh, in_specs=(PartitionSpec(), frames_spec, frames_spec, frames_spec),
        out_specs=frames_spec))
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


def frames_per_chunk(network: Any, config: SaliencyConfig, num_frames: int,
                     backend: str | None = None, num_devices: int | None = None) -> int:
    """How many frames one compiled call takes: on each of `num_devices` devices (default:
    `saliency_devices()`), as many as `config.memory_budget_mb` holds (on XLA:CPU, whose host
    devices share the RAM, the budget is for all of them together, and at most
    CPU_FRAMES_PER_DEVICE per device); at least one frame per device, and no more than
    `num_frames` needs (rounded up to a multiple of the device count)."""
    per_frame = config.gradients_per_frame
    devices = num_devices or len(saliency_devices())
    cpu = (backend or jax.default_backend()) == "cpu"
    device_bytes = config.memory_budget_mb * 2**20 / (devices if cpu else 1)  # CPU: one RAM
    fit = int(device_bytes // (bytes_per_gradient(network) * per_frame))
    if cpu:
        fit = min(fit, CPU_FRAMES_PER_DEVICE)
    per_device = max(1, min(-(-num_frames // devices), fit))
    rounds = -(-num_frames // (per_device * devices))
    per_device = -(-num_frames // (rounds * devices))  # equal chunks: no more padding than needed
    return per_device * devices


# --------------------------------------------------------------------------------------------
# the public entry point


@dataclass
class SaliencyResult:
    """Saliency of B frames, host arrays.

    maps: method -> [B, 4, 84, 84] (per stacked frame, newest last); `aggregate(method)` ->
    [B, 84, 84], the max over the 4 stacked frames or the newest (`config.stack`). target:
    [B] the target at the clean frame.
    attention: [B, 7, 7, K] (None without attention); logits [B, A]; values [B];
    greedy_actions [B] (argmax of the logits: the `action` target's action); sigma [B] (noise
    std per frame, [0, 1] input units); chunk_frames: frames per compiled call.
    """

    maps: dict[str, np.ndarray]
    target: np.ndarray
    attention: np.ndarray | None
    logits: np.ndarray
    values: np.ndarray
    greedy_actions: np.ndarray
    sigma: np.ndarray
    config: SaliencyConfig
    chunk_frames: int

    def aggregate(self, method: str) -> np.ndarray:
        maps = self.maps[method]
        return maps[:, -1] if self.config.stack == "newest" else maps.max(axis=1)


def to_unit(obs: Any) -> np.ndarray:
    """uint8 (or 0..255 float) observations [B, 4, 84, 84] -> float32 in [0, 1]."""
    obs = np.asarray(obs)
    if obs.ndim != 4 or obs.shape[1:] != OBS_SHAPE:
        raise UserError(
            f"observations must have shape [N, 4, 84, 84] (envpool's stacked frames), got "
            f"{list(obs.shape)}"
        )
    return obs.astype(np.float32) / 255.0


def noise_sigma(x: np.ndarray, spread: float, scope: str) -> np.ndarray:
    """[B] noise std: spread x (max - min) of the [0, 1] input, over the whole batch or per
    frame."""
    x = np.asarray(x, np.float32)
    if scope == "batch":
        value = spread * (float(x.max()) - float(x.min())) if x.size else 0.0
        return np.full(len(x), value, np.float32)
    if scope == "frame":
        flat = x.reshape(len(x), -1)
        return (spread * (flat.max(axis=1) - flat.min(axis=1))).astype(np.float32)
    raise ValueError(f"unknown sigma scope {scope!r}")


def frame_keys(key: jax.Array, num_frames: int) -> jax.Array:
    """One PRNG key per frame, independent of chunking."""
    return jax.random.split(key, num_frames)


def compute_saliency(
    network: Any,
    params: Any,
    obs: Any,
    config: SaliencyConfig,
    key: jax.Array | int = 0,
    *,
    chunk_frames: int | None = None,
    sigma: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    fn: Callable | None = None,
    schedule: Schedule | None = None,
) -> SaliencyResult:
    """Saliency maps of the frames `obs` (uint8 [B, 4, 84, 84]) for every method of `config`.

    key: PRNG key or int seed; frame i uses `jax.random.split(key, B)[i]`. chunk_frames:
    frames per compiled call (default: from the memory budget). sigma: [B] noise std to use
    instead of `spread` x range. progress: called with the number of frames finished after
    each chunk. fn: a `make_batch_saliency` function to reuse (saves a compilation).
    schedule: how each chunk walks its gradients (default: `Schedule.default()`).
    """
    check_network(network, config)
    x = to_unit(obs)
    num = len(x)
    if num == 0:
        raise UserError("no frames to compute saliency for")
    if isinstance(key, int):
        key = jax.random.PRNGKey(key)
    keys = frame_keys(key, num)
    sigma = noise_sigma(x, config.spread, config.sigma_scope) if sigma is None else sigma
    sigma = np.broadcast_to(np.asarray(sigma, np.float32), (num,))
    # an explicit chunk size is kept even above `num` (padded), so repeated calls with the same
    # chunk_frames and fn never recompile
    chunk = max(1, int(chunk_frames)) if chunk_frames else frames_per_chunk(network, config, num)
    fn = fn or make_batch_saliency(network, config, schedule)
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
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return SaliencyResult(
        maps={m: merged[m] for m in config.methods},
        target=merged["target"],
        attention=merged.get("attention"),
        logits=merged["logits"],
        values=merged["value"],
        greedy_actions=merged["action"],
        sigma=np.asarray(sigma, np.float32).copy(),
        config=config,
        chunk_frames=chunk,
    )


def agent_saliency(agent: Any, obs: Any, config: SaliencyConfig, seed: int = 0,
                   **kwargs: Any) -> SaliencyResult:
    """`compute_saliency` for a loaded agent (`attnjax.load_agent`)."""
    return compute_saliency(agent.network, agent.params, obs, config, jax.random.PRNGKey(seed),
                            **kwargs)
