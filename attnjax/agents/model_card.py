"""Model cards: a README.md for a run or published agent folder, written from its own files.

Why: the reference agents under `agents/` are shared as folders, and a reader needs to know at
a glance what an agent is, how far it trained, how well it plays and how to reproduce it. Every
number comes from the folder (config.json, metrics.jsonl, evaluation_*.json written by
`visualize.py evaluate`, checkpoints or params.npz), so a card is rewritten after each
training stretch or evaluation rather than edited by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any

from attnjax.agents.published import AGENT_FILE
from attnjax.errors import UserError
from attnjax.files import write_text
from attnjax.model.baseline import UNIFORM_HEAD_ENTROPY, uniform_entropy
from attnjax.provenance import check_replaceable, markdown_stamp, read_json_file, written_by
from attnjax.training.config import RUN_DEFINING_FIELDS, TrainConfig
from attnjax.training.machine import UNKNOWN, read_machine
from attnjax.training.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    MACHINE_FILE,
    METRICS_FILE,
    checkpoint_iterations,
    read_config,
    read_metrics,
    run_name,
)

CARD_FILE = "README.md"
COMMAND = "visualize.py card"  # the stamp on the cards it writes (attnjax.provenance)
REPRODUCE_OUT_DIR = "runs"  # a from-scratch run never writes into a shared agent's folder
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


def agent_iteration(folder: Path, config: TrainConfig, summary: dict[str, Any]) -> int:
    """The PPO iteration of the agent a card describes: a published folder's, else the newest
    checkpoint's, else the last logged one."""
    meta = read_json_file(folder / AGENT_FILE)
    if isinstance(meta, dict) and isinstance(meta.get("iteration"), int):
        return meta["iteration"]
    saved = checkpoint_iterations(folder)
    return saved[-1] if saved else summary["global_step"] // config.batch_size


def stop_iteration(config: TrainConfig, iteration: int) -> int | None:
    """The iteration to stop a from-scratch run at to get this agent; None when the agent ran
    its whole schedule."""
    return iteration if iteration < config.num_iterations else None


def checkpoint_cadence(config: TrainConfig, stop: int | None) -> int:
    """The run's --checkpoint-every if a checkpoint falls on `stop` with it, else the largest
    cadence below it that puts one there."""
    every = config.checkpoint_every
    if stop is None or stop % every == 0:
        return every
    return max(d for d in range(1, every + 1) if stop % d == 0)


