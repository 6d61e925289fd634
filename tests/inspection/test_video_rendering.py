"""Attention videos: receptive-field geometry against brute-force perturbation and the screen
resize, overlay rectangles on the right screen pixels, screen and observation of the same env
step (Atari and Quadrant), synchronized runs, the two-row layout, MP4/PNG output, bad input,
and --style paper (the original's enjoy.py)."""

from __future__ import annotations

import functools
import math

import jax
import numpy as np
import pytest
from video_helpers import random_agent, read_video

from attnjax.agents.load import Agent, check_one_game
from attnjax.errors import UserError
from attnjax.inspection import render as R
from attnjax.inspection import video as V
from attnjax.model.envs import action_names
from attnjax.model.networks import CONV_GEOMETRY, CONV_LAYERS, init_params, make_network

ATARI = "Breakout-v5"


# --------------------------------------------------------------------------------------------
# geometry


def test_cell_receptive_fields_match_brute_force_perturbation(inverted_lines):
    """Flip one input row (or column) at a time and see which attention-logit rows change: the
    rows each cell reacts to are exactly the box `cell_box_obs` gives (rf 36, jump 8)."""
    net = make_network("attention", num_actions=4)
    params = init_params(net, jax.random.PRNGKey(0))
    base, lines = inverted_lines
    out = net.apply({"params": params}, np.concatenate([base[None], lines]))
    logits = np.asarray(out.activations["attention_logits"])  # [169, 7, 7, K]
    changed = np.abs(logits[1:] - logits[:1]).max(axis=-1) > 1e-6  # [168, 7, 7]
    assert CONV_GEOMETRY["conv3"] == (8, 36, 7)
    for i in range(7):
        for j in range(7):
            rows = np.nonzero(changed[:84, i, j])[0]
            cols = np.nonzero(changed[84:, i, j])[0]
            top, left, bottom, right = R.cell_box_obs(i, j)
            assert (rows.min(), rows.max() + 1) == (top, bottom), (i, j)
            assert (cols.min(), cols.max() + 1) == (left, right), (i, j)
            assert len(rows) == bottom - top and len(cols) == right - left
    # the same numbers by hand from CONV_LAYERS: rf = k1 + (k2-1) s1 + (k3-1) s1 s2
    (_, k1, s1), (_, k2, s2), (_, k3, s3) = CONV_LAYERS
    assert R.cell_box_obs(6, 6) == (6 * s1 * s2 * s3, 6 * s1 * s2 * s3,
                                    6 * s1 * s2 * s3 + k1 + (k2 - 1) * s1 + (k3 - 1) * s1 * s2,
                                    84)


def _screen_span(start: int, stop: int, n_screen: int) -> tuple[int, int]:
    """Screen pixels [a, b) that overlap observation pixels [start, stop) when n_screen pixels
    are box-filtered into 84: screen pixel p covers [p, p+1) x 84/n_screen in obs units."""
    hits = [p for p in range(n_screen)
            if p * 84 / n_screen < stop and (p + 1) * 84 / n_screen > start]
    return hits[0], hits[-1] + 1


@pytest.mark.parametrize("screen_hw", [(210, 160), (84, 84)])
def test_overlay_rectangle_covers_the_cells_screen_region(screen_hw):
    """A one-hot attention map lights exactly the screen pixels of that cell's receptive field,
    computed here independently from the conv strides and the resize ratio; at any upscale
    factor too. Outline-only drawing touches just the border."""
    h, w = screen_hw
    jump, size = 1, 1
    for _, kernel, stride in CONV_LAYERS:
        size += (kernel - 1) * jump
        jump *= stride
    black = np.zeros((h, w, 3), np.uint8)
    for (i, j) in [(0, 0), (3, 5), (6, 6), (6, 1)]:
        att = np.zeros((7, 7, 2))
        att[i, j, 1] = 1.0
        y0, y1 = _screen_span(i * jump, i * jump + size, h)
        x0, x1 = _screen_span(j * jump, j * jump + size, w)
        assert tuple(R.cell_boxes(screen_hw)[i, j]) == (y0, x0, y1, x1)
        for factor in (1, 2, 3):
            big = R.upscale(black, factor)
            drawn = R.draw_attention(big, att, upscaled=factor, fill=0.5, line=1)
            lit = drawn.max(axis=-1) > 0
            want = np.zeros(lit.shape, bool)
            want[y0 * factor : y1 * factor, x0 * factor : x1 * factor] = True
            np.testing.assert_array_equal(lit, want)
            # colour of head 1 in the box, nothing of head 0
            color = drawn[y0 * factor + 2, x0 * factor + 2].astype(float)
            assert np.argmax(color) == np.argmax(R.HEAD_COLORS[1])
        outline = R.draw_attention(black, att, fill=0.0, line=1)
        lit = outline.max(axis=-1) > 0
        assert lit.sum() == 2 * (y1 - y0) + 2 * (x1 - x0) - 4


