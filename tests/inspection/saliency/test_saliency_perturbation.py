"""Perturbation saliency (Greydanus et al. 2018) and the method registry: the blur, mask, grid
and upsampling geometry against SciPy and closed forms, the map of a hand-built network whose
outputs read one box of the frame, grid scores against a NumPy re-computation, batched = one
frame at a time, and `visualize.py saliency --methods perturbation`."""

from __future__ import annotations

import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from attnjax.errors import UserError
from attnjax.inspection.saliency import methods as S
from attnjax.inspection.saliency import perturbation as P
from attnjax.inspection.saliency import registry as R
from attnjax.model.networks import AgentOutput

ROOT = Path(__file__).resolve().parents[3]
BOX = (slice(30, 40), slice(50, 60))  # the only pixels BoxAgent reads (newest frame)


class BoxAgent(nn.Module):
    """Logits, value and attention read only the pixels of BOX in the newest stacked frame, so
    a perturbation changes the outputs only where its mask reaches the box."""

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32) / 255.0
        box = x[:, -1, BOX[0], BOX[1]].reshape(obs.shape[0], -1)  # [B, 100]
        init = nn.initializers.normal(1.0)
        logits = box @ self.param("pi", init, (100, 3))
        value = jnp.sum(jnp.square(box), axis=1)
        attention = (box @ self.param("att", init, (100, 98))).reshape(-1, 7, 7, 2)
        return AgentOutput(logits=logits, value=value, attention=attention,
                           activations={"attention_logits": attention})

    num_heads = 2


@pytest.fixture(scope="module")
def box():
    net = BoxAgent()
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((1, 4, 84, 84)))["params"]
    obs = np.random.default_rng(0).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    return net, params, obs


# --------------------------------------------------------------------------------------------
# geometry


def test_blur_is_scipys_gaussian_filter_with_sigma_3():
    frame = np.random.default_rng(1).random((84, 84)).astype(np.float32)
    want = gaussian_filter(frame.astype(np.float64), sigma=3.0)  # mode reflect, truncate 4
    np.testing.assert_allclose(np.asarray(P.blur(jnp.asarray(frame[None]))[0]), want,
                               atol=1e-5)


def test_mask_grid_and_upsampling_geometry():
    mask = np.asarray(P.gaussian_mask(jnp.array([20.0, 40.0])))
    assert mask.shape == (84, 84) and mask[20, 40] == 1.0 and mask.argmax() == 20 * 84 + 40
    np.testing.assert_allclose(mask[25, 40], np.exp(-0.5), rtol=1e-6)  # sigma 5: one sigma
    np.testing.assert_allclose(mask[20, 50], np.exp(-2.0), rtol=1e-6)
    centres = P.grid_centres()
    assert centres.shape == (289, 2) and P.points_per_frame() == 289
    assert list(P.grid_points()) == list(range(0, 81, 5))
    np.testing.assert_array_equal(centres[18], [5, 5])  # row-major: (1, 1) is the 19th
    grid = np.add.outer(np.arange(17.0), 2 * np.arange(17.0))  # a plane on the grid
    up = np.asarray(P.upsample(jnp.asarray(grid, jnp.float32)))
    assert up.shape == (84, 84)
    np.testing.assert_allclose(up[::5, ::5], grid, atol=1e-5)  # exact at the points
    rows = np.minimum(np.arange(84) / 5, 16)  # bilinear at the points' own coordinates
    np.testing.assert_allclose(up, np.add.outer(rows, 2 * rows), atol=1e-4)


def test_registry_is_what_the_config_and_flags_offer():
    assert tuple(R.SALIENCY_METHODS) == S.METHODS and "perturbation" in S.METHODS
    assert "perturbation" not in S.SaliencyConfig().methods  # not in the default: its cost
    assert not R.method("perturbation").noise_samples and R.method("vargrad").noise_samples
    config = S.SaliencyConfig(methods=("perturbation",))
    assert config.gradients_per_frame == 0 and config.forwards_per_frame == 289
    with pytest.raises(UserError, match="perturbation"):
        S.SaliencyConfig(methods=("perturb",))
    assert len({m.colour for m in R.SALIENCY_METHODS.values()}) == len(R.SALIENCY_METHODS)


# --------------------------------------------------------------------------------------------
# maps


