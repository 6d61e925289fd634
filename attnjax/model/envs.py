"""Environments with one step interface, steppable from inside jit.

- `AtariEnv`: envpool `<Game>-v5` with the paper's preprocessing (84x84 grey, 4 stacked frames,
  frame skip 4, up to 30 no-ops, fire reset, episodic life, sign-clipped rewards, no sticky
  actions, minimal action set), stepped through envpool's XLA interface.
- `QuadrantEnv` (`Quadrant-v0`): a tiny pure-JAX image env for fast learning tests and ground
  truth for where attention should go.

Both: `reset() -> (state, obs)` on the host, then `step(state, actions) -> (state, StepResult)`,
a pure function usable inside `jit`/`lax.scan`. `state` is an opaque pytree.
Episode statistics (`EpisodeStats`) count full games: unclipped rewards over all lives.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from attnjax.errors import UserError

QUADRANT_ENV_ID = "Quadrant-v0"
STATS_WINDOW = 100  # finished games averaged into `episodic_return`


@struct.dataclass
class StepResult:
    """One vectorised step; leading axis: envs."""

    obs: jax.Array  # [N, 4, 84, 84] uint8
    reward: jax.Array  # [N] float32, sign-clipped: what PPO trains on
    done: jax.Array  # [N] bool: episode boundary for bootstrapping (life lost, game over, time)
    game_reward: jax.Array  # [N] float32, unclipped: what full-game scores sum
    game_over: jax.Array  # [N] bool: the whole game ended (all lives lost or time limit)


def game_name(env_id: str) -> str:
    """The game an env id names, as run names, tables and AtariARI annotations spell it:
    'Breakout-v5' -> 'Breakout', 'Quadrant-v0' -> 'Quadrant' (an 'ALE/' style prefix dropped)."""
    return re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1])


def env_seeds(seed: int, num_envs: int) -> list[int]:
    """Per-env seeds of one run; a run's envs get the same seeds alone or inside a grid."""
    return [(seed * 10_007 + i) % (2**31 - 1) for i in range(num_envs)]


@functools.cache
def atari_env_ids() -> tuple[str, ...]:
    import envpool

    return tuple(sorted(e for e in envpool.list_all_envs() if e.endswith("-v5")))


