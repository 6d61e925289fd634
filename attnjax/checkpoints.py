"""Orbax checkpoints of one run, resume, and `load_agent` for the visualisation tools.

A checkpoint `<run>/checkpoints/<iteration>/` holds three items: `params`, `state` (optimizer
state, RNG key, iteration, finished-game statistics) and `meta` (JSON: config, global step,
iteration, W&B run id). Orbax writes into a temporary folder and renames it when complete, so a
process killed mid-write never leaves a checkpoint that looks good; a newest checkpoint that
fails to restore is skipped with a warning and the previous one is used. No pickle anywhere.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from attnjax.config import TrainConfig
from attnjax.errors import UserError
from attnjax.runs import CHECKPOINT_DIR, checkpoint_path, find_checkpoints, run_of_checkpoint

# orbax logs every save at INFO/WARNING level through absl; keep training output readable
logging.getLogger("absl").setLevel(logging.ERROR)


def _ocp():
    import orbax.checkpoint as ocp

    return ocp


def _manager(run_dir: Path, keep: int = 3, create: bool = True):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=create, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(run_dir.resolve() / CHECKPOINT_DIR, options=options)


class RunCheckpointer:
    """Saves and restores one run's checkpoints under `<run_dir>/checkpoints/`."""

    def __init__(self, run_dir: Path, keep: int = 3) -> None:
        self.run_dir = Path(run_dir)
        self._manager = _manager(self.run_dir, keep)

    def save(self, iteration: int, params: Any, state: Any, meta: dict[str, Any]) -> None:
        ocp = _ocp()
        params, state = jax.device_get((params, state))
        self._manager.save(
            iteration,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params),
                state=ocp.args.StandardSave(state),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def discard_after(self, iteration: int) -> list[int]:
        """Delete the checkpoints newer than `iteration` (unreadable ones, or a grid partner's
        that the grid cannot use): a resume from `iteration` writes them again, as it writes the
        metrics lines after it again. Returns the iterations deleted."""
        newer = [step for step in self.steps() if step > iteration]
        for step in newer:
            self._manager.delete(step)
        return newer

    def restore(self, iteration: int, params_like: Any, state_like: Any) -> tuple[Any, Any, dict]:
        """Restore into the structures of `params_like` / `state_like` (pytrees of arrays).
        Raises CheckpointMismatch when the checkpoint's recorded parameter shapes are another
        network's; any other exception means it is unreadable (corrupt, half-written)."""
        ocp = _ocp()
        try:
            restored = self._manager.restore(
                iteration,
                args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(_abstract(params_like)),
                    state=ocp.args.StandardRestore(_abstract(state_like)),
                    meta=ocp.args.JsonRestore(),
                ),
            )
            params = _like(params_like, restored["params"])
            state = _like(state_like, restored["state"])
        except Exception as err:
            # orbax raises ValueError both for corrupt data and for other shapes: its metadata
            # (the shapes written with the checkpoint) tells them apart
            saved = _saved_shapes(checkpoint_path(self.run_dir, iteration) / "params")
            if saved is not None and saved != _shapes(params_like):
                raise CheckpointMismatch(
                    f"checkpoint {iteration} holds parameters of another network") from err
            raise
        return params, state, dict(restored["meta"])

    def close(self) -> None:
        self._manager.close()


def _abstract(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


class CheckpointMismatch(ValueError):
    """A readable checkpoint whose parameters are another network's (not corruption)."""


def _shapes(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: tuple(np.shape(x)), tree)


def _saved_shapes(item_dir: Path) -> Any | None:
    """The array shapes an orbax item's metadata records (nested dicts), None if unreadable."""
    try:
        metadata = _ocp().StandardCheckpointer().metadata(Path(item_dir).resolve())
        return jax.tree_util.tree_map(lambda m: tuple(m.shape), metadata.item_metadata.tree)
    except Exception:  # noqa: BLE001 - unreadable metadata: the checkpoint is corrupt
        return None


def _like(template: Any, restored: Any) -> Any:
    """Put restored leaves back into the template's tree structure (namedtuples included),
    checking shapes so a checkpoint of another architecture cannot slip through."""
    want = jax.tree_util.tree_leaves(template)
    got = jax.tree_util.tree_leaves(restored)
    shapes_differ = any(np.shape(a) != np.shape(b) for a, b in zip(want, got, strict=False))
    if len(want) != len(got) or shapes_differ:
        raise ValueError("checkpoint arrays do not match the network's shapes")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), got)


def read_checkpoint_meta(run_dir: Path, iteration: int) -> dict[str, Any]:
    """The `meta` item of a checkpoint (JSON, as orbax's JsonSave wrote it)."""
    return json.loads((checkpoint_path(run_dir, iteration) / "meta" / "metadata").read_text())


@dataclass
class Agent:
    """A trained network ready to run: what every visualisation tool loads."""

    config: TrainConfig
    network: Any  # flax Module
    params: Any
    step: int  # global agent step of the checkpoint
    iteration: int
    num_actions: int
    path: Path  # the checkpoint folder (or the published agent folder)

    @property
    def run_dir(self) -> Path:
        """The run folder the agent was trained in (a published agent's own folder)."""
        from attnjax.publish import is_published

        return self.path if is_published(self.path) else run_of_checkpoint(self.path)

    def __post_init__(self) -> None:
        self._apply = jax.jit(lambda params, obs: self.network.apply({"params": params}, obs))

    def apply(self, obs: jax.Array):
        """uint8 [B, 4, 84, 84] -> AgentOutput (jitted)."""
        return self._apply(self.params, obs)


def load_agent(path: str | Path) -> Agent:
    """Config, network and parameters of the newest good checkpoint of a run folder (or of the
    given checkpoint folder, or of a published agent folder, see `attnjax.publish`). Raises
    UserError when there is none or it does not fit."""
    from attnjax.networks import init_params, make_network
    from attnjax.publish import is_published, load_published

    if is_published(Path(path)):
        return load_published(Path(path))
    run_dir, steps = find_checkpoints(Path(path))
    checkpointer = RunCheckpointer(run_dir)
    ocp = _ocp()
    errors = []
    for iteration in steps:
        try:
            meta = read_checkpoint_meta(run_dir, iteration)
            config = TrainConfig.from_dict(meta["config"])
            network = make_network(config.network, meta["num_actions"], config.attn_heads)
            template = init_params(network, jax.random.PRNGKey(0))
            restored = checkpointer._manager.restore(
                iteration,
                args=ocp.args.Composite(params=ocp.args.StandardRestore(_abstract(template))),
            )
            try:
                params = _like(template, restored["params"])
            except ValueError:
                raise UserError(
                    f"checkpoint {checkpoint_path(run_dir, iteration)} does not match the "
                    f"{config.network} network its config names (K={config.attn_heads}); it was "
                    "written by another architecture"
                ) from None
        except UserError:
            raise
        except Exception as err:  # corrupt or half-written: fall back to an older one
            errors.append(f"{iteration}: {type(err).__name__}")
            warnings.warn(
                f"checkpoint {iteration} of {run_dir} is unreadable ({type(err).__name__}); "
                "trying an older one",
                stacklevel=2,
            )
            continue
        checkpointer.close()
        return Agent(
            config=config,
            network=network,
            params=params,
            step=int(meta["global_step"]),
            iteration=int(meta["iteration"]),
            num_actions=int(meta["num_actions"]),
            path=checkpoint_path(run_dir, iteration),
        )
    checkpointer.close()
    raise UserError(f"no readable checkpoint in {run_dir} ({'; '.join(errors)}); retrain the run")
