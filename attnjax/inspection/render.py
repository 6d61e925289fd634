"""Playing agents and drawing what they see: shared by `visualize.py saliency` and `video`.

Geometry. The attention map's cell (i, j) is one unit of conv3; `networks.CONV_GEOMETRY`
composes the three convolutions: cell (i, j) sees observation rows 8i .. 8i + 35 and columns
8j .. 8j + 35 of the 84x84 input (cell 6 ends at row 83, the last). envpool makes the
observation by an area resize of the WHOLE 210x160 screen (no crop), so observation row r
averages screen rows [2.5 r, 2.5 (r + 1)); the screen region a cell sees is every screen pixel
with a non-zero weight in its observation box: rows floor(2.5 top) .. ceil(2.5 bottom) - 1,
columns likewise with 160 / 84.

Playing. `play` steps R agents in lockstep in ONE vectorised env whose R copies share the same
env seed, so every agent starts the same game (same no-ops, same first screen); each agent acts
on its own copy. Every recorded step holds the RGB screen and the observation of the same env
state (the screen is rendered before the step that follows it).
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnjax.cli import check_play_arguments
from attnjax.model.baseline import GRID, NEAR_UNIFORM, UNIFORM_CELL
from attnjax.model.networks import OBS_SIZE, receptive_field

# one colour per attention head (RGB), repeated if there are more heads
HEAD_COLORS = ((255, 64, 64), (64, 170, 255), (90, 230, 90), (255, 210, 50), (230, 90, 255),
               (255, 140, 40))


# --------------------------------------------------------------------------------------------
# geometry


def cell_box_obs(i: int, j: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive: the 84x84 observation pixels that
    attention cell (i, j) sees (`networks.receptive_field` of conv3 unit (i, j))."""
    top, left, size = receptive_field("conv3", i, j)
    return top, left, top + size, left + size


