"""The compiled PPO iteration: rollout (lax.scan over env steps) -> GAE -> epochs x minibatches
of clipped-PPO updates, for R runs at once (a lambda x seed grid; a single run is R = 1).

Pure functions: `init_state` builds the stacked per-run state, `make_iterate` returns one
jit-compiled function `iterate(state) -> (state, metrics)` doing `iterations_per_call` PPO
iterations. Execution choices follow the measured facts in docs/design.md:
- loops="unroll": epochs x minibatches unrolled in Python. XLA:CPU runs conv gradients inside a
  scan/while ~13x slower, so this is the CPU default; "scan" (GPU/TPU default) keeps the program
  small.
- microbatch (`resolve_microbatch`, --microbatch-size): on CPU each minibatch's gradient is
  the sum of passes over 64 of its rows, whose activations stay in cache; one pass elsewhere.
- loops="split" (see `split_devices`): the epochs x minibatches loop runs in Python; each
  minibatch's rows are split over the host devices (one per core), their loss gradients
  computed side by side and summed on device 0. No collective is involved (XLA:CPU aborts a
  collective whose devices arrive 40 s apart on a busy machine).
- runs_axis="map": the runs' work is laid out one after another in the program (vmapped
  convolutions with different parameters are 1.7x slower on CPU); "vmap" batches them
  (accelerators).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from attnjax.devices import eigen_convolution_options
from attnjax.model.envs import EpisodeStats, StepResult
from attnjax.model.networks import init_params
from attnjax.training.config import TrainConfig
from attnjax.training.losses import (
    LossCoefficients,
    Minibatch,
    categorical_log_prob,
    gae,
    minibatch_advantages_and_weights,
    ppo_loss,
    valid_transitions,
    weighted_ppo_loss,
)

# Per-iteration metrics, each [R] per iteration; averaged over all minibatch updates.
LOSS_METRICS = (
    "loss", "policy_loss", "value_loss", "entropy", "attention_entropy", "approx_kl", "clipfrac",
)


@struct.dataclass
class RunState:
    """Everything one run carries between iterations; stacked on a leading [R] axis."""

    params: Any
    opt_state: Any
    key: jax.Array  # [2] uint32
    stats: EpisodeStats
    obs: jax.Array  # [N, 4, 84, 84] uint8: current observation of each env
    done: jax.Array  # [N] bool: the current observation begins a new episode
    iteration: jax.Array  # [] int32: PPO iterations completed
    attn_coef: jax.Array  # [] float32: lambda of this run


@struct.dataclass
class TrainState:
    runs: RunState  # leading axis R
    env_state: Any  # one env holding all R * N envs


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping + Adam without a learning rate: `apply_lr` scales by the annealed
    rate, so the optimizer state does not depend on the schedule (and resume is exact)."""
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.scale_by_adam(eps=config.adam_eps)
    )


def learning_rate(config: TrainConfig, iteration: jax.Array) -> jax.Array:
    """Linear annealing to 0 over the run, constant within an iteration (stable-baselines)."""
    if not config.anneal_lr:
        return jnp.asarray(config.learning_rate, jnp.float32)
    frac = 1.0 - iteration.astype(jnp.float32) / config.num_iterations
    return config.learning_rate * frac


def loss_coefficients(config: TrainConfig, attn_coef: jax.Array) -> LossCoefficients:
    return LossCoefficients(clip_coef=config.clip_coef, vf_clip_coef=config.vf_clip_coef,
                            ent_coef=config.ent_coef, vf_coef=config.vf_coef,
                            attn_coef=attn_coef, norm_adv=config.norm_adv)


def apply_gradients(tx: optax.GradientTransformation, params: Any, opt_state: Any, grads: Any,
                    lr: jax.Array) -> tuple[Any, Any]:
    """One optimizer step at the annealed learning rate -> (params, opt_state)."""
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, jax.tree_util.tree_map(lambda u: -lr * u, updates))
    return params, opt_state


def split_devices(minibatch_size: int, devices: list | None = None) -> list:
    """The local devices a minibatch's rows are split over: as many as evenly divide it."""
    devices = list(devices if devices is not None else jax.local_devices())
    count = max(d for d in range(1, len(devices) + 1) if minibatch_size % d == 0)
    return devices[:count]


