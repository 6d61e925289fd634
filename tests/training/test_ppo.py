"""The compiled PPO iteration (attnjax.training.ppo): what reaches the losses."""

import dataclasses

import jax
import numpy as np
import pytest

from attnjax.model.envs import QuadrantEnv
from attnjax.model.networks import init_params, make_network
from attnjax.training.config import TrainConfig
from attnjax.training.ppo import init_state, make_iterate


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
from attnjax.training.config import TrainConfig
from attnjax.model.envs import QuadrantEnv
from attnjax.model.networks import make_network
from attnjax.training.ppo import init_state, make_iterate

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
                         env=env, cwd=Path(__file__).resolve().parents[2], timeout=600)
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


# --------------------------------------------------------------------------------------------
# the accelerator forms of the iteration, run on CPU against the CPU form

ACCEL_ITERATIONS = 2


def _two_run_grid() -> tuple[TrainConfig, list[TrainConfig], QuadrantEnv]:
    """A 2-run grid (lambda 0 and 0.01, seeds 0 and 1) on Quadrant-v0 episodes of 3 steps."""
    from attnjax.model.envs import env_seeds

    base = TrainConfig(env_id="Quadrant-v0", num_envs=4, num_steps=8, num_minibatches=2,
                       update_epochs=1, total_timesteps=32 * 8, learning_rate=1e-3,
                       microbatch_size=8, wandb_mode="disabled")  # 2 passes per minibatch
    configs = [dataclasses.replace(base, attn_coef=0.0, seed=0),
               dataclasses.replace(base, attn_coef=0.01, seed=1)]
    env = QuadrantEnv([s for c in configs for s in env_seeds(c.seed, c.num_envs)],
                      episode_length=3)
    return base, configs, env


