"""Where the objects are: ground truth for the localization scores, and the frames it is
known on.

- Quadrant-v0: the square's exact position, read from the env state when the frame is shown.
- Atari: the emulator RAM at the frame (envpool >= 1.2 returns it in the step's info as
  `ram`, 128 bytes), at the addresses AtariARI (Anand et al. 2019) annotates, e.g. Breakout
  ball_x 99, ball_y 101, player_x 72. AtariARI gives addresses, not screen positions, so the
  RAM -> screen-pixel mapping is fitted here by least squares against the objects found in the
  rendered RGB frames (`detect_objects`: the bounding box of the object's colour in its screen
  region, kept only when its size is the object's, so other objects of that colour do not
  spoil the fit). The fit error travels with the mapping (`AxisFit`), and a mapping whose
  error is above MAX_RMS_PX screen pixels, or fitted on fewer than MIN_DETECTIONS frames, does
  not "hold": its object is left out of the report, with the reason.

Boxes are (top, left, bottom, right), bottom/right exclusive, float: on the screen in screen
pixels, then in 84x84 observation coordinates (envpool's observation is an area resize of the
whole screen, so a screen box scales by 84/210 and 84/160). An object counts as visible in a
frame when its colour appears in its predicted screen box (grown by 1 px): frames without a
visible object (Breakout's ball between lives) are left out of its scores and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attnjax.model.envs import game_name
from attnjax.model.networks import OBS_SIZE

MAX_RMS_PX = 2.0  # screen pixels: a mapping with a larger fit error does not hold
MIN_DETECTIONS = 20  # frames with a clean detection needed to fit a mapping
CALIBRATION_STATES = 256  # Atari states a mapping is fitted on: the frames, then more steps


@dataclass(frozen=True)
class ObjectSpec:
    """One annotated object of a game: RAM addresses (AtariARI; None = the coordinate is
    fixed on the screen, e.g. Breakout's paddle row), how to find it in an RGB frame (colours,
    screen region rows/cols [start, stop), accepted bounding-box heights/widths)."""

    name: str
    ram_x: int | None
    ram_y: int | None
    colours: tuple[tuple[int, int, int], ...]
    rows: tuple[int, int]
    cols: tuple[int, int]
    heights: tuple[int, int]  # inclusive range of detected box heights that count
    widths: tuple[int, int]


# The paper's games that AtariARI annotates. Colours and regions were read off envpool's
# rendered screens; which mappings hold is measured (docs/interpretability_metrics.md).
GAME_OBJECTS: dict[str, tuple[ObjectSpec, ...]] = {
    "Breakout": (
        # the ball is the paddle's and the top brick row's red: searched between the bricks
        # (rows 57-92) and the paddle (rows 189-192); a red marker sits at columns 152-159
        ObjectSpec("ball", 99, 101, ((200, 72, 72),), (93, 189), (8, 152), (4, 4), (2, 2)),
        ObjectSpec("paddle", 72, None, ((200, 72, 72),), (189, 193), (8, 152), (4, 4),
                   (16, 16)),
    ),
    "MsPacman": (
        ObjectSpec("player", 10, 16, ((210, 164, 74),), (0, 172), (0, 160), (7, 10), (5, 9)),
    ),
    "Seaquest": (  # torpedoes share the submarine's yellow: only the 16 px submarine counts
        ObjectSpec("player", 70, 97, ((187, 187, 53),), (30, 160), (0, 160), (7, 11),
                   (16, 16)),
    ),
    "Frostbite": (
        ObjectSpec("player", 102, 100, ((162, 162, 42), (198, 108, 58), (162, 98, 33)),
                   (0, 190), (0, 160), (15, 19), (7, 8)),
    ),
}


# --------------------------------------------------------------------------------------------
# finding objects in RGB frames


def colour_mask(screens: np.ndarray, spec: ObjectSpec) -> np.ndarray:
    """[N, H, W, 3] uint8 -> bool [N, H, W]: pixels of the object's colours (anywhere)."""
    mask = np.zeros(screens.shape[:3], bool)
    for colour in spec.colours:
        mask |= np.all(screens == np.asarray(colour, screens.dtype), axis=-1)
    return mask


