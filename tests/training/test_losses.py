"""Attention entropy, GAE and the PPO2 loss against plain references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnjax.model.networks import init_params, make_network
from attnjax.training.losses import (
    LossCoefficients,
    Minibatch,
    attention_entropy,
    gae,
    ppo_loss,
    valid_transitions,
)

LN49 = math.log(49)


def test_attention_entropy_bounds():
    uniform = jnp.full((3, 7, 7, 2), 1 / 49)
    assert float(attention_entropy(uniform)) == pytest.approx(2 * LN49, rel=1e-5)
    one_hot = jnp.zeros((3, 7, 7, 2)).at[:, 2, 3, :].set(1.0)
    assert float(attention_entropy(one_hot)) == pytest.approx(0.0, abs=1e-6)
    logits = jax.random.normal(jax.random.PRNGKey(0), (16, 49, 1)) * 3
    random = jax.nn.softmax(logits, axis=1).reshape(16, 7, 7, 1)
    per_head = float(attention_entropy(random))
    assert 0.0 < per_head < LN49


def test_attention_entropy_gradient_finite_at_one_hot():
    one_hot = jnp.zeros((2, 7, 7, 2)).at[:, 0, 0, :].set(1.0)
    grad = jax.grad(attention_entropy)(one_hot)
    assert bool(jnp.all(jnp.isfinite(grad)))
    # through a softmax whose probabilities underflow to exactly 0
    logits = jnp.zeros((2, 49, 2)).at[:, 0, :].set(1e4)
    fn = lambda z: attention_entropy(jax.nn.softmax(z, axis=1).reshape(2, 7, 7, 2))
    assert float(fn(logits)) == pytest.approx(0.0, abs=1e-6)
    assert bool(jnp.all(jnp.isfinite(jax.grad(fn)(logits))))


def gae_reference(rewards, values, dones, last_value, last_done, gamma, lam):
    """CleanRL's loop: dones[t] marks that obs t began a new episode."""
    T = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last = np.zeros_like(last_value)
    for t in reversed(range(T)):
        if t == T - 1:
            nonterminal, next_value = 1.0 - last_done, last_value
        else:
            nonterminal, next_value = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


def test_gae_matches_numpy_reference():
    rng = np.random.default_rng(0)
    T, N = 17, 5
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    dones = (rng.random((T, N)) < 0.2).astype(np.float32)
    dones[5, 0] = 1.0  # an episode end in the middle, for sure
    last_value = rng.normal(size=N).astype(np.float32)
    last_done = np.array([0, 1, 0, 1, 0], np.float32)
    adv, ret = gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(dones),
                   jnp.asarray(last_value), jnp.asarray(last_done), 0.99, 0.95)
    ref_adv, ref_ret = gae_reference(rewards, values, dones, last_value, last_done, 0.99, 0.95)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)


def _batch(**kw):
    base = dict(
        obs=jnp.zeros((2, 4, 84, 84), jnp.uint8),
        actions=jnp.array([0, 1]),
        log_probs=jnp.log(jnp.array([0.5, 0.5])),
        values=jnp.array([1.0, 0.0]),
        advantages=jnp.array([1.0, -1.0]),
        returns=jnp.array([2.0, -1.0]),
        mask=jnp.ones(2),
    )
    base.update(kw)
    return Minibatch(**base)


