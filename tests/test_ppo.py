"""The compiled PPO iteration (attnjax.ppo): what reaches the losses."""

import jax
import numpy as np
import pytest

from attnjax.config import TrainConfig
from attnjax.envs import QuadrantEnv
from attnjax.networks import make_network
from attnjax.ppo import init_state, make_iterate


class EveryStepEnds(QuadrantEnv):
    """Quadrant-v0 whose episodes last one step, flagged like envpool: every step after the
    first follows a done, so with the reset-step mask no transition but the first may train."""

    def __init__(self, seeds, reset_step_after_done):
        super().__init__(seeds, episode_length=1)
        self.reset_step_after_done = reset_step_after_done


@pytest.mark.parametrize("reset_step_after_done", [True, False])
def test_reset_steps_are_masked_out_of_the_losses(reset_step_after_done):
    config = TrainConfig(env_id="Quadrant-v0", num_envs=4, num_steps=8, num_minibatches=1,
                         update_epochs=1, total_timesteps=64, wandb_mode="disabled")
    env = EveryStepEnds([0, 1, 2, 3], reset_step_after_done)
    network = make_network("nature", env.num_actions)
    state = init_state([config], network, *env.reset())
    iterate = make_iterate(config, network, env.step, 1,
                           reset_step_after_done=env.reset_step_after_done)
    state, first = iterate(state)  # step 0 of each env starts fresh: 4 of 32 transitions valid
    state, second = iterate(state)  # every transition follows a done
    second = jax.device_get(second)
    if reset_step_after_done:
        assert float(jax.device_get(first)["entropy"][0, 0]) > 1.0
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"):
            assert float(second[name][0, 0]) == 0.0, name
    else:
        assert float(second["entropy"][0, 0]) == pytest.approx(np.log(4), rel=0.05)
        assert float(second["value_loss"][0, 0]) > 0.0


SPLIT_SCRIPT = r"""
import json, sys
import jax, numpy as np
from attnjax.devices import use_cpu_cores_as_devices
use_cpu_cores_as_devices(2)
from attnjax.config import TrainConfig
from attnjax.envs import QuadrantEnv
from attnjax.networks import make_network
from attnjax.ppo import init_state, make_iterate

results = {}
for loops in ("split", "unroll"):
    config = TrainConfig(env_id="Quadrant-v0", num_envs=4, num_steps=16, num_minibatches=2,
                         update_epochs=2, total_timesteps=256, attn_coef=0.01, loops=loops,
                         learning_rate=1e-3, wandb_mode="disabled")
    env = QuadrantEnv([0, 1, 2, 3], episode_length=3)
    env.reset_step_after_done = True  # masked rows inside the minibatches as well
    network = make_network("attention", env.num_actions)
    state = init_state([config], network, *env.reset())
    iterate = make_iterate(config, network, env.step, 1, reset_step_after_done=True)
    metrics = []
    for _ in range(3):
        state, m = iterate(state)
        metrics.append({k: float(np.asarray(v)[0, 0]) for k, v in jax.device_get(m).items()})
    leaves = [np.asarray(x).ravel() for x in jax.tree_util.tree_leaves(state.runs.params)]
    results[loops] = {"params": np.concatenate(leaves).tolist(), "metrics": metrics,
                      "devices": len(getattr(iterate, "devices", [None])),
                      "key": np.asarray(state.runs.key).tolist()}
print(json.dumps(results))
"""


def test_split_over_two_host_devices_trains_as_the_unrolled_loop():
    """loops="split" (each minibatch's rows on 2 host devices, gradients summed on device 0)
    gives the parameters and metrics of the unrolled in-program loop, masked rows included."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "-c", SPLIT_SCRIPT], capture_output=True, text=True,
                         env=env, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    split, unroll = results["split"], results["unroll"]
    assert split["devices"] == 2
    assert split["key"] == unroll["key"]
    np.testing.assert_allclose(split["params"], unroll["params"], rtol=1e-4, atol=1e-6)
    for ms, mu in zip(split["metrics"], unroll["metrics"], strict=True):
        assert ms.keys() == mu.keys()
        for name in ms:
            assert ms[name] == pytest.approx(mu[name], rel=1e-3, abs=1e-6), name
    # the runs did learn something: parameters moved away from their initial values
    assert split["metrics"][0]["approx_kl"] > 0
