"""Drawing the paper's Figure 2 (reward curves) and Figure 3 (entropy against reward) from a
summary; every group keeps one colour, line style and marker across figures."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnjax.figures.summary import group_label, group_order
from attnjax.figures.tables import final_caption
from attnjax.model.baseline import uniform_entropy

NATURE_COLOUR = "0.35"
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["pdf.fonttype"] = 42  # TrueType in PDFs (publishers refuse Type 3)
    matplotlib.rcParams["ps.fonttype"] = 42
    return plt


def group_styles(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per group label, the same in every figure: a colour (plasma over λ, grey for nature), a
    line style and a marker (so curves and dots that coincide stay visible), and the legend
    text with the seed count."""
    import matplotlib

    entries = [g for e in summary["games"].values() for g in e["groups"]]
    groups = group_order((g["network"], g["attn_coef"]) for g in entries)
    attention = [g for g in groups if g[0] == "attention"]
    cmap = matplotlib.colormaps["plasma"]  # stops at orange: every λ stays visible on white
    styles: dict[str, dict[str, Any]] = {}
    for i, group in enumerate(groups):
        label = group_label(group)
        counts = sorted({len(g["seeds"]) for g in entries if g["label"] == label})
        n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        colour = (cmap(0.8 * attention.index(group) / max(len(attention) - 1, 1))
                  if group in attention else NATURE_COLOUR)
        styles[label] = {"color": colour, "ls": LINESTYLES[i % len(LINESTYLES)],
                         "marker": MARKERS[i % len(MARKERS)], "index": i,
                         "legend": f"{label} ({n} seed{'' if n == '1' else 's'})"}
    return styles


def random_agent_score(summary: dict[str, Any], game: str) -> float | None:
    """The random policy's mean score of an assessed sweep of `game` (`figures.sweep`)."""
    sweep = summary.get("sweep")
    return sweep["random_agent"]["mean"] if sweep and sweep["game"] == game else None


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
    # as many columns as fit the figure's width (10 pt: ~0.075 in a character, plus the
    # marker), the rows stacked above the axes
    longest = max((len(h.get_label()) for h in handles), default=1)
    ncol = max(1, min(len(handles), 5, int(fig.get_figwidth() // (0.075 * longest + 0.7))))
    rows = math.ceil(len(handles) / ncol)
    fig.legend(handles=handles, loc="upper center", ncol=ncol, frameon=False)
    caption = textwrap.fill(caption, int(16 * fig.get_figwidth()))  # 7 pt: ~18 chars an inch
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7)
    bottom = (caption.count("\n") + 1) * 9.5 / (72 * fig.get_figheight()) + 0.02
    top = 1 - (rows * 0.28 + 0.1) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, top))


def plot_reward_curves(summary: dict[str, Any]):
    """Figure 2: per game, mean ± std of the return over seeds for each group; each group's
    own line style, and markers at staggered points so that coinciding curves stay visible."""
    plt = pyplot()
    styles = group_styles(summary)
    fig, axes = _grid_of_axes(plt, len(summary["games"]))
    labels: list[str] = []
    banded = False
    for ax, (game, entry) in zip(axes, summary["games"].items(), strict=False):
        for g in entry["groups"]:
            curve = g["curve"]
            grid = np.asarray(curve["grid"], dtype=float) / 1e6  # millions of agent steps
            mean = np.array(curve["mean"], dtype=float)
            std = np.array(curve["std"], dtype=float)
            style = styles[g["label"]]
            every = max(1, len(grid) // 8)
            offset = (style["index"] * every // max(len(styles), 1)) % every
            ax.plot(grid, mean, color=style["color"], ls=style["ls"], marker=style["marker"],
                    markevery=(offset, every), ms=4, lw=1.4, gid=f"mean:{g['label']}")
            if len(g["seeds"]) > 1:
                banded = True
                ax.fill_between(grid, mean - std, mean + std, color=style["color"], alpha=0.15,
                                lw=0, gid=f"band:{g['label']}")
            if g["label"] not in labels:
                labels.append(g["label"])
        random = random_agent_score(summary, game)
        if random is not None:
            ax.axhline(random, color="0.2", ls=":", lw=1.2, gid="random")
        ax.set_title(game)
        ax.set_xlabel("agent steps (millions)")
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.set_ylabel("full-game return")
        ax.grid(alpha=0.3)
    caption = ("Line: mean over seeds of the full-game return (all lives, unclipped scores; "
               "the mean of the last 100 games)"
               + ("; band: ± one standard deviation over seeds" if banded else "")
               + ". Each seed is interpolated onto a common step grid."
               + (" Dotted: a uniformly random policy's mean score." if any(
                   random_agent_score(summary, game) is not None for game in summary["games"])
                  else ""))
    _legend_and_caption(fig, styles, [lab for lab in styles if lab in labels], caption)
    return fig


def plot_entropy_vs_reward(summary: dict[str, Any]):
    """Figure 3: final attention entropy (x, nats) vs final return (y); dots per run, a cross
    per λ, a dashed line at the entropy of uniform attention (K·ln 49, the maximum).

    Dots carry gid 'dots:<label>', crosses 'cross:<label>' (PathCollections from `scatter`),
    the uniform line 'uniform:<K>'.
    """
    plt = pyplot()
    styles = group_styles(summary)
    games = {game: [g for g in entry["groups"] if g["network"] == "attention"]
             for game, entry in summary["games"].items()}
    games = {game: groups for game, groups in games.items() if groups}
    fig, axes = _grid_of_axes(plt, len(games))
    labels: list[str] = []
    for ax, (game, groups) in zip(axes, games.items(), strict=False):
        ys: list[float] = []
        for g in groups:
            points = np.array([(p["final_entropy"], p["final_reward"]) for p in g["runs"]
                               if p["final_entropy"] is not None
                               and p["final_reward"] is not None]).reshape(-1, 2)
            style = styles[g["label"]]
            # hollow dots and crosses shrinking with the group's index: coinciding ones show
            ax.scatter(points[:, 0], points[:, 1], facecolors="none", linewidths=1.3,
                       s=max(20, 70 - 20 * style["index"]),
                       edgecolors=[style["color"]], marker=style["marker"],
                       gid=f"dots:{g['label']}", zorder=3)
            if g["cross"] is not None:  # thin and under the dots: a dot on it stays visible
                ax.scatter([g["cross"][0]], [g["cross"][1]], color=style["color"], marker="x",
                           s=90, linewidths=1.0, alpha=0.8, gid=f"cross:{g['label']}", zorder=2)
            ys += [*points[:, 1], *([g["cross"][1]] if g["cross"] is not None else [])]
            if g["label"] not in labels:
                labels.append(g["label"])
        heads_used = sorted({k for g in groups for k in g.get("attn_heads", [2])})
        most = max(uniform_entropy(max(heads_used)), ax.get_xlim()[1])
        ax.set_xlim(-0.04 * most, 1.04 * most)  # 0 (one cell) to uniform, off the edges
        if ys:  # a margin above and below the points, so none sits on an edge
            pad = 0.08 * max(max(ys) - min(ys), 1.0)
            ax.set_ylim(min(ys) - pad, max(ys) + pad)
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