def reference_score(net, params, frame, centre, target):
    """Greydanus et al.'s score at one grid point, in NumPy and SciPy."""
    x = frame.astype(np.float64) / 255.0
    blurred = np.stack([gaussian_filter(f, 3.0) for f in x])
    rr, cc = np.mgrid[:84, :84]
    mask = np.exp(-((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) / (2 * 5.0**2))
    perturbed = x * (1 - mask) + blurred * mask

    def readout(v):
        out = net.apply({"params": params}, jnp.asarray(v[None] * 255.0, jnp.float32))
        return np.asarray(S.readout(out, target))[0].astype(np.float64)

    weight = 0.5 if target == "action" else 1.0  # ½ ||Δπ||², (ΔV)², (Δ attention target)²
    return weight * np.sum((readout(x) - readout(perturbed)) ** 2)


@pytest.mark.parametrize("target", ["action", "value", "max_sum"])
def test_map_peaks_on_the_only_region_that_changes_the_outputs(box, target):
    net, params, obs = box
    config = S.SaliencyConfig(methods=("perturbation",), target=target)
    result = S.compute_saliency(net, params, obs[:1], config)
    maps = result.maps["perturbation"][0]  # [4, 84, 84]
    for k in range(1, 4):  # the mask covers the four stacked frames alike
        np.testing.assert_array_equal(maps[k], maps[0])
    peak = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert 30 - 5 <= peak[0] < 40 + 5 and 50 - 5 <= peak[1] < 60 + 5, peak
    assert maps[0][:5, :5].max() < 1e-6 * maps[0].max()  # far from the box: nothing
    for i, j in ((7, 11), (6, 10), (2, 2)):  # grid points: the box's, near it, far away
        want = reference_score(net, params, obs[0], (5 * i, 5 * j), target)
        np.testing.assert_allclose(maps[0][5 * i, 5 * j], want, rtol=2e-3,
                                   atol=1e-6 * maps[0].max())


def test_batched_equals_one_frame_at_a_time_with_gradient_methods(box):
    net, params, obs = box
    config = S.SaliencyConfig(methods=("gradient", "smoothgrad", "perturbation"),
                              target="action", samples=3)
    key = jax.random.PRNGKey(4)
    chunked = S.compute_saliency(net, params, obs, config, key, chunk_frames=2)
    whole = S.compute_saliency(net, params, obs, config, key, chunk_frames=3,
                               schedule=S.Schedule())  # the accelerators' one-call walk
    one = S.make_frame_saliency(net, config)
    keys = S.frame_keys(key, len(obs))
    for f in range(len(obs)):
        single = one(params, jnp.asarray(obs[f] / 255.0, jnp.float32), keys[f],
                     jnp.float32(chunked.sigma[f]))
        for m in config.methods:
            for result in (chunked, whole):
                np.testing.assert_allclose(result.maps[m][f], np.asarray(single[m]),
                                           rtol=1e-4, atol=1e-7, err_msg=m)


def test_cli_exports_perturbation_maps(tmp_path, capsys):
    import visualize

    obs = np.random.default_rng(2).integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)
    np.savez(tmp_path / "frames.npz", obs=obs)
    out = tmp_path / "p.npz"
    assert visualize.run(
        ["saliency", "--run", str(ROOT / "agents" / "Breakout__attn0.005__s1"), "--obs",
         str(tmp_path / "frames.npz"), "--methods", "perturbation", "--target", "action",
         "--out", str(out), "--no-progress"]) == 0
    assert "perturbation" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as data:
        assert data["perturbation"].shape == (2, 4, 84, 84)
        np.testing.assert_array_equal(data["perturbation_max"], data["perturbation"][:, -1])
        assert "gradient" not in data.files and data["perturbation"].max() > 0
        meta = json.loads(data["metadata"][()])
    assert meta["saliency"]["methods"] == ["perturbation"]
    assert "Greydanus" in meta["keys"]["perturbation"]
    with pytest.raises(UserError, match="choose from gradient, .*perturbation"):
        visualize.run(["saliency", "--run", str(tmp_path), "--methods", "perturb",
                       "--out", str(out)])


def test_saliency_flags_are_one_set_shared_by_export_video_and_report():
    import visualize
    from attnjax.metrics import report

    def parse(command, *flags):
        out = {"saliency": "x.npz", "video": "x.mp4", "metrics": "dir"}[command]
        return visualize.build_parser(command).parse_args([command, "--run", "r", "--out", out,
                                                           *flags])

    def flag_help(command):
        parser = visualize.build_parser(command)
        (sub,) = (a for a in parser._actions if a.dest == "command")
        return {a.dest: a.help for a in sub.choices[command]._actions}

    helps = {c: flag_help(c) for c in ("saliency", "video", "metrics")}
    for dest in ("samples", "layer", "stack", "memory_budget_mb", "preset"):
        assert helps["saliency"][dest] == helps["video"][dest] == helps["metrics"][dest], dest
    assert all("(both presets: 0.15)" in helps[c]["spread"] for c in helps)  # over its range
    for command in ("saliency", "metrics"):
        assert all(m in helps[command]["methods"] for m in S.METHODS)
    (video_saliency,) = (a for a in visualize.build_parser("video")._subparsers._actions[-1]
                         .choices["video"]._actions if a.dest == "saliency")
    assert tuple(video_saliency.choices) == ("none", *S.METHODS)
    settings = report.check_args(parse("metrics", "--methods", "perturbation"))
    assert settings["targets"] == ("max_sum", "action")
    assert settings["config"] == S.SaliencyConfig(methods=("perturbation",))
    paper = report.check_args(parse("metrics", "--preset", "paper", "--samples", "9"))
    assert paper["targets"] == ("sum", "action")
    assert (paper["config"].layer, paper["config"].samples) == ("attention_logits", 9)