def detect_objects(screens: np.ndarray, spec: ObjectSpec) -> np.ndarray:
    """[N, H, W, 3] -> float [N, 4] screen boxes of the object's colour inside its region,
    NaN where there is none or its size is not the object's (two objects, a clipped one)."""
    mask = colour_mask(screens, spec)
    r0, r1 = spec.rows
    c0, c1 = spec.cols
    region = mask[:, r0:r1, c0:c1]
    out = np.full((len(screens), 4), np.nan)
    rows_any, cols_any = region.any(axis=2), region.any(axis=1)  # [N, h], [N, w]
    for i in np.flatnonzero(rows_any.any(axis=1)):
        ys, xs = np.flatnonzero(rows_any[i]), np.flatnonzero(cols_any[i])
        box = (ys[0] + r0, xs[0] + c0, ys[-1] + r0 + 1, xs[-1] + c0 + 1)
        h, w = box[2] - box[0], box[3] - box[1]
        if spec.heights[0] <= h <= spec.heights[1] and spec.widths[0] <= w <= spec.widths[1]:
            out[i] = box
    return out


# --------------------------------------------------------------------------------------------
# the RAM -> screen mapping


@dataclass(frozen=True)
class AxisFit:
    """centre = slope x RAM byte + intercept (screen pixels); slope 0 for a fixed coordinate.
    rms / p95 / max: residuals of the fit on the `frames` detections it was fitted on."""

    slope: float
    intercept: float
    rms: float
    p95: float
    max: float
    frames: int


@dataclass(frozen=True)
class Calibration:
    """RAM -> screen box of one object: the centre per axis and the box size (median of the
    detections), with the fit error."""

    spec: ObjectSpec
    x: AxisFit
    y: AxisFit
    height: float
    width: float

    @property
    def rms(self) -> float:
        return max(self.x.rms, self.y.rms)

    @property
    def holds(self) -> bool:
        return min(self.x.frames, self.y.frames) >= MIN_DETECTIONS and self.rms <= MAX_RMS_PX

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.spec.name, "ram_x": self.spec.ram_x, "ram_y": self.spec.ram_y,
                "x": asdict(self.x), "y": asdict(self.y), "height": self.height,
                "width": self.width, "rms_px": self.rms, "holds": self.holds}


def fit_axis(ram_values: np.ndarray | None, centres: np.ndarray) -> AxisFit:
    """Least-squares line centres ~ RAM values (or a constant when `ram_values` is None)."""
    c = np.asarray(centres, np.float64)
    if len(c) == 0:
        return AxisFit(0.0, float("nan"), float("inf"), float("inf"), float("inf"), 0)
    if ram_values is None:
        slope, intercept = 0.0, float(np.median(c))
    else:
        design = np.stack([np.asarray(ram_values, np.float64), np.ones(len(c))], axis=1)
        (slope, intercept), *_ = np.linalg.lstsq(design, c, rcond=None)
    ram = 0.0 if ram_values is None else np.asarray(ram_values, np.float64)
    res = np.abs(c - (slope * ram + intercept))
    return AxisFit(float(slope), float(intercept), float(np.sqrt(np.mean(res**2))),
                   float(np.percentile(res, 95)), float(res.max()), len(c))


def fit_calibration(ram: np.ndarray, screens: np.ndarray, spec: ObjectSpec) -> Calibration:
    """Fit the object's RAM -> screen mapping on the frames (ram [N, 128] uint8, screens
    [N, H, W, 3] of the same states) where it is detected cleanly."""
    boxes = detect_objects(screens, spec)
    ok = np.isfinite(boxes[:, 0])
    b, r = boxes[ok], np.asarray(ram, np.float64)[ok]
    cy, cx = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    fit_x = fit_axis(None if spec.ram_x is None else r[:, spec.ram_x], cx)
    fit_y = fit_axis(None if spec.ram_y is None else r[:, spec.ram_y], cy)
    height = float(np.median(b[:, 2] - b[:, 0])) if ok.any() else float("nan")
    width = float(np.median(b[:, 3] - b[:, 1])) if ok.any() else float("nan")
    return Calibration(spec, fit_x, fit_y, height, width)