def resolve_execution(config: TrainConfig, backend: str | None = None) -> tuple[str, str, int]:
    """(runs_axis, loops, iterations_per_call) with "auto"/0 resolved for the backend. On CPU
    the loops are unrolled: with Eigen convolutions (`attnjax.devices`) one program over all
    cores trains the paper preset as fast as splitting each minibatch over the cores as host
    devices, within noise (bench/setting_speedup.py --setting loops, BENCHMARKS.md), without
    copying parameters and gradients between devices. "split" runs one iteration per call and
    its runs one after another."""
    backend = backend or jax.default_backend()
    on_cpu = backend == "cpu"
    runs_axis = config.runs_axis if config.runs_axis != "auto" else ("map" if on_cpu else "vmap")
    loops = config.loops
    if loops == "auto":
        loops = "unroll" if on_cpu else "scan"
    if loops == "split":
        return "map", loops, 1
    per_call = config.iterations_per_call
    if per_call == 0:
        # as many as divide both the checkpoint cadence and the run, up to 8 (1 on CPU, where an
        # unrolled iteration is a large program and calls cost nothing next to the convolutions)
        limit = 1 if loops == "unroll" else 8
        common = math.gcd(config.checkpoint_every, config.num_iterations)
        per_call = max(d for d in range(1, limit + 1) if common % d == 0)
    return runs_axis, loops, per_call


# Rows per forward/backward pass on CPU: a minibatch of 256 computed as 4 passes of 64 takes
# ~7 % less time than one pass (its activations stay in cache; bench/microbatch_gradient.py).
CPU_MICROBATCH = 64


def resolve_microbatch(config: TrainConfig, backend: str | None = None) -> int:
    """Rows per forward/backward pass of a minibatch update with loops "unroll" or "scan": the
    config's, or on CPU CPU_MICROBATCH where it divides a larger minibatch, else the whole
    minibatch."""
    mb_size = config.minibatch_size
    if config.microbatch_size:
        return config.microbatch_size
    on_cpu = (backend or jax.default_backend()) == "cpu"
    if on_cpu and mb_size > CPU_MICROBATCH and mb_size % CPU_MICROBATCH == 0:
        return CPU_MICROBATCH
    return mb_size


def rows_per_gradient_pass(config: TrainConfig, backend: str | None = None) -> int:
    """What machine.json records: rows per forward/backward pass as training runs them (with
    loops="split", each device's share of the minibatch, in one pass)."""
    if resolve_execution(config, backend)[1] == "split":
        return config.minibatch_size // len(split_devices(config.minibatch_size))
    return resolve_microbatch(config, backend)


def microbatched_gradient(part_loss: Callable, params: Any, batch: Minibatch,
                          advantages: jax.Array, weights: jax.Array,
                          microbatch: int) -> tuple[Any, dict[str, jax.Array]]:
    """(gradient, metrics) of a minibatch's weighted loss computed `microbatch` rows at a time
    and summed. `part_loss(params, part, advantages, weights) -> (loss, metrics)` must be a
    weighted sum over rows (`losses.weighted_ppo_loss`), so the parts add up to the whole. An
    optimization barrier orders each pass (its parameters and rows) after the previous pass's
    sum, so that only one pass's activations are alive (the point: they stay in cache)."""
    num_rows = advantages.shape[0]  # advantages, weights: [B]
    grad = jax.grad(part_loss, has_aux=True)
    total = None
    for start in range(0, num_rows, microbatch):
        take = lambda x, start=start: x[start:start + microbatch]  # noqa: E731
        part = (jax.tree_util.tree_map(take, batch), take(advantages), take(weights))
        if total is not None:
            params, part, total = jax.lax.optimization_barrier((params, part, total))
        piece = grad(params, *part)
        total = piece if total is None else jax.tree_util.tree_map(jnp.add, total, piece)
    return total


def make_weighted_loss(config: TrainConfig, network: nn.Module) -> Callable:
    """`loss(params, part, advantages, weights, attn_coef) -> (loss, metrics)` of some rows
    (`part`) of a minibatch as a weighted sum: advantages and weights are those rows' entries
    of the values computed over the whole minibatch (`losses.minibatch_advantages_and_weights`),
    so that the losses of parts add up to the minibatch's."""

    def weighted_loss(params: Any, part: Minibatch, advantages: jax.Array, weights: jax.Array,
                      attn_coef: jax.Array) -> tuple[jax.Array, dict]:
        out = network.apply({"params": params}, part.obs)
        return weighted_ppo_loss(out.logits, out.value, out.attention, part, advantages, weights,
                                 loss_coefficients(config, attn_coef))

    return weighted_loss


