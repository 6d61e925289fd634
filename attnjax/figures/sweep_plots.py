"""The assessed sweep's own figure: the attention's hit rate on the target object (Breakout's
ball) against λ, a dot per seed and the mean per λ, next to the best fixed cell and uniform
attention scored on the same frames (`figures.sweep`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from attnjax.figures.plots import pyplot


def plot_hit_rate_vs_lambda(summary: dict[str, Any]):
    """x: λ as evenly spaced categories (0 and small λ apart), y: hit rate in [0, 1]."""
    plt = pyplot()
    sweep = summary["sweep"]
    rows = sweep["lambdas"]
    target = sweep["target_object"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = np.arange(len(rows))
    position = {row["attn_coef"]: i for i, row in enumerate(rows)}
    seeds = [(position[r["attn_coef"]], r["target_hit_rate"]) for r in sweep["runs"]
             if r["target_hit_rate"] is not None]
    if seeds:
        px, py = np.array(seeds).T
        ax.scatter(px, py, facecolors="none", edgecolors="C0", s=36, zorder=3, gid="dots",
                   label="attention, one seed (mean of the heads)")

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if row[key]["mean"] is None else row[key]["mean"]
                         for row in rows])

    ax.plot(x, series("target_hit_rate"), color="C0", marker="x", ms=9, lw=1.6,
            label="attention, mean over seeds", gid="mean")
    ax.plot(x, series("best_fixed_hit_rate"), color="C3", ls="--", marker="s", ms=4,
            label="best fixed cell (same frames, chosen in hindsight)", gid="best_fixed")
    ax.plot(x, series("uniform_hit_rate"), color="0.4", ls=":", marker="^", ms=4,
            label="uniform attention", gid="uniform")
    ax.set_xticks(x, [f"{row['attn_coef']:g}" for row in rows])
    ax.set_xlim(-0.4, len(rows) - 0.6)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlabel("λ (entropy penalty)")
    ax.set_ylabel(f"{target} hit rate")
    ax.set_title(f"{sweep['game']}: does the argmax cell cover the {target}?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", frameon=False)
    caption = (f"Hit rate: share of the {sweep['localization_frames']} frames each agent played "
               f"(where the {target} is visible) on which a head's argmax cell's receptive field "
               f"covers the {target}, averaged over the heads; at step {sweep['agent_step']:,}.")
    import textwrap

    fig.text(0.5, 0.01, textwrap.fill(caption, 100), ha="center", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
