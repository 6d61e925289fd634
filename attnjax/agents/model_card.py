"""Model cards: a README.md for a run or published agent folder, written from its own files.

Why: the reference agents under `agents/` are shared as folders, and a reader needs to know at
a glance what an agent is, how far it trained, how well it plays and how to reproduce it. Every
number comes from the folder (config.json, metrics.jsonl, evaluation_*.json written by
`visualize.py evaluate`, checkpoints or params.npz), so a card is rewritten after each
training stretch or evaluation rather than edited by hand.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from attnjax.errors import UserError
from attnjax.model.baseline import UNIFORM_HEAD_ENTROPY, uniform_entropy
from attnjax.training.config import RUN_DEFINING_FIELDS, TrainConfig
from attnjax.training.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    checkpoint_iterations,
    read_config,
    read_metrics,
    write_atomic,
)

CARD_FILE = "README.md"
EVALUATION_GLOB = "evaluation_*.json"


def training_summary(metrics: list[dict[str, Any]], config: TrainConfig) -> dict[str, Any]:
    """Steps, iteration time (the sum of batch / sps: compile and start-up not counted) and
    the last logged score and attention entropy of a run's metrics lines."""
    seconds = sum(config.batch_size / row["sps"] for row in metrics if row.get("sps"))
    last = metrics[-1]
    scored = [row for row in metrics if row.get("episodic_return") is not None]
    return {
        "global_step": int(last["global_step"]),
        "hours": seconds / 3600,
        "episodic_return": scored[-1]["episodic_return"] if scored else None,
        "attention_entropy": last.get("attention_entropy"),
    }


def read_evaluations(folder: Path) -> list[dict[str, Any]]:
    """This folder's entries of every evaluation_*.json in it (one per policy), by file name."""
    from attnjax.agents.evaluate import read_evaluation

    found = []
    for path in sorted(folder.glob(EVALUATION_GLOB)):
        for entry in read_evaluation(path, "rewrite it with visualize.py evaluate or remove it"):
            if Path(entry["run"]).name == folder.name:
                found.append({"file": path.name, **entry})
    return found