def obs_box_to_screen(box: Sequence[int], screen_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Observation box -> the screen pixels whose area-resize weight into it is non-zero."""
    top, left, bottom, right = box
    sy, sx = screen_hw[0] / OBS_SIZE, screen_hw[1] / OBS_SIZE
    return (math.floor(top * sy + 1e-9), math.floor(left * sx + 1e-9),
            math.ceil(bottom * sy - 1e-9), math.ceil(right * sx - 1e-9))


def cell_boxes(screen_hw: tuple[int, int] = (OBS_SIZE, OBS_SIZE)) -> np.ndarray:
    """int [7, 7, 4]: (top, left, bottom, right) of every cell on a screen of this size."""
    boxes = np.zeros((GRID, GRID, 4), np.int64)
    for i in range(GRID):
        for j in range(GRID):
            boxes[i, j] = obs_box_to_screen(cell_box_obs(i, j), screen_hw)
    return boxes


def area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of an area (box-filter) resize along one axis, rows sum to 1:
    `M_rows @ image @ M_cols.T` is what envpool's resize of the screen computes."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        a, b = o * scale, (o + 1) * scale
        for i in range(math.floor(a), min(n_in, math.ceil(b))):
            m[o, i] = max(0.0, min(b, i + 1) - max(a, i))
    return m / scale


def screen_to_obs(screen: np.ndarray) -> np.ndarray:
    """RGB screen [H, W, 3] -> float [84, 84] grey, resized like envpool's observation."""
    grey = np.asarray(screen, np.float64) @ np.array([0.299, 0.587, 0.114])
    rows = area_resize_matrix(grey.shape[0], OBS_SIZE)
    cols = area_resize_matrix(grey.shape[1], OBS_SIZE)
    return rows @ grey @ cols.T


# --------------------------------------------------------------------------------------------
# drawing (numpy; text through PIL, which matplotlib already depends on)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour integer upscale of [H, W] or [H, W, C]."""
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize: output pixel (y, x) takes input pixel (y h / H, x w / W)."""
    h, w = image.shape[:2]
    rows = (np.arange(height) * h) // height
    cols = (np.arange(width) * w) // width
    return image[rows][:, cols]


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(image, np.uint8)[..., None], 3, axis=-1)


def head_color(k: int) -> np.ndarray:
    return np.asarray(HEAD_COLORS[k % len(HEAD_COLORS)], np.float32)


OVERLAY_SCALES = ("absolute", "frame")


def attention_opacity(attention: np.ndarray, scale: str = "absolute",
                      gain: float = 3.0) -> np.ndarray:
    """[7, 7, K] attention -> opacity in [0, 1], growing with the attention value.

    absolute: 0 up to NEAR_UNIFORM x uniform (2/49 = 0.041), then rising linearly to 1 at
    1/gain; the same for every frame and run, so cells near uniform are not drawn (an untrained
    agent, every cell about 1/49, shows the bare screen, not a plaid), a focused head's cell of
    >= 1/gain is opaque, and runs with different lambda compare directly. frame: value / the
    head's max in this frame (every head's strongest cell opaque; shows the shape of diffuse
    maps too)."""
    att = np.nan_to_num(np.asarray(attention, np.float64))
    if scale == "absolute":
        floor = NEAR_UNIFORM * UNIFORM_CELL
        return np.clip((att - floor) / max(1.0 / gain - floor, 1e-6), 0.0, 1.0)
    if scale == "frame":
        heads = att.shape[-1]
        return att / np.maximum(att.reshape(-1, heads).max(axis=0), 1e-12)
    raise ValueError(f"unknown overlay scale {scale!r}; choose from {', '.join(OVERLAY_SCALES)}")


def draw_attention(image: np.ndarray, attention: np.ndarray, *, upscaled: int = 1,
                   scale: str = "absolute", gain: float = 3.0, fill: float = 0.35,
                   line: int = 2, min_opacity: float = 0.02) -> np.ndarray:
    """Overlay one rectangle per attention cell and head on an RGB screen (or observation).

    Each cell's rectangle covers the screen region its receptive field sees (`cell_boxes` of
    the screen size; `upscaled`: the image is the screen upscaled by this integer factor, and
    the boxes are scaled with it), in its head's colour (`HEAD_COLORS`) with opacity
    growing with its attention value (`attention_opacity`): the outline (`line` pixels) at
    that opacity, the fill at `fill` x that. Cells under `min_opacity` are skipped; weaker
    cells are drawn first so the strongest lie on top.
    """
    canvas = np.asarray(image, np.float32).copy()
    h, w = canvas.shape[:2]
    if h % upscaled or w % upscaled:
        raise ValueError(f"image {h}x{w} is not a screen upscaled by {upscaled}")
    boxes = cell_boxes((h // upscaled, w // upscaled)) * upscaled
    opacity = attention_opacity(attention, scale, gain)
    order = np.argsort(opacity, axis=None, kind="stable")
    for flat in order:
        i, j, k = np.unravel_index(flat, opacity.shape)
        a = float(opacity[i, j, k])
        if a < min_opacity:
            continue
        top, left, bottom, right = boxes[i, j]
        color = head_color(k)
        if fill > 0:
            region = canvas[top:bottom, left:right]
            region += (color - region) * (fill * a)
        if line > 0:
            for sl in ((slice(top, top + line), slice(left, right)),
                       (slice(bottom - line, bottom), slice(left, right)),
                       (slice(top, bottom), slice(left, left + line)),
                       (slice(top, bottom), slice(right - line, right))):
                edge = canvas[sl]
                edge += (color - edge) * a
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


@functools.cache
def _colormap(name: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)


def normalize_map(saliency: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """[..., H, W] -> [0, 1]: divided by the frame's `percentile` (saliency maps are heavy
    tailed; the max would leave all but a few pixels black), clipped."""
    s = np.asarray(saliency, np.float64)
    flat = s.reshape(*s.shape[:-2], -1)
    scale = np.percentile(flat, percentile, axis=-1)[..., None, None]
    return np.clip(s / np.maximum(scale, 1e-30), 0.0, 1.0)


def draw_heatmap(image: np.ndarray, saliency: np.ndarray, *, cmap: str = "inferno",
                 alpha: float = 0.75) -> np.ndarray:
    """Blend a saliency map (84x84 observation coordinates, any scale) over an RGB image of any
    size: nearest-neighbour onto the image grid, normalised per frame (`normalize_map`),
    coloured by `cmap`, opacity alpha x normalised value."""
    canvas = np.asarray(image, np.float32)
    value = resize_nearest(normalize_map(saliency), *canvas.shape[:2])
    color = _colormap(cmap)[np.rint(value * 255).astype(np.int64)]
    a = (alpha * value)[..., None]
    return np.clip(np.rint(canvas * (1 - a) + color * a), 0, 255).astype(np.uint8)


@functools.cache
def _font(size: int):
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def draw_text(image: np.ndarray, xy: tuple[int, int], text: str, size: int = 12,
              color: tuple[int, int, int] = (235, 235, 235)) -> np.ndarray:
    """Text drawn onto a copy of an RGB uint8 image (DejaVu Sans: Greek letters included)."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(np.ascontiguousarray(image))
    ImageDraw.Draw(pil).text(xy, text, fill=tuple(color), font=_font(size))
    return np.array(pil)