def validate_env_id(env_id: str) -> None:
    """Raise UserError naming close matches when env_id is neither an envpool Atari id nor ours."""
    if env_id == QUADRANT_ENV_ID:
        return
    known = atari_env_ids()
    if env_id in known:
        return
    close = difflib.get_close_matches(env_id, (*known, QUADRANT_ENV_ID), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "use an Atari id such as Breakout-v5"
    raise UserError(f"unknown env id {env_id!r}; {hint}")


# ALE's actions in its enum order (ale::Action); a game's minimal action set, which envpool uses,
# is the subset its ROM settings call minimal (isMinimal), in this order. envpool does not expose
# the names, so the minimal sets of the paper's and a few common games are listed here.
ALE_ACTIONS = ("NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT",
               "DOWNLEFT", "UPFIRE", "RIGHTFIRE", "LEFTFIRE", "DOWNFIRE", "UPRIGHTFIRE",
               "UPLEFTFIRE", "DOWNRIGHTFIRE", "DOWNLEFTFIRE")
MINIMAL_ACTIONS = {
    "Breakout": ("NOOP", "FIRE", "RIGHT", "LEFT"),
    "BeamRider": ("NOOP", "FIRE", "UP", "RIGHT", "LEFT", "UPRIGHT", "UPLEFT", "RIGHTFIRE",
                  "LEFTFIRE"),
    "Enduro": ("NOOP", "FIRE", "RIGHT", "LEFT", "DOWN", "DOWNRIGHT", "DOWNLEFT", "RIGHTFIRE",
               "LEFTFIRE"),
    "MsPacman": ("NOOP", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT",
                 "DOWNLEFT"),
    "Pong": ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"),
    "SpaceInvaders": ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"),
}  # Frostbite and Seaquest use all 18
QUADRANT_ACTIONS = ("top-left", "top-right", "bottom-left", "bottom-right")


def _game_actions(env_id: str) -> tuple[str, ...]:
    """The env's listed action names; ALE's full set for a game not in MINIMAL_ACTIONS."""
    if env_id == QUADRANT_ENV_ID:
        return QUADRANT_ACTIONS
    return MINIMAL_ACTIONS.get(game_name(env_id), ALE_ACTIONS)


def planned_num_actions(env_id: str) -> int:
    """The env's action count without starting it (for `--dry-run`): exact for Quadrant-v0 and
    the games in MINIMAL_ACTIONS, else 18, the full ALE set, the most a game can have."""
    return len(_game_actions(env_id))


def action_names(env_id: str, num_actions: int) -> tuple[str, ...] | None:
    """The meaning of each action index of the env (FIRE, LEFT, ...), or None when unknown
    (a game not listed in MINIMAL_ACTIONS, or a count that does not match)."""
    names = _game_actions(env_id)
    return names if len(names) == num_actions else None


class AtariEnv:
    """envpool Atari, all envs stepped synchronously through the XLA custom call."""

    # envpool returns the terminal frame with done and resets on the next step, ignoring that
    # step's action (reward 0); training masks those transitions out (losses.valid_transitions)
    reset_step_after_done = True

    def __init__(self, env_id: str, seeds: list[int], render: bool = False) -> None:
        import envpool

        self.env_id = env_id
        self.num_envs = len(seeds)
        kwargs: dict[str, Any] = {}
        if render:
            kwargs["render_mode"] = "rgb_array"
        self._env = envpool.make(
            env_id,
            env_type="gymnasium",
            num_envs=self.num_envs,
            batch_size=self.num_envs,
            seed=int(seeds[0]),
            env_seed=[int(s) for s in seeds],
            episodic_life=True,
            reward_clip=True,
            repeat_action_probability=0.0,
            noop_max=30,
            use_fire_reset=True,
            stack_num=4,
            frame_skip=4,
            img_height=84,
            img_width=84,
            gray_scale=True,
            full_action_space=False,
            **kwargs,
        )
        self.num_actions = int(self._env.action_space.n)
        self._handle, _, _, self._xla_step = self._env.xla()

    def reset(self) -> tuple[jax.Array, jax.Array]:
        obs, _ = self._env.reset()
        return self._handle, jnp.asarray(obs)

    def step(self, state: jax.Array, actions: jax.Array) -> tuple[jax.Array, StepResult]:
        state, result, _ = self.step_with_ram(state, actions)
        return state, result

    def step_with_ram(self, state: jax.Array,
                      actions: jax.Array) -> tuple[jax.Array, StepResult, jax.Array]:
        """`step`, plus the emulator RAM [N, 128] uint8 of the new state: the bytes AtariARI
        annotates (object positions; `attnjax.metrics.ground_truth`)."""
        state, (obs, reward, terminated, truncated, info) = self._xla_step(state, actions)
        return state, StepResult(
            obs=obs,
            reward=reward.astype(jnp.float32),
            done=terminated | truncated,
            game_reward=info["reward"].astype(jnp.float32),
            game_over=info["terminated"].astype(bool) | truncated,
        ), info["ram"]

    def render(self) -> np.ndarray:
        """RGB screens [N, 210, 160, 3] of the current step (needs render=True)."""
        return np.asarray(self._env.render(env_ids=np.arange(self.num_envs)))

    def close(self) -> None:
        self._env.close()


@struct.dataclass
class QuadrantState:
    key: jax.Array  # [N, 2] per-env PRNG keys
    position: jax.Array  # [N, 2] int32 (y, x) of the object's top-left corner
    t: jax.Array  # [N] int32 step within the episode


class QuadrantEnv:
    """One bright square on a dark 84x84 screen; the rewarded action is the object's quadrant.

    Actions 0..3 = quadrant (top-left, top-right, bottom-left, bottom-right) of the square's
    centre; reward 1 for the right one, else 0. The square jumps to a fresh uniform position every
    step, and the 4 "stacked" frames are the current screen repeated (there is no motion to see).
    An episode (a "game") lasts `episode_length` steps, so chance scores episode_length / 4.
    The square (8 px) is smaller than a cell of the 7x7 attention grid (12 px of the screen), so
    "the object's cell" is well defined; with a 12 px square, agents attended cells that hold it
    near a corner of their 36 px receptive field, one or two cells away.
    """

    size = 84
    reset_step_after_done = False  # a finished episode's next observation is already a new one
    object_size = 8  # px; a cell of the 7x7 attention grid spans 12 px of the screen

    def __init__(self, seeds: list[int], episode_length: int = 32) -> None:
        self.env_id = QUADRANT_ENV_ID
        self.num_envs = len(seeds)
        self.num_actions = 4
        self.episode_length = episode_length
        self._seeds = jnp.asarray(seeds, jnp.uint32)

    def _render(self, position: jax.Array) -> jax.Array:
        """[N, 2] positions -> uint8 [N, 4, 84, 84]."""
        coords = jnp.arange(self.size)[None, :]  # [1, 84]
        end = position + self.object_size
        inside_y = (coords >= position[:, :1]) & (coords < end[:, :1])  # [N, 84]
        inside_x = (coords >= position[:, 1:]) & (coords < end[:, 1:])
        frame = (inside_y[:, :, None] & inside_x[:, None, :]).astype(jnp.uint8) * 255
        return jnp.repeat(frame[:, None], 4, axis=1)

    def quadrant(self, position: jax.Array) -> jax.Array:
        """[N, 2] positions -> [N] rewarded action."""
        centre = position + self.object_size // 2
        return (centre[:, 0] >= self.size // 2) * 2 + (centre[:, 1] >= self.size // 2)

    def _sample(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        keys = jax.vmap(jax.random.split)(key)  # [N, 2, 2]
        high = self.size - self.object_size + 1
        position = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, high))(keys[:, 1])
        return keys[:, 0], position

    def reset(self) -> tuple[QuadrantState, jax.Array]:
        keys = jax.vmap(jax.random.PRNGKey)(self._seeds)
        keys, position = self._sample(keys)
        state = QuadrantState(keys, position, jnp.zeros(self.num_envs, jnp.int32))
        return state, self._render(position)

    def step(self, state: QuadrantState, actions: jax.Array) -> tuple[QuadrantState, StepResult]:
        reward = (actions == self.quadrant(state.position)).astype(jnp.float32)
        t = state.t + 1
        game_over = t >= self.episode_length
        keys, position = self._sample(state.key)
        state = QuadrantState(keys, position, jnp.where(game_over, 0, t))
        return state, StepResult(
            obs=self._render(position),
            reward=reward,
            done=game_over,
            game_reward=reward,
            game_over=game_over,
        )

    def render(self, state: QuadrantState) -> np.ndarray:
        """RGB screens [N, 84, 84, 3] of the current state."""
        frame = np.asarray(self._render(state.position)[:, -1])
        return np.repeat(frame[..., None], 3, axis=-1)

    def close(self) -> None:
        pass


def make_env(env_id: str, seeds: list[int], render: bool = False) -> AtariEnv | QuadrantEnv:
    """The env an id names: `Quadrant-v0` or any envpool Atari `<Game>-v5`."""
    if env_id == QUADRANT_ENV_ID:
        return QuadrantEnv(seeds)
    return AtariEnv(env_id, seeds, render=render)


@struct.dataclass
class EpisodeStats:
    """Full-game statistics: unclipped returns summed over all lives until game over.

    Keeps the running score and length of every env and a ring buffer of the last
    STATS_WINDOW finished games, so `episodic_return` is the mean of those (NaN before any).
    """

    running_return: jax.Array  # [N]
    running_length: jax.Array  # [N] int32
    finished_returns: jax.Array  # [W]
    finished_lengths: jax.Array  # [W]
    num_finished: jax.Array  # [] int32, total games finished so far

    @classmethod
    def create(cls, num_envs: int) -> EpisodeStats:
        return cls(
            running_return=jnp.zeros(num_envs, jnp.float32),
            running_length=jnp.zeros(num_envs, jnp.int32),
            finished_returns=jnp.zeros(STATS_WINDOW, jnp.float32),
            finished_lengths=jnp.zeros(STATS_WINDOW, jnp.float32),
            num_finished=jnp.zeros((), jnp.int32),
        )

    def update(self, step: StepResult) -> EpisodeStats:
        total = self.running_return + step.game_reward
        length = self.running_length + 1
        over = step.game_over
        # slot of each finished game in the ring buffer; unfinished envs scatter out of range
        slot = (self.num_finished + jnp.cumsum(over) - 1) % STATS_WINDOW
        slot = jnp.where(over, slot, STATS_WINDOW)
        return EpisodeStats(
            running_return=jnp.where(over, 0.0, total),
            running_length=jnp.where(over, 0, length),
            finished_returns=self.finished_returns.at[slot].set(total, mode="drop"),
            finished_lengths=self.finished_lengths.at[slot].set(
                length.astype(jnp.float32), mode="drop"
            ),
            num_finished=self.num_finished + jnp.sum(over, dtype=jnp.int32),
        )

    def summary(self) -> tuple[jax.Array, jax.Array]:
        """(mean full-game return, mean length) over the window; NaN before the first game ends."""
        count = jnp.minimum(self.num_finished, STATS_WINDOW)
        valid = jnp.arange(STATS_WINDOW) < count
        denom = jnp.where(count > 0, count, 1).astype(jnp.float32)
        mean_return = jnp.where(count > 0, jnp.sum(self.finished_returns * valid) / denom, jnp.nan)
        mean_length = jnp.where(count > 0, jnp.sum(self.finished_lengths * valid) / denom, jnp.nan)
        return mean_return, mean_length
