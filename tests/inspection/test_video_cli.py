"""`visualize.py video`: two trained runs side by side and bad flags, --style paper equal to
the rendering it names, --saliency perturbation drawing a heatmap."""

from __future__ import annotations

import numpy as np
import pytest
from video_helpers import random_agent, read_video

from attnjax.errors import UserError
from attnjax.inspection import video as V


def test_cli_video_two_trained_runs(quadrant_grid, tmp_path, capsys):
    import visualize

    runs = [str(path) for path in quadrant_grid.values()]
    out = tmp_path / "two.mp4"
    assert visualize.run(
        ["video", "--run", runs[0], "--run", runs[1], "--out", str(out), "--frames", "40",
         "--stills", str(tmp_path / "stills"), "--no-progress"]) == 0
    assert "2 runs" in capsys.readouterr().out
    frames = read_video(out)
    assert len(frames) == 32  # one full Quadrant game
    layout = V.Layout((84, 84), 2)
    assert frames[0].shape[1] >= 2 * layout.width + V.GAP
    for bad, message in (
        (["--out", str(tmp_path / "x.gif")], ".mp4"),
        (["--out", str(out), "--label", "only-one"], "one --label per --run"),
        (["--out", str(out), "--fps", "0"], "--fps"),
    ):
        with pytest.raises(UserError, match=message):
            visualize.run(["video", "--run", runs[0], "--run", runs[1], *bad])


def test_cli_video_style_paper(tmp_path, monkeypatch, capsys):
    import imageio.v2 as imageio

    import visualize
    from attnjax.agents import load

    monkeypatch.setattr(load, "load_agent", lambda run: random_agent())
    assert visualize.run(
        ["video", "--run", "r", "--out", str(tmp_path / "c.mp4"), "--style", "paper",
         "--frames", "3", "--until", "frames", "--seed", "3", "--stills", str(tmp_path / "c"),
         "--stills-every", "1", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    V.write_video([random_agent()], tmp_path / "d.mp4", frames=3, until="frames", seed=3,
                  style="paper", stills=tmp_path / "d", stills_every=1)
    for i in range(3):
        np.testing.assert_array_equal(imageio.imread(tmp_path / "c" / f"c_{i:05d}.png"),
                                      imageio.imread(tmp_path / "d" / f"d_{i:05d}.png"))


def test_cli_video_draws_perturbation_saliency(tmp_path, monkeypatch, capsys):
    """Every registry method is a --saliency choice; perturbation (no noise samples) draws a
    heatmap the plain video does not have."""
    import visualize
    from attnjax.agents import load

    monkeypatch.setattr(load, "load_agent", lambda run: random_agent())
    common = ["video", "--run", "r", "--frames", "3", "--until", "frames", "--seed", "3",
              "--block", "3", "--no-progress"]
    assert visualize.run([*common, "--out", str(tmp_path / "p.mp4"), "--saliency",
                          "perturbation", "--target", "action"]) == 0
    assert visualize.run([*common, "--out", str(tmp_path / "n.mp4")]) == 0
    a, b = read_video(tmp_path / "p.mp4"), read_video(tmp_path / "n.mp4")
    assert len(a) == len(b) == 3
    assert np.abs(a[0].astype(int) - b[0]).mean() > 1.0
