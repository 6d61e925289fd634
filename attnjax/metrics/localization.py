"""Does the attention or the saliency land on the object? Scores against ground truth, each
next to two baselines scored the same way.

Why baselines: a cell's receptive field is 36 of the 84 observation pixels wide, so the
argmax cell of ANY map holds a small object fairly often, and objects favour some regions
(Breakout's paddle never leaves the bottom rows). Beating uniform random maps alone proves
little; the best FIXED guess (the one cell or pixel that would score highest over the same
frames, chosen with hindsight) is the bar a map must clear to show it follows the object.

Conventions. An object is a box (top, left, bottom, right), bottom/right exclusive, in
continuous 84x84 observation coordinates (pixel p covers [p, p + 1)); its pixels are those the
box overlaps (what an area resize of the screen smears it into). Attention cell (i, j) sees
observation rows 8i .. 8i + 35 and columns 8j .. 8j + 35 (`networks.CONV_GEOMETRY`); the cells
that "cover" an object are those whose receptive field contains all its pixels.

- hit rate: the head's argmax cell covers the object;
- mass ratio: attention on the covering cells / their share of the 49 cells (1 = no
  preference, 49 / #covering = all of it there);
- pointing game: the saliency map's peak pixel is within `radius` pixels (Euclidean, pixel
  centres) of an object pixel;
- energy share: the map's sum on the object's pixels / its total (chance: the object's area
  share).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnjax.model.baseline import GRID
from attnjax.model.networks import CONV_GEOMETRY, OBS_SIZE

RANDOM_DRAWS = 8  # random maps per frame for the uniform-random baseline


# --------------------------------------------------------------------------------------------
# geometry


def object_pixels(boxes: np.ndarray, size: int = OBS_SIZE) -> np.ndarray:
    """float [N, 4] boxes -> int [N, 4] (r0, c0, r1, c1): the pixel rows r0 .. r1 - 1 and
    columns c0 .. c1 - 1 the box overlaps, clipped to the image (at least one pixel)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    r0 = np.clip(np.floor(boxes[:, 0] + 1e-9), 0, size - 1)
    c0 = np.clip(np.floor(boxes[:, 1] + 1e-9), 0, size - 1)
    r1 = np.clip(np.ceil(boxes[:, 2] - 1e-9), r0 + 1, size)
    c1 = np.clip(np.ceil(boxes[:, 3] - 1e-9), c0 + 1, size)
    return np.stack([r0, c0, r1, c1], axis=1).astype(np.int64)


def object_masks(boxes: np.ndarray, size: int = OBS_SIZE) -> np.ndarray:
    """[N, 4] boxes -> bool [N, size, size]: the object's pixels."""
    px = object_pixels(boxes, size)
    idx = np.arange(size)
    rows = (idx[None] >= px[:, :1]) & (idx[None] < px[:, 2:3])  # [N, size]
    cols = (idx[None] >= px[:, 1:2]) & (idx[None] < px[:, 3:4])
    return rows[:, :, None] & cols[:, None, :]


def near_masks(boxes: np.ndarray, radius: float, size: int = OBS_SIZE) -> np.ndarray:
    """[N, 4] boxes -> bool [N, size, size]: pixels within `radius` of an object pixel."""
    px = object_pixels(boxes, size)
    idx = np.arange(size)[None]
    dy = np.maximum(np.maximum(px[:, :1] - idx, idx - (px[:, 2:3] - 1)), 0)  # [N, size]
    dx = np.maximum(np.maximum(px[:, 1:2] - idx, idx - (px[:, 3:4] - 1)), 0)
    return dy[:, :, None] ** 2 + dx[:, None, :] ** 2 <= radius**2 + 1e-9


