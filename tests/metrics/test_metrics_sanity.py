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
    result = S.model_randomization(agent.network, agent.params, frames.obs, config, seed=0,
                                   progress=calls.append)
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
