"""`visualize.py evaluate`: full-game accounting, a random Breakout agent in the random range, a
trained Quadrant agent scoring its training return, the JSON, bad input, and the figures'
evaluation table."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnjax.agents.play import Tally, slot_quotas
from attnjax.errors import UserError
from attnjax.figures.tables import format_cell
from attnjax.model.baseline import UNIFORM_HEAD_ENTROPY
from attnjax.model.envs import StepResult

ROOT = Path(__file__).resolve().parents[2]
RANDOM_GAMES = 8
ENTRY_KEYS = ("run", "run_name", "env_id", "attn_coef", "seed", "network", "global_step",
              "policy", "eval_seed", "games", "scores", "lengths", "mean", "std", "median", "min",
              "max", "mean_length", "attention_entropy_per_head")


def visualize(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "visualize.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def random_breakout_run(root: Path) -> Path:
    """A run folder holding a freshly initialised (untrained) Breakout attention agent."""
    from attnjax.model.networks import init_params, make_network
    from attnjax.training.checkpoints import RunCheckpointer
    from attnjax.training.config import TrainConfig
    from attnjax.training.runs import config_record, run_name, write_config

    config = TrainConfig(env_id="Breakout-v5", wandb_mode="disabled")
    run = root / run_name(config)
    run.mkdir(parents=True)
    write_config(run, config)
    num_actions = 4  # Breakout's minimal action set
    params = init_params(make_network("attention", num_actions), jax.random.PRNGKey(0))
    checkpointer = RunCheckpointer(run)
    checkpointer.save(0, params, {"iteration": np.zeros((), np.int32)},
                      {"config": config_record(config), "global_step": 0, "iteration": 0,
                       "num_actions": num_actions})
    checkpointer.close()
    return run


@pytest.fixture(scope="module")
def random_breakout(tmp_path_factory) -> tuple[Path, dict, str]:
    """(run, evaluation JSON, stdout) of a random-init Breakout agent playing RANDOM_GAMES."""
    root = tmp_path_factory.mktemp("random")
    run = random_breakout_run(root)
    out = root / "eval" / "random.json"
    proc = visualize("evaluate", "--run", str(run), "--games", str(RANDOM_GAMES), "--seed", "3",
                     "--envs", "4", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return run, json.loads(out.read_text()), proc.stdout


def step(game_reward, game_over, done=None) -> StepResult:
    game_reward = jnp.asarray(game_reward, jnp.float32)
    game_over = jnp.asarray(game_over, bool)
    return StepResult(obs=jnp.zeros((len(game_reward), 1), jnp.uint8),
                      reward=jnp.sign(game_reward), done=game_over if done is None else
                      jnp.asarray(done, bool), game_reward=game_reward, game_over=game_over)


def test_quotas_split_the_games_evenly():
    assert slot_quotas(10, 4).tolist() == [3, 3, 2, 2]
    assert slot_quotas(3, 3).tolist() == [1, 1, 1]
    assert slot_quotas(7, 1).tolist() == [7]


def test_tally_counts_unclipped_full_games_up_to_each_slots_quota():
    """Slot 0 (quota 2): a life lost (done, no game over) continues the game; 4 + 7 = 11 is
    the unclipped score. Slot 1 (quota 1): its second game is never counted, however short."""
    quota = jnp.array([2, 1])
    acted = jnp.array([True, True])
    tally = Tally.create(2, 2)
    script = [  # (game_reward, game_over, done) per slot
        ([4.0, 1.0], [False, True], [False, True]),
        ([7.0, 5.0], [False, True], [True, True]),  # slot 0 loses a life; slot 1 over quota
        ([0.0, 0.0], [True, False], [True, False]),  # slot 0: game 1 ends (3 steps, 11)
        ([2.0, 0.0], [True, False], [True, False]),  # slot 0: game 2 ends (1 step, 2)
        ([9.0, 0.0], [True, False], [True, False]),  # slot 0 over quota
    ]
    for reward, over, done in script:
        tally = tally.update(step(reward, over, done), quota, acted)
    assert tally.games.tolist() == [2, 1]
    assert tally.scores.tolist() == [[11.0, 2.0], [1.0, 0.0]]
    assert tally.lengths.tolist() == [[3, 1], [1, 0]]
    assert tally.frames.tolist() == [4, 1]


def test_random_breakout_agent_scores_in_the_random_range(random_breakout):
    """A random agent scores ~1.4 per Breakout game and a game lasts all five lives (one life
    of random play is ~30 agent steps); its attention is uniform."""
    _, result, _ = random_breakout
    (entry,) = result["runs"]
    assert entry["games"] == RANDOM_GAMES == len(entry["scores"]) == len(entry["lengths"])
    assert 0 < entry["mean"] < 5
    assert max(entry["scores"]) < 15
    assert 100 < entry["mean_length"] < 1000
    assert entry["attention_entropy_per_head"] == pytest.approx([UNIFORM_HEAD_ENTROPY] * 2,
                                                                abs=0.05)


def test_json_fields_are_present_and_finite(random_breakout):
    run, result, stdout = random_breakout
    assert result["uniform_attention_entropy"] == pytest.approx(math.log(49))
    assert result["attnjax_version"] and result["date"]
    (entry,) = result["runs"]
    for key in ENTRY_KEYS:
        assert key in entry, key
    assert entry["run"] == str(run) and entry["run_name"] == run.name
    assert (entry["env_id"], entry["attn_coef"], entry["seed"], entry["network"]) == (
        "Breakout-v5", 0.0, 0, "attention")
    assert (entry["policy"], entry["eval_seed"], entry["global_step"]) == ("sample", 3, 0)
    numbers = [entry[k] for k in ("mean", "std", "median", "min", "max", "mean_length")]
    numbers += entry["scores"] + entry["lengths"] + entry["attention_entropy_per_head"]
    assert all(math.isfinite(x) for x in numbers)
    assert entry["mean"] == pytest.approx(np.mean(entry["scores"]))
    assert entry["std"] == pytest.approx(np.std(entry["scores"]))
    header, row = stdout.splitlines()[:2]
    assert header.split()[:3] == ["run", "λ", "games"]
    assert row.split()[:3] == [run.name, "0", str(RANDOM_GAMES)]


def test_trained_quadrant_agents_score_their_training_return(quadrant_grid, tmp_path):
    """Both runs of the grid in lockstep, sampled as in training: the evaluated mean of 64
    games agrees with the mean of the last 100 training games (metrics.jsonl), and the
    attention entropy (summed over heads) with training's last attention_entropy.

    The training mean covers the last ~6 iterations of a still-improving agent, so it lags the
    final checkpoint: measured over eval seeds 0-4, evaluated - trained = +0.3 .. +2.8 (a
    game's score has std ~2.7; greedy play scores ~+10). Entropies agreed within 0.1 nats.
    """
    import visualize

    runs = [quadrant_grid[coef] for coef in sorted(quadrant_grid)]
    out = tmp_path / "quadrant.json"
    assert visualize.run(["evaluate", "--run", *map(str, runs), "--games", "64", "--out",
                          str(out), "--no-progress"]) == 0
    entries = json.loads(out.read_text())["runs"]
    for run, entry in zip(runs, entries, strict=True):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        last = json.loads(lines[-1])
        assert entry["games"] == 64 and entry["mean_length"] == 32
        assert -2.5 < entry["mean"] - last["episodic_return"] < 5, (run.name, last)
        assert sum(entry["attention_entropy_per_head"]) == pytest.approx(
            last["attention_entropy"], abs=0.3)
        assert entry["mean"] > 8  # chance is 32 / 4: the agents have learned


@pytest.mark.parametrize("case", ["no agent", "zero games", "two games", "proc", "not json"])
def test_bad_input_is_one_line_exit_2_nothing_written(case, random_breakout, tmp_path):
    run = random_breakout[0]
    out = tmp_path / "new" / "eval.json"
    runs = [str(run)]
    games = "2"
    if case == "no agent":
        (tmp_path / "empty").mkdir()
        runs = [str(tmp_path / "empty")]
    elif case == "zero games":
        games = "0"
    elif case == "two games":  # a copy of the run whose checkpoint says Pong
        other = tmp_path / "pong"
        shutil.copytree(run, other)
        meta = next(other.glob("checkpoints/*/meta/metadata"))
        data = json.loads(meta.read_text())
        data["config"]["env_id"] = "Pong-v5"
        meta.write_text(json.dumps(data))
        runs.append(str(other))
    elif case == "proc":  # root may "access" /proc, but no file can be created there
        out = Path("/proc/attnjax-evaluation.json")
    elif case == "not json":
        out = tmp_path / "new" / "eval.txt"
    before = sorted(tmp_path.rglob("*"))
    proc = visualize("evaluate", "--run", *runs, "--games", games, "--out", str(out),
                     "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path / "new").exists()


def test_figures_table_consumes_evaluations(random_breakout, tmp_path):
    """The evaluation table holds the evaluated mean (not the training metric), says so, and a
    malformed evaluation file is refused before anything is written."""
    run, result, _ = random_breakout
    metrics_run = tmp_path / "runs" / run.name
    metrics_run.mkdir(parents=True)
    shutil.copy(run / "config.json", metrics_run)
    (metrics_run / "metrics.jsonl").write_text(json.dumps(
        {"global_step": 1024, "episodic_return": 99.0, "attention_entropy": 7.7}) + "\n")
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps(result))
    import visualize

    assert visualize.run(["figures", "--runs", str(tmp_path / "runs"), "--out",
                          str(tmp_path / "fig"), "--evaluations", str(evaluation)]) == 0
    mean = result["runs"][0]["mean"]
    table = (tmp_path / "fig" / "evaluation_table.md").read_text()
    assert f"| 0 | {format_cell(mean, 0.0, n=1)} |" in table
    assert "not the training metric" in table and f"{RANDOM_GAMES} games per run" in table
    assert format_cell(99.0, 0.0, n=1) in (tmp_path / "fig" / "final_table.md").read_text()
    rows = (tmp_path / "fig" / "evaluation_table.csv").read_text().splitlines()
    assert rows[1].split(",")[:5] == ["Breakout", "0.0", "attention", "1", f"{mean}"]

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"runs": [{"env_id": "Breakout-v5"}]}))
    with pytest.raises(UserError, match="lacks a valid"):
        visualize.run(["figures", "--runs", str(tmp_path / "runs"), "--out",
                       str(tmp_path / "fig2"), "--evaluations", str(bad)])
    assert not (tmp_path / "fig2").exists()


def test_out_replaces_only_evaluation_files(tmp_path):
    """--out may name an evaluation file (stamped, or as agents/ holds them from before the
    stamp); any other file is refused before an agent is loaded, and left as it was."""
    from attnjax.agents.evaluate import check_out_path

    shipped = tmp_path / "shipped.json"
    shutil.copy(ROOT / "agents" / "Breakout__attn0__s0" / "evaluation_greedy.json", shipped)
    assert check_out_path(shipped) == shipped
    exhibit = ROOT / "docs" / "results" / "exhibits" / "Breakout__attn0.005__s0"
    assert check_out_path(exhibit / "evaluation_sample.json")  # stamped
    foreign = tmp_path / "mine.json"
    foreign.write_text('{"runs": [], "note": "mine"}')
    proc = visualize("evaluate", "--run", str(tmp_path / "no-such-agent"), "--out",
                     str(foreign), "--no-progress")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{foreign} exists and was not written by visualize.py evaluate" in proc.stderr
    assert "another --out" in proc.stderr
    assert foreign.read_text() == '{"runs": [], "note": "mine"}'


def test_exhibit_evaluations_hold_only_their_own_agent():
    exhibit = ROOT / "docs" / "results" / "exhibits" / "Breakout__attn0.005__s0"
    for path in sorted(exhibit.glob("evaluation_*.json")):
        doc = json.loads(path.read_text())
        assert [entry["run_name"] for entry in doc["runs"]] == [exhibit.name], path
        for entry in doc["runs"]:
            assert (ROOT / entry["run"]).is_dir() and (ROOT / entry["checkpoint"]).exists()
            assert entry["games"] == 30
