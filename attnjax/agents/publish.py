"""Published agents: a trained run's final parameters as a small folder anyone can load.

Why: a run folder's orbax checkpoints carry optimizer state (3x the parameters) and resume
bookkeeping; to share an agent (the reference agents under `agents/`) only the network is
needed. The folder's format and its reader: `attnjax.agents.published`.

`attnjax.load_agent` and every `visualize.py` subcommand accept it like a run folder.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from attnjax.agents.load import load_agent
from attnjax.agents.published import AGENT_FILE, FORMAT, PARAMS_FILE, flatten_params
from attnjax.errors import UserError
from attnjax.files import replacing_folder, write_json, write_text
from attnjax.provenance import STAMP_KEY, check_replaceable, json_stamp, read_json_file
from attnjax.training.machine import read_machine
from attnjax.training.runs import (
    CONFIG_FILE,
    MACHINE_FILE,
    METRICS_FILE,
    metrics_lines_up_to,
    write_config,
)

COMMAND = "visualize.py publish"  # the stamp in agent.json (attnjax.provenance)
PUBLISHED_FILES = (PARAMS_FILE, AGENT_FILE, CONFIG_FILE, METRICS_FILE, MACHINE_FILE)  # replaced


def publish_agent(run: str | Path, out: str | Path) -> Path:
    """Write the newest good checkpoint of `run` (a run folder or one checkpoint) as a
    published agent folder `out`; written beside it first and renamed into place whole. An
    existing `out` must be a folder this command published (its agent.json says so); every file
    in it that is not one of the published files (README.md, evaluation_*.json, ...) is kept."""
    out = Path(out)
    check_publish_target(out)
    agent = load_agent(run)
    run_dir = agent.run_dir
    meta = {
        "format": FORMAT, STAMP_KEY: json_stamp(COMMAND), "network": agent.config.network,
        "attn_heads": agent.config.attn_heads, "num_actions": agent.num_actions,
        "global_step": agent.step, "iteration": agent.iteration, "env_id": agent.config.env_id,
        "attn_coef": agent.config.attn_coef, "seed": agent.config.seed,
        # the run folder's name and checkpoint: no path of the publishing machine
        "source": agent.path.relative_to(run_dir.parent).as_posix(),
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        with replacing_folder(out) as tmp:
            np.savez_compressed(tmp / PARAMS_FILE, **flatten_params(agent.params))
            write_json(tmp / AGENT_FILE, meta, indent=2)
            write_config(tmp, agent.config)
            if (run_dir / METRICS_FILE).exists():  # the log up to the published step only
                lines = metrics_lines_up_to(run_dir, agent.step)
                write_text(tmp / METRICS_FILE, "".join(line + "\n" for line in lines))
            record = read_machine(run_dir)
            if record is not None:  # where it trained up to the published step, for assess
                sessions = [x for x in record["sessions"] if not isinstance(
                    x.get("from_step"), int) or x["from_step"] < agent.step]
                write_json(tmp / MACHINE_FILE, {**record, "sessions": sessions}, indent=2)
            for kept in sorted(out.iterdir()) if out.is_dir() else []:
                if kept.name not in PUBLISHED_FILES:  # written next to an earlier version
                    copy = shutil.copytree if kept.is_dir() else shutil.copy2
                    copy(kept, tmp / kept.name)
    except OSError as err:
        reason = err.strerror or err
        raise UserError(f"cannot write {out}: {reason}; pick a writable --out") from None
    return out


def check_publish_target(out: Path) -> None:
    """UserError unless `out` is free or a folder this command published before."""
    if not out.exists():
        return
    if not out.is_dir() or not (out / AGENT_FILE).is_file():
        raise UserError(f"{out} exists and is not a published agent folder, which visualize.py "
                        "publish replaces only; pick another --out")
    check_replaceable(out / AGENT_FILE, COMMAND, "pick another --out", legacy=is_unstamped_agent)


def is_unstamped_agent(path: Path) -> bool:
    """Whether `path` is an agent.json published before stamps (its keys)."""
    doc = read_json_file(path)
    return (isinstance(doc, dict) and doc.get("format") == FORMAT
            and {"published_at", "source", "global_step"} <= doc.keys())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True,
                        help="run folder (its newest good checkpoint) or one checkpoint folder")
    parser.add_argument("--out", required=True, help="folder to write, e.g. agents/<run-name>")


def main(args: argparse.Namespace) -> int:
    out = publish_agent(args.run, args.out)
    size = (out / PARAMS_FILE).stat().st_size
    machine = f", {MACHINE_FILE}" if (out / MACHINE_FILE).is_file() else ""
    print(f"published {out}  ({PARAMS_FILE} {size / 2**20:.1f} MiB, {AGENT_FILE}, {CONFIG_FILE}, "
          f"{METRICS_FILE}{machine})")
    return 0