def _train_two_iterations(initial, runs_axis: str, loops: str, per_call: int) -> tuple:
    """The grid trained ACCEL_ITERATIONS iterations from the host state `initial` with the given
    execution flags -> (final runs state, metrics of every iteration, each [R])."""
    base, configs, env = _two_run_grid()
    config = dataclasses.replace(base, runs_axis=runs_axis, loops=loops,
                                 iterations_per_call=per_call)
    network = make_network("attention", env.num_actions)
    iterate = make_iterate(config, network, env.step, len(configs),
                           reset_step_after_done=env.reset_step_after_done)
    assert iterate.iterations_per_call == per_call
    state = jax.tree_util.tree_map(jax.numpy.asarray, initial)  # a fresh copy: it is donated
    metrics = []
    for _ in range(ACCEL_ITERATIONS // per_call):
        state, m = iterate(state)
        m = jax.device_get(m)
        metrics += [{k: v[i] for k, v in m.items()} for i in range(per_call)]
    return jax.device_get(state.runs), metrics


def test_accelerator_form_trains_as_the_cpu_form():
    """The GPU defaults (--runs-axis vmap, --loops scan, 2 iterations per call) give the
    parameters, optimizer state, RNG keys, episode statistics and metrics of the CPU form (map,
    unroll, 1 per call) after 2 iterations of a 2-run grid: scan equals unroll, vmap equals
    map, and the scan over iterations carries everything (gradients in 2 passes per minibatch
    in both, so the passes' barriers run under vmap and inside scan too)."""
    _, configs, env = _two_run_grid()
    network = make_network("attention", env.num_actions)
    initial = jax.device_get(init_state(configs, network, *env.reset()))
    want_runs, want_metrics = _train_two_iterations(initial, "map", "unroll", 1)
    runs, metrics = _train_two_iterations(initial, "vmap", "scan", 2)
    np.testing.assert_array_equal(runs.key, want_runs.key)
    np.testing.assert_array_equal(runs.iteration, want_runs.iteration)
    for got, want in zip(jax.tree_util.tree_leaves((runs.params, runs.opt_state)),
                         jax.tree_util.tree_leaves((want_runs.params, want_runs.opt_state)),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for got, want in zip(jax.tree_util.tree_leaves(runs.stats),
                         jax.tree_util.tree_leaves(want_runs.stats), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(metrics) == len(want_metrics) == ACCEL_ITERATIONS
    for got, want in zip(metrics, want_metrics, strict=True):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6,
                                       err_msg=name)
    # both runs trained, each its own way
    assert float(np.min(want_metrics[0]["approx_kl"])) > 0
    assert not np.allclose(want_metrics[-1]["policy_loss"][0], want_metrics[-1]["policy_loss"][1])


# --------------------------------------------------------------------------------------------
# microbatched minibatch gradients

def test_microbatch_default_is_64_rows_on_cpu_where_it_divides_a_larger_minibatch():
    from attnjax.training.ppo import resolve_microbatch

    paper = TrainConfig()  # 8 envs x 128 steps / 4 minibatches = 256 rows
    assert resolve_microbatch(paper, "cpu") == 64
    assert resolve_microbatch(paper, "gpu") == 256
    assert resolve_microbatch(dataclasses.replace(paper, microbatch_size=32), "gpu") == 32
    assert resolve_microbatch(dataclasses.replace(paper, num_minibatches=2), "cpu") == 64
    for minibatches in (16, 8, 4):  # 64 rows: already small; 128: halved; 96 rows: no 64
        config = dataclasses.replace(paper, num_minibatches=minibatches,
                                     num_steps=48 if minibatches == 4 else 128)
        want = 64 if minibatches == 8 else config.minibatch_size
        assert resolve_microbatch(config, "cpu") == want, config.minibatch_size


def _quadrant_config(microbatch_size: int) -> TrainConfig:
    """A Quadrant-v0 attention run with minibatches of 32 rows."""
    return TrainConfig(env_id="Quadrant-v0", num_envs=4, num_steps=16, num_minibatches=2,
                       update_epochs=2, total_timesteps=256, attn_coef=0.01,
                       learning_rate=1e-3, microbatch_size=microbatch_size,
                       wandb_mode="disabled")


def test_minibatch_gradient_is_one_barrier_ordered_pass_per_microbatch():
    """make_minibatch_gradient computes 32 rows as 4 passes of 8, each ordered after the
    previous one's sum (3 barriers), and one pass without a barrier when the sizes agree."""
    from attnjax.training.losses import Minibatch
    from attnjax.training.ppo import make_minibatch_gradient

    network = make_network("attention", 4)
    params = init_params(network, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch = Minibatch(rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8),
                      np.zeros(32, np.int32), np.full(32, -1.4, np.float32),
                      np.zeros(32, np.float32), rng.normal(size=32).astype(np.float32),
                      rng.normal(size=32).astype(np.float32), np.ones(32, bool))
    for size, barriers in ((8, 3), (32, 0)):
        gradient = make_minibatch_gradient(_quadrant_config(size), network, "cpu")
        program = str(jax.make_jaxpr(gradient)(params, batch, np.float32(0.01)))
        assert program.count("optimization_barrier") == barriers, size


def _train_quadrant(microbatch_size: int, iterations: int = 3) -> tuple[list, list[dict]]:
    """Parameters and per-iteration metrics of a Quadrant-v0 attention run (minibatches of 32
    rows with masked reset steps among them) trained with the given --microbatch-size."""
    from attnjax.training.ppo import resolve_microbatch

    config = _quadrant_config(microbatch_size)
    assert resolve_microbatch(config) == microbatch_size
    env = QuadrantEnv([0, 1, 2, 3], episode_length=3)
    network = make_network("attention", env.num_actions)
    state = init_state([config], network, *env.reset())
    iterate = make_iterate(config, network, env.step, 1, reset_step_after_done=True)
    metrics = []
    for _ in range(iterations):
        state, m = iterate(state)
        metrics.append({k: float(np.asarray(v)[0, 0]) for k, v in jax.device_get(m).items()})
    leaves = jax.tree_util.tree_leaves(jax.device_get(state.runs.params))
    return leaves, metrics


def test_microbatched_gradients_train_as_whole_minibatch_gradients():
    """--microbatch-size 8 (each minibatch of 32 rows as 4 passes, gradients summed) gives the
    parameters and metrics of one pass over the minibatch, up to float rounding; the masked
    reset steps and the per-minibatch advantage normalization span the whole minibatch."""
    whole_params, whole_metrics = _train_quadrant(32)
    micro_params, micro_metrics = _train_quadrant(8)
    for got, want in zip(micro_params, whole_params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for got, want in zip(micro_metrics, whole_metrics, strict=True):
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-6), name
    assert whole_metrics[0]["approx_kl"] > 0  # the run did train
    # two more iterations move the parameters by far more than the two paths differ
    first = _train_quadrant(32, iterations=1)[0]
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(first, whole_params, strict=True)]
    assert max(moved) > 1e-3