def make_minibatch_gradient(config: TrainConfig, network: nn.Module,
                            backend: str | None = None) -> Callable:
    """`gradient(params, batch, attn_coef) -> (grads, metrics)` of one minibatch's PPO loss as
    training computes it: one pass, or passes of `resolve_microbatch` rows summed."""
    microbatch = resolve_microbatch(config, backend)
    weighted_loss = make_weighted_loss(config, network)

    def loss(params: Any, batch: Minibatch, attn_coef: jax.Array) -> tuple[jax.Array, dict]:
        out = network.apply({"params": params}, batch.obs)
        return ppo_loss(out.logits, out.value, out.attention, batch,
                        loss_coefficients(config, attn_coef))

    def gradient(params: Any, batch: Minibatch, attn_coef: jax.Array) -> tuple:
        # one pass keeps the program accelerators (and CPU runs with --microbatch-size equal to
        # the minibatch) trained with before passes existed, bit for bit
        if microbatch == config.minibatch_size:
            return jax.grad(loss, has_aux=True)(params, batch, attn_coef)
        advantages, weights = minibatch_advantages_and_weights(batch.advantages, batch.mask,
                                                               config.norm_adv)  # [mb] each
        return microbatched_gradient(
            lambda p, part, a, w: weighted_loss(p, part, a, w, attn_coef), params, batch,
            advantages, weights, microbatch)

    return gradient


def map_runs(fn: Callable, runs_axis: str, *trees: Any) -> Any:
    """Apply fn to each run's slice of the stacked trees: vmap, or one after another."""
    if runs_axis == "vmap":
        return jax.vmap(fn)(*trees)
    num_runs = jax.tree_util.tree_leaves(trees[0])[0].shape[0]
    outs = []
    for r in range(num_runs):
        args = jax.tree_util.tree_map(lambda x, r=r: x[r], trees)
        outs.append(fn(*args))
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)


def init_state(
    configs: list[TrainConfig], network: nn.Module, env_state: Any, obs: jax.Array
) -> TrainState:
    """Fresh state for R runs; obs: [R * N, 4, 84, 84] from the shared env's reset."""
    tx = make_optimizer(configs[0])
    num_envs = configs[0].num_envs
    runs = []
    for r, config in enumerate(configs):
        init_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
        params = init_params(network, init_key)
        runs.append(
            RunState(
                params=params,
                opt_state=tx.init(params),
                key=run_key,
                stats=EpisodeStats.create(num_envs),
                obs=obs[r * num_envs : (r + 1) * num_envs],
                done=jnp.zeros(num_envs, bool),
                iteration=jnp.zeros((), jnp.int32),
                attn_coef=jnp.asarray(config.attn_coef, jnp.float32),
            )
        )
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *runs)
    return TrainState(runs=stacked, env_state=env_state)


@struct.dataclass
class Rollout:
    """One iteration's experience of one run; leading axes [T, N]."""

    obs: jax.Array  # [T, N, 4, 84, 84] uint8
    actions: jax.Array  # [T, N] int32
    log_probs: jax.Array  # [T, N]
    values: jax.Array  # [T, N]
    rewards: jax.Array  # [T, N] clipped
    dones: jax.Array  # [T, N] obs[t] begins a new episode


