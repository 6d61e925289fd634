"""The published-agent folder format and its reader (the writer is `attnjax.agents.publish`).

A published folder holds

    params.npz     the parameters, one array per "/"-joined path (numpy, loaded without pickle)
    agent.json     what loading needs: network, heads, actions, step, iteration, source
    config.json    the run's training config
    metrics.jsonl  its training log (what `visualize.py figures` reads)
    machine.json   where it trained (attnjax.training.machine), when the run folder has one

Why apart from the writer: loading an agent (`attnjax.agents.load`) must not depend on the
code that publishes one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from attnjax.errors import UserError
from attnjax.training.config import TrainConfig
from attnjax.training.runs import read_config

PARAMS_FILE = "params.npz"
AGENT_FILE = "agent.json"
FORMAT = "attnjax-agent/1"


def is_published(path: Path) -> bool:
    return (Path(path) / AGENT_FILE).is_file() and (Path(path) / PARAMS_FILE).is_file()


def flatten_params(params: Any) -> dict[str, np.ndarray]:
    """{"encoder/conv1/kernel": array, ...} of a nested parameter dict."""
    flat = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        flat["/".join(str(getattr(k, "key", k)) for k in path)] = np.asarray(leaf)
    return flat


def unflatten_params(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in flat.items():
        node = params
        *parents, leaf = name.split("/")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return params


def read_published(path: Path) -> tuple[dict[str, Any], TrainConfig, dict[str, Any]]:
    """(agent.json, config, nested parameters) of a published folder, format checked."""
    path = Path(path)
    meta = json.loads((path / AGENT_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise UserError(f"{path / AGENT_FILE} is format {meta.get('format')!r}, not {FORMAT}; "
                        "publish the run again with this version")
    config = read_config(path, fix="publish the run again")
    with np.load(path / PARAMS_FILE, allow_pickle=False) as data:
        params = unflatten_params({name: data[name] for name in data.files})
    return meta, config, params
