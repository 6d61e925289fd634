"""Expand a W&B grid-sweep file into the train.py command lines its agent would run.

`python -m attnjax.training.sweeps sweeps/paper.yaml` prints one shell command per grid point
(block), so the same grid runs without W&B: pipe it to `bash`, or give one line to each machine.
Arguments after `--` are appended to every command (e.g. `-- --dry-run`).

The expansion follows `wandb agent` (wandb 0.31, wandb_agent.py and sdk/launch/sweeps/utils.py):
every `command:` item is turned into a string; `${envvar:NAME}` inside an item becomes the
environment variable NAME (or the text NAME when unset); an item that is a whole `${macro}` is
replaced by its list: `${args}` -> `--name=value` for each swept parameter, `${args_no_equals}`
-> `--name value`, `${args_no_hyphens}` -> `name=value`, `${args_no_boolean_flags}` -> like
`${args}` but `--name` for true booleans and nothing for false ones, `${args_json}` -> one JSON
object; `${program}` -> the file's `program:`; `${env}` and `${interpreter}` (/usr/bin/env and
python for the agent) are left out here. Values are written with Python's str(), as W&B does.
Without `command:` W&B runs `${env} ${interpreter} ${program} ${args}`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from attnjax.errors import UserError

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
DROPPED_MACROS = ("env", "interpreter")
ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


@dataclass(frozen=True)
class Sweep:
    """A grid sweep file: its program and the argv (after the program) of each grid point."""

    path: Path
    program: str
    argvs: list[list[str]]


def _macro_values(params: dict[str, Any]) -> dict[str, list[str]]:
    """The argument lists W&B's agent substitutes for `${...}` macros, for one grid point."""
    flags, no_equals, no_hyphens, no_booleans, hydra_append, hydra_override = ([] for _ in "123456")
    for name, value in params.items():
        flag = f"{name}={value}"
        flags.append("--" + flag)
        no_equals += [f"--{name}", str(value)]
        no_hyphens.append(flag)
        hydra_append.append("+" + flag)
        hydra_override.append("++" + flag)
        if isinstance(value, bool):
            if value:
                no_booleans.append("--" + name)
        else:
            no_booleans.append("--" + flag)
    return {"args": flags, "args_no_equals": no_equals, "args_no_hyphens": no_hyphens,
            "args_no_boolean_flags": no_booleans, "args_json": [json.dumps(params)],
            "args_append_hydra": hydra_append, "args_override_hydra": hydra_override}


def _grid(path: Path, parameters: Any) -> list[dict[str, Any]]:
    """Every combination of the parameters' values, in file order (the last varies fastest)."""
    if not isinstance(parameters, dict) or not parameters:
        raise UserError(f"{path}: `parameters:` must map each swept name to `values:` or `value:`")
    names, choices = [], []
    for name, spec in parameters.items():
        if isinstance(spec, dict) and "values" in spec:
            values = spec["values"]
            if not isinstance(values, list) or not values:
                raise UserError(f"{path}: parameters.{name}.values must be a non-empty list")
        elif isinstance(spec, dict) and "value" in spec:
            values = [spec["value"]]
        else:
            raise UserError(f"{path}: parameters.{name} must have `values:` (a list) or "
                            "`value:`; distributions and nested parameters cannot be expanded")
        if any(isinstance(v, dict | list) for v in values):
            raise UserError(f"{path}: parameters.{name} values must be scalars (text or numbers)")
        names.append(str(name))
        choices.append(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def _expand_command(path: Path, command: list[Any], params: dict[str, Any], program: str
                    ) -> list[str]:
    macros = _macro_values(params)
    macros["program"] = [program]
    out: list[str] = []
    program_at = None
    for item in command:
        if isinstance(item, dict | list) or item is None:
            raise UserError(f"{path}: `command:` items must be text or numbers, got {item!r}")
        text = ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(item))
        if not (text.startswith("${") and text.endswith("}")):
            out.append(text)
            continue
        macro = text[2:-1]
        if macro in DROPPED_MACROS:
            continue
        if macro not in macros:
            known = ", ".join("${" + m + "}" for m in [*DROPPED_MACROS, *macros])
            raise UserError(f"{path}: `command:` uses {text}, which cannot be expanded here; "
                            f"use one of {known}")
        if macro == "program":
            if program_at is not None:
                raise UserError(f"{path}: `command:` names ${{program}} twice")
            program_at = len(out)
        out += macros[macro]
    if program_at is None:
        raise UserError(f"{path}: `command:` must contain ${{program}} (the script the agent runs)")
    return out[program_at + 1:]


def load(path: str | os.PathLike) -> Sweep:
    """Read and expand a grid-sweep file; UserError on anything malformed."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read sweep file {path} ({err.strerror}); check the path") \
            from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(f"{path} is not valid YAML{line}; fix the file") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} must be a YAML mapping with program, method, parameters "
                        "and command")
    program = config.get("program")
    if not isinstance(program, str) or not program:
        raise UserError(f"{path}: `program:` must name the script to run, e.g. train.py")
    if config.get("method") != "grid":
        raise UserError(f"{path}: `method:` is {config.get('method')!r}; only grid sweeps have "
                        "a fixed list of commands to expand")
    command = config.get("command", DEFAULT_COMMAND)
    if not isinstance(command, list) or not command:
        raise UserError(f"{path}: `command:` must be a list of arguments")
    argvs = [_expand_command(path, command, params, program)
             for params in _grid(path, config.get("parameters"))]
    return Sweep(path=path, program=program, argvs=argvs)


def expand(path: str | os.PathLike) -> list[list[str]]:
    """The argv (after the program, e.g. train.py) of each grid point of a sweep file."""
    return load(path).argvs


def shell_commands(path: str | os.PathLike, python: str = "python",
                   extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """One shell command line per grid point: `<python> <program> <argv> <extra>`."""
    sweep = load(path)
    return [shlex.join([python, sweep.program, *argv, *extra]) for argv in sweep.argvs]


def main(argv: list[str] | None = None) -> int:
    from attnjax.cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="python -m attnjax.training.sweeps",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("sweep_file", help="a grid sweep YAML file, e.g. sweeps/paper.yaml")
    parser.add_argument("--python", default="python",
                        help="interpreter written in front of each command (default: python)")
    parser.usage = "%(prog)s [-h] [--python PYTHON] sweep_file [-- TRAIN_ARGS ...]"
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    for line in shell_commands(args.sweep_file, args.python, extra):
        print(line)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    from attnjax.cli import run_cli

    run_cli(main)