def make_iterate(
    config: TrainConfig,
    network: nn.Module,
    env_step: Callable[[Any, jax.Array], tuple[Any, StepResult]],
    num_runs: int,
    *,
    reset_step_after_done: bool,
    backend: str | None = None,
    mesh: Mesh | None = None,
) -> Callable[[TrainState], tuple[TrainState, dict[str, jax.Array]]]:
    """Build the jitted `iterate(state) -> (state, metrics)`; metrics values are [I, R].

    reset_step_after_done: the env's `reset_step_after_done` (envpool: True); those transitions
    are masked out of the losses (`losses.valid_transitions`).

    With a `mesh` of D > 1 devices (axis "runs"), the R runs are split into D blocks, one per
    device, each block stepping its own env pool: `state.env_state` then carries a leading [D]
    axis (see `shard_state`) and `num_runs` is still the total R.
    """
    runs_axis, loops, per_call = resolve_execution(config, backend)
    num_devices = 1 if mesh is None else mesh.size
    num_runs //= num_devices  # runs in one device's block
    tx = make_optimizer(config)
    num_envs, num_steps = config.num_envs, config.num_steps
    mb_size = config.minibatch_size

    def policy(params: Any, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, ...]:
        out = network.apply({"params": params}, obs)
        actions = jax.random.categorical(key, out.logits).astype(jnp.int32)
        return actions, categorical_log_prob(out.logits, actions), out.value

    def rollout(runs: RunState, env_state: Any) -> tuple[RunState, Any, Rollout]:
        """num_steps env steps of every run; parameters are loop invariants of the scan (in
        "map" mode sliced per run once, outside it: slicing inside would copy them each step)."""
        if runs_axis == "vmap":
            act = lambda obs, keys: jax.vmap(policy)(runs.params, obs, keys)
        else:
            per_run = [jax.tree_util.tree_map(lambda x, r=r: x[r], runs.params)
                       for r in range(num_runs)]
            act = lambda obs, keys: jax.tree_util.tree_map(
                lambda *xs: jnp.stack(xs),
                *(policy(per_run[r], obs[r], keys[r]) for r in range(num_runs)),
            )

        def env_step_all(carry: tuple, _: Any) -> tuple[tuple, Rollout]:
            obs, done, stats, key, env_state = carry  # obs [R, N, 4, 84, 84]
            keys = jax.vmap(jax.random.split)(key)  # [R, 2, 2]
            actions, log_probs, values = act(obs, keys[:, 1])  # [R, N]
            env_state, step = env_step(env_state, actions.reshape(num_runs * num_envs))
            step = jax.tree_util.tree_map(
                lambda x: x.reshape(num_runs, num_envs, *x.shape[1:]), step
            )
            record = Rollout(obs, actions, log_probs, values, step.reward, done)
            stats = jax.vmap(EpisodeStats.update)(stats, step)
            return (step.obs, step.done, stats, keys[:, 0], env_state), record

        carry = (runs.obs, runs.done, runs.stats, runs.key, env_state)
        carry, traj = jax.lax.scan(env_step_all, carry, None, length=num_steps)
        obs, done, stats, key, env_state = carry
        runs = runs.replace(obs=obs, done=done, stats=stats, key=key)
        traj = jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), traj)  # [R, T, N, ...]
        return runs, env_state, traj

    weighted_loss = make_weighted_loss(config, network)
    minibatch_gradient = make_minibatch_gradient(config, network, backend)

    def minibatch_update(carry: tuple, batch: Minibatch, lr: jax.Array, attn_coef: jax.Array):
        grads, metrics = minibatch_gradient(carry[0], batch, attn_coef)
        return apply_gradients(tx, *carry, grads, lr), metrics

    def prepare_run(run: RunState, traj: Rollout) -> tuple[RunState, Minibatch, jax.Array, ...]:
        """GAE over one run's rollout -> (run with its next key, flat batch [B, ...], minibatch
        row indices [E * M, mb] in update order, this iteration's learning rate)."""
        last_value = network.apply({"params": run.params}, run.obs).value
        advantages, returns = gae(
            traj.rewards, traj.values, traj.dones, last_value, run.done,
            config.gamma, config.gae_lambda,
        )
        mask = valid_transitions(traj.dones, reset_step_after_done)  # [T, N]
        flat = Minibatch(traj.obs, traj.actions, traj.log_probs, traj.values, advantages, returns,
                         mask)
        flat = jax.tree_util.tree_map(lambda x: x.reshape(config.batch_size, *x.shape[2:]), flat)
        key, *epoch_keys = jax.random.split(run.key, config.update_epochs + 1)
        perms = jnp.stack([jax.random.permutation(k, config.batch_size) for k in epoch_keys])
        order = perms.reshape(config.update_epochs * config.num_minibatches, mb_size)
        return run.replace(key=key), flat, order, learning_rate(config, run.iteration)

    def finish_run(run: RunState, params: Any, opt_state: Any, loss_metrics: dict,
                   lr: jax.Array) -> tuple[RunState, dict[str, jax.Array]]:
        """The run after its updates, and the iteration's metrics."""
        episodic_return, episodic_length = run.stats.summary()
        run = run.replace(params=params, opt_state=opt_state, iteration=run.iteration + 1)
        return run, {**loss_metrics, "learning_rate": lr, "episodic_return": episodic_return,
                     "episodic_length": episodic_length,
                     "global_step": run.iteration * config.batch_size}

    def update_run(run: RunState, traj: Rollout) -> tuple[RunState, dict[str, jax.Array]]:
        """Epochs x minibatches of PPO updates on one run's rollout, inside the program."""
        run, flat, order, lr = prepare_run(run, traj)
        step = lambda carry, idx: minibatch_update(
            carry, jax.tree_util.tree_map(lambda x: x[idx], flat), lr, run.attn_coef
        )
        carry = (run.params, run.opt_state)
        if loops == "scan":
            carry, metrics = jax.lax.scan(step, carry, order)
            metrics = jax.tree_util.tree_map(jnp.mean, metrics)
        else:
            collected = []
            for idx in order:
                carry, m = step(carry, idx)
                collected.append(m)
            metrics = jax.tree_util.tree_map(lambda *xs: jnp.mean(jnp.stack(xs)), *collected)
        return finish_run(run, *carry, metrics, lr)

    def one_iteration(state: TrainState, _: Any = None) -> tuple[TrainState, dict]:
        runs, env_state, traj = rollout(state.runs, state.env_state)
        runs, metrics = map_runs(update_run, runs_axis, runs, traj)  # metrics [R]
        return TrainState(runs=runs, env_state=env_state), metrics

    def iterate(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        if per_call == 1:
            state, metrics = one_iteration(state)
            return state, jax.tree_util.tree_map(lambda x: x[None], metrics)
        return jax.lax.scan(one_iteration, state, None, length=per_call)

    conv_options = eigen_convolution_options(backend)
    if loops == "split":
        if mesh is not None:
            raise ValueError("loops='split' uses the devices for the minibatch; pass no mesh")
        return _split_iterate(config, weighted_loss, tx, num_runs, rollout, prepare_run,
                              finish_run)
    if num_devices > 1:
        iterate = _shard_over_devices(iterate, mesh)
    iterate_jit = jax.jit(iterate, donate_argnums=0, compiler_options=conv_options)
    iterate_jit.iterations_per_call = per_call  # type: ignore[attr-defined]
    return iterate_jit


def _split_iterate(config: TrainConfig, weighted_loss: Callable,
                   tx: optax.GradientTransformation, num_runs: int, rollout: Callable,
                   prepare_run: Callable, finish_run: Callable) -> Callable:
    """`iterate` for loops="split": three compiled programs driven from Python. Device 0
    runs the rollout and GAE (`prepare`); then for every minibatch each device computes the loss
    gradient of its share of the rows (`part_gradient`, weighted sums, so the parts add up to
    the minibatch's gradient exactly) and device 0 sums them and steps the optimizer. Devices
    only exchange arrays by copies, never by a collective. Runs of a grid go one after another.
    """
    devices = split_devices(config.minibatch_size)
    part = config.minibatch_size // len(devices)

    def prepare(state: TrainState) -> tuple[TrainState, tuple]:
        runs, env_state, traj = rollout(state.runs, state.env_state)

        def one(run: RunState, traj: Rollout) -> tuple[RunState, tuple]:
            run, flat, order, lr = prepare_run(run, traj)
            advantages, weights = jax.vmap(lambda idx: minibatch_advantages_and_weights(
                flat.advantages[idx], flat.mask[idx], config.norm_adv))(order)  # [E * M, mb]
            return run, (flat, order, advantages, weights, lr)

        runs, work = map_runs(one, "map", runs, traj)  # work: leading [R]
        return state.replace(runs=runs, env_state=env_state), work

    def part_gradient(params: Any, flat: Minibatch, order: jax.Array, advantages: jax.Array,
                      weights: jax.Array, attn_coef: jax.Array, j: jax.Array) -> tuple:
        """Gradient and metrics (as sums) of this device's rows of minibatch j; order,
        advantages, weights: [E * M, part]."""
        batch = jax.tree_util.tree_map(lambda x: x[order[j]], flat)
        return jax.grad(weighted_loss, has_aux=True)(params, batch, advantages[j], weights[j],
                                                     attn_coef)

    def apply_parts(params: Any, opt_state: Any, parts: list, lr: jax.Array) -> tuple:
        grads = jax.tree_util.tree_map(lambda *g: sum(g[1:], g[0]), *parts)
        return apply_gradients(tx, params, opt_state, grads, lr)

    def finish(state: TrainState, params: Any, opt_state: Any, metrics: dict,
               lr: jax.Array) -> tuple[TrainState, dict]:
        runs, out = map_runs(finish_run, "map", state.runs, params, opt_state, metrics, lr)
        return state.replace(runs=runs), jax.tree_util.tree_map(lambda x: x[None], out)

    conv_options = eigen_convolution_options("cpu")  # "split" is a CPU mode
    prepare_jit = jax.jit(prepare, donate_argnums=0, compiler_options=conv_options)
    gradient_jit = jax.jit(part_gradient, compiler_options=conv_options)
    apply_jit = jax.jit(apply_parts)
    finish_jit = jax.jit(finish, donate_argnums=0)
    stack = lambda trees: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731

    def iterate(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        state, (flat, order, advantages, weights, lr) = prepare_jit(state)
        all_params, all_opt, all_metrics = [], [], []
        for r in range(num_runs):
            pick = lambda tree, r=r: jax.tree_util.tree_map(lambda x: x[r], tree)  # noqa: E731
            params, opt_state = pick(state.runs.params), pick(state.runs.opt_state)
            rows = [slice(d * part, (d + 1) * part) for d in range(len(devices))]
            shares = [jax.device_put((pick(flat), order[r, :, s], advantages[r, :, s],
                                      weights[r, :, s], state.runs.attn_coef[r]), device)
                      for device, s in zip(devices, rows, strict=True)]
            run_metrics = []
            for j in range(order.shape[1]):
                outs = [gradient_jit(params if d == 0 else jax.device_put(params, device),
                                     *shares[d], j) for d, device in enumerate(devices)]
                grads = [jax.device_put(g, devices[0]) for g, _ in outs]
                run_metrics.append([m for _, m in outs])
                params, opt_state = apply_jit(params, opt_state, grads, lr[r])
            all_params.append(params)
            all_opt.append(opt_state)
            all_metrics.append(run_metrics)
        host = jax.device_get(all_metrics)  # [R][E * M][devices] dicts of scalars
        metrics = {k: np.array([np.mean([sum(m[k] for m in parts) for parts in run])
                                for run in host], np.float32) for k in LOSS_METRICS}
        return finish_jit(state, stack(all_params), stack(all_opt), metrics, lr)

    iterate.iterations_per_call = 1  # type: ignore[attr-defined]
    iterate.devices = devices  # type: ignore[attr-defined]
    return iterate


RUNS_AXIS = "runs"


def device_mesh(num_runs: int, devices: list | None = None) -> Mesh | None:
    """A 1-D mesh over as many local devices as evenly divide the runs (None for one)."""
    devices = list(devices if devices is not None else jax.local_devices())
    count = max(d for d in range(1, min(len(devices), num_runs) + 1) if num_runs % d == 0)
    return None if count == 1 else Mesh(np.array(devices[:count]), (RUNS_AXIS,))


def shard_state(state: TrainState, mesh: Mesh | None) -> TrainState:
    """Place each device's block of runs (and its env pool state) on that device."""
    if mesh is None:
        return state
    return jax.device_put(state, NamedSharding(mesh, PartitionSpec(RUNS_AXIS)))


def _shard_over_devices(iterate: Callable, mesh: Mesh) -> Callable:
    """Run `iterate` on every device's block of runs: runs split on the leading axis, env
    state's leading [D] axis gives each device its own env pool; metrics [I, R]."""

    def local(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        env_state = jax.tree_util.tree_map(lambda x: x[0], state.env_state)
        state, metrics = iterate(state.replace(env_state=env_state))
        env_state = jax.tree_util.tree_map(lambda x: x[None], state.env_state)
        return state.replace(env_state=env_state), metrics

    spec = PartitionSpec(RUNS_AXIS)
    return jax.shard_map(
        local, mesh=mesh, in_specs=(spec,), out_specs=(spec, PartitionSpec(None, RUNS_AXIS)),
        check_vma=False,
    )