def test_overlay_opacity_grows_from_twice_uniform_to_one_over_gain():
    att = np.zeros((7, 7, 1))
    att[1, 1, 0], att[5, 5, 0] = 0.1, 0.3
    white = np.full((84, 84, 3), 255, np.uint8)
    drawn = R.draw_attention(white, att, fill=1.0, line=0, gain=2.0)
    red = np.asarray(R.HEAD_COLORS[0], float)
    floor = 2 / 49  # twice uniform: not drawn; 1 / gain = 0.5: opaque
    # pixel inside only cell (1,1)'s box / only cell (5,5)'s box
    for (y, x), value in (((9, 9), 0.1), ((70, 70), 0.3)):
        want = 255 + (red - 255) * (value - floor) / (0.5 - floor)
        np.testing.assert_allclose(drawn[y, x], want, atol=1.0)
    frame_scaled = R.attention_opacity(att, "frame")
    assert frame_scaled[5, 5, 0] == 1.0 and frame_scaled[1, 1, 0] == pytest.approx(1 / 3)


def test_near_uniform_attention_draws_nothing():
    """An untrained agent's attention (every cell about 1/49) leaves the screen bare: no plaid
    of faint rectangles."""
    rng = np.random.default_rng(0)
    att = rng.dirichlet(np.full(49, 100.0), size=2).T.reshape(7, 7, 2)
    assert att.max() < 2 / 49
    screen = np.random.default_rng(1).integers(0, 255, (210, 160, 3), dtype=np.uint8)
    np.testing.assert_array_equal(R.draw_attention(screen, att), screen)
    att[3, 3, 1] = 0.1  # one cell at 5x uniform shows
    assert (R.draw_attention(screen, att) != screen).any()


def test_screen_and_observation_come_from_the_same_step_atari():
    """envpool box-filters the whole 210x160 screen to 84x84 (no crop; what the geometry
    assumes) and its newest stacked frame is the max over the last two emulator frames, so it
    holds every bright pixel of the screen rendered at that step: the grey resize of the screen
    exceeds the observation of the same step nowhere by more than rounding, while against the
    observation one step off, moving objects stick out by tens of grey levels."""
    agent = random_agent(ATARI, num_actions=4)
    frames = list(R.play([agent], 40, seed=3))

    def excess(screen_frame, obs_frame):
        return (R.screen_to_obs(screen_frame.screens[0]) - obs_frame.obs[0, -1]).max()

    for frame in frames:
        assert excess(frame, frame) < 2.0
        assert np.abs(R.screen_to_obs(frame.screens[0]) - frame.obs[0, -1]).mean() < 1.0
    off_by_one = [max(excess(frames[t], frames[t - 1]), excess(frames[t - 1], frames[t]))
                  for t in range(1, len(frames))]
    assert np.mean(np.array(off_by_one) > 10.0) > 0.75, np.round(off_by_one, 1)


# --------------------------------------------------------------------------------------------
# playing


def test_screen_and_observation_come_from_the_same_step_quadrant():
    frames = list(R.play([random_agent(), random_agent(seed=1)], 40, seed=7))
    assert len(frames) == 40
    for frame in frames:
        for r in range(2):
            np.testing.assert_array_equal(frame.screens[r, ..., 0], frame.obs[r, -1])
    # both agents' first screens are the same game (same env seed)
    np.testing.assert_array_equal(frames[0].screens[0], frames[0].screens[1])
    # Quadrant games last 32 steps: the episode counter moves on at t = 32
    assert frames[31].game_over.all() and frames[32].episode.tolist() == [1, 1]


def test_runs_play_synchronized_from_one_seed_atari():
    """Identical agents see identical games; different agents start the same game; the runs
    stay in lockstep (one env step per video frame for all)."""
    same = list(R.play([random_agent(ATARI), random_agent(ATARI)], 12, seed=5, policy="greedy"))
    for frame in same:
        np.testing.assert_array_equal(frame.screens[0], frame.screens[1])
        np.testing.assert_array_equal(frame.obs[0], frame.obs[1])
    other = list(R.play([random_agent(ATARI), random_agent(ATARI, seed=9)], 12, seed=5))
    np.testing.assert_array_equal(other[0].screens[0], other[0].screens[1])
    np.testing.assert_array_equal(other[0].screens[0], same[0].screens[0])
    assert [f.t for f in other] == list(range(12))


