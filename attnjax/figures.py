"""Paper figures and table from run folders' metrics.jsonl alone (no checkpoints, no W&B).

Writes, under --out: reward_curves.png/.pdf (the paper's Figure 2: per game, mean ± std over
seeds of the full-game return against agent steps, one colour, line style and marker per
lambda, the seed count in the legend), final_table.csv and
final_table.md (the paper's table: final return mean±std over seeds per lambda and game),
entropy_vs_reward.png/.pdf (the paper's Figure 3: final attention entropy against final return,
a dot per run and a cross per lambda at the mean over its seeds, the entropy in nats with a
dashed line at the uniform maximum K·ln 49 (`attnjax.baseline`); attention networks only) and
summary.json (every plotted number). With --evaluations (JSON files of `visualize.py evaluate`)
also evaluation_table.csv/.md: the table's layout holding each run's evaluated mean score (mean±std
over seeds), next to the training-metric table, not instead of it.

"Final" value of a run (episodic_return or attention_entropy), --final: `last` (default, as the
paper's notebook: `ep_reward_mean.iloc[-1]`, the last logged mean of the last 100 games, and
the last attention entropy) = its last non-null logged value; `window` = the mean of its
non-null values over the rows whose global_step lies in the last FRAC of the run's logged
global_step range, i.e. global_step >= last - FRAC * (last - first), FRAC =
--final-window-frac (default 0.1: the last 1M of 10M steps), or the last non-null value if the
window holds none. With no non-null value at all the final value is NaN (a warning names the
run) and the run is left out of the statistics. Spreads are population standard deviations
over seeds (ddof=0). PDFs embed their fonts as TrueType (pdf.fonttype 42).
Curves: each seed is linearly interpolated onto a common grid of --grid-points steps from 0 to
the smallest last global_step among the seeds; grid points before a seed's first non-null
return are NaN for that seed, and the mean/std at a point use the seeds that have a value there.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import textwrap
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from attnjax.baseline import uniform_entropy
from attnjax.errors import UserError, writable_folder

# The paper's column order; other games follow alphabetically.
PAPER_GAMES = ("BeamRider", "Breakout", "Enduro", "Frostbite", "MsPacman", "Seaquest")
CONFIG_KEYS = ("env_id", "attn_coef", "seed", "network")
METRIC_KEYS = ("global_step", "episodic_return", "attention_entropy")
NATURE_COLOUR = "0.35"
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


class FiguresWarning(UserWarning):
    """A run that the figures can only partly use (e.g. it never finished an episode)."""


# ----------------------------------------------------------------------------------------------
# loading


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

    @property
    def game(self) -> str:
        return game_name(self.env_id)

    @property
    def group(self) -> tuple[str, float]:
        return (self.network, self.attn_coef)


def game_name(env_id: str) -> str:
    """'Breakout-v5' -> 'Breakout' (also drops an 'ALE/' style prefix)."""
    return re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1])


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


def find_run_dirs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Run folders (folders holding config.json) named by or found below the given paths.

    A folder holding config.json is not searched further (its checkpoints stay out).
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"--runs {raw}: no such folder; pass a run folder or a folder of runs")
        if (path / "config.json").is_file():
            found[path.resolve()] = None
            continue
        for root, dirs, files in os.walk(path):
            if "config.json" in files:
                found[Path(root).resolve()] = None
                dirs[:] = []
            else:
                dirs.sort()
    if not found:
        shown = " ".join(str(p) for p in paths)
        raise UserError(f"no run folders (folders with config.json) under {shown}; "
                        "pass the --out-dir that train.py wrote to")
    return sorted(found)


def read_json_object(path: Path, text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{where} of {path} is not valid JSON ({err.msg}); fix or remove the "
                        "file, or leave that run out of --runs") from None
    if not isinstance(value, dict):
        raise UserError(f"{where} of {path} is not a JSON object; fix or remove the file, "
                        "or leave that run out of --runs")
    return value


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read one run folder's config.json and metrics.jsonl; UserError on anything malformed."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    metrics_path = run_dir / "metrics.jsonl"
    try:
        config = read_json_object(config_path, config_path.read_text(), "the content")
    except OSError as err:
        raise UserError(f"cannot read {config_path} ({err.strerror}); check the run folder "
                        "or leave it out of --runs") from None
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise UserError(f"{config_path} lacks {', '.join(missing)}; it was not written by "
                        "train.py, or leave that run out of --runs")
    env_id, coef, seed, network = (config[k] for k in CONFIG_KEYS)
    if not (isinstance(env_id, str) and is_number(coef) and isinstance(seed, int)
            and not isinstance(seed, bool) and isinstance(network, str)):
        raise UserError(f"{config_path}: env_id/network must be strings, attn_coef a number and "
                        "seed an integer; fix the file or leave that run out of --runs")
    heads = config.get("attn_heads", 2)
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
        raise UserError(f"{config_path}: attn_heads must be a positive integer, got {heads!r}; "
                        "fix the file or leave that run out of --runs")
    if not metrics_path.is_file():
        raise UserError(f"{run_dir} has config.json but no metrics.jsonl (the run has not "
                        "finished an iteration); wait for it or leave it out of --runs")
    try:
        text = metrics_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {metrics_path} ({err}); leave that run out of --runs") \
            from None
    lines = text.split("\n")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if number == len(lines) and not text.endswith("\n"):
            # The last line has no newline: a run still writing it. Skip it only if it is cut.
            try:
                json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{metrics_path}: skipped the unfinished last line",
                              FiguresWarning, stacklevel=2)
                continue
        row = read_json_object(metrics_path, line, f"line {number}")
        missing = [k for k in METRIC_KEYS if k not in row]
        if missing:
            raise UserError(f"line {number} of {metrics_path} lacks {', '.join(missing)}; it was "
                            "not written by train.py, or leave that run out of --runs")
        step = row["global_step"]
        if not isinstance(step, int) or isinstance(step, bool):
            raise UserError(f"line {number} of {metrics_path}: global_step must be an integer, "
                            f"got {step!r}")
        for key in ("episodic_return", "attention_entropy"):
            if row[key] is not None and not is_number(row[key]):
                raise UserError(f"line {number} of {metrics_path}: {key} must be a number or "
                                f"null, got {row[key]!r}")
        if rows and step <= rows[-1]["global_step"]:
            raise UserError(f"line {number} of {metrics_path}: global_step {step} does not "
                            f"increase (previous {rows[-1]['global_step']}); the file mixes two "
                            "runs — keep one of them")
        rows.append(row)
    if not rows:
        raise UserError(f"{metrics_path} is empty (the run has not finished an iteration); "
                        "wait for it or leave it out of --runs")

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        kept = [(r["global_step"], float(r[key])) for r in rows if r[key] is not None]
        steps = np.array([s for s, _ in kept], dtype=np.int64)
        values = np.array([v for _, v in kept], dtype=np.float64)
        return steps, values

    return_steps, returns = series("episodic_return")
    entropy_steps, entropies = series("attention_entropy")
    return RunRecord(path=run_dir, env_id=env_id, attn_coef=float(coef), seed=seed,
                     network=network, attn_heads=heads, first_step=rows[0]["global_step"],
                     last_step=rows[-1]["global_step"], return_steps=return_steps,
                     returns=returns, entropy_steps=entropy_steps, entropies=entropies)


def load_runs(paths: Sequence[str | os.PathLike]) -> list[RunRecord]:
    """All runs under `paths`; UserError if two folders hold the same game, network, λ and seed."""
    runs = [load_run(d) for d in find_run_dirs(paths)]
    seen: dict[tuple[str, str, float, int], Path] = {}
    for run in runs:
        key = (run.env_id, run.network, run.attn_coef, run.seed)
        if key in seen:
            raise UserError(f"{seen[key]} and {run.path} are both {run.env_id} {run.network} "
                            f"attn_coef={run.attn_coef:g} seed={run.seed}; pass --runs folders "
                            "that hold each run once")
        seen[key] = run.path
    return runs


# ----------------------------------------------------------------------------------------------
# pure statistics


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


# ----------------------------------------------------------------------------------------------
# table


def format_cell(mean: float | None, std: float | None) -> str:
    """'540±33', '1.3±0.4': the std to one significant digit, but never coarser than integers
    (as the paper's table), the mean to the same decimals, both rounded half up; without a
    spread (one seed) the mean to 3 significant digits ('1.25±0', '540±0'); 'n/a' without
    data."""
    if mean is None or std is None:
        return "n/a"
    if std > 0:
        decimals = 0 if std >= 1 else -math.floor(math.log10(std))
    else:
        decimals = max(0, 2 - math.floor(math.log10(abs(mean)))) if mean else 0

    def rounded(x: float) -> str:
        value = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
        text = f"{abs(value) if value == 0 else value:f}"  # no "-0.0"
        return text.rstrip("0").rstrip(".") if std == 0 and "." in text else text

    return f"{rounded(mean)}±{rounded(std)}"


def final_caption(summary: dict[str, Any]) -> str:
    """How the final values were taken, for the table's and Figure 3's captions."""
    if summary.get("final", "window") == "last":
        return ("Final = a run's last logged value (episodic_return: the mean of its last 100 "
                "finished games), as the paper's notebook took it.")
    return (f"Final = mean of a run's non-null values over the last "
            f"{100 * summary['final_window_frac']:g}% of its logged global_step range.")


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows (game, attn_coef, n_seeds, mean, std, network) in game then group order."""
    rows = []
    for game, entry in summary["games"].items():
        for g in entry["groups"]:
            fr = g["final_reward"]
            rows.append({"game": game, "attn_coef": g["attn_coef"], "n_seeds": fr["n"],
                         "mean": fr["mean"], "std": fr["std"], "network": g["network"]})
    return rows


def write_table_csv(summary: dict[str, Any], path: Path) -> None:
    fields = ["game", "attn_coef", "n_seeds", "mean", "std", "network"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in table_rows(summary):
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in fields})


