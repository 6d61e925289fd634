"""The region-sensitive attention actor-critic (Yang et al. 2018, as Nikulin et al. 2019 ran it)
and the Nature-CNN baseline.

One `apply` returns an `AgentOutput` holding logits, value, attention and every intermediate
activation, so that saliency, relevance trees and videos never re-implement the network.
Layouts: observations arrive as envpool's uint8 `[B, 4, 84, 84]`; activations are NHWC.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from attnjax.model.baseline import CELLS

# (features, kernel, stride) of the three Nature-CNN convolutions: 84 -> 20 -> 9 -> 7.
CONV_LAYERS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
ENTROPY_EPS = 1e-10  # p * log(p + eps): finite value and gradient where p underflows to 0
NETWORKS = ("attention", "nature")
OBS_SIZE = 84  # observation pixels per side


class LayerGeometry(NamedTuple):
    """Where the units of one layer look on the 84x84 input (no padding anywhere)."""

    jump: int  # input pixels between neighbouring units
    size: int  # side of a unit's receptive-field square, in input pixels
    grid: int  # units per side


def _conv_geometry() -> dict[str, LayerGeometry]:
    """Composed from CONV_LAYERS (kernel k, stride s): size_l = size_{l-1} + (k_l - 1) jump_{l-1},
    jump_l = jump_{l-1} s_l, grid_l = (grid_{l-1} - k_l) // s_l + 1."""
    out = {"input": LayerGeometry(1, 1, OBS_SIZE)}
    jump, size, grid = 1, 1, OBS_SIZE
    for i, (_, kernel, stride) in enumerate(CONV_LAYERS, start=1):
        size += (kernel - 1) * jump
        jump *= stride
        grid = (grid - kernel) // stride + 1
        out[f"conv{i}"] = LayerGeometry(jump, size, grid)
    return out


# input, conv1 (jump 4, 8 px, 20 units), conv2 (8, 20 px, 9), conv3 (8, 36 px, 7): attention
# cell (i, j) is conv3 unit (i, j) and sees input rows 8i .. 8i + 35
CONV_GEOMETRY = _conv_geometry()


def receptive_field(layer: str, y: Any, x: Any) -> tuple[Any, Any, int]:
    """(top, left, size) of the receptive-field square of unit(s) (y, x) of `layer` (input,
    conv1, conv2, conv3) on the 84x84 input: rows top .. top + size - 1. Ints or int arrays."""
    geometry = CONV_GEOMETRY[layer]
    return y * geometry.jump, x * geometry.jump, geometry.size


@struct.dataclass
class AgentOutput:
    """Everything one forward pass computes; a pytree, so it passes through jit and vmap."""

    logits: jax.Array  # [B, A]
    value: jax.Array  # [B]
    attention: jax.Array | None  # [B, 7, 7, K], each head sums to 1 over the 49 cells; None: nature
    activations: dict[str, jax.Array]
    # input [B,84,84,4] (scaled to [0,1]); conv{1,2,3}_pre / conv{1,2,3} before / after ReLU
    # ([B,20,20,32], [B,9,9,64], [B,7,7,64]); attention net adds c3_normalized [B,7,7,64],
    # a1_pre / a1 [B,7,7,512] (before / after ELU), attention_logits [B,7,7,K],
    # features [B,7,7,64]; both add hidden [B,512].


def head_entropies(attention: jax.Array, eps: float = ENTROPY_EPS) -> jax.Array:
    """attention [B, 7, 7, K] -> [B, K]: each head's entropy over the 49 cells, in nats.

    The one definition: the training loss sums it over heads (`losses.frame_attention_entropy`),
    evaluation and the attention pictures report it per head. `p * log(p + eps)` keeps value
    and gradient finite where probabilities underflow to 0 (a one-hot head has entropy 0).
    """
    p = attention.reshape(attention.shape[0], -1, attention.shape[-1])  # [B, 49, K]
    return -jnp.sum(p * jnp.log(p + eps), axis=1)


def orthogonal(gain: float) -> nn.initializers.Initializer:
    return nn.initializers.orthogonal(scale=gain)


