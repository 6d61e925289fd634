"""The saliency .npz export: keys, shapes, no pickle, --obs round trip, bad input, the command
line on a trained run with the README's plotting snippet, and --preset paper (the original's
enjoy.py)."""

from __future__ import annotations

import functools
import json
import re
import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest
from saliency_helpers import HEADS

from attnjax.agents.load import Agent
from attnjax.errors import UserError
from attnjax.inspection.saliency import export as E
from attnjax.inspection.saliency import methods as S
from attnjax.model.networks import init_params, make_network
from attnjax.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "saliency_and_videos.md"
README = ROOT / "README.md"


@functools.cache  # one Agent per setting: its jitted apply compiles once per test module
def _agent(network: str = "attention", env_id: str = "Quadrant-v0") -> Agent:
    config = TrainConfig(env_id=env_id, network=network, attn_coef=0.001, seed=3)
    net = make_network(network, num_actions=4, num_heads=HEADS)
    params = init_params(net, jax.random.PRNGKey(0))
    return Agent(config=config, network=net, params=params, step=1234, iteration=7,
                 num_actions=4, path=Path("/nowhere/run/checkpoints/7"))


def test_export_writes_documented_keys_and_shapes_without_pickle(tmp_path):
    agent = _agent()
    config = S.SaliencyConfig(samples=3)
    out = tmp_path / "sal.npz"
    meta = E.export(agent, config, out, frames=6, seed=2)
    with np.load(out, allow_pickle=False) as data:
        files = set(data.files)
        arrays = {k: data[k] for k in files}
    expected = set(E.key_table(config.methods)) | {"metadata"}
    assert files == expected
    n = 6
    shapes = {
        "obs": (n, 4, 84, 84), "screens": (n, 84, 84, 3), "actions": (n,),
        "greedy_actions": (n,), "rewards": (n,), "episode": (n,), "env_step": (n,),
        "logits": (n, 4), "values": (n,), "attention": (n, 7, 7, HEADS), "target": (n,),
        "sigma": (n,), "metadata": (),
    }
    for m in config.methods:
        shapes[m] = (n, 4, 84, 84)
        shapes[f"{m}_max"] = (n, 84, 84)
    assert {k: arrays[k].shape for k in files} == shapes
    assert arrays["obs"].dtype == np.uint8 and arrays["screens"].dtype == np.uint8
    assert arrays["smoothgrad"].dtype == np.float32
    loaded = json.loads(arrays["metadata"][()])
    assert loaded == json.loads(json.dumps(meta, default=str))
    assert loaded["checkpoint_step"] == 1234 and loaded["seed"] == 2
    assert loaded["config"]["attn_coef"] == 0.001
    assert loaded["saliency"]["samples"] == 3 and loaded["saliency"]["target"] == "max_sum"
    assert set(loaded["keys"]) == files
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert loaded["versions"]["attnjax"] == pyproject["version"]  # installed or not
    np.testing.assert_array_equal(arrays["smoothgrad_max"], arrays["smoothgrad"].max(axis=1))
    # the screens are the env's, and they show the observation of the same step
    np.testing.assert_array_equal(arrays["screens"][..., 0], arrays["obs"][:, -1])
    assert np.all(arrays["env_step"] == np.arange(n))
    # every key is documented for users
    docs = DOCS.read_text()
    for key in [*E.KEYS, "<method>", "<method>_max"]:
        assert f"`{key}`" in docs, key


def test_export_from_obs_file_reproduces_played_export(tmp_path):
    agent = _agent()
    config = S.SaliencyConfig(samples=2)
    first = tmp_path / "a.npz"
    E.export(agent, config, first, frames=4, seed=5)
    second = tmp_path / "b.npz"
    meta = E.export(agent, config, second, obs_file=first, seed=5)
    assert meta["source"] == str(first)
    with np.load(first) as a, np.load(second) as b:
        for key in ("obs", "screens", "actions", "gradient", "smoothgrad", "vargrad",
                    "attention"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)
    third = tmp_path / "c.npz"
    np.savez(tmp_path / "bare.npz", obs=np.load(first)["obs"][:3])
    meta = E.export(agent, config, third, obs_file=tmp_path / "bare.npz", frames=2)
    assert meta["frames"] == 2 and meta["screens"].startswith("grey")


