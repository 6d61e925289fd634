"""The run folder, spelled in one place: its file names, the rule that names it, preparing it
for training, reading its config.json and metrics.jsonl, appending and truncating the metrics,
finding its checkpoints.

Why one room: the run folder is the only interface between training and the tools, and train,
tracking, checkpoints, publish and figures all read or write it.

    <out_dir>/<Game>__attn<lambda>__s<seed>/
        config.json                the TrainConfig (`config_record`)
        metrics.jsonl              one JSON object per iteration, global_step increasing
        machine.json               where each training session ran (attnjax.training.machine)
        checkpoints/<iteration>/   orbax checkpoints (attnjax.training.checkpoints)
        attention.png              the newest attention picture
        wandb_run_id, wandb/       the W&B run id and W&B's own files
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import typing
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from attnjax.errors import UserError, make_folder, os_error_reason, remove_folders
from attnjax.files import write_json, write_text
from attnjax.training.config import RUN_DEFINING_FIELDS, TrainConfig

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
MACHINE_FILE = "machine.json"
CHECKPOINT_DIR = "checkpoints"
ATTENTION_PNG = "attention.png"
WANDB_ID_FILE = "wandb_run_id"
WANDB_DIR = "wandb"


class PartialRunWarning(UserWarning):
    """A run folder the tools can only partly use (a cut last metrics line, no finished game)."""


# ----------------------------------------------------------------------------------------------
# names


def run_name(config: TrainConfig) -> str:
    """The run folder's name: --run-name, else <game>__attn<lambda>__s<seed>."""
    return config.run_name or f"{config.game}__attn{config.attn_coef:g}__s{config.seed}"


def run_dir(config: TrainConfig) -> Path:
    return Path(config.out_dir) / run_name(config)


def config_record(config: TrainConfig) -> dict[str, Any]:
    """What config.json, a checkpoint's meta and W&B hold: every field, the run name resolved."""
    return {**config.to_dict(), "run_name": run_name(config)}


def checkpoint_path(folder: Path, iteration: int) -> Path:
    return Path(folder) / CHECKPOINT_DIR / str(iteration)


def run_of_checkpoint(checkpoint: Path) -> Path:
    """The run folder of `<run>/checkpoints/<iteration>`."""
    return Path(checkpoint).parent.parent


# ----------------------------------------------------------------------------------------------
# config.json


def write_config(folder: Path, config: TrainConfig) -> None:
    write_json(Path(folder) / CONFIG_FILE, config_record(config), indent=2, sort_keys=True)


def read_json_object(path: Path, text: str, where: str,
                     fix: str = "leave that run out of --runs") -> dict[str, Any]:
    """`text` (`where` of `path`, e.g. "line 3") as a JSON object, else a one-line UserError."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{where} of {path} is not valid JSON ({err.msg}); fix or remove the "
                        f"file, or {fix}") from None
    if not isinstance(value, dict):
        raise UserError(f"{where} of {path} is not a JSON object; fix or remove the file, "
                        f"or {fix}")
    return value


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


_KINDS = {str: ("text", lambda v: isinstance(v, str)),
          int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
          float: ("a number", is_number),
          bool: ("true or false", lambda v: isinstance(v, bool)),
          tuple[str, ...]: ("a list of text", lambda v: isinstance(v, list)
                            and all(isinstance(x, str) for x in v))}


def read_config(folder: str | os.PathLike, required: Sequence[str] = (),
                fix: str = "leave that run out of --runs") -> TrainConfig:
    """A run folder's config.json as the TrainConfig it was trained with
    (`TrainConfig.from_dict`: keys it does not know are ignored, missing ones take the
    defaults). UserError (naming the file and `fix`) when it cannot be read, is no JSON object,
    lacks one of `required` or holds a value of the wrong type."""
    path = Path(folder) / CONFIG_FILE
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else err
        raise UserError(f"cannot read {path} ({reason}); check the run folder or {fix}") \
            from None
    record = read_json_object(path, text, "the content", fix)
    missing = [k for k in required if k not in record]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; it was not written by train.py, "
                        f"or {fix}")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name in record:
            kind, fits = _KINDS[hints[field.name]]
            if not fits(record[field.name]):
                raise UserError(f"{path}: {field.name} must be {kind}, got "
                                f"{record[field.name]!r}; fix the file or {fix}")
    return TrainConfig.from_dict(record)


def load_run_config(folder: Path) -> TrainConfig:
    """The config a run folder was trained with, placed where the folder now is (--resume)."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).exists():
        raise UserError(f"--resume {folder}: no {CONFIG_FILE} there; pass a run folder written "
                        "by train.py")
    config = read_config(folder, fix="resume another run folder")
    return dataclasses.replace(config, out_dir=str(folder.parent), run_name=folder.name)


