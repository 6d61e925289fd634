"""Shared fixtures of the inspection tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def inverted_lines() -> tuple[np.ndarray, np.ndarray]:
    """(base, lines): a random uint8 frame stack [4, 84, 84] and [168, 4, 84, 84] copies of it
    with one pixel row (the first 84) or column (the last 84) inverted in all four frames;
    which units change shows each unit's receptive field."""
    base = np.random.default_rng(0).integers(40, 216, size=(4, 84, 84), dtype=np.uint8)
    lines = []
    for r in range(84):
        rows = base.copy()
        rows[:, r, :] = 255 - rows[:, r, :]
        lines.append(rows)
    for c in range(84):
        cols = base.copy()
        cols[:, :, c] = 255 - cols[:, :, c]
        lines.append(cols)
    return base, np.stack(lines)