def covering_cells(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] boxes -> bool [N, 7, 7]: cells whose receptive field contains all the object's
    pixels."""
    jump, field, _ = CONV_GEOMETRY["conv3"]
    px = object_pixels(boxes)
    start = np.arange(GRID)[None] * jump  # [1, 7]
    rows = (start <= px[:, :1]) & (px[:, 2:3] <= start + field)  # [N, 7]
    cols = (start <= px[:, 1:2]) & (px[:, 3:4] <= start + field)
    return rows[:, :, None] & cols[:, None, :]


# --------------------------------------------------------------------------------------------
# scores per frame


def attention_hits(attention: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """attention [N, 7, 7, K], cells [N, 7, 7] -> bool [N, K]: each head's argmax cell
    covers the object."""
    n, _, _, k = attention.shape
    best = np.argmax(attention.reshape(n, -1, k), axis=1)  # [N, K]
    return np.take_along_axis(cells.reshape(n, -1), best, axis=1)


def attention_mass_ratios(attention: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """attention [N, 7, 7, K] (each head sums to 1), cells [N, 7, 7] -> [N, K]: attention on
    the covering cells divided by their share of the cells (NaN where none covers)."""
    n, _, _, k = attention.shape
    mass = np.einsum("nck,nc->nk", attention.reshape(n, -1, k).astype(np.float64),
                     cells.reshape(n, -1).astype(np.float64))
    share = cells.reshape(n, -1).sum(axis=1) / (GRID * GRID)  # [N]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(share[:, None] > 0, mass / share[:, None], np.nan)


def peak_pixels(maps: np.ndarray) -> np.ndarray:
    """[N, H, W] -> int [N, 2] (row, column) of each map's maximum (first on ties)."""
    n, h, w = maps.shape
    flat = np.argmax(maps.reshape(n, -1), axis=1)
    return np.stack([flat // w, flat % w], axis=1)


def pointing_hits(maps: np.ndarray, boxes: np.ndarray, radius: float) -> np.ndarray:
    """maps [N, 84, 84], boxes [N, 4] -> bool [N]: the peak pixel lies within `radius`
    pixels of the object."""
    peaks = peak_pixels(np.abs(maps))
    near = near_masks(boxes, radius, maps.shape[-1])
    return near[np.arange(len(maps)), peaks[:, 0], peaks[:, 1]]


def energy_shares(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """maps [N, 84, 84], boxes [N, 4] -> [N]: share of each map's total |value| on the
    object's pixels (NaN for an all-zero map)."""
    a = np.abs(np.asarray(maps, np.float64))
    inside = (a * object_masks(boxes, maps.shape[-1])).sum(axis=(1, 2))
    total = a.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


# --------------------------------------------------------------------------------------------
# baselines


def random_attention(rng: np.random.Generator, n: int, heads: int) -> np.ndarray:
    """[n, 7, 7, heads] uniform random attention: each head uniform on the simplex of the 49
    cells (Dirichlet(1)), so every cell is equally likely to be the argmax."""
    g = rng.exponential(size=(n, GRID * GRID, heads))
    return (g / g.sum(axis=1, keepdims=True)).reshape(n, GRID, GRID, heads)


def random_maps(rng: np.random.Generator, n: int, size: int = OBS_SIZE) -> np.ndarray:
    """[n, size, size] maps of i.i.d. uniform [0, 1) pixels."""
    return rng.random((n, size, size))


def best_fixed_cell(cells: np.ndarray) -> dict[str, Any]:
    """The single cell that, attended with all the attention in every frame, scores highest:
    hit rate (frames it covers the object) and mass ratio (49 / #covering where it covers)."""
    n = len(cells)
    flat = cells.reshape(n, -1).astype(np.float64)  # [N, 49]
    hit = flat.mean(axis=0)
    count = flat.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = np.where(count > 0, flat * (GRID * GRID) / count, 0.0).mean(axis=0)
    hit_cell, mass_cell = int(np.argmax(hit)), int(np.argmax(mass))
    return {"hit_rate": float(hit[hit_cell]), "hit_cell": list(divmod(hit_cell, GRID)),
            "mass_ratio": float(mass[mass_cell]), "mass_cell": list(divmod(mass_cell, GRID))}


def best_fixed_pixel(boxes: np.ndarray, radius: float, size: int = OBS_SIZE) -> dict[str, Any]:
    """The single pixel that, as a map's only non-zero pixel in every frame, scores highest:
    pointing game (within `radius` of the object) and energy share (on the object)."""
    pointing = near_masks(boxes, radius, size).mean(axis=0)
    energy = object_masks(boxes, size).mean(axis=0)
    p, e = np.unravel_index(np.argmax(pointing), pointing.shape), np.unravel_index(
        np.argmax(energy), energy.shape)
    return {"pointing": float(pointing[p]), "pointing_pixel": [int(p[0]), int(p[1])],
            "energy_share": float(energy[e]), "energy_pixel": [int(e[0]), int(e[1])]}


# --------------------------------------------------------------------------------------------
# summary


def _mean(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def localize(boxes: np.ndarray, visible: np.ndarray, attention: np.ndarray | None = None,
             maps: dict[str, np.ndarray] | None = None, radius: float = 3.0,
             seed: int = 0) -> dict[str, Any]:
    """All localization scores of one agent for one object, means over the frames where the
    object is visible (the others are left out and counted).

    boxes [N, 4] observation coordinates, visible [N] bool, attention [N, 7, 7, K] (None for
    the nature network), maps: method -> [N, 84, 84] saliency maps. Baselines use the same
    frames; the random ones are averaged over RANDOM_DRAWS draws per frame (seeded).
    """
    visible = np.asarray(visible, bool)
    n_all = len(visible)
    boxes = np.asarray(boxes, np.float64)[visible]
    out: dict[str, Any] = {"frames": int(visible.sum()), "left_out": int(n_all - visible.sum()),
                           "radius": radius}
    if not visible.any():
        return out
    n = len(boxes)
    rng = np.random.default_rng(seed)
    cells = covering_cells(boxes)
    reps = np.repeat(np.arange(n), RANDOM_DRAWS)
    if attention is not None:
        att = np.asarray(attention)[visible]
        hits, mass = attention_hits(att, cells), attention_mass_ratios(att, cells)
        out["attention"] = {f"head{k}": {"hit_rate": _mean(hits[:, k]),
                                         "mass_ratio": _mean(mass[:, k])}
                            for k in range(att.shape[-1])}
        rand = random_attention(rng, n * RANDOM_DRAWS, 1)
        out["attention_baselines"] = {
            "random": {"hit_rate": _mean(attention_hits(rand, cells[reps])),
                       "mass_ratio": _mean(attention_mass_ratios(rand, cells[reps]))},
            "best_fixed": best_fixed_cell(cells),
        }
    if maps:
        out["saliency"] = {
            method: {"pointing": _mean(pointing_hits(m[visible], boxes, radius)),
                     "energy_share": _mean(energy_shares(m[visible], boxes))}
            for method, m in maps.items()}
        rand_maps = random_maps(rng, n * RANDOM_DRAWS)
        out["saliency_baselines"] = {
            "random": {"pointing": _mean(pointing_hits(rand_maps, boxes[reps], radius)),
                       "energy_share": _mean(energy_shares(rand_maps, boxes[reps]))},
            "best_fixed": best_fixed_pixel(boxes, radius),
        }
    return out
