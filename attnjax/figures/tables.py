"""The paper's final-performance table (final_table.csv/.md) from a summary."""

from __future__ import annotations

import csv
import math
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from attnjax.figures.summary import group_label, group_order
from attnjax.files import replacing


def format_mean(mean: float) -> str:
    """A mean without a spread, to 3 significant digits ('1.25', '540'), as its table cell."""
    return format_cell(mean, 0.0).split("±")[0]


def format_cell(mean: float | None, std: float | None, n: int | None = None) -> str:
    """'540±33', '1.3±0.4': the std to one significant digit, but never coarser than integers
    (as the paper's table), the mean to the same decimals, both rounded half up; without a
    spread the mean to 3 significant digits ('1.25±0', '540±0'), and for a single seed (n = 1)
    no spread at all ('24.3 (1 seed)'); 'n/a' without data."""
    if mean is None or std is None:
        return "n/a"
    if n == 1:
        return f"{format_mean(mean)} (1 seed)"
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
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
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
                format_cell(fr["mean"], fr["std"], fr["n"]), fr["n"])
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
            row.append(text if n in (usual, 1) else f"{text} (n={n})")
        name = f"{group[1]:g}" if group[0] == "attention" else group_label(group)
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    seeds = "seed" if usual == 1 else "seeds"
    lines += ["", f"Final full-game return, mean±std (population standard deviation) over {usual} "
              f"{seeds} unless marked (n=k). {final_caption(summary)}"]
    return "\n".join(lines) + "\n"
