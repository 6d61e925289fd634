"""The training loop around the compiled PPO iteration: run folders, checkpoints, resume,
metrics, W&B and progress, for one run or a lambda x seed grid trained in one program.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from attnjax.errors import UserError
from attnjax.model.envs import (
    QUADRANT_ENV_ID,
    EpisodeStats,
    env_seeds,
    make_env,
    planned_num_actions,
    validate_env_id,
)
from attnjax.model.networks import init_params, make_network
from attnjax.training import machine, runs
from attnjax.training.callbacks import (
    Callback,
    CallEnd,
    Checkpoints,
    MetricsFiles,
    ProgressLine,
    Tracking,
    run_slice,
    saved_state,
)
from attnjax.training.checkpoints import (
    CheckpointMismatch,
    RunCheckpointer,
    read_checkpoint_params,
)
from attnjax.training.config import RUN_DEFINING_FIELDS, TrainConfig, validate
from attnjax.training.ppo import (
    LOSS_METRICS,
    TrainState,
    device_mesh,
    init_state,
    make_iterate,
    resolve_execution,
    resolve_microbatch,
    rows_per_gradient_pass,
    shard_state,
)
from attnjax.training.tracking import clean_number

GRID_FIELDS = ("attn_coef", "seed", "run_name")


class TrainingDiverged(RuntimeError):
    """A loss became NaN/Inf; the last good checkpoint is kept."""


def check_grid(configs: list[TrainConfig]) -> None:
    """Runs in one program must share everything but lambda and seed; names must differ."""
    if not configs:
        raise UserError("nothing to train: give at least one --attn-coef and --seed")
    first = {k: v for k, v in configs[0].to_dict().items() if k not in GRID_FIELDS}
    for config in configs[1:]:
        other = {k: v for k, v in config.to_dict().items() if k not in GRID_FIELDS}
        differing = sorted(k for k in first if first[k] != other[k])
        if differing:
            raise UserError(
                f"runs trained together must share {', '.join(differing)}; resume runs of "
                "different settings separately"
            )
    names = [runs.run_name(c) for c in configs]
    if len(set(names)) != len(names):
        raise UserError("two runs of the grid have the same folder name; repeat no lambda/seed")


def prepare(configs: list[TrainConfig], resume: bool = False) -> tuple[list[Path], bool]:
    """Every check before anything is written or compiled, run once whether training or
    `--dry-run`: the env id, each config, the grid, the out dir and what the run folders hold
    (`runs.check_run_dirs`: checkpoints of the same configuration to continue from, nothing of
    another run to overwrite, `machine.check_machine_file`: no machine.json of another origin).
    Returns (run folders, whether they are continued); UserError."""
    for env_id in dict.fromkeys(c.env_id for c in configs):
        validate_env_id(env_id)
    for config in configs:
        validate(config)
    check_grid(configs)
    runs.check_out_dir_writable(configs[0].out_dir)
    dirs, continued = runs.check_run_dirs(configs, resume)
    for folder in dirs:
        machine.check_machine_file(folder)
    return dirs, continued


def parameter_count(config: TrainConfig) -> int:
    """The network's parameters, from their shapes alone (`jax.eval_shape`: nothing is
    initialised or compiled)."""
    network = make_network(config.network, planned_num_actions(config.env_id),
                           config.attn_heads)
    shapes = jax.eval_shape(functools.partial(init_params, network), jax.random.PRNGKey(0))
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes))


def plan(configs: list[TrainConfig], resume: bool = False) -> str:
    """What `--dry-run` prints: runs, steps, folders (and the checkpoint each continued run
    starts from) and a memory estimate."""
    c = configs[0]
    obs_bytes = 4 * 84 * 84
    params = parameter_count(c)
    state_bytes = 4 * params * 4  # params, Adam mu and nu, gradients (float32)
    rollout_bytes = c.batch_size * (obs_bytes + 5 * 4)
    # forward + backward activations of the rows computed at once (conv1 dominates), float32,
    # x3 for grads: one pass of the minibatch's gradient, or all of it split over the devices
    split = resolve_execution(c)[1] == "split"
    pass_rows = c.minibatch_size if split else resolve_microbatch(c)
    act_bytes = pass_rows * 4 * 3 * (20 * 20 * 32 * 2 + 9 * 9 * 64 * 2 + 49 * 64 * 4
                                     + 49 * 512 * 2 + obs_bytes)
    runs_parallel = len(configs) if c.runs_axis == "vmap" else 1
    total = len(configs) * (state_bytes + rollout_bytes) + runs_parallel * act_bytes
    lines = [
        f"plan: {len(configs)} run(s) of {c.env_id}, network {c.network}, one program",
        f"  {c.num_iterations} iterations x {c.batch_size} steps "
        f"({c.num_envs} envs x {c.num_steps}) = {c.num_iterations * c.batch_size:,} agent steps "
        f"per run, {len(configs) * c.num_iterations * c.batch_size:,} in all",
        f"  update: {c.update_epochs} epochs x {c.num_minibatches} minibatches of "
        f"{c.minibatch_size}"
        + (f", each gradient in passes of {pass_rows} rows"
           if pass_rows < c.minibatch_size else "")
        + f"; envs in one pool: {len(configs) * c.num_envs}",
        f"  estimated device memory: {total / 2**20:,.0f} MiB",
    ]
    for x in configs:
        line = f"  run: {runs.run_dir(x)}  (lambda={x.attn_coef:g}, seed={x.seed})"
        if resume:
            newest = runs.checkpoint_iterations(runs.run_dir(x))[-1]
            line += (f"  continues from checkpoint {newest} "
                     f"(step {newest * x.batch_size:,})")
        lines.append(line)
    return "\n".join(lines)


def make_env_pools(configs: list[TrainConfig], num_pools: int) -> tuple[list, Any, jax.Array]:
    """One env pool per device, each holding its block of runs' envs (every run keeps its own
    env seeds). Returns (pools, env state, first observations [R * N, 4, 84, 84]); with several
    pools the env state gains a leading [pools] axis."""
    per_pool = len(configs) // num_pools
    pools, states, observations = [], [], []
    for block in range(num_pools):
        members = configs[block * per_pool : (block + 1) * per_pool]
        seeds = [s for c in members for s in env_seeds(c.seed, c.num_envs)]
        pool = make_env(configs[0].env_id, seeds)
        env_state, obs = pool.reset()
        pools.append(pool)
        states.append(env_state)
        observations.append(obs)
    obs = jnp.concatenate(observations)
    if num_pools == 1:
        return pools, states[0], obs
    return pools, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states), obs


@dataclass
class Program:
    """What trains a list of runs together: their env pools (one per device of `mesh`), the
    network, the initial stacked state (not yet placed on the mesh) and the iteration."""

    envs: list
    network: Any
    state: TrainState
    iterate: Callable[[TrainState], tuple[TrainState, dict[str, jax.Array]]]
    mesh: Mesh | None

    @property
    def env(self) -> Any:
        return self.envs[0]

    def close(self) -> None:
        for pool in self.envs:
            pool.close()


def build_program(configs: list[TrainConfig]) -> Program:
    """The one place a training program is put together (train, benches, tests): env pools,
    network, fresh state and the compiled iteration for the configs' execution settings."""
    base = configs[0]
    # envpool's XLA step misbehaves when several device programs step pools concurrently
    # (seen with 2 forced host devices: diverging results), so only pure-JAX envs are sharded
    # (with loops="split" the devices share each minibatch instead)
    shardable = base.env_id == QUADRANT_ENV_ID and resolve_execution(base)[1] != "split"
    mesh = device_mesh(len(configs)) if shardable else None
    envs, env_state, obs = make_env_pools(configs, 1 if mesh is None else mesh.size)
    network = make_network(base.network, envs[0].num_actions, base.attn_heads)
    state = init_state(configs, network, env_state, obs)
    iterate = make_iterate(base, network, envs[0].step, len(configs), mesh=mesh,
                           reset_step_after_done=envs[0].reset_step_after_done)
    return Program(envs, network, state, iterate, mesh)