def reproduce_command(config: TrainConfig) -> str:
    """The train.py command that trains this run from scratch: the run-defining fields that
    differ from the defaults (the paper preset), the run's place and its checkpoint cadence."""
    default = TrainConfig()
    argv = [".venv/bin/python", "train.py", "--env-id", config.env_id,
            "--attn-coef", f"{config.attn_coef:g}", "--seed", str(config.seed)]
    for name in RUN_DEFINING_FIELDS:
        if name in ("env_id", "attn_coef", "seed"):
            continue
        value = getattr(config, name)
        if value != getattr(default, name):
            flag = "--" + name.replace("_", "-")
            argv += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False \
                else [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    argv += ["--out-dir", config.out_dir, "--checkpoint-every", str(config.checkpoint_every)]
    return shlex.join(argv)


def _score(entry: dict[str, Any]) -> str:
    heads = "/".join(f"{h:.2f}" for h in entry.get("attention_entropy_per_head") or [])
    head_text = (f"; attention entropy per head {heads} nats (uniform "
                 f"{UNIFORM_HEAD_ENTROPY:.2f})") if heads else ""
    return (f"{entry['mean']:.1f} ± {entry['std']:.1f} (median {entry['median']:g}, min "
            f"{entry['min']:g}, max {entry['max']:g}) at {entry['global_step']:,} steps; mean "
            f"length {entry['mean_length']:.0f} steps{head_text}")


def render_card(folder: Path, grid: list[Path], note: str = "", hardware: str = "") -> str:
    """The Markdown card of one run folder; `grid` are the folders trained in one program with
    it (the `--resume` command names them all)."""
    config = read_config(folder, fix="pass a run folder written by train.py")
    metrics = read_metrics(folder, fix="pass a run folder with a training log")
    summary = training_summary(metrics, config)
    resumable = bool(checkpoint_iterations(folder))
    heads = config.attn_heads if config.network == "attention" else 0
    title = (f"# {folder.name}: {config.game}, {config.network} network, "
             f"λ = {config.attn_coef:g}, seed {config.seed}")
    preset = (f"Trained with PPO ({config.num_envs} envs × {config.num_steps} steps, "
              f"{config.update_epochs} epochs × {config.num_minibatches} minibatches, Adam "
              f"{config.learning_rate:g}{' annealed' if config.anneal_lr else ''} over a "
              f"{config.total_timesteps:,}-step schedule"
              + (f", K = {heads} attention heads, entropy penalty λ = {config.attn_coef:g}"
                 if heads else "") + ").")
    done = summary["global_step"] >= config.num_iterations * config.batch_size
    if done:
        status = "**Status: trained to the end of its schedule.**"
    elif resumable:
        names = " ".join(shlex.quote(str(g)) for g in grid or [folder])
        status = ("**Status: in training.** An intermediate checkpoint that keeps its optimizer "
                  "state, so training continues where it stopped:\n\n```bash\n"
                  f".venv/bin/python train.py --resume {names} --quiet\n```")
    else:
        status = (f"**Status: stopped at {summary['global_step']:,} of "
                  f"{config.total_timesteps:,} steps** (final parameters only).")
    rows = [("agent steps trained",
             f"{summary['global_step']:,} of the schedule's {config.total_timesteps:,}"),
            ("training time (sum of iteration times)",
             f"{summary['hours']:.1f} h" + (f" ({hardware})" if hardware else ""))]
    if summary["episodic_return"] is not None:
        rows.append(("training score (mean of the last 100 full games)",
                     f"{summary['episodic_return']:.1f}"))
    if heads and summary["attention_entropy"] is not None:
        rows.append((f"attention entropy at the end of training (sum over {heads} heads, "
                     f"uniform = {uniform_entropy(heads):.2f} nats)",
                     f"{summary['attention_entropy']:.2f} nats"))
    evaluations = read_evaluations(folder)
    for entry in evaluations:
        rows.append((f"evaluation, {entry['policy']} policy, {entry['games']} full games "
                     f"([{entry['file']}]({entry['file']}))", _score(entry)))
    table = "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    files = [f"`{CONFIG_FILE}` (every setting)", f"`{METRICS_FILE}` (one line per PPO "
             "iteration)"]
    if resumable:
        files.append(f"`{CHECKPOINT_DIR}/<iteration>/` (orbax: parameters, optimizer state, RNG "
                     "key, episode statistics)")
    if (folder / "params.npz").is_file():
        files.append("`params.npz` + `agent.json` (the final parameters, `visualize.py "
                     "publish`)")
    if evaluations:
        files.append("`evaluation_*.json` (`visualize.py evaluate`)")
    parts = [title, preset, status]
    if note:
        parts.append(note)
    parts += [table.rstrip("\n"),
              f"Reproduce from scratch:\n\n```bash\n{reproduce_command(config)}\n```",
              "Files: " + "; ".join(files) + ".\n"
              f"Load it with `attnjax.load_agent(\"{folder}\")`; "
              "every `visualize.py` subcommand takes this folder as `--run`."]
    return "\n\n".join(parts) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", nargs="+", required=True,
                        help="run or published agent folders; several: the runs of one grid "
                             "(their resume command names them all)")
    parser.add_argument("--note", default="",
                        help="a paragraph of your own (what the agent attends to, caveats)")
    parser.add_argument("--hardware", default="",
                        help="where it trained, shown next to the training time")
    parser.add_argument("--print", action="store_true",
                        help="print the cards instead of writing <run>/README.md")


def main(args: argparse.Namespace) -> int:
    folders = [Path(r) for r in args.run]
    for folder in folders:
        if not (folder / CONFIG_FILE).is_file():
            raise UserError(f"--run {folder}: no {CONFIG_FILE} there; pass a run folder "
                            "written by train.py or visualize.py publish")
    cards = [render_card(f, folders, args.note, args.hardware) for f in folders]
    for folder, card in zip(folders, cards, strict=True):
        if args.print:
            print(card)
        else:
            write_atomic(folder / CARD_FILE, card)
            print(f"wrote {folder / CARD_FILE}")
    return 0

