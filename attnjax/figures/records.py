"""Reading run folders for the figures: one RunRecord per run, through attnjax.training.runs
(config.json as a TrainConfig, metrics.jsonl checked line by line), null values dropped from each
series, with the run's assessment.json and machine.json where it has them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnjax.errors import UserError
from attnjax.model.envs import game_name
from attnjax.training import runs
from attnjax.training.machine import last_session_start, read_machine

ASSESSMENT_FILE = "assessment.json"  # written by attnjax.metrics.assess
CONFIG_KEYS = ("env_id", "attn_coef", "seed", "network")
METRIC_KEYS = ("global_step", "episodic_return", "attention_entropy")
FiguresWarning = runs.PartialRunWarning  # a run the figures can only partly use


@dataclass(frozen=True)
class RunRecord:
    """What the figures need from one run folder; null values are dropped from each series."""

    path: Path
    env_id: str
    attn_coef: float
    seed: int
    network: str
    attn_heads: int  # K
    first_step: int  # first logged global_step (any row)
    last_step: int  # last logged global_step (any row)
    return_steps: np.ndarray  # global_step of rows with a non-null episodic_return
    returns: np.ndarray
    entropy_steps: np.ndarray  # global_step of rows with a non-null attention_entropy
    entropies: np.ndarray
    assessment: dict | None = None  # assessment.json of `visualize.py assess`, if the run has one
    machine: dict | None = None  # machine.json of train.py (where it trained), if the run has one
    median_sps: float | None = None  # median agent steps/s of its last session's iterations

    @property
    def game(self) -> str:
        return game_name(self.env_id)

    @property
    def group(self) -> tuple[str, float]:
        return (self.network, self.attn_coef)


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read one run folder's config.json and metrics.jsonl; UserError on anything malformed."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir, required=CONFIG_KEYS)
    if config.attn_heads < 1:
        raise UserError(f"{run_dir / runs.CONFIG_FILE}: attn_heads must be a positive integer, "
                        f"got {config.attn_heads!r}; fix the file or leave that run out of --runs")
    rows = runs.read_metrics(run_dir, required=METRIC_KEYS, numbers=METRIC_KEYS[1:])

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        kept = [(r["global_step"], float(r[key])) for r in rows if r[key] is not None]
        steps = np.array([s for s, _ in kept], dtype=np.int64)
        values = np.array([v for _, v in kept], dtype=np.float64)
        return steps, values

    assessment = None
    if (run_dir / ASSESSMENT_FILE).is_file():
        path = run_dir / ASSESSMENT_FILE
        assessment = runs.read_json_object(path, path.read_text(), "the content")
    machine = read_machine(run_dir)
    # the speed of the iterations its machine label's session trained (a run resumed on another
    # machine: the last one's only)
    start = last_session_start(machine)
    sps = [r["sps"] for r in rows if runs.is_number(r.get("sps")) and r["global_step"] > start]
    return_steps, returns = series("episodic_return")
    entropy_steps, entropies = series("attention_entropy")
    return RunRecord(path=run_dir, env_id=config.env_id, attn_coef=float(config.attn_coef),
                     seed=config.seed, network=config.network, attn_heads=config.attn_heads,
                     first_step=rows[0]["global_step"],
                     last_step=rows[-1]["global_step"], return_steps=return_steps,
                     returns=returns, entropy_steps=entropy_steps, entropies=entropies,
                     assessment=assessment, machine=machine,
                     median_sps=float(np.median(sps)) if sps else None)


def load_runs(paths: Sequence[str | os.PathLike]) -> list[RunRecord]:
    """All runs under `paths`; UserError if two folders hold the same game, network, λ and seed."""
    records = [load_run(d) for d in runs.find_run_dirs(paths)]
    seen: dict[tuple[str, str, float, int], Path] = {}
    for run in records:
        key = (run.env_id, run.network, run.attn_coef, run.seed)
        if key in seen:
            raise UserError(f"{seen[key]} and {run.path} are both {run.env_id} {run.network} "
                            f"attn_coef={run.attn_coef:g} seed={run.seed}; pass --runs folders "
                            "that hold each run once")
        seen[key] = run.path
    return records