def preprocess(obs: jax.Array) -> jax.Array:
    """uint8 [B, 4, 84, 84] -> float32 [B, 84, 84, 4] in [0, 1]."""
    return jnp.transpose(obs, (0, 2, 3, 1)).astype(jnp.float32) / 255.0


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """x / max(||x||, sqrt(eps)) as tf.nn.l2_normalize, which the paper's code used."""
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps))


NHWC = ("NHWC", "HWIO", "NHWC")


def _space_to_depth(x: jax.Array, s: int) -> jax.Array:
    """[B, H, W, C] -> [B, H/s, W/s, s*s*C]: each s x s block of pixels becomes one cell."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // s, w // s, s * s * c)


def _depth_to_space(x: jax.Array, s: int) -> jax.Array:
    """The inverse of `_space_to_depth`."""
    b, h, w, _ = x.shape
    x = x.reshape(b, h, w, s, s, -1).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * s, w * s, -1)


def _kernel_to_depth(kernel: jax.Array, s: int) -> jax.Array:
    """[k, k, C, F] -> [k/s, k/s, s*s*C, F], matching `_space_to_depth`'s channel order."""
    kh, kw, c, f = kernel.shape
    kernel = kernel.reshape(kh // s, s, kw // s, s, c, f).transpose(0, 2, 1, 3, 4, 5)
    return kernel.reshape(kh // s, kw // s, s * s * c, f)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _strided_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                        dimension_numbers=NHWC)


def _strided_conv_fwd(x: jax.Array, kernel: jax.Array, stride: int):
    return _strided_conv(x, kernel, stride), (x, kernel)


def _strided_conv_bwd(stride: int, residuals: tuple[jax.Array, jax.Array], g: jax.Array):
    x, kernel = residuals
    _, kernel_vjp = jax.vjp(
        lambda k: jax.lax.conv_general_dilated(x, k, (stride, stride), "VALID",
                                               dimension_numbers=NHWC),
        kernel,
    )
    (d_kernel,) = kernel_vjp(g)
    # the same convolution as a stride-1 one over s x s blocks: its transpose needs no
    # input dilation, where XLA:CPU's transposed strided convolution multiplies through s*s
    # times more zeros (conv1's input gradient: 180 -> 40 us per image)
    # (a vjp, not jax.linear_transpose: that rejects a cotangent batched by vmap inside
    # shard_map; the unused forward of the vjp is dead code XLA removes)
    blocks_kernel = _kernel_to_depth(kernel, stride)
    _, blocks_vjp = jax.vjp(
        lambda blocks: jax.lax.conv_general_dilated(blocks, blocks_kernel, (1, 1), "VALID",
                                                    dimension_numbers=NHWC),
        _space_to_depth(x, stride),
    )
    (d_blocks,) = blocks_vjp(g)
    return _depth_to_space(d_blocks, stride), d_kernel


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def conv_with_fast_input_gradient(lhs, rhs, window_strides, padding, lhs_dilation=None,
                                  rhs_dilation=None, dimension_numbers=None,
                                  feature_group_count=1, precision=None):
    """`lax.conv_general_dilated` for `nn.Conv`, same forward pass and kernel gradient; for a
    VALID NHWC convolution whose stride divides its kernel and input size, the input
    gradient is computed as a stride-1 convolution over s x s pixel blocks (2-4x faster on
    XLA:CPU; saliency is input gradients). Anything else goes to lax unchanged."""
    stride = window_strides[0]
    kernel_size, size = rhs.shape[0], lhs.shape[1]
    fast = (
        lhs.ndim == 4 and padding == "VALID" and len(set(window_strides)) == 1 and stride > 1
        and lhs.shape[1] == lhs.shape[2] and rhs.shape[0] == rhs.shape[1]
        and kernel_size % stride == 0 and size % stride == 0
        and all(d == 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
        and feature_group_count == 1 and precision is None
        and dimension_numbers == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC)
    )
    if fast:
        return _strided_conv(lhs, rhs, stride)
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        precision=precision)


class ConvEncoder(nn.Module):
    """Three Nature-CNN convolutions, recording pre- and post-ReLU activations."""

    @nn.compact
    def __call__(self, x: jax.Array, acts: dict[str, jax.Array]) -> jax.Array:
        for i, (features, kernel, stride) in enumerate(CONV_LAYERS, start=1):
            x = nn.Conv(
                features,
                (kernel, kernel),
                (stride, stride),
                padding="VALID",
                kernel_init=orthogonal(math.sqrt(2)),
                bias_init=nn.initializers.zeros,
                conv_general_dilated=conv_with_fast_input_gradient,
                name=f"conv{i}",
            )(x)
            acts[f"conv{i}_pre"] = x
            x = nn.relu(x)
            acts[f"conv{i}"] = x
        return x  # [B, 7, 7, 64]


class ActorCriticHead(nn.Module):
    """Dense 512 + ReLU, then policy logits (gain 0.01) and value (gain 1)."""

    num_actions: int

    @nn.compact
    def __call__(self, flat: jax.Array, acts: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        hidden = nn.relu(nn.Dense(512, kernel_init=orthogonal(math.sqrt(2)), name="fc")(flat))
        acts["hidden"] = hidden
        logits = nn.Dense(self.num_actions, kernel_init=orthogonal(0.01), name="policy")(hidden)
        value = nn.Dense(1, kernel_init=orthogonal(1.0), name="value")(hidden)[:, 0]
        return logits, value


class AttentionActorCritic(nn.Module):
    """Conv encoder -> L2-normalised c3 -> K softmax attention maps over the 7x7 cells ->
    features = c3_normalised * sum of heads -> actor-critic head."""

    num_actions: int
    num_heads: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array) -> AgentOutput:
        x = preprocess(obs)
        acts: dict[str, jax.Array] = {"input": x}
        c3 = ConvEncoder(name="encoder")(x, acts)
        c3n = l2_normalize(c3)  # [B, 7, 7, 64]
        acts["c3_normalized"] = c3n
        a1_pre = nn.Conv(512, (1, 1), kernel_init=orthogonal(math.sqrt(2)), name="attn_hidden")(c3n)
        acts["a1_pre"] = a1_pre
        a1 = nn.elu(a1_pre)
        acts["a1"] = a1
        att_logits = nn.Conv(
            self.num_heads, (1, 1), kernel_init=orthogonal(math.sqrt(2)), name="attn_logits"
        )(a1)  # [B, 7, 7, K]
        acts["attention_logits"] = att_logits
        batch = obs.shape[0]
        flat_logits = att_logits.reshape(batch, CELLS, self.num_heads)
        attention = jax.nn.softmax(flat_logits, axis=1).reshape(att_logits.shape)
        features = c3n * jnp.sum(attention, axis=-1, keepdims=True)  # [B, 7, 7, 64]
        acts["features"] = features
        logits, value = ActorCriticHead(self.num_actions, name="head")(
            features.reshape(batch, -1), acts
        )
        return AgentOutput(logits=logits, value=value, attention=attention, activations=acts)


class NatureActorCritic(nn.Module):
    """The baseline without attention: conv encoder -> flatten -> actor-critic head."""

    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> AgentOutput:
        x = preprocess(obs)
        acts: dict[str, jax.Array] = {"input": x}
        c3 = ConvEncoder(name="encoder")(x, acts)
        logits, value = ActorCriticHead(self.num_actions, name="head")(
            c3.reshape(obs.shape[0], -1), acts
        )
        return AgentOutput(logits=logits, value=value, attention=None, activations=acts)


def make_network(name: str, num_actions: int, num_heads: int = 2) -> nn.Module:
    """The network a config names: "attention" (default) or "nature"."""
    if name == "attention":
        return AttentionActorCritic(num_actions=num_actions, num_heads=num_heads)
    if name == "nature":
        return NatureActorCritic(num_actions=num_actions)
    raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")


def init_params(network: nn.Module, key: jax.Array) -> dict:
    """Parameters for one network, initialised from a dummy observation. Jitted: the orthogonal
    initialisers' QR decompositions take ~4 s op by op on CPU, ~1 s compiled (same values)."""
    dummy = jnp.zeros((1, 4, 84, 84), jnp.uint8)
    return jax.jit(lambda k: network.init(k, dummy)["params"])(key)