def test_export_bad_input(tmp_path):
    agent = _agent()
    config = S.SaliencyConfig(samples=2)
    with pytest.raises(UserError, match=r"\.npz"):
        E.export(agent, config, tmp_path / "x.h5", frames=2)
    with pytest.raises(UserError, match="does not exist"):
        E.export(agent, config, tmp_path / "x.npz", obs_file=tmp_path / "missing.npz")
    np.savez(tmp_path / "wrong.npz", frames=np.zeros((2, 84, 84), np.uint8))
    with pytest.raises(UserError, match="no `obs` key"):
        E.export(agent, config, tmp_path / "x.npz", obs_file=tmp_path / "wrong.npz")
    np.savez(tmp_path / "float.npz", obs=np.zeros((2, 4, 84, 84), np.float32))
    with pytest.raises(UserError, match="uint8"):
        E.export(agent, config, tmp_path / "x.npz", obs_file=tmp_path / "float.npz")
    with pytest.raises(UserError, match="--target action or --target value"):
        E.export(_agent("nature"), config, tmp_path / "x.npz", frames=2)
    with pytest.raises(UserError, match="--frames"):
        E.export(agent, config, tmp_path / "x.npz", frames=0)
    assert not list(tmp_path.glob("x*"))


def test_cli_exports_trained_run(quadrant_run, tmp_path, capsys, monkeypatch):
    import visualize

    out = tmp_path / "q.npz"
    assert visualize.run(
        ["saliency", "--run", str(quadrant_run), "--frames", "5", "--samples", "3",
         "--methods", "gradient,smoothgrad,vargrad", "--target", "max_sum", "--out", str(out),
         "--png", str(tmp_path / "png"), "--no-progress"]) == 0
    assert "wrote 5 PNGs" in capsys.readouterr().out
    with np.load(out) as data:
        meta = json.loads(data["metadata"][()])
        assert data["smoothgrad"].shape == (5, 4, 84, 84)
    assert meta["config"]["env_id"] == "Quadrant-v0" and meta["checkpoint_step"] > 0
    import imageio.v2 as imageio

    pngs = sorted((tmp_path / "png").iterdir())
    assert [p.name for p in pngs] == [f"frame_{i:03d}.png" for i in range(5)]
    assert imageio.imread(pngs[0]).shape[1] > 4 * 200  # the frame and three maps side by side
    # the README's snippet plots a map of this file on a log scale
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
                  if "LogNorm" in b]
    assert len(snippet.strip().splitlines()) <= 5
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saliency.npz").symlink_to(out)
    exec(compile(snippet, "README.md", "exec"), {})  # noqa: S102 - the project's own README
    assert [p for p in tmp_path.glob("*.png") if p.stat().st_size > 5_000]
    with pytest.raises(UserError):
        visualize.run(["saliency", "--run", str(tmp_path), "--out", str(out)])


# --------------------------------------------------------------------------------------------
# --preset paper: the original's enjoy.py


def test_saliency_preset_flags_and_overrides():
    import visualize
    from attnjax.inspection.presets import saliency_config_from_args

    def config(command, *flags):
        argv = [command, "--run", "r", "--out", "x.npz" if command == "saliency" else "x.mp4"]
        args = visualize.build_parser(command).parse_args([*argv, *flags])
        if command == "saliency":
            return E.config_from_args(args)
        return saliency_config_from_args(args, methods=("smoothgrad",))

    default = config("saliency")
    assert (default.target, default.layer, default.stack) == ("max_sum", "attention", "max")
    for command in ("saliency", "video"):  # the shared flags
        paper = config(command, "--preset", "paper")
        assert (paper.target, paper.layer, paper.samples, paper.spread, paper.magnitude,
                paper.stack) == ("sum", "attention_logits", 50, 0.15, "square", "newest")
        assert not paper.clean_first  # the original's noise-free copy 0 is not reproduced
        mixed = config(command, "--preset", "paper", "--samples", "7", "--stack", "max")
        assert (mixed.target, mixed.samples, mixed.stack) == ("sum", 7, "max")


def test_paper_preset_differentiates_the_summed_logits_and_keeps_the_newest_frame(tmp_path):
    from attnjax.inspection.presets import SALIENCY_PRESETS

    agent = _agent()
    config = S.SaliencyConfig(**{**SALIENCY_PRESETS["paper"], "samples": 2})
    out = tmp_path / "paper.npz"
    meta = E.export(agent, config, out, frames=3, seed=1)
    with np.load(out, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    logits = agent.apply(arrays["obs"]).activations["attention_logits"]
    np.testing.assert_allclose(arrays["target"], np.asarray(logits).sum(axis=(1, 2, 3)),
                               rtol=1e-5, atol=1e-5)
    for method in config.methods:
        assert f"{method}_max" not in arrays
        np.testing.assert_array_equal(arrays[f"{method}_newest"], arrays[method][:, -1])
    assert meta["saliency"]["stack"] == "newest" and "newest" in meta["keys"]["smoothgrad_newest"]
    # the gradient of the summed logits is not the constant-sum softmax's zero
    assert arrays["gradient"].max() > 1e-6
    assert "`<method>_newest`" in DOCS.read_text()