def test_stop_at_game_over_freezes_finished_runs():
    agents = [random_agent(), random_agent(seed=1)]
    frames = list(R.play(agents, 100, seed=0, stop_at_game_over=True))
    assert len(frames) == 32  # one Quadrant game each, then playing stops
    assert frames[-1].game_over.all() and frames[-1].active.all()
    warm = list(R.play([random_agent()], 5, seed=0, warmup=3, stride=2))
    assert [f.t for f in warm] == [3, 5, 7, 9, 11]


def test_finished_runs_keep_their_last_frame():
    """A run whose game is over shows its last frame while the others play on (the frames'
    arrays are writable copies, also where they came from JAX)."""
    frames = list(R.play([random_agent(), random_agent(seed=1)], 3, seed=0))
    for name in ("obs", "screens", "actions", "rewards", "returns", "logits", "values",
                 "attention"):
        assert getattr(frames[0], name).flags.writeable, name
    last, new = frames[1], frames[2]
    for name in ("obs", "screens", "actions", "logits"):  # as play() hands them out
        getattr(last, name).flags.writeable = False
    active = np.array([False, True])
    before = new.obs[1].copy()
    frozen = R.freeze_finished(new, last, active)
    np.testing.assert_array_equal(frozen.obs[0], last.obs[0])
    np.testing.assert_array_equal(frozen.screens[0], last.screens[0])
    np.testing.assert_array_equal(frozen.obs[1], before)
    assert not frozen.game_over[0]


def test_different_envs_are_refused():
    with pytest.raises(UserError, match="different games .*; side-by-side"):
        check_one_game([random_agent(), random_agent(ATARI)], "side-by-side videos need one")
    with pytest.raises(UserError, match="different games"):
        next(R.play([random_agent(), random_agent(ATARI)], 3))
    with pytest.raises(UserError, match="--policy"):
        next(R.play([random_agent()], 3, policy="random"))


# --------------------------------------------------------------------------------------------
# layout and files


def test_video_frame_layout_two_rows_from_the_same_step():
    """Top row: the screen (upscaled) with the overlay; bottom row: the observation of the same
    step; one column per run. With zero attention the top row is the bare screen."""
    agents = [random_agent(), random_agent(seed=1)]
    frame = next(R.play(agents, 1, seed=2))
    layout = V.Layout(frame.screens.shape[1:3], scale=2)
    frame.attention[:] = 0.0
    rgb = V.render_frame(layout, frame, ["a", "b"], [2, 2])
    assert rgb.shape[0] % 16 == 0 and rgb.shape[1] % 16 == 0
    for r in range(2):
        x = r * (layout.width + V.GAP)
        y0, x0, y1, x1 = layout.top
        np.testing.assert_array_equal(rgb[y0:y1, x + x0 : x + x1],
                                      R.upscale(frame.screens[r], 2))
        y0, x0, y1, x1 = layout.bottom
        np.testing.assert_array_equal(rgb[y0:y1, x + x0 : x + x1, 0],
                                      R.upscale(frame.obs[r, -1], layout.obs_scale))
    # real attention changes only the top row
    attended = next(R.play(agents, 1, seed=2))
    attended.attention[:] = 0.0
    attended.attention[0, 3, 3, 0] = 1.0
    rgb2 = V.render_frame(layout, attended, ["a", "b"], [2, 2])
    diff = np.abs(rgb2.astype(int) - rgb).max(axis=-1) > 0
    y0, x0, y1, x1 = layout.top
    assert diff[y0:y1, x0:x1].any()
    assert not diff[layout.bottom[0] : layout.bottom[2]].any()
    assert not diff[:, layout.width :].any()


def test_status_lines_name_the_action_and_label_the_head_colours():
    """Under the observation: the step, return and value, the action by name, then each head's
    peak against uniform behind a square of the head's colour; titles count steps in full."""
    agent = random_agent(ATARI, num_actions=4)
    frame = next(R.play([agent], 1, seed=2))
    frame.actions[:] = 1
    frame.attention[:] = 1 / 49
    frame.attention[0, 2, 2, 1] = 0.31
    info = V.frame_info(frame, 0, ("NOOP", "FIRE", "RIGHT", "LEFT"))
    lines = info.split("\n")
    assert lines[1] == "action FIRE"
    assert lines[2] == "head 0: peak 0.02 = 1.0× uniform"
    assert lines[3].startswith("head 1: peak 0.31 = 15× uniform")
    assert "action 1" in V.frame_info(frame, 0)  # an index when the names are unknown
    frame.attention[0, 2, 2, 0] = 0.5  # both heads' argmax on one cell: one box shows
    shared = V.frame_info(frame, 0).split("\n")
    assert shared[2].startswith("head 0: peak 0.50") and shared[3] == \
        "head 1: peak 0.31, on head 0's cell"
    assert V.run_label(agent) == "λ=0 · seed 0 · 5,000 steps"
    layout = V.Layout(frame.screens.shape[1:3], 2, status_lines=V.STEP_LINES + 2)
    rgb = V.render_frame(layout, frame, ["a"], [2], None, ("NOOP", "FIRE", "RIGHT", "LEFT"))
    assert layout.font >= 13
    for k in range(2):  # a square of head k's colour starts head k's line
        y = layout.bottom[2] + 4 + (V.STEP_LINES + k) * layout.title_h
        box = rgb[y : y + layout.title_h, :layout.font]
        assert (box == np.asarray(R.HEAD_COLORS[k], np.uint8)).all(axis=-1).sum() >= 60


