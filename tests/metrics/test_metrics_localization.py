"""attnjax.metrics.localization on synthetic maps with known answers: a map exactly on the
object scores 1, a uniform map scores chance, the baselines are what they claim to be."""

from __future__ import annotations

import numpy as np
import pytest

from attnjax.inspection.render import cell_box_obs
from attnjax.metrics import localization as L

RNG = np.random.default_rng(0)


def random_boxes(n: int, size: float = 4.0) -> np.ndarray:
    corner = RNG.uniform(0, 84 - size, (n, 2))
    return np.concatenate([corner, corner + size], axis=1)


def test_object_pixels_cover_what_the_box_overlaps():
    px = L.object_pixels(np.array([[10.2, 20.0, 11.4, 22.0], [83.5, -3.0, 90.0, 0.5]]))
    assert px.tolist() == [[10, 20, 12, 22], [83, 0, 84, 1]]
    mask = L.object_masks(np.array([[10.2, 20.0, 11.4, 22.0]]))[0]
    assert mask.sum() == 4 and mask[10:12, 20:22].all()


def test_covering_cells_are_those_whose_field_holds_the_object():
    boxes = random_boxes(200, 6.0)
    cells = L.covering_cells(boxes)
    px = L.object_pixels(boxes)
    for n in range(0, 200, 17):
        for i in range(7):
            for j in range(7):
                top, left, bottom, right = cell_box_obs(i, j)
                inside = (top <= px[n, 0] and px[n, 2] <= bottom and left <= px[n, 1]
                          and px[n, 3] <= right)
                assert cells[n, i, j] == inside
    assert cells.reshape(200, -1).any(axis=1).all()  # a 6 px object always fits some field


def test_a_map_exactly_on_the_object_scores_one_and_a_uniform_map_scores_chance():
    boxes = random_boxes(64, 5.0)
    masks = L.object_masks(boxes).astype(np.float64)
    assert L.pointing_hits(masks, boxes, radius=0).all()
    np.testing.assert_allclose(L.energy_shares(masks, boxes), 1.0)
    uniform = np.ones((64, 84, 84))
    np.testing.assert_allclose(L.energy_shares(uniform, boxes), masks.sum(axis=(1, 2)) / 84**2)
    # a peak 3 px from the object: a hit with radius 3, a miss with radius 2
    peak = np.zeros((1, 84, 84))
    peak[0, 40, 50 + 3] = 1.0
    box = np.array([[38.0, 45.0, 41.0, 51.0]])  # pixels rows 38-40, columns 45-50
    assert L.pointing_hits(peak, box, 3).tolist() == [True]
    assert L.pointing_hits(peak, box, 2).tolist() == [False]
    assert np.isnan(L.energy_shares(np.zeros((1, 84, 84)), box)).all()


def test_attention_on_a_covering_cell_hits_and_uniform_attention_has_mass_ratio_one():
    boxes = random_boxes(50, 8.0)
    cells = L.covering_cells(boxes)
    att = np.full((50, 7, 7, 2), 0.001)
    for n in range(50):
        i, j = np.argwhere(cells[n])[0]
        att[n, i, j, 0] = 1.0  # head 0 on a covering cell
        i, j = np.argwhere(~cells[n])[0]
        att[n, i, j, 1] = 1.0  # head 1 elsewhere
    att /= att.sum(axis=(1, 2), keepdims=True)
    hits = L.attention_hits(att, cells)
    assert hits[:, 0].all() and not hits[:, 1].any()
    uniform = np.full((50, 7, 7, 1), 1 / 49)
    np.testing.assert_allclose(L.attention_mass_ratios(uniform, cells), 1.0)
    only = np.zeros((50, 7, 7, 1))
    only[..., 0] = cells / cells.sum(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(L.attention_mass_ratios(only, cells)[:, 0],
                               49 / cells.sum(axis=(1, 2)))


def test_random_baseline_is_chance_and_best_fixed_finds_a_fixed_object():
    boxes = random_boxes(400, 4.0)
    out = L.localize(boxes, np.ones(400, bool), attention=L.random_attention(RNG, 400, 2),
                     maps={"flat": np.ones((400, 84, 84))}, radius=2.0, seed=1)
    chance_hit = L.covering_cells(boxes).reshape(400, -1).mean()
    rand = out["attention_baselines"]["random"]
    assert rand["hit_rate"] == pytest.approx(chance_hit, abs=0.03)
    assert rand["mass_ratio"] == pytest.approx(1.0, abs=0.05)
    area = L.object_masks(boxes).mean()
    assert out["saliency_baselines"]["random"]["energy_share"] == pytest.approx(area, rel=0.05)
    assert out["saliency"]["flat"]["energy_share"] == pytest.approx(area, rel=1e-9)
    # an object that never moves: the best fixed guess is always right
    still = np.tile([[20.0, 30.0, 24.0, 34.0]], (30, 1))
    best = L.localize(still, np.ones(30, bool), attention=np.full((30, 7, 7, 1), 1 / 49),
                      maps={"m": np.ones((30, 84, 84))})
    assert best["attention_baselines"]["best_fixed"]["hit_rate"] == 1.0
    assert best["saliency_baselines"]["best_fixed"]["pointing"] == 1.0
    assert best["saliency_baselines"]["best_fixed"]["energy_share"] == 1.0
    r, c = best["saliency_baselines"]["best_fixed"]["energy_pixel"]
    assert 20 <= r < 24 and 30 <= c < 34


def test_invisible_frames_are_left_out_and_counted():
    boxes = random_boxes(10)
    visible = np.arange(10) < 7
    maps = L.object_masks(boxes).astype(float)
    maps[7:] = 0.0  # would score NaN / miss if they were counted
    out = L.localize(boxes, visible, maps={"m": maps})
    assert (out["frames"], out["left_out"]) == (7, 3)
    assert out["saliency"]["m"] == {"pointing": 1.0, "energy_share": 1.0}
    assert L.localize(boxes, np.zeros(10, bool))["frames"] == 0
