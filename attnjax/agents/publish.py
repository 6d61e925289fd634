"""Published agents: a trained run's final parameters as a small folder anyone can load.

Why: a run folder's orbax checkpoints carry optimizer state (3x the parameters) and resume
bookkeeping; to share an agent (the reference agents under `agents/`) only the network is
needed. The folder's format and its reader: `attnjax.agents.published`.

`attnjax.load_agent` and every `visualize.py` subcommand accept it like a run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from attnjax.agents.load import load_agent
from attnjax.agents.published import AGENT_FILE, FORMAT, PARAMS_FILE, flatten_params, is_published
from attnjax.errors import UserError
from attnjax.training.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    metrics_lines_up_to,
    write_config,
)


def publish_agent(run: str | Path, out: str | Path) -> Path:
    """Write the newest good checkpoint of `run` (a run folder or one checkpoint) as a
    published agent folder `out`; written beside it first and renamed into place whole."""
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
