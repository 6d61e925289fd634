"""Saliency methods: analytic gradients of linear and quadratic networks, SmoothGrad/VarGrad
identities and noise scale, targets against NumPy, the configuration's checks, the network
without attention, and the saliency peak on the Quadrant object of a trained agent."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from saliency_helpers import HEADS, random_frames

from attnjax.errors import UserError
from attnjax.inspection.saliency import methods as S
from attnjax.model.networks import AgentOutput, init_params, make_network

DIM = 4 * 84 * 84


# --------------------------------------------------------------------------------------------
# networks with known input gradients


class LinearAgent(nn.Module):
    """attention = W_att x, logits = W_pi x, value = w_v . x with x = obs / 255 flattened in
    the [4, 84, 84] layout: every input gradient is a column of a weight matrix."""

    num_heads: int = HEADS
    num_actions: int = 3

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32).reshape(obs.shape[0], -1) / 255.0
        init = nn.initializers.normal(1.0)
        att = nn.Dense(49 * self.num_heads, kernel_init=init, name="att")(x)
        logits = nn.Dense(self.num_actions, kernel_init=init, name="pi")(x)
        value = nn.Dense(1, kernel_init=init, name="v")(x)[:, 0]
        attention = att.reshape(-1, 7, 7, self.num_heads)
        return AgentOutput(logits=logits, value=value, attention=attention,
                           activations={"attention_logits": 2.0 * attention})


class QuadraticAgent(nn.Module):
    """value = (w . x)^2: gradient 2 (w . x) w, so under Gaussian noise of std s the squared
    gradient's mean and variance are known in closed form."""

    num_heads: int = HEADS

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32).reshape(obs.shape[0], -1) / 255.0
        w = self.param("w", nn.initializers.normal(1.0 / np.sqrt(DIM)), (DIM,))
        value = jnp.square(x @ w)
        zeros = jnp.zeros((obs.shape[0], 7, 7, self.num_heads))
        return AgentOutput(logits=jnp.zeros((obs.shape[0], 2)), value=value, attention=zeros,
                           activations={})


@pytest.fixture(scope="module")
def linear():
    net = LinearAgent()
    params = init_params(net, jax.random.PRNGKey(0))
    return net, params


def _np_attention_target(att: np.ndarray, target: str) -> np.ndarray:
    b, k = att.shape[0], att.shape[-1]
    cells = att.reshape(b, 49, k)
    return {
        "max": cells.max(axis=(1, 2)),
        "sum_max": cells.sum(axis=2).max(axis=1),
        "max_sum": cells.max(axis=1).sum(axis=1),
        "sum": cells.sum(axis=(1, 2)),
    }[target]


def _analytic_linear_gradient(params, obs: np.ndarray, target: str) -> np.ndarray:
    """d target / d (obs / 255) of LinearAgent, [B, 4, 84, 84], computed with NumPy."""
    x = obs.reshape(len(obs), -1).astype(np.float64) / 255.0
    w_att = np.asarray(params["att"]["kernel"], np.float64)  # [DIM, 49 K]
    att = x @ w_att + np.asarray(params["att"]["bias"])
    w_pi = np.asarray(params["pi"]["kernel"], np.float64)
    grads = []
    for b in range(len(x)):
        a = att[b].reshape(49, HEADS)
        if target == "max":
            cell, head = np.unravel_index(np.argmax(a), a.shape)
            g = w_att[:, cell * HEADS + head]
        elif target == "sum_max":
            cell = np.argmax(a.sum(axis=1))
            g = w_att[:, cell * HEADS : cell * HEADS + HEADS].sum(axis=1)
        elif target == "max_sum":
            g = sum(w_att[:, np.argmax(a[:, k]) * HEADS + k] for k in range(HEADS))
        elif target == "sum":
            g = w_att.sum(axis=1)
        elif target == "action":
            logits = x[b] @ w_pi + np.asarray(params["pi"]["bias"])
            g = w_pi[:, np.argmax(logits)]
        elif target == "value":
            g = np.asarray(params["v"]["kernel"], np.float64)[:, 0]
        grads.append(g)
    return np.stack(grads).reshape(obs.shape)


# --------------------------------------------------------------------------------------------
# correctness