def reproduce_command(config: TrainConfig, iteration: int) -> str:
    """The train.py command that trains this agent (at `iteration`) from scratch into
    runs/: the run-defining fields that differ from the defaults (the paper preset; the total
    steps always, the agent's own step when it ran its whole schedule) and a checkpoint
    cadence that writes a checkpoint at `iteration`."""
    default = TrainConfig()
    stop = stop_iteration(config, iteration)
    total = config.total_timesteps if stop is not None else iteration * config.batch_size
    argv = [".venv/bin/python", "train.py", "--env-id", config.env_id,
            "--attn-coef", f"{config.attn_coef:g}", "--seed", str(config.seed),
            "--total-timesteps", str(total)]
    for name in RUN_DEFINING_FIELDS:
        if name in ("env_id", "attn_coef", "seed", "total_timesteps"):
            continue
        value = getattr(config, name)
        if value != getattr(default, name):
            flag = "--" + name.replace("_", "-")
            argv += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False \
                else [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if run_name(config) != run_name(dataclasses.replace(config, run_name="")):
        argv += ["--run-name", run_name(config)]
    argv += ["--out-dir", REPRODUCE_OUT_DIR,
             "--checkpoint-every", str(checkpoint_cadence(config, stop))]
    return shlex.join(argv)


def reproduce_section(config: TrainConfig, iteration: int) -> str:
    """The card's "Reproduce from scratch" part: the command and, for an agent taken before
    the end of its schedule, where to stop and what to publish."""
    text = (f"Reproduce from scratch:\n\n```bash\n{reproduce_command(config, iteration)}\n```")
    stop = stop_iteration(config, iteration)
    if stop is None:
        return text
    every, keep = checkpoint_cadence(config, stop), TrainConfig().keep_checkpoints
    checkpoint = f"{REPRODUCE_OUT_DIR}/{run_name(config)}/{CHECKPOINT_DIR}/{stop}"
    return (f"{text}\n\nStop it between iteration {stop} (step {stop * config.batch_size:,}) "
            f"and iteration {stop + keep * every}: checkpoint {stop} is this agent (train.py "
            f"keeps the newest {keep} checkpoints; the learning rate follows the "
            f"{config.total_timesteps:,}-step schedule). Publish it with "
            f"`.venv/bin/python visualize.py publish --run {checkpoint} --out DIR`.")


def is_unstamped_card(path: Path, folder: Path) -> bool:
    """Whether `path` is a card of `folder` written before stamps (`render_card`'s layout)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return (text.startswith(f"# {folder.name}: ") and "\n\nReproduce from scratch:\n\n```bash\n"
            in text and "\nLoad it with `attnjax.load_agent(" in text)


# the user's note inside a card, between these lines, so that writing the card again keeps it
NOTE_START, NOTE_END = "<!-- note -->", "<!-- /note -->"
TIME_ROW = re.compile(r"^\| training time \(sum of iteration times\) \| [0-9.]+ h \((.*)\) \|$",
                      re.M)
NOT_HARDWARE = "machine not recorded"


def previous_card(folder: Path) -> tuple[str, str]:
    """(note, hardware) of the card this command wrote into `folder` before ("" each when there
    is no such card or it holds none): what the user typed, kept when the card is written again
    without --note or --hardware."""
    path = folder / CARD_FILE
    if not (written_by(path, COMMAND) or is_unstamped_card(path, folder)):
        return "", ""
    text = path.read_text(encoding="utf-8")
    if NOTE_START in text and NOTE_END in text:
        note = text.split(NOTE_START, 1)[1].split(NOTE_END, 1)[0].strip()
    else:  # cards before the markers: the paragraphs between the status and the table
        parts = text.split("\n\n")
        status = next((i for i, x in enumerate(parts) if x.startswith("**Status:")), None)
        table = next((i for i, x in enumerate(parts) if x.startswith("| | |")), None)
        note = ""
        if status is not None and table is not None:
            first = status + 1
            if first < table and parts[first].startswith("```"):
                first += 1  # the resume command of a run in training
            note = "\n\n".join(parts[first:table]).strip()
    row = TIME_ROW.search(text)
    hardware = row.group(1) if row else ""
    if hardware == NOT_HARDWARE or hardware.endswith("(machine.json)"):
        hardware = ""
    return note, hardware


def _score(entry: dict[str, Any]) -> str:
    heads = "/".join(f"{h:.2f}" for h in entry.get("attention_entropy_per_head") or [])
    head_text = (f"; attention entropy per head {heads} nats (uniform "
                 f"{UNIFORM_HEAD_ENTROPY:.2f})") if heads else ""
    return (f"{entry['mean']:.1f} ± {entry['std']:.1f} (median {entry['median']:g}, min "
            f"{entry['min']:g}, max {entry['max']:g}) at {entry['global_step']:,} steps; mean "
            f"length {entry['mean_length']:.0f} steps{head_text}")


def trained_on(folder: Path, hardware: str = "") -> str:
    """Where the run trained, as its machine.json recorded it: each session's device and how many
    runs its program trained together (a resume on the same machine counts once). `hardware`,
    typed by the user, stands in only for a run without the record."""
    record = read_machine(folder)
    if record is None:
        return hardware or NOT_HARDWARE
    if hardware:
        raise UserError(f"--hardware: {folder} records where it trained (machine.json); drop "
                        "--hardware, or put your own words in --note")
    machines: list[tuple[str, int, Any]] = []  # (device, runs in the program, from step)
    for entry in record["sessions"]:
        device = entry.get("device") if isinstance(entry.get("device"), str) else UNKNOWN
        runs = entry.get("runs_in_program") if isinstance(entry.get("runs_in_program"),
                                                          int) else 1
        if not machines or machines[-1][:2] != (device, runs):
            machines.append((device, runs, entry.get("from_step")))
    if not machines:
        return NOT_HARDWARE
    parts = []
    for device, runs, from_step in machines:
        text = device + (f", {runs} runs in one program" if runs > 1 else "")
        if len(machines) > 1 and isinstance(from_step, int):
            text += f", from step {from_step:,}"
        parts.append(text)
    return "; ".join(parts) + " (machine.json)"


def render_card(folder: Path, grid: list[Path], note: str = "", hardware: str = "") -> str:
    """The Markdown card of one run folder; `grid` are the folders trained in one program with
    it (the `--resume` command names them all); `hardware` see `trained_on`."""
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
             f"{summary['hours']:.1f} h ({trained_on(folder, hardware)})")]
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
    if (folder / MACHINE_FILE).is_file():
        files.append(f"`{MACHINE_FILE}` (where each training session ran)")
    parts = [title, preset, status]
    if note:
        parts.append(f"{NOTE_START}\n{note}\n{NOTE_END}")
    parts += [table.rstrip("\n"),
              reproduce_section(config, agent_iteration(folder, config, summary)),
              "Files: " + "; ".join(files) + ".\n"
              f"Load it with `attnjax.load_agent(\"{folder}\")`; "
              "every `visualize.py` subcommand takes this folder as `--run`."]
    return "\n\n".join(parts) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", nargs="+", action="extend", required=True, metavar="RUN",
                        help="run or published agent folders; several: the runs of one grid "
                             "(their resume command names them all)")
    parser.add_argument("--note", default=None,
                        help="a paragraph of your own (what the agent attends to, caveats); "
                             "without it the folder's card keeps its note, --note '' removes it")
    parser.add_argument("--hardware", default=None,
                        help="where it trained, shown next to the training time, for a run "
                             "folder without machine.json (a folder with one shows its record); "
                             "without it the folder's card keeps its words")
    parser.add_argument("--print", action="store_true",
                        help="print the cards instead of writing <run>/README.md")


def main(args: argparse.Namespace) -> int:
    folders = [Path(r) for r in args.run]
    for folder in folders:
        if not (folder / CONFIG_FILE).is_file():
            raise UserError(f"--run {folder}: no {CONFIG_FILE} there; pass a run folder "
                            "written by train.py or visualize.py publish")
    cards = []
    for folder in folders:
        note, hardware = previous_card(folder)
        if (folder / MACHINE_FILE).is_file():
            hardware = ""  # the record replaces words typed for the card before it existed
        cards.append(render_card(folder, folders,
                                 note if args.note is None else args.note,
                                 hardware if args.hardware is None else args.hardware))
    if args.print:
        for card in cards:
            print(card)
        return 0
    for folder in folders:  # every card checked before any is written
        check_replaceable(folder / CARD_FILE, COMMAND, "move it away or print the card with "
                          "--print", legacy=lambda path: is_unstamped_card(path, path.parent))
    for folder, card in zip(folders, cards, strict=True):
        write_text(folder / CARD_FILE, f"{markdown_stamp(COMMAND)}\n{card}")
        print(f"wrote {folder / CARD_FILE}")
    return 0

