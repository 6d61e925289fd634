"""What the video tests share: agents with random parameters and reading an MP4 back."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import jax
import numpy as np

from attnjax.agents.load import Agent
from attnjax.model.networks import init_params, make_network
from attnjax.training.config import TrainConfig


@functools.cache  # one Agent per setting: its jitted apply compiles once per test process
def random_agent(env_id: str = "Quadrant-v0", seed: int = 0, attn_coef: float = 0.0,
                 num_actions: int = 4, network: str = "attention") -> Agent:
    config = TrainConfig(env_id=env_id, network=network, attn_coef=attn_coef, seed=seed)
    net = make_network(network, num_actions=num_actions)
    params = init_params(net, jax.random.PRNGKey(seed))
    return Agent(config=config, network=net, params=params, step=5000, iteration=1,
                 num_actions=num_actions, path=Path(f"/nowhere/run{seed}/checkpoints/1"))


def read_video(path: Path) -> list[np.ndarray]:
    """The MP4's frames, [H, W, 3] uint8 each."""
    import imageio.v2 as imageio

    with warnings.catch_warnings():  # ffmpeg is started by fork+exec
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        reader = imageio.get_reader(str(path), format="FFMPEG")
        try:
            return [np.asarray(f) for f in reader]
        finally:
            reader.close()