def test_action_names_of_the_minimal_action_sets():
    assert action_names("Breakout-v5", 4) == ("NOOP", "FIRE", "RIGHT", "LEFT")
    assert action_names("Seaquest-v5", 18)[17] == "DOWNLEFTFIRE"
    assert action_names("Enduro-v5", 9)[1] == "FIRE"
    assert action_names("Quadrant-v0", 4)[0] == "top-left"
    assert action_names("Breakout-v5", 6) is None  # a count that does not fit: indices
    assert action_names("Alien-v5", 18) is not None and action_names("Pooyan-v5", 6) is None


def test_breakout_right_and_left_move_the_paddle_that_way():
    """envpool's action 2 is RIGHT and 3 is LEFT, as the names say."""
    import envpool

    env = envpool.make(ATARI, env_type="gymnasium", num_envs=1, noop_max=1)
    try:
        obs, _ = env.reset()

        def paddle(o):  # mean column of the bright paddle pixels near the bottom
            return np.nonzero(o[0, -1, 76:80].max(axis=0) > 100)[0].mean()

        start = paddle(obs)
        for _ in range(8):
            obs, *_ = env.step(np.array([2]))
        right = paddle(obs)
        for _ in range(8):
            obs, *_ = env.step(np.array([3]))
        assert right > start + 2 and paddle(obs) < right - 2
    finally:
        env.close()


def test_atari_layout_sizes():
    layout = V.Layout((210, 160), 2)
    assert layout.width == 320 and layout.obs_scale == 3
    assert layout.top[2] - layout.top[0] == 420
    assert layout.bottom[3] - layout.bottom[1] == 252


def test_write_video_mp4_and_stills(tmp_path):
    agents = [random_agent(attn_coef=0.0), random_agent(seed=1, attn_coef=0.005)]
    out = tmp_path / "v.mp4"
    summary = V.write_video(agents, out, frames=12, until="frames", seed=1, stills=tmp_path / "s",
                            stills_every=5, fps=10)
    frames = read_video(out)
    assert len(frames) == summary["frames"] == 12
    assert frames[0].shape == summary["shape"]
    stills = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert stills == ["v_00000.png", "v_00005.png", "v_00010.png", "v_00011.png"]
    import imageio.v2 as imageio

    first = imageio.imread(tmp_path / "s" / "v_00000.png")
    assert first.shape == frames[0].shape
    assert np.abs(first.astype(int) - frames[0]).mean() < 6  # H.264 is lossy
    assert summary["labels"][1].startswith("λ=0.005")
    assert not list(tmp_path.glob(".*tmp*"))


def test_saliency_video_draws_heatmaps(tmp_path):
    import argparse

    agents = [random_agent()]
    args = argparse.Namespace(saliency="smoothgrad", target="max_sum", layer="attention",
                              samples=2, spread=0.15, memory_budget_mb=256.0, block=4)
    setup = V.saliency_setup(args, agents)
    out = tmp_path / "s.mp4"
    V.write_video(agents, out, frames=6, until="frames", saliency_setup=setup, block=4,
                  stills=tmp_path / "st", stills_every=100)
    plain = tmp_path / "p.mp4"
    V.write_video(agents, plain, frames=6, until="frames", block=4)
    a, b = read_video(out), read_video(plain)
    assert len(a) == len(b) == 6
    assert np.abs(a[0].astype(int) - b[0]).mean() > 1.0
    nature = [random_agent(network="nature")]
    with pytest.raises(UserError, match="--target action"):
        V.saliency_setup(args, nature)


