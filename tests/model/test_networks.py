"""The attention actor-critic and the Nature-CNN baseline, as docs/design.md describes them."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnjax.model.envs import AtariEnv, env_seeds
from attnjax.model.networks import init_params, make_network
from attnjax.training.losses import attention_entropy


@pytest.fixture(scope="module")
def breakout_frames():
    """32 real Breakout observations from random play."""
    env = AtariEnv("Breakout-v5", env_seeds(0, 8))
    state, obs = env.reset()
    step = jax.jit(env.step)
    frames = []
    rng = np.random.default_rng(0)
    for t in range(40):
        state, out = step(state, jnp.asarray(rng.integers(0, env.num_actions, 8), jnp.int32))
        if t % 10 == 9:
            frames.append(np.asarray(out.obs))
    env.close()
    return jnp.asarray(np.concatenate(frames))


def test_attention_network_outputs(breakout_frames):
    net = make_network("attention", num_actions=4, num_heads=2)
    params = init_params(net, jax.random.PRNGKey(0))
    out = net.apply({"params": params}, breakout_frames)
    B = breakout_frames.shape[0]
    assert out.logits.shape == (B, 4) and out.value.shape == (B,)
    assert out.attention.shape == (B, 7, 7, 2)
    np.testing.assert_allclose(out.attention.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    acts = out.activations
    assert acts["conv1"].shape == (B, 20, 20, 32) and acts["conv2"].shape == (B, 9, 9, 64)
    assert acts["conv3"].shape == (B, 7, 7, 64) and acts["a1"].shape == (B, 7, 7, 512)
    assert acts["attention_logits"].shape == (B, 7, 7, 2)
    norms = jnp.linalg.norm(acts["c3_normalized"], axis=-1)
    nonzero = jnp.linalg.norm(acts["conv3"], axis=-1) > 1e-6
    np.testing.assert_allclose(norms[nonzero], 1.0, rtol=1e-4)
    np.testing.assert_allclose(acts["conv1"], jax.nn.relu(acts["conv1_pre"]))
    np.testing.assert_allclose(acts["a1"], jax.nn.elu(acts["a1_pre"]), rtol=1e-6)
    np.testing.assert_allclose(
        acts["features"], acts["c3_normalized"] * out.attention.sum(-1, keepdims=True), rtol=1e-6
    )


@pytest.mark.parametrize("heads", [1, 2, 3])
def test_initial_attention_entropy_is_near_k_ln49(breakout_frames, heads):
    net = make_network("attention", num_actions=4, num_heads=heads)
    params = init_params(net, jax.random.PRNGKey(1))
    entropy = float(attention_entropy(net.apply({"params": params}, breakout_frames).attention))
    assert entropy == pytest.approx(heads * math.log(49), rel=0.01)


def test_nature_network_has_no_attention(breakout_frames):
    net = make_network("nature", num_actions=4)
    params = init_params(net, jax.random.PRNGKey(0))
    out = net.apply({"params": params}, breakout_frames[:4])
    assert out.attention is None and out.logits.shape == (4, 4)
    assert "attn_hidden" not in params


def test_initialisation_gains():
    net = make_network("attention", num_actions=4)
    params = init_params(net, jax.random.PRNGKey(0))
    assert float(jnp.abs(params["encoder"]["conv1"]["bias"]).max()) == 0.0
    # orthogonal with gain g: the (flattened) kernel's singular values all equal g
    policy = np.asarray(params["head"]["policy"]["kernel"])
    np.testing.assert_allclose(np.linalg.svd(policy, compute_uv=False), 0.01, rtol=1e-4)
    conv3 = np.asarray(params["encoder"]["conv3"]["kernel"]).reshape(-1, 64)
    np.testing.assert_allclose(np.linalg.svd(conv3, compute_uv=False), math.sqrt(2), rtol=1e-4)


@pytest.mark.parametrize(
    "shape, kernel, stride",
    [((3, 84, 84, 4), (8, 8, 4, 32), 4), ((3, 20, 20, 32), (4, 4, 32, 64), 2),
     ((2, 9, 9, 64), (3, 3, 64, 64), 1), ((2, 21, 21, 4), (8, 8, 4, 8), 4)],
    ids=["conv1", "conv2", "conv3-stride1", "indivisible-size"],
)
def test_fast_input_gradient_conv_matches_lax(shape, kernel, stride):
    """The encoder's convolution: forward and kernel gradient are lax's own; the input
    gradient (space-to-depth form where the stride divides kernel and size, lax elsewhere)
    equals lax's to float rounding."""
    from attnjax.model.networks import NHWC, conv_with_fast_input_gradient

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random(shape, np.float32))
    w = jnp.asarray(rng.standard_normal(kernel, np.float32))
    dims = jax.lax.conv_dimension_numbers(x.shape, w.shape, NHWC)

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w, (stride, stride), "VALID",
                                                 dimension_numbers=dims)))

    ours = jax.grad(loss(conv_with_fast_input_gradient), (0, 1))(x, w)
    lax_ = jax.grad(loss(jax.lax.conv_general_dilated), (0, 1))(x, w)
    for got, want in zip(ours, lax_, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))
    uses_blocks = "custom_vjp" in str(jax.make_jaxpr(loss(conv_with_fast_input_gradient))(x, w))
    assert uses_blocks == (stride > 1 and shape[1] % stride == 0)


def test_receptive_field_geometry_from_conv_layers():
    """The geometry every tool draws with: conv3 cell (0, 0) sees a 36 px square, cells 8 px
    apart, a 7x7 grid; the conv1/conv2 steps in between; arrays work as well as ints."""
    from attnjax.model.baseline import GRID
    from attnjax.model.networks import CONV_GEOMETRY, receptive_field

    assert CONV_GEOMETRY["input"] == (1, 1, 84)
    assert CONV_GEOMETRY["conv1"] == (4, 8, 20)
    assert CONV_GEOMETRY["conv2"] == (8, 20, 9)
    assert CONV_GEOMETRY["conv3"] == (8, 36, GRID)
    assert receptive_field("conv3", 0, 0) == (0, 0, 36)
    assert receptive_field("conv3", 6, 6) == (48, 48, 36)  # ends at row 83, the last
    top, left, size = receptive_field("conv1", np.array([0, 19]), np.array([1, 2]))
    assert top.tolist() == [0, 76] and left.tolist() == [4, 8] and size == 8