def predict_boxes(ram: np.ndarray, calibration: Calibration) -> np.ndarray:
    """ram [N, 128] -> float [N, 4] screen boxes from the fitted mapping."""
    r = np.asarray(ram, np.float64)
    spec = calibration.spec

    def centre(fit: AxisFit, address: int | None) -> np.ndarray:
        value = np.zeros(len(r)) if address is None else r[:, address]
        return fit.slope * value + fit.intercept

    cy, cx = centre(calibration.y, spec.ram_y), centre(calibration.x, spec.ram_x)
    h, w = calibration.height / 2, calibration.width / 2
    return np.stack([cy - h, cx - w, cy + h, cx + w], axis=1)


def visible_in_screens(screens: np.ndarray, boxes: np.ndarray, spec: ObjectSpec,
                       margin: int = 1) -> np.ndarray:
    """bool [N]: the object's colour appears inside its screen box grown by `margin` px."""
    mask = colour_mask(screens, spec)
    _, height, width = mask.shape
    out = np.zeros(len(boxes), bool)
    for i, (top, left, bottom, right) in enumerate(boxes):
        r0, c0 = max(int(np.floor(top)) - margin, 0), max(int(np.floor(left)) - margin, 0)
        r1 = min(int(np.ceil(bottom)) + margin, height)
        c1 = min(int(np.ceil(right)) + margin, width)
        out[i] = r1 > r0 and c1 > c0 and bool(mask[i, r0:r1, c0:c1].any())
    return out


def screen_to_obs_boxes(boxes: np.ndarray, screen_hw: tuple[int, int]) -> np.ndarray:
    """Screen boxes [N, 4] -> observation boxes (84x84: the area resize of the whole screen)."""
    sy, sx = OBS_SIZE / screen_hw[0], OBS_SIZE / screen_hw[1]
    return np.asarray(boxes, np.float64) * np.array([sy, sx, sy, sx])


def quadrant_boxes(positions: np.ndarray, size: int) -> np.ndarray:
    """Quadrant-v0 (y, x) top-left corners [N, 2] of the `size` px square -> boxes [N, 4]."""
    p = np.asarray(positions, np.float64)
    return np.concatenate([p, p + size], axis=1)


# --------------------------------------------------------------------------------------------
# frames with ground truth


@dataclass
class Frames:
    """Frames one agent played, with what ground truth needs. Leading axis: frame."""

    env_id: str
    obs: np.ndarray  # uint8 [N, 4, 84, 84]: what the networks receive
    screens: np.ndarray  # uint8 [N, H, W, 3]: RGB screen of the same state
    t: np.ndarray  # int [N]: env step since reset
    ram: np.ndarray | None = None  # uint8 [N, 128] (Atari): RAM of the same state
    positions: np.ndarray | None = None  # int [N, 2] (Quadrant-v0): the square's (y, x)
    # Atari: RAM [M, 128] and screens [M, H, W, 3] the mappings are fitted on: the N frames,
    # then the states of the steps played after them, M >= CALIBRATION_STATES
    calibration_ram: np.ndarray | None = None
    calibration_screens: np.ndarray | None = None


@dataclass
class ObjectTruth:
    """Ground truth of one object over the frames."""

    name: str
    boxes: np.ndarray  # float [N, 4] observation coordinates
    visible: np.ndarray  # bool [N]
    calibration: Calibration | None = None  # None: exact (Quadrant-v0)


