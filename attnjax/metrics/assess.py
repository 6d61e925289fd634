"""Assess finished runs at their final step: one stamped assessment.json per run, with copies
of the run's config.json, metrics.jsonl and machine.json (where it has one), so a sweep's
figures and findings need nothing but the results folder (`visualize.py figures --runs
RESULTS`).

Per run, through the tools that exist for each part:
- evaluation (`evaluate.play_games`): G full games greedy and G sampled, and a uniformly random
  policy on the same G games (same env seeds for every run), the collapse rule's and the
  figures' random-agent baseline;
- attention entropy per head: over the evaluated games' frames, and over the frames below;
- localization (`metrics.ground_truth.collect_frames` + `metrics.localization.localize`): on F
  frames the agent plays itself (sampled, as in training), each head's argmax hit rate and
  attention mass on every annotated object (Breakout: ball, paddle; Quadrant-v0: the square),
  next to uniform attention and the best fixed cell on the same frames;
- argmax statistics: each head's most frequent argmax cell and its share of the frames, and the
  share of frames on which all heads' argmax is the same cell;
- collapse: COLLAPSE_RULE (written into the JSON).

A run is assessed only at its final step: its newest checkpoint must be at its config's
total_timesteps. Files are written beside and renamed into place; a file already in the results
folder is replaced only if this command wrote it (assessment.json carrying STAMP_COMMAND, or a
copy with the bytes it would write anyway).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from attnjax.agents.evaluate import RunResult, play_games
from attnjax.cli import positive_int
from attnjax.errors import UserError, writable_folder
from attnjax.figures.records import ASSESSMENT_FILE
from attnjax.files import write_json, write_text
from attnjax.progress import ProgressBar
from attnjax.provenance import STAMP_KEY, attnjax_version, check_replaceable, read_json_file
from attnjax.training.runs import CONFIG_FILE, MACHINE_FILE, METRICS_FILE, run_name

STAMP_COMMAND = "visualize.py assess"
COLLAPSE_SHARE = 0.9  # a head "stuck" on one cell: its argmax is that cell on >= 90% of frames
COLLAPSE_POINTS = 1.0  # ... and the greedy score is within 1 point of the random policy's
COLLAPSE_RULE = (f"collapsed = every head's argmax is one same cell on >= {COLLAPSE_SHARE:.0%} "
                 f"of the localization frames AND the greedy mean score is within "
                 f"{COLLAPSE_POINTS:g} point of the uniformly random policy's on the same games")


# --------------------------------------------------------------------------------------------
# the random-action baseline, played by play_games like any agent


class UniformPolicy(nn.Module):
    """Equal logits for every action: sampled, a uniformly random policy. No parameters."""

    num_actions: int

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> Any:
        from attnjax.model.networks import AgentOutput

        zeros = jnp.zeros((obs.shape[0],), jnp.float32)  # [B]
        return AgentOutput(logits=jnp.zeros((obs.shape[0], self.num_actions), jnp.float32),
                           value=zeros, attention=None, activations={})


@dataclasses.dataclass(frozen=True)
class RandomAgentConfig:
    """What play_games reads of an agent's config."""

    env_id: str
    network: str = "random"
    attn_heads: int = 0


@dataclasses.dataclass(frozen=True)
class RandomAgent:
    config: RandomAgentConfig
    network: UniformPolicy
    params: dict


def random_agent(env_id: str, num_actions: int) -> RandomAgent:
    return RandomAgent(RandomAgentConfig(env_id), UniformPolicy(num_actions), {})


# --------------------------------------------------------------------------------------------
# pure functions over arrays


def argmax_statistics(attention: np.ndarray) -> dict[str, Any]:
    """attention [N, 7, 7, K] -> per head the most frequent argmax cell (row, col) and the share
    of frames it is the argmax; the share of frames on which all K heads' argmax is one cell
    (None for K = 1)."""
    n, rows, cols, k = attention.shape
    best = np.argmax(attention.reshape(n, -1, k), axis=1)  # [N, K] flat cell index
    modal, share = [], []
    for head in range(k):
        counts = np.bincount(best[:, head], minlength=rows * cols)  # [49]
        modal.append(list(divmod(int(np.argmax(counts)), cols)))
        share.append(float(counts.max() / n))
    agree = None if k < 2 else float(np.mean(np.all(best == best[:, :1], axis=1)))
    return {"modal_cell_per_head": modal, "modal_share_per_head": share,
            "heads_agree_share": agree}