def _restore(state: TrainState, checkpointers: list[RunCheckpointer],
             configs: list[TrainConfig]) -> tuple[TrainState, int]:
    """Load every run from the newest iteration all runs have a good checkpoint of."""
    common = set.intersection(*(set(c.steps()) for c in checkpointers))
    stacked_runs = state.runs
    for iteration in sorted(common, reverse=True):
        restored = []
        try:
            for r, checkpointer in enumerate(checkpointers):
                run = run_slice(stacked_runs, r)
                # whose run wrote it was checked before anything was written (check_run_dirs)
                params, saved, _ = checkpointer.restore(iteration, run.params, saved_state(run))
                restored.append((params, saved))
        except CheckpointMismatch as err:  # another architecture, not corruption
            raise UserError(
                f"the checkpoints in {checkpointers[r].run_dir} do not fit the "
                f"{configs[r].network} network (K={configs[r].attn_heads}) their config.json "
                "names: they were written by another architecture; resume with the original "
                "config.json or train a new run"
            ) from err
        except Exception as err:  # noqa: BLE001 - corrupt checkpoint: use an older one
            import warnings

            warnings.warn(f"checkpoint {iteration} is unreadable ({type(err).__name__}: {err}); "
                          "trying an older one", stacklevel=2)
            continue
        new_runs = []
        for r, (params, saved) in enumerate(restored):
            run = run_slice(stacked_runs, r)
            stats: EpisodeStats = saved["stats"]
            stats = stats.replace(running_return=jnp.zeros_like(stats.running_return),
                                  running_length=jnp.zeros_like(stats.running_length))
            new_runs.append(run.replace(params=params, opt_state=saved["opt_state"],
                                        key=saved["key"], stats=stats,
                                        iteration=saved["iteration"]))
        stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *new_runs)
        return state.replace(runs=stacked), iteration
    raise UserError("no checkpoint iteration is readable for every run; train anew without "
                    "--resume")


