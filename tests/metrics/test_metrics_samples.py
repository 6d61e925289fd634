"""attnjax.metrics.samples: block plans, the exact merge of blocks' means and variances, the
Gini sharpness, the verdict sentence, and on the trained Quadrant-v0 agent: SmoothGrad's
rank correlation with a high-N reference map grows with N."""

from __future__ import annotations

import numpy as np
import pytest

from attnjax.metrics import samples as M


def test_block_plans_reach_every_n_with_few_compiled_sizes():
    plan = M.block_plan(M.N_GRID)
    assert np.cumsum([sum(b) for b in plan]).tolist() == list(M.N_GRID)
    assert {s for b in plan for s in b} | set(M.blocks(M.REFERENCE_N)) <= set(M.BLOCK_SIZES)
    assert M.blocks(3) == [1, 1, 1] and M.blocks(100) == [50, 50] and M.blocks(16) == [10, 5, 1]
    with pytest.raises(ValueError):
        M.block_plan((5, 5))
    assert M.block_count() == 3 * (sum(len(b) for b in plan) + len(M.blocks(M.REFERENCE_N)))


def test_merged_blocks_equal_the_mean_and_variance_of_all_samples():
    rng = np.random.default_rng(0)
    squared = rng.gamma(0.5, 2.0, (37, 3, 4, 5, 5))  # 37 samples of per-frame squared grads
    moments = M.Moments()
    start = 0
    for size in (1, 5, 10, 1, 20):
        block = squared[start:start + size]
        moments.add(size, block.mean(axis=0), block.var(axis=0))
        start += size
    maps = moments.maps()
    assert moments.n == 37
    np.testing.assert_allclose(maps["smoothgrad"], squared.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(maps["vargrad"], squared.var(axis=0), rtol=1e-9)


def test_gini_known_values_and_stable_n():
    flat, one = np.ones((1, 10, 10)), np.zeros((1, 10, 10))
    one[0, 3, 3] = 5.0
    assert M.gini(flat)[0] == pytest.approx(0.0, abs=1e-12)
    assert M.gini(one)[0] == pytest.approx(99 / 100)
    assert np.isnan(M.gini(np.zeros((1, 4, 4)))).all()
    two = np.zeros((1, 2, 2))
    two[0, 0, :] = 1.0
    assert M.gini(two)[0] == pytest.approx(0.5)
    assert M.stable_n((1, 2, 5, 10), (0.5, 0.95, 0.8, 0.97)) == 10  # must stay above
    assert M.stable_n((1, 2, 5), (0.5, 0.95, 0.97)) == 2
    assert M.stable_n((1, 2), (0.5, None)) is None


def test_claim_sentence_says_whether_sharpness_falls_with_an_interval_over_frames():
    falling = [[0.80, 0.82, 0.78, 0.81], [0.6] * 4, [0.50, 0.49, 0.52, 0.51]]
    curve = {"n": [1, 10, 100], "gini": [0.8, 0.6, 0.5], "gini_frames": falling,
             "correlation": [0.3, 0.8, 0.95], "stable_n": 100}
    holds = M.claim("smoothgrad", curve, 500)
    assert holds["holds"] is True and "claim holds" in holds["sentence"]
    assert "N = 100" in holds["sentence"] and "95% interval over 4 frames" in holds["sentence"]
    assert 0 < holds["fall"]["low"] < holds["fall"]["mean"] < holds["fall"]["high"]
    # a small mean fall that some frames reverse: the frames cannot tell
    mixed = [[0.60, 0.70, 0.50, 0.62], [0.6] * 4, [0.55, 0.72, 0.49, 0.61]]
    unsure = M.claim("vargrad", {**curve, "gini_frames": mixed, "stable_n": None}, 500)
    assert unsure["holds"] is None and "4 frames cannot tell" in unsure["sentence"]
    assert "never reach" in unsure["sentence"]
    rising = [falling[2], falling[1], falling[0]]  # every frame sharper at N = 100
    assert M.claim("vargrad", {**curve, "gini_frames": rising}, 500)["holds"] is False


def test_reference_correlation_grows_with_n_on_the_quadrant_agent(quadrant_run):
    """Measured on 8 frames (two frame seeds), sigma 0.15: SmoothGrad's rank correlation with
    an independent 100-sample reference goes 0.89-0.92 (N = 1) -> 0.96-0.97 (N = 50), i.e.
    1 - rho falls to 0.4-0.5 of its N = 1 value; VarGrad's 0.87-0.91 (N = 5) -> 0.90-0.92.
    Already high at N = 1: on Quadrant's black screens the squared gradient's ranks follow the
    receptive fields' large-scale envelope, which the noise does not move."""
    from attnjax.agents.load import load_agent
    from attnjax.inspection.saliency.methods import SaliencyConfig
    from attnjax.metrics.ground_truth import collect_frames, ground_truth

    agent = load_agent(quadrant_run)
    frames = collect_frames(agent, 8, seed=2, stride=1)
    objects, _ = ground_truth(frames)
    calls = []
    result = M.sample_count_sweep(agent.network, agent.params, frames.obs,
                                  SaliencyConfig(target="max_sum"), objects, seed=0,
                                  n_grid=(1, 5, 10, 50), spreads=(0.15,), reference_n=100,
                                  progress=calls.append)
    assert len(calls) == M.block_count((1, 5, 10, 50), (0.15,), 100)
    curve = result["curves"]["smoothgrad"]["0.15"]
    first, last = curve["correlation"][0], curve["correlation"][-1]
    assert last >= first + 0.02 and 1 - last <= 0.75 * (1 - first), curve["correlation"]
    var = result["curves"]["vargrad"]["0.15"]["correlation"]
    assert var[0] is None  # one sample has no variance
    assert var[-1] >= var[1] - 0.01, var
    assert set(result["claim"]) == {"smoothgrad", "vargrad"}
    assert all(isinstance(c["sentence"], str) for c in result["claim"].values())
    square = curve["localization"][-1]["square"]
    assert 0.0 <= square["energy_share"] <= 1.0 and 0.0 <= square["pointing"] <= 1.0
