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
