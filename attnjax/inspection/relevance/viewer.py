"""Deep relevance trees of a trained agent, in one offline HTML viewer (and PNGs for papers).

Plays --frames steps of the run's environment with the agent, takes the peaks of every attention
head, follows the strongest activation x weight contributions down through a1, conv3, conv2 to
conv1 (or the pixels, --leaf input) and writes ONE self-contained HTML file: no network, no CDN,
data and frames embedded. Open it in any browser: switch between the RGB screen and the 84x84
observation, toggle the attention heatmap, fold the tree, hover or click a node to see its
receptive field on the frame and its layer, position, channel, activation and relevance; step
through frames with the buttons or the arrow keys. --png DIR also draws each frame's tree
(squares and branches over the frame) with matplotlib; --json FILE saves the raw trees.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnjax.cli import add_play_arguments, check_play_arguments
from attnjax.errors import UserError, writable_folder
from attnjax.inspection.presets import add_tree_arguments, tree_config_from_args
from attnjax.inspection.relevance.drawing import draw_tree_png
from attnjax.inspection.relevance.png import png_data_uri
from attnjax.inspection.relevance.tree import RelevanceTree, TreeConfig, relevance_trees
from attnjax.inspection.relevance.tree_json import (
    SCHEMA_VERSION,
    layer_table,
    tree_to_dict,
    trees_to_json,
)
from attnjax.progress import ProgressBar

ASSETS = Path(__file__).with_name("assets")
IMAGE_MODES = ("screen", "obs", "stack")
VIEWER_DIGITS = 5  # significant digits of the numbers embedded in the HTML


# --------------------------------------------------------------------------------------------
# playing frames


@dataclass
class Recording:
    """Frames played by an agent, with everything the trees and the viewer need."""

    obs: np.ndarray  # [N, 4, 84, 84] uint8
    screens: np.ndarray  # [N, H, W, 3] uint8: RGB screen (Atari 210x160, Quadrant 84x84)
    env_steps: np.ndarray  # [N] step index in the episode stream
    actions: np.ndarray  # [N] action taken at this frame
    rewards: np.ndarray  # [N] reward that action earned (unclipped)
    values: np.ndarray  # [N] value estimate
    output: Any  # AgentOutput of the N frames, host arrays

    def __len__(self) -> int:
        return len(self.obs)


def record(agent: Any, num_frames: int, seed: int = 0, policy: str = "sample", warmup: int = 0,
           stride: int = 1, progress: bool = False) -> Recording:
    """Play one environment with the agent through `render.play` (so `tree`, `saliency` and a
    one-run `video` with the same flags record the same frames): `warmup` steps unrecorded,
    then every `stride`-th step until `num_frames` frames are held, with every activation."""
    from attnjax.inspection.render import record_one

    with ProgressBar("playing", num_frames, progress, every_s=None, stream="stdout") as bar:
        data = record_one(agent, num_frames, seed, policy, warmup, stride, outputs=True,
                          advance=bar.advance)
    return Recording(obs=data["obs"], screens=data["screens"], env_steps=data["env_step"],
                     actions=data["actions"], rewards=data["rewards"], values=data["values"],
                     output=data["output"])


def frame_image(recording: Recording, i: int, mode: str) -> np.ndarray:
    """The picture of frame i: the RGB screen, the newest observation frame, or the max over the
    4 stacked observation frames (what the original drew)."""
    if mode == "screen":
        return recording.screens[i]
    if mode == "obs":
        return recording.obs[i, -1]
    if mode == "stack":
        return recording.obs[i].max(axis=0)
    raise ValueError(f"unknown image mode {mode!r}")


# --------------------------------------------------------------------------------------------
# HTML


def safe_json(payload: Any) -> str:
    """JSON that can sit inside <script type="application/json">: no '<', '>' or '&' (so no
    '</script>' or '<!--'), and no U+2028/U+2029; each escaped as a \\uXXXX JSON escape."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def viewer_payload(recording: Recording, trees: list[RelevanceTree], meta: dict[str, Any],
                   action_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything the viewer shows, as JSON types."""
    if len(trees) != len(recording):
        raise ValueError(f"{len(trees)} trees for {len(recording)} frames")
    frames = []
    for i, tree in enumerate(trees):
        images = {mode: frame_image(recording, i, mode) for mode in IMAGE_MODES}
        tree_doc = tree_to_dict(tree, digits=VIEWER_DIGITS)
        action = int(recording.actions[i])
        frames.append({
            "index": i,
            "env_step": int(recording.env_steps[i]),
            "action": action,
            "action_name": action_names[action] if action_names else None,
            "reward": float(recording.rewards[i]),
            "value": float(f"{float(recording.values[i]):.{VIEWER_DIGITS}g}"),
            "images": {mode: png_data_uri(img) for mode, img in images.items()},
            "image_sizes": {mode: list(img.shape[:2]) for mode, img in images.items()},
            "tree": {"attention": tree_doc["attention"], "roots": tree_doc["roots"]},
        })
    config = trees[0].config if trees else TreeConfig()
    return {
        "schema": SCHEMA_VERSION,
        "meta": {**meta, "tree_config": config.to_dict()},
        "layers": layer_table(),
        "frames": frames,
    }


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def render_html(payload: dict[str, Any]) -> str:
    """One self-contained HTML document: template + inline CSS + inline JS + embedded JSON."""
    style, script = _asset("viewer.css"), _asset("viewer.js")
    for text, end in ((style, "</style"), (script, "</script")):
        if end in text.lower() or "<!--" in text:
            raise ValueError(f"viewer asset contains {end!r} or '<!--', which would end it early")
    title = html.escape(str(payload["meta"].get("title", "attnjax relevance trees")))
    page = _asset("viewer.html")
    page = page.replace("{{STYLE}}", style).replace("{{SCRIPT}}", script)
    page = page.replace("{{TITLE}}", title)
    return page.replace("{{DATA}}", safe_json(payload))


def run_meta(agent: Any, title: str | None = None) -> dict[str, Any]:
    config = agent.config
    run = agent.run_dir.name
    return {
        "title": title or f"relevance trees \u00b7 {run}",
        "run": run,
        "checkpoint": str(agent.path),
        "env_id": config.env_id,
        "network": config.network,
        "attn_coef": config.attn_coef,
        "heads": config.attn_heads,
        "seed": config.seed,
        "global_step": agent.step,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_play_arguments(parser, frames=20, help_texts={
        "frames": "frames to record (default 20; 100 stay responsive)",
        "seed": "env and action-sampling seed",
        "policy": "how the agent picks actions while recording (default sample)",
        "warmup": "steps to play before the first recorded frame",
        "stride": "steps between recorded frames (default 1)"})
    parser.add_argument("--out", default="relevance_trees.html",
                        help="HTML file to write (default relevance_trees.html)")
    parser.add_argument("--png", nargs="?", const="relevance_trees_png", default=None,
                        metavar="DIR",
                        help="also draw every frame's tree over the frame with matplotlib into "
                             "DIR/frame_NNN.png (default DIR relevance_trees_png)")
    parser.add_argument("--png-image", choices=IMAGE_MODES, default="screen",
                        help="picture under the PNG drawings (default screen)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also save the trees with full precision as JSON")
    add_tree_arguments(parser)
    parser.add_argument("--title", default=None, help="title of the page")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from attnjax.agents.load import load_agent
    from attnjax.model.envs import action_names

    check_play_arguments(args)
    config = tree_config_from_args(args)
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {out} should end in .html; the viewer is one HTML file")
    writable_folder(out.parent, "--out", str(out))
    if args.json:
        writable_folder(Path(args.json).parent, "--json", args.json)
    if args.png:
        writable_folder(args.png, "--png")
    agent = load_agent(args.run)
    if agent.config.network != "attention":
        raise UserError(
            f"{args.run} is a '{agent.config.network}' network without attention; relevance "
            "trees start at attention peaks, so pass a run trained with --network attention"
        )
    progress = not args.no_progress
    recording = record(agent, args.frames, seed=args.seed, policy=args.policy,
                       warmup=args.warmup, stride=args.stride, progress=progress)
    trees = relevance_trees(recording.output, agent.params, config)
    meta = run_meta(agent, args.title)
    names = action_names(agent.config.env_id, agent.num_actions)
    payload = viewer_payload(recording, trees, meta, names)
    page = render_html(payload)
    out.write_text(page, encoding="utf-8")
    nodes = sum(t.num_nodes for t in trees)
    print(f"wrote {out} ({len(page) / 1e6:.1f} MB): {len(trees)} frames, {nodes} tree nodes")
    if args.json:
        json_meta = {k: v for k, v in meta.items() if k != "title"}
        Path(args.json).write_text(trees_to_json(trees, **json_meta), encoding="utf-8")
        print(f"wrote {args.json}")
    if args.png:
        folder = Path(args.png)
        bar = ProgressBar("drawing PNGs", len(trees), progress, unit="PNGs", every_s=None,
                          stream="stdout")
        try:
            for i, tree in enumerate(trees):
                action = int(recording.actions[i])
                title = (f"{meta['run']} \u00b7 frame {i + 1}/{len(trees)} \u00b7 step "
                         f"{int(recording.env_steps[i])} \u00b7 action "
                         f"{names[action] if names else action}")
                draw_tree_png(tree, frame_image(recording, i, args.png_image),
                              folder / f"frame_{i:03d}.png", title=title)
                bar.advance()
        finally:
            bar.close()
        print(f"wrote {len(trees)} PNGs to {folder}/")
    return 0
