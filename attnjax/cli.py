"""Command-line plumbing shared by train.py and visualize.py.

Why: every command must answer bad input with one line and exit code 2, never a traceback, so
argument errors and `UserError`s are funnelled through `run_cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from attnjax.errors import UserError


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage dump) and exits with code 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def run_cli(main: Callable[[], int | None]) -> None:
    """Run `main`, turning a UserError into one stderr line with exit code 2."""
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code or 0)


PRESETS = ("attnjax", "paper")


def add_preset_argument(parser: argparse.ArgumentParser, flags: str, paper: str) -> None:
    """`--preset attnjax|paper`: a named set of defaults for some of a tool's flags. flags:
    which ones; paper: what the paper preset sets (both for the help text)."""
    parser.add_argument("--preset", default="attnjax", choices=PRESETS,
                        help=f"defaults of {flags}: attnjax (default) or paper ({paper}); a "
                             "flag given explicitly wins over the preset")


def preset_values(args: argparse.Namespace, table: dict[str, dict[str, object]]) -> dict:
    """The values of the preset `args.preset` from `table` (preset -> {flag: value}), each
    replaced by the flag's value where the flag was given (flags of a preset default to None;
    a namespace without `preset` gets the attnjax preset)."""
    preset = table[getattr(args, "preset", "attnjax")]
    return {name: value if getattr(args, name, None) is None else getattr(args, name)
            for name, value in preset.items()}


def _int_at_least(low: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(1, text)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(0, text)


def comma_list(text: str, kind: Callable[[str], Any] = str) -> tuple:
    """'a, b,,c' -> ('a', 'b', 'c'), each value stripped and converted by `kind` (int, float,
    ...); empty entries are skipped. ValueError when nothing is left or a value does not convert:
    the caller words it for its flag (argparse type, or UserError after parsing)."""
    values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
    if not values:
        raise ValueError(f"empty list {text!r}")
    return values


def counts(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated positive integers such as 4,3,2,2."""
    try:
        values = comma_list(text, int)
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive counts such as 4,3,2,2, got {text!r}")
    return values


# --------------------------------------------------------------------------------------------
# the play flags: how the inspection tools play the agents before they look inside them


POLICIES = ("sample", "greedy")
PLAY_DEFAULTS: dict[str, object] = {"frames": None, "seed": 0, "policy": "sample", "warmup": 0,
                                    "stride": 1}
PLAY_HELP = {
    "run": "run folder written by train.py (newest checkpoint) or one of its "
           "checkpoints/<iteration> folders",
    "runs": "run folders (or checkpoints) of one game; repeatable",
    "frames": "frames to record (default %(default)s)",
    "seed": "env seed and action sampling (default %(default)s)",
    "policy": "how the agent acts: sample (as in training; default) or greedy (argmax)",
    "warmup": "env steps played before the first recorded frame (default %(default)s)",
    "stride": "record every n-th step (default %(default)s)",
}


def add_play_arguments(parser: argparse.ArgumentParser, *, runs: bool = False,
                       skip: tuple[str, ...] = (), help_texts: dict[str, str] | None = None,
                       **defaults: object) -> None:
    """--run --frames --seed --policy --warmup --stride, as video, tree, saliency, evaluate and
    metrics share them. runs: --run takes several runs (`--run a b` or `--run a --run b`);
    skip: flags the tool does not have; help_texts: a tool's own help texts; defaults: its own
    defaults (e.g. frames=20). Values are checked by `check_play_arguments`."""
    defaults = {**PLAY_DEFAULTS, **defaults}
    texts = {**PLAY_HELP, **(help_texts or {})}
    if runs:
        parser.add_argument("--run", nargs="+", action="extend", required=True, metavar="RUN",
                            help=texts["runs"])
    else:
        parser.add_argument("--run", required=True, help=texts["run"])
    for name, kind in (("frames", int), ("seed", int), ("warmup", int), ("stride", int)):
        if name not in skip:
            parser.add_argument(f"--{name}", type=kind, default=defaults[name], help=texts[name])
    if "policy" not in skip:
        parser.add_argument("--policy", default=defaults["policy"], choices=POLICIES,
                            help=texts["policy"])


def check_play_arguments(args: argparse.Namespace) -> None:
    """UserError (one line, exit 2) unless --frames and --stride are >= 1, --warmup >= 0 and
    --policy is sample or greedy; flags the namespace lacks or leaves None are not checked."""
    for name, low in (("frames", 1), ("stride", 1), ("warmup", 0)):
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise UserError(f"--{name} must be at least {low}, got {value}")
    policy = getattr(args, "policy", None)
    if policy is not None and policy not in POLICIES:
        raise UserError(f"--policy must be {' or '.join(POLICIES)}, got {policy!r}")
