"""Deep relevance trees: receptive fields against brute-force perturbation of the real network,
relevances summing to pre-activation minus bias, peaks against a brute-force search,
determinism, batching and the JSON round trip."""

from __future__ import annotations

import itertools
import json

import jax
import numpy as np
import pytest
from network_params import fast_params

from attnjax.errors import UserError
from attnjax.inspection.relevance import tree as R
from attnjax.inspection.relevance import tree_json as J
from attnjax.model.networks import make_network

HEADS = 2
# layer -> key of the activation whose units we watch for a change (pre-activations, so a ReLU
# cannot hide one)
WATCHED = {
    "conv1": "conv1_pre",
    "conv2": "conv2_pre",
    "conv3": "conv3_pre",
    "a1": "a1_pre",
    "attention": "attention_logits",
}


@pytest.fixture(scope="module")
def net():
    network = make_network("attention", num_actions=4, num_heads=HEADS)
    params = fast_params(network)
    apply = jax.jit(lambda p, o: network.apply({"params": p}, o))
    return network, params, apply


@pytest.fixture(scope="module")
def batch(net):
    _, params, apply = net
    obs = np.asarray(jax.random.randint(jax.random.PRNGKey(2), (3, 4, 84, 84), 0, 256), np.uint8)
    return obs, apply(params, obs)


def _changed(base, perturbed, key):
    """bool [P, H, W, C] of units whose value differs from the unperturbed frame."""
    a = np.asarray(base.activations[key])
    b = np.asarray(perturbed.activations[key])
    diff = np.abs(b - a)
    return diff > 1e-6 * max(1.0, float(np.abs(a).max()))


def test_receptive_fields_match_brute_force_perturbation(net, inverted_lines):
    """Perturb whole pixel rows (and columns) of the input: the rows of units that change in
    every layer are exactly those whose receptive field contains the perturbed row; then single
    pixels, corners included, checked in 2-D."""
    _, params, apply = net
    base, lines = inverted_lines  # rows, then columns
    ref = apply(params, base[None])
    out = apply(params, lines)
    for layer, key in WATCHED.items():
        changed = _changed(ref, out, key)  # [168, H, W, C]
        grid = changed.shape[1]
        units = np.arange(grid)
        top, _, size = R.receptive_field(layer, units, units)
        for r in range(84):
            expect = (top <= r) & (r < top + size)
            row_changed = changed[r].any(axis=(1, 2))  # which unit rows changed
            col_changed = changed[84 + r].any(axis=(0, 2))
            assert np.array_equal(row_changed, expect), (layer, "row", r)
            assert np.array_equal(col_changed, expect), (layer, "col", r)
            # a perturbed row reaches every column of the units it reaches
            assert changed[r][expect].any(axis=-1).all(), (layer, r)

    pixels = [(0, 0), (83, 83), (0, 83), (41, 37), (47, 8), (4, 80)]
    single = []
    for py, px in pixels:
        p = base.copy()
        p[:, py, px] = 255 - p[:, py, px]
        single.append(p)
    out = apply(params, np.stack(single))
    for layer, key in WATCHED.items():
        changed = _changed(ref, out, key).any(axis=-1)  # [P, H, W]
        grid = changed.shape[1]
        yy, xx = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        top, left, size = R.receptive_field(layer, yy, xx)
        for i, (py, px) in enumerate(pixels):
            expect = (top <= py) & (py < top + size) & (left <= px) & (px < left + size)
            assert np.array_equal(changed[i], expect), (layer, py, px)


def test_receptive_field_geometry():
    assert R.receptive_field("conv1", 3, 5) == (12, 20, 8)
    assert R.receptive_field("conv2", 8, 0) == (64, 0, 20)
    assert R.receptive_field("conv3", 6, 6) == (48, 48, 36)
    assert R.receptive_field("a1", 2, 1) == R.receptive_field("conv3", 2, 1)
    assert R.receptive_field("attention", 2, 1) == R.receptive_field("conv3", 2, 1)
    assert R.receptive_field("input", 83, 7) == (83, 7, 1)
    # the last unit of every layer ends on the last input pixel (VALID padding, no remainder)
    for layer in J.layer_table():
        top, _, size = R.receptive_field(layer["name"], layer["grid"] - 1, 0)
        assert top + size == 84, layer