@pytest.mark.parametrize("target", S.TARGETS)
def test_gradient_equals_analytic_gradient_of_a_linear_network(linear, target):
    net, params = linear
    obs = random_frames(3, seed=1)
    config = S.SaliencyConfig(methods=("gradient",), target=target)
    result = S.compute_saliency(net, params, obs, config)
    want = _analytic_linear_gradient(params, obs, target)
    scale = np.abs(want).max() ** 2
    np.testing.assert_allclose(result.maps["gradient"], want**2, rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(result.aggregate("gradient"), (want**2).max(axis=1), rtol=1e-4,
                               atol=1e-6 * scale)
    absolute = S.compute_saliency(
        net, params, obs, S.SaliencyConfig(methods=("gradient",), target=target,
                                           magnitude="abs"))
    np.testing.assert_allclose(absolute.maps["gradient"], np.abs(want), rtol=1e-4,
                               atol=1e-6 * np.abs(want).max())


def test_attention_logits_layer_and_noise_free_identities_on_linear_network(linear):
    """layer=attention_logits differentiates the logits (2 x attention here); with a constant
    gradient, SmoothGrad equals the gradient at any spread and VarGrad is 0."""
    net, params = linear
    obs = random_frames(2, seed=2)
    config = S.SaliencyConfig(target="sum", layer="attention_logits", samples=5, spread=0.3)
    result = S.compute_saliency(net, params, obs, config)
    want = (2.0 * _analytic_linear_gradient(params, obs, "sum")) ** 2
    np.testing.assert_allclose(result.maps["gradient"], want, rtol=1e-4, atol=1e-6 * want.max())
    np.testing.assert_allclose(result.maps["smoothgrad"], want, rtol=1e-3,
                               atol=1e-5 * want.max())
    assert np.abs(result.maps["vargrad"]).max() <= 1e-5 * want.max() ** 2 + 1e-12


def test_targets_match_numpy(real):
    net, params = real
    att = np.asarray(jax.random.dirichlet(jax.random.PRNGKey(0), jnp.ones(49), (5, HEADS)))
    att = np.moveaxis(att, 1, 2).reshape(5, 7, 7, HEADS)
    for target in S.ATTENTION_TARGETS:
        np.testing.assert_allclose(np.asarray(S.attention_target(jnp.asarray(att), target)),
                                   _np_attention_target(att, target), rtol=1e-6)
    # every target and layer of the real network's own outputs
    obs = random_frames(3, seed=4)
    out = jax.jit(lambda p, o: net.apply({"params": p}, o))(params, obs)
    logits = np.asarray(out.logits)
    for target in S.TARGETS:
        for layer in S.LAYERS:
            got = np.asarray(S.target_value(out, target, layer))
            if target == "value":
                want = np.asarray(out.value)
            elif target == "action":
                want = logits[np.arange(3), logits.argmax(axis=1)]
            else:
                tensor = out.attention if layer == "attention" else \
                    out.activations["attention_logits"]
                want = _np_attention_target(np.asarray(tensor), target)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=target)
    # ... and what compute_saliency reports for the un-noised frames
    for target, layer in (("max_sum", "attention"), ("sum", "attention_logits")):
        config = S.SaliencyConfig(methods=("gradient",), target=target, layer=layer)
        result = S.compute_saliency(net, params, obs, config)
        np.testing.assert_allclose(result.target, S.target_value(out, target, layer),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(result.greedy_actions, logits.argmax(axis=1))
        np.testing.assert_allclose(result.attention, out.attention, rtol=1e-5, atol=1e-7)


def test_smoothgrad_at_spread_zero_is_gradient_and_vargrad_nonnegative(real):
    net, params = real
    obs = random_frames(3, seed=5)
    zero = S.compute_saliency(net, params, obs, S.SaliencyConfig(samples=4, spread=0.0))
    np.testing.assert_allclose(zero.maps["smoothgrad"], zero.maps["gradient"], rtol=1e-5,
                               atol=1e-6 * zero.maps["gradient"].max())
    assert np.all(zero.maps["vargrad"] <= 1e-6 * zero.maps["gradient"].max() ** 2)
    assert np.all(zero.maps["vargrad"] >= 0)
    noisy = S.compute_saliency(net, params, obs, S.SaliencyConfig(samples=4, spread=0.15))
    assert np.all(noisy.maps["vargrad"] >= 0)
    assert noisy.maps["vargrad"].max() > 0
    assert not np.allclose(noisy.maps["smoothgrad"], noisy.maps["gradient"])


def test_noise_scale_matches_closed_form_of_quadratic_network():
    """value = (w.x)^2 with w.x = 0: gradient 2 s w with s ~ N(0, sigma^2 |w|^2), so
    SmoothGrad = 4 w^2 sigma^2 |w|^2 and VarGrad = 32 w^4 sigma^4 |w|^4; sigma = spread x
    (max - min) of the [0, 1] input."""
    net = QuadraticAgent()
    params = init_params(net, jax.random.PRNGKey(1))
    w = np.asarray(params["w"], np.float64)
    rng = np.random.default_rng(0)
    obs = np.zeros((1, 4, 84, 84), np.uint8)
    obs.flat[rng.choice(DIM, 200, replace=False)] = 255  # range 1.0 -> sigma = spread
    # make w . x exactly 0 for this frame by choosing w's support away from the lit pixels
    w[obs.reshape(-1) > 0] = 0.0
    params = {"w": jnp.asarray(w, jnp.float32)}
    spread, samples = 0.2, 600
    config = S.SaliencyConfig(target="value", samples=samples, spread=spread)
    result = S.compute_saliency(net, params, obs, config)
    assert result.sigma[0] == pytest.approx(spread)
    assert np.abs(result.maps["gradient"]).max() == 0.0
    norm2 = np.sum(w**2)
    smooth = result.maps["smoothgrad"].reshape(-1)
    var = result.maps["vargrad"].reshape(-1)
    big = np.abs(w) > np.quantile(np.abs(w), 0.99)
    ratio_smooth = smooth[big] / (4 * w[big] ** 2 * spread**2 * norm2)
    ratio_var = var[big] / (32 * w[big] ** 4 * spread**4 * norm2**2)
    # all pixels share one noise projection per sample: the ratios are one random number each
    assert np.allclose(ratio_smooth, ratio_smooth[0], rtol=1e-3)
    assert np.allclose(ratio_var, ratio_var[0], rtol=1e-3)
    assert ratio_smooth[0] == pytest.approx(1.0, rel=0.2)  # chi-square mean over 600: 6% std
    assert ratio_var[0] == pytest.approx(1.0, rel=0.6)


def test_noise_is_standard_normal_and_deterministic():
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    z = np.asarray(jax.vmap(lambda k: S.standard_normal(k, (4, 84, 84)))(keys))
    assert z.shape == (4, 4, 84, 84) and z.dtype == np.float32
    flat = z.reshape(-1)
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(flat) > 1.96) - 0.05) < 0.005  # two-sided 5% tail
    assert abs(np.mean(flat**4) - 3.0) < 0.1  # Gaussian kurtosis
    assert 4.0 < np.abs(flat).max() < 4.5
    np.testing.assert_array_equal(z[1], np.asarray(S.standard_normal(keys[1], (4, 84, 84))))
    assert np.abs(np.corrcoef(z[0].ravel(), z[1].ravel())[0, 1]) < 0.02