def frame_entropy_per_head(attention: np.ndarray) -> list[float]:
    """attention [N, 7, 7, K] -> [K] mean entropy (nats) of each head over the frames."""
    from attnjax.model.networks import head_entropies

    per_frame = np.asarray(head_entropies(jnp.asarray(attention)))  # [N, K]
    return per_frame.mean(axis=0).astype(np.float64).tolist()


def collapse_verdict(modal_share_per_head: list[float], greedy_mean: float,
                     random_mean: float) -> dict[str, Any]:
    """COLLAPSE_RULE applied to the measured numbers."""
    stuck = all(s >= COLLAPSE_SHARE for s in modal_share_per_head)
    near_random = abs(greedy_mean - random_mean) <= COLLAPSE_POINTS
    return {"rule": COLLAPSE_RULE, "min_share_percent": 100 * COLLAPSE_SHARE,
            "max_points_from_random": COLLAPSE_POINTS, "heads_stuck": stuck,
            "greedy_near_random": near_random,
            "greedy_minus_random": greedy_mean - random_mean,
            "collapsed": bool(stuck and near_random)}


def score_summary(result: RunResult) -> dict[str, Any]:
    s = result.scores
    return {"games": len(s), "mean": float(s.mean()), "std": float(s.std(ddof=0)),
            "scores": s.tolist(), "lengths": result.lengths.tolist(),
            "attention_entropy_per_head": None if result.attention_entropy is None
            else result.attention_entropy.tolist()}


# --------------------------------------------------------------------------------------------
# the results folder: what may be replaced


def stamp(agent_step: int) -> dict[str, Any]:
    return {"command": STAMP_COMMAND, "argv": sys.argv[1:], "attnjax_version": attnjax_version(),
            "agent_step": agent_step}


def metrics_copy(run_dir: Path, step: int) -> bytes:
    """The run's metrics.jsonl lines up to the assessed step (a resumed run never logs past its
    newest checkpoint for long; lines past it describe no assessed parameters)."""
    import json

    kept = [line for line in (run_dir / METRICS_FILE).read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line)["global_step"] <= step]
    return "".join(kept).encode()


def run_copies(agent: Any) -> dict[str, bytes]:
    """What the results folder gets of the run (or published agent) folder: config.json, the
    metrics up to the assessed step and, where the folder has one, machine.json."""
    copies = {CONFIG_FILE: (agent.run_dir / CONFIG_FILE).read_bytes(),
              METRICS_FILE: metrics_copy(agent.run_dir, agent.step)}
    if (agent.run_dir / MACHINE_FILE).is_file():
        copies[MACHINE_FILE] = (agent.run_dir / MACHINE_FILE).read_bytes()
    return copies


def recorded_copies(folder: Path) -> dict[str, str]:
    """{file name: sha256} of the copies the stamped assessment.json in `folder` wrote ({} when
    there is none)."""
    target = folder / ASSESSMENT_FILE
    previous = read_json_file(target) if target.is_file() else None
    recorded = (previous or {}).get("copies")
    return recorded if isinstance(recorded, dict) else {}


def stale_copies(folder: Path, copies: dict[str, bytes]) -> list[Path]:
    """Files an earlier assessment in `folder` copied (its stamp records them, unchanged since)
    that this one will not write: a machine.json of a run that no longer has one. Any other
    file is left where it is."""
    return [folder / name for name, digest in sorted(recorded_copies(folder).items())
            if name not in copies and (folder / name).is_file()
            and digest == sha256((folder / name).read_bytes())]


def check_results_folder(folder: Path, copies: dict[str, bytes]) -> None:
    """UserError unless every file this run would write into `folder` is absent, this command's
    stamped assessment.json, a copy that stamp records (unchanged since), or already holds the
    bytes it would write (`provenance.check_replaceable`, the copies recognised by content)."""
    fix = "move it away or choose another --out"
    check_replaceable(folder / ASSESSMENT_FILE, STAMP_COMMAND, fix)
    recorded = recorded_copies(folder)
    for name, data in copies.items():
        check_replaceable(folder / name, STAMP_COMMAND, fix,
                          legacy=lambda path, data=data: path.read_bytes() == data
                          or recorded.get(path.name) == sha256(path.read_bytes()))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# one run