def pad_to_multiple(image: np.ndarray, multiple: int = 16) -> np.ndarray:
    """Pad an [H, W, 3] frame at the bottom/right to sizes divisible by `multiple` (what video
    encoders want), so nothing is rescaled."""
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return image
    return np.pad(image, ((0, ph), (0, pw), (0, 0)))


# --------------------------------------------------------------------------------------------
# playing


@dataclass
class Frame:
    """One recorded env step of R agents playing in lockstep (leading axis: agent)."""

    t: int  # step index since reset (warm-up included)
    obs: np.ndarray  # [R, 4, 84, 84] uint8: what each network received at this step
    screens: np.ndarray  # [R, H, W, 3] uint8: RGB screen of the same env state
    actions: np.ndarray  # [R] int32: action each agent took at this step
    rewards: np.ndarray  # [R] float32: unclipped game reward that action earned
    returns: np.ndarray  # [R] float32: full-game return so far, this step's reward included
    game_over: np.ndarray  # [R] bool: this step ended the agent's game (all lives)
    episode: np.ndarray  # [R] int32: index of the game each agent is in (0 = first)
    logits: np.ndarray  # [R, A]
    values: np.ndarray  # [R]
    attention: np.ndarray | None  # [R, 7, 7, K] (None if any agent has no attention)
    active: np.ndarray  # [R] bool: False once an agent's game ended with stop_at_game_over
    outputs: list[Any] | None = None  # with play(outputs=True): R AgentOutputs of 1 frame (host)


