"""Training end to end: run folders, determinism, a grid equal to runs trained alone."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from attnjax import load_agent
from attnjax.training.config import TrainConfig
from attnjax.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(env_id="Quadrant-v0", total_timesteps=192, num_envs=4, num_steps=16,
            num_minibatches=2, update_epochs=1, wandb_mode="disabled", log_images_every=0)


def _params_close(a, b, atol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_short_breakout_training_writes_run_folder(tmp_path):
    cmd = [sys.executable, str(ROOT / "train.py"), "--env-id", "Breakout-v5",
           "--total-timesteps", "256", "--num-envs", "4", "--num-steps", "32",
           "--update-epochs", "1", "--num-minibatches", "2", "--attn-coef", "0.001",
           "--out-dir", str(tmp_path), "--wandb-mode", "disabled", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "Breakout__attn0.001__s0"
    config = json.loads((run / "config.json").read_text())
    assert config["attn_coef"] == 0.001 and config["env_id"] == "Breakout-v5"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["global_step"] for x in lines] == [128, 256]
    for key in ("attention_entropy", "policy_loss", "value_loss", "entropy", "approx_kl",
                "clipfrac", "learning_rate", "sps"):
        assert all(math.isfinite(x[key]) for x in lines), key
    assert all("episodic_return" in x and "episodic_length" in x for x in lines)
    assert (run / "attention.png").stat().st_size > 0
    agent = load_agent(run)
    assert agent.step == 256 and agent.config.attn_coef == 0.001


def test_same_seed_same_parameters_and_grid_equals_runs_alone(tmp_path):
    alone_a = train([TrainConfig(**TINY, attn_coef=0.01, seed=1, out_dir=str(tmp_path / "a"))])
    alone_b = train([TrainConfig(**TINY, attn_coef=0.01, seed=1, out_dir=str(tmp_path / "b"))])
    pa, pb = load_agent(alone_a[0]).params, load_agent(alone_b[0]).params
    for x, y in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bit for bit
    grid_base = TrainConfig(**TINY, out_dir=str(tmp_path / "grid"))
    from attnjax.training.config import expand_grid

    grid = train(expand_grid(grid_base, [0.01], [1, 2]))
    assert [d.name for d in grid] == ["Quadrant__attn0.01__s1", "Quadrant__attn0.01__s2"]
    _params_close(load_agent(grid[0]).params, pa, atol=1e-6)
    metrics_grid = (grid[0] / "metrics.jsonl").read_text().splitlines()
    metrics_alone = (alone_a[0] / "metrics.jsonl").read_text().splitlines()
    for g, a in zip(metrics_grid, metrics_alone, strict=True):
        g, a = json.loads(g), json.loads(a)
        for key in ("global_step", "episodic_return", "policy_loss", "attention_entropy"):
            if a[key] is None:
                assert g[key] is None, key
            else:
                assert g[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    # different seeds really differ
    with pytest.raises(AssertionError):
        _params_close(load_agent(grid[1]).params, pa, atol=1e-6)


def test_the_loop_with_its_own_callbacks_writes_nothing_and_trains_the_same(tmp_path):
    """run_iterations with a caller's callbacks (as a bench or a test uses it): no run folder,
    no file, and the same metrics lines train() writes for the same config."""
    from attnjax.training.callbacks import Callback
    from attnjax.training.loop import build_program, run_iterations

    config = TrainConfig(**TINY, attn_coef=0.01, seed=1, out_dir=str(tmp_path / "never"))

    class Collect(Callback):
        def __init__(self):
            self.lines, self.calls, self.closed = [], [], False

        def on_iteration(self, iteration, records):
            self.lines.append(records[0])

        def on_call(self, end):
            self.calls.append((end.iteration, end.final))

        def close(self):
            self.closed = True

    collect = Collect()
    program = build_program([config])
    try:
        run_iterations(program, program.state, [config], 0, [collect])
    finally:
        program.close()
    assert not (tmp_path / "never").exists() and collect.closed
    n = config.num_iterations
    assert collect.calls == [(i, i == n) for i in range(1, n + 1)]
    [run] = train([config])
    written = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(written) == n
    for mine, theirs in zip(collect.lines, written, strict=True):
        assert {k: v for k, v in mine.items() if k != "sps"} == \
            {k: v for k, v in theirs.items() if k != "sps"}


COLLECTIVE = re.compile(r"\b(all-reduce|all-gather|collective-permute|all-to-all|reduce-scatter)"
                        r"(-start)?\(")


def test_two_devices_give_the_same_results_as_one(tmp_path):
    """The runs axis sharded over 2 (forced host) devices equals 1 device, and no program the
    2-device training compiles holds a collective: the runs are independent, and XLA:CPU aborts
    a collective whose other device thread arrives over 40 s late, as on a busy machine (an
    all-reduce came from indexing the sharded state for a checkpoint)."""
    script = (
        "import sys, json; from attnjax.training.config import TrainConfig, expand_grid; "
        "from attnjax.training.loop import train; import jax; "
        "base = TrainConfig(**json.loads(sys.argv[1]), out_dir=sys.argv[2]); "
        "dirs = train(expand_grid(base, [0.0, 0.01], [1])); "
        "print(len(jax.devices()))"
    )
    # unrolled loops: with "split" (the CPU default on several devices) the runs are not sharded
    settings = json.dumps({**TINY, "log_images_every": 2, "loops": "unroll"})  # + images
    outputs = {}
    dump = tmp_path / "hlo"
    for devices in (1, 2):
        flags = f"--xla_force_host_platform_device_count={devices}"
        if devices == 2:
            flags += f" --xla_dump_to={dump} --xla_dump_hlo_as_text"
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)  # compile for real: the HLO dump is read
        out = tmp_path / f"d{devices}"
        proc = subprocess.run([sys.executable, "-c", script, settings, str(out)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines()[-1] == str(devices)
        outputs[devices] = out
    programs = sorted(dump.glob("*after_optimizations.txt"))
    assert any("num_partitions=2" in p.read_text() for p in programs), "nothing was sharded"
    with_collectives = [p.name for p in programs if COLLECTIVE.search(p.read_text())]
    assert with_collectives == [], with_collectives
    for name in ("Quadrant__attn0__s1", "Quadrant__attn0.01__s1"):
        _params_close(load_agent(outputs[1] / name).params,
                      load_agent(outputs[2] / name).params, atol=1e-5)
        one, two = ([json.loads(x) for x in (outputs[d] / name / "metrics.jsonl").open()]
                    for d in (1, 2))
        assert [x["global_step"] for x in one] == [x["global_step"] for x in two]
        for a, b in zip(one, two, strict=True):
            assert a["attention_entropy"] == pytest.approx(b["attention_entropy"], abs=1e-4)


@pytest.mark.parametrize("network", ["attention", "nature"])
def test_plan_counts_the_parameters_of_the_real_network(network):
    """The --dry-run plan's parameter count (shapes only) is the real network's."""
    from attnjax.model.envs import make_env
    from attnjax.model.networks import init_params, make_network
    from attnjax.training.loop import parameter_count

    config = TrainConfig(env_id="Breakout-v5", network=network, attn_heads=3)
    env = make_env(config.env_id, [0])
    params = init_params(make_network(network, env.num_actions, 3), jax.random.PRNGKey(0))
    env.close()
    assert parameter_count(config) == sum(x.size for x in jax.tree_util.tree_leaves(params))


def test_prepare_checks_everything_before_writing(tmp_path):
    """prepare (what --dry-run and train run first) refuses a bad env id, a bad config, a
    mixed grid and a new run over checkpoints, and writes nothing."""
    from attnjax.errors import UserError
    from attnjax.training.config import validate
    from attnjax.training.loop import prepare

    base = TrainConfig(**TINY, out_dir=str(tmp_path / "out"))
    run = tmp_path / "out" / "Quadrant__attn0__s0"
    assert prepare([base]) == ([run], False)
    bad = [{"env_id": "Quadrant-v9"}, {"num_envs": 0}, {"microbatch_size": 3},
           {"microbatch_size": -1}]
    needles = ["unknown env id", "--num-envs", "--microbatch-size 3 does not divide the "
               "minibatch of 32 rows", "--microbatch-size must be >= 0"]
    for change, needle in zip(bad, needles, strict=True):
        with pytest.raises(UserError, match=needle):
            prepare([TrainConfig(**{**TINY, **change}, out_dir=str(tmp_path / "out"))])
    validate(TrainConfig(**TINY, loops="split", microbatch_size=3))  # split ignores the flag
    with pytest.raises(UserError, match="must share num_steps"):
        prepare([base, TrainConfig(**{**TINY, "num_steps": 8}, attn_coef=0.5)])
    with pytest.raises(UserError, match="no checkpoint there"):
        prepare([base], resume=True)
    assert not (tmp_path / "out").exists()
    (run / "checkpoints" / "1").mkdir(parents=True)
    with pytest.raises(UserError, match="cannot read .*config.json"):
        prepare([base])  # checkpoints whose configuration cannot be read are not continued
    from attnjax.training.runs import write_config

    write_config(run, base)
    assert prepare([base]) == ([run], True)  # the same configuration: continued
    with pytest.raises(UserError, match="another configuration"):
        prepare([TrainConfig(**TINY, attn_coef=0.5, run_name=run.name,
                             out_dir=str(tmp_path / "out"))])
    assert prepare([base], resume=True) == ([run], True)


def test_plan_sizes_activations_by_the_rows_of_one_gradient_pass():
    """On CPU the paper preset's minibatch gradient runs in passes of 64 rows: the plan says so
    and sizes the activations by one pass, not by the whole minibatch."""
    from attnjax.training.loop import plan

    def memory_mib(text: str) -> float:
        return float(text.split("estimated device memory: ")[1].split(" MiB")[0].replace(",", ""))

    passes = plan([TrainConfig(env_id="Breakout-v5")])
    whole = plan([TrainConfig(env_id="Breakout-v5", microbatch_size=256)])
    assert "minibatches of 256, each gradient in passes of 64 rows;" in passes
    assert "passes of" not in whole
    assert memory_mib(passes) < memory_mib(whole)
