"""Orbax checkpoints of one run: saving, resuming, and restoring the parameters alone.

A checkpoint `<run>/checkpoints/<iteration>/` holds three items: `params`, `state` (optimizer
state, RNG key, iteration, finished-game statistics) and `meta` (JSON: config, global step,
iteration, W&B run id). Orbax writes into a temporary folder and renames it when complete, so a
process killed mid-write never leaves a checkpoint that looks good; a newest checkpoint that
fails to restore is skipped with a warning and the previous one is used. No pickle anywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np

from attnjax.model.networks import init_params, make_network
from attnjax.training.config import TrainConfig
from attnjax.training.runs import CHECKPOINT_DIR, checkpoint_path, read_checkpoint_meta

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
            params = like_template(params_like, restored["params"])
            state = like_template(state_like, restored["state"])
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


def like_template(template: Any, restored: Any) -> Any:
    """Put restored leaves back into the template's tree structure (namedtuples included),
    checking shapes so a checkpoint of another architecture cannot slip through."""
    want = jax.tree_util.tree_leaves(template)
    got = jax.tree_util.tree_leaves(restored)
    shapes_differ = any(np.shape(a) != np.shape(b) for a, b in zip(want, got, strict=False))
    if len(want) != len(got) or shapes_differ:
        raise CheckpointMismatch("checkpoint arrays do not match the network's shapes")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), got)


def restore_params(run_dir: Path, iteration: int, template: Any) -> Any:
    """The parameters of checkpoint `iteration`, shaped like `template` (no optimizer state).
    Raises ValueError when their shapes are another network's, anything else when the
    checkpoint is unreadable."""
    ocp = _ocp()
    manager = _manager(Path(run_dir), create=False)
    try:
        restored = manager.restore(
            iteration,
            args=ocp.args.Composite(params=ocp.args.StandardRestore(_abstract(template))),
        )
    finally:
        manager.close()
    return like_template(template, restored["params"])


def read_checkpoint_params(run_dir: Path, iteration: int) -> tuple[Any, Any, Any, dict]:
    """(config, network, params, meta) of checkpoint `iteration`, built from the config its
    metadata records. Raises CheckpointMismatch when the parameters are another network's,
    anything else when the checkpoint is unreadable."""
    meta = read_checkpoint_meta(run_dir, iteration)
    config = TrainConfig.from_dict(meta["config"])
    network = make_network(config.network, meta["num_actions"], config.attn_heads)
    params = restore_params(run_dir, iteration, init_params(network, jax.random.PRNGKey(0)))
    return config, network, params, meta
