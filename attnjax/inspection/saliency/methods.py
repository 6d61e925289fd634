"""Input saliency of the attention layer (and of the policy and value) for many frames at once.

Methods (their registry, and how to add one: `attnjax.inspection.saliency.registry`), the
first three as Nikulin et al. (2019) compared them:

- `gradient` (Simonyan et al. 2014): the squared gradient of a scalar target with respect to the
  input observation (`magnitude="abs"`: its absolute value).
- `smoothgrad` (Smilkov et al. 2017): the mean of the squared gradients over N noisy copies
  x + e, e ~ Normal(0, sigma^2), with sigma = spread x (max - min) of the input.
- `vargrad` (Adebayo et al. 2018): the variance (population, ddof = 0) of the same squared
  gradients; SmoothGrad and VarGrad come out of ONE set of N gradient evaluations.
- `perturbation` (Greydanus et al. 2018): no gradients; the change of the target's readout
  (`readout`) when a blurred Gaussian patch replaces each point of a 5-pixel grid, 289 forward
  passes per frame (geometry: `attnjax.inspection.saliency.perturbation`).

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
the noisy copies) and `value`. The paper's settings: `attnjax.inspection.presets.SALIENCY_PRESETS`;
where the original's own code differed: docs/saliency_and_videos.md.

Execution. One compiled function takes a chunk of F frames: `jax.vmap` over frames draws each
frame's noisy copies (its own PRNG key from `jax.random.split` of the one key, so results do not
depend on chunking, batching or devices) and runs the clean forward pass; the frames' gradient
and perturbation rows go through vmapped calls; each frame's rows become its evidence and the
registry's functions turn it into maps. How rows are laid onto the machine (micro-batches on
CPU, frames split over devices, chunks from the memory budget): `...saliency.execution`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from attnjax.devices import eigen_convolution_options
from attnjax.errors import UserError
from attnjax.inspection.saliency import perturbation
from attnjax.inspection.saliency.config import (  # noqa: F401 - the config lives there, re-exported
    ATTENTION_TARGETS,
    LAYERS,
    MAGNITUDES,
    METHODS,
    SIGMA_SCOPES,
    STACKS,
    TARGETS,
    SaliencyConfig,
)
from attnjax.inspection.saliency.execution import (
    OBS_SHAPE,
    Schedule,
    frames_per_chunk,
    one_after_another,
    run_chunks,
    saliency_devices,
    split_frames_over_devices,
    walk_rows,
)
from attnjax.inspection.saliency.registry import SALIENCY_METHODS


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


def readout(output: Any, target: str, layer: str = "attention") -> jax.Array:
    """What perturbation saliency compares, [B, D]: the policy logits (target `action`, as
    Greydanus et al. compare the actor's logits), else the target's scalar ([B, 1])."""
    if target == "action":
        return output.logits
    return target_value(output, target, layer)[:, None]


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


class _Parts:
    """The per-frame pieces shared by the single-frame and the batched function.

    Evidence (registry.EVIDENCE) is gathered once per frame for all methods that share it.
    Gradients: a frame's G gradient inputs ("rows") are the clean frame (when a method needs
    it) and N noisy copies; copy s of a frame uses noise `normal(split(frame_key, N)[s])`,
    drawn inside the row's own gradient computation. So the noise of a row never depends on
    how rows are batched, and on CPU each micro-batch draws its noise right before using it.
    Perturbations: a frame's 289 rows are the frame and its blur with one grid centre each."""

    def __init__(self, network: Any, config: SaliencyConfig) -> None:
        self.network, self.config = network, config
        self.methods = [SALIENCY_METHODS[m] for m in config.methods]
        self.centres = perturbation.grid_centres()  # [P, 2]

        def scalar(params: Any, x: jax.Array, action: jax.Array) -> jax.Array:
            out = self.forward(params, x)
            return target_value(out, config.target, config.layer, action[None])[0]

        grad = jax.grad(scalar, argnums=1)

        def row(params: Any, x: jax.Array, key: jax.Array, scale: jax.Array,
                action: jax.Array) -> jax.Array:
            return grad(params, x + scale * standard_normal(key, x.shape), action)

        def perturbed_row(params: Any, pair: jax.Array, centre: jax.Array) -> jax.Array:
            """pair [2, 4, 84, 84]: the frame and its blur; centre [2] -> readout [D]."""
            out = self.forward(params, perturbation.perturb(pair[0], pair[1], centre))
            return readout(out, config.target, config.layer)[0]

        self.grad_rows = jax.vmap(row, in_axes=(None, 0, 0, 0, 0))
        self.perturbed_rows = jax.vmap(perturbed_row, in_axes=(None, 0, 0))

    def forward(self, params: Any, x: jax.Array) -> Any:
        """One frame [4, 84, 84] in [0, 1] through the network's own apply."""
        return self.network.apply({"params": params}, (x * 255.0)[None])

    def clean(self, params: Any, x: jax.Array) -> dict[str, Any]:
        """Outputs of the un-noised frame: target, logits, value, greedy action, attention
        (and, for perturbation, the readout its perturbed copies are compared with)."""
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
        if config.forwards_per_frame:
            result["readout"] = readout(out, config.target, config.layer)[0]
        return result

    def rows(self, key: jax.Array, sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One frame's G row keys [G, key] and noise scales [G] (0: the clean frame)."""
        config = self.config
        keys, scales = [], []
        if config.needs("gradient"):
            keys.append(key[None])
            scales.append(jnp.zeros(1))
        if config.noisy:
            keys.append(jax.random.split(key, config.samples))
            noise = jnp.full(config.samples, 1.0)
            if config.clean_first:
                noise = noise.at[0].set(0.0)
            scales.append(sigma * noise)
        return jnp.concatenate(keys), jnp.concatenate(scales).astype(jnp.float32)

    def gradient_evidence(self, grads: jax.Array) -> dict[str, Any]:
        """One frame's G gradients [G, 4, 84, 84] -> "gradient" (the clean one's map) and
        "noise_moments" (mean and population variance of the N noisy ones' maps)."""
        config = self.config
        maps = {"square": jnp.square, "abs": jnp.abs, "signed": lambda g: g}[config.magnitude](
            grads)
        out: dict[str, Any] = {}
        if config.needs("gradient"):
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
            out["noise_moments"] = (mean.reshape(shape),
                                    (weights @ jnp.square(maps - mean)).reshape(shape))
        return out

    def evidence(self, params: Any, x: jax.Array, out: dict[str, Any], keys: jax.Array,
                 sigma: jax.Array, schedule: Schedule) -> dict[str, Any]:
        """Evidence of F frames (x [F, 4, 84, 84], clean outputs, keys [F, key], sigma [F])."""
        config, frames = self.config, x.shape[0]
        evidence: dict[str, Any] = {}
        if config.gradients_per_frame:
            row_keys, scales = jax.vmap(self.rows)(keys, sigma)  # [F, G, key], [F, G]
            g = scales.shape[1]
            frame = jnp.repeat(jnp.arange(frames), g)
            grads = walk_rows(self.grad_rows, params, x, frame,
                              (row_keys.reshape(frames * g, *row_keys.shape[2:]),
                               scales.reshape(-1), out["action"][frame]),
                              schedule.micro_batch, schedule.chains)
            evidence.update(jax.vmap(self.gradient_evidence)(
                grads.reshape(frames, g, *x.shape[1:])))
        if config.forwards_per_frame:
            pairs = jnp.stack([x, perturbation.blur(x)], axis=1)  # [F, 2, 4, 84, 84]
            p = len(self.centres)
            frame = jnp.repeat(jnp.arange(frames), p)
            centres = jnp.tile(jnp.asarray(self.centres), (frames, 1))  # [F * P, 2]
            readouts = walk_rows(self.perturbed_rows, params, pairs, frame, (centres,),
                                 schedule.forward_batch)  # [F * P, D]
            weight = 0.5 if config.target == "action" else 1.0  # ½ ||Δπ||² on the logits only
            evidence["perturbation"] = jax.vmap(perturbation.scores, (0, 0, None))(
                readouts.reshape(frames, p, -1), out["readout"], weight)
        return evidence

    def maps(self, evidence: dict[str, Any], x: jax.Array) -> dict[str, jax.Array]:
        """One frame's evidence and x [4, 84, 84] -> method -> [4, 84, 84], by the registry."""
        return {m.name: m.fn(evidence[m.evidence], x) for m in self.methods}

    def finish(self, out: dict[str, Any], maps: dict[str, jax.Array]) -> dict[str, Any]:
        return {**{k: v for k, v in out.items() if k != "readout"}, **maps}


@functools.lru_cache(maxsize=16)
def make_frame_saliency(network: Any, config: SaliencyConfig) -> Callable:
    """Jitted saliency of ONE frame: (params, x [4,84,84] float in [0,1], key, sigma) -> dict
    with the requested methods' maps [4,84,84], `target`, `logits`, `value`, `action` and
    (attention networks) `attention` [7,7,K]. All its rows are one vmapped call. The
    per-frame reference of the tests and the loop of the benchmark."""
    parts = _Parts(network, config)

    def frame(params: Any, x: jax.Array, key: jax.Array, sigma: jax.Array) -> dict[str, Any]:
        out = parts.clean(params, x)
        batched = jax.tree_util.tree_map(lambda a: a[None], out)
        evidence = parts.evidence(params, x[None], batched, key[None], sigma[None], Schedule())
        evidence = jax.tree_util.tree_map(lambda a: a[0], evidence)
        return parts.finish(out, parts.maps(evidence, x))

    return jax.jit(frame, compiler_options=eigen_convolution_options())


def make_batch_saliency(network: Any, config: SaliencyConfig, schedule: Schedule | None = None,
                        devices: tuple[Any, ...] | None = None) -> Callable:
    """Jitted saliency of F frames: (params, x [F,4,84,84], keys [F, key], sigma [F]) -> dict
    of [F, ...] arrays; rows walked as `schedule` says (default `Schedule.default()`). With
    several `devices` (default `saliency_devices()`) the frames are split over them with
    `jax.shard_map` (F padded to a multiple of the device count). Cached by (network, config,
    schedule, devices): flax modules compare by their fields, so repeated exports or videos of
    one architecture in one process compile once per frame count."""
    return _batch_saliency(network, config, schedule or Schedule.default(),
                           tuple(devices or saliency_devices()))


@functools.lru_cache(maxsize=16)
def _batch_saliency(network: Any, config: SaliencyConfig, schedule: Schedule,
                    devices: tuple[Any, ...]) -> Callable:
    parts = _Parts(network, config)

    def batch(params: Any, x: jax.Array, keys: jax.Array, sigma: jax.Array) -> dict[str, Any]:
        out = jax.vmap(parts.clean, in_axes=(None, 0))(params, x)
        if schedule.micro_batch <= 0:  # accelerators: all F x G rows in one vmapped call
            evidence = parts.evidence(params, x, out, keys, sigma, schedule)
            return parts.finish(out, jax.vmap(parts.maps)(evidence, x))
        # CPU: frame after frame (barrier-ordered), each frame's rows in micro-batches and
        # reduced at once while they are in cache: ~15% faster per frame than micro-batching
        # all F x G rows and reducing [F, G, 4, 84, 84] at the end

        def frame_maps(xf: jax.Array, outf: dict[str, Any], key: jax.Array,
                       sig: jax.Array) -> dict[str, jax.Array]:
            evidence = parts.evidence(params, xf, outf, key, sig, schedule)
            return parts.maps(jax.tree_util.tree_map(lambda a: a[0], evidence), xf[0])

        maps = one_after_another(frame_maps, [
            (x[f][None], jax.tree_util.tree_map(lambda a, f=f: a[f][None], out), keys[f][None],
             sigma[f][None]) for f in range(x.shape[0])])
        return parts.finish(out, maps)

    if devices == (jax.devices()[0],):
        return jax.jit(batch, compiler_options=eigen_convolution_options())
    return split_frames_over_devices(batch, devices)


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
    merged = run_chunks(fn, params, x, keys, sigma, chunk, progress)
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
