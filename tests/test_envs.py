"""Environments: full-game scores over lives, the Quadrant test env, episode statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnjax.envs import (
    STATS_WINDOW,
    AtariEnv,
    EpisodeStats,
    QuadrantEnv,
    StepResult,
    env_seeds,
    validate_env_id,
)
from attnjax.errors import UserError


def test_full_game_score_is_unclipped_sum_across_life_losses():
    env = AtariEnv("Breakout-v5", env_seeds(3, 4))
    state, obs = env.reset()
    assert obs.shape == (4, 4, 84, 84) and obs.dtype == jnp.uint8

    @jax.jit
    def step(state, stats, actions):
        state, out = env.step(state, actions)
        return state, stats.update(out), out

    stats = EpisodeStats.create(4)
    rng = np.random.default_rng(0)
    running = np.zeros(4)
    lives_lost = np.zeros(4, int)
    games = []  # (return, life losses) of finished games, as counted here
    for _ in range(1500):
        actions = jnp.asarray(rng.integers(0, env.num_actions, 4), jnp.int32)
        state, stats, out = step(state, stats, actions)
        running += np.asarray(out.game_reward)
        done, over = np.asarray(out.done), np.asarray(out.game_over)
        lives_lost += done & ~over
        for i in np.flatnonzero(over):
            games.append((running[i], lives_lost[i]))
            running[i], lives_lost[i] = 0.0, 0
        if len(games) >= 4:
            break
    env.close()
    assert len(games) >= 2, "random Breakout should finish a few games in 1500 steps"
    assert all(lost >= 2 for _, lost in games), "games span several lives"
    n = int(stats.num_finished)
    assert n == len(games)
    np.testing.assert_allclose(np.asarray(stats.finished_returns[:n]), [g for g, _ in games])
    mean_return, _ = stats.summary()
    assert float(mean_return) == pytest.approx(np.mean([g for g, _ in games]), rel=1e-6)


def test_episode_stats_window_and_nan_before_first_game():
    stats = EpisodeStats.create(3)
    assert np.isnan(float(stats.summary()[0]))
    ones = jnp.ones(3)
    for t in range(STATS_WINDOW + 10):
        over = jnp.array([t % 2 == 0, True, False])
        stats = stats.update(StepResult(obs=None, reward=ones, done=over, game_reward=ones * t,
                                        game_over=over))
    assert int(stats.num_finished) == (STATS_WINDOW + 10) // 2 + (STATS_WINDOW + 10)
    # the window holds exactly the last STATS_WINDOW finished games
    assert np.isfinite(float(stats.summary()[0]))
    assert float(stats.running_return[2]) == sum(range(STATS_WINDOW + 10))


def test_quadrant_env_rewards_the_object_quadrant():
    env = QuadrantEnv(env_seeds(0, 64), episode_length=4)
    state, obs = env.reset()
    assert obs.shape == (64, 4, 84, 84) and obs.dtype == jnp.uint8
    # the bright square is where the state says
    ys, xs = np.nonzero(np.asarray(obs[0, -1]))
    assert (ys.min(), xs.min()) == tuple(np.asarray(state.position[0]))
    assert ys.max() - ys.min() + 1 == env.object_size
    right = env.quadrant(state.position)
    _, out = env.step(state, right)
    assert bool(jnp.all(out.reward == 1.0))
    _, out = env.step(state, (right + 1) % 4)
    assert bool(jnp.all(out.reward == 0.0))
    total = 0.0
    for _ in range(4):  # a whole episode of right answers
        state, out = env.step(state, env.quadrant(state.position))
        total += float(out.reward.mean())
    assert total == 4.0
    assert bool(jnp.all(out.game_over)) and bool(jnp.all(state.t == 0))


def test_unknown_env_id_suggests_close_names():
    validate_env_id("Breakout-v5")
    validate_env_id("Quadrant-v0")
    with pytest.raises(UserError, match="Breakout-v5"):
        validate_env_id("Breakout-v4")


def test_envpool_ignores_the_action_of_the_step_after_a_lost_life():
    """The premise of `losses.valid_transitions`: two Breakout envs with the same seed play the
    same scripted actions until a life is lost; at the next step they get different actions, and
    envpool, which resets on that step, ignores them (same frame, reward 0, not done) — while
    the same two actions one step later do move the paddle apart."""
    assert AtariEnv.reset_step_after_done and not QuadrantEnv.reset_step_after_done
    env = AtariEnv("Breakout-v5", [7, 7])
    state, obs = env.reset()
    step = jax.jit(env.step)
    noop, right, left = 0, 2, 3  # Breakout's minimal action set: NOOP, FIRE, RIGHT, LEFT
    both = lambda a, b: jnp.array([a, b], jnp.int32)  # noqa: E731
    for _ in range(500):
        state, out = step(state, both(noop, noop))
        if bool(out.done[0]):
            break
    assert bool(out.done[0]) and bool(out.done[1]) and not bool(out.game_over[0])
    state, reset = step(state, both(right, left))  # the reset step: actions ignored
    np.testing.assert_array_equal(np.asarray(reset.obs[0]), np.asarray(reset.obs[1]))
    assert np.asarray(reset.reward).tolist() == [0.0, 0.0]
    assert not np.asarray(reset.done).any()
    moved = reset
    for _ in range(3):  # the same actions now act: the paddles separate
        state, moved = step(state, both(right, left))
    env.close()
    assert not np.array_equal(np.asarray(moved.obs[0]), np.asarray(moved.obs[1]))
