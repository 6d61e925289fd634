"""Gameplay videos with the attention overlaid, one or several runs side by side (MP4, PNG stills).

The paper's layout, one column per --run: the top row is the original RGB game screen with one
rectangle per attention cell on the screen region that cell's receptive field sees, its colour
intensity growing with the cell's attention (none up to twice uniform, 2/49, opaque at
1/--overlay-gain; the same scale for all frames and runs; --overlay-scale frame: relative to the
head's maximum), one colour per head; the bottom row is the 84x84 observation the network
received (newest of the 4 stacked frames); under it the step, return, action name, value
estimate and each head's peak against uniform, in the head's colour. All runs play in lockstep
from the same env seed, so they start the same game; by default each plays one full game (all
lives) and a finished run shows its last frame until every run has finished or --frames is
reached. --saliency METHOD (any method of `attnjax.inspection.saliency.registry`) draws that
map over both rows instead of the rectangles. --style paper draws as the original's enjoy.py
did (`paper_attention_map`, `paper_scale`, `blend_paper`). MP4 through imageio-ffmpeg (H.264,
yuv420p); --stills DIR also writes PNG frames.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnjax.cli import add_play_arguments, check_play_arguments
from attnjax.errors import UserError, writable_folder
from attnjax.files import replacing
from attnjax.inspection.presets import add_saliency_arguments, saliency_config_from_args
from attnjax.inspection.render import (
    OVERLAY_SCALES,
    Frame,
    draw_attention,
    draw_heatmap,
    draw_text,
    grey_to_rgb,
    head_color,
    pad_to_multiple,
    play,
    resize_nearest,
    upscale,
)
from attnjax.inspection.saliency.registry import METHODS, methods_help
from attnjax.model.baseline import GRID, vs_uniform
from attnjax.model.envs import action_names
from attnjax.model.networks import CONV_GEOMETRY
from attnjax.progress import ProgressBar

SALIENCY_CHOICES = ("none", *METHODS)
STYLES = ("attnjax", "paper")
BACKGROUND = (18, 18, 22)
GAP = 6  # pixels between panels and between rows


@dataclass(frozen=True)
class Layout:
    """Sizes of one run's column; all frames of a video share them."""

    screen_hw: tuple[int, int]
    scale: int
    overlay_scale: str = "absolute"
    overlay_gain: float = 3.0
    style: str = "attnjax"
    status_lines: int = 2  # under the observation: the step line, then one per head

    @property
    def width(self) -> int:
        return self.screen_hw[1] * self.scale

    @property
    def font(self) -> int:
        return max(13, self.width // 24)

    @property
    def title_h(self) -> int:
        return self.font + 8

    @property
    def obs_scale(self) -> int:
        return max(1, self.width // 84)

    @property
    def top(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1) of the screen inside the panel."""
        return self.title_h, 0, self.title_h + self.screen_hw[0] * self.scale, self.width

    @property
    def bottom(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1) of the observation inside the panel (centred)."""
        size = 84 * self.obs_scale
        y0 = self.top[2] + GAP
        x0 = (self.width - size) // 2
        return y0, x0, y0 + size, x0 + size

    @property
    def height(self) -> int:
        return self.bottom[2] + self.status_lines * self.title_h + 4


def auto_scale(screen_hw: tuple[int, int], min_width: int = 320) -> int:
    """The smallest integer upscale that makes a column at least `min_width` pixels wide (2 for
    Atari's 160, 4 for Quadrant's 84), so titles and status lines fit."""
    return max(1, -(-min_width // screen_hw[1]))


def run_label(agent: Any) -> str:
    config = agent.config
    what = f"λ={config.attn_coef:g}" if config.network == "attention" else "nature CNN"
    return f"{what} · seed {config.seed} · {agent.step:,} steps"


def paper_attention_map(attention: np.ndarray) -> np.ndarray:
    """[7, 7, K] attention -> [84, 84] as the original drew it: the heads summed, each cell's
    value spread over its receptive field (36 x 36 at stride 8, overlapping: the transposed
    convolution of the sum with a 36 x 36 kernel of ones). Heads padded with NaN are skipped."""
    summed = np.nansum(np.asarray(attention, np.float64), axis=-1)
    jump, size, _ = CONV_GEOMETRY["conv3"]
    out = np.zeros((jump * (GRID - 1) + size,) * 2, np.float32)
    for i in range(GRID):
        for j in range(GRID):
            out[i * jump : i * jump + size, j * jump : j * jump + size] += summed[i, j]
    return out


def paper_scale(maps: Sequence[np.ndarray]) -> float:
    """The original's intensity scale of a whole video: the largest, over its frames, of a
    frame's 99th percentile (over all its runs' maps); maps of a frame divided by it, clipped to
    [0, 1]."""
    scale = max(float(np.percentile(m, 99)) for m in maps)
    return scale if scale > 0 else 1.0


def blend_paper(image: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The original's overlay: (image + 255 x value) / 2, value [84, 84] in [0, 1] stretched
    over the image (nearest neighbour): bright grey where the map is high."""
    v = resize_nearest(np.asarray(value, np.float32), *image.shape[:2])[..., None]
    return np.rint(0.5 * (np.asarray(image, np.float32) + 255.0 * v)).astype(np.uint8)


def render_panel(layout: Layout, screen: np.ndarray, obs: np.ndarray,
                 attention: np.ndarray | None, saliency: np.ndarray | None, label: str,
                 info: str, heads: int = 0) -> np.ndarray:
    """One run's column: title, screen with overlay, observation, status line. uint8 RGB."""
    panel = np.empty((layout.height, layout.width, 3), np.uint8)
    panel[:] = BACKGROUND
    top = upscale(np.asarray(screen, np.uint8), layout.scale)
    bottom = upscale(grey_to_rgb(obs), layout.obs_scale)
    if layout.style == "paper":  # `saliency`: the scaled paper map
        top, bottom = blend_paper(top, saliency), blend_paper(bottom, saliency)
    elif saliency is not None:
        top = draw_heatmap(top, saliency)
        bottom = draw_heatmap(bottom, saliency)
    elif attention is not None:
        att = attention[..., : heads or attention.shape[-1]]
        att = att[..., ~np.isnan(att).any(axis=(0, 1))]  # heads padded for other runs
        top = draw_attention(top, att, upscaled=layout.scale, scale=layout.overlay_scale,
                             gain=layout.overlay_gain, line=layout.scale)
    y0, x0, y1, x1 = layout.top
    panel[y0:y1, x0:x1] = top
    y0, x0, y1, x1 = layout.bottom
    panel[y0:y1, x0:x1] = bottom
    panel = draw_text(panel, (4, 3), label, size=layout.font)
    legend = layout.style != "paper" and saliency is None and attention is not None
    for n, line in enumerate(info.split("\n")[: layout.status_lines]):
        x, y = 4, layout.bottom[2] + 4 + n * layout.title_h
        k = n - STEP_LINES  # lines after the step lines: one per head, in the head's colour
        if legend and 0 <= k < heads:
            size = layout.font - 2
            panel[y + 3 : y + 3 + size, x : x + size] = head_color(k).astype(np.uint8)
            x += size + 6
        panel = draw_text(panel, (x, y), line, size=layout.font)
    return panel


def compose(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Panels side by side with gaps, padded to sizes an H.264 encoder takes as they are."""
    h = max(p.shape[0] for p in panels)
    parts = []
    for i, p in enumerate(panels):
        if i:
            parts.append(np.full((h, GAP, 3), BACKGROUND, np.uint8))
        parts.append(p)
    frame = np.concatenate(parts, axis=1)
    return pad_to_multiple(frame, 16)


STEP_LINES = 2  # status lines before the heads' lines


def frame_info(frame: Frame, r: int, action_names: Sequence[str] | None = None) -> str:
    """Run r's status lines: step, return and value; the action (by name when known); then each
    head's peak against uniform attention, and whether its argmax is an earlier head's cell
    (their boxes then coincide and only the last head's colour shows)."""
    action = int(frame.actions[r])
    name = action_names[action] if action_names else str(action)
    over = "   GAME OVER" if not frame.active[r] or frame.game_over[r] else ""
    lines = [f"t {frame.t:,}   return {frame.returns[r]:g}   value {frame.values[r]:.2f}",
             f"action {name}{over}"]
    if frame.attention is not None:
        cells = frame.attention[r].reshape(-1, frame.attention.shape[-1])  # [49, K]
        peaks, argmax = cells.max(axis=0), cells.argmax(axis=0)
        for k, p in enumerate(peaks):
            if not np.isfinite(p):
                continue
            shared = [j for j in range(k) if argmax[j] == argmax[k]]
            lines.append(f"head {k}: peak {float(p):.2f}, on head {shared[0]}'s cell" if shared
                         else f"head {k}: peak {vs_uniform(float(p))}")
    return "\n".join(lines)


def render_frame(layout: Layout, frame: Frame, labels: Sequence[str], heads: Sequence[int],
                 saliency: np.ndarray | None = None,
                 action_names: Sequence[str] | None = None) -> np.ndarray:
    """The full video frame of one recorded step. saliency: [R, 84, 84] or None."""
    panels = []
    for r, label in enumerate(labels):
        att = None if frame.attention is None else frame.attention[r]
        sal = None if saliency is None else saliency[r]
        panels.append(render_panel(layout, frame.screens[r], frame.obs[r, -1], att, sal, label,
                                   frame_info(frame, r, action_names), heads[r]))
    return compose(panels)


# --------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_play_arguments(parser, runs=True, skip=("stride",), frames=1000, help_texts={
        "runs": "run folder or checkpoint; repeat for runs side by side",
        "frames": "most frames to record (default 1000)",
        "seed": "env seed shared by all runs",
        "policy": "how the agents act (default sample, as in training)",
        "warmup": "steps played before recording"})
    parser.add_argument("--out", required=True, help="output video, ending in .mp4")
    parser.add_argument("--until", default="game-over", choices=("game-over", "frames"),
                        help="game-over (default): each run plays one full game, the video "
                             "ends when all are over; frames: play on through new games")
    parser.add_argument("--label", action="append", default=None,
                        help="title of each run's column, in --run order (default: λ, seed, "
                             "steps)")
    parser.add_argument("--fps", type=float, default=15.0,
                        help="frames per second (default 15: real time at frame skip 4)")
    parser.add_argument("--scale", type=int, default=0,
                        help="screen upscale factor (default 0: auto, columns >= 320 px wide)")
    parser.add_argument("--overlay-scale", default="absolute", choices=OVERLAY_SCALES,
                        help="rectangle opacity: absolute (none up to twice uniform, 2/49, "
                             "opaque from 1/gain; comparable across runs; default) or frame "
                             "(relative to the head's max)")
    parser.add_argument("--overlay-gain", type=float, default=3.0,
                        help="absolute scale: attention value drawn fully opaque is 1/gain "
                             "(default 3)")
    parser.add_argument("--style", default="attnjax", choices=STYLES,
                        help="attnjax (default): a rectangle per cell and head; paper: as the "
                             "original drew it, the heads summed, a 36x36 square per cell at "
                             "stride 8 (overlapping sums), scaled by the largest per-frame 99th "
                             "percentile of the whole video, blended grey onto both rows (with "
                             "--saliency: that map, scaled the same way)")
    parser.add_argument("--saliency", default="none", choices=SALIENCY_CHOICES,
                        help="draw this saliency map instead of the attention rectangles. "
                             + methods_help())
    add_saliency_arguments(parser, "each frame's range", methods=False)
    parser.add_argument("--stills", default=None, help="also write PNG frames to this folder")
    parser.add_argument("--stills-every", type=int, default=50,
                        help="write every n-th frame as a still (default 50; the last always)")
    parser.add_argument("--block", type=int, default=32,
                        help="frames played before saliency and encoding catch up (default 32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_args(args: argparse.Namespace) -> Path:
    check_play_arguments(args)
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise UserError(f"--out must end in .mp4, got {out}")
    if args.label is not None and len(args.label) != len(args.run):
        raise UserError(f"give one --label per --run ({len(args.run)} runs, "
                        f"{len(args.label)} labels)")
    if args.scale < 0:
        raise UserError(f"--scale must be 0 (auto) or a positive integer, got {args.scale}")
    for name in ("stills_every", "block"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if not args.overlay_gain > 0:
        raise UserError(f"--overlay-gain must be positive, got {args.overlay_gain}")
    if not args.fps > 0:
        raise UserError(f"--fps must be positive, got {args.fps}")
    writable_folder(out.parent, "--out", str(out))
    if args.stills:
        writable_folder(args.stills, "--stills")
    return out


def saliency_setup(args: argparse.Namespace, agents: Sequence[Any]) -> Any:
    """(config, per-run compiled functions, chunk) or None without --saliency."""
    if args.saliency == "none":
        return None
    from attnjax.inspection.saliency.methods import (
        check_network,
        frames_per_chunk,
        make_batch_saliency,
    )

    config = saliency_config_from_args(args, methods=(args.saliency,), sigma_scope="frame")
    for agent in agents:
        check_network(agent.network, config)
    chunk = min(args.block, frames_per_chunk(agents[0].network, config, args.block))
    fns = [make_batch_saliency(agent.network, config) for agent in agents]
    return config, fns, chunk


def write_video(agents: Sequence[Any], out: Path, **kwargs: Any) -> dict[str, Any]:
    """Play the agents, render and encode to `out` (keywords: see `_write_video`). Returns a
    summary (frames, frame shape, final returns, labels, seconds)."""
    with warnings.catch_warnings():  # ffmpeg is started by fork+exec; JAX's warning is moot
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        return _write_video(agents, Path(out), **kwargs)


def _write_video(agents: Sequence[Any], out: Path, *, frames: int = 1000,
                until: str = "game-over", seed: int = 0, policy: str = "sample",
                warmup: int = 0, labels: Sequence[str] | None = None, fps: float = 15.0,
                scale: int = 0, overlay_scale: str = "absolute", overlay_gain: float = 3.0,
                style: str = "attnjax", saliency_setup: Any = None, stills: str | None = None,
                stills_every: int = 50, block: int = 32,
                progress: bool = False) -> dict[str, Any]:
    import imageio.v2 as imageio

    labels = list(labels) if labels else [run_label(a) for a in agents]
    names = action_names(agents[0].config.env_id, agents[0].num_actions)
    heads = [int(getattr(a.network, "num_heads", 0) or 0) if a.config.network == "attention"
             else 0 for a in agents]
    if style == "paper" and saliency_setup is None and not all(heads):
        raise UserError("--style paper draws the attention, but a run has none; give --saliency "
                        "or runs trained with --network attention")
    written, shape, last_rgb, last = 0, None, None, None
    stills_dir = Path(stills) if stills else None
    if stills_dir is not None:
        stills_dir.mkdir(parents=True, exist_ok=True)
    layout = None
    t0 = time.monotonic()
    with replacing(out) as tmp:
        writer = imageio.get_writer(str(tmp), format="FFMPEG", mode="I", fps=fps,
                                    codec="libx264", pixelformat="yuv420p", quality=8,
                                    macro_block_size=16, ffmpeg_log_level="error")
        try:
            with ProgressBar("video", frames, progress) as bar:
                stream = play(agents, frames, seed=seed, policy=policy, warmup=warmup,
                              stop_at_game_over=until == "game-over")
                pairs = _with_saliency(agents, stream, saliency_setup, seed, block, bar)
                if style == "paper":  # the scale needs every frame of the video
                    pairs = _paper_maps(list(pairs))
                for frame, maps in pairs:
                    if layout is None:
                        hw = frame.screens.shape[1:3]
                        layout = Layout(hw, scale or auto_scale(hw), overlay_scale, overlay_gain,
                                        style, STEP_LINES + max(heads))
                    rgb = render_frame(layout, frame, labels, heads, maps, names)
                    writer.append_data(rgb)
                    if stills_dir is not None and written % stills_every == 0:
                        imageio.imwrite(stills_dir / f"{out.stem}_{written:05d}.png", rgb)
                    shape, last_rgb, last = rgb.shape, rgb, frame
                    written += 1
        finally:
            writer.close()
        if written == 0:
            raise UserError("no frames were recorded; raise --frames")
    if stills_dir is not None and (written - 1) % stills_every != 0:
        imageio.imwrite(stills_dir / f"{out.stem}_{written - 1:05d}.png", last_rgb)
    return {"frames": written, "shape": shape, "returns": last.returns.tolist(),
            "labels": labels, "seconds": time.monotonic() - t0}


def _with_saliency(agents: Sequence[Any], stream: Iterator[Frame], setup: Any, seed: int,
                   block: int, bar: ProgressBar) -> Iterator[tuple[Frame, np.ndarray | None]]:
    """(frame, its runs' saliency [R, 84, 84] or None) for every frame played; the saliency of
    `block` frames at a time."""
    buffer: list[Frame] = []
    done = 0
    for frame in itertools.chain(stream, [None]):  # None: the stream has ended
        if frame is not None:
            buffer.append(frame)
        if buffer and (frame is None or len(buffer) == block):
            maps = _block_saliency(agents, buffer, setup, seed, done)
            for i, played in enumerate(buffer):
                bar.advance()
                yield played, None if maps is None else maps[:, i]
            done += len(buffer)
            buffer = []


def _paper_maps(pairs: list[tuple[Frame, np.ndarray | None]]) -> list[tuple[Frame, np.ndarray]]:
    """Every frame with its runs' maps as the original drew them: the saliency maps, or the
    attention spread over the receptive fields (`paper_attention_map`), divided by the video's
    `paper_scale` and clipped to [0, 1]."""
    maps = [np.stack([paper_attention_map(a) for a in frame.attention]) if m is None else m
            for frame, m in pairs]
    scale = paper_scale(maps)
    return [(frame, np.clip(m / scale, 0.0, 1.0)) for (frame, _), m in zip(pairs, maps,
                                                                          strict=True)]


def _block_saliency(agents: Sequence[Any], buffer: list[Frame], setup: Any, seed: int,
                    offset: int) -> np.ndarray | None:
    """[R, n, 84, 84] saliency (max over stacked frames) of a block of frames, or None."""
    if setup is None:
        return None
    import jax

    from attnjax.inspection.saliency.methods import compute_saliency

    config, fns, chunk = setup
    key = jax.random.fold_in(jax.random.PRNGKey(seed), offset)
    maps = []
    for r, agent in enumerate(agents):
        obs = np.stack([f.obs[r] for f in buffer])
        result = compute_saliency(agent.network, agent.params, obs, config,
                                  jax.random.fold_in(key, r), chunk_frames=chunk, fn=fns[r])
        maps.append(result.aggregate(config.methods[0]))
    return np.stack(maps)


def main(args: argparse.Namespace) -> int:
    from attnjax.agents.load import check_one_game, load_agent

    out = _check_args(args)
    agents = [load_agent(run) for run in args.run]
    check_one_game(agents, "side-by-side videos need runs of one game")
    setup = saliency_setup(args, agents)
    summary = write_video(
        agents, out, frames=args.frames, until=args.until, seed=args.seed, policy=args.policy,
        warmup=args.warmup, labels=args.label, fps=args.fps, scale=args.scale,
        overlay_scale=args.overlay_scale, overlay_gain=args.overlay_gain, style=args.style,
        saliency_setup=setup, stills=args.stills, stills_every=args.stills_every,
        block=args.block, progress=not args.no_progress,
    )
    h, w = summary["shape"][:2]
    returns = ", ".join(f"{r:g}" for r in summary["returns"])
    print(f"wrote {out} ({summary['frames']} frames, {w}x{h}, {len(agents)} runs, returns "
          f"{returns}, {summary['seconds']:.1f} s)")
    return 0
