"""Shared fixtures: agents trained once per test session on the tiny Quadrant-v0 env."""

from pathlib import Path

import pytest

QUADRANT_LAMBDA = 0.01
# Tuned on the 2-core CPU machine: ~2 minutes for both runs together (one compiled program).
QUADRANT_SETTINGS = dict(
    env_id="Quadrant-v0", total_timesteps=8192, num_envs=16, num_steps=32, num_minibatches=8,
    update_epochs=2, learning_rate=3e-3, ent_coef=0.0, wandb_mode="disabled",
    log_images_every=0, checkpoint_every=8,
)


@pytest.fixture(scope="session")
def quadrant_grid(tmp_path_factory) -> dict[float, Path]:
    """Run folders of attention agents trained on Quadrant-v0 with lambda = 0 and 0.01 (seed 0),
    trained together as one grid."""
    from attnjax.config import TrainConfig, expand_grid
    from attnjax.train import train

    out = tmp_path_factory.mktemp("quadrant")
    base = TrainConfig(**QUADRANT_SETTINGS, out_dir=str(out))
    runs = train(expand_grid(base, [0.0, QUADRANT_LAMBDA], [0]))
    return {0.0: runs[0], QUADRANT_LAMBDA: runs[1]}


@pytest.fixture(scope="session")
def quadrant_run(quadrant_grid) -> Path:
    """Run folder of an attention agent trained on Quadrant-v0 with lambda = 0.01: its attention
    concentrates near the bright square."""
    return quadrant_grid[QUADRANT_LAMBDA]
