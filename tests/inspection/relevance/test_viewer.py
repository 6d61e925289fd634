"""The relevance-tree viewer without a browser: PNG encoder, JSON that cannot leave its script
tag, a self-contained page, the command line on a trained Quadrant run, Atari screens."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from network_params import fast_params

from attnjax.agents.load import Agent
from attnjax.cli import OneLineArgumentParser
from attnjax.errors import UserError
from attnjax.inspection.relevance import drawing as viewer_drawing
from attnjax.inspection.relevance import png as viewer_png
from attnjax.inspection.relevance import tree as R
from attnjax.inspection.relevance import tree_json as J
from attnjax.inspection.relevance import viewer as V
from attnjax.model.networks import make_network
from attnjax.training.config import TrainConfig


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="visualize.py tree", description=V.__doc__)
    V.add_arguments(parser)
    return parser.parse_args(argv)


def _decode_png(data: bytes) -> np.ndarray:
    return (mpimg.imread(io.BytesIO(data), format="png") * 255).round().astype(np.uint8)


def _embedded_json(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="tree-data">(.*?)</script>', page,
                      re.S)
    assert match, "no embedded data"
    return json.loads(match.group(1))


def _count(nodes: list[dict]) -> int:
    return sum(1 + _count(n["children"]) for n in nodes)


def _random_agent(env_id: str) -> Agent:
    network = make_network("attention", 4, 2)
    return Agent(config=TrainConfig(env_id=env_id, wandb_mode="disabled"), network=network,
                 params=fast_params(network), step=0, iteration=0,
                 num_actions=4, path=Path("runs/random/checkpoints/0"))


def test_png_encoder_round_trips():
    rng = np.random.default_rng(0)
    for shape in [(84, 84), (7, 13), (210, 160, 3), (1, 1, 3)]:
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        data = viewer_png.encode_png(image)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        decoded = _decode_png(data)
        if image.ndim == 2 and decoded.ndim == 3:
            decoded = decoded[..., 0]
        assert np.array_equal(decoded[..., :3] if image.ndim == 3 else decoded, image), shape
    with pytest.raises(ValueError):
        viewer_png.encode_png(np.zeros((4, 4), np.float32))


def test_json_cannot_break_out_of_its_script_tag():
    nasty = {
        "title": "</script><script>alert(1)</script>",
        "comment": "<!-- -->",
        "amp": "&amp; & <b>",
        "seps": "line\u2028para\u2029end",
        "unicode": "λ = 0.01 · ünïcode",
    }
    text = V.safe_json(nasty)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == nasty
    page = V.render_html({"meta": nasty, "layers": J.layer_table(), "frames": []})
    assert page.lower().count("</script") == 2  # the data tag and the code tag, nothing else
    assert "alert(1)" in page and "<script>alert(1)" not in page
    assert "&lt;/script&gt;" in page  # the <title> is HTML-escaped
    assert _embedded_json(page)["meta"] == nasty


@pytest.fixture(scope="module")
def quadrant_page(quadrant_run, tmp_path_factory):
    """The command line on a checkpoint of a real (short) training."""
    out = tmp_path_factory.mktemp("viewer")
    args = _parse(["--run", str(quadrant_run), "--frames", "4", "--out", str(out / "v.html"),
                   "--png", str(out / "png"), "--json", str(out / "trees.json"),
                   "--no-progress", "--title", "Quadrant <test> & co"])
    assert V.main(args) == 0
    return out


def test_cli_writes_one_self_contained_page(quadrant_page):
    page = (quadrant_page / "v.html").read_text(encoding="utf-8")
    # nothing is fetched: no URLs, no external scripts, styles or images, and a CSP saying so
    assert not re.search(r"https?:", page, re.I)
    assert "<script src" not in page and "<link rel=\"stylesheet\"" not in page
    assert "default-src 'none'" in page
    assert re.findall(r'\bsrc="([^"]*)"', page) == []  # images are set by the script
    assert "Quadrant &lt;test&gt; &amp; co" in page
    doc = _embedded_json(page)
    assert doc["schema"] == J.SCHEMA_VERSION
    assert doc["meta"]["env_id"] == "Quadrant-v0" and doc["meta"]["heads"] == 2
    assert len(doc["frames"]) == 4
    for frame in doc["frames"]:
        assert set(frame["images"]) == set(V.IMAGE_MODES)
        for mode, uri in frame["images"].items():
            assert uri.startswith("data:image/png;base64,")
            assert list(frame["image_sizes"][mode]) == [84, 84]
        assert frame["tree"]["roots"], "every frame has at least one peak"
        assert np.allclose(np.sum(frame["tree"]["attention"], axis=(0, 1)), 1.0, atol=1e-3)
    # the JSON export holds the same trees at full precision
    trees = J.trees_from_json((quadrant_page / "trees.json").read_text())
    assert len(trees) == 4
    for tree, frame in zip(trees, doc["frames"], strict=True):
        assert _count(frame["tree"]["roots"]) == tree.num_nodes
        assert [n.id for n in tree.nodes()] == [r["id"] for r in _walk(frame["tree"]["roots"])]
        rounded = J.tree_to_dict(tree, digits=V.VIEWER_DIGITS)
        assert rounded["roots"] == frame["tree"]["roots"]
    pngs = sorted((quadrant_page / "png").glob("frame_*.png"))
    assert [p.name for p in pngs] == [f"frame_{i:03d}.png" for i in range(4)]
    image = mpimg.imread(pngs[0])
    assert image.ndim == 3 and image.shape[0] > 300 and image.std() > 0.05


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node["children"])


def test_atari_screens_frames_and_static_drawing(tmp_path):
    agent = _random_agent("Breakout-v5")
    rec = V.record(agent, num_frames=3, seed=1, warmup=2, stride=2, policy="greedy")
    assert rec.screens.shape == (3, 210, 160, 3) and rec.obs.shape == (3, 4, 84, 84)
    assert rec.env_steps.tolist() == [2, 4, 6]
    assert rec.output.attention.shape == (3, 7, 7, 2)
    trees = R.relevance_trees(rec.output, agent.params)
    # the recorded activations are those of the recorded observations
    again = agent.apply(rec.obs)
    np.testing.assert_allclose(np.asarray(again.attention), rec.output.attention, rtol=1e-5)
    payload = V.viewer_payload(rec, trees, V.run_meta(agent))
    frame = payload["frames"][0]
    assert frame["image_sizes"] == {"screen": [210, 160], "obs": [84, 84], "stack": [84, 84]}
    screen = _decode_png(viewer_png.encode_png(rec.screens[0]))
    assert np.array_equal(screen[..., :3], rec.screens[0])
    path = viewer_drawing.draw_tree_png(trees[0], rec.screens[0], tmp_path / "tree.png", title="t")
    drawn = mpimg.imread(path)
    assert drawn.shape[0] > drawn.shape[1]  # the tall Atari screen keeps its aspect
    _check_tree_drawing(trees[0], tmp_path)


def _check_tree_drawing(tree, tmp_path):
    """Drawn over a plain brown screen without the heatmap (the brown's bounding box is where
    the 84x84 input lies): a peak's star in the attention colour at the centre of each root's
    receptive field, every layer of the tree in its colour (conv3 is hidden under a1), the rest
    of the screen brown."""
    import matplotlib.colors

    brown = np.array([100, 40, 10])
    screen = np.broadcast_to(brown, (210, 160, 3)).astype(np.uint8)
    path = viewer_drawing.draw_tree_png(tree, screen, tmp_path / "brown.png", heatmap=False)
    drawn = mpimg.imread(path)[..., :3] * 255
    rows, cols = np.nonzero(np.all(np.abs(drawn - brown) < 2, axis=-1))
    top, left = rows.min(), cols.min()
    scale_y, scale_x = (rows.max() + 1 - top) / 84, (cols.max() + 1 - left) / 84

    def rgb(layer):
        return np.asarray(matplotlib.colors.to_rgb(viewer_drawing.LAYER_COLORS[layer])) * 255

    for root in tree.roots:
        y, x, size = root.rf
        centre = drawn[int(top + (y + size / 2) * scale_y), int(left + (x + size / 2) * scale_x)]
        assert np.abs(centre - rgb("attention")).max() < 30, (root.id, centre)
    inside = drawn[top:rows.max() + 1, left:cols.max() + 1]
    # conv3 units lie under the a1 units above them (a 1x1 convolution): same centre, hidden
    for layer in {node.layer for node in tree.nodes()} - {"conv3"}:
        close = np.all(np.abs(inside - rgb(layer)) < 30, axis=-1)
        assert close.sum() > 20, layer
    assert np.all(np.abs(inside - brown) < 2, axis=-1).mean() > 0.2  # not painted over


def test_command_line_errors(tmp_path):
    with pytest.raises(SystemExit) as err:
        _parse(["--run", "x", "--branching", "4,0"])
    assert err.value.code == 2
    with pytest.raises(UserError, match="--frames must be at least 1, got 0"):
        V.main(_parse(["--run", "x", "--frames", "0"]))
    with pytest.raises(UserError, match="does not exist"):
        V.main(_parse(["--run", str(tmp_path / "missing"), "--out", str(tmp_path / "v.html")]))
    with pytest.raises(UserError, match=r"\.html"):
        V.main(_parse(["--run", str(tmp_path), "--out", str(tmp_path / "v.png")]))
    with pytest.raises(UserError, match="min-peak-ratio"):
        V.main(_parse(["--run", str(tmp_path), "--min-peak-ratio", "3"]))
    assert V.tree_config_from_args(_parse(["--run", "x"])) == R.TreeConfig()  # --preset attnjax


def test_assets_cannot_end_their_tags_early():
    for name, end in (("viewer.js", "</script"), ("viewer.css", "</style")):
        text = (V.ASSETS / name).read_text()
        assert end not in text.lower() and "<!--" not in text, name
    script = (V.ASSETS / "viewer.js").read_text()
    assert not re.search(r"https?://", script)
    assert "fetch(" not in script and "XMLHttpRequest" not in script and "import(" not in script