def find_run_dirs(paths: Sequence[str | os.PathLike], flag: str = "--runs") -> list[Path]:
    """Run folders (folders holding config.json) named by or found below the given paths.

    A folder holding config.json is not searched further (its checkpoints stay out).
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"{flag} {raw}: no such folder; pass a run folder or a folder of runs")
        if (path / CONFIG_FILE).is_file():
            found[path.resolve()] = None
            continue
        for root, dirs, files in os.walk(path):
            if CONFIG_FILE in files:
                found[Path(root).resolve()] = None
                dirs[:] = []
            else:
                dirs.sort()
    if not found:
        shown = " ".join(str(p) for p in paths)
        raise UserError(f"no run folders (folders with {CONFIG_FILE}) under {shown}; "
                        "pass the --out-dir that train.py wrote to")
    return sorted(found)


# ----------------------------------------------------------------------------------------------
# metrics.jsonl


class MetricsLog:
    """Appends one JSON line per iteration to `<run>/metrics.jsonl`, flushed at once."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / METRICS_FILE
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def metrics_lines_up_to(folder: Path, max_global_step: int) -> list[str]:
    """The metrics lines with global_step <= max_global_step; lines that are not JSON (a torn
    last line) or carry no global_step are dropped. [] without a metrics file."""
    path = Path(folder) / METRICS_FILE
    if not path.exists():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("global_step", math.inf) <= max_global_step:
            kept.append(line)
    return kept


def truncate_metrics(folder: Path, max_global_step: int) -> int:
    """Keep only lines with global_step <= max_global_step (and drop a torn last line), so a
    resumed run continues with no duplicated and no missing steps. Returns lines kept."""
    path = Path(folder) / METRICS_FILE
    if not path.exists():
        return 0
    kept = metrics_lines_up_to(folder, max_global_step)
    write_text(path, "".join(f"{line}\n" for line in kept))
    return len(kept)


def read_metrics(folder: Path, required: Sequence[str] = ("global_step",),
                 numbers: Sequence[str] = (),
                 fix: str = "leave that run out of --runs") -> list[dict[str, Any]]:
    """Every metrics line of a run, checked: JSON objects holding `required`, an integer
    global_step that increases, numbers or null under `numbers`. A cut last line (no newline,
    not JSON: a run still writing it) is skipped with a PartialRunWarning. UserError naming the
    line and `fix` otherwise, and for a missing or empty file."""
    folder = Path(folder)
    path = folder / METRICS_FILE
    if not path.is_file():
        raise UserError(f"{folder} has {CONFIG_FILE} but no {METRICS_FILE} (the run has not "
                        f"finished an iteration); wait for it or {fix}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path} ({err}); {fix}") from None
    rows: list[dict[str, Any]] = []
    for number, line in _complete_lines(path, text):
        row = read_json_object(path, line, f"line {number}", fix)
        missing = [k for k in required if k not in row]
        if missing:
            raise UserError(f"line {number} of {path} lacks {', '.join(missing)}; it was "
                            f"not written by train.py, or {fix}")
        step = row.get("global_step")
        if not isinstance(step, int) or isinstance(step, bool):
            raise UserError(f"line {number} of {path}: global_step must be an integer, "
                            f"got {step!r}")
        for key in numbers:
            if row.get(key) is not None and not is_number(row[key]):
                raise UserError(f"line {number} of {path}: {key} must be a number or "
                                f"null, got {row[key]!r}")
        if rows and step <= rows[-1]["global_step"]:
            raise UserError(f"line {number} of {path}: global_step {step} does not "
                            f"increase (previous {rows[-1]['global_step']}); the file mixes two "
                            "runs — keep one of them")
        rows.append(row)
    if not rows:
        raise UserError(f"{path} is empty (the run has not finished an iteration); "
                        f"wait for it or {fix}")
    return rows