def run_iterations(program: Program, state: TrainState, configs: list[TrainConfig],
                   start_iteration: int, callbacks: list[Callback]) -> TrainState:
    """Run compiled PPO iterations from `start_iteration` to the configs' total, handing every
    iteration's metrics lines and every call's state to the callbacks (closed at the end,
    normally or not). Raises TrainingDiverged at the first non-finite loss, after the lines of
    the iterations before it."""
    base, num_runs = configs[0], len(configs)
    per_call = program.iterate.iterations_per_call
    iteration = start_iteration
    try:
        while iteration < base.num_iterations:
            t0 = time.perf_counter()
            state, metrics = program.iterate(state)
            metrics = jax.device_get(metrics)  # each [I, R]
            sps = per_call * base.batch_size / (time.perf_counter() - t0)  # per run
            for i in range(per_call):
                iteration += 1
                records = [iteration_record(metrics, i, r, iteration, configs, sps)
                           for r in range(num_runs)]
                for callback in callbacks:
                    callback.on_iteration(iteration, records)
            end = CallEnd(iteration, state, sps, final=iteration >= base.num_iterations)
            for callback in callbacks:
                callback.on_call(end)
    finally:
        for callback in callbacks:
            callback.close()
    return state


def iteration_record(metrics: dict[str, np.ndarray], i: int, r: int, iteration: int,
                     configs: list[TrainConfig], sps: float) -> dict[str, Any]:
    """Run r's metrics line of the call's i-th iteration (metrics: each [I, R]);
    TrainingDiverged when its loss is not finite."""
    loss = float(metrics["loss"][i, r])
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at iteration {iteration} of run {runs.run_name(configs[r])}; "
            f"the last good checkpoint in {runs.run_dir(configs[r]) / runs.CHECKPOINT_DIR} is "
            "kept (try a smaller --learning-rate or --attn-coef)")
    record = {"iteration": iteration, "global_step": int(metrics["global_step"][i, r])}
    for key in ("episodic_return", "episodic_length", *LOSS_METRICS, "learning_rate"):
        record[key] = clean_number(metrics[key][i, r])
    if configs[0].network != "attention":
        record["attention_entropy"] = None
    record["sps"] = round(sps, 2)
    return record


