"""Model cards state what the folder's own files say: steps, time, scores, status, and a
reproduce command that trains the same run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attnjax.agents.model_card import NOTE_END, NOTE_START, render_card, reproduce_command
from attnjax.agents.model_card import main as card_main
from attnjax.errors import UserError
from attnjax.training.config import RUN_DEFINING_FIELDS, TrainConfig
from attnjax.training.machine import record_session
from attnjax.training.runs import METRICS_FILE, read_config, write_config

ROOT = Path(__file__).resolve().parents[2]


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


def _parse_train_command(command: str) -> tuple[list[str], TrainConfig]:
    sys.path.insert(0, str(ROOT))
    import train

    argv = shlex.split(command)
    assert argv[:2] == [".venv/bin/python", "train.py"]
    (parsed,) = train.configs_from_args(train.build_parser().parse_args(argv[2:]))
    return argv, parsed


def test_reproduce_command_trains_the_same_run_into_runs(tmp_path):
    config = TrainConfig(env_id="Breakout-v5", attn_coef=0.0005, seed=3, learning_rate=1e-3,
                         anneal_lr=False, num_envs=16, out_dir="agents", checkpoint_every=25)
    stop = 1375  # an agent published before the end of its schedule
    argv, parsed = _parse_train_command(reproduce_command(config, stop))
    for name in RUN_DEFINING_FIELDS:
        assert getattr(parsed, name) == getattr(config, name), name
    assert parsed.out_dir == "runs" and stop % parsed.checkpoint_every == 0
    # the paper preset's defaults are not spelled out; the total steps always are
    assert "--num-steps" not in argv and "--no-anneal-lr" in argv
    assert "--total-timesteps" in argv
    _, other = _parse_train_command(reproduce_command(config, 1374))  # 25 misses it: 6 = 1374/229
    assert other.checkpoint_every == 6
    finished = dataclasses.replace(config, total_timesteps=10 * config.batch_size + 5)
    _, parsed = _parse_train_command(reproduce_command(finished, 10))
    assert parsed.total_timesteps == 10 * config.batch_size  # the agent's own step


def test_card_says_where_to_stop_for_an_agent_taken_mid_schedule(tmp_path):
    stopped = render_card(_run(tmp_path / "a", 0.0, 3), [])
    # --checkpoint-every 3 puts a checkpoint on iteration 3; the newest 3 are kept until 12
    assert ("Stop it between iteration 3 (step 768) and iteration 12: checkpoint 3 is this "
            "agent") in stopped and "--checkpoint-every 3\n" in stopped
    assert "visualize.py publish --run runs/Breakout__attn0__s0/checkpoints/3 --out DIR" \
        in stopped
    assert "--total-timesteps 2560 --num-envs 4 --num-steps 64" in stopped
    finished = render_card(_run(tmp_path / "b", 0.0, 10), [])
    assert "Stop it" not in finished and "--total-timesteps 2560" in finished


def test_command_writes_cards_and_refuses_a_folder_without_config(tmp_path, capsys):
    from visualize import build_parser

    folder = _run(tmp_path, 0.0, 2)
    args = build_parser("card").parse_args(["card", "--run", str(folder)])
    assert card_main(args) == 0
    first, title = (folder / "README.md").read_text().splitlines()[:2]
    assert first.startswith("<!-- written by visualize.py card (attnjax ")
    assert title.startswith("# Breakout__attn0__s0")
    assert card_main(args) == 0  # its own card: rewritten
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
    committed = sorted(ROOT.glob("agents/*/evaluation_*.json"))
    assert len(committed) == 4
    for file in committed:
        entries = read_evaluation(file, "")
        assert entries and all(set(EVALUATION_KEYS) <= set(e) for e in entries)


def test_card_replaces_only_cards_and_checks_every_folder_first(tmp_path):
    from visualize import build_parser

    ours, theirs = _run(tmp_path, 0.0, 2), _run(tmp_path, 0.005, 2)
    (ours / "README.md").write_text(render_card(ours, []))  # a card written before stamps
    (theirs / "README.md").write_text("# My own notes\n")
    args = build_parser("card").parse_args(["card", "--run", str(ours), str(theirs)])
    before = (ours / "README.md").read_text()
    with pytest.raises(UserError, match=f"{theirs / 'README.md'} exists and was not written by "
                                        "visualize.py card.*move it away"):
        card_main(args)
    assert (ours / "README.md").read_text() == before  # nothing written
    assert (theirs / "README.md").read_text() == "# My own notes\n"
    (theirs / "README.md").unlink()
    assert card_main(args) == 0
    assert "written by visualize.py card" in (ours / "README.md").read_text()


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


AGENT_CARDS = sorted(ROOT.glob("agents/*/README.md"))
TINY = ["--total-timesteps", "2048", "--num-envs", "2", "--num-steps", "128",
        "--update-epochs", "1", "--wandb-mode", "disabled", "--quiet"]


@pytest.mark.parametrize("card", AGENT_CARDS, ids=lambda p: p.parent.name)
def test_shipped_cards_reproduce_into_runs_and_leave_the_agent_alone(card, tmp_path):
    """The card's command, dry and for real (shortened), in a checkout holding the agent."""
    command = card.read_text().split("```bash\n")[-1].split("\n```")[0]
    argv, parsed = _parse_train_command(command)
    agent = tmp_path / "agents" / card.parent.name
    shutil.copytree(card.parent, agent)
    before = _tree_digest(agent)
    train_argv = [sys.executable, str(ROOT / "train.py"), *argv[2:]]
    for extra in (["--dry-run"], TINY):
        done = subprocess.run([*train_argv, *extra], cwd=tmp_path, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        assert _tree_digest(agent) == before
    assert (tmp_path / "runs" / card.parent.name / "metrics.jsonl").is_file()
    assert parsed.total_timesteps == read_config(card.parent).total_timesteps


def test_card_reruns_on_a_copy_of_each_shipped_agent(tmp_path, monkeypatch):
    from visualize import build_parser

    monkeypatch.chdir(tmp_path)  # the copies at the paths the cards name: agents/<name>
    for card in AGENT_CARDS:
        copy = Path("agents") / card.parent.name
        shutil.copytree(card.parent, copy)
        args = build_parser("card").parse_args(["card", "--run", str(copy)])
        assert card_main(args) == 0
        again = (copy / "README.md").read_text()
        # the same card, its note (written before the note's markers) and typed hardware kept
        assert again.replace(f"{NOTE_START}\n", "").replace(f"\n{NOTE_END}", "") == \
            card.read_text()


def test_card_written_again_keeps_the_note_and_the_typed_hardware(tmp_path):
    from visualize import build_parser

    folder = _run(tmp_path, 0.0, 4)

    def write(*flags: str) -> str:
        args = build_parser("card").parse_args(["card", "--run", str(folder), *flags])
        assert card_main(args) == 0
        return (folder / "README.md").read_text()

    write("--note", "Looks at the ball.\n\nA second paragraph.", "--hardware", "a laptop")
    text = write()
    assert "Looks at the ball.\n\nA second paragraph." in text
    assert "| 0.0 h (a laptop) |" in text
    text = write("--note", "")
    assert "Looks at the ball." not in text and "| 0.0 h (a laptop) |" in text
    record_session([folder], _session("AMD EPYC (2 cores)", 0, 1))
    assert "| 0.0 h (AMD EPYC (2 cores) (machine.json)) |" in write()  # the record wins


def _session(device: str, from_step: int, runs: int) -> dict:
    return {"started": "2026-12-05T00:00:00+0000", "from_step": from_step, "backend": "cpu",
            "device": device, "runs_in_program": runs}


def test_card_names_the_machines_machine_json_recorded(tmp_path):
    folder = _run(tmp_path, 0.0, 4)
    record_session([folder], _session("AMD EPYC (2 cores)", 0, 3))
    record_session([folder], _session("AMD EPYC (2 cores)", 512, 3))  # a resume, same machine
    record_session([folder], _session("NVIDIA H200 x 1", 768, 1))
    card = render_card(folder, [])
    assert ("| 0.0 h (AMD EPYC (2 cores), 3 runs in one program, from step 0; NVIDIA H200 x 1, "
            "from step 768 (machine.json)) |") in card
    assert "`machine.json` (where each training session ran)" in card
    with pytest.raises(UserError, match="--hardware: .* records where it trained"):
        render_card(folder, [], hardware="a laptop")  # typed words never replace the record


def test_card_without_machine_json_says_so(tmp_path):
    card = render_card(_run(tmp_path, 0.0, 4), [])
    assert "| 0.0 h (machine not recorded) |" in card and "machine.json" not in card
