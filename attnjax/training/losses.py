"""PPO2 (as stable-baselines ran it for the paper) plus lambda * attention entropy.

Pure functions of arrays; `ppo.py` wraps them in the jitted iteration.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from attnjax.model.networks import ENTROPY_EPS, head_entropies


def frame_attention_entropy(attention: jax.Array, eps: float = ENTROPY_EPS) -> jax.Array:
    """[B, 7, 7, K] -> [B]: per frame, the sum over heads of each head's entropy over the cells
    (`networks.head_entropies`; each head sums to 1)."""
    chex.assert_rank(attention, 4)
    return jnp.sum(head_entropies(attention, eps), axis=-1)


def attention_entropy(
    attention: jax.Array, eps: float = ENTROPY_EPS, mask: jax.Array | None = None
) -> jax.Array:
    """`frame_attention_entropy` averaged over the batch (over the frames where mask [B] is 1,
    when given): the term lambda multiplies."""
    per_frame = frame_attention_entropy(attention, eps)  # [B]
    if mask is None:
        return jnp.mean(per_frame)
    return masked_mean(per_frame, mask)


def categorical_log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a|s): logits [B, A], actions [B] int -> [B]."""
    log_probs = jax.nn.log_softmax(logits)
    return jnp.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Entropy of each row of logits [B, A] -> [B]."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


class Minibatch(NamedTuple):
    """What one PPO gradient step needs from the rollout (leading axis: samples)."""

    obs: jax.Array  # [B, 4, 84, 84] uint8
    actions: jax.Array  # [B] int32
    log_probs: jax.Array  # [B] behaviour log pi(a|s)
    values: jax.Array  # [B] value estimates at rollout time
    advantages: jax.Array  # [B] GAE
    returns: jax.Array  # [B] advantages + values
    # [B] float32: 1 where the agent's action acted, 0 for envpool's reset step after a done
    # (its action is ignored, so it must not train the policy; see `valid_transitions`)
    mask: jax.Array


class LossCoefficients(NamedTuple):
    clip_coef: float = 0.2
    vf_clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    attn_coef: float = 0.0
    norm_adv: bool = True


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of x [B] over the entries where mask [B] is 1 (0 when none is)."""
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def normalize_advantages(advantages: jax.Array, mask: jax.Array) -> jax.Array:
    """Zero mean, unit (population) std over the valid entries; masked ones come out 0."""
    mean = masked_mean(advantages, mask)
    std = jnp.sqrt(masked_mean(jnp.square(advantages - mean), mask))
    return mask * (advantages - mean) / (std + 1e-8)


def valid_transitions(dones: jax.Array, reset_step_after_done: bool) -> jax.Array:
    """[T, N] float mask of the transitions whose action the env carried out.

    dones[t] says obs[t] ended the previous episode. envpool does not reset inside the step that
    ends an episode: it returns the terminal frame with done, and the *next* step performs the
    reset, ignoring its action and paying 0. With episodic life that adds one such transition
    per life lost (2-3 % of early Breakout samples); stable-baselines' VecEnv, which the paper
    used, reset within the step and had none. Envs that reset within the step mask nothing.
    """
    if not reset_step_after_done:
        return jnp.ones(dones.shape, jnp.float32)
    return 1.0 - dones.astype(jnp.float32)


def ppo_loss(
    logits: jax.Array,
    values: jax.Array,
    attention: jax.Array | None,
    batch: Minibatch,
    coefs: LossCoefficients,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO2 loss from network outputs: clipped surrogate + clipped value loss - entropy bonus,
    plus attn_coef * attention entropy. With attn_coef = 0 it is exactly the plain PPO2 loss.
    Every term (and the advantage normalization) averages over the valid transitions only
    (`batch.mask`); with an all-ones mask this is the plain mean.

    logits [B, A], values [B], attention [B, 7, 7, K] or None (nature network).
    """
    advantages, weights = minibatch_advantages_and_weights(batch.advantages, batch.mask,
                                                           coefs.norm_adv)
    return weighted_ppo_loss(logits, values, attention, batch, advantages, weights, coefs)


def minibatch_advantages_and_weights(
    advantages: jax.Array, mask: jax.Array, norm_adv: bool
) -> tuple[jax.Array, jax.Array]:
    """(advantages as the loss uses them, row weights) of one whole minibatch, both [B]: the
    weights are mask / (valid rows), so a weighted sum is the mean over valid transitions."""
    mask = mask.astype(jnp.float32)
    if norm_adv:
        advantages = normalize_advantages(advantages, mask)
    return advantages, mask / jnp.maximum(jnp.sum(mask), 1.0)


def weighted_ppo_loss(
    logits: jax.Array,
    values: jax.Array,
    attention: jax.Array | None,
    batch: Minibatch,
    advantages: jax.Array,
    weights: jax.Array,
    coefs: LossCoefficients,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The PPO2 loss and its metrics as weighted sums over rows (advantages [B] already
    normalized, weights [B] from `minibatch_advantages_and_weights`). Sums split: the loss of a
    minibatch is the sum of the losses of its parts, so its rows may be spread over devices."""
    chex.assert_equal_shape([values, batch.values, advantages, batch.returns, weights])
    total = lambda x: jnp.sum(weights * x)  # noqa: E731
    new_log_probs = categorical_log_prob(logits, batch.actions)
    log_ratio = new_log_probs - batch.log_probs
    ratio = jnp.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses_clipped = -advantages * jnp.clip(ratio, 1.0 - coefs.clip_coef, 1.0 + coefs.clip_coef)
    policy_loss = total(jnp.maximum(pg_losses, pg_losses_clipped))

    values_clipped = batch.values + jnp.clip(
        values - batch.values, -coefs.vf_clip_coef, coefs.vf_clip_coef
    )
    value_loss = 0.5 * total(
        jnp.maximum(jnp.square(values - batch.returns), jnp.square(values_clipped - batch.returns))
    )
    entropy = total(categorical_entropy(logits))
    loss = policy_loss - coefs.ent_coef * entropy + coefs.vf_coef * value_loss
    att_entropy = jnp.zeros(()) if attention is None else total(frame_attention_entropy(attention))
    loss = loss + coefs.attn_coef * att_entropy
    metrics = {
        "loss": loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "attention_entropy": att_entropy,
        # stable-baselines' PPO2 estimators
        "approx_kl": 0.5 * total(jnp.square(log_ratio)),
        "clipfrac": total((jnp.abs(ratio - 1.0) > coefs.clip_coef).astype(jnp.float32)),
    }
    return loss, metrics


def gae(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    last_value: jax.Array,
    last_done: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over a rollout.

    rewards, values, dones: [T, N], where dones[t] says the observation at step t began a new
    episode (so values[t-1] must not bootstrap from it); last_value / last_done: [N] for the
    observation after the rollout. Returns (advantages, returns), both [T, N].
    """
    chex.assert_equal_shape([rewards, values, dones])
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    next_nonterminal = 1.0 - jnp.concatenate([dones[1:], last_done[None]], axis=0).astype(
        jnp.float32
    )
    deltas = rewards + gamma * next_values * next_nonterminal - values

    def backward(carry: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, ...]:
        delta, nonterminal = inputs
        carry = delta + gamma * gae_lambda * nonterminal * carry
        return carry, carry

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(last_value), (deltas, next_nonterminal), reverse=True
    )
    return advantages, advantages + values