def test_pad_and_resize_helpers():
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    padded = R.pad_to_multiple(img, 4)
    assert padded.shape == (8, 8, 3) and np.array_equal(padded[:5, :7], img)
    assert R.resize_nearest(img, 10, 14).shape == (10, 14, 3)
    m = R.area_resize_matrix(210, 84)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert math.isclose(m[0, :3].sum(), 1.0) and m[0, 2] == pytest.approx(0.2)


# --------------------------------------------------------------------------------------------
# --style paper: as the original's enjoy.py drew the attention


def _transposed_conv_reference(attention: np.ndarray) -> np.ndarray:
    """The original's render_attn: conv2d_transpose of the heads' sum with a 36x36 kernel of
    ones, stride 8, VALID (here jax.lax.conv_transpose)."""
    summed = np.nansum(attention, axis=-1)[None, :, :, None].astype(np.float32)
    out = jax.lax.conv_transpose(summed, np.ones((36, 36, 1, 1), np.float32), (8, 8), "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return np.asarray(out)[0, :, :, 0]


def test_paper_attention_map_spreads_each_cell_over_its_receptive_field():
    att = np.zeros((7, 7, 3))
    att[2, 3, 1] = 0.5
    att[2, 4, 0] = 0.25
    att[..., 2] = np.nan  # a head padded for another run
    m = V.paper_attention_map(att)
    assert m.shape == (84, 84)
    assert m[16:52, 24:32].min() == m[16:52, 24:32].max() == 0.5  # cell (2, 3) alone
    assert np.all(m[16:52, 32:60] == 0.75)  # overlapping fields add
    assert np.all(m[16:52, 60:68] == 0.25)
    assert m.sum() == pytest.approx(36 * 36 * 0.75)
    rng = np.random.default_rng(0)
    att = rng.dirichlet(np.ones(49), size=2).T.reshape(7, 7, 2)
    np.testing.assert_allclose(V.paper_attention_map(att), _transposed_conv_reference(att),
                               rtol=1e-5)


@functools.cache
def _sharp_agent() -> Agent:
    """`random_agent()` with its attention logits x 30: attention peaked and moving with the frame,
    so frames differ in their 99th percentile."""
    agent = random_agent()
    params = jax.tree_util.tree_map(lambda p: p, agent.params)
    params["attn_logits"] = {**params["attn_logits"],
                             "kernel": 30.0 * params["attn_logits"]["kernel"]}
    return Agent(config=agent.config, network=agent.network, params=params, step=agent.step,
                 iteration=agent.iteration, num_actions=4, path=agent.path)


def test_paper_style_video_scales_by_the_videos_99th_percentile(tmp_path):
    import imageio.v2 as imageio

    agents = [_sharp_agent(), random_agent()]
    summary = V.write_video(agents, tmp_path / "p.mp4", frames=5, until="frames", seed=3,
                            style="paper", stills=tmp_path / "st", stills_every=1)
    frames = list(R.play(agents, 5, seed=3))
    maps = [np.stack([_transposed_conv_reference(a) for a in f.attention]) for f in frames]
    scale = max(np.percentile(m, 99) for m in maps)  # the largest frame's 99th percentile
    assert V.paper_scale(maps) == pytest.approx(scale)
    assert min(np.percentile(m, 99) for m in maps) < 0.8 * scale  # frames differ
    hw = frames[0].screens.shape[1:3]
    layout = V.Layout(hw, V.auto_scale(hw), style="paper", status_lines=V.STEP_LINES + 2)
    names = action_names("Quadrant-v0", 4)
    for i, frame in enumerate(frames):
        value = np.clip(maps[i] / scale, 0, 1)
        still = imageio.imread(tmp_path / "st" / f"p_{i:05d}.png")
        want = V.render_frame(layout, frame, summary["labels"], [2, 2], value, names)
        np.testing.assert_allclose(still, want, atol=1)
        own = np.percentile(maps[i], 99)
        if own < 0.9 * scale:  # its own scale would draw it brighter
            own_value = np.clip(maps[i] / own, 0, 1)
            assert np.abs(V.render_frame(layout, frame, summary["labels"], [2, 2], own_value,
                                         names) - still.astype(int)).max() > 8
        # the newest observation frame, blended half and half with the map, grey
        y0, x0, y1, x1 = layout.bottom
        s = layout.obs_scale
        blend = 0.5 * (frame.obs[0, -1].astype(float) + 255 * value[0])
        np.testing.assert_allclose(still[y0:y1:s, x0:x1:s, 0], blend, atol=1)
        np.testing.assert_array_equal(still[y0:y1, x0:x1, 0], still[y0:y1, x0:x1, 2])
    with pytest.raises(UserError, match="--style paper"):
        V.write_video([random_agent(network="nature")], tmp_path / "n.mp4", frames=2, style="paper")
