"""attention.png (`tracking.attention_figure`): values against the uniform baseline, one colour
scale shared by the heads, the 7x7 grid, a clear frame under near-uniform heads, ≥ 150 dpi."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnjax.model import baseline
from attnjax.model.baseline import GRID
from attnjax.training.tracking import ATTENTION_DPI, attention_figure


def test_baseline_numbers():
    assert baseline.CELLS == GRID * GRID
    assert pytest.approx(0.0204, abs=1e-4) == baseline.UNIFORM_CELL
    assert baseline.uniform_entropy(2) == pytest.approx(7.78, abs=5e-3)
    assert baseline.vs_uniform(0.31) == "0.31 = 15× uniform"
    assert baseline.vs_uniform(1 / 49) == "0.02 = 1.0× uniform"
    assert baseline.entropy_vs_uniform(3.1, 2) == "3.10 of 7.78 nats (uniform)"
    assert baseline.near_uniform(0.03) and not baseline.near_uniform(0.05)


def _obs() -> np.ndarray:
    obs = np.zeros((4, 84, 84), np.uint8)
    obs[:, 10:20, 5:80] = 140  # a band of "bricks"
    return obs


def _overlays(fig, heads: int) -> list[np.ndarray]:
    """The RGBA 7x7 overlay image of each head panel."""
    return [np.asarray(ax.get_images()[1].get_array()) for ax in fig.axes[1 : heads + 1]]


def test_attention_figure_states_the_baseline_at_150_dpi(tmp_path):
    import imageio.v2 as imageio
    import matplotlib.pyplot as plt

    att = np.full((GRID, GRID, 2), 0.51 / 48)
    att[3, 3, 0] = 0.49
    fig = attention_figure(_obs(), att, "run  step 12,288")
    try:
        assert len(fig.axes) == 4  # observation, 2 heads, the colour bar
        title = fig.axes[1].get_title()
        assert "peak 0.49 = 24× uniform" in title and f"of {math.log(49):.2f} nats" in title
        assert "near uniform" not in fig.axes[1].get_xlabel()
        bar = fig.axes[3]
        assert "uniform" in bar.get_ylabel()
        assert "uniform" in [t.get_text() for t in bar.get_yticklabels()]
        assert len(fig.axes[1].get_lines()) == 2 * (GRID - 1)  # the 7x7 grid
        path = tmp_path / "a.png"
        fig.savefig(path, dpi=ATTENTION_DPI)
        width = fig.get_figwidth()
    finally:
        plt.close(fig)
    assert ATTENTION_DPI >= 150
    assert imageio.imread(path).shape[1] >= 150 * width - 2


def test_attention_figure_one_colour_scale_for_all_heads():
    import matplotlib.pyplot as plt

    att = np.full((GRID, GRID, 2), 0.01)
    att[2, 2, 0] = 0.2
    att[4, 4, 1], att[5, 5, 1] = 0.2, 0.4
    fig = attention_figure(_obs(), att, "t")
    try:
        h0, h1 = _overlays(fig, 2)
        np.testing.assert_allclose(h0[2, 2], h1[4, 4])  # equal weights look the same
        assert h1[5, 5, 3] > h0[2, 2, 3] > 0  # head 0's peak is not stretched to its own max
    finally:
        plt.close(fig)


def test_near_uniform_heads_leave_the_frame_clear():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    att = rng.dirichlet(np.full(GRID * GRID, 400.0), size=2).T.reshape(GRID, GRID, 2)
    fig = attention_figure(_obs(), att, "untrained")
    try:
        for overlay in _overlays(fig, 2):
            assert overlay[..., 3].max() < 0.05  # no plaid over the frame
        assert "near uniform" in fig.axes[1].get_xlabel()
        assert "1.1× uniform" in fig.axes[1].get_title() or "1.2× uniform" in \
            fig.axes[1].get_title()
    finally:
        plt.close(fig)
    fig = attention_figure(_obs(), None, "nature")
    try:
        assert len(fig.axes) == 1
    finally:
        plt.close(fig)
