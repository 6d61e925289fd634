"""Environments: full-game scores over lives, the Quadrant test env, episode statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnjax.errors import UserError
from attnjax.model.envs import (
    STATS_WINDOW,
    AtariEnv,
    EpisodeStats,
    QuadrantEnv,
    StepResult,
    env_seeds,
    game_name,
    make_env,
    planned_num_actions,
    validate_env_id,
)

FIRE, RIGHT, LEFT = 1, 2, 3  # Breakout's minimal action set (0: NOOP)


def _follow_the_ball(frame: np.ndarray, previous: np.ndarray) -> int:
    """Move the paddle (row 76 of the 84x84 frame) under the ball (rows 38-74, below the
    bricks), aiming where a falling ball is heading: breaks through to the upper bricks."""
    ys, xs = np.nonzero(frame[38:75, 4:80] > 30)
    paddle = np.nonzero(frame[76, 4:80] > 100)[0]
    if len(xs) == 0 or len(paddle) == 0:
        return FIRE
    x = xs.mean()
    prev_ys, prev_xs = np.nonzero(previous[38:75, 4:80] > 30)
    if len(prev_xs) and ys.mean() > prev_ys.mean():
        x += (x - prev_xs.mean()) * min((37 - ys.mean()) / (ys.mean() - prev_ys.mean()), 3)
    return RIGHT if x > paddle.mean() + 1 else LEFT if x < paddle.mean() - 1 else 0


def test_full_game_score_is_unclipped_sum_across_life_losses():
    """Breakout's upper bricks score 4 and 7 where the clipped training reward is 1: each env
    follows the ball until it breaks such a brick, then loses its lives (paddle parked left).
    Every finished game spans all 5 lives, one holds a brick worth more than 1, and the
    statistics' returns are the unclipped sums (for that game above the clipped one)."""
    env = AtariEnv("Breakout-v5", env_seeds(3, 2))
    state, obs = env.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == jnp.uint8

    @jax.jit
    def step(state, stats, actions):
        state, out = env.step(state, actions)
        return state, stats.update(out), out

    stats = EpisodeStats.create(2)
    previous = current = np.asarray(obs)
    unclipped, clipped, lives_lost, high = np.zeros(2), np.zeros(2), np.zeros(2, int), [0, 0]
    games = []  # (unclipped, clipped, life losses, bricks worth > 1) of finished games
    for t in range(3000):
        actions = [_follow_the_ball(current[i, -1], previous[i, -1]) if not high[i]
                   else (FIRE if t % 2 else LEFT) for i in range(2)]
        state, stats, out = step(state, stats, jnp.asarray(actions, jnp.int32))
        previous, current = current, np.asarray(out.obs)
        game_reward, reward = np.asarray(out.game_reward), np.asarray(out.reward)
        assert set(game_reward.tolist()) <= {0.0, 1.0, 4.0, 7.0}, game_reward  # brick values
        np.testing.assert_array_equal(reward, np.sign(game_reward))  # training reward: clipped
        unclipped += game_reward
        clipped += reward
        high = [h + int(g > 1) for h, g in zip(high, game_reward, strict=True)]
        lives_lost += np.asarray(out.done) & ~np.asarray(out.game_over)
        for i in np.flatnonzero(np.asarray(out.game_over)):
            games.append((unclipped[i], clipped[i], lives_lost[i], high[i]))
            unclipped[i], clipped[i], lives_lost[i], high[i] = 0.0, 0.0, 0, 0
        if len(games) >= 2:
            break
    env.close()
    assert len(games) >= 2, "the scripted games should end within 3000 steps"
    assert all(lost == 4 for _, _, lost, _ in games), games  # 5 lives each
    # the follower loses some games before an upper brick; seed 3's env 0 breaks one
    assert any(h >= 1 and score > score_clipped for score, score_clipped, _, h in games), games
    n = int(stats.num_finished)
    assert n == len(games)
    np.testing.assert_array_equal(np.asarray(stats.finished_returns[:n]), [g[0] for g in games])
    mean_return, _ = stats.summary()
    assert float(mean_return) == pytest.approx(np.mean([g[0] for g in games]), rel=1e-6)


def test_episode_stats_window_holds_exactly_the_last_finished_games():
    """Games finishing in the same step (several envs at once) each get their own slot, and
    after more than STATS_WINDOW games the window holds exactly the newest STATS_WINDOW; the
    mean is theirs. Every game has its own return, so an overwritten or stale slot shows."""
    num_envs = 5
    stats = EpisodeStats.create(num_envs)
    assert np.isnan(float(stats.summary()[0]))
    rng = np.random.default_rng(0)
    running = np.zeros(num_envs)
    lengths = np.zeros(num_envs, int)
    finished = []  # (return, length) in the order games finish: by step, then env index
    update = jax.jit(EpisodeStats.update)
    for t in range(80):
        over = rng.random(num_envs) < 0.5
        over[:3] = t % 4 == 3  # envs 0-2 finish together every 4th step
        reward = rng.integers(1, 1000, num_envs).astype(np.float32)  # distinct games
        running += reward
        lengths += 1
        stats = update(stats, StepResult(obs=None, reward=np.sign(reward), done=jnp.asarray(over),
                                        game_reward=jnp.asarray(reward),
                                        game_over=jnp.asarray(over)))
        for i in np.flatnonzero(over):
            finished.append((running[i], lengths[i]))
            running[i], lengths[i] = 0.0, 0
        window = finished[-STATS_WINDOW:]
        count = min(len(finished), STATS_WINDOW)
        assert int(stats.num_finished) == len(finished)
        got = sorted(zip(np.asarray(stats.finished_returns[:count]).tolist(),
                         np.asarray(stats.finished_lengths[:count]).tolist(), strict=True))
        assert got == sorted((float(r), float(n)) for r, n in window), t
        mean_return, mean_length = stats.summary()
        if window:
            assert float(mean_return) == pytest.approx(np.mean([r for r, _ in window]), rel=1e-6)
            assert float(mean_length) == pytest.approx(np.mean([n for _, n in window]), rel=1e-6)
        np.testing.assert_allclose(np.asarray(stats.running_return), running, rtol=1e-6)
    assert len(finished) > STATS_WINDOW + 20, "the window must have wrapped around"


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


def test_planned_action_counts_are_the_envs():
    """--dry-run's action count, known without starting the env, is the env's own."""
    for env_id in ("Breakout-v5", "MsPacman-v5", "Quadrant-v0"):
        env = make_env(env_id, [0])
        assert planned_num_actions(env_id) == env.num_actions, env_id
        env.close()
    assert planned_num_actions("Asterix-v5") == 18  # not listed: the full set, an upper bound


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


def test_game_name_one_rule_for_runs_tables_and_annotations():
    from attnjax.metrics.ground_truth import GAME_OBJECTS
    from attnjax.training.config import TrainConfig
    from attnjax.training.runs import run_name

    assert game_name("Breakout-v5") == "Breakout"
    assert game_name("ALE/MsPacman-v5") == "MsPacman"
    assert game_name("Quadrant-v0") == "Quadrant"
    assert run_name(TrainConfig(env_id="Seaquest-v5", attn_coef=0.005, seed=1)) == \
        "Seaquest__attn0.005__s1"
    assert TrainConfig(env_id="ALE/Pong-v5").game == "Pong"
    assert planned_num_actions("ALE/Pong-v5") == 6
    assert game_name("Breakout-v5") in GAME_OBJECTS