@pytest.mark.parametrize("layer", ["attention", "a1", "conv3", "conv2", "conv1"])
def test_relevances_sum_to_pre_activation_minus_bias(net, batch, layer):
    _, params, _ = net
    _, out = batch
    pre = np.asarray(out.activations[R.SPECS[layer].pre_activation])
    rng = np.random.default_rng(1)
    b, h, w, c = pre.shape
    for _ in range(12):
        f, y, x, ch = (int(rng.integers(n)) for n in (b, h, w, c))
        contrib = R.unit_contributions(out.activations, params, layer, f, y, x, ch)
        spec = R.SPECS[layer]
        below = R.SPECS[spec.below].activation
        assert contrib.shape[:2] == (spec.kernel, spec.kernel)
        assert contrib.shape[2] == out.activations[below].shape[-1]
        total = contrib.sum() + R.unit_bias(params, layer, ch)
        np.testing.assert_allclose(total, pre[f, y, x, ch], rtol=2e-4, atol=2e-5)


def _check_tree(tree, out, params, frame):
    """Invariants of every node against the network's activations."""
    acts = {k: np.asarray(v) for k, v in out.activations.items()}
    attention = np.asarray(out.attention)
    config = tree.config
    depth_of = {layer: i for i, layer in enumerate(R.LAYERS)}
    for node in tree.nodes():
        spec = R.SPECS[node.layer]
        depth = depth_of[node.layer]
        value = attention if node.layer == "attention" else acts[spec.activation]
        assert node.activation == pytest.approx(float(value[frame, node.y, node.x, node.channel]))
        if spec.pre_activation:
            pre = float(acts[spec.pre_activation][frame, node.y, node.x, node.channel])
            assert node.pre_activation == pytest.approx(pre)
        assert node.rf == R.receptive_field(node.layer, node.y, node.x)
        if node.layer == config.leaf_layer:
            assert node.children == ()
            assert node.input_total is None
            continue
        assert node.input_total + R.unit_bias(params, node.layer, node.channel) == pytest.approx(
            node.pre_activation, rel=2e-4, abs=2e-5
        )
        assert 0 < len(node.children) <= config.keep(depth)
        contrib = R.unit_contributions(acts, params, node.layer, frame, node.y, node.x,
                                       node.channel)
        flat = np.sort(contrib.ravel())[::-1]
        rel = [c.relevance for c in node.children]
        # the kept children are the strongest inputs, strongest first
        np.testing.assert_allclose(rel, flat[: len(rel)], rtol=1e-9)
        for i, child in enumerate(node.children):
            assert child.id == f"{node.id}.{i}"
            assert child.layer == spec.below
            dy = child.y - node.y * spec.stride
            dx = child.x - node.x * spec.stride
            assert 0 <= dy < spec.kernel and 0 <= dx < spec.kernel
            assert contrib[dy, dx, child.channel] == pytest.approx(child.relevance)
            # a child's square lies inside its parent's
            top, left, size = child.rf
            assert node.rf[0] <= top and top + size <= node.rf[0] + node.rf[2]
            assert node.rf[1] <= left and left + size <= node.rf[1] + node.rf[2]


def test_tree_nodes_are_the_strongest_inputs_and_sum_correctly(net, batch):
    _, params, _ = net
    _, out = batch
    config = R.TreeConfig(num_peaks=2, branching=(3, 2, 2, 2, 2), leaf_layer="input")
    trees = R.relevance_trees(out, params, config)
    assert len(trees) == 3
    for frame, tree in enumerate(trees):
        assert tree.roots, "every head has at least one peak"
        heads = [r.channel for r in tree.roots]
        assert heads == sorted(heads)
        mask = R.peak_mask(np.asarray(out.attention))[frame]
        for root in tree.roots:
            assert root.layer == "attention" and root.relevance is None
            assert mask[root.y, root.x, root.channel]
        leaves = [n for n in tree.nodes() if not n.children]
        assert {n.layer for n in leaves} == {"input"}
        assert all(n.rf[2] == 1 for n in leaves)
        _check_tree(tree, out, params, frame)