def test_sigma_scopes_and_config_errors(real):
    x = np.zeros((2, 4, 84, 84), np.float32)
    x[0, 0, 0, 0] = 0.5
    x[1, 0, 0, 0] = 1.0
    np.testing.assert_allclose(S.noise_sigma(x, 0.1, "batch"), [0.1, 0.1])
    np.testing.assert_allclose(S.noise_sigma(x, 0.1, "frame"), [0.05, 0.1])
    bad = [dict(methods=("gradient", "integrated")), dict(methods=()), dict(target="mean"),
           dict(layer="a1"), dict(samples=0), dict(spread=-1.0), dict(spread=float("nan")),
           dict(magnitude="cube"), dict(sigma_scope="global"), dict(memory_budget_mb=0)]
    for kwargs in bad:
        with pytest.raises(UserError):
            S.SaliencyConfig(**kwargs)
    nature = make_network("nature", num_actions=4)
    with pytest.raises(UserError, match="--target action or --target value"):
        S.check_network(nature, S.SaliencyConfig())
    S.check_network(nature, S.SaliencyConfig(target="value"))
    with pytest.raises(UserError, match=r"\[N, 4, 84, 84\]"):
        S.to_unit(np.zeros((2, 84, 84, 4), np.uint8))


def test_nature_network_value_and_action_saliency():
    """The network without attention: the action and value maps are the squared input
    gradients of the greedy action's logit and of the value, as jax.grad of the network's own
    outputs gives them; SmoothGrad at spread 0 is the gradient."""
    net = make_network("nature", num_actions=4)
    params = init_params(net, jax.random.PRNGKey(0))
    obs = random_frames(2, seed=7)
    x = jnp.asarray(S.to_unit(obs))
    out = net.apply({"params": params}, obs)
    greedy = np.asarray(out.logits).argmax(axis=1)
    wants = {
        "action": jax.vmap(jax.grad(lambda xi, a: net.apply(
            {"params": params}, xi[None] * 255.0).logits[0, a]))(x, jnp.asarray(greedy)),
        "value": jax.vmap(jax.grad(lambda xi: net.apply(
            {"params": params}, xi[None] * 255.0).value[0]))(x),
    }
    for target, grad in wants.items():
        want = np.asarray(grad) ** 2
        assert want.max() > 0, target
        result = S.compute_saliency(net, params, obs, S.SaliencyConfig(target=target, samples=2,
                                                                         spread=0.0))
        assert result.attention is None
        np.testing.assert_array_equal(result.greedy_actions, greedy)
        for method in ("gradient", "smoothgrad"):
            np.testing.assert_allclose(result.maps[method], want, rtol=1e-4,
                                       atol=1e-5 * want.max(), err_msg=f"{target} {method}")


