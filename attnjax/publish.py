"""Published agents: a trained run's final parameters as a small folder anyone can load.

Why: a run folder's orbax checkpoints carry optimizer state (3x the parameters) and resume
bookkeeping; to share an agent (the reference agents under `agents/`) only the network is
needed. A published folder holds

    params.npz     the parameters, one array per "/"-joined path (numpy, loaded without pickle)
    agent.json     what load_agent needs: network, heads, actions, step, iteration, source
    config.json    the run's training config
    metrics.jsonl  its training log (what `visualize.py figures` reads)

`attnjax.load_agent` and every `visualize.py` subcommand accept it like a run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from attnjax.errors import UserError
from attnjax.runs import CONFIG_FILE, METRICS_FILE, metrics_lines_up_to, read_config, write_config

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


def publish_agent(run: str | Path, out: str | Path) -> Path:
    """Write the newest good checkpoint of `run` (a run folder or one checkpoint) as a
    published agent folder `out`; written beside it first and renamed into place whole."""
    from attnjax.checkpoints import load_agent

    agent = load_agent(run)
    out = Path(out)
    if out.exists() and not is_published(out):
        raise UserError(f"{out} exists and is not a published agent; pick another --out")
    run_dir = agent.run_dir
    meta = {
        "format": FORMAT, "network": agent.config.network, "attn_heads": agent.config.attn_heads,
        "num_actions": agent.num_actions, "global_step": agent.step,
        "iteration": agent.iteration, "env_id": agent.config.env_id,
        "attn_coef": agent.config.attn_coef, "seed": agent.config.seed,
        "source": str(agent.path), "published_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        np.savez_compressed(tmp / PARAMS_FILE, **flatten_params(agent.params))
        (tmp / AGENT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        write_config(tmp, agent.config)
        if (run_dir / METRICS_FILE).exists():  # the log up to the published step only
            lines = metrics_lines_up_to(run_dir, agent.step)
            (tmp / METRICS_FILE).write_text("".join(line + "\n" for line in lines))
        for name in ("README.md", *(p.name for p in out.glob("evaluation*.json"))):
            if (out / name).exists():  # keep what was written next to an earlier version
                shutil.copy2(out / name, tmp / name)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = err.strerror or err
        raise UserError(f"cannot write {out}: {reason}; pick a writable --out") from None
    return out


def load_published(path: Path) -> Any:
    """The Agent of a published folder; parameters checked against the network's shapes."""
    from attnjax.checkpoints import Agent, _like
    from attnjax.networks import init_params, make_network

    path = Path(path)
    meta = json.loads((path / AGENT_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise UserError(f"{path / AGENT_FILE} is format {meta.get('format')!r}, not {FORMAT}; "
                        "publish the run again with this version")
    config = read_config(path, fix="publish the run again")
    network = make_network(meta["network"], meta["num_actions"], meta["attn_heads"])
    template = init_params(network, jax.random.PRNGKey(0))
    with np.load(path / PARAMS_FILE, allow_pickle=False) as data:
        loaded = unflatten_params({name: data[name] for name in data.files})
    try:
        ordered = jax.tree_util.tree_map(lambda _, x: x, template, loaded)
        params = _like(template, ordered)
    except (ValueError, KeyError) as err:
        raise UserError(f"{path / PARAMS_FILE} does not fit the {meta['network']} network "
                        f"(K={meta['attn_heads']}): {err}") from None
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)
    return Agent(config=config, network=network, params=params, step=int(meta["global_step"]),
                 iteration=int(meta["iteration"]), num_actions=int(meta["num_actions"]),
                 path=path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True,
                        help="run folder (its newest good checkpoint) or one checkpoint folder")
    parser.add_argument("--out", required=True, help="folder to write, e.g. agents/<run-name>")


def main(args: argparse.Namespace) -> int:
    out = publish_agent(args.run, args.out)
    size = (out / PARAMS_FILE).stat().st_size
    print(f"published {out}  ({PARAMS_FILE} {size / 2**20:.1f} MiB, {AGENT_FILE}, {CONFIG_FILE}, "
          f"{METRICS_FILE})")
    return 0