def test_ppo_loss_hand_computed():
    """Two samples, two actions. New policy p(a=0)=0.8 for both rows.
    Row 0: a=0, ratio 0.8/0.5=1.6 -> clipped at 1.2, A=+1: max(-1.6, -1.2) = -1.2.
    Row 1: a=1, ratio 0.2/0.5=0.4, A=-1: max(0.4, 0.8) = 0.8.  policy loss = (-1.2+0.8)/2 = -0.2.
    Values: new (1.5, 0.5), old (1, 0), returns (2, -1): clipped (1.2, 0.2);
    max((0.5)^2,(0.8)^2)=0.64, max((1.5)^2,(1.2)^2)=2.25 -> 0.5*mean = 0.7225.
    Entropy of (0.8, 0.2) = 0.500402. loss = -0.2 - 0.01*0.500402 + 0.5*0.7225 = 0.15612."""
    logits = jnp.log(jnp.array([[0.8, 0.2], [0.8, 0.2]]))
    values = jnp.array([1.5, 0.5])
    coefs = LossCoefficients(norm_adv=False)
    loss, m = ppo_loss(logits, values, None, _batch(), coefs)
    assert float(m["policy_loss"]) == pytest.approx(-0.2, abs=1e-6)
    assert float(m["value_loss"]) == pytest.approx(0.7225, abs=1e-6)
    assert float(m["entropy"]) == pytest.approx(0.500402, abs=1e-5)
    assert float(loss) == pytest.approx(-0.2 - 0.01 * 0.500402 + 0.5 * 0.7225, abs=1e-5)
    assert float(m["clipfrac"]) == pytest.approx(1.0)


def test_lambda_zero_is_plain_ppo_and_lambda_adds_entropy():
    logits = jax.random.normal(jax.random.PRNGKey(1), (2, 2))
    values = jnp.array([0.3, -0.2])
    attention = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(2), (2, 49, 2)), axis=1)
    attention = attention.reshape(2, 7, 7, 2)
    plain, _ = ppo_loss(logits, values, None, _batch(), LossCoefficients())
    with_zero, _ = ppo_loss(logits, values, attention, _batch(), LossCoefficients(attn_coef=0.0))
    assert float(with_zero) == float(plain)
    lam = 0.003
    with_lam, m = ppo_loss(logits, values, attention, _batch(), LossCoefficients(attn_coef=lam))
    assert float(with_lam) == pytest.approx(float(plain) + lam * float(m["attention_entropy"]),
                                            rel=1e-6)


def test_lambda_gradient_reaches_attention_and_conv_params():
    net = make_network("attention", num_actions=4)
    params = init_params(net, jax.random.PRNGKey(0))
    obs = jax.random.randint(jax.random.PRNGKey(3), (4, 4, 84, 84), 0, 255).astype(jnp.uint8)

    def entropy_term(p):
        return attention_entropy(net.apply({"params": p}, obs).attention)

    grads = jax.grad(entropy_term)(params)
    for path in (("attn_logits", "kernel"), ("attn_hidden", "kernel"),
                 ("encoder", "conv1", "kernel"), ("encoder", "conv2", "kernel"),
                 ("encoder", "conv3", "kernel")):
        g = grads
        for key in path:
            g = g[key]
        assert float(jnp.abs(g).max()) > 0, path
    # the policy head does not influence attention
    assert float(jnp.abs(grads["head"]["policy"]["kernel"]).max()) == 0


def test_valid_transitions_masks_the_reset_step_after_each_done():
    # dones[t]: obs[t] ended the previous episode, so step t is envpool's reset step
    dones = jnp.array([[0, 0], [1, 0], [0, 0], [0, 1]], bool)  # [T=4, N=2]
    np.testing.assert_array_equal(valid_transitions(dones, reset_step_after_done=True),
                                  [[1, 1], [0, 1], [1, 1], [1, 0]])
    np.testing.assert_array_equal(valid_transitions(dones, reset_step_after_done=False),
                                  np.ones((4, 2)))


