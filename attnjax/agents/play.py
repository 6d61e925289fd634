"""The one play engine: R runs step in lockstep, each with its own network and parameters, inside
one compiled `lax.scan` of env steps; every tool that plays agents drives it.

Layout: one env pool of M = R x E envs; run r acts on rows r*E .. (r+1)*E - 1 with its own
action key (keys [R, 2], split once per step whatever the policy). `choose_actions` is the one
greedy-or-sampled action choice.

What a chunk hands back per step is chosen when it is built: the actions and the env's
`StepResult` always; each run's whole `AgentOutput` of the step's observations (`outputs`) and
the emulator RAM of the new state (`ram`, Atari). With `quota` it also keeps the game
accounting `evaluate` reports: full games per env slot up to a fixed quota (`Tally`) and each
run's summed per-head attention entropy over the counted frames whose action acted.

Host-side records (RGB screens) cannot be taken inside XLA: callers that need the screen of
every state play chunks of one step and render between them (`render.play`,
`ground_truth.collect_frames`); `evaluate.play_games` plays CHUNK_STEPS at a time.

envpool's reset step: after a step that returned done (a lost life, a game over) envpool resets
on the next step and ignores its action (reward 0); the carry keeps the previous step's done so
that the accounting leaves that frame out of the entropy (as training's metric does), while the
step still counts toward the game's length (as training's `episodic_length`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from attnjax.model.envs import StepResult
from attnjax.model.networks import AgentOutput, head_entropies


def choose_actions(logits: jax.Array, key: jax.Array, policy: str) -> jax.Array:
    """logits [E, A] -> actions [E] int32: argmax (greedy) or a categorical sample."""
    if policy == "greedy":
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def slot_quotas(games: int, envs: int) -> np.ndarray:
    """[E] games each env slot plays: N split as evenly as possible, the first slots +1."""
    return np.array([games // envs + (i < games % envs) for i in range(envs)], np.int32)


@struct.dataclass
class Tally:
    """Counted games of every env slot; leading axis: the M = R * E envs of the pool."""

    running_return: jax.Array  # [M] float32: unclipped reward of the game in progress
    running_length: jax.Array  # [M] int32
    games: jax.Array  # [M] int32: games finished and counted so far (stops at the quota)
    scores: jax.Array  # [M, Q] float32: score of each counted game, Q = the largest quota
    lengths: jax.Array  # [M, Q] int32
    frames: jax.Array  # [M] int32: counted frames whose action acted (the entropy's weights)

    @classmethod
    def create(cls, num_envs: int, max_quota: int) -> Tally:
        zeros = jnp.zeros(num_envs, jnp.int32)
        return cls(jnp.zeros(num_envs, jnp.float32), zeros, zeros,
                   jnp.zeros((num_envs, max_quota), jnp.float32),
                   jnp.zeros((num_envs, max_quota), jnp.int32), zeros)

    def update(self, step: StepResult, quota: jax.Array, acted: jax.Array) -> Tally:
        """Add one env step; quota [M] games per slot, acted [M] bool: the frame's action
        acted. A slot past its quota changes nothing but its running game."""
        active = self.games < quota
        total = self.running_return + step.game_reward
        length = self.running_length + 1
        over = step.game_over & active
        rows = jnp.arange(total.shape[0])
        col = jnp.where(over, self.games, self.scores.shape[1])  # out of range: dropped
        return Tally(
            running_return=jnp.where(step.game_over, 0.0, total),
            running_length=jnp.where(step.game_over, 0, length),
            games=self.games + over,
            scores=self.scores.at[rows, col].set(total, mode="drop"),
            lengths=self.lengths.at[rows, col].set(length, mode="drop"),
            frames=self.frames + (active & acted),
        )


@struct.dataclass
class PlayState:
    """The carry of the engine between steps and chunks."""

    env_state: Any  # the env's opaque state
    obs: jax.Array  # [M, 4, 84, 84] uint8: what the next step's networks receive
    done: jax.Array  # [M] bool: the previous step's done (envpool's next step is a reset)
    keys: jax.Array  # [R, 2]: each run's action key
    tally: Tally | None  # with a quota: the counted games
    entropy: tuple  # with a quota: per run [K] summed head entropies (None: nature network)


class StepRecord(NamedTuple):
    """What a chunk hands back, stacked over its S steps."""

    actions: jax.Array  # [S, M] int32
    result: StepResult  # [S, M, ...]
    outputs: tuple[AgentOutput, ...] | None  # per run, [S, E, ...]; with outputs=True
    ram: jax.Array | None  # [S, M, 128] uint8: RAM of the state after the step; with ram=True


def start(env: Any, keys: jax.Array, quota: np.ndarray | None = None,
          heads: Sequence[int | None] = ()) -> PlayState:
    """Reset the env: the first carry. keys [R, 2]; quota [M] games per env slot (accounting
    on); heads: per run its attention heads K, None for a network without attention."""
    env_state, obs = env.reset()
    tally = None if quota is None else Tally.create(len(quota), int(np.max(quota)))
    entropy = tuple(None if k is None else jnp.zeros(k, jnp.float32) for k in heads)
    return PlayState(env_state, obs, jnp.zeros(obs.shape[0], bool), keys, tally, entropy)


def make_chunk(networks: Sequence[Any], env: Any, policy: str, steps: int, *,
               quota: np.ndarray | None = None, outputs: bool = False, ram: bool = False):
    """Compiled `chunk(params, state) -> (state, StepRecord)`: `steps` lockstep env steps of
    the R = len(networks) runs; params: one parameter tree per run. quota [M]: keep the game
    accounting (a slot past its quota plays on uncounted)."""
    quota = None if quota is None else jnp.asarray(quota)  # [M]

    @jax.jit
    def chunk(params, state: PlayState):
        def one_step(state: PlayState, _):
            envs = state.obs.shape[0] // len(networks)
            acted = ~(state.done & env.reset_step_after_done)  # [M]
            if quota is not None:
                acted = acted & (state.tally.games < quota)
            actions, keys, outs, entropy = [], [], [], []
            for r, network in enumerate(networks):
                rows = slice(r * envs, (r + 1) * envs)
                out = network.apply({"params": params[r]}, state.obs[rows])
                key, sub = jax.random.split(state.keys[r])
                keys.append(key)
                actions.append(choose_actions(out.logits, sub, policy))
                outs.append(out)
                if quota is not None and state.entropy[r] is not None:
                    # [K] += weights [E] @ per-frame head entropies [E, K]
                    weight = acted[rows].astype(jnp.float32)
                    entropy.append(state.entropy[r] + weight @ head_entropies(out.attention))
                else:
                    entropy.append(state.entropy[r] if state.entropy else None)
            action = jnp.concatenate(actions)
            if ram:
                env_state, result, memory = env.step_with_ram(state.env_state, action)
            else:
                (env_state, result), memory = env.step(state.env_state, action), None
            tally = None if quota is None else state.tally.update(result, quota, acted)
            new = PlayState(env_state, result.obs, result.done, jnp.stack(keys), tally,
                            tuple(entropy) if state.entropy else ())
            return new, StepRecord(action, result, tuple(outs) if outputs else None, memory)

        return jax.lax.scan(one_step, state, None, length=steps)

    return chunk