# --------------------------------------------------------------------------------------------
# a trained agent


def test_saliency_peak_lies_on_the_attended_quadrant_object(quadrant_run):
    """On Quadrant-v0 the agent trained with lambda > 0 attends to a cell whose receptive field
    holds the bright 8 px square, and the saliency maps (`max` target, max over the stacked
    frames, 16 samples, 48 random positions) show it. Training differs from CPU to CPU like
    from seed to seed, so the bounds sit well inside what six seeds of the fixture's training
    gave on the 2-core machine (min .. max over seeds 0-5, Eigen convolutions, unrolled loops;
    chance in brackets):
    - the attended cell sees the square: 100% in every seed;
    - peak inside that cell's receptive field: gradient 92-100%, SmoothGrad 58-94% (~18%);
    - peak within 2 px of the square: gradient 6-65%, SmoothGrad 29-52% (~2%);
    - median enrichment on the square's pixels: gradient 2.6-39x, SmoothGrad 3.9-7.4x (1x).
    The plain gradient's peak is often on the dark pixels next to the square, to which the
    attention is most sensitive (seed 0, the fixture's: 3 of 48 within 2 px), so only
    SmoothGrad, which averages that out, is held to the 2 px bound. That is a property of the
    trained agent, not of the saliency code."""
    from attnjax.agents.load import load_agent
    from attnjax.inspection.render import cell_box_obs
    from attnjax.model.envs import QuadrantEnv

    agent = load_agent(quadrant_run)
    size = QuadrantEnv.object_size
    positions = np.random.default_rng(1).integers(0, 84 - size + 1, (48, 2))
    obs = np.zeros((48, 4, 84, 84), np.uint8)  # Quadrant-v0's screens: the square, 4 times
    for frame, (y, x) in zip(obs, positions, strict=True):
        frame[:, y : y + size, x : x + size] = 255
    config = S.SaliencyConfig(methods=("gradient", "smoothgrad"), target="max", samples=16)
    result = S.agent_saliency(agent, obs, config, seed=0)
    for method, min_in_field, min_near_square, min_enrichment in (
            ("gradient", 0.75, None, 1.5), ("smoothgrad", 0.45, 0.12, 2.0)):
        maps = result.aggregate(method)
        sees, in_field, near_square, enrichment = [], [], [], []
        for i, (y, x) in enumerate(positions):
            ci, cj, _ = np.unravel_index(np.argmax(result.attention[i]), (7, 7, HEADS))
            top, left, bottom, right = cell_box_obs(ci, cj)
            sees.append(top < y + size and y < bottom and left < x + size and x < right)
            py, px = np.unravel_index(np.argmax(maps[i]), maps[i].shape)
            in_field.append(top <= py < bottom and left <= px < right)
            near_square.append(y - 2 <= py < y + size + 2 and x - 2 <= px < x + size + 2)
            on = np.zeros((84, 84), bool)
            on[y : y + size, x : x + size] = True
            enrichment.append(maps[i][on].mean() / maps[i][~on].mean())
        assert np.mean(sees) >= 0.9, np.mean(sees)
        assert np.mean(in_field) >= min_in_field, (method, np.mean(in_field))
        if min_near_square is not None:
            assert np.mean(near_square) >= min_near_square, (method, np.mean(near_square))
        assert np.median(enrichment) > min_enrichment, (method, np.median(enrichment))
