"""attnjax.metrics.sanity: rank correlation and SSIM with known answers, which layers each
randomization step re-draws, and the checks on the trained Quadrant-v0 agent (randomizing no
layer gives correlation 1, randomizing all layers drops the gradient map's clearly)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from attnjax.metrics import sanity as S

RNG = np.random.default_rng(0)


def test_spearman_and_ssim_known_answers():
    a = RNG.random((5, 84, 84))
    np.testing.assert_allclose(S.spearman(a, a), 1.0)
    np.testing.assert_allclose(S.spearman(a, -a), -1.0)
    np.testing.assert_allclose(S.spearman(a, np.exp(3 * a)), 1.0)  # ranks only
    independent = S.spearman(a, RNG.random((5, 84, 84)))
    assert np.abs(independent).max() < 0.05
    np.testing.assert_allclose(S.ssim(a, a), 1.0)
    np.testing.assert_allclose(S.ssim(a, 7 * a + 2), 1.0)  # maps are scaled to [0, 1] first
    assert S.ssim(a, RNG.random((5, 84, 84))).max() < 0.1
    assert np.isnan(S.spearman(np.ones((1, 4, 4)), a[:1, :4, :4])).all()


def test_region_correlation_counts_only_the_region():
    """Two maps that agree inside a mask and are reversed outside it: ρ 1 in the region,
    about -1 on the whole frame; a frame with too few region pixels is left out (NaN)."""
    a = RNG.random((3, 84, 84))
    mask = np.zeros((3, 84, 84), bool)
    mask[:, 10:30, 40:60] = True
    b = np.where(mask, a, -a)
    np.testing.assert_allclose(S.masked_spearman(a, b, mask), 1.0)
    assert S.spearman(a, b).max() < -0.8
    few = mask.copy()
    few[1] = False
    few[1, 0, :S.MIN_REGION_PIXELS - 1] = True
    rho = S.masked_spearman(a, b, few)
    assert np.isnan(rho[1]) and np.allclose(rho[[0, 2]], 1.0)
    positive = np.where(mask, a, 1.0 - a)  # region_correlations ranks |maps|
    means = S.region_correlations(a, positive, {"whole": mask | True, "moving": few})
    assert means["moving"] == pytest.approx(1.0)
    assert means["whole"] < -0.8


def test_moving_pixels_are_those_that_differ_across_the_stack():
    obs = np.full((2, 4, 84, 84), 50, np.uint8)
    obs[0, 3, 20, 30] = 200  # a ball that appeared in the newest frame
    obs[1, :, 5, 5] = 90  # static in every frame: not moving
    moving = S.moving_pixels(obs)
    assert moving.shape == (2, 84, 84)
    assert moving[0, 20, 30] and moving[0].sum() == 1
    assert not moving[1].any()


def test_ranks_share_ties_like_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = RNG.integers(0, 6, (3, 50))  # many ties
    for row, ranks in zip(x, S.average_ranks(x), strict=True):
        np.testing.assert_allclose(ranks, stats.rankdata(row))
    y = RNG.integers(0, 6, (3, 50))
    for i in range(3):
        assert S.spearman(x[i:i + 1], y[i:i + 1])[0] == pytest.approx(
            stats.spearmanr(x[i], y[i]).statistic)


def test_cascade_redraws_one_more_group_per_step_from_the_top():
    from attnjax.model.networks import init_params, make_network

    net = make_network("attention", 4)
    trained, fresh = init_params(net, jax.random.PRNGKey(0)), init_params(net,
                                                                         jax.random.PRNGKey(1))
    groups = S.layer_groups(trained)
    assert [g for g, _ in groups] == [g for g, _ in S.LAYER_GROUPS]
    assert [g for g, _ in S.layer_groups(init_params(make_network("nature", 4),
                                                     jax.random.PRNGKey(0)))] == [
        "policy/value", "dense", "conv3", "conv2", "conv1"]

    def source(params, path):
        node_p, node_t = params, trained
        for name in path:
            node_p, node_t = node_p[name], node_t[name]
        return "trained" if node_p["kernel"] is node_t["kernel"] else "fresh"

    steps = S.cascade(trained, fresh)
    assert [s[0] for s in steps] == ["none", *[g for g, _ in groups]]
    for k, (_, redrawn, params) in enumerate(steps):
        assert len(redrawn) == k
        for g, (label, paths) in enumerate(groups):
            want = "fresh" if g < k else "trained"
            assert all(source(params, p) == want for p in paths), (k, label)
    for label, _, params in S.independent(trained, fresh):
        for g, paths in groups:
            want = "fresh" if g == label else "trained"
            assert all(source(params, p) == want for p in paths), (label, g)
    assert trained["encoder"]["conv1"]["kernel"] is not fresh["encoder"]["conv1"]["kernel"]


def test_randomization_checks_on_the_trained_quadrant_agent(quadrant_run):
    """Measured on 8 frames, target max_sum, 8 samples: re-drawing no layer and the layers
    above the attention (heads, dense) gives rank correlation 1; re-drawing everything brings
    the gradient's to ~0.1-0.2 and SmoothGrad's to ~0.2-0.3 (SSIM alike)."""
    from attnjax.agents.load import load_agent
    from attnjax.inspection.saliency.methods import SaliencyConfig
    from attnjax.metrics.ground_truth import collect_frames

    agent = load_agent(quadrant_run)
    frames = collect_frames(agent, 8, seed=4, stride=1)
    config = SaliencyConfig(methods=("gradient", "smoothgrad"), target="max_sum", samples=8)
    calls = []
    objects = np.zeros((8, 84, 84), bool)
    objects[:, 20:60, 20:60] = True
    result = S.model_randomization(agent.network, agent.params, frames.obs, config, seed=0,
                                   progress=calls.append, objects=objects)
    assert len(calls) == S.variant_count(agent.params)
    cascade = {step["randomized"]: step["methods"] for step in result["cascade"]}
    for label in ("none", "policy/value", "dense"):  # nothing the target reads changed
        for method in ("gradient", "smoothgrad"):
            assert cascade[label][method]["spearman"] > 0.999, (label, method)
            assert cascade[label][method]["ssim"] > 0.999, (label, method)
        assert cascade[label]["gradient"]["spearman_signed"] > 0.999
    everything = cascade["conv1"]
    assert everything["gradient"]["spearman"] < 0.5, everything
    assert everything["gradient"]["spearman_signed"] < 0.5, everything
    assert result["verdict"]["gradient"]["passes"]
    single = {step["randomized"]: step["methods"] for step in result["independent"]}
    assert single["dense"]["gradient"]["spearman"] > 0.999
    assert single["attention logits"]["gradient"]["spearman"] < 0.9
    # what the check is sensitive to: the whole-frame ρ of the sensitivity part is the
    # cascade's own (same maps), every region is measured, and two random tops over the same
    # conv1 are not the same network (their agreement is below 1)
    sens = result["sensitivity"]
    assert list(sens["regions"]) == ["whole", "moving", "objects"]
    assert sens["regions"]["objects"]["mean_pixels"] == 1600.0
    assert sens["first_layer"] == "conv1"
    comparisons = sens["comparisons"]
    above = cascade[S.layer_groups(agent.params)[-2][0]]
    for method in ("gradient", "smoothgrad"):
        assert comparisons["trained_vs_all_random"][method]["whole"] == pytest.approx(
            everything[method]["spearman"])
        assert comparisons["trained_vs_random_top"][method]["whole"] == pytest.approx(
            above[method]["spearman"])
        for key in S.COMPARISONS:
            for region in S.REGION_LABELS:
                rho = comparisons[key][method][region]
                assert rho is None or -1.0 <= rho <= 1.0, (key, method, region)
        assert comparisons["random_top_vs_random_top"][method]["whole"] < 0.999
