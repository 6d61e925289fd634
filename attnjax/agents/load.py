"""`load_agent`: a trained network ready to run, from a run folder, one of its checkpoints, or
a published agent folder. What every inspection tool and the evaluation start from.

Two readers, one per source: orbax checkpoints (`attnjax.training.checkpoints`, the newest that
restores cleanly) and published folders (`attnjax.agents.published`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from attnjax.agents.published import AGENT_FILE, PARAMS_FILE, is_published, read_published
from attnjax.errors import UserError
from attnjax.model.networks import init_params, make_network
from attnjax.training.checkpoints import (
    CheckpointMismatch,
    like_template,
    read_checkpoint_params,
)
from attnjax.training.config import TrainConfig
from attnjax.training.runs import (
    checkpoint_path,
    find_checkpoints,
    read_checkpoint_meta,
    run_of_checkpoint,
)


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
        return self.path if is_published(self.path) else run_of_checkpoint(self.path)

    def __post_init__(self) -> None:
        self._apply = jax.jit(lambda params, obs: self.network.apply({"params": params}, obs))

    def apply(self, obs: jax.Array):
        """uint8 [B, 4, 84, 84] -> AgentOutput (jitted)."""
        return self._apply(self.params, obs)


def check_one_game(agents: list[Agent], fix: str) -> str:
    """The env id every agent was trained on; a one-line UserError ending in `fix` when they
    differ (or their action counts do): tools that play agents side by side need one game."""
    env_ids = sorted({agent.config.env_id for agent in agents})
    if len(env_ids) > 1:
        raise UserError(f"the runs were trained on different games ({', '.join(env_ids)}); {fix}")
    actions = sorted({agent.num_actions for agent in agents})
    if len(actions) > 1:
        raise UserError(f"the runs have different action counts {actions}; {fix}")
    return env_ids[0]


def load_agent(path: str | Path) -> Agent:
    """Config, network and parameters of the newest good checkpoint of a run folder (or of the
    given checkpoint folder, or of a published agent folder). Raises UserError when there is
    none or it does not fit."""
    path = Path(path)
    return _from_published(path) if is_published(path) else _from_checkpoints(path)


def _from_checkpoints(path: Path) -> Agent:
    run_dir, steps = find_checkpoints(path)
    errors = []
    for iteration in steps:
        try:
            try:
                config, network, params, meta = read_checkpoint_params(run_dir, iteration)
            except CheckpointMismatch:
                config = TrainConfig.from_dict(read_checkpoint_meta(run_dir, iteration)["config"])
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
        return Agent(config=config, network=network, params=params,
                     step=int(meta["global_step"]), iteration=int(meta["iteration"]),
                     num_actions=int(meta["num_actions"]),
                     path=checkpoint_path(run_dir, iteration))
    raise UserError(f"no readable checkpoint in {run_dir} ({'; '.join(errors)}); retrain the run")


def _from_published(path: Path) -> Agent:
    """The Agent of a published folder; parameters checked against the network's shapes."""
    meta, config, loaded = read_published(path)
    network = make_network(meta["network"], meta["num_actions"], meta["attn_heads"])
    template = init_params(network, jax.random.PRNGKey(0))
    try:
        ordered = jax.tree_util.tree_map(lambda _, x: x, template, loaded)
        params = like_template(template, ordered)
    except (ValueError, KeyError) as err:
        raise UserError(f"{path / PARAMS_FILE} does not fit the {meta['network']} network "
                        f"(K={meta['attn_heads']}): {err}") from None
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)
    return Agent(config=config, network=network, params=params, step=int(meta["global_step"]),
                 iteration=int(meta["iteration"]), num_actions=int(meta["num_actions"]),
                 path=path)


__all__ = ["AGENT_FILE", "Agent", "check_one_game", "load_agent"]