def test_branching_shrinks_with_depth_and_leaf_layer_sets_depth(net, batch):
    _, params, _ = net
    _, out = batch
    config = R.TreeConfig(num_peaks=1, branching=(4, 3, 2, 1))
    tree = R.relevance_trees(out, params, config)[0]
    assert len(tree.roots) == HEADS
    counts = {layer: 0 for layer in R.LAYERS}
    for node in tree.nodes():
        counts[node.layer] += 1
    # random init: every unit has positive inputs, so every node keeps its full quota
    assert counts == {"attention": 2, "a1": 8, "conv3": 24, "conv2": 48, "conv1": 48, "input": 0}
    shallow = R.relevance_trees(out, params, R.TreeConfig(num_peaks=1, leaf_layer="conv3"))[0]
    assert max(len(n.id.split(".")) for n in shallow.nodes()) == 3
    assert {n.layer for n in shallow.nodes() if not n.children} == {"conv3"}


def test_rank_by_magnitude_keeps_strongest_inhibition_too(net, batch):
    _, params, _ = net
    _, out = batch
    tree = R.relevance_trees(out, params, R.TreeConfig(num_peaks=1, rank="abs"))[0]
    acts = {k: np.asarray(v) for k, v in out.activations.items()}
    for node in tree.nodes():
        if not node.children:
            continue
        contrib = R.unit_contributions(acts, params, node.layer, 0, node.y, node.x,
                                       node.channel).ravel()
        strongest = np.sort(np.abs(contrib))[::-1][: len(node.children)]
        np.testing.assert_allclose([abs(c.relevance) for c in node.children], strongest)
    assert any(n.relevance is not None and n.relevance < 0 for n in tree.nodes())


def _brute_force_peaks(amap):
    """Cells no neighbour beats in the order (value, earlier raster position first)."""
    h, w = amap.shape
    peaks = []
    for y, x in itertools.product(range(h), range(w)):
        me = (amap[y, x], -(y * w + x))
        beaten = False
        for ny, nx in itertools.product(range(y - 1, y + 2), range(x - 1, x + 2)):
            if (ny, nx) != (y, x) and 0 <= ny < h and 0 <= nx < w:
                beaten |= (amap[ny, nx], -(ny * w + nx)) > me
        if not beaten:
            peaks.append((-amap[y, x], y * w + x, y, x))
    return [(y, x) for _, _, y, x in sorted(peaks)]


@pytest.mark.parametrize("levels", [None, 4])  # continuous maps, and maps full of ties
def test_peaks_equal_brute_force(levels):
    rng = np.random.default_rng(3)
    maps = rng.random((16, 7, 7, 3))
    if levels:
        maps = np.floor(maps * levels) / levels
    n = 49
    peaks = R.attention_peaks(maps, num_peaks=n)
    for b, k in itertools.product(range(16), range(3)):
        expect = _brute_force_peaks(maps[b, :, :, k])
        got = [(int(y), int(x)) for y, x, v in zip(peaks.y[b, k], peaks.x[b, k],
                                                   peaks.valid[b, k], strict=True) if v]
        assert got == expect, (b, k)
        if levels is None:  # without ties: plain strict local maxima
            strict = [
                (y, x) for y, x in itertools.product(range(7), range(7))
                if all(maps[b, y, x, k] > maps[b, ny, nx, k]
                       for ny in range(max(0, y - 1), min(7, y + 2))
                       for nx in range(max(0, x - 1), min(7, x + 2)) if (ny, nx) != (y, x))
            ]
            assert sorted(got) == sorted(strict)
    top2 = R.attention_peaks(maps, num_peaks=2)
    assert np.array_equal(top2.y, peaks.y[..., :2]) and np.array_equal(top2.x, peaks.x[..., :2])


