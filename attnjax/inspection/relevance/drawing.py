"""Relevance trees drawn over their frame with matplotlib: `visualize.py tree --png DIR`.

Why apart from the viewer: the viewer is HTML and JavaScript; these static pictures for papers
are matplotlib's, and only `--png` pays for importing it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnjax.files import replacing
from attnjax.inspection.relevance.tree import LAYERS, RelevanceTree

LAYER_COLORS = {  # the viewer's palette (viewer.js), for the PNGs
    "attention": "#ff4fd8",
    "a1": "#ffd166",
    "conv3": "#ef476f",
    "conv2": "#06d6a0",
    "conv1": "#4cc9f0",
    "input": "#f1f1f1",
}


def draw_tree_png(tree: RelevanceTree, image: np.ndarray, path: Path, title: str = "",
                  heatmap: bool = True, dpi: int = 160) -> Path:
    """The tree over the frame, as the original drew it: a dot at every node's receptive-field
    centre in its layer's colour, branches from parent to child (width ~ relevance share among
    siblings), the leaves' receptive-field squares, each peak's attention cell dashed; the
    attention heatmap (sum of heads) under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    h, w = image.shape[:2]
    fig_w = 6.0
    fig, ax = plt.subplots(figsize=(fig_w, fig_w * h / w + 0.9))
    extent = (0, 84, 84, 0)  # draw in 84x84 input coordinates whatever the picture's size
    ax.imshow(image, extent=extent, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255,
              interpolation="nearest")
    if heatmap:  # orange cells, opacity ~ attention (sum of heads) / its maximum
        att = np.asarray(tree.attention, dtype=np.float64).sum(axis=-1)
        overlay = np.zeros((*att.shape, 4))
        overlay[..., :3] = matplotlib.colors.to_rgb("#ffb703")
        overlay[..., 3] = 0.6 * att / max(att.max(), 1e-12)
        ax.imshow(overlay, extent=extent, interpolation="nearest")
    ax.set_aspect(h / w)
    ax.set_xlim(0, 84)
    ax.set_ylim(84, 0)

    segments, colors, widths = [], [], []
    dots: dict[str, list[tuple[float, float]]] = {layer: [] for layer in LAYERS}

    def centre(node) -> tuple[float, float]:
        top, left, size = node.rf
        return left + size / 2, top + size / 2

    def visit(node) -> None:
        c = centre(node)
        dots[node.layer].append(c)
        if not node.children:
            top, left, size = node.rf
            ax.add_patch(Rectangle((left, top), size, size, fill=False, lw=0.9,
                                   edgecolor=LAYER_COLORS[node.layer]))
            return
        strongest = max(abs(ch.relevance) for ch in node.children) or 1.0
        for child in node.children:
            segments.append([c, centre(child)])
            colors.append(LAYER_COLORS[child.layer])
            widths.append(0.5 + 2.0 * abs(child.relevance) / strongest)
            visit(child)

    cell = 84 / np.asarray(tree.attention).shape[0]
    for root in tree.roots:
        visit(root)
        ax.add_patch(Rectangle((root.x * cell, root.y * cell), cell, cell, fill=False, lw=1.4,
                               ls="--", edgecolor=LAYER_COLORS["attention"], zorder=4))
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=widths, alpha=0.85))
    sizes = {"attention": 160, "a1": 60, "conv3": 30, "conv2": 18, "conv1": 10, "input": 4}
    for depth, layer in enumerate(LAYERS):
        if dots[layer]:  # upper layers on top: they share centres with the layers below
            xy = np.asarray(dots[layer])
            ax.scatter(xy[:, 0], xy[:, 1], s=sizes[layer], c=LAYER_COLORS[layer],
                       edgecolors="black", linewidths=0.4, zorder=10 - depth,
                       marker="*" if layer == "attention" else "o")
    handles = [Line2D([], [], marker="*" if layer == "attention" else "o", ls="", ms=7,
                      color=LAYER_COLORS[layer], markeredgecolor="black", label=layer)
               for layer in LAYERS if dots[layer]]
    handles.append(Rectangle((0, 0), 1, 1, fill=False, ls="--",
                             edgecolor=LAYER_COLORS["attention"], label="peak cell"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=len(handles),
              fontsize=8, frameon=False, handletextpad=0.2, columnspacing=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path