def assess_agent(agent: Any, games: int, frames: int, seed: int, envs: int,
                 bar: ProgressBar) -> dict[str, Any]:
    """Every measured number of one agent at its step (see the module docstring)."""
    from attnjax.metrics import ground_truth, localization
    from attnjax.metrics.report import network_outputs

    name = run_name(agent.config)
    bar.advance(0, info=f"{name}: greedy games")
    greedy = play_games([agent], games, seed, "greedy", envs)[0]
    bar.advance(1, info=f"{name}: sampled and random games")
    sampled, random = play_games(
        [agent, random_agent(agent.config.env_id, agent.num_actions)], games, seed, "sample",
        envs)
    bar.advance(1, info=f"{name}: localization frames")
    played = ground_truth.collect_frames(agent, frames, seed, "sample")
    bar.advance(1, info=f"{name}: localization")
    attention = network_outputs(agent, played.obs)["attention"]  # [F, 7, 7, K] or None
    objects, notes = ground_truth.ground_truth(played)
    entry: dict[str, Any] = {
        "evaluation": {"eval_seed": seed, "greedy": score_summary(greedy),
                       "sample": score_summary(sampled), "random": score_summary(random)},
        "frames": {"count": len(played.obs), "policy": "sample", "seed": seed, "stride": 4},
        "localization": {obj.name: localization.localize(obj.boxes, obj.visible, attention,
                                                         seed=seed)
                         for obj in objects},
        "localization_notes": notes,
        "attention": None, "collapse": None,
    }
    if attention is not None:
        stats = argmax_statistics(attention)
        entry["attention"] = {"entropy_per_head": frame_entropy_per_head(attention), **stats}
        entry["collapse"] = collapse_verdict(stats["modal_share_per_head"],
                                             entry["evaluation"]["greedy"]["mean"],
                                             entry["evaluation"]["random"]["mean"])
    bar.advance(1)
    return entry


def assessment(agent: Any, measured: dict[str, Any], copies: dict[str, bytes]) -> dict[str, Any]:
    """The stamped JSON of one run."""
    c = agent.config
    return {STAMP_KEY: stamp(agent.step), "run_name": run_name(c), "env_id": c.env_id,
            "network": c.network, "attn_coef": c.attn_coef, "seed": c.seed,
            "attn_heads": c.attn_heads, "global_step": agent.step,
            "total_timesteps": agent.step, "checkpoint": str(agent.path),
            "copies": {name: sha256(data) for name, data in copies.items()}, **measured}


def check_finished(agent: Any) -> None:
    """UserError unless the newest checkpoint is at the run's config.json total_timesteps."""
    from attnjax.training.runs import read_config

    total = read_config(agent.run_dir).total_timesteps
    if agent.step != total:
        raise UserError(f"{agent.run_dir}: its newest checkpoint is at step {agent.step:,}, not "
                        f"at its config's total_timesteps {total:,}; assess finished runs only")


# --------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", nargs="+", action="extend", required=True, metavar="RUN",
                        help="finished run folders written by train.py (one game)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="results folder: writes DIR/<run name>/assessment.json, "
                        "config.json, metrics.jsonl and the run's machine.json if it has one")
    parser.add_argument("--games", type=positive_int, default=30,
                        help="full games per policy (default 30)")
    parser.add_argument("--frames", type=positive_int, default=512,
                        help="frames the agent plays for localization and argmax statistics "
                        "(default 512, every 4th step)")
    parser.add_argument("--seed", type=int, default=0,
                        help="env seeds and action sampling, the same for every run (default 0)")
    parser.add_argument("--envs", type=positive_int, default=16,
                        help="games played at once per run (default 16)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from attnjax.agents.load import check_one_game, load_agent

    out = Path(args.out)
    agents = [load_agent(run) for run in args.run]
    check_one_game(agents, "assess the runs of one game per call")
    plans = []
    for agent in agents:  # every check before anything plays or is written
        check_finished(agent)
        copies = run_copies(agent)
        folder = out / run_name(agent.config)
        check_results_folder(folder, copies)
        plans.append((agent, folder, copies))
    writable_folder(out, "--out")
    with ProgressBar("assess", 4 * len(agents), enabled=not args.no_progress,
                     unit="parts") as bar:
        for agent, folder, copies in plans:
            measured = assess_agent(agent, args.games, args.frames, args.seed, args.envs, bar)
            folder.mkdir(parents=True, exist_ok=True)
            stale = stale_copies(folder, copies)
            for name, data in copies.items():
                write_text(folder / name, data.decode())
            write_json(folder / ASSESSMENT_FILE, assessment(agent, measured, copies))
            for path in stale:  # an earlier assessment's copy the run no longer has
                path.unlink()
            print(folder / ASSESSMENT_FILE)
    return 0
