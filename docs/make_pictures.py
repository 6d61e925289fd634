"""Draw the documentation pictures of the λ = 0 reference agent (agents/Breakout__attn0__s0):

- docs/viewer.png: `visualize.py tree --run agents/Breakout__attn0__s0 --frames 8` (the default
  tree options, env seed 0, sampled actions) opened in headless Chromium at 1500×950 px (Debian's
  /usr/bin/chromium; `bash .ci/install-browser.sh` installs it), head 0's strongest peak's first
  attention hidden unit pinned, screenshot of the first frame;
- docs/attention.png: the picture training writes as attention.png (tracking.attention_figure,
  titled with the run name and the agent's step) on a frame chosen by computation, not by eye:
  the agent plays env seed 0 greedily for --frames steps, the ball's ground truth comes from the
  emulator RAM (metrics.ground_truth), and of the frames where the ball is visible and every
  head's argmax cell covers it (metrics.localization.attention_hits) the one where the ball
  lies nearest the middle of the heads' heatmap squares is drawn.

Run from the repository root: `make docs-pictures`, or `.venv/bin/python docs/make_pictures.py
[viewer|attention] [--out DIR]`. The pictures go to runs/docs-pictures/ (copy them over docs/ to
update the documentation); each replaces its file only once it is completely written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from attnjax.files import replacing  # noqa: E402

AGENT = ROOT / "agents" / "Breakout__attn0__s0"
# drawn into runs/ by default: the committed docs/*.png change only when a maintainer copies
# the new pictures over them (a documentation command never replaces a shipped file)
DEFAULT_OUT = ROOT / "runs" / "docs-pictures"
VIEWER_PNG = "viewer.png"
ATTENTION_PNG = "attention.png"
VIEWER_FRAMES = 8
PINNED_NODE = "h0p0.0"  # head 0's strongest peak, its first attention hidden unit
SEED = 0
PICTURES = ("viewer", "attention")


def viewer_picture(out: Path = DEFAULT_OUT / VIEWER_PNG) -> None:
    """The viewer of 8 frames of the agent, screenshot with one node pinned."""
    from playwright.sync_api import sync_playwright

    from attnjax.cli import OneLineArgumentParser
    from attnjax.inspection.relevance import viewer
    from attnjax.inspection.relevance.browser import VIEWPORT, launch, open_viewer

    with tempfile.TemporaryDirectory() as folder:
        page_file = Path(folder) / "viewer.html"
        parser = OneLineArgumentParser(prog="visualize.py tree")
        viewer.add_arguments(parser)
        viewer.main(parser.parse_args([
            "--run", str(AGENT), "--frames", str(VIEWER_FRAMES), "--seed", str(SEED),
            "--out", str(page_file), "--no-progress"]))
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
                open_viewer(page, page_file)
                page.locator(f'#tree-svg .node[data-node-id="{PINNED_NODE}"] circle').click()
                page.mouse.move(5, 5)  # nothing hovered: the pinned node's card shows
                with replacing(out) as tmp:
                    page.screenshot(path=str(tmp), type="png")
            finally:
                browser.close()
    print(f"wrote {out}")


def ball_frame(attention: np.ndarray, ball) -> int:
    """Index of the frame to draw: of the frames where the ball is visible and every head's
    argmax cell covers it (its 36x36 receptive field holds the ball, as the localization
    metrics count a hit), the one where the ball lies nearest the middle of the 12x12 heatmap
    square the picture draws for that cell (the farther of the heads), so it shows inside it."""
    from attnjax.metrics.localization import attention_hits, covering_cells

    n, grid, _, heads = attention.shape  # [N, 7, 7, K]
    on_ball = ball.visible & attention_hits(attention, covering_cells(ball.boxes)).all(axis=1)
    if not on_ball.any():
        raise SystemExit("no frame where every head's argmax covers the ball; play more frames")
    best = np.argmax(attention.reshape(n, -1, heads), axis=1)  # [N, K] flat cell index
    square = 84 / grid  # the heatmap stretches the 7x7 cells over the 84x84 frame
    middle = (np.stack([best // grid, best % grid], axis=-1) + 0.5) * square  # [N, K, 2]
    centre = (ball.boxes[:, :2] + ball.boxes[:, 2:]) / 2  # [N, 2] (row, column)
    distance = np.linalg.norm(middle - centre[:, None], axis=-1).max(axis=1)  # [N]
    return int(np.argmin(np.where(on_ball, distance, np.inf)))


def attention_picture(frames: int, out: Path = DEFAULT_OUT / ATTENTION_PNG) -> None:
    """attention.png as training draws it, on the computed ball frame."""
    import matplotlib.pyplot as plt

    from attnjax.agents.load import load_agent
    from attnjax.metrics import ground_truth
    from attnjax.metrics.report import network_outputs
    from attnjax.training.runs import run_name
    from attnjax.training.tracking import ATTENTION_DPI, attention_figure

    agent = load_agent(str(AGENT))
    played = ground_truth.collect_frames(agent, frames, SEED, "greedy", stride=1)
    attention = network_outputs(agent, played.obs)["attention"]  # [N, 7, 7, K]
    objects, notes = ground_truth.ground_truth(played)
    ball = next((o for o in objects if o.name == "ball"), None)
    if ball is None:
        raise SystemExit(f"no ground truth of the ball: {'; '.join(notes)}")
    i = ball_frame(attention, ball)
    fig = attention_figure(played.obs[i], attention[i],
                           f"{run_name(agent.config)}  step {agent.step:,}")
    with replacing(out) as tmp:
        fig.savefig(tmp, dpi=ATTENTION_DPI, format="png")
    plt.close(fig)
    print(f"wrote {out}: env step {int(played.t[i])} of {len(played.t)} greedy steps, "
          f"ball visible on {int(ball.visible.sum())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pictures", nargs="*", metavar="viewer|attention",
                        help="which to draw (default both)")
    parser.add_argument("--frames", type=int, default=400,
                        help="greedy steps played to find the attention picture's frame")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for viewer.png and attention.png (default runs/docs-pictures; "
                             "copy them over docs/ to update the documentation)")
    args = parser.parse_args()
    pictures = args.pictures or PICTURES
    unknown = sorted(set(pictures) - set(PICTURES))
    if unknown:
        parser.error(f"unknown picture {', '.join(unknown)}: choose from {', '.join(PICTURES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if "viewer" in pictures:
        viewer_picture(args.out / VIEWER_PNG)
    if "attention" in pictures:
        attention_picture(args.frames, args.out / ATTENTION_PNG)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
