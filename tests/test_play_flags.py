"""The play flags shared by video, tree, saliency, evaluate and metrics (attnjax/cli.py): one
definition, each tool's own defaults, one check answering with one line and exit code 2."""

from __future__ import annotations

import argparse

import pytest

import visualize
from attnjax.cli import check_play_arguments, run_cli
from attnjax.errors import UserError

PLAY = ("run", "frames", "seed", "policy", "warmup", "stride")
# subcommand -> (extra required argv, its play defaults; None: the tool has no such flag)
TOOLS = {
    "saliency": (["--out", "x.npz"], {"frames": None, "stride": 1, "warmup": 0}),
    "tree": ([], {"frames": 20, "stride": 1, "warmup": 0}),
    "video": (["--out", "x.mp4"], {"frames": 1000, "stride": None, "warmup": 0}),
    "evaluate": (["--out", "x.json"], {"frames": None, "stride": None, "warmup": None}),
    "metrics": (["--out", "x"], {"frames": 256, "stride": 4, "warmup": 0}),
}


@pytest.mark.parametrize("command", TOOLS)
def test_each_tool_keeps_its_defaults(command):
    extra, defaults = TOOLS[command]
    args = visualize.build_parser(command).parse_args([command, "--run", "r", *extra])
    assert (args.seed, args.policy) == (0, "sample")
    for name, value in defaults.items():
        assert getattr(args, name, None) == value, name
    many = command in ("video", "evaluate", "metrics")
    assert args.run == (["r"] if many else "r")
    if many:  # repeated --run or several after one: both work
        args = visualize.build_parser(command).parse_args(
            [command, "--run", "a", "b", "--run", "c", *extra])
        assert args.run == ["a", "b", "c"]


@pytest.mark.parametrize("values,message", [
    ({"frames": 0}, "--frames must be at least 1, got 0"),
    ({"stride": 0}, "--stride must be at least 1, got 0"),
    ({"warmup": -1}, "--warmup must be at least 0, got -1"),
    ({"policy": "random"}, "--policy must be sample or greedy, got 'random'"),
])
def test_bad_values_are_one_line_exit_2(values, message, capsys):
    args = argparse.Namespace(**{"frames": 5, "stride": 1, "warmup": 0, "policy": "sample",
                                 **values})
    with pytest.raises(UserError, match=message):
        check_play_arguments(args)
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda: check_play_arguments(args))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_flags_a_tool_lacks_are_not_checked():
    check_play_arguments(argparse.Namespace(policy="greedy"))  # evaluate: no --frames
    check_play_arguments(argparse.Namespace(frames=None, warmup=0))  # saliency: default frames


def test_play_itself_checks_the_same_way():
    from attnjax.inspection.render import play

    with pytest.raises(UserError, match="--warmup must be at least 0, got -2"):
        next(play([], 3, warmup=-2))