def table_markdown(summary: dict[str, Any]) -> str:
    """The paper's layout: a row per lambda, a column per game, cells 'mean±std'.

    Cells whose seed count differs from the most common count carry '(n=k)'.
    """
    games = list(summary["games"])
    cells: dict[tuple[str, float], dict[str, tuple[str, int]]] = {}
    counts: list[int] = []
    for game, entry in summary["games"].items():
        for g in entry["groups"]:
            fr = g["final_reward"]
            cells.setdefault((g["network"], g["attn_coef"]), {})[game] = (
                format_cell(fr["mean"], fr["std"]), fr["n"])
            counts.append(fr["n"])
    usual = max(set(counts), key=lambda n: (counts.count(n), n)) if counts else 0
    lines = ["| λ | " + " | ".join(games) + " |", "|---" * (len(games) + 1) + "|"]
    for group in group_order(cells):
        row = []
        for game in games:
            text, n = cells[group].get(game, ("", 0))
            if not text:
                row.append("–")
                continue
            row.append(text if n == usual else f"{text} (n={n})")
        name = f"{group[1]:g}" if group[0] == "attention" else group_label(group)
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    seeds = "seed" if usual == 1 else "seeds"
    lines += ["", f"Final full-game return, mean±std (population standard deviation) over {usual} "
              f"{seeds} unless marked (n=k). {final_caption(summary)}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# plotting


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["pdf.fonttype"] = 42  # TrueType in PDFs (publishers refuse Type 3)
    matplotlib.rcParams["ps.fonttype"] = 42
    return plt


def group_styles(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per group label, the same in every figure: a colour (viridis over λ, grey for nature), a
    line style and a marker (so curves and dots that coincide stay visible), and the legend
    text with the seed count."""
    import matplotlib

    entries = [g for e in summary["games"].values() for g in e["groups"]]
    groups = group_order((g["network"], g["attn_coef"]) for g in entries)
    attention = [g for g in groups if g[0] == "attention"]
    cmap = matplotlib.colormaps["viridis"]
    styles: dict[str, dict[str, Any]] = {}
    for i, group in enumerate(groups):
        label = group_label(group)
        counts = sorted({len(g["seeds"]) for g in entries if g["label"] == label})
        n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        colour = (cmap(0.9 * attention.index(group) / max(len(attention) - 1, 1))
                  if group in attention else NATURE_COLOUR)
        styles[label] = {"color": colour, "ls": LINESTYLES[i % len(LINESTYLES)],
                         "marker": MARKERS[i % len(MARKERS)], "index": i,
                         "legend": f"{label} ({n} seed{'' if n == '1' else 's'})"}
    return styles


def _grid_of_axes(plt, n: int):
    ncols = min(3, max(n, 1))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.2 * ncols, 7.0), 3.3 * nrows + 0.9),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _legend_and_caption(fig, styles: dict[str, dict[str, Any]], labels: Sequence[str],
                        caption: str, lines: bool = True) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=styles[lab]["color"], marker=styles[lab]["marker"],
                      linestyle=styles[lab]["ls"] if lines else "", label=styles[lab]["legend"],
                      markerfacecolor=styles[lab]["color"] if lines else "none")
               for lab in labels]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5), frameon=False)
    caption = textwrap.fill(caption, int(16 * fig.get_figwidth()))  # 7 pt: ~18 chars an inch
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7)
    bottom = (caption.count("\n") + 1) * 9.5 / (72 * fig.get_figheight()) + 0.02
    fig.tight_layout(rect=(0, bottom, 1, 0.9))


def plot_reward_curves(summary: dict[str, Any]):
    """Figure 2: per game, mean ± std of the return over seeds for each group; each group's
    own line style, and markers at staggered points so that coinciding curves stay visible."""
    plt = _pyplot()
    styles = group_styles(summary)
    fig, axes = _grid_of_axes(plt, len(summary["games"]))
    labels: list[str] = []
    for ax, (game, entry) in zip(axes, summary["games"].items(), strict=False):
        for g in entry["groups"]:
            curve = g["curve"]
            grid = np.asarray(curve["grid"], dtype=float)
            mean = np.array(curve["mean"], dtype=float)
            std = np.array(curve["std"], dtype=float)
            style = styles[g["label"]]
            every = max(1, len(grid) // 8)
            offset = (style["index"] * every // max(len(styles), 1)) % every
            ax.plot(grid, mean, color=style["color"], ls=style["ls"], marker=style["marker"],
                    markevery=(offset, every), ms=4, lw=1.4, gid=f"mean:{g['label']}")
            ax.fill_between(grid, mean - std, mean + std, color=style["color"], alpha=0.15,
                            lw=0)
            if g["label"] not in labels:
                labels.append(g["label"])
        ax.set_title(game)
        ax.set_xlabel("agent steps")
        ax.set_ylabel("full-game return")
        ax.grid(alpha=0.3)
    caption = ("Line: mean over seeds of the full-game return (all lives, unclipped scores; "
               "the mean of the last 100 games); band: ± one standard deviation over seeds. "
               "Each seed is interpolated onto a common step grid.")
    _legend_and_caption(fig, styles, [lab for lab in styles if lab in labels], caption)
    return fig


def plot_entropy_vs_reward(summary: dict[str, Any]):
    """Figure 3: final attention entropy (x, nats) vs final return (y); dots per run, a cross
    per λ, a dashed line at the entropy of uniform attention (K·ln 49, the maximum).

    Dots carry gid 'dots:<label>', crosses 'cross:<label>' (PathCollections from `scatter`),
    the uniform line 'uniform:<K>'.
    """
    plt = _pyplot()
    styles = group_styles(summary)
    games = {game: [g for g in entry["groups"] if g["network"] == "attention"]
             for game, entry in summary["games"].items()}
    games = {game: groups for game, groups in games.items() if groups}
    fig, axes = _grid_of_axes(plt, len(games))
    labels: list[str] = []
    for ax, (game, groups) in zip(axes, games.items(), strict=False):
        for g in groups:
            points = np.array([(p["final_entropy"], p["final_reward"]) for p in g["runs"]
                               if p["final_entropy"] is not None
                               and p["final_reward"] is not None]).reshape(-1, 2)
            style = styles[g["label"]]
            # hollow dots and crosses shrinking with the group's index: coinciding ones show
            ax.scatter(points[:, 0], points[:, 1], facecolors="none", linewidths=1.3,
                       s=max(20, 70 - 20 * style["index"]),
                       edgecolors=[style["color"]], marker=style["marker"],
                       gid=f"dots:{g['label']}")
            if g["cross"] is not None:
                size = max(40, 160 - 40 * style["index"])
                ax.scatter([g["cross"][0]], [g["cross"][1]], color=style["color"], marker="x",
                           s=size, linewidths=2.0, gid=f"cross:{g['label']}", zorder=3)
            if g["label"] not in labels:
                labels.append(g["label"])
        heads_used = sorted({k for g in groups for k in g.get("attn_heads", [2])})
        most = max(uniform_entropy(max(heads_used)), ax.get_xlim()[1])
        ax.set_xlim(0.0, 1.04 * most)  # entropy runs from 0 (one cell) to uniform
        for heads in heads_used:
            ax.axvline(uniform_entropy(heads), color="0.3", ls="--", lw=1.0, gid=f"uniform:{heads}")
        top_axis = ax.secondary_xaxis("top")  # names the dashed lines above the plot
        top_axis.set_xticks([uniform_entropy(k) for k in heads_used],
                            labels=[f"uniform K={k}" for k in heads_used], fontsize=7)
        ax.set_title(game)
        ax.set_xlabel("final attention entropy (nats)")
        ax.set_ylabel("final full-game return")
        ax.grid(alpha=0.3)
    caption = (f"{final_caption(summary)} Entropy: summed over the K attention heads. Dots: "
               "runs; crosses: mean over seeds per λ. Dashed: uniform attention, K·ln 49 nats "
               "(7.78 for K = 2), the most there can be; further left = attention on fewer "
               "cells. Attention networks only.")
    _legend_and_caption(fig, styles, [lab for lab in styles if lab in labels], caption,
                        lines=False)
    return fig


# ----------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR",
                        help="run folders, or folders searched recursively for them")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    parser.add_argument("--final", choices=FINALS, default="last",
                        help="a run's final return and entropy (table, Figure 3): last = its last "
                        "logged value, as the paper (default); window = the mean over the last "
                        "--final-window-frac of its logged steps")
    parser.add_argument("--final-window-frac", type=float, default=0.1, metavar="FRAC",
                        help="with --final window: the mean over the last FRAC of each run's "
                        "logged steps (default 0.1)")
    parser.add_argument("--grid-points", type=int, default=100, metavar="N",
                        help="points of the common step grid of the reward curves (default 100)")
    parser.add_argument("--evaluations", nargs="+", default=None, metavar="JSON",
                        help="`visualize.py evaluate` files: also write evaluation_table.md/.csv "
                        "of the evaluated scores, next to the training-metric table")


def make_figures(run_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                 final_window_frac: float = 0.1, grid_points: int = 100,
                 final: str = "last") -> list[Path]:
    """Load the runs, write every output under `out`, return the paths written."""
    runs = load_runs(run_paths)
    summary = summarize(runs, final_window_frac, grid_points, final)
    out = Path(out)
    writable_folder(out, "--out")
    written: list[Path] = []
    plt = _pyplot()
    for name, plot in (("reward_curves", plot_reward_curves),
                       ("entropy_vs_reward", plot_entropy_vs_reward)):
        if name == "entropy_vs_reward" and not any(
                g["network"] == "attention" for e in summary["games"].values()
                for g in e["groups"]):
            warnings.warn("no attention-network runs: entropy_vs_reward is not drawn",
                          FiguresWarning, stacklevel=2)
            continue
        fig = plot(summary)
        for ext in ("png", "pdf"):
            fig.savefig(out / f"{name}.{ext}", dpi=150)
            written.append(out / f"{name}.{ext}")
        plt.close(fig)
    write_table_csv(summary, out / "final_table.csv")
    (out / "final_table.md").write_text(table_markdown(summary))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    written += [out / "final_table.csv", out / "final_table.md", out / "summary.json"]
    return written


def main(args: argparse.Namespace) -> int:
    from attnjax.evaluation_table import load_evaluations, write_evaluation_tables

    evaluations = load_evaluations(args.evaluations) if args.evaluations else None  # checked first
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FiguresWarning)
        try:
            written = make_figures(args.runs, args.out, args.final_window_frac, args.grid_points,
                                   final=args.final)
        finally:
            for w in caught:
                if issubclass(w.category, FiguresWarning):
                    print(f"warning: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if evaluations:
        written += write_evaluation_tables(evaluations, Path(args.out))
    for path in written:
        print(path)
    return 0
