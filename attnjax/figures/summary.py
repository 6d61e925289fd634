"""The numbers every figure and table shows, from RunRecords: final values, reward curves on a
common step grid, means and spreads over seeds, in the paper's game and lambda order."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from attnjax.errors import UserError
from attnjax.figures.records import FiguresWarning, RunRecord

# The paper's column order; other games follow alphabetically.
PAPER_GAMES = ("BeamRider", "Breakout", "Enduro", "Frostbite", "MsPacman", "Seaquest")


def game_order(games: Iterable[str]) -> list[str]:
    """The paper's six games in its order, then any others alphabetically."""
    games = set(games)
    return [g for g in PAPER_GAMES if g in games] + sorted(games - set(PAPER_GAMES))


def group_order(groups: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Attention networks by increasing lambda, then the nature baseline(s)."""
    return sorted(set(groups), key=lambda g: (g[0] != "attention", g[0], g[1]))


def group_label(group: tuple[str, float]) -> str:
    network, coef = group
    if network == "attention":
        return f"λ={coef:g}"
    return f"{network} CNN" if coef == 0 else f"{network} CNN λ={coef:g}"


def final_value(steps: np.ndarray, values: np.ndarray, first_step: int, last_step: int,
                frac: float) -> float:
    """Mean of `values` at steps >= last - frac*(last - first); else the last value; else NaN.

    `steps`/`values` hold the non-null points of one series, `first_step`/`last_step` the run's
    logged global_step range (all rows, including those where the series was null).
    """
    if len(values) == 0:
        return math.nan
    start = last_step - frac * (last_step - first_step)
    in_window = values[np.asarray(steps) >= start]
    return float(in_window.mean()) if len(in_window) else float(values[-1])


FINALS = ("last", "window")


def last_value(values: np.ndarray) -> float:
    """The last of a series' non-null values; NaN without any."""
    return float(values[-1]) if len(values) else math.nan


def interpolate_on_grid(steps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of (steps, values) at `grid`; NaN before the first step (or if empty).

    Past the last step the last value is held.
    """
    out = np.full(len(grid), np.nan)
    if len(values) == 0:
        return out
    out[:] = np.interp(grid, steps, values)
    out[grid < steps[0]] = np.nan
    return out


def nan_mean_std(stack: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (ddof=0) over `axis` ignoring NaN; NaN where all are NaN."""
    stack = np.asarray(stack, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stack, axis=axis), np.nanstd(stack, axis=axis, ddof=0)


def reward_curve(runs: Sequence[RunRecord], grid_points: int) -> dict[str, list[float]]:
    """The seeds' returns on a common grid 0..min(last_step): grid, mean, std (ddof=0)."""
    grid = np.linspace(0.0, min(r.last_step for r in runs), grid_points)
    stack = np.stack([interpolate_on_grid(r.return_steps, r.returns, grid) for r in runs])
    mean, std = nan_mean_std(stack)
    return {"grid": grid.tolist(), "mean": _json_floats(mean), "std": _json_floats(std)}


def _json_floats(values: Iterable[float]) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in values]


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def summarize(runs: Sequence[RunRecord], final_window_frac: float = 0.1,
              grid_points: int = 100, final: str = "last") -> dict[str, Any]:
    """Every number the figures and table show, as a JSON-ready dict (NaN written as null).

    {"final", "final_window_frac", "grid_points", "games": {game: {"env_id", "groups": [{"label",
    "network", "attn_coef", "seeds", "curve": {"grid", "mean", "std"}, "final_reward": {"n",
    "mean", "std"}, "final_entropy": {...} or null, "cross": [entropy, reward] or null, "runs":
    [{"seed", "run_dir", "final_reward", "final_entropy"}]}]}}}; groups are ordered as
    `group_order`, games as `game_order`. Warns (FiguresWarning) for runs without a final return.
    """
    if final not in FINALS:
        raise UserError(f"--final must be one of {', '.join(FINALS)}, got {final!r}")
    if not 0 < final_window_frac <= 1:
        raise UserError(f"--final-window-frac must be in (0, 1], got {final_window_frac}")
    if grid_points < 2:
        raise UserError(f"--grid-points must be at least 2, got {grid_points}")
    by_game: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_game.setdefault(run.game, []).append(run)
    games: dict[str, Any] = {}
    for game in game_order(by_game):
        game_runs = by_game[game]
        groups = []
        for group in group_order(r.group for r in game_runs):
            members = sorted((r for r in game_runs if r.group == group), key=lambda r: r.seed)
            per_run = []
            for r in members:
                if final == "last":
                    reward, entropy = last_value(r.returns), last_value(r.entropies)
                else:
                    reward = final_value(r.return_steps, r.returns, r.first_step, r.last_step,
                                         final_window_frac)
                    entropy = final_value(r.entropy_steps, r.entropies, r.first_step,
                                          r.last_step, final_window_frac)
                if math.isnan(reward):
                    warnings.warn(f"{r.path}: no episode finished, so it has no final return "
                                  "and is left out of the table and scatter", FiguresWarning,
                                  stacklevel=2)
                per_run.append({"seed": r.seed, "run_dir": str(r.path),
                                "final_reward": _json_float(reward),
                                "final_entropy": _json_float(entropy)})
            rewards = np.array([p["final_reward"] for p in per_run
                                if p["final_reward"] is not None])
            final_reward = {"n": len(rewards),
                            "mean": _json_float(rewards.mean()) if len(rewards) else None,
                            "std": _json_float(rewards.std(ddof=0)) if len(rewards) else None}
            # Scatter: runs with both a final entropy and a final reward (attention only).
            pairs = np.array([(p["final_entropy"], p["final_reward"]) for p in per_run
                              if p["final_entropy"] is not None and p["final_reward"] is not None])
            final_entropy = cross = None
            if group[0] == "attention" and len(pairs):
                final_entropy = {"n": len(pairs), "mean": float(pairs[:, 0].mean()),
                                 "std": float(pairs[:, 0].std(ddof=0))}
                cross = [float(pairs[:, 0].mean()), float(pairs[:, 1].mean())]
            groups.append({"label": group_label(group), "network": group[0],
                           "attn_coef": group[1], "seeds": [r.seed for r in members],
                           "attn_heads": sorted({r.attn_heads for r in members}),
                           "curve": reward_curve(members, grid_points),
                           "final_reward": final_reward, "final_entropy": final_entropy,
                           "cross": cross, "runs": per_run})
        games[game] = {"env_id": game_runs[0].env_id, "groups": groups}
    return {"final": final, "final_window_frac": final_window_frac, "grid_points": grid_points,
            "games": games}