def _complete_lines(path: Path, text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the non-blank lines, less a cut last line (warned about)."""
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if number == len(lines) and not text.endswith("\n"):
            try:  # no newline yet: a run still writing it; skip it only if it is cut
                json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}: skipped the unfinished last line", PartialRunWarning,
                              stacklevel=3)
                continue
        yield number, line


# ----------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_iterations(folder: Path) -> list[int]:
    """The iterations of a run folder's checkpoints, oldest first ([] without any)."""
    saved = Path(folder) / CHECKPOINT_DIR
    if not saved.is_dir():
        return []
    return sorted(int(p.name) for p in saved.iterdir() if p.name.isdigit())


def read_checkpoint_meta(folder: Path, iteration: int) -> dict[str, Any]:
    """A checkpoint's `meta` item (orbax JsonSave): config, step, iteration, actions, W&B id."""
    return json.loads((checkpoint_path(folder, iteration) / "meta" / "metadata").read_text())


def find_checkpoints(path: Path) -> tuple[Path, list[int]]:
    """(run folder, checkpoint iterations newest first) for a run folder or one checkpoint."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a run folder or one of its checkpoints")
    if (path / CHECKPOINT_DIR).is_dir():
        folder, steps = path, checkpoint_iterations(path)[::-1]
    elif path.parent.name == CHECKPOINT_DIR and path.name.isdigit():
        folder, steps = run_of_checkpoint(path), [int(path.name)]
    else:
        raise UserError(
            f"{path} holds no checkpoints (no {CHECKPOINT_DIR}/ folder); pass a run folder "
            "written by train.py or one of its checkpoints/<iteration> folders"
        )
    if not steps:
        raise UserError(f"{path / CHECKPOINT_DIR} is empty; train first or pick another run")
    return folder, steps


# ----------------------------------------------------------------------------------------------
# preparing run folders


def check_out_dir_writable(out_dir: str) -> None:
    """UserError unless out_dir exists and is writable or can be created (a cheap check that
    writes nothing; root passes it almost anywhere, so `create_run_dirs` turns the OS errors of
    really creating the folders into UserErrors too)."""
    try:
        probe = Path(out_dir).resolve()
        while not probe.exists():
            probe = probe.parent
        usable = probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
    except (OSError, RuntimeError) as err:  # no permission to look, a symlink loop
        raise UserError(f"--out-dir {out_dir} cannot be used ({err}); choose another "
                        "folder") from None
    if not usable:
        raise UserError(f"--out-dir {out_dir} is not writable ({probe} is not a writable "
                        "folder); choose another folder")


# Files of a run (trained, published, evaluated, carded) that a new run must not start over.
RUN_FILE_PATTERNS = (CONFIG_FILE, METRICS_FILE, MACHINE_FILE, "agent.json", "params.npz",
                     "evaluation*.json", "README.md", ATTENTION_PNG, WANDB_ID_FILE)


def run_files_in(folder: Path) -> list[str]:
    """The names of the run files (RUN_FILE_PATTERNS) a folder holds, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted({p.name for pattern in RUN_FILE_PATTERNS for p in folder.glob(pattern)})


def differing_settings(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """The run-defining settings (lambda, seed, sizes, ...) in which a recorded config (a
    config.json or a checkpoint's) differs from `config`, as "name X there, Y here"."""
    return [f"{k} {saved.get(k)!r} there, {getattr(config, k)!r} here"
            for k in RUN_DEFINING_FIELDS if saved.get(k) != getattr(config, k)]


def config_differences(folder: Path, config: TrainConfig) -> list[str]:
    """`differing_settings` of the run folder's config.json against `config`."""
    fix = "move that folder away or pick another --out-dir"
    return differing_settings(read_config(folder, fix=fix).to_dict(), config)


def check_checkpoints_fit(folder: Path, config: TrainConfig) -> None:
    """UserError when a readable checkpoint of the folder was written by a run of other
    settings than `config` (config.json edited, or another run's checkpoints copied in):
    training continues only the run that wrote them. Unreadable ones are left to the resume,
    which skips them."""
    for iteration in checkpoint_iterations(folder):
        try:
            saved = read_checkpoint_meta(folder, iteration)["config"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        differing = differing_settings(saved, config)
        if differing:
            raise UserError(f"checkpoint {iteration} in {folder} was written by another run "
                            f"({'; '.join(differing)}); nothing was changed: resume with that "
                            "run's own config.json or train a new run in another --out-dir")


def check_run_dirs(configs: list[TrainConfig], resume: bool) -> tuple[list[Path], bool]:
    """Read-only checks of the run folders; returns (folders, whether training continues them).

    With --resume every folder must hold checkpoints. Without it, a command run again after it
    was stopped continues its runs: every folder holds checkpoints of the same configuration
    (config.json equal in every run-defining setting). A folder is refused, with nothing
    touched, when it holds checkpoints of another configuration, or files of a run (metrics,
    config, a published agent, evaluations, a card) but no checkpoint, or when only some runs
    of a grid have checkpoints. Otherwise the runs are new."""
    dirs = [run_dir(c) for c in configs]
    if resume:
        for folder in dirs:
            if not checkpoint_iterations(folder):
                raise UserError(f"--resume {folder}: no checkpoint there to resume from; train "
                                "it anew without --resume")
        for config, folder in zip(configs, dirs, strict=True):
            check_checkpoints_fit(folder, config)
        return dirs, True
    with_checkpoints, new = [], []
    for config, folder in zip(configs, dirs, strict=True):
        if checkpoint_iterations(folder):
            differing = config_differences(folder, config)
            if differing:
                raise UserError(
                    f"run folder {folder} holds checkpoints of another configuration "
                    f"({'; '.join(differing)}); nothing was changed: continue that run with "
                    f"--resume {folder}, or pick another --out-dir/--run-name")
            check_checkpoints_fit(folder, config)
            with_checkpoints.append(folder)
        elif files := run_files_in(folder):
            raise UserError(
                f"run folder {folder} holds {', '.join(files)} but no checkpoint to continue "
                "from; nothing was changed: pick another --out-dir/--run-name (or move that "
                "folder away)")
        else:
            new.append(folder)
    if with_checkpoints and new:
        raise UserError(
            f"{len(with_checkpoints)} run folder(s) of this grid hold checkpoints "
            f"({with_checkpoints[0].name}, ...) and {len(new)} do not ({new[0].name}, ...); "
            "nothing was changed: continue the first with --resume and train the others "
            "separately")
    return dirs, bool(with_checkpoints)


def create_run_dirs(configs: list[TrainConfig], resume: bool) -> list[Path]:
    """Create the run folders (with `checkpoints/`), then write each config.json (a new run
    also starts a new metrics.jsonl). Any OS error (a parent that cannot be created, a file in
    the way, no permission, /proc as root) is a UserError naming the path that leaves nothing
    behind: the folders created here are removed again, and no config.json is written before
    every folder exists. Run `check_run_dirs` first."""
    dirs = [run_dir(c) for c in configs]
    created: list[Path] = []
    folder = dirs[0]
    try:
        for folder in dirs:
            if (folder / METRICS_FILE).is_dir():
                raise IsADirectoryError(21, "is a folder", str(folder / METRICS_FILE))
        for folder in dirs:
            make_folder(folder / CHECKPOINT_DIR, created)
        for config, folder in zip(configs, dirs, strict=True):
            if not resume:
                (folder / METRICS_FILE).unlink(missing_ok=True)
            write_config(folder, config)
    except OSError as err:
        for made in dirs:
            if made in created:
                for name in (CONFIG_FILE, CONFIG_FILE + ".tmp"):
                    with contextlib.suppress(OSError):
                        (made / name).unlink(missing_ok=True)
        remove_folders(created)
        raise UserError(f"cannot prepare run folder {folder} ({os_error_reason(err)}); choose "
                        "another --out-dir") from None
    return dirs