def collect_frames(agent: Any, num_frames: int, seed: int = 0, policy: str = "sample",
                   warmup: int = 0, stride: int = 4,
                   progress: Callable[[int], None] | None = None,
                   calibration_states: int = CALIBRATION_STATES) -> Frames:
    """Play one agent on env seed `seed` and record every `stride`-th step after `warmup`
    (Atari: from step 1 on, the first state whose RAM a step returned). Atari: when fewer than
    `calibration_states` frames were recorded, play on and keep the screens and RAM of the
    following steps for fitting the RAM -> screen mappings. The play engine (`agents.play`)
    one step at a time, not `render.play`: Atari frames need the emulator RAM of each state
    and playing on past the recorded frames, Quadrant-v0 the env state's square."""
    import jax

    from attnjax.agents.play import make_chunk, start
    from attnjax.model.envs import QuadrantEnv, env_seeds, make_env

    env_id = agent.config.env_id
    env = make_env(env_id, env_seeds(seed, 1), render=True)
    quadrant = isinstance(env, QuadrantEnv)
    chunk = make_chunk([agent.network], env, policy, 1, ram=not quadrant)
    rec: dict[str, list] = {"obs": [], "screens": [], "t": [], "ram": [], "positions": []}
    extra: dict[str, list] = {"screens": [], "ram": []}
    ram = None
    try:
        state = start(env, jax.random.PRNGKey(seed)[None])  # [1, 2] key
        t = 0
        while len(rec["t"]) < num_frames or (
                not quadrant and len(rec["t"]) + len(extra["ram"]) < calibration_states):
            if len(rec["t"]) >= num_frames:  # calibration only: screen and RAM
                if ram is not None:
                    extra["screens"].append(np.asarray(env.render())[0])
                    extra["ram"].append(ram)
            elif (quadrant or ram is not None) and t >= warmup and (t - warmup) % stride == 0:
                rec["obs"].append(np.asarray(state.obs[0]))
                rec["screens"].append(np.asarray(env.render(state.env_state) if quadrant
                                                 else env.render())[0])
                rec["t"].append(t)
                if quadrant:
                    rec["positions"].append(np.asarray(state.env_state.position[0]))
                else:
                    rec["ram"].append(ram)
                if progress is not None:
                    progress(1)
            state, step = chunk([agent.params], state)
            if not quadrant:
                ram = np.asarray(step.ram[0, 0])  # [128]: the new state's
            t += 1
    finally:
        env.close()
    frames = Frames(env_id=env_id, obs=np.stack(rec["obs"]), screens=np.stack(rec["screens"]),
                    t=np.asarray(rec["t"]))
    if quadrant:
        frames.positions = np.stack(rec["positions"])
    else:
        frames.ram = np.stack(rec["ram"])
        frames.calibration_ram = np.concatenate([frames.ram, *[r[None] for r in extra["ram"]]])
        frames.calibration_screens = np.concatenate(
            [frames.screens, *[s[None] for s in extra["screens"]]])
    return frames


def ground_truth(frames: Frames) -> tuple[list[ObjectTruth], list[str]]:
    """Ground truth of every annotated object of the frames' game whose mapping holds, and
    notes on what was left out and why."""
    from attnjax.model.envs import QUADRANT_ENV_ID, QuadrantEnv

    if frames.env_id == QUADRANT_ENV_ID:
        boxes = quadrant_boxes(frames.positions, QuadrantEnv.object_size)
        return [ObjectTruth("square", boxes, np.ones(len(boxes), bool))], []
    specs = GAME_OBJECTS.get(game_name(frames.env_id), ())
    if not specs:
        return [], [f"{frames.env_id}: no AtariARI annotations here (annotated: "
                    f"{', '.join(GAME_OBJECTS)})"]
    objects, notes = [], []
    screen_hw = frames.screens.shape[1:3]
    for spec in specs:
        cal = fit_calibration(
            frames.ram if frames.calibration_ram is None else frames.calibration_ram,
            frames.screens if frames.calibration_screens is None else frames.calibration_screens,
            spec)
        if not cal.holds:
            notes.append(f"{spec.name}: RAM -> screen mapping does not hold on these frames "
                         f"({min(cal.x.frames, cal.y.frames)} clean detections, fit error "
                         f"{cal.rms:.2f} px; needs >= {MIN_DETECTIONS} and <= {MAX_RMS_PX} px)")
            continue
        screen = predict_boxes(frames.ram, cal)
        visible = visible_in_screens(frames.screens, screen, spec)
        objects.append(ObjectTruth(spec.name, screen_to_obs_boxes(screen, screen_hw), visible,
                                   cal))
    return objects, notes
