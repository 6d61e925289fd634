"""The play engine (attnjax/agents/play.py) against the per-step loop render.play,
ground_truth.collect_frames and evaluate wrote before it: the same seeds play the same actions,
observations, RAM and scores."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnjax.agents.evaluate import play_games
from attnjax.agents.load import Agent
from attnjax.agents.play import choose_actions, slot_quotas
from attnjax.inspection.render import play
from attnjax.metrics.ground_truth import collect_frames
from attnjax.model.envs import env_seeds, make_env
from attnjax.model.networks import init_params, make_network
from attnjax.training.config import TrainConfig


def _agent(env_id: str, num_actions: int, seed: int) -> Agent:
    net = make_network("attention", num_actions=num_actions)
    return Agent(config=TrainConfig(env_id=env_id, seed=seed, wandb_mode="disabled"),
                 network=net, params=init_params(net, jax.random.PRNGKey(seed)), step=0,
                 iteration=0, num_actions=num_actions, path=Path(f"/nowhere/{seed}"))


def reference_play(agents, env, keys, steps, policy, ram=False):
    """The old loop: each agent's jitted apply on its rows, its key split every step, a
    categorical sample (or argmax) of its logits, then one jitted env step. Returns per step
    (obs [M, ...], actions [M], game_reward [M], game_over [M], RAM of the new state)."""
    step = jax.jit(env.step_with_ram if ram else env.step)
    keys = list(keys)
    state, obs = env.reset()
    rows = obs.shape[0] // len(agents)
    out = []
    try:
        for _ in range(steps):
            actions = []
            for r, agent in enumerate(agents):
                logits = agent.apply(obs[r * rows:(r + 1) * rows]).logits
                keys[r], sub = jax.random.split(keys[r])
                actions.append(jnp.argmax(logits, axis=-1) if policy == "greedy"
                               else jax.random.categorical(sub, logits))
            action = jnp.concatenate(actions).astype(jnp.int32)
            if ram:
                state, result, memory = step(state, action)
            else:
                (state, result), memory = step(state, action), None
            out.append((np.asarray(obs), np.asarray(action), np.asarray(result.game_reward),
                        np.asarray(result.game_over), None if memory is None
                        else np.asarray(memory)))
            obs = result.obs
    finally:
        env.close()
    return out


def test_choose_actions_greedy_and_sampled():
    logits = jnp.array([[0.0, 3.0, 1.0], [2.0, 0.0, -1.0]])
    key = jax.random.PRNGKey(0)
    assert choose_actions(logits, key, "greedy").tolist() == [1, 0]
    sampled = choose_actions(logits, key, "sample")
    assert sampled.dtype == jnp.int32
    assert sampled.tolist() == jax.random.categorical(key, logits).tolist()


@pytest.mark.parametrize("policy", ["sample", "greedy"])
def test_render_play_and_collect_frames_play_as_the_old_loop_atari(policy):
    agents = [_agent("Breakout-v5", 4, 0), _agent("Breakout-v5", 4, 1)]
    steps = 40
    ref = reference_play(agents, make_env("Breakout-v5", env_seeds(5, 1) * 2), jax.random.split(
        jax.random.PRNGKey(5), 2), steps, policy)
    frames = list(play(agents, steps, seed=5, policy=policy))
    assert [f.actions.tolist() for f in frames] == [r[1].tolist() for r in ref]
    assert [f.rewards.tolist() for f in frames] == [r[2].tolist() for r in ref]
    assert all(np.array_equal(f.obs, r[0]) for f, r in zip(frames, ref, strict=True))
    if policy == "sample":
        assert len({a for f in frames for a in f.actions.tolist()}) > 1

    ref = reference_play(agents[:1], make_env("Breakout-v5", env_seeds(3, 1)),
                         [jax.random.PRNGKey(3)], 13, policy, ram=True)
    got = collect_frames(agents[0], 12, seed=3, policy=policy, stride=1, calibration_states=0)
    assert got.t.tolist() == list(range(1, 13))  # from step 1: the first state with its RAM
    assert np.array_equal(got.obs, np.stack([r[0][0] for r in ref[1:]]))
    assert np.array_equal(got.ram, np.stack([r[4][0] for r in ref[:-1]]))


def test_play_games_scores_as_the_old_loop():
    """Two runs x two env slots with quotas (2, 1) on Quadrant-v0 (32-step games): every
    counted score equals the game the old loop played in that slot."""
    agents = [_agent("Quadrant-v0", 4, 0), _agent("Quadrant-v0", 4, 1)]
    games, envs, seed = 3, 2, 7
    results = play_games(agents, games, seed=seed, policy="sample", envs=envs)
    quota = slot_quotas(games, envs)
    ref = reference_play(agents, make_env("Quadrant-v0", env_seeds(seed, envs) * 2),
                         [jax.random.PRNGKey(seed)] * 2, 32 * int(quota.max()), "sample")
    rewards = np.stack([r[2] for r in ref])  # [T, M]
    for r, result in enumerate(results):
        expected = []
        for slot in range(envs):
            per_game = rewards[:, r * envs + slot].reshape(-1, 32).sum(axis=1)
            expected += per_game[: quota[slot]].tolist()
        assert result.scores.tolist() == expected
        assert result.lengths.tolist() == [32] * games
