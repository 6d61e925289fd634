#!/usr/bin/env python3
"""Train the entropy-regularised attention agent (Nikulin et al. 2019) with PPO on envpool Atari.

Defaults are the paper's preset. Several --attn-coef and --seed values train the whole
lambda x seed grid in one process and one compiled program, one run folder each. The same
command run again after it was stopped continues from the runs' checkpoints; a folder holding
another run's files is refused, never overwritten.
Examples:
  train.py --env-id Breakout-v5 --attn-coef 0.001 --seed 0
  train.py --env-id Breakout-v5 --attn-coef 0 0.0005 0.005 --seed 0 1
  train.py --resume runs/Breakout__attn0.001__s0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from attnjax.cli import OneLineArgumentParser, run_cli
from attnjax.training.config import TrainConfig, expand_grid


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        meta = f.metadata
        default = f.default
        help_text = meta["help"] if "default" in meta["help"] else (
            f"{meta['help']} (default: {default if default != '' else 'none'})")
        if meta.get("grid"):
            help_text = f"{meta['help']}; several values train a grid (default: {default})"
            parser.add_argument(flag, type=kind, nargs="+", action="extend", help=help_text,
                                metavar="X")
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif kind == tuple[str, ...]:
            parser.add_argument(flag, nargs="*", action="extend", help=help_text, metavar="TAG")
        else:
            parser.add_argument(flag, type=kind, choices=meta.get("choices"), help=help_text,
                                metavar=None if meta.get("choices") else f.name.upper())
    parser.add_argument("--resume", nargs="+", action="extend", metavar="RUN_DIR",
                        help="continue these run folders to their total steps with their own "
                        "config (several: a grid, trained together)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the configuration and print the plan; train nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def configs_from_args(args: argparse.Namespace) -> list[TrainConfig]:
    from attnjax.training.loop import merge_resume_overrides
    from attnjax.training.runs import load_run_config

    given = {k: v for k, v in vars(args).items() if k not in ("resume", "dry_run", "quiet")}
    if "wandb_tags" in given:
        given["wandb_tags"] = tuple(given["wandb_tags"])
    if getattr(args, "resume", None):
        if "attn_coef" in given or "seed" in given:
            given = {k: (v[0] if len(v) == 1 else v) if k in ("attn_coef", "seed") else v
                     for k, v in given.items()}
        return [merge_resume_overrides(load_run_config(d), given) for d in args.resume]
    attn_coefs = given.pop("attn_coef", [TrainConfig.attn_coef])
    seeds = given.pop("seed", [TrainConfig.seed])
    return expand_grid(TrainConfig(**given), attn_coefs, seeds)


def main() -> int:
    from attnjax.devices import prepare_process

    prepare_process()  # before JAX runs anything: tcmalloc where it helps; host devices
    args = build_parser().parse_args()
    from attnjax.training.loop import TrainingDiverged, plan, prepare, train
    from attnjax.training.runs import ATTENTION_PNG, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE

    configs = configs_from_args(args)
    resume = bool(getattr(args, "resume", None))
    if getattr(args, "dry_run", False):
        _, continues = prepare(configs, resume)  # what train() checks first
        print(plan(configs, continues))
        return 0
    try:
        run_dirs = train(configs, progress=not getattr(args, "quiet", False), resume=resume)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for run_dir in run_dirs:
        print(f"run folder: {run_dir}  ({CONFIG_FILE}, {METRICS_FILE}, {CHECKPOINT_DIR}/, "
              f"{ATTENTION_PNG})")
    return 0


if __name__ == "__main__":
    run_cli(main)