def test_masked_transitions_change_nothing_in_the_loss_or_its_gradient():
    """A batch with masked rows gives the loss, metrics and gradient of the batch without them,
    advantage normalization included, however wild the masked rows are."""
    rng = np.random.default_rng(0)
    b, a = 12, 4
    logits = jnp.asarray(rng.normal(size=(b, a)), jnp.float32)
    values = jnp.asarray(rng.normal(size=b), jnp.float32)
    attention = jax.nn.softmax(jnp.asarray(rng.normal(size=(b, 49, 2)), jnp.float32), axis=1)
    attention = attention.reshape(b, 7, 7, 2)
    mask = np.ones(b, np.float32)
    mask[[2, 7, 8]] = 0.0
    advantages = rng.normal(size=b).astype(np.float32)
    advantages[mask == 0] = 1e3  # would dominate the normalization if counted
    batch = Minibatch(
        obs=jnp.zeros((b, 4, 84, 84), jnp.uint8),
        actions=jnp.asarray(rng.integers(0, a, b), jnp.int32),
        log_probs=jnp.asarray(rng.normal(size=b) - 1.5, jnp.float32),
        values=jnp.asarray(rng.normal(size=b), jnp.float32),
        advantages=jnp.asarray(advantages),
        returns=jnp.asarray(rng.normal(size=b) * 50, jnp.float32),
        mask=jnp.asarray(mask),
    )
    keep = np.flatnonzero(mask)
    kept = jax.tree_util.tree_map(lambda x: x[keep], batch)
    coefs = LossCoefficients(attn_coef=0.005)

    def loss(lg, v, att, mb):
        return ppo_loss(lg, v, att, mb, coefs)

    full, full_m = loss(logits, values, attention, batch)
    ref, ref_m = loss(logits[keep], values[keep], attention[keep], kept)
    assert float(full) == pytest.approx(float(ref), rel=1e-5)
    for name in ref_m:
        assert float(full_m[name]) == pytest.approx(float(ref_m[name]), rel=1e-5, abs=1e-7), name
    grads = jax.grad(lambda *x: loss(*x, batch)[0], argnums=(0, 1, 2))(logits, values, attention)
    for g in grads:
        np.testing.assert_array_equal(np.asarray(g)[mask == 0], 0.0)
    ref_grads = jax.grad(lambda *x: loss(*x, kept)[0], argnums=(0, 1, 2))(
        logits[keep], values[keep], attention[keep])
    for g, r in zip(grads, ref_grads, strict=True):
        # the kept rows' gradients match (the mean is over the same number of rows)
        np.testing.assert_allclose(np.asarray(g)[keep], np.asarray(r), rtol=1e-4, atol=1e-7)


def _old_frame_attention_entropy(attention, eps=1e-10):
    """The loss's attention entropy as it was written inside losses.py before it moved to
    networks.head_entropies: the same ops in the same order."""
    p = attention.reshape(attention.shape[0], -1, attention.shape[-1])
    return jnp.sum(-jnp.sum(p * jnp.log(p + eps), axis=1), axis=-1)


def test_attention_entropy_term_bit_for_bit_as_before(monkeypatch):
    """Loss value and gradient through networks.head_entropies equal, to the bit, the formula
    the training runs started with (sharp heads included, where p + eps matters)."""
    from attnjax.training import losses

    logits = jax.random.normal(jax.random.PRNGKey(4), (64, 49, 2)) * jnp.array([1.0, 30.0])
    attention = jax.nn.softmax(logits, axis=1).reshape(64, 7, 7, 2)
    batch = _batch(obs=jnp.zeros((64, 4, 84, 84), jnp.uint8), actions=jnp.zeros(64, jnp.int32),
                   log_probs=jnp.full(64, math.log(0.5)), values=jnp.zeros(64),
                   advantages=jnp.linspace(-1, 1, 64), returns=jnp.linspace(-1, 1, 64),
                   mask=(jnp.arange(64) % 5 != 0).astype(jnp.float32))
    policy = jax.random.normal(jax.random.PRNGKey(5), (64, 2))
    values = jax.random.normal(jax.random.PRNGKey(6), (64,))
    coefs = LossCoefficients(attn_coef=0.005)

    def loss_and_grad():
        fn = jax.jit(lambda a: ppo_loss(policy, values, a, batch, coefs)[0])
        return np.asarray(fn(attention)), np.asarray(jax.grad(fn)(attention))

    new_frames = np.asarray(losses.frame_attention_entropy(attention))  # [64], eager
    new_loss, new_grad = loss_and_grad()
    monkeypatch.setattr(losses, "frame_attention_entropy", _old_frame_attention_entropy)
    old_loss, old_grad = loss_and_grad()
    assert new_frames.tobytes() == np.asarray(_old_frame_attention_entropy(attention)).tobytes()
    assert new_loss.tobytes() == old_loss.tobytes()
    assert new_grad.tobytes() == old_grad.tobytes()
