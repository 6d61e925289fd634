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
of this command's files without the stamp (from attnjax versions that wrote none).
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

from attnjax.agents import play
from attnjax.agents.play import slot_quotas
from attnjax.cli import add_play_arguments, check_play_arguments
from attnjax.errors import UserError, writable_folder
from attnjax.files import write_json
from attnjax.model.baseline import UNIFORM_HEAD_ENTROPY
from attnjax.model.envs import env_seeds, make_env
from attnjax.progress import ProgressBar
from attnjax.provenance import (
    STAMP_KEY,
    attnjax_version,
    check_replaceable,
    json_stamp,
    read_json_file,
)
from attnjax.training.runs import is_number, read_json_object, run_name

CHUNK_STEPS = 64  # env steps per compiled call; at most this many are played past the last game
COMMAND = "visualize.py evaluate"  # the stamp in the files it writes (attnjax.provenance)
RESULTS_STD = "population (ddof=0) over the games"


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

    The play engine (`agents.play`) with game accounting: E envs per agent with fixed game
    quotas, CHUNK_STEPS compiled steps per call and only the tallies kept, which is what makes
    hundreds of full games affordable."""
    check_settings(games, envs, policy)
    envs = min(envs, games)
    quota = slot_quotas(games, envs)
    num_runs = len(agents)
    env = make_env(agents[0].config.env_id, env_seeds(seed, envs) * num_runs)
    all_quota = np.tile(quota, num_runs)  # [R * E]
    chunk = play.make_chunk([a.network for a in agents], env, policy, CHUNK_STEPS,
                            quota=all_quota)
    heads = [a.config.attn_heads if a.config.network == "attention" else None for a in agents]
    keys = jnp.stack([jax.random.PRNGKey(seed)] * num_runs)  # [R, 2]
    params = [a.params for a in agents]
    try:
        state = play.start(env, keys, all_quota, heads)
        counted = 0
        with ProgressBar("evaluate", games * num_runs, enabled=progress, unit="games") as bar:
            while counted < games * num_runs:
                state, _ = chunk(params, state)
                now = int(np.asarray(state.tally.games).sum())
                bar.advance(now - counted)
                counted = now
    finally:
        env.close()
    tally, entropy = jax.device_get((state.tally, state.entropy))
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
        "uniform_attention_entropy": UNIFORM_HEAD_ENTROPY,
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
                 f"uniform = ln 49 = {UNIFORM_HEAD_ENTROPY:.2f}")
    return "\n".join(lines)


# what every run entry of an evaluation file holds (`run_entry`), by JSON kind
EVALUATION_KEYS = {"run": str, "env_id": str, "network": str, "attn_coef": float, "seed": int,
                   "policy": str, "games": int, "mean": float, "std": float, "median": float,
                   "min": float, "max": float}


def read_evaluation(path: Path, fix: str) -> list[dict[str, Any]]:
    """The run entries of one file `main` wrote (`results_json`), each with EVALUATION_KEYS of
    the right kind (numbers finite); a one-line UserError naming the file and ending in `fix`
    (what the reader's user should do) for a file that cannot be read or is not one."""
    try:
        data = read_json_object(path, path.read_text(encoding="utf-8"), "the content", fix)
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path} ({err}); {fix}") from None
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise UserError(f"{path} has no `runs` list; {fix}")
    for entry in runs:
        ok = isinstance(entry, dict) and all(
            k in entry and (is_number(entry[k]) and math.isfinite(entry[k]) if t is float
                            else isinstance(entry[k], t) and not isinstance(entry[k], bool))
            for k, t in EVALUATION_KEYS.items())
        if not ok:
            raise UserError(f"{path}: a run entry lacks a valid {', '.join(EVALUATION_KEYS)}; "
                            f"{fix}")
    return runs


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
    from attnjax.agents.load import check_one_game, load_agent

    check_settings(args.games, args.envs, args.policy)  # all input checked before playing
    out = check_out_path(args.out)
    agents = [load_agent(run) for run in args.run]
    check_one_game(agents, "evaluate the runs of one game per call")
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
