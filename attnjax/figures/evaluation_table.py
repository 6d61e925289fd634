"""The evaluated-score table (`visualize.py figures --evaluations`): the final table's layout
holding each run's mean score from `visualize.py evaluate` JSON files, mean±std over seeds,
written next to the training-metric table as evaluation_table.csv/.md, not instead of it."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnjax.errors import UserError
from attnjax.figures.summary import game_order, group_label, group_order
from attnjax.figures.tables import format_cell
from attnjax.files import replacing, write_text
from attnjax.model.envs import game_name


def load_evaluations(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The run entries of evaluation JSON files (`evaluate.read_evaluation`); UserError for a
    malformed file, files of different policies, or one run (game, network, λ, seed) evaluated
    twice."""
    from attnjax.agents.evaluate import read_evaluation

    entries: list[dict[str, Any]] = []
    for raw in paths:
        entries += read_evaluation(Path(raw), "pass --evaluations files written by "
                                              "visualize.py evaluate")
    policies = sorted({e["policy"] for e in entries})
    if len(policies) > 1:
        raise UserError(f"--evaluations mix policies {' and '.join(policies)}; pass the files "
                        "of one policy")
    seen: dict[tuple, None] = {}
    for e in entries:
        key = (e["env_id"], e["network"], float(e["attn_coef"]), e["seed"])
        if key in seen:
            raise UserError(f"--evaluations hold {e['env_id']} {e['network']} "
                            f"attn_coef={e['attn_coef']:g} seed={e['seed']} twice; pass each "
                            "run's evaluation once")
        seen[key] = None
    return entries


def evaluation_rows(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tidy rows (game, attn_coef, network, n_seeds, mean, std, games) in game then group
    order: mean and population std (ddof=0) over seeds of each run's evaluated mean score."""
    groups: dict[tuple[str, tuple[str, float]], list[dict[str, Any]]] = {}
    for e in entries:
        group = (e["network"], float(e["attn_coef"]))
        groups.setdefault((game_name(e["env_id"]), group), []).append(e)
    rows = []
    for game in game_order(g for g, _ in groups):
        for group in group_order(grp for g, grp in groups if g == game):
            members = groups[(game, group)]
            means = np.array([e["mean"] for e in members], dtype=np.float64)
            rows.append({"game": game, "attn_coef": group[1], "network": group[0],
                         "n_seeds": len(means), "mean": float(means.mean()),
                         "std": float(means.std(ddof=0)),
                         "games": sorted({e["games"] for e in members})})
    return rows


def evaluation_table_markdown(entries: Sequence[dict[str, Any]]) -> str:
    """The paper's layout (a row per λ, a column per game) holding evaluated scores; the
    caption says how they were measured and that they are not the training metric."""
    rows = evaluation_rows(entries)
    games = game_order(r["game"] for r in rows)
    usual = max((r["n_seeds"] for r in rows), key=[r["n_seeds"] for r in rows].count)
    cells = {((r["network"], r["attn_coef"]), r["game"]): r for r in rows}
    lines = ["| λ | " + " | ".join(games) + " |", "|---" * (len(games) + 1) + "|"]
    for group in group_order(g for g, _ in cells):
        row = []
        for game in games:
            r = cells.get((group, game))
            text = "–" if r is None else format_cell(r["mean"], r["std"], r["n_seeds"])
            row.append(text if r is None or r["n_seeds"] in (usual, 1) else
                       f"{text} (n={r['n_seeds']})")
        name = f"{group[1]:g}" if group[0] == "attention" else group_label(group)
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    counts = sorted({n for r in rows for n in r["games"]})
    per_run = (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}")
    seeds = "seed" if usual == 1 else "seeds"
    lines += ["", f"Evaluated full-game score (`visualize.py evaluate`, policy "
              f"{entries[0]['policy']}, {per_run} games per run; not the training metric): "
              f"mean±std (population standard deviation) over {usual} {seeds} unless marked "
              "(n=k) of each run's mean score."]
    return "\n".join(lines) + "\n"


def write_evaluation_tables(entries: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """evaluation_table.csv and evaluation_table.md under `out`; the paths written."""
    fields = ["game", "attn_coef", "network", "n_seeds", "mean", "std", "games"]
    with replacing(out / "evaluation_table.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in evaluation_rows(entries):
            writer.writerow({**row, "games": " ".join(map(str, row["games"]))})
    write_text(out / "evaluation_table.md", evaluation_table_markdown(entries))
    return [out / "evaluation_table.csv", out / "evaluation_table.md"]