def finished(checkpointers: list[RunCheckpointer], num_iterations: int) -> bool:
    """Whether every run has a readable checkpoint of its last iteration (a rerun of a
    finished grid then builds no env pool and compiles nothing; an unreadable last checkpoint
    leaves it to the resume, which falls back to an older one and trains again from there)."""
    for checkpointer in checkpointers:
        if num_iterations not in checkpointer.steps():
            return False
        try:
            read_checkpoint_params(checkpointer.run_dir, num_iterations)
        except Exception:  # noqa: BLE001 - corrupt or half-written: not finished
            return False
    return True


def train(configs: list[TrainConfig], progress: bool = False, resume: bool = False) -> list[Path]:
    """Train the runs (a grid shares one env pool and one compiled iteration) with the run
    folder's callbacks (metrics, W&B and pictures, checkpoints, progress); returns their run
    folders. Raises UserError for bad input (before compiling) and TrainingDiverged when a
    loss becomes non-finite."""
    _, resume = prepare(configs, resume)
    run_dirs = runs.create_run_dirs(configs, resume)
    base = configs[0]
    checkpointers = [RunCheckpointer(d, base.keep_checkpoints) for d in run_dirs]
    if resume and finished(checkpointers, base.num_iterations):  # said even with --quiet
        print(f"every run already holds its final checkpoint (iteration {base.num_iterations}, "
              f"{base.num_iterations * base.batch_size:,} steps); nothing to train", flush=True)
        return run_dirs
    program = build_program(configs)
    state = program.state
    start_iteration = 0
    if resume:
        state, start_iteration = _restore(state, checkpointers, configs)
        for run_dir, checkpointer in zip(run_dirs, checkpointers, strict=True):
            runs.truncate_metrics(run_dir, start_iteration * base.batch_size)
            checkpointer.discard_after(start_iteration)
    runs_axis, loops, _ = resolve_execution(base)
    machine.record_session(run_dirs, machine.session(start_iteration * base.batch_size,
                                                     len(configs), runs_axis, loops,
                                                     rows_per_gradient_pass(base)))
    state = shard_state(state, program.mesh)
    tracking = Tracking(configs, run_dirs, program.network)
    callbacks = [MetricsFiles(run_dirs), tracking, ProgressLine(configs, start_iteration, progress),
                 Checkpoints(configs, checkpointers, program.env.num_actions, tracking.run_ids)]
    if progress:
        continued = (f"; continuing from checkpoint {start_iteration}" if start_iteration
                     else "")
        print(plan(configs).splitlines()[0] + continued + "; compiling the PPO iteration...",
              flush=True)
    try:
        run_iterations(program, state, configs, start_iteration, callbacks)
    finally:
        program.close()
    return run_dirs


def merge_resume_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Apply command-line flags to a resumed run's config, refusing those that change its
    meaning."""
    changed = [k for k, v in overrides.items()
               if k in RUN_DEFINING_FIELDS and getattr(config, k) != v]
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise UserError(f"{flags} would change the meaning of the resumed run; leave "
                        f"{'it' if len(changed) == 1 else 'them'} out (the run keeps its own "
                        "config) or start a new run")
    allowed = {k: v for k, v in overrides.items() if k not in RUN_DEFINING_FIELDS
               and k not in ("out_dir", "run_name")}
    return dataclasses.replace(config, **allowed)