def play(agents: Sequence[Any], num_frames: int, seed: int = 0, policy: str = "sample",
         warmup: int = 0, stride: int = 1, stop_at_game_over: bool = False,
         env_id: str | None = None, outputs: bool = False) -> Iterator[Frame]:
    """Play the agents in lockstep on one env seed and yield up to `num_frames` recorded frames:
    `warmup` steps unrecorded, then every `stride`-th step. policy: "sample" (as in training)
    or "greedy" (argmax). stop_at_game_over: an agent whose game ends stops (its frames are
    marked inactive and keep its last state) and playing ends when all have stopped.
    outputs: also hand out every agent's whole `AgentOutput` (all activations; the relevance
    trees need them). The one play loop of video, tree and saliency: the same --seed
    --policy --warmup --stride play the same frames in each."""
    import jax

    from attnjax.agents.load import check_one_game
    from attnjax.agents.play import make_chunk, start
    from attnjax.model.envs import QuadrantEnv, env_seeds, make_env

    check_play_arguments(argparse.Namespace(frames=num_frames, policy=policy, warmup=warmup,
                                            stride=stride))
    env_id = env_id or check_one_game(agents, "play the runs of one game together")
    r = len(agents)
    env = make_env(env_id, env_seeds(seed, 1) * r, render=True)
    chunk = make_chunk([agent.network for agent in agents], env, policy, 1, outputs=True)
    params = [agent.params for agent in agents]
    returns = np.zeros(r, np.float32)
    episode = np.zeros(r, np.int32)
    active = np.ones(r, bool)
    last: Frame | None = None
    recorded = 0
    try:
        state = start(env, jax.random.split(jax.random.PRNGKey(seed), r))  # [R, 2] keys
        t = 0
        while recorded < num_frames and active.any():
            record = t >= warmup and (t - warmup) % stride == 0
            if record:
                screens = (env.render(state.env_state) if isinstance(env, QuadrantEnv)
                           else env.render())
                obs_host = np.asarray(state.obs)
            state, step = chunk(params, state)
            outs = [jax.tree_util.tree_map(lambda x: x[0], o) for o in step.outputs]  # 1 frame
            action, result = step.actions[0], jax.tree_util.tree_map(lambda x: x[0], step.result)
            reward = np.asarray(result.game_reward, np.float32)
            over = np.asarray(result.game_over, bool)
            returns = returns + reward * active
            if record:
                att = [o.attention for o in outs]
                frame = Frame(  # own, writable copies (host views of JAX arrays are not)
                    t=t,
                    obs=np.array(obs_host),
                    screens=np.array(screens, np.uint8),
                    actions=np.array(action),
                    rewards=reward.copy(),
                    returns=returns.copy(),
                    game_over=over & active,
                    episode=episode.copy(),
                    logits=np.concatenate([np.asarray(o.logits) for o in outs]),
                    values=np.concatenate([np.asarray(o.value) for o in outs]),
                    attention=None if any(a is None for a in att)
                    else _stack_ragged([np.asarray(a[0]) for a in att]),
                    active=active.copy(),
                    outputs=jax.device_get(outs) if outputs else None,
                )
                if last is not None and not active.all():
                    frame = freeze_finished(frame, last, active)
                yield frame
                last = frame
                recorded += 1
            if stop_at_game_over:
                active = active & ~over
            episode = episode + over
            returns = np.where(over & ~stop_at_game_over, 0.0, returns).astype(np.float32)
            t += 1
    finally:
        env.close()


def record_one(agent: Any, num_frames: int, seed: int = 0, policy: str = "sample",
               warmup: int = 0, stride: int = 1, outputs: bool = False,
               advance: Callable[[], None] | None = None) -> dict[str, Any]:
    """One agent's frames from `play`, stacked: obs [N, 4, 84, 84] uint8, screens [N, H, W, 3]
    uint8, actions [N] int32, rewards [N] float32, episode [N] int32, env_step [N] int,
    values [N] float32; with `outputs`, output: its AgentOutput of the N frames (host arrays).
    advance: called after every frame (a progress bar)."""
    fields = ("obs", "screens", "actions", "rewards", "episode", "values")
    kept: dict[str, list] = {k: [] for k in (*fields, "env_step", "output")}
    for frame in play([agent], num_frames, seed=seed, policy=policy, warmup=warmup,
                      stride=stride, outputs=outputs):
        for name in fields:
            kept[name].append(getattr(frame, name)[0])
        kept["env_step"].append(frame.t)
        if outputs:
            kept["output"].append(frame.outputs[0])
        if advance is not None:
            advance()
    out: dict[str, Any] = {k: np.stack(kept[k]) for k in (*fields, "env_step")}
    if outputs:
        import jax

        out["output"] = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *kept["output"])
    return out


def _stack_ragged(maps: list[np.ndarray]) -> np.ndarray:
    """Stack attention maps of agents with different head counts, padding heads with NaN."""
    heads = max(m.shape[-1] for m in maps)
    out = np.full((len(maps), GRID, GRID, heads), np.nan, np.float32)
    for i, m in enumerate(maps):
        out[i, ..., : m.shape[-1]] = m
    return out


def freeze_finished(frame: Frame, last: Frame, active: np.ndarray) -> Frame:
    """`frame` with the agents whose game ended (`active` [R] False) showing their final
    recorded state `last` (in place)."""
    keep = ~active
    for name in ("obs", "screens", "actions", "rewards", "returns", "episode", "logits",
                 "values", "attention"):
        new, old = getattr(frame, name), getattr(last, name)
        if new is not None and old is not None:
            new[keep] = old[keep]
    if frame.outputs is not None and last.outputs is not None:
        frame.outputs = [old if k else new
                         for new, old, k in zip(frame.outputs, last.outputs, keep, strict=True)]
    frame.game_over[keep] = False
    return frame