def test_peak_ties_are_deterministic():
    flat = np.full((1, 7, 7, 1), 0.5)
    peaks = R.attention_peaks(flat, num_peaks=3)
    assert peaks.valid[0, 0].tolist() == [True, False, False]
    assert (peaks.y[0, 0, 0], peaks.x[0, 0, 0]) == (0, 0)
    plateau = np.zeros((1, 7, 7, 1))
    plateau[0, 3, 3:5, 0] = 1.0  # two equal neighbours: only the earlier is a peak
    plateau[0, 6, 0, 0] = 0.25
    peaks = R.attention_peaks(plateau, num_peaks=4)
    got = [(int(y), int(x)) for y, x, v in zip(peaks.y[0, 0], peaks.x[0, 0], peaks.valid[0, 0],
                                               strict=True) if v]
    # the zero background is one big plateau: its first cell counts once, ranked last
    assert got == [(3, 3), (6, 0), (0, 0)]
    weak = R.attention_peaks(plateau, num_peaks=4, min_ratio=0.5)
    assert weak.valid[0, 0].tolist() == [True, False, False, False]


def test_same_input_same_tree_and_batching_is_invisible(net, batch):
    _, params, apply = net
    obs, out = batch
    config = R.TreeConfig(num_peaks=2)
    first = [J.tree_to_dict(t) for t in R.relevance_trees(out, params, config)]
    again = [J.tree_to_dict(t) for t in R.relevance_trees(apply(params, obs), params, config)]
    assert first == again
    for i in range(len(obs)):
        alone = R.relevance_trees(apply(params, obs[i : i + 1]), params, config)[0]
        assert J.tree_to_dict(alone, digits=5) == J.tree_to_dict(
            R.relevance_trees(out, params, config)[i], digits=5
        )


def test_json_round_trip(net, batch):
    _, params, _ = net
    _, out = batch
    trees = R.relevance_trees(out, params, R.TreeConfig(num_peaks=1))
    text = J.trees_to_json(trees, env_id="Quadrant-v0")
    doc = json.loads(text)
    assert doc["schema"] == J.SCHEMA_VERSION and doc["meta"] == {"env_id": "Quadrant-v0"}
    assert [layer["name"] for layer in doc["layers"]] == list(R.LAYERS)
    def walk(nodes):
        for node in nodes:
            yield node
            yield from walk(node["children"])

    ids = [node["id"] for node in walk(doc["frames"][0]["roots"])]  # counted in the JSON
    assert len(ids) == len(set(ids)) == trees[0].num_nodes > len(trees[0].roots)
    back = J.trees_from_json(text)
    assert [J.tree_to_dict(t) for t in back] == [J.tree_to_dict(t) for t in trees]
    assert back[0].roots == trees[0].roots
    rounded = json.loads(J.trees_to_json(trees, digits=3))
    assert len(repr(rounded["frames"][0]["roots"][0]["activation"])) <= 10


def test_bad_configs_are_user_errors():
    for kwargs in ({"num_peaks": 0}, {"branching": (2, 0)}, {"branching": ()},
                   {"leaf_layer": "conv4"}, {"rank": "max"}, {"min_peak_ratio": 2.0}):
        with pytest.raises(UserError):
            R.TreeConfig(**kwargs)


def test_nature_network_has_no_tree():
    network = make_network("nature", num_actions=4)
    params = fast_params(network)
    out = network.apply({"params": params}, np.zeros((1, 4, 84, 84), np.uint8))
    with pytest.raises(UserError, match="no attention"):
        R.relevance_trees(out, params)


# --------------------------------------------------------------------------------------------
# the paper preset: the original's DeepSaliencyTreeRenderer2 + k_means.filter_k


