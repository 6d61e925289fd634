"""Model cards state what the folder's own files say: steps, time, scores, status, and a
reproduce command that trains the same run."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import pytest

from attnjax.agents.model_card import main as card_main
from attnjax.agents.model_card import render_card, reproduce_command
from attnjax.errors import UserError
from attnjax.training.config import RUN_DEFINING_FIELDS, TrainConfig
from attnjax.training.runs import METRICS_FILE, write_config

ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, attn_coef: float, steps: int, **overrides) -> Path:
    config = TrainConfig(env_id="Breakout-v5", attn_coef=attn_coef, num_envs=4, num_steps=64,
                         total_timesteps=256 * 10, out_dir=str(out), **overrides)
    folder = out / f"Breakout__attn{attn_coef:g}__s0"
    folder.mkdir(parents=True)
    write_config(folder, config)
    lines = [{"iteration": i, "global_step": 256 * i, "sps": 128.0, "attention_entropy": 8 - i,
              "episodic_return": None if i == 1 else float(i)} for i in range(1, steps + 1)]
    (folder / METRICS_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def _evaluation(folder: Path, policy: str, mean: float) -> None:
    entry = {"run": str(folder), "env_id": "Breakout-v5", "network": "attention",
             "attn_coef": 0.0, "seed": 0, "policy": policy, "games": 3, "global_step": 1024,
             "mean": mean,
             "std": 0.5, "median": mean, "min": mean - 1, "max": mean + 1, "mean_length": 200.0,
             "attention_entropy_per_head": [1.25, 0.5]}
    other = {**entry, "run": "elsewhere/Breakout__attn9__s0", "mean": 99.0}
    (folder / f"evaluation_{policy}.json").write_text(json.dumps({"runs": [other, entry]}))


def test_card_numbers_come_from_the_folder(tmp_path):
    plain, focused = _run(tmp_path, 0.0, 4), _run(tmp_path, 0.005, 4)
    (plain / "checkpoints" / "4").mkdir(parents=True)
    _evaluation(plain, "greedy", 7.5)
    card = render_card(plain, [plain, focused], note="Looks at the ball.", hardware="a laptop")
    assert card.startswith("# Breakout__attn0__s0: Breakout, attention network, λ = 0, seed 0")
    assert "1,024 of the schedule's 2,560" in card
    assert "| 0.0 h (a laptop) |" in card  # 4 iterations x 256 steps / 128 steps/s = 8 s
    assert "| training score (mean of the last 100 full games) | 4.0 |" in card
    assert "(sum over 2 heads, uniform = 7.78 nats) | 4.00 nats |" in card
    assert "7.5 ± 0.5 (median 7.5, min 6.5, max 8.5) at 1,024 steps" in card
    assert "99.0" not in card  # another run's entry of the same evaluation file
    assert "attention entropy per head 1.25/0.50 nats" in card
    assert "**Status: in training.**" in card and "Looks at the ball." in card
    assert f"--resume {plain} {focused} --quiet" in card  # the grid's runs resume together
    assert "evaluation, sample policy" not in card


def test_status_follows_the_schedule_and_the_checkpoints(tmp_path):
    finished = render_card(_run(tmp_path / "a", 0.0, 10), [])
    assert "trained to the end of its schedule" in finished
    stopped = render_card(_run(tmp_path / "b", 0.0, 3), [])
    assert "stopped at 768 of 2,560 steps" in stopped and "--resume" not in stopped


def test_reproduce_command_trains_the_same_run(tmp_path):
    sys.path.insert(0, str(ROOT))
    import train

    config = TrainConfig(env_id="Breakout-v5", attn_coef=0.0005, seed=3, learning_rate=1e-3,
                         anneal_lr=False, num_envs=16, out_dir="agents", checkpoint_every=25)
    argv = shlex.split(reproduce_command(config))
    assert argv[:2] == [".venv/bin/python", "train.py"]
    (parsed,) = train.configs_from_args(train.build_parser().parse_args(argv[2:]))
    for name in (*RUN_DEFINING_FIELDS, "out_dir", "checkpoint_every"):
        assert getattr(parsed, name) == getattr(config, name), name
    # the paper preset's defaults are not spelled out
    assert "--num-steps" not in argv and "--no-anneal-lr" in argv
    assert dataclasses.replace(parsed, run_name="") == dataclasses.replace(config, run_name="")


def test_command_writes_cards_and_refuses_a_folder_without_config(tmp_path, capsys):
    from visualize import build_parser

    folder = _run(tmp_path, 0.0, 2)
    args = build_parser("card").parse_args(["card", "--run", str(folder)])
    assert card_main(args) == 0
    assert (folder / "README.md").read_text().startswith("# Breakout__attn0__s0")
    bad = build_parser("card").parse_args(["card", "--run", str(tmp_path)])
    with pytest.raises(UserError, match="no config.json"):
        card_main(bad)


def test_card_and_evaluation_table_read_evaluations_through_one_reader(tmp_path):
    """A malformed evaluation file is refused the same way by the card and the table; the
    committed agents' files pass the reader whole."""
    from attnjax.agents.evaluate import EVALUATION_KEYS, read_evaluation
    from attnjax.figures.evaluation_table import load_evaluations

    folder = _run(tmp_path, 0.0, 4)
    _evaluation(folder, "greedy", 7.5)
    path = folder / "evaluation_greedy.json"
    data = json.loads(path.read_text())
    del data["runs"][1]["median"]
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="lacks a valid .*median.*; rewrite it with visualize"):
        render_card(folder, [])
    with pytest.raises(UserError, match="lacks a valid .*median.*; pass --evaluations files"):
        load_evaluations([path])
    committed = sorted(Path(__file__).resolve().parents[1].glob("agents/*/evaluation_*.json"))
    assert len(committed) == 4
    for file in committed:
        entries = read_evaluation(file, "")
        assert entries and all(set(EVALUATION_KEYS) <= set(e) for e in entries)
