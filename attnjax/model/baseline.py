"""Uniform attention: the baseline that every picture of attention is read against.

A head that attends to nothing in particular spreads its weight evenly over the 7x7 cells: 1/49
≈ 0.020 per cell and ln 49 ≈ 3.89 nats of entropy. K heads together (`attention_entropy` in
metrics.jsonl sums the heads) have K·ln 49 nats at most, 7.78 for K = 2. The pictures state
values against it ("0.31 = 15× uniform", "3.10 of 7.78 nats") so that a reader sees at once
whether an agent attends to anything. Plain Python: the figures use it without loading JAX;
the network (`networks`) takes its grid from here.
"""

from __future__ import annotations

import math

GRID = 7  # attention cells per side: conv3's 7x7 units (networks.CONV_GEOMETRY)
CELLS = GRID * GRID  # attention cells per head
UNIFORM_CELL = 1.0 / CELLS  # each cell's weight under uniform attention
UNIFORM_HEAD_ENTROPY = math.log(CELLS)  # nats of one uniform head
NEAR_UNIFORM = 2.0  # a peak below this many times uniform shows no real focus


def uniform_entropy(heads: int) -> float:
    """The largest attention entropy of `heads` heads, in nats (all of them uniform)."""
    return heads * UNIFORM_HEAD_ENTROPY


def times_uniform(value: float) -> str:
    """'15×' for 0.31, '1.0×' for 0.02: a cell's weight as a multiple of uniform."""
    ratio = value / UNIFORM_CELL
    return f"{ratio:.0f}×" if ratio >= 9.95 else f"{ratio:.1f}×"


def vs_uniform(value: float) -> str:
    """'0.31 = 15× uniform'."""
    return f"{value:.2f} = {times_uniform(value)} uniform"


def near_uniform(peak: float) -> bool:
    """True when a head's largest cell is under NEAR_UNIFORM times the uniform weight."""
    return peak < NEAR_UNIFORM * UNIFORM_CELL


def entropy_vs_uniform(entropy: float, heads: int) -> str:
    """'3.10 of 7.78 nats (uniform)': an attention entropy against its uniform maximum."""
    return f"{entropy:.2f} of {uniform_entropy(heads):.2f} nats (uniform)"
