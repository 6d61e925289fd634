"""Learning on the tiny Quadrant-v0 env, where we know where the object is."""

import json

import numpy as np
from conftest import QUADRANT_LAMBDA

from attnjax import load_agent
from attnjax.envs import QuadrantEnv, env_seeds

CHANCE_RETURN = 32 / 4  # 32-step episodes, 4 actions
RF_SIZE, RF_JUMP = 36, 8  # a conv3 cell i sees input rows 8i .. 8i+35


def _final(run, key):
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return lines[-1][key]


def cells_seeing_object(position: np.ndarray, size: int) -> np.ndarray:
    """[B, 49] mask of the 7x7 cells whose receptive field shows part of the object."""
    starts = np.arange(7) * RF_JUMP

    def axis(p):  # [B, 7]
        return (starts[None] < p[:, None] + size) & (p[:, None] < starts[None] + RF_SIZE)

    return (axis(position[:, 0])[:, :, None] & axis(position[:, 1])[:, None, :]).reshape(-1, 49)


def test_agent_learns_and_lambda_focuses_attention_on_the_object(quadrant_grid):
    """Measured on the 2-core CPU machine (8192 steps, lr 3e-3, both runs ~75 s together):
    the lambda = 0.01 agent's final full-game return is ~15 (chance 8) and it names the
    square's quadrant in ~66% of 512 fresh frames (chance 25%); its attention entropy ends
    ~3.8, against ~5.5 for lambda = 0. Its attention (mean of the heads) is sharp, ~0.42 of
    the mass on the attended cell against ~0.18 at lambda = 0, and the attended cell sees the
    square in every frame: its receptive field shows part of it in 100% of the frames, where
    a random cell does in ~35% (lambda = 0's attended cell also sees it, less sharply).
    A receptive field is 36 px wide, so "sees" is what "the object's cell" can mean here: the
    agent prefers cells that hold the square near a corner of their field, so the attended
    cell's 12 px square of the 7x7 screen grid is within one cell of the square's in only ~25%
    of frames; that reading of the issue is not asserted (see its closing note)."""
    focused, plain = quadrant_grid[QUADRANT_LAMBDA], quadrant_grid[0.0]
    final_return = _final(focused, "episodic_return")
    assert final_return > CHANCE_RETURN + 3, final_return
    assert _final(focused, "attention_entropy") < _final(plain, "attention_entropy") - 1.0

    env = QuadrantEnv(env_seeds(12345, 512))
    state, obs = env.reset()
    sees = cells_seeing_object(np.asarray(state.position), env.object_size)  # [512, 49]
    peak = {}
    for lam, run in quadrant_grid.items():
        out = load_agent(run).apply(obs)
        attention = np.asarray(out.attention).sum(-1).reshape(512, 49) / out.attention.shape[-1]
        peak[lam] = attention.max(-1).mean()
        if lam == QUADRANT_LAMBDA:
            attended = attention.argmax(-1)
            on_object = sees[np.arange(512), attended].mean()
            chance = sees.mean()
            assert on_object > 0.9 and on_object > chance + 0.2, (on_object, chance)
            quadrant = np.asarray(env.quadrant(state.position))
            assert np.mean(np.asarray(out.logits).argmax(-1) == quadrant) > 0.4  # chance 0.25
    assert peak[QUADRANT_LAMBDA] > 1.5 * peak[0.0], peak
