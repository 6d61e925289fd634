"""Evaluate agents: N full games per run, scores and attention entropy, a table and a JSON file.

A full game is what training's `episodic_return` counts (`envs.EpisodeStats`): all lives, the
unclipped game reward summed until the game is over, in the env training used (`make_env`:
the paper's preprocessing) and ended by the game's own time limit (envpool v5: 27,000 agent
steps = 108k frames, a truncation that counts as the end of the game). A game's length counts
agent steps as training's `episodic_length` does, envpool's reset steps after a lost life
included.

Layout: one env pool of R runs x E env slots (--envs, at most --games); every run gets its own
E envs with the same env seeds (`envs.env_seeds(--seed, E)`) and its own action key
(PRNGKey(--seed)), so a run scores the same evaluated alone or next to others, and runs
compared in one call start the same games. The runs step in lockstep, each with its own
network, inside one compiled `lax.scan` of CHUNK_STEPS steps.

Which games count: slot i plays a fixed quota of N // E games (+1 for the first N % E slots),
one after another, and is ignored after it. Taking "the first N games to finish" instead would
favour short games (a long game is still running when the quota fills); with fixed quotas the
counted games are set by the seeds alone, never by their lengths. Scores are listed slot by
slot, each slot's games in order.

Attention entropy: per head, in nats, averaged over the counted frames on which the agent's
action acted (envpool's reset step after a lost life ignores the action and is left out, as in
training's metric); a uniform head has ln 49 = 3.89 nats. None for the nature network.

The JSON carries "written_by" (`attnjax.provenance`); --out replaces only such a file, or one
written by this command before the stamp existed.
"""

from __future__ import annotations

import argparse
import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from attnjax.cli import add_play_arguments, check_play_arguments
from attnjax.errors import UserError, writable_folder
from attnjax.files import write_json
from attnjax.model.envs import StepResult, env_seeds, make_env
from attnjax.progress import ProgressBar
from attnjax.provenance import (
    STAMP_KEY,
    attnjax_version,
    check_replaceable,
    json_stamp,
    read_json_file,
)
from attnjax.training.losses import ENTROPY_EPS
from attnjax.training.runs import run_name

CHUNK_STEPS = 64  # env steps per compiled call; at most this many are played past the last game
UNIFORM_ENTROPY = math.log(49)  # nats of a head spread evenly over the 7x7 cells
COMMAND = "visualize.py evaluate"  # the stamp in the files it writes (attnjax.provenance)
RESULTS_STD = "population (ddof=0) over the games"


# --------------------------------------------------------------------------------------------
# pure functions (jitted inside the chunk)