def _original_children(acts, params, layer, frame, y, x, channel, size):
    """The original's selection below one node, written from its code with the channel bug
    fixed: relevance |a w| / sum |a w| over the node's inputs; the 3 channels with the largest
    maximum relevance; in each, the k = floor(2 e^(0.06 size)) highest cells; of those, the
    top_x = floor(4 e^(-0.1 size) + 2) with the largest relevance^2 (size: the kernel of the
    layer the children are in). Returns [(dy, dx, channel)] strongest first."""
    contrib = R.unit_contributions(acts, params, layer, frame, y, x, channel)  # [k, k, C]
    rel = np.abs(contrib) / np.abs(contrib).sum()
    k = int(np.floor(2 * np.exp(0.06 * size)))
    top_x = int(np.floor(4 * np.exp(-0.1 * size) + 2))
    candidates = []
    for c in np.argsort(-rel.max(axis=(0, 1)), kind="stable")[:3]:
        cells = np.argsort(-rel[..., c].ravel(), kind="stable")[:k]
        for cell in cells:
            dy, dx = divmod(int(cell), rel.shape[1])
            if rel[dy, dx, c] > 0:  # peak_local_max needs a value above the map's minimum
                candidates.append((rel[dy, dx, c] ** 2, dy, dx, int(c)))
    candidates.sort(key=lambda t: -t[0])
    return [(dy, dx, c) for _, dy, dx, c in candidates[:top_x]]


def test_paper_preset_is_the_originals_tree_without_its_channel_bug(net, batch):
    from attnjax.inspection.presets import TREE_PRESETS

    _, params, _ = net
    obs, out = batch
    acts = {key: np.asarray(v) for key, v in out.activations.items()}
    attention = np.asarray(out.attention)
    paper = R.TreeConfig(**TREE_PRESETS["paper"])
    # the formulas at the kernel sizes of a1 (1), conv3 (3), conv2 (4), conv1 (8)
    assert paper.branching == (5, 4, 4, 3) and paper.channel_peaks == (2, 2, 2, 3)
    trees = R.relevance_trees(out, params, paper)
    chain = ["attention", "a1", "conv3", "conv2", "conv1"]
    kernel = {layer: R.SPECS[layer].kernel for layer in chain}

    def expected(frame, layer, y, x, channel):
        if layer == "conv1":
            return []
        below = chain[chain.index(layer) + 1]
        stride = R.SPECS[layer].stride
        kids = _original_children(acts, params, layer, frame, y, x, channel, kernel[below])
        return [(below, y * stride + dy, x * stride + dx, c,
                 expected(frame, below, y * stride + dy, x * stride + dx, c))
                for dy, dx, c in kids]

    def shape(node):
        return (node.layer, node.y, node.x, node.channel, [shape(c) for c in node.children])

    for frame, tree in enumerate(trees):
        # roots: each head's 2 highest cells, neighbours allowed (min_distance=0)
        want_roots = []
        for head in range(HEADS):
            cells = np.argsort(-attention[frame, ..., head].ravel(), kind="stable")[:2]
            want_roots += [(int(c) // 7, int(c) % 7, head) for c in cells]
        assert [(r.y, r.x, r.channel) for r in tree.roots] == want_roots
        for root in tree.roots:
            assert shape(root) == ("attention", root.y, root.x, root.channel,
                                   expected(frame, "attention", root.y, root.x, root.channel))
        # the original's bug (list index taken as the channel) is not reproduced
        channels = {n.channel for n in tree.nodes() if n.layer in ("a1", "conv3", "conv2")}
        assert not channels <= {0, 1, 2}
    # 3 a1 x 3 conv3 x 4 conv2 x 3 conv1 per root on this network
    assert trees[0].num_nodes == 4 * (1 + 3 + 9 + 36 + 108)


def test_tree_preset_flags_and_overrides():
    import visualize
    from attnjax.inspection.presets import TREE_PRESETS, tree_config_from_args

    def config(*flags):
        args = visualize.build_parser("tree").parse_args(["tree", "--run", "r", *flags])
        return tree_config_from_args(args)

    assert config() == R.TreeConfig()
    paper = config("--preset", "paper")
    assert paper == R.TreeConfig(**TREE_PRESETS["paper"])
    assert (paper.roots, paper.rank, paper.channels, paper.min_peak_ratio) == ("top", "abs", 3, 0)
    # the original's viewer kept one child per level: the paper tree with --branching 1
    chains = config("--preset", "paper", "--branching", "1", "--peaks", "1", "--leaf", "conv2")
    assert (chains.branching, chains.num_peaks, chains.leaf_layer) == ((1,), 1, "conv2")
    assert chains.channel_peaks == paper.channel_peaks
