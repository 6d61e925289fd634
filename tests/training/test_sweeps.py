"""Sweep files expand to the right grid, and every expanded command passes train.py --dry-run."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from attnjax.errors import UserError
from attnjax.training import sweeps

ROOT = Path(__file__).resolve().parents[2]
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))
PAPER_GAMES = ["BeamRider", "Breakout", "Enduro", "Frostbite", "MsPacman", "Seaquest"]
PAPER_LAMBDAS = [0.0, 0.0005, 0.001, 0.002, 0.003, 0.005]


def train_flags(argv: list[str]) -> argparse.Namespace:
    """The grid-defining flags of train.py, parsed the way its argparse parser reads them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--env-id", required=True)
    parser.add_argument("--attn-coef", type=float, nargs="+", default=[0.0])
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--total-timesteps", type=int, default=10_000_000)
    args, _ = parser.parse_known_args(argv)
    return args


def test_sweep_files_exist_and_expand():
    names = {p.name for p in SWEEP_FILES}
    assert {"paper.yaml", "smoke.yaml", "breakout-lambda.yaml"} <= names
    for path in SWEEP_FILES:
        sweep = sweeps.load(path)
        assert sweep.program == "train.py"
        assert sweep.argvs, path
        for argv in sweep.argvs:
            assert argv[0].startswith("--") and "=" in argv[0], argv  # ${args} comes first
            assert all(isinstance(a, str) for a in argv)


def test_paper_grid_is_180_runs_of_10m_steps():
    runs = []
    argvs = sweeps.expand(ROOT / "sweeps" / "paper.yaml")
    assert len(argvs) == 6  # one block per game
    for argv in argvs:
        args = train_flags(argv)
        assert args.total_timesteps == 10_000_000
        runs += [(args.env_id, coef, seed) for coef in args.attn_coef for seed in args.seed]
    assert len(runs) == len(set(runs)) == 180
    assert sorted({env for env, _, _ in runs}) == [f"{g}-v5" for g in PAPER_GAMES]
    assert sorted({coef for _, coef, _ in runs}) == PAPER_LAMBDAS
    assert sorted({seed for _, _, seed in runs}) == [0, 1, 2, 3, 4]


def test_breakout_lambda_sweep_is_18_runs_of_300k_steps_in_3_blocks():
    argvs = sweeps.expand(ROOT / "sweeps" / "breakout-lambda.yaml")
    assert len(argvs) == 3  # one block per seed
    runs = []
    for argv in argvs:
        args = train_flags(argv)
        assert args.env_id == "Breakout-v5" and args.total_timesteps == 300_032
        runs += [(coef, seed) for coef in args.attn_coef for seed in args.seed]
    assert len(runs) == len(set(runs)) == 18
    assert sorted({coef for coef, _ in runs}) == PAPER_LAMBDAS
    assert sorted({seed for _, seed in runs}) == [0, 1, 2]


def test_smoke_grid_is_tiny():
    (argv,) = sweeps.expand(ROOT / "sweeps" / "smoke.yaml")
    args = train_flags(argv)
    assert args.env_id == "Breakout-v5" and args.attn_coef == [0.0, 0.005] and args.seed == [0]
    assert args.total_timesteps <= 4096


def test_macros_follow_wandb_agent(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNJAX_TEST_DIR", "/data/runs")
    path = tmp_path / "s.yaml"
    path.write_text("""
program: train.py
method: grid
parameters:
  env-id: {values: [Pong-v5, Breakout-v5]}
  attn-coef: {values: [0.0005, 0.002]}
  anneal-lr: {value: false}
command: ["${env}", "${interpreter}", -u, "${program}", "${args_no_boolean_flags}", --x,
          "${envvar:ATTNJAX_TEST_DIR}/a", "${args_no_equals}", "${args_no_hyphens}",
          "${args_json}"]
""")
    argvs = sweeps.expand(path)
    assert len(argvs) == 4
    assert argvs[1] == [
        "--env-id=Pong-v5", "--attn-coef=0.002", "--x", "/data/runs/a",
        "--env-id", "Pong-v5", "--attn-coef", "0.002", "--anneal-lr", "False",
        "env-id=Pong-v5", "attn-coef=0.002", "anneal-lr=False",
        '{"env-id": "Pong-v5", "attn-coef": 0.002, "anneal-lr": false}']
    # without `command:` W&B runs ${env} ${interpreter} ${program} ${args}
    path.write_text("program: train.py\nmethod: grid\nparameters: {seed: {values: [1, 2]}}\n")
    assert sweeps.expand(path) == [["--seed=1"], ["--seed=2"]]


@pytest.mark.parametrize("text", [
    "program: train.py\nmethod: grid\nparameters: {seed: {values: [1]}}\ncommand: ['${args}']\n",
    "program: train.py\nmethod: bayes\nparameters: {seed: {values: [1]}}\n",
    "program: train.py\nmethod: grid\nparameters: {seed: {min: 0, max: 3}}\n",
    "program: train.py\nmethod: grid\nparameters: {seed: {values: []}}\n",
    "program: train.py\nmethod: grid\n",
    "method: grid\nparameters: {seed: {values: [1]}}\n",
    "program: train.py\nmethod: grid\nparameters: {seed: {values: [1]}}\n"
    "command: ['${program}', '${args_json_file}']\n",
    "program: train.py\nmethod: grid\nparameters: {seed: {values: [1]}\n",  # bad YAML
    "- just\n- a list\n",
])
def test_malformed_files_raise_user_error(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        sweeps.expand(path)
    assert "\n" not in str(err.value)


def test_cli_prints_one_command_per_block(capsys):
    assert sweeps.main([str(ROOT / "sweeps" / "paper.yaml"), "--python", "py", "--",
                        "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("py train.py --env-id=BeamRider-v5 --attn-coef 0 0.0005 ")
    assert all(line.endswith(" --dry-run") for line in lines)


def test_cli_missing_file_exits_2():
    proc = subprocess.run([sys.executable, "-m", "attnjax.training.sweeps", "no/such.yaml"],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


EXPANDED = [pytest.param(argv, id=f"{path.stem}-{i}")
            for path in SWEEP_FILES for i, argv in enumerate(sweeps.expand(path))]


@pytest.mark.parametrize("argv", EXPANDED)
def test_train_dry_run_accepts_expanded_command(argv, tmp_path):
    proc = subprocess.run([sys.executable, "train.py", *argv, "--dry-run", "--out-dir",
                           str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