def slot_quotas(games: int, envs: int) -> np.ndarray:
    """[E] games each env slot plays: N split as evenly as possible, the first slots +1."""
    return np.array([games // envs + (i < games % envs) for i in range(envs)], np.int32)


def choose_actions(logits: jax.Array, key: jax.Array, policy: str) -> jax.Array:
    """logits [E, A] -> actions [E] int32: argmax (greedy) or a categorical sample."""
    if policy == "greedy":
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def head_entropies(attention: jax.Array) -> jax.Array:
    """attention [E, 7, 7, K] -> [E, K] entropy of each head over the 49 cells (nats)."""
    p = attention.reshape(attention.shape[0], -1, attention.shape[-1])  # [E, 49, K]
    return -jnp.sum(p * jnp.log(p + ENTROPY_EPS), axis=1)


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


def make_chunk(networks: Sequence[Any], env: Any, quota: np.ndarray, policy: str,
               steps: int = CHUNK_STEPS):
    """Compiled `chunk(params, carry) -> carry`: `steps` lockstep env steps of all runs.

    params: one parameter tree per run; carry = (env state, obs [M, 4, 84, 84] uint8,
    previous step's done [M], keys [R, 2], Tally, entropy sums: per run [K] or None).
    """
    envs = len(quota) // len(networks)
    quota = jnp.asarray(quota)  # [M]

    @jax.jit
    def chunk(params, carry):
        def one_step(carry, _):
            env_state, obs, prev_done, keys, tally, entropy = carry
            active = tally.games < quota  # [M]
            acted = active & ~(prev_done & env.reset_step_after_done)
            actions, new_keys, new_entropy = [], [], []
            for r, network in enumerate(networks):
                rows = slice(r * envs, (r + 1) * envs)
                out = network.apply({"params": params[r]}, obs[rows])
                key, sub = jax.random.split(keys[r])
                new_keys.append(key)
                actions.append(choose_actions(out.logits, sub, policy))
                if entropy[r] is None:
                    new_entropy.append(None)
                else:  # [K] += weights [E] @ per-frame head entropies [E, K]
                    weight = acted[rows].astype(jnp.float32)
                    new_entropy.append(entropy[r] + weight @ head_entropies(out.attention))
            env_state, result = env.step(env_state, jnp.concatenate(actions))
            tally = tally.update(result, quota, acted)
            return (env_state, result.obs, result.done, jnp.stack(new_keys), tally,
                    new_entropy), None

        return jax.lax.scan(one_step, carry, None, length=steps)[0]

    return chunk


# --------------------------------------------------------------------------------------------
# playing


@dataclass
class RunResult:
    """Every counted game of one run."""

    scores: np.ndarray  # [N] float: full-game scores, slot by slot
    lengths: np.ndarray  # [N] int: agent steps per game
    attention_entropy: np.ndarray | None  # [K] mean per head over the counted frames (nats)


def play_games(agents: Sequence[Any], games: int, seed: int = 0, policy: str = "sample",
               envs: int = 16, progress: bool = False) -> list[RunResult]:
    """Play `games` full games per agent (all of one env id), all in one env pool.

    Not `render.play`, on purpose: that loop records frames of one env per agent, step by step
    from Python with screens; this one plays E envs per agent with fixed game quotas inside one
    compiled `lax.scan` of CHUNK_STEPS steps and keeps only the tallies, which is what makes
    hundreds of full games affordable."""
    check_settings(games, envs, policy)
    envs = min(envs, games)
    quota = slot_quotas(games, envs)
    num_runs = len(agents)
    env = make_env(agents[0].config.env_id, env_seeds(seed, envs) * num_runs)
    all_quota = np.tile(quota, num_runs)  # [R * E]
    chunk = make_chunk([a.network for a in agents], env, all_quota, policy)
    tally = Tally.create(len(all_quota), int(quota.max()))
    entropy = [None if a.config.network != "attention"
               else jnp.zeros(a.config.attn_heads, jnp.float32) for a in agents]
    keys = jnp.stack([jax.random.PRNGKey(seed)] * num_runs)
    params = [a.params for a in agents]
    try:
        env_state, obs = env.reset()
        carry = (env_state, obs, jnp.zeros(len(all_quota), bool), keys, tally, entropy)
        counted = 0
        with ProgressBar("evaluate", games * num_runs, enabled=progress, unit="games") as bar:
            while counted < games * num_runs:
                carry = chunk(params, carry)
                now = int(np.asarray(carry[4].games).sum())
                bar.advance(now - counted)
                counted = now
    finally:
        env.close()
    tally, entropy = jax.device_get((carry[4], carry[5]))
    results = []
    for r in range(num_runs):
        rows = slice(r * envs, (r + 1) * envs)
        taken = np.arange(tally.scores.shape[1])[None, :] < quota[:, None]  # [E, Q]
        frames = int(tally.frames[rows].sum())
        results.append(RunResult(
            scores=tally.scores[rows][taken].astype(np.float64),
            lengths=tally.lengths[rows][taken].astype(np.int64),
            attention_entropy=None if entropy[r] is None
            else np.asarray(entropy[r], np.float64) / max(frames, 1),
        ))
    return results


# --------------------------------------------------------------------------------------------
# results


def run_entry(run: str, agent: Any, result: RunResult, policy: str, seed: int) -> dict[str, Any]:
    """One run's JSON entry: where it comes from, how it was played, what it scored."""
    scores, lengths = result.scores, result.lengths
    config = agent.config
    return {
        "run": str(run), "run_name": run_name(config), "env_id": config.env_id,
        "attn_coef": config.attn_coef, "seed": config.seed, "network": config.network,
        "attn_heads": config.attn_heads if config.network == "attention" else None,
        "checkpoint": str(agent.path), "global_step": agent.step, "policy": policy,
        "eval_seed": seed, "games": len(scores),
        "scores": scores.tolist(), "lengths": lengths.tolist(),
        "mean": float(scores.mean()), "std": float(scores.std(ddof=0)),
        "median": float(np.median(scores)), "min": float(scores.min()),
        "max": float(scores.max()), "mean_length": float(lengths.mean()),
        "attention_entropy_per_head": None if result.attention_entropy is None
        else result.attention_entropy.tolist(),
    }


def results_json(entries: list[dict[str, Any]], policy: str, seed: int, games: int,
                 envs: int) -> dict[str, Any]:
    return {
        STAMP_KEY: json_stamp(COMMAND),
        "attnjax_version": attnjax_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "policy": policy, "eval_seed": seed, "games": games, "envs_per_run": envs,
        "uniform_attention_entropy": UNIFORM_ENTROPY,
        "std": RESULTS_STD,
        "runs": entries,
    }


def format_table(entries: list[dict[str, Any]]) -> str:
    """The entries as text columns, right-aligned numbers."""
    header = ("run", "λ", "games", "mean ± std", "median", "min", "max", "mean length",
              "attention entropy/head")
    rows = [header]
    for e in entries:
        entropy = e["attention_entropy_per_head"]
        rows.append((
            e["run_name"], f"{e['attn_coef']:g}", str(e["games"]),
            f"{e['mean']:.1f} ± {e['std']:.1f}", f"{e['median']:g}", f"{e['min']:g}",
            f"{e['max']:g}", f"{e['mean_length']:.0f}",
            "–" if entropy is None else " ".join(f"{h:.2f}" for h in entropy),
        ))
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.append(f"full-game scores (unclipped, all lives); attention entropy in nats per head, "
                 f"uniform = ln 49 = {UNIFORM_ENTROPY:.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_play_arguments(parser, runs=True, skip=("frames", "warmup", "stride"), help_texts={
        "policy": "sample (as in training; default) or greedy (argmax)",
        "seed": "env seeds and action sampling (default 0)"})
    parser.add_argument("--games", type=int, default=10, help="full games per run (default 10)")
    parser.add_argument("--envs", type=int, default=16,
                        help="games played at once per run (default 16, at most --games)")
    parser.add_argument("--out", required=True, help="JSON file to write, ending in .json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_out_path(out: str | Path) -> Path:
    """The --out file name, refused before anything runs if it is not a .json file name or
    names a file that an earlier `visualize.py evaluate` did not write."""
    out = Path(out)
    if out.suffix != ".json":
        raise UserError(f"--out must end in .json, got {out}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name ending in .json")
    check_replaceable(out, COMMAND, "give another --out", legacy=is_unstamped_evaluation)
    return out


def is_unstamped_evaluation(path: Path) -> bool:
    """Whether `path` is an evaluation file written before stamps (`results_json`'s keys)."""
    doc = read_json_file(path)
    return (isinstance(doc, dict) and "attnjax_version" in doc and "envs_per_run" in doc
            and isinstance(doc.get("runs"), list) and doc.get("std") == RESULTS_STD)


def check_settings(games: int, envs: int, policy: str) -> None:
    if games < 1:
        raise UserError(f"--games must be at least 1, got {games}")
    if envs < 1:
        raise UserError(f"--envs must be at least 1, got {envs}")
    check_play_arguments(argparse.Namespace(policy=policy))


def main(args: argparse.Namespace) -> int:
    from attnjax.agents.load import load_agent

    check_settings(args.games, args.envs, args.policy)  # all input checked before playing
    out = check_out_path(args.out)
    agents = [load_agent(run) for run in args.run]
    env_ids = sorted({a.config.env_id for a in agents})
    if len(env_ids) > 1:
        raise UserError(f"the runs were trained on different games ({', '.join(env_ids)}); "
                        "evaluate the runs of one game per call")
    writable_folder(out.parent, "--out", str(out))  # last check: creates the folder
    results = play_games(agents, args.games, args.seed, args.policy, args.envs,
                         progress=not args.no_progress)
    entries = [run_entry(run, agent, result, args.policy, args.seed)
               for run, agent, result in zip(args.run, agents, results, strict=True)]
    print(format_table(entries))
    write_json(out, results_json(entries, args.policy, args.seed, args.games,
                                        min(args.envs, args.games)))
    print(f"wrote {out}")
    return 0
